// Box-filter guided filter (He, Sun & Tang) and its fast "coefficients at low resolution"
// form — runtime/guided.py's formulas and border modes (BORDER_REFLECT boxes, INTER_LINEAR
// upsampling), computed with fused, row-parallel loops instead of one OpenCV call per term
// (tests/unit_tests.cpp checks them against those calls). Images are CV_32F; the guide is one
// channel, the filtered input 1 or 3 channels.
#pragma once

#include <opencv2/core.hpp>
#include <opencv2/core/utility.hpp>
#include <cstdint>
#include <optional>
#include <vector>

namespace tvn {

/// v.data() with room for n floats. Grows only: a scratch buffer shared by calls of different
/// sizes in one frame is not zero-filled again on every call (resize would refill the difference).
inline float* grow(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

/// f(y) for every row y in [0, rows), rows split over OpenCV's worker threads (--cv-threads).
/// f must only write its own row.
template <class F>
void for_rows(int rows, F&& f) {
  cv::parallel_for_(cv::Range(0, rows), [&f](const cv::Range& range) {
    for (int y = range.start; y < range.end; ++y) f(y);
  });
}

/// Mean over a (2r+1)² window, borders reflected.
cv::Mat box(const cv::Mat& x, int r);

/// Window-averaged coefficients (A, B) with q = A·I + B (shapes of p); eps scalar or an HxW map.
void guided_coefficients(const cv::Mat& guide, const cv::Mat& p, int r, const cv::Mat& eps_map, double eps,
                         cv::Mat& a, cv::Mat& b);

/// Coefficients at low resolution, applied at the resolution of guide_full.
cv::Mat fast_guided_upsample(const cv::Mat& guide_low, const cv::Mat& p_low, const cv::Mat& guide_full, int r,
                             double eps);

/// src (CV_32FC1 or CV_32FC3, at least 2×2) upsampled 2× in both directions with cv::resize's
/// INTER_LINEAR weights, one output row at a time and from any of for_rows' workers — never as a
/// whole image. Along x each source row is interpolated once per worker (kept for the next output
/// rows), then rows are blended. Valid while src is.
class Upsampler2x {
 public:
  explicit Upsampler2x(const cv::Mat& src);
  /// Output row y (0 ≤ y < 2·rows) → out, 2·cols·channels floats.
  void row(int y, float* out) const;

 private:
  const float* x_row(int i) const;
  const cv::Mat& src_;
  uint64_t job_;
};

/// src (CV_32F, 1 or 3 channels) resized to `size` with INTER_LINEAR, read one row at a time
/// (from any of for_rows' workers): at exactly 2× through Upsampler2x, with no full-size image,
/// otherwise from one cv::resize. Valid while src is.
class UpsampledRows {
 public:
  UpsampledRows(const cv::Mat& src, cv::Size size);
  /// Row y (size.width·channels floats): into the resized image, or into scratch (grown as needed).
  const float* row(int y, std::vector<float>& scratch) const;

 private:
  std::optional<Upsampler2x> twice_;
  cv::Mat full_;
  size_t row_len_;
};

/// cv::merge of n copies of a one-channel image.
cv::Mat replicate(const cv::Mat& x, int n);

}  // namespace tvn
