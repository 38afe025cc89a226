// TensorRT 10.x/11.x backend, on the runtime API of NvInferRuntime.h: IRuntime → ICudaEngine →
// IExecutionContext, named I/O tensors (getIOTensorName / setInputShape / setTensorAddress) and
// enqueueV3 on one CUDA stream. Built only with TASKVEC_WITH_TENSORRT. Before TensorRT sees the
// bytes, the engine sidecar's TensorRT version and GPU are compared with the running ones
// (export/trt.py check_engine_file makes the same check in Python), and the engine's I/O must be
// the sidecar's uint8 [N,H,W,3] tensors; a failed deserialization is reported in one line.
#include <NvInferRuntime.h>  // the runtime API only: this backend deserializes engines, it never builds one
#include <cuda_runtime_api.h>

#include <cctype>
#include <fstream>
#include <iterator>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "backend.hpp"
#include "common.hpp"

namespace tvn {
namespace {

// ILogger's contract: TensorRT may call log() from several threads, so the kept message is locked.
class Logger final : public nvinfer1::ILogger {
 public:
  void log(Severity severity, const char* msg) noexcept override {
    if (severity > Severity::kERROR) return;
    std::lock_guard<std::mutex> lock(mutex_);
    last_ = msg;
  }
  std::string last() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return last_;
  }

