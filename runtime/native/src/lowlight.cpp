#include "lowlight.hpp"

#include <algorithm>
#include <cmath>
#include <opencv2/imgproc.hpp>
#include <vector>

#include "common.hpp"
#include "guided.hpp"

namespace tvn {

LowLightParams LowLightParams::for_mode(const std::string& mode) {
  LowLightParams p;
  p.mode = mode;
  if (mode == "gain") {
    p.eps = 4.0;
    p.max_gain = 12.0;
  }
  p.validate();
  return p;
}

void LowLightParams::validate() const {
  if (mode != "denoise" && mode != "temporal" && mode != "gain")
    throw UserError("unknown low-light transfer '" + mode + "'; choose from denoise, temporal, gain");
  if (!(0.0 <= lift_lo && lift_lo < lift_hi && lift_hi <= 8.0))
    throw UserError("bad lift range: need 0 <= low < high <= 8 (stops of exposure)");
  if (noise_k < 0 || base_radius < 1 || guide_blur < 0)
    throw UserError("noise_k and guide_blur must be >= 0 and base_radius >= 1");
  if (!(0.0 < temporal_alpha && temporal_alpha <= 1.0) || motion_k <= 0)
    throw UserError("temporal_alpha must be in (0, 1] and motion_k > 0");
  if (max_gain < 1 || eps <= 0 || !(50.0 <= white_pct && white_pct <= 100.0))
    throw UserError("max_gain must be >= 1, eps > 0 and white_pct in [50, 100]");
}

double estimate_noise(const cv::Mat& grey) {
  if (grey.rows < 3 || grey.cols < 3) return 0.0;
  const float k[9] = {1, -2, 1, -2, 4, -2, 1, -2, 1};
  cv::Mat c;
  cv::filter2D(grey, c, -1, cv::Mat(3, 3, CV_32F, const_cast<float*>(k)), cv::Point(-1, -1), 0, cv::BORDER_REFLECT);
  cv::Mat inner = cv::abs(c(cv::Rect(1, 1, c.cols - 2, c.rows - 2)));
  return std::sqrt(M_PI / 2) / 6 * cv::mean(inner)[0];
}

namespace {

// numpy.percentile (linear) of a uint8 image's values.
double percentile_u8(const cv::Mat& grey, double pct) {
  if (pct >= 100.0) {
    double mx = 0;
    cv::minMaxLoc(grey, nullptr, &mx);
    return mx;
  }
  std::vector<uint8_t> v(grey.begin<uint8_t>(), grey.end<uint8_t>());
  std::sort(v.begin(), v.end());
  const double pos = pct / 100.0 * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

cv::Mat gray_of(const cv::Mat& bgr) {
  cv::Mat g;
  cv::cvtColor(bgr, g, cv::COLOR_BGR2GRAY);
  return g;
}

}  // namespace

std::pair<double, double> exposure_split(const cv::Mat& cells_in, const cv::Mat& cells_out, const LowLightParams& p) {
  cv::Mat gin = gray_of(cells_in), gout = gray_of(cells_out);
  const double hi_in = percentile_u8(gin, p.white_pct) + p.eps;
  const double hi_out = percentile_u8(gout, p.white_pct) + p.eps;
  const double w = std::clamp(hi_out / hi_in, 1.0, p.max_gain);
  // the lift follows the frame's darkness in stops of exposure, log2 W (runtime/lowlight.py)
  return {w, std::clamp((std::log2(w) - p.lift_lo) / (p.lift_hi - p.lift_lo), 0.0, 1.0)};
}

cv::Mat limit_lift(const cv::Mat& gain, double w, double t) {
  if (t >= 1.0) return gain;
  if (t <= 0.0) return cv::Mat(gain.size(), gain.type(), cv::Scalar::all(w));
  cv::Mat out;
  cv::pow(gain * static_cast<float>(1.0 / w), static_cast<float>(t), out);
  return out * static_cast<float>(w);
}

namespace {

// The frame at half resolution (INTER_AREA), CV_32FC3 in [0,1]: straight from the uint8 frame
// (2×2 means of v/255) when the size is even, else through cv::resize of the float frame.
cv::Mat half_frame(const cv::Mat& frame) {
  const cv::Size hw(std::max(1, frame.cols / 2), std::max(1, frame.rows / 2));
  cv::Mat small;
  if (frame.depth() == CV_8U && frame.cols % 2 == 0 && frame.rows % 2 == 0) {
    small.create(hw, CV_32FC3);
    const float k = 0.25f / 255.0f;
    for_rows(hw.height, [&](int y) {
      const uint8_t* r0 = frame.ptr<uint8_t>(2 * y);
      const uint8_t* r1 = frame.ptr<uint8_t>(2 * y + 1);
      thread_local std::vector<float> pair_buf;  // per worker: the two rows' sums, one loop that vectorises
      float* pair = grow(pair_buf, static_cast<size_t>(frame.cols) * 3);
      for (int m = 0; m < frame.cols * 3; ++m) pair[m] = static_cast<float>(r0[m] + r1[m]);
      float* o = small.ptr<float>(y);
      for (int x = 0; x < hw.width; ++x, o += 3, pair += 6)
        for (int c = 0; c < 3; ++c) o[c] = (pair[c] + pair[c + 3]) * k;
    });
    return small;
  }
  cv::Mat f = frame;
  if (frame.depth() == CV_8U) cv::multiply(frame, cv::Scalar::all(1.0 / 255.0), f, 1.0, CV_32F);
  cv::resize(f, small, hw, 0, 0, cv::INTER_AREA);
  return small;
}

void denoise_coefficients(const cv::Mat& frame, double noise_var, const cv::Mat& noise_var_map,
                          const LowLightParams& p, cv::Mat& a, cv::Mat& b, cv::Mat& small_grey) {
  cv::Mat small = half_frame(frame);
  const cv::Size hw = small.size();
  cv::cvtColor(small, small_grey, cv::COLOR_BGR2GRAY);
  const float k2 = static_cast<float>(p.noise_k * p.noise_k / 4.0);
  const int r = std::min(p.base_radius, std::max(1, std::min(hw.width, hw.height) / 2 - 1));
  if (noise_var_map.empty()) {
    guided_coefficients(small_grey, small, r, cv::Mat(), std::max(noise_var * static_cast<double>(k2), 1e-6), a, b);
  } else {
    cv::Mat eps;
    cv::resize(noise_var_map, eps, hw, 0, 0, cv::INTER_AREA);
    eps = cv::max(eps * k2, 1e-6);
    guided_coefficients(small_grey, small, r, eps, 0.0, a, b);
  }
}

// scale·(up(A)·grey + up(B)) at grey's resolution, bilinear up, saturated to uint8 (runtime/lowlight.py
// apply_coefficients with dtype CV_8U), one output row at a time (UpsampledRows: at exactly half
// resolution no full-resolution float image is made).
cv::Mat apply_coefficients_u8(const cv::Mat& a, const cv::Mat& b, const cv::Mat& grey, double scale) {
  cv::Mat bs;
  cv::multiply(b, cv::Scalar::all(scale), bs);  // at low resolution: cheaper than scaling up(B)
  const UpsampledRows up_a(a, grey.size()), up_b(bs, grey.size());
  cv::Mat out(grey.size(), CV_8UC3);
  const float sc = static_cast<float>(scale);
  for_rows(grey.rows, [&](int y) {
    thread_local std::vector<float> va, vb, row_buf;  // per worker, reused
    const float* pa = up_a.row(y, va);
    const float* pb = up_b.row(y, vb);
    const float* g = grey.ptr<float>(y);
    float* row = grow(row_buf, static_cast<size_t>(grey.cols) * 3);  // the float row, then one SIMD convert
    for (int x = 0; x < grey.cols; ++x, pa += 3, pb += 3) {
      const float gs = g[x] * sc;
      for (int c = 0; c < 3; ++c) row[3 * x + c] = pa[c] * gs + pb[c];
    }
    // saturate_cast<uint8_t> (round half to even, clip) of the whole row at once
    cv::Mat(1, grey.cols, CV_32FC3, row).convertTo(out.row(y), CV_8U);
  });
  return out;
}

}  // namespace

cv::Mat detail_luma(const cv::Mat& grey, double noise_var, const cv::Mat& noise_var_map, const LowLightParams& p) {
  const double var = noise_var_map.empty() ? noise_var : cv::mean(noise_var_map)[0];
  const double sigma = std::sqrt(var) * 255.0;
  if (p.guide_blur <= 0 || sigma < kNoisySigma) return grey;
  cv::Mat soft;
  cv::GaussianBlur(grey, soft, cv::Size(0, 0), p.guide_blur, 0, cv::BORDER_REFLECT);
  const float tau = static_cast<float>(kDetailTau * sigma / 255.0);
  cv::Mat out(grey.size(), CV_32F);
  for_rows(grey.rows, [&](int y) {  // soft + sign(fine)·max(|fine| − τ, 0), fine = grey − soft
    const float* g = grey.ptr<float>(y);
    const float* s = soft.ptr<float>(y);
    float* o = out.ptr<float>(y);
    for (int x = 0; x < grey.cols; ++x) {
      const float fine = g[x] - s[x];
      const float m = std::max(std::fabs(fine) - tau, 0.0f);
      o[x] = s[x] + std::copysign(m, fine);
    }
  });
  return out;
}

cv::Mat denoise_and_gain(const cv::Mat& frame, const cv::Mat& grey, double noise_var, const cv::Mat& noise_var_map,
                         const LowLightParams& p, const std::function<cv::Mat(const cv::Mat&)>& gain_at) {
  cv::Mat a, b, small_grey;
  denoise_coefficients(frame, noise_var, noise_var_map, p, a, b, small_grey);
  cv::Mat denoised_grey(small_grey.size(), CV_32F);
  for_rows(small_grey.rows, [&](int y) {  // cvtColor(A·I + B, BGR2GRAY) in one pass
    const float *pa = a.ptr<float>(y), *pb = b.ptr<float>(y), *g = small_grey.ptr<float>(y);
    float* o = denoised_grey.ptr<float>(y);
    for (int x = 0; x < small_grey.cols; ++x, pa += 3, pb += 3)
      o[x] = 0.114f * (pa[0] * g[x] + pb[0]) + 0.587f * (pa[1] * g[x] + pb[1]) + 0.299f * (pa[2] * g[x] + pb[2]);
  });
  cv::Mat gain = gain_at(denoised_grey);
  if (gain.channels() == 1) gain = replicate(gain, 3);
  cv::Mat out = apply_coefficients_u8(a.mul(gain), b.mul(gain), detail_luma(grey, noise_var, noise_var_map, p), 255.0);
  return out;
}

cv::Mat TemporalFilter::update(const cv::Mat& frame, double sigma, cv::Mat& var) {
  if (acc_.empty() || acc_.size() != frame.size()) {
    acc_ = frame.clone();
    var_ = cv::Mat::ones(frame.size(), CV_32F);
    var = var_;
    return acc_;
  }
  cv::Mat diff, dgrey, moved;
  cv::subtract(frame, acc_, diff);
  cv::cvtColor(diff, dgrey, cv::COLOR_BGR2GRAY);
  cv::blur(dgrey, moved, cv::Size(5, 5), cv::Point(-1, -1), cv::BORDER_REFLECT);
  moved = cv::abs(moved);
  const float scale = static_cast<float>(1.0 / (motion_k_ * std::max(sigma, 1e-4) / 5.0));
  cv::Mat root;
  cv::sqrt(var_ + 1.0f, root);
  cv::Mat z = moved * scale / root;
  cv::Mat alpha = cv::min(cv::max(z - 1.0f, 0.0f), 1.0f);
  alpha = static_cast<float>(alpha_) + static_cast<float>(1.0 - alpha_) * alpha;
  cv::add(acc_, diff.mul(replicate(alpha, 3)), acc_);
  cv::Mat one_minus = 1.0f - alpha;
  var_ = one_minus.mul(one_minus).mul(var_) + alpha.mul(alpha);
  var = var_;
  return acc_;
}

}  // namespace tvn
