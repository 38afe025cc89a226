#include "backend.hpp"

#include "common.hpp"

namespace tvn {

int Backend::batch_of(const cv::Mat& cells) const {
  const int h = cell_height(), w = cell_width();
  if (cells.type() != CV_8UC3 || cells.cols != w || cells.rows <= 0 || cells.rows % h != 0 || !cells.isContinuous())
    throw UserError("backends take uint8 [N," + std::to_string(h) + "," + std::to_string(w) + ",3] cells");
  return cells.rows / h;
}

std::string built_backends() {
  std::string s;
#ifdef TASKVEC_WITH_ONNXRUNTIME
  s += "onnxruntime";
#endif
#ifdef TASKVEC_WITH_TENSORRT
  s += s.empty() ? "tensorrt" : ",tensorrt";
#endif
  return s.empty() ? "none" : s;
}

#ifndef TASKVEC_WITH_ONNXRUNTIME
std::unique_ptr<Backend> open_onnx(const std::string& path, const std::string& task, int, bool) {
  check_for_task(read_onnx_sidecar(path), task);
  throw UserError("this tvrun-native was built without ONNX Runtime (cmake found no headers or library); "
                  "rebuild after runtime/native/get_deps.sh, or use --engine");
}
#endif

#ifndef TASKVEC_WITH_TENSORRT
std::unique_ptr<Backend> open_engine(const std::string& path, const std::string& task) {
  check_for_task(read_engine_sidecar(path), task);
  throw UserError("--engine " + path + " needs TensorRT, and this tvrun-native was built without it "
                  "(configure with TensorRT headers present: -DTENSORRT_ROOT=DIR, or JetPack); run the graph with --onnx FILE");
}
#endif

}  // namespace tvn
