// Unit tests of the native runtime's pure parts (no graph, no camera): sidecar parsing,
// URI parsing, tiles, percentiles, the guided filter and the low-light parameters.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <opencv2/imgproc.hpp>
#include <stdexcept>
#include <string>
#include <unistd.h>
#include <vector>

#include "common.hpp"
#include "graph_info.hpp"
#include "guided.hpp"
#include "io.hpp"
#include "lowlight.hpp"
#include "predictor.hpp"
#include "timing.hpp"

namespace {

int failures = 0;

#define CHECK(cond)                                                              \
  do {                                                                           \
    if (!(cond)) {                                                               \
      std::cerr << __FILE__ << ":" << __LINE__ << ": CHECK failed: " #cond "\n"; \
      ++failures;                                                                \
    }                                                                            \
  } while (0)

template <class F>
std::string user_error(F f) {
  try {
    f();
  } catch (const tvn::UserError& e) {
    return e.what();
  }
  return "";
}

std::string temp_dir() {
  char tmpl[] = "/tmp/tvnative-test-XXXXXX";
  const char* d = mkdtemp(tmpl);
  if (!d) throw std::runtime_error("mkdtemp");
  return d;
}

void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

void test_sidecar() {
  const std::string d = temp_dir();
  const std::string onnx = d + "/g.onnx";
  write(onnx, "x");
  CHECK(user_error([&] { tvn::read_onnx_sidecar(onnx); }).find("sidecar g.json is missing") != std::string::npos);
  write(d + "/g.json", "{not json");
  CHECK(user_error([&] { tvn::read_onnx_sidecar(onnx); }).find("not a readable sidecar") != std::string::npos);
  write(d + "/g.json", R"({"task": "lowlight", "graph": "task", "model_fingerprint": "ab", "taskvector_fingerprint": "cd",
    "site_count": 28, "io_spec": {"input_name": "im", "output_name": "out", "height": 97, "width": 101, "channels": 3,
    "layout": "NHWC", "color": "BGR", "dtype": "uint8"}})");
  tvn::GraphInfo g = tvn::read_onnx_sidecar(onnx);
  CHECK(g.io.input_name == "im" && g.io.output_name == "out" && g.io.height == 97 && g.io.width == 101);
  CHECK(g.site_count == "28");
  tvn::check_for_task(g, "lowlight");
  CHECK(user_error([&] { tvn::check_for_task(g, "inpainting"); }).find("'lowlight' graph") != std::string::npos);
  std::map<std::string, std::string> meta{{"task", "lowlight"}, {"model_fingerprint", "ab"},
                                          {"taskvector_fingerprint", "cd"}, {"site_count", "28"}};
  tvn::check_metadata_matches(g, meta);
  meta["site_count"] = "27";
  CHECK(user_error([&] { tvn::check_metadata_matches(g, meta); }).find("site_count") != std::string::npos);
  CHECK(user_error([&] { tvn::check_metadata_matches(g, {}); }).find("not a graph exported by tvexport") != std::string::npos);
  CHECK(user_error([&] { tvn::read_onnx_sidecar(d + "/none.onnx"); }).find("does not exist") != std::string::npos);
  CHECK(user_error([&] { tvn::read_engine_sidecar(onnx); }).find("no sidecar") != std::string::npos);
}

void test_sources() {
  CHECK(tvn::parse_source("0").location == "/dev/video0");
  CHECK(tvn::parse_source("v4l2://3").location == "/dev/video3");
  tvn::SourceSpec csi = tvn::parse_source("csi://1?width=1920&height=1080&fps=30");
  CHECK(csi.kind == "csi" && csi.location == "1");
  CHECK(tvn::gstreamer_pipeline(csi) ==
        "nvarguscamerasrc sensor-id=1 ! video/x-raw(memory:NVMM),width=1920,height=1080,framerate=30/1 ! "
        "nvvidconv flip-method=0 ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! appsink drop=1 "
        "max-buffers=1");
  CHECK(tvn::parse_source("rtsp://u:p@h/x").describe() == "stream rtsp://***@h/x");
  CHECK(tvn::parse_source("clip.mp4").kind == "file");
  CHECK(tvn::parse_source("a.png").kind == "images");
  CHECK(!user_error([] { tvn::parse_source("http://x"); }).empty());
  CHECK(!user_error([] { tvn::parse_source("sample:lowlight"); }).empty());
  CHECK(!user_error([] { tvn::check_output_path("/tmp/x.gif"); }).empty());
  CHECK(!user_error([] { tvn::check_output_path("/proc/version/o.mp4"); }).empty());
}

