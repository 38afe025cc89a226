#include "timing.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

#include "common.hpp"

namespace tvn {

void StageTimer::record(const std::string& name, double ms) {
  auto it = samples_.find(name);
  if (it == samples_.end()) {
    order_.push_back(name);
    it = samples_.emplace(name, std::vector<double>{}).first;
  }
  it->second.push_back(ms);
}

void StageTimer::tick() { ticks_.push_back(Clock::now()); }

double StageTimer::fps(size_t window) const {
  if (ticks_.size() < 2) return 0.0;
  const size_t n = std::min(window + 1, ticks_.size());
  const double span = std::chrono::duration<double>(ticks_.back() - ticks_[ticks_.size() - n]).count();
  return span > 0 ? static_cast<double>(n - 1) / span : 0.0;
}

std::map<std::string, double> StageTimer::last_ms() const {
  std::map<std::string, double> out;
  for (const auto& [k, v] : samples_)
    if (!v.empty()) out[k] = v.back();
  return out;
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const double pos = q / 100.0 * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

std::vector<std::pair<std::string, std::map<std::string, double>>> StageTimer::summary() const {
  std::vector<std::pair<std::string, std::map<std::string, double>>> out;
  for (const auto& name : order_) {
    const auto& v = samples_.at(name);
    if (v.empty()) continue;
    double sum = 0;
    for (double x : v) sum += x;
    out.push_back({name, {{"p50", percentile(v, 50)}, {"p90", percentile(v, 90)}, {"p99", percentile(v, 99)},
                          {"mean", sum / static_cast<double>(v.size())}}});
  }
  return out;
}

std::string Stats::to_json() const {
  nlohmann::ordered_json j;
  j["frames"] = frames;
  j["dropped"] = dropped;
  j["fps"] = fps;
  j["backend"] = backend;
  j["source"] = source;
  j["resolution"] = {width, height};
  nlohmann::ordered_json st = nlohmann::ordered_json::object();
  for (const auto& [name, q] : stages_ms) {
    nlohmann::ordered_json e;
    for (const char* k : {"p50", "p90", "p99", "mean"}) e[k] = q.at(k);
    st[name] = e;
  }
  j["stages_ms"] = st;
  j["rss_mb"] = {{"start", std::round(rss_start_mb * 10) / 10}, {"end", std::round(rss_end_mb * 10) / 10}};
  j["wall_s"] = std::round(wall_s * 1000) / 1000;
  j["output"] = has_output ? nlohmann::ordered_json(output) : nlohmann::ordered_json(nullptr);
  j["stopped_by"] = stopped_by;
  j["reconnects"] = reconnects;
  j["output_codec"] = output_codec.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(output_codec);
  j["extra"] = {{"runtime", "native"}, {"binary", "tvrun-native"}, {"built_backends", binary_backends}};
  std::vector<double> rounded;
  for (double ms : frame_ms) rounded.push_back(std::round(ms * 1000) / 1000);
  j["extra"]["frame_ms"] = rounded;
  return j.dump(2) + "\n";
}

std::string Stats::summary_line() const {
  std::ostringstream s;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f", fps);
  s << frames << " frames, " << buf << " FPS, " << dropped << " dropped, backend " << backend << ", " << width << "x"
    << height << "; p50 ms:";
  for (const char* k : {"capture", "preprocess", "infer", "postprocess", "output"})
    for (const auto& [name, q] : stages_ms)
      if (name == k) {
        std::snprintf(buf, sizeof buf, " %s %.1f", k, q.at("p50"));
        s << buf;
      }
  return s.str();
}

double rss_mb() {
  std::ifstream f("/proc/self/statm");
  long pages = 0, resident = 0;
  if (!(f >> pages >> resident)) return 0.0;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

void write_atomic(const std::string& path, const std::string& text) {
  const auto slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  std::string tmpl = dir + "/." + base + ".XXXXXX";
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  const int fd = mkstemp(name.data());
  if (fd < 0) throw RunError("cannot write " + path + ": cannot create a file in " + dir);
  ::fchmod(fd, 0644);  // mkstemp makes 0600; the result is a normal file
  const ssize_t n = ::write(fd, text.data(), text.size());
  const bool ok = n == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || std::rename(name.data(), path.c_str()) != 0) {
    std::remove(name.data());
    throw RunError("cannot write " + path + " (disk full or an I/O error?)");
  }
}

}  // namespace tvn
