// The low-light transfer (runtime/lowlight.py, ported step by step; the per-pixel passes fused
// and split over rows): how the graph's answer cell becomes a full-resolution frame. Frames here are CV_32FC3 BGR in [0,1]; cells CV_8UC3.
#pragma once

#include <opencv2/core.hpp>
#include <functional>
#include <string>
#include <utility>

namespace tvn {

/// runtime/lowlight.py LowLightParams (same defaults; grey levels on the 0–255 scale).
struct LowLightParams {
  std::string mode = "denoise";  // denoise | temporal | gain
  double eps = 1.0;
  double max_gain = 40.0;
  double lift_lo = 1.2, lift_hi = 1.7;  // stops of exposure (log2 W) over which the shadow lift fades in
  double white_pct = 100.0;
  double noise_k = 6.0;
  double guide_blur = 0.7;
  int base_radius = 2;
  double temporal_alpha = 0.25;
  double motion_k = 3.0;

  /// The mode's defaults (gain: eps 4, max_gain 12, the transfer tvrun had first).
  static LowLightParams for_mode(const std::string& mode);
  /// UserError on values the Python dataclass refuses.
  void validate() const;
};

constexpr double kNoisySigma = 1.0;  // grey levels: below, the detail luma is not blurred
constexpr double kDetailTau = 1.0;

/// Immerkær's noise σ of a CV_32F one-channel image (same units).
double estimate_noise(const cv::Mat& grey);
/// (W, t) of one frame from its cells (in and out stacked, CV_8UC3).
std::pair<double, double> exposure_split(const cv::Mat& cells_in, const cv::Mat& cells_out, const LowLightParams& p);
/// W·(gain/W)^t.
cv::Mat limit_lift(const cv::Mat& gain, double w, double t);
/// The frame's luma for the coefficients (runtime/lowlight.py detail_luma); noise_var scalar or map.
cv::Mat detail_luma(const cv::Mat& grey, double noise_var, const cv::Mat& noise_var_map, const LowLightParams& p);
/// The denoise + gain output, CV_8UC3, from the frame (CV_8UC3, or CV_32FC3 in [0,1] in the
/// temporal mode). gain_at(denoised half-resolution luma) → gain there.
cv::Mat denoise_and_gain(const cv::Mat& frame, const cv::Mat& grey, double noise_var, const cv::Mat& noise_var_map,
                         const LowLightParams& p, const std::function<cv::Mat(const cv::Mat&)>& gain_at);

/// Recursive per-pixel average with a motion mask (temporal mode).
class TemporalFilter {
 public:
  TemporalFilter(double alpha, double motion_k) : alpha_(alpha), motion_k_(motion_k) {}
  /// frame CV_32FC3 → filtered frame; var receives the per-pixel variance factor (CV_32F).
  cv::Mat update(const cv::Mat& frame, double sigma, cv::Mat& var);

 private:
  double alpha_, motion_k_;
  cv::Mat acc_, var_;
};

}  // namespace tvn