void test_tiles_and_options() {
  auto b = tvn::tile_boxes(160, 120, 1, 1);
  CHECK(b.size() == 1 && b[0] == (tvn::Box{0, 0, 160, 120}));
  b = tvn::tile_boxes(100, 100, 2, 2);
  CHECK(b.size() == 4 && b[0][2] > 50 && b[3][0] < 50 && b[3][2] == 100);
  CHECK(tvn::parse_tiles("2x3") == std::make_pair(2, 3));
  CHECK(!user_error([] { tvn::parse_tiles("9x1"); }).empty());
  CHECK(!user_error([] { tvn::parse_tiles("2by2"); }).empty());
  CHECK(tvn::parse_rect("1, 2,3,4") == (std::array<int, 4>{1, 2, 3, 4}));
  CHECK(!user_error([] { tvn::parse_rect("1,2,0,4"); }).empty());
  CHECK(!user_error([] { tvn::LowLightParams::for_mode("fast"); }).empty());
  CHECK(tvn::LowLightParams::for_mode("gain").max_gain == 12.0);
  CHECK(tvn::round_half_even(2.5) == 2 && tvn::round_half_even(3.5) == 4);
}

void test_numerics() {
  CHECK(tvn::percentile({1, 2, 3, 4}, 50) == 2.5);
  CHECK(std::abs(tvn::percentile({0, 10}, 90) - 9.0) < 1e-12);
  // the guided filter keeps a constant and follows a step edge of its guide
  cv::Mat guide(40, 40, CV_32F, cv::Scalar(0.2f));
  guide.colRange(20, 40).setTo(0.8f);
  cv::Mat a, b;
  tvn::guided_coefficients(guide, guide, 2, cv::Mat(), 1e-6, a, b);
  cv::Mat q = a.mul(guide) + b;
  CHECK(cv::norm(q, guide, cv::NORM_INF) < 1e-3);
  // Immerkær's estimate of Gaussian noise of σ = 0.05
  cv::Mat noise(200, 200, CV_32F);
  cv::randn(noise, 0.5, 0.05);
  CHECK(std::abs(tvn::estimate_noise(noise) - 0.05) < 0.005);
  // area_resize shrinks by an integer factor, then to the exact size
  cv::Mat img(480, 640, CV_8UC3, cv::Scalar(10, 20, 30));
  cv::Mat cell = tvn::area_resize(img, cv::Size(111, 111));
  CHECK(cell.size() == cv::Size(111, 111) && cell.at<cv::Vec3b>(50, 50) == cv::Vec3b(10, 20, 30));
}

// The guided filter written the plain way, with cv::boxFilter (runtime/guided.py's formulas).
void reference_guided(const cv::Mat& guide, const cv::Mat& p, int r, double eps, cv::Mat& a, cv::Mat& b) {
  std::vector<cv::Mat> ps, as, bs;
  cv::split(p, ps);
  const cv::Mat mi = tvn::box(guide, r), var = tvn::box(guide.mul(guide), r) - mi.mul(mi) + eps;
  for (const cv::Mat& pc : ps) {
    const cv::Mat mp = tvn::box(pc, r);
    const cv::Mat ac = (tvn::box(guide.mul(pc), r) - mi.mul(mp)) / var;
    as.push_back(tvn::box(ac, r));
    bs.push_back(tvn::box(mp - ac.mul(mi), r));
  }
  cv::merge(as, a);
  cv::merge(bs, b);
}

