// ONNX Runtime backend (CPU provider) through the C++ API; built with TASKVEC_WITH_ONNXRUNTIME.
// The session is set up like the Python OrtBackend: all graph optimisations, one inter-op
// thread, intra-op threads = cores. The graph's metadata_props are checked against its sidecar.
#include <onnxruntime_cxx_api.h>

#include <thread>

#include "backend.hpp"
#include "common.hpp"

namespace tvn {
namespace {

std::string first_line(const std::string& s, size_t n = 200) {
  std::string t = UserError::one_line(s);
  return t.size() > n ? t.substr(0, n) : t;
}

class OrtBackend final : public Backend {
 public:
  OrtBackend(GraphInfo info, int threads, bool spin)
      : env_(ORT_LOGGING_LEVEL_ERROR, "tvrun-native"), mem_(Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault)) {
    info_ = std::move(info);
    Ort::SessionOptions opts;
    const int n_threads = threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    opts.SetIntraOpNumThreads(n_threads);
    opts.SetInterOpNumThreads(1);
    opts.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_ENABLE_ALL);
    opts.SetLogSeverityLevel(3);
    // ONNX Runtime's pool spin-waits after each run by default; here the frame's pre/postprocess runs
    // on the same cores right after the graph call, and spinning threads take them (measured with and
    // without, beside the Python runtime: benchmarks/results/native_vs_python_cpu.json). --ort-spin restores it.
    if (!spin) opts.AddConfigEntry("session.intra_op.allow_spinning", "0");
    try {
      session_ = std::make_unique<Ort::Session>(env_, info_.path.c_str(), opts);
    } catch (const Ort::Exception& e) {
      throw UserError("ONNX Runtime cannot load " + info_.path + ": " + first_line(e.what()));
    }
    check_metadata_matches(info_, metadata());
    Ort::AllocatorWithDefaultOptions alloc;
    bool in_ok = false, out_ok = false;
    for (size_t i = 0; i < session_->GetInputCount(); ++i)
      in_ok |= session_->GetInputNameAllocated(i, alloc).get() == info_.io.input_name;
    for (size_t i = 0; i < session_->GetOutputCount(); ++i)
      out_ok |= session_->GetOutputNameAllocated(i, alloc).get() == info_.io.output_name;
    if (!in_ok || !out_ok)
      throw UserError(info_.path + ": graph I/O does not match its IO spec (" + info_.io.input_name + " → " +
                      info_.io.output_name + "); re-export it with tvexport");
    name_ = "onnxruntime:CPU";
    reason_ = "ONNX Runtime " + std::string(Ort::GetVersionString()) + " CPU provider, " +
              std::to_string(n_threads) + " threads" + (spin ? ", spinning" : "") + " (built: " + built_backends() + ")";
  }

  cv::Mat infer(const cv::Mat& cells) override {
    const int n = batch_of(cells);
    const int64_t shape[4] = {n, cell_height(), cell_width(), 3};
    const size_t count = cells.total() * 3;
    Ort::Value in = Ort::Value::CreateTensor<uint8_t>(mem_, const_cast<uint8_t*>(cells.ptr<uint8_t>()), count, shape, 4);
    cv::Mat out(cells.rows, cells.cols, CV_8UC3);
    Ort::Value res = Ort::Value::CreateTensor<uint8_t>(mem_, out.ptr<uint8_t>(), count, shape, 4);
    const char* in_names[] = {info_.io.input_name.c_str()};
    const char* out_names[] = {info_.io.output_name.c_str()};
    try {
      session_->Run(Ort::RunOptions{nullptr}, in_names, &in, 1, out_names, &res, 1);
    } catch (const Ort::Exception& e) {
      throw RunError(info_.path + ": ONNX Runtime failed: " + first_line(e.what()));
    }
    return out;
  }

 private:
  std::map<std::string, std::string> metadata() const {
    std::map<std::string, std::string> meta;
    Ort::AllocatorWithDefaultOptions alloc;
    Ort::ModelMetadata md = session_->GetModelMetadata();
    const std::string prefix = kMetaPrefix;
    for (auto& key : md.GetCustomMetadataMapKeysAllocated(alloc)) {
      std::string k = key.get();
      if (k.compare(0, prefix.size(), prefix) != 0) continue;
      auto v = md.LookupCustomMetadataMapAllocated(k.c_str(), alloc);
      meta[k.substr(prefix.size())] = v ? v.get() : "";
    }
    return meta;
  }

  Ort::Env env_;
  Ort::MemoryInfo mem_;
  std::unique_ptr<Ort::Session> session_;
};

}  // namespace

std::unique_ptr<Backend> open_onnx(const std::string& path, const std::string& task, int threads, bool spin) {
  GraphInfo info = read_onnx_sidecar(path);
  check_for_task(info, task);
  return std::make_unique<OrtBackend>(std::move(info), threads, spin);
}

}  // namespace tvn
