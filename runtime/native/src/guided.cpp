#include "guided.hpp"

#include <opencv2/imgproc.hpp>
#include <algorithm>
#include <atomic>
#include <optional>
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
void box_multi(const float* src, float* dst, int rows, int cols, int k, int r) {
  const size_t row_len = static_cast<size_t>(cols) * static_cast<size_t>(k);
  const int taps = 2 * r + 1;
  const float norm = 1.0f / static_cast<float>(taps * taps);
  for_rows(rows, [&](int y) {
    thread_local std::vector<float> col_buf;  // per worker, reused across rows and frames
    thread_local std::vector<const float*> ptr;
    float* col = grow(col_buf, row_len);
    if (ptr.size() < static_cast<size_t>(taps)) ptr.resize(static_cast<size_t>(taps));
    for (int dy = -r; dy <= r; ++dy) ptr[static_cast<size_t>(dy + r)] = src + static_cast<size_t>(reflect(y + dy, rows)) * row_len;
    sum_streams_any(ptr.data(), taps, col, row_len, 1.0f);
    float* out = dst + static_cast<size_t>(y) * row_len;
    const int lo = std::min(r, cols), hi = std::max(lo, cols - r);
    if (hi > lo) {  // interior columns: out[i] = norm·Σ_dx col[i + dx·k]
      for (int dx = 0; dx < taps; ++dx) ptr[static_cast<size_t>(dx)] = col + static_cast<size_t>(lo - r + dx) * k;
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

// One source row (n pixels of C channels) upsampled 2× along x with cv::resize's INTER_LINEAR
// weights (output x samples source (x + ½)/2 − ½, borders replicated) → out, 2n pixels. The
// two blends between neighbours run as flat loops that vectorise (e = ¾·v + ¼·next, f = ¼·v +
// ¾·next), then land in their pixels: output 2j+1 is e_j, 2j+2 is f_j. ef: 2(n−1)C floats scratch.
template <int C>
void upsample_x_2x(const float* v, int n, float* ef, float* out) {
  const int m = (n - 1) * C;
  float* e = ef;
  float* f = ef + m;
  for (int i = 0; i < m; ++i) {
    e[i] = 0.75f * v[i] + 0.25f * v[i + C];
    f[i] = 0.25f * v[i] + 0.75f * v[i + C];
  }
  for (int k = 0; k < C; ++k) {
    out[k] = v[k];
    out[(2 * n - 1) * C + k] = v[(n - 1) * C + k];
  }
  for (int j = 0; j + 1 < n; ++j) {
    float* o = out + (2 * j + 1) * C;
    for (int k = 0; k < C; ++k) {
      o[k] = e[j * C + k];
      o[C + k] = f[j * C + k];
    }
  }
}

std::atomic<uint64_t> upsample_jobs{0};

// Per worker: the last few source rows upsampled along x, tagged by (job, row). Rows of a stripe
// come in order, so each source row is interpolated along x once per stripe (not once per output
// row); 4 slots hold the two rows of two images used side by side (A and B).
struct RowCache {
  static constexpr int kSlots = 4;
  uint64_t job[kSlots] = {0, 0, 0, 0};
  int row[kSlots] = {-1, -1, -1, -1};
  uint64_t used[kSlots] = {0, 0, 0, 0};
  uint64_t clock = 0;
  std::vector<float> buf[kSlots];
};

}  // namespace

Upsampler2x::Upsampler2x(const cv::Mat& src) : src_(src), job_(++upsample_jobs) {
  CV_Assert(src.depth() == CV_32F && (src.channels() == 1 || src.channels() == 3) && src.cols > 1 && src.rows > 1);
}

const float* Upsampler2x::x_row(int i) const {
  thread_local RowCache cache;
  int victim = 0;
  for (int s = 0; s < RowCache::kSlots; ++s) {
    if (cache.job[s] == job_ && cache.row[s] == i) {
      cache.used[s] = ++cache.clock;
      return cache.buf[s].data();
    }
    if (cache.used[s] < cache.used[victim]) victim = s;
  }
  const int n = src_.cols, c = src_.channels();
  float* out = grow(cache.buf[victim], static_cast<size_t>(2 * n * c));
  thread_local std::vector<float> ef_buf;
  float* ef = grow(ef_buf, static_cast<size_t>(2 * n * c));
  if (c == 3)
    upsample_x_2x<3>(src_.ptr<float>(i), n, ef, out);
  else
    upsample_x_2x<1>(src_.ptr<float>(i), n, ef, out);
  cache.job[victim] = job_;
  cache.row[victim] = i;
  cache.used[victim] = ++cache.clock;
  return out;
}

void Upsampler2x::row(int y, float* out) const {
  // output row y samples source row y/2 − ¼: rows (y/2 − 1, y/2) weighted (¼, ¾) when y is even,
  // (y/2, y/2 + 1) weighted (¾, ¼) when odd, clamped to the image
  const int i = y / 2, odd = y % 2;
  const int i0 = odd ? i : std::max(i - 1, 0), i1 = odd ? std::min(i + 1, src_.rows - 1) : i;
  const float w0 = odd ? 0.75f : 0.25f, w1 = 1.0f - w0;
  const float* r0 = x_row(i0);
  const float* r1 = x_row(i1);
  const int n = 2 * src_.cols * src_.channels();
  for (int m = 0; m < n; ++m) out[m] = w0 * r0[m] + w1 * r1[m];
}

namespace {

// guided_coefficients for a C-channel input (C a template argument, so the per-pixel loops over
// the interleaved planes unroll).
template <int C>
void guided_coefficients_c(const cv::Mat& guide, const cv::Mat& p, int r, const cv::Mat& eps_map, double eps,
                           cv::Mat& a, cv::Mat& b) {
  constexpr int k = 2 + 2 * C, k2 = 2 * C;
  const int rows = guide.rows, cols = guide.cols;
  // reused across frames; named through pointers, since the row lambdas run on OpenCV's workers,
  // where the thread_locals themselves would be those threads' (empty) ones
  thread_local std::vector<float> in_buf, mean_buf, ab_buf, ab_mean_buf;
  const size_t n = static_cast<size_t>(rows) * static_cast<size_t>(cols);
  float* in = grow(in_buf, n * k);
  float* mean = grow(mean_buf, n * k);
  float* ab = grow(ab_buf, n * k2);
  float* ab_mean = grow(ab_mean_buf, n * k2);
  // one pass of window means over [I, I², p_0..p_C-1, I·p_0..I·p_C-1] …
  for_rows(rows, [&](int y) {
    const float* g = guide.ptr<float>(y);
    const float* pp = p.ptr<float>(y);
    float* o = in + static_cast<size_t>(y) * cols * k;
    for (int x = 0; x < cols; ++x, o += k, pp += C) {
      o[0] = g[x];
      o[1] = g[x] * g[x];
      for (int j = 0; j < C; ++j) {
        o[2 + j] = pp[j];
        o[2 + C + j] = g[x] * pp[j];
      }
    }
  });
  box_multi(in, mean, rows, cols, k, r);
  // … the per-window coefficients a = cov(I,p)/(var(I)+eps), b = mean(p) − a·mean(I) …
  for_rows(rows, [&](int y) {
    const float* m = mean + static_cast<size_t>(y) * cols * k;
    const float* e = eps_map.empty() ? nullptr : eps_map.ptr<float>(y);
    float* o = ab + static_cast<size_t>(y) * cols * k2;
    for (int x = 0; x < cols; ++x, m += k, o += k2) {
      const float inv = 1.0f / (m[1] - m[0] * m[0] + (e ? e[x] : static_cast<float>(eps)));
      for (int j = 0; j < C; ++j) {
        const float aj = (m[2 + C + j] - m[0] * m[2 + j]) * inv;
        o[j] = aj;
        o[C + j] = m[2 + j] - aj * m[0];
      }
    }
  });
  // … averaged over the windows that contain each pixel.
  box_multi(ab, ab_mean, rows, cols, k2, r);
  a.create(rows, cols, CV_32FC(C));
  b.create(rows, cols, CV_32FC(C));
  for_rows(rows, [&](int y) {
    const float* m = ab_mean + static_cast<size_t>(y) * cols * k2;
    float* pa = a.ptr<float>(y);
    float* pb = b.ptr<float>(y);
    for (int x = 0; x < cols; ++x, m += k2, pa += C, pb += C)
      for (int j = 0; j < C; ++j) {
        pa[j] = m[j];
        pb[j] = m[C + j];
      }
  });
}

}  // namespace

void guided_coefficients(const cv::Mat& guide, const cv::Mat& p, int r, const cv::Mat& eps_map, double eps,
                         cv::Mat& a, cv::Mat& b) {
  CV_Assert(guide.channels() == 1 && guide.depth() == CV_32F && p.depth() == CV_32F && guide.size() == p.size());
  CV_Assert(p.channels() == 1 || p.channels() == 3);
  if (p.channels() == 3)
    guided_coefficients_c<3>(guide, p, r, eps_map, eps, a, b);
  else
    guided_coefficients_c<1>(guide, p, r, eps_map, eps, a, b);
}

UpsampledRows::UpsampledRows(const cv::Mat& src, cv::Size size)
    : row_len_(static_cast<size_t>(size.width) * static_cast<size_t>(src.channels())) {
  if (src.cols * 2 == size.width && src.rows * 2 == size.height && src.cols > 1 && src.rows > 1)
    twice_.emplace(src);
  else
    cv::resize(src, full_, size, 0, 0, cv::INTER_LINEAR);
}

const float* UpsampledRows::row(int y, std::vector<float>& scratch) const {
  if (!twice_) return full_.ptr<float>(y);
  float* out = grow(scratch, row_len_);
  twice_->row(y, out);
  return out;
}

cv::Mat fast_guided_upsample(const cv::Mat& guide_low, const cv::Mat& p_low, const cv::Mat& guide_full, int r,
                             double eps) {
  cv::Mat a, b;
  guided_coefficients(guide_low, p_low, r, cv::Mat(), eps, a, b);
  const int c = a.channels();
  const UpsampledRows up_a(a, guide_full.size()), up_b(b, guide_full.size());
  cv::Mat out(guide_full.size(), a.type());
  for_rows(out.rows, [&](int y) {  // up(A)·I + up(B), I repeated over the channels
    thread_local std::vector<float> ra, rb;
    const float* pa = up_a.row(y, ra);
    const float* pb = up_b.row(y, rb);
    const float* g = guide_full.ptr<float>(y);
    float* o = out.ptr<float>(y);
    if (c == 3) {  // the usual case, unrolled
      for (int x = 0; x < out.cols; ++x, o += 3, pa += 3, pb += 3)
        for (int j = 0; j < 3; ++j) o[j] = pa[j] * g[x] + pb[j];
    } else {
      for (int x = 0; x < out.cols; ++x)
        for (int j = 0; j < c; ++j) o[x * c + j] = pa[x * c + j] * g[x] + pb[x * c + j];
    }
  });
  return out;
}

}  // namespace tvn