// The fast paths (fused box sums, rows over OpenCV's workers, the row-by-row 2× upsample) against
// the plain OpenCV calls they replace.
void test_fast_paths() {
  cv::RNG rng(7);
  for (const cv::Size size : {cv::Size(2, 2), cv::Size(5, 3), cv::Size(33, 17), cv::Size(160, 120)})
    for (const int c : {1, 3}) {
      cv::Mat src(size, CV_32FC(c));
      rng.fill(src, cv::RNG::UNIFORM, -1.0, 2.0);
      cv::Mat want, got(size.height * 2, size.width * 2, src.type());
      cv::resize(src, want, got.size(), 0, 0, cv::INTER_LINEAR);
      const tvn::Upsampler2x up(src);
      tvn::for_rows(got.rows, [&](int y) { up.row(y, got.ptr<float>(y)); });
      CHECK(cv::norm(got, want, cv::NORM_INF) < 1e-5);
      for (int y = got.rows - 1; y >= 0; y -= 3) up.row(y, got.ptr<float>(y));  // out of order: the row cache
      CHECK(cv::norm(got, want, cv::NORM_INF) < 1e-5);
    }
  for (const int r : {1, 2, 4, 5})  // 5: the generic (not unrolled) sum
    for (const int c : {1, 3}) {
      cv::Mat guide(37, 53, CV_32F), p(37, 53, CV_32FC(c)), a, b, ra, rb;
      rng.fill(guide, cv::RNG::UNIFORM, 0.0, 1.0);
      rng.fill(p, cv::RNG::UNIFORM, 0.0, 1.0);
      tvn::guided_coefficients(guide, p, r, cv::Mat(), 1e-2, a, b);
      reference_guided(guide, p, r, 1e-2, ra, rb);
      CHECK(cv::norm(a, ra, cv::NORM_INF) < 1e-4 && cv::norm(b, rb, cv::NORM_INF) < 1e-4);
    }
  // fast_guided_upsample: the exact-2× path and the general one both equal resize + A·I + B
  for (const cv::Size full : {cv::Size(64, 48), cv::Size(61, 47)}) {
    cv::Mat low(24, 32, CV_32F), p(24, 32, CV_32FC3), hi(full, CV_32F), a, b, up_a, up_b;
    rng.fill(low, cv::RNG::UNIFORM, 0.0, 1.0);
    rng.fill(p, cv::RNG::UNIFORM, 0.5, 3.0);
    rng.fill(hi, cv::RNG::UNIFORM, 0.0, 1.0);
    const cv::Mat got = tvn::fast_guided_upsample(low, p, hi, 3, 1e-3);
    tvn::guided_coefficients(low, p, 3, cv::Mat(), 1e-3, a, b);
    cv::resize(a, up_a, full, 0, 0, cv::INTER_LINEAR);
    cv::resize(b, up_b, full, 0, 0, cv::INTER_LINEAR);
    const cv::Mat want = up_a.mul(tvn::replicate(hi, 3)) + up_b;
    CHECK(got.size() == full && cv::norm(got, want, cv::NORM_INF) < 1e-4);
  }
}

void test_atomic_write() {
  const std::string d = temp_dir();
  tvn::write_atomic(d + "/s.json", "{}\n");
  std::ifstream f(d + "/s.json");
  std::string s;
  std::getline(f, s);
  CHECK(s == "{}");
  bool threw = false;
  try {
    tvn::write_atomic(d + "/missing/s.json", "{}");
  } catch (const tvn::RunError&) {
    threw = true;
  }
  CHECK(threw);
}

}  // namespace

int main() {
  test_sidecar();
  test_sources();
  test_tiles_and_options();
  test_numerics();
  test_fast_paths();
  test_atomic_write();
  if (failures) {
    std::cerr << failures << " check(s) failed\n";
    return 1;
  }
  std::cout << "all native unit checks passed\n";
  return 0;
}
