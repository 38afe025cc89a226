#include "guided.hpp"

#include <opencv2/imgproc.hpp>
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

void guided_coefficients(const cv::Mat& guide, const cv::Mat& p, int r, const cv::Mat& eps_map, double eps,
                         cv::Mat& a, cv::Mat& b) {
  CV_Assert(guide.channels() == 1 && guide.size() == p.size());
  cv::Mat mean_i = box(guide, r);
  cv::Mat var_i;
  cv::subtract(box(guide.mul(guide), r), mean_i.mul(mean_i), var_i);
  if (eps_map.empty())
    cv::add(var_i, cv::Scalar::all(eps), var_i);
  else
    cv::add(var_i, eps_map, var_i);
  const int c = p.channels();
  cv::Mat gi = replicate(guide, c), mi = replicate(mean_i, c), vi = replicate(var_i, c);
  cv::Mat mean_p = box(p, r);
  cv::Mat cov_ip;
  cv::subtract(box(gi.mul(p), r), mi.mul(mean_p), cov_ip);
  cv::Mat a0, b0;
  cv::divide(cov_ip, vi, a0);
  cv::subtract(mean_p, a0.mul(mi), b0);
  a = box(a0, r);
  b = box(b0, r);
}

cv::Mat fast_guided_upsample(const cv::Mat& guide_low, const cv::Mat& p_low, const cv::Mat& guide_full, int r,
                             double eps) {
  cv::Mat a, b;
  guided_coefficients(guide_low, p_low, r, cv::Mat(), eps, a, b);
  cv::Mat big_a, big_b;
  cv::resize(a, big_a, guide_full.size(), 0, 0, cv::INTER_LINEAR);
  cv::resize(b, big_b, guide_full.size(), 0, 0, cv::INTER_LINEAR);
  cv::Mat g = replicate(guide_full, a.channels());
  cv::multiply(big_a, g, big_a);
  cv::add(big_a, big_b, big_a);
  return big_a;
}

}  // namespace tvn
