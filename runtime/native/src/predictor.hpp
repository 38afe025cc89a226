// Predictors: one full-resolution frame in, one frame out (runtime/predictor.py, ported).
// preprocess → backend.infer → postprocess, each timed as its own stage.
#pragma once

#include <array>
#include <opencv2/core.hpp>
#include <optional>
#include <string>
#include <vector>

#include "backend.hpp"
#include "lowlight.hpp"
#include "timing.hpp"

namespace tvn {

using Box = std::array<int, 4>;  // x0, y0, x1, y1

/// INTER_AREA resize by an integer factor first when shrinking a lot (runtime/predictor.py area_resize).
cv::Mat area_resize(const cv::Mat& image, cv::Size size);
/// uint8 or float BGR → CV_32F luma in [0,1].
cv::Mat luma(const cv::Mat& bgr);
/// Overlapping tiles covering w×h, row-major (overlap 0.25).
std::vector<Box> tile_boxes(int w, int h, int rows, int cols, double overlap = 0.25);
/// "RxC" → (R, C), "" → (1, 1); UserError on anything else.
std::pair<int, int> parse_tiles(const std::string& text);
/// "x,y,w,h" → rect; UserError on anything else.
std::array<int, 4> parse_rect(const std::string& text);

class Predictor {
 public:
  explicit Predictor(Backend& backend) : backend_(backend) {}
  virtual ~Predictor() = default;
  /// HxWx3 uint8 BGR → the same.
  cv::Mat operator()(const cv::Mat& frame, StageTimer* timer);

 protected:
  /// → N cells stacked vertically, or an empty Mat to skip inference.
  virtual cv::Mat preprocess(const cv::Mat& frame) = 0;
  virtual cv::Mat postprocess(const cv::Mat& frame, const cv::Mat& out) = 0;
  int cell_w() const { return backend_.cell_width(); }
  int cell_h() const { return backend_.cell_height(); }
  Backend& backend_;
};

class LowLightEnhancer final : public Predictor {
 public:
  LowLightEnhancer(Backend& backend, std::pair<int, int> tiles, std::string gain_mode, LowLightParams params);

 protected:
  cv::Mat preprocess(const cv::Mat& frame) override;
  cv::Mat postprocess(const cv::Mat& frame, const cv::Mat& out) override;

 private:
  void geometry(int w, int h);
  cv::Mat cell_gain(const cv::Mat& cin, const cv::Mat& cout, const std::optional<std::pair<double, double>>& expo) const;
  cv::Mat gain_map(const cv::Mat& out);
  std::pair<int, int> tiles_;
  std::string gain_mode_;
  LowLightParams p_;
  double sigma_ = 1.0, gf_eps_ = 1e-4;
  int radius_ = 4;
  TemporalFilter temporal_;
  cv::Size frame_size_, work_size_;
  std::vector<Box> boxes_;
  std::vector<cv::Mat> norm_;
  cv::Mat work_, cells_;  // this frame's working-resolution copy and the cells the graph saw
};

class Inpainter final : public Predictor {
 public:
  /// mask: CV_8U (>127 = hole), resized (nearest) to the frame; or rect (x, y, w, h).
  Inpainter(Backend& backend, cv::Mat mask, std::optional<std::array<int, 4>> rect);

 protected:
  cv::Mat preprocess(const cv::Mat& frame) override;
  cv::Mat postprocess(const cv::Mat& frame, const cv::Mat& out) override;

 private:
  bool plan(int w, int h);
  cv::Mat mask_;
  std::optional<std::array<int, 4>> rect_;
  double context_ = 3.0, feather_ = 4.0;
  int min_crop_ = 64;
  bool planned_ = false, have_plan_ = false;
  cv::Size plan_size_;
  cv::Rect crop_;
  cv::Mat hole_cell_, hole_, alpha_, one_minus_alpha_;
};

}  // namespace tvn
