// One interface, one file per backend (STYLE §7): backend_ort.cpp (ONNX Runtime, CPU) and
// backend_trt.cpp (TensorRT 10.x, behind TASKVEC_WITH_TENSORRT).
#pragma once

#include <memory>
#include <opencv2/core.hpp>
#include <string>

#include "graph_info.hpp"

namespace tvn {

/// A loaded task graph. `infer` takes N cells stacked vertically — a CV_8UC3 Mat of
/// (N·H) rows × W columns, which is exactly the graph's uint8 [N,H,W,3] NHWC BGR tensor in
/// memory — and returns the answer cells in the same layout. H, W come from the sidecar.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual cv::Mat infer(const cv::Mat& cells) = 0;
  /// "onnxruntime:CPU", "tensorrt" — the same names the Python runtime reports.
  const std::string& name() const { return name_; }
  /// Why this backend was picked (printed as `backend: NAME — REASON`).
  const std::string& reason() const { return reason_; }
  const GraphInfo& info() const { return info_; }
  int cell_height() const { return info_.io.height; }
  int cell_width() const { return info_.io.width; }

 protected:
  /// Shape check shared by the backends: (N·H)×W CV_8UC3, continuous, N ≥ 1.
  int batch_of(const cv::Mat& cells) const;
  std::string name_, reason_;
  GraphInfo info_;
};

/// Which backends this binary was built with, e.g. "onnxruntime,tensorrt".
std::string built_backends();

/// `--onnx FILE` → the ONNX Runtime backend (CPU), `--engine FILE` → TensorRT. Checks the
/// sidecar against the task first (check_for_task). `threads` 0: one per core; `spin`: let ONNX
/// Runtime's threads spin-wait between runs (its default; off here, see backend_ort.cpp).
std::unique_ptr<Backend> open_onnx(const std::string& path, const std::string& task, int threads, bool spin);
std::unique_ptr<Backend> open_engine(const std::string& path, const std::string& task);

}  // namespace tvn
