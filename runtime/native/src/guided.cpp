#include "guided.hpp"

#include <opencv2/imgproc.hpp>
#include <algorithm>
#include <vector>

namespace tvn {

cv::Mat box(const cv::Mat& x, int r) {
  cv::Mat out;
  cv::boxFilter(x, out, -1, cv::Size(2 * r + 1, 2 * r + 1), cv::Point(-1, -1), true, cv::BORDER_REFLECT);
  return out;
}

cv::Mat replicate(const cv::Mat& x, int n) {
  if (n == 1) return x;
  std::vector<cv::Mat> planes(static_cast<size_t>(n), x);
  cv::Mat out;
  cv::merge(planes, out);
  return out;
}

namespace {

// BORDER_REFLECT index (…cba|abc…|…cba): the edge pixel is repeated.
inline int reflect(int i, int n) {
  while (i < 0 || i >= n) i = i < 0 ? -i - 1 : 2 * n - i - 1;
  return i;
}

// out[i] = scale·Σ_j src[j][i] over N streams, all taps in one loop (one store per element, not
// one per tap): N is a template argument so the sum unrolls and the loop vectorises.
template <int N>
void sum_streams(const float* const* src, float* out, size_t n, float scale) {
  const float* s[N];
  for (int j = 0; j < N; ++j) s[j] = src[j];
  for (size_t i = 0; i < n; ++i) {
    float acc = s[0][i];
    for (int j = 1; j < N; ++j) acc += s[j][i];
    out[i] = acc * scale;
  }
}

void sum_streams_any(const float* const* src, int count, float* out, size_t n, float scale) {
  switch (count) {  // the windows tvrun uses: r = 1..4
    case 3: return sum_streams<3>(src, out, n, scale);
    case 5: return sum_streams<5>(src, out, n, scale);
    case 7: return sum_streams<7>(src, out, n, scale);
    case 9: return sum_streams<9>(src, out, n, scale);
    default:
      for (size_t i = 0; i < n; ++i) {
        float acc = src[0][i];
        for (int j = 1; j < count; ++j) acc += src[j][i];
        out[i] = acc * scale;
      }
  }
}

// Mean over (2r+1)² windows of a K-channel interleaved float image (rows × cols·K), borders
// reflected: what cv::boxFilter(normalize, BORDER_REFLECT) computes, for all K channels at once.
// Direct sums (2r+1 terms per pass, no running sum that could drift); rows in parallel.
void box_multi(const std::vector<float>& src, std::vector<float>& dst, int rows, int cols, int k, int r) {
  const size_t row_len = static_cast<size_t>(cols) * static_cast<size_t>(k);
  const int taps = 2 * r + 1;
  const float norm = 1.0f / static_cast<float>(taps * taps);
  dst.resize(src.size());
  for_rows(rows, [&](int y) {
    thread_local std::vector<float> col;  // per worker, reused across rows and frames
    thread_local std::vector<const float*> ptr;
    col.resize(row_len);
    ptr.resize(static_cast<size_t>(taps));
    for (int dy = -r; dy <= r; ++dy) ptr[static_cast<size_t>(dy + r)] = &src[static_cast<size_t>(reflect(y + dy, rows)) * row_len];
    sum_streams_any(ptr.data(), taps, col.data(), row_len, 1.0f);
    float* out = &dst[static_cast<size_t>(y) * row_len];
    const int lo = std::min(r, cols), hi = std::max(lo, cols - r);
    if (hi > lo) {  // interior columns: out[i] = norm·Σ_dx col[i + dx·k]
      for (int dx = 0; dx < taps; ++dx) ptr[static_cast<size_t>(dx)] = col.data() + static_cast<size_t>(lo - r + dx) * k;
      sum_streams_any(ptr.data(), taps, out + static_cast<size_t>(lo) * k, static_cast<size_t>(hi - lo) * k, norm);
    }
    for (int x = 0; x < cols; ++x) {  // the r columns at each edge
      if (x == lo && hi > lo) x = hi;
      if (x >= cols) break;
      for (int c = 0; c < k; ++c) {
        float acc = 0.0f;
        for (int dx = -r; dx <= r; ++dx) acc += col[static_cast<size_t>(reflect(x + dx, cols) * k + c)];
        out[static_cast<size_t>(x * k + c)] = acc * norm;
      }
    }
  });
}

}  // namespace

void guided_coefficients(const cv::Mat& guide, const cv::Mat& p, int r, const cv::Mat& eps_map, double eps,
                         cv::Mat& a, cv::Mat& b) {
  CV_Assert(guide.channels() == 1 && guide.depth() == CV_32F && p.depth() == CV_32F && guide.size() == p.size());
  const int rows = guide.rows, cols = guide.cols, c = p.channels(), k = 2 + 2 * c;
  // one pass of window means over [I, I², p_0..p_c-1, I·p_0..I·p_c-1] …
  // reused across frames (same sizes every frame); named by reference, since the row lambdas run
  // on OpenCV's workers, where the thread_locals themselves would be those threads' (empty) ones
  thread_local std::vector<float> in_buf, mean_buf, ab_buf, ab_mean_buf;
  std::vector<float>&in = in_buf, &mean = mean_buf, &ab = ab_buf, &ab_mean = ab_mean_buf;
  in.resize(static_cast<size_t>(rows) * cols * k);
  for_rows(rows, [&](int y) {
    const float* g = guide.ptr<float>(y);
    const float* pp = p.ptr<float>(y);
    float* o = &in[static_cast<size_t>(y) * cols * k];
    for (int x = 0; x < cols; ++x, o += k, pp += c) {
      o[0] = g[x];
      o[1] = g[x] * g[x];
      for (int j = 0; j < c; ++j) {
        o[2 + j] = pp[j];
        o[2 + c + j] = g[x] * pp[j];
      }
    }
  });
  box_multi(in, mean, rows, cols, k, r);
  // … the per-window coefficients a = cov(I,p)/(var(I)+eps), b = mean(p) − a·mean(I) …
  const int k2 = 2 * c;
  ab.resize(static_cast<size_t>(rows) * cols * k2);
  for_rows(rows, [&](int y) {
    const float* m = &mean[static_cast<size_t>(y) * cols * k];
    const float* e = eps_map.empty() ? nullptr : eps_map.ptr<float>(y);
    float* o = &ab[static_cast<size_t>(y) * cols * k2];
    for (int x = 0; x < cols; ++x, m += k, o += k2) {
      const float var = m[1] - m[0] * m[0] + (e ? e[x] : static_cast<float>(eps));
      for (int j = 0; j < c; ++j) {
        const float aj = (m[2 + c + j] - m[0] * m[2 + j]) / var;
        o[j] = aj;
        o[c + j] = m[2 + j] - aj * m[0];
      }
    }
  });
  // … averaged over the windows that contain each pixel.
  box_multi(ab, ab_mean, rows, cols, k2, r);
  a.create(rows, cols, CV_32FC(c));
  b.create(rows, cols, CV_32FC(c));
  for_rows(rows, [&](int y) {
    const float* m = &ab_mean[static_cast<size_t>(y) * cols * k2];
    float* pa = a.ptr<float>(y);
    float* pb = b.ptr<float>(y);
    for (int x = 0; x < cols; ++x, m += k2, pa += c, pb += c)
      for (int j = 0; j < c; ++j) {
        pa[j] = m[j];
        pb[j] = m[c + j];
      }
  });
}

cv::Mat fast_guided_upsample(const cv::Mat& guide_low, const cv::Mat& p_low, const cv::Mat& guide_full, int r,
                             double eps) {
  cv::Mat a, b;
  guided_coefficients(guide_low, p_low, r, cv::Mat(), eps, a, b);
  cv::Mat big_a, big_b;
  cv::resize(a, big_a, guide_full.size(), 0, 0, cv::INTER_LINEAR);
  cv::resize(b, big_b, guide_full.size(), 0, 0, cv::INTER_LINEAR);
  const int c = a.channels();
  for_rows(big_a.rows, [&](int y) {  // A·I + B, I repeated over the channels
    float* pa = big_a.ptr<float>(y);
    const float* pb = big_b.ptr<float>(y);
    const float* g = guide_full.ptr<float>(y);
    for (int x = 0; x < big_a.cols; ++x)
      for (int j = 0; j < c; ++j) pa[x * c + j] = pa[x * c + j] * g[x] + pb[x * c + j];
  });
  return big_a;
}

}  // namespace tvn