 private:
  mutable std::mutex mutex_;
  std::string last_;
};

// A [N,H,W,3] uint8 engine tensor for cells of HxW (N, the dynamic batch, may read -1).
bool is_cell_tensor(nvinfer1::DataType type, const nvinfer1::Dims& d, int height, int width) {
  return type == nvinfer1::DataType::kUINT8 && d.nbDims == 4 && d.d[1] == height && d.d[2] == width && d.d[3] == 3;
}

std::string slug(const std::string& text) {  // export/trt.py slug(): "NVIDIA H100 80GB" → "nvidia-h100-80gb"
  std::string out;
  bool dash = false;
  for (char c : text) {
    char l = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if ((l >= 'a' && l <= 'z') || (l >= '0' && l <= '9')) {
      if (dash && !out.empty()) out += '-';
      out += l;
      dash = false;
    } else {
      dash = true;
    }
  }
  return out.empty() ? "unknown" : out;
}

std::string major_minor_patch(const std::string& v) {
  size_t dots = 0, i = 0;
  for (; i < v.size(); ++i)
    if (v[i] == '.' && ++dots == 3) break;
  return v.substr(0, i);
}

void cuda_check(cudaError_t rc, const std::string& what) {
  if (rc != cudaSuccess) throw RunError(what + ": " + cudaGetErrorString(rc));
}

class TrtBackend final : public Backend {
 public:
  explicit TrtBackend(GraphInfo info) {
    info_ = std::move(info);
    // the loaded libnvinfer's own version, part by part (declared in NvInferRuntime.h of 10.x and 11.x alike;
    // the packed getInferLibVersion() integer is not relied on)
    const std::string running = std::to_string(getInferLibMajorVersion()) + "." +
                                std::to_string(getInferLibMinorVersion()) + "." +
                                std::to_string(getInferLibPatchVersion());
    if (major_minor_patch(info_.trt_version) != running)
      throw UserError(info_.path + " was built with TensorRT " + info_.trt_version + ", this is TensorRT " + running +
                      "; rebuild it (tvexport --engine)");
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0)
      throw UserError("--engine needs a CUDA GPU, and none is visible here; run the graph with --onnx FILE");
    cudaDeviceProp prop{};
    cuda_check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
    if (slug(prop.name) != info_.gpu_slug)
      throw UserError(info_.path + " was built for " + (info_.gpu.empty() ? info_.gpu_slug : info_.gpu) +
                      ", this GPU is " + prop.name + "; rebuild it");
    std::ifstream f(info_.path, std::ios::binary);
    std::vector<char> blob((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    runtime_.reset(nvinfer1::createInferRuntime(logger_));
    if (!runtime_) throw UserError("TensorRT: createInferRuntime failed");
    engine_.reset(runtime_->deserializeCudaEngine(blob.data(), blob.size()));
    if (!engine_)
      throw UserError(info_.path + ": TensorRT cannot load this engine (" +
                      UserError::one_line(logger_.last().empty() ? "deserialization failed" : logger_.last().substr(0, 200)) + ")");
    bool in_ok = false, out_ok = false;
    for (int i = 0; i < engine_->getNbIOTensors(); ++i) {
      const std::string n = engine_->getIOTensorName(i);
      const bool input = engine_->getTensorIOMode(n.c_str()) == nvinfer1::TensorIOMode::kINPUT;
      // the buffers below hold N*H*W*3 bytes each way, so the engine must agree on the type and shape too
      const bool cells = is_cell_tensor(engine_->getTensorDataType(n.c_str()), engine_->getTensorShape(n.c_str()),
                                        cell_height(), cell_width());
      in_ok |= input && cells && n == info_.io.input_name;
      out_ok |= !input && cells && n == info_.io.output_name;
    }
    if (!in_ok || !out_ok)
      throw UserError(info_.path + ": engine I/O does not match its IO spec (" + info_.io.input_name + " → " +
                      info_.io.output_name + ", uint8 [N," + std::to_string(cell_height()) + "," +
                      std::to_string(cell_width()) + ",3]); rebuild it with tvexport --engine");
    context_.reset(engine_->createExecutionContext());
    if (!context_) throw UserError(info_.path + ": TensorRT could not create an execution context");
    cuda_check(cudaStreamCreate(&stream_), "cudaStreamCreate");
    name_ = "tensorrt";
    reason_ = "TensorRT " + running + " engine on " + std::string(prop.name) + " (" + info_.precision + ")";
  }

  ~TrtBackend() override {
    if (d_in_) cudaFree(d_in_);
    if (d_out_) cudaFree(d_out_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  cv::Mat infer(const cv::Mat& cells) override {
    const int n = batch_of(cells);
    const size_t bytes = cells.total() * 3;
    if (n != batch_) {
      if (info_.batch_max > 0 && n > info_.batch_max)
        throw RunError(info_.path + ": batch " + std::to_string(n) + " is above the engine's maximum " +
                       std::to_string(info_.batch_max));
      if (d_in_) cudaFree(d_in_);
      if (d_out_) cudaFree(d_out_);
      d_in_ = d_out_ = nullptr;
      cuda_check(cudaMalloc(&d_in_, bytes), "cudaMalloc");
      cuda_check(cudaMalloc(&d_out_, bytes), "cudaMalloc");
      nvinfer1::Dims dims{};
      dims.nbDims = 4;
      dims.d[0] = n;
      dims.d[1] = cell_height();
      dims.d[2] = cell_width();
      dims.d[3] = 3;
      if (!context_->setInputShape(info_.io.input_name.c_str(), dims))
        throw RunError(info_.path + ": batch " + std::to_string(n) + " is outside the engine's optimisation profile");
      const nvinfer1::Dims out_dims = context_->getTensorShape(info_.io.output_name.c_str());
      if (out_dims.nbDims != 4 || out_dims.d[0] != n)
        throw RunError(info_.path + ": the engine's output is not one cell per input cell at batch " + std::to_string(n));
      if (!context_->setTensorAddress(info_.io.input_name.c_str(), d_in_) ||
          !context_->setTensorAddress(info_.io.output_name.c_str(), d_out_))
        throw RunError(info_.path + ": TensorRT refused the I/O buffers");
      batch_ = n;
    }
    cv::Mat out(cells.rows, cells.cols, CV_8UC3);
    cuda_check(cudaMemcpyAsync(d_in_, cells.ptr(), bytes, cudaMemcpyHostToDevice, stream_), "copy to GPU");
    if (!context_->enqueueV3(stream_)) throw RunError(info_.path + ": TensorRT execution failed");
    cuda_check(cudaMemcpyAsync(out.ptr(), d_out_, bytes, cudaMemcpyDeviceToHost, stream_), "copy from GPU");
    cuda_check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
    return out;
  }

 private:
  Logger logger_;
  std::unique_ptr<nvinfer1::IRuntime> runtime_;
  std::unique_ptr<nvinfer1::ICudaEngine> engine_;
  std::unique_ptr<nvinfer1::IExecutionContext> context_;
  cudaStream_t stream_ = nullptr;
  void* d_in_ = nullptr;
  void* d_out_ = nullptr;
  int batch_ = 0;
};

}  // namespace

std::unique_ptr<Backend> open_engine(const std::string& path, const std::string& task) {
  GraphInfo info = read_engine_sidecar(path);
  check_for_task(info, task);
  return std::make_unique<TrtBackend>(std::move(info));
}

}  // namespace tvn
