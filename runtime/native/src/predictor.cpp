#include "predictor.hpp"

#include <cmath>
#include <opencv2/imgproc.hpp>
#include <sstream>

#include "common.hpp"
#include "guided.hpp"

namespace tvn {

cv::Mat area_resize(const cv::Mat& image, cv::Size size) {
  cv::Mat img = image;
  const int k = std::min(img.cols / size.width, img.rows / size.height);
  if (k >= 2) {
    cv::Mat t;
    cv::resize(img, t, cv::Size(img.cols / k, img.rows / k), 0, 0, cv::INTER_AREA);
    img = t;
  }
  if (img.size() == size) return img.data == image.data ? img.clone() : img;
  const int interp = (size.width <= img.cols && size.height <= img.rows) ? cv::INTER_AREA : cv::INTER_LINEAR;
  cv::Mat out;
  cv::resize(img, out, size, 0, 0, interp);
  return out;
}

cv::Mat luma(const cv::Mat& bgr) {
  cv::Mat grey, out;
  cv::cvtColor(bgr, grey, cv::COLOR_BGR2GRAY);
  if (grey.depth() == CV_8U) {
    grey.convertTo(out, CV_32F, 1.0f / 255.0f);
    return out;
  }
  return grey;
}

std::vector<Box> tile_boxes(int w, int h, int rows, int cols, double overlap) {
  auto spans = [overlap](int n, int size) {
    std::vector<std::pair<int, int>> out;
    if (n == 1) return std::vector<std::pair<int, int>>{{0, size}};
    const double t = size / (n - (n - 1) * overlap);
    const double step = t * (1 - overlap);
    for (int i = 0; i < n; ++i) {
      const int a = round_half_even(i * step);
      const int b = i == n - 1 ? size : std::min(size, round_half_even(i * step + t));
      out.emplace_back(a, b);
    }
    return out;
  };
  std::vector<Box> boxes;
  for (auto [y0, y1] : spans(rows, h))
    for (auto [x0, x1] : spans(cols, w)) boxes.push_back({x0, y0, x1, y1});
  return boxes;
}

std::pair<int, int> parse_tiles(const std::string& text) {
  if (text.empty()) return {1, 1};
  int r = 0, c = 0;
  char x = 0, extra = 0;
  std::istringstream in(text);
  if (!(in >> r >> x >> c) || (x != 'x' && x != 'X') || (in >> extra))
    throw UserError("bad --tiles '" + text + "': expected RxC, e.g. 2x2");
  if (r < 1 || r > 8 || c < 1 || c > 8) throw UserError("bad --tiles '" + text + "': rows and columns must be 1..8");
  return {r, c};
}

std::array<int, 4> parse_rect(const std::string& text) {
  std::array<int, 4> v{};
  std::string t;
  for (char ch : text)
    if (ch != ' ') t += ch;
  std::istringstream in(t);
  char sep = 0, extra = 0;
  bool ok = static_cast<bool>(in >> v[0]);
  for (int i = 1; ok && i < 4; ++i) ok = (in >> sep >> v[i]) && sep == ',';
  if (!ok || (in >> extra))
    throw UserError("bad --mask-rect '" + text + "': expected x,y,w,h in pixels, e.g. 200,150,80,60");
  if (v[2] <= 0 || v[3] <= 0) throw UserError("bad --mask-rect '" + text + "': width and height must be positive");
  return v;
}

cv::Mat Predictor::operator()(const cv::Mat& frame, StageTimer* timer) {
  if (frame.type() != CV_8UC3) throw UserError("predictors take HxWx3 uint8 BGR frames");
  cv::Mat cells, out;
  {
    StageTimer::Scope s(timer, "preprocess");
    cells = preprocess(frame);
  }
  if (!cells.empty()) {
    StageTimer::Scope s(timer, "infer");
    out = backend_.infer(cells);
  }
  StageTimer::Scope s(timer, "postprocess");
  return postprocess(frame, out);
}

// ------------------------------------------------------------------------------ low-light

LowLightEnhancer::LowLightEnhancer(Backend& backend, std::pair<int, int> tiles, std::string gain_mode,
                                   LowLightParams params)
    : Predictor(backend), tiles_(tiles), gain_mode_(std::move(gain_mode)), p_(std::move(params)),
      temporal_(p_.temporal_alpha, p_.motion_k) {
  if (gain_mode_ != "luma" && gain_mode_ != "rgb") throw UserError("gain_mode must be luma or rgb, got " + gain_mode_);
}

void LowLightEnhancer::geometry(int w, int h) {
  if (frame_size_ == cv::Size(w, h)) return;
  const auto [rows, cols] = tiles_;
  const int k = std::max(1, std::min(w / (cell_w() * cols), h / (cell_h() * rows)));
  work_size_ = cv::Size(w / k, h / k);
  boxes_ = tile_boxes(work_size_.width, work_size_.height, rows, cols);
  std::vector<cv::Mat> weights;
  cv::Mat total = cv::Mat::zeros(work_size_, CV_32F);
  for (const Box& b : boxes_) {  // tent: highest in the middle, small but positive at the edges
    const int tw = b[2] - b[0], th = b[3] - b[1];
    cv::Mat wx(1, tw, CV_32F), wy(th, 1, CV_32F);
    for (int i = 0; i < tw; ++i)
      wx.at<float>(i) = 1.0f - std::fabs(tw == 1 ? -1.0f : -1.0f + 2.0f * static_cast<float>(i) / static_cast<float>(tw - 1)) * 0.95f;
    for (int i = 0; i < th; ++i)
      wy.at<float>(i) = 1.0f - std::fabs(th == 1 ? -1.0f : -1.0f + 2.0f * static_cast<float>(i) / static_cast<float>(th - 1)) * 0.95f;
    cv::Mat wt = wy * wx;
    total(cv::Rect(b[0], b[1], tw, th)) += wt;
    weights.push_back(wt);
  }
  norm_.clear();
  for (size_t i = 0; i < boxes_.size(); ++i) {
    const Box& b = boxes_[i];
    norm_.push_back(weights[i] / total(cv::Rect(b[0], b[1], b[2] - b[0], b[3] - b[1])));
  }
  frame_size_ = cv::Size(w, h);
}

cv::Mat LowLightEnhancer::preprocess(const cv::Mat& frame) {
  geometry(frame.cols, frame.rows);
  work_ = area_resize(frame, work_size_);
  cells_.create(cell_h() * static_cast<int>(boxes_.size()), cell_w(), CV_8UC3);
  for (size_t i = 0; i < boxes_.size(); ++i) {
    const Box& b = boxes_[i];
    area_resize(work_(cv::Rect(b[0], b[1], b[2] - b[0], b[3] - b[1])), cv::Size(cell_w(), cell_h()))
        .copyTo(cells_.rowRange(static_cast<int>(i) * cell_h(), static_cast<int>(i + 1) * cell_h()));
  }
  return cells_;
}

cv::Mat LowLightEnhancer::cell_gain(const cv::Mat& cin, const cv::Mat& cout,
                                    const std::optional<std::pair<double, double>>& expo) const {
  cv::Mat a, b;
  cin.convertTo(a, CV_32F);
  cout.convertTo(b, CV_32F);
  if (gain_mode_ == "luma") {
    cv::cvtColor(a, a, cv::COLOR_BGR2GRAY);
    cv::cvtColor(b, b, cv::COLOR_BGR2GRAY);
  }
  // Mat ± double would touch the first channel only: every scalar on a multi-channel Mat is Scalar::all
  const cv::Scalar eps = cv::Scalar::all(p_.eps);
  cv::Mat gain;
  cv::add(b, eps, b);
  cv::add(a, eps, a);
  cv::divide(b, a, gain);
  if (expo) gain = limit_lift(gain, expo->first, expo->second);
  cv::max(gain, cv::Scalar::all(1.0 / p_.max_gain), gain);
  cv::min(gain, cv::Scalar::all(p_.max_gain), gain);
  if (sigma_ > 0) cv::GaussianBlur(gain, gain, cv::Size(0, 0), sigma_);
  return gain;
}

cv::Mat LowLightEnhancer::gain_map(const cv::Mat& out) {
  std::optional<std::pair<double, double>> expo;
  if (p_.mode != "gain") expo = exposure_split(cells_, out, p_);
  auto cell = [&](size_t i, const cv::Mat& m) {
    return m.rowRange(static_cast<int>(i) * cell_h(), static_cast<int>(i + 1) * cell_h());
  };
  if (boxes_.size() == 1) {
    cv::Mat g;
    cv::resize(cell_gain(cells_, out, expo), g, work_size_, 0, 0, cv::INTER_LINEAR);
    return g;
  }
  cv::Mat gain = cv::Mat::zeros(work_size_, gain_mode_ == "luma" ? CV_32F : CV_32FC3);
  for (size_t i = 0; i < boxes_.size(); ++i) {
    const Box& b = boxes_[i];
    const cv::Rect r(b[0], b[1], b[2] - b[0], b[3] - b[1]);
    cv::Mat g;
    cv::resize(cell_gain(cell(i, cells_), cell(i, out), expo), g, r.size(), 0, 0, cv::INTER_LINEAR);
    cv::Mat wt = g.channels() == 1 ? norm_[i] : replicate(norm_[i], 3);
    gain(r) += g.mul(wt);
  }
  return gain;
}

cv::Mat LowLightEnhancer::postprocess(const cv::Mat& frame, const cv::Mat& out) {
  if (out.empty()) return frame;
  cv::Mat gain = gain_map(out);
  cv::Mat grey = luma(frame);

  cv::Mat guide_low = luma(work_);
  if (p_.mode == "gain") {
    cv::Mat full = fast_guided_upsample(guide_low, gain, grey, radius_, gf_eps_);
    if (full.channels() == 1) full = replicate(full, 3);
    cv::Mat res;
    cv::multiply(frame, full, res, 1.0, CV_8U);
    return res;
  }
  const double sigma = estimate_noise(grey);
  cv::Mat f = frame;  // denoise: the uint8 frame goes to half resolution directly (lowlight.cpp half_frame)
  double var = sigma * sigma;
  cv::Mat var_map;
  if (p_.mode == "temporal") {
    cv::multiply(frame, cv::Scalar::all(1.0 / 255.0), f, 1.0, CV_32F);
    cv::Mat v;
    f = temporal_.update(f, sigma, v);
    var_map = v * static_cast<float>(sigma * sigma);
    cv::cvtColor(f, grey, cv::COLOR_BGR2GRAY);
  }
  auto gain_at = [&](const cv::Mat& half_grey) {
    return fast_guided_upsample(guide_low, gain, half_grey, radius_, gf_eps_);
  };
  return denoise_and_gain(f, grey, var, var_map, p_, gain_at);
}

// ------------------------------------------------------------------------------ in-painting

Inpainter::Inpainter(Backend& backend, cv::Mat mask, std::optional<std::array<int, 4>> rect)
    : Predictor(backend), mask_(std::move(mask)), rect_(rect) {}

bool Inpainter::plan(int w, int h) {
  if (planned_ && plan_size_ == cv::Size(w, h)) return have_plan_;
  planned_ = true;
  plan_size_ = cv::Size(w, h);
  have_plan_ = false;
  if (mask_.empty() && rect_) {
    const auto [x, y, rw, rh] = *rect_;
    const int x0 = std::max(0, x), y0 = std::max(0, y), x1 = std::min(w, x + rw), y1 = std::min(h, y + rh);
    if (x1 <= x0 || y1 <= y0) {
      std::ostringstream m;
      m << "--mask-rect " << x << "," << y << "," << rw << "," << rh << " lies outside the " << w << "x" << h << " frame";
      throw UserError(m.str());
    }
    mask_ = cv::Mat::zeros(h, w, CV_8U);
    mask_(cv::Rect(x0, y0, x1 - x0, y1 - y0)).setTo(255);
  }
  if (mask_.empty()) return false;
  if (mask_.size() != cv::Size(w, h)) cv::resize(mask_, mask_, cv::Size(w, h), 0, 0, cv::INTER_NEAREST);
  cv::Mat hole_full = mask_ > 127;
  std::vector<cv::Point> pts;
  cv::findNonZero(hole_full, pts);
  if (pts.empty()) return false;
  const cv::Rect bb = cv::boundingRect(pts);
  const int side = std::max(min_crop_, static_cast<int>(std::ceil(std::max(bb.width, bb.height) * context_)));
  const int cw = std::min(w, std::max(side, bb.width)), ch = std::min(h, std::max(side, bb.height));
  const double cx = bb.x + bb.width / 2.0, cy = bb.y + bb.height / 2.0;
  const int x0 = std::min(std::max(0, round_half_even(cx - cw / 2.0)), w - cw);
  const int y0 = std::min(std::max(0, round_half_even(cy - ch / 2.0)), h - ch);
  crop_ = cv::Rect(x0, y0, cw, ch);
  hole_ = hole_full(crop_).clone();  // 255 = hole
  cv::Mat cell;
  cv::resize(hole_, cell, cv::Size(cell_w(), cell_h()), 0, 0, cv::INTER_AREA);
  hole_cell_ = cell > 0;
  cv::Mat dist;
  cv::distanceTransform(hole_, dist, cv::DIST_L2, 3);
  double dmax = 0;
  cv::minMaxLoc(dist, nullptr, &dmax);
  const float feather = static_cast<float>(std::min(feather_, std::max(1.0, dmax / 2)));
  cv::Mat alpha = cv::min(cv::max(dist / feather, 0.0), 1.0);
  alpha.setTo(0.0f, hole_ == 0);
  alpha_ = replicate(alpha, 3);
  one_minus_alpha_ = replicate(1.0f - alpha, 3);
  have_plan_ = true;
  return true;
}

cv::Mat Inpainter::preprocess(const cv::Mat& frame) {
  if (!plan(frame.cols, frame.rows)) return cv::Mat();
  cv::Mat cell = area_resize(frame(crop_), cv::Size(cell_w(), cell_h()));
  if (!cell.isContinuous()) cell = cell.clone();
  cell.setTo(cv::Scalar::all(0), hole_cell_);  // the model was trained on black holes
  return cell;
}

cv::Mat Inpainter::postprocess(const cv::Mat& frame, const cv::Mat& out) {
  if (out.empty() || !have_plan_) return frame;
  cv::Mat crop = frame(crop_), fill, cropf, fillf;
  cv::resize(out.rowRange(0, cell_h()), fill, crop_.size(), 0, 0, cv::INTER_CUBIC);
  crop.convertTo(cropf, CV_32F);
  fill.convertTo(fillf, CV_32F);
  cv::Mat blend;
  cv::add(cropf.mul(one_minus_alpha_), fillf.mul(alpha_), blend);
  cv::add(blend, cv::Scalar::all(0.5), blend);
  cv::Mat blend8(blend.size(), CV_8UC3);
  for (int y = 0; y < blend.rows; ++y) {  // np.clip(blend + 0.5, 0, 255).astype(uint8): truncation
    const float* s = blend.ptr<float>(y);
    uint8_t* d = blend8.ptr<uint8_t>(y);
    for (int x = 0; x < blend.cols * 3; ++x) d[x] = static_cast<uint8_t>(std::min(255.0f, std::max(0.0f, s[x])));
  }
  cv::Mat result = frame.clone();
  blend8.copyTo(result(crop_), hole_);
  return result;
}

}  // namespace tvn
