// Per-stage timing (runtime/timing.py StageTimer) and the --stats record (runtime/pipeline.py
// Stats), written in the same JSON schema so tvbench compares the two runtimes directly.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace tvn {

class StageTimer {
 public:
  using Clock = std::chrono::steady_clock;
  /// Times its scope as one sample of `name` (no-op when timer is null).
  class Scope {
   public:
    Scope(StageTimer* t, const char* name) : t_(t), name_(name), start_(Clock::now()) {}
    ~Scope() {
      if (t_) t_->record(name_, std::chrono::duration<double, std::milli>(Clock::now() - start_).count());
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    StageTimer* t_;
    const char* name_;
    Clock::time_point start_;
  };

  void record(const std::string& name, double ms);
  /// One frame finished (for the FPS overlay).
  void tick();
  /// FPS over the last `window` frames.
  double fps(size_t window = 30) const;
  std::map<std::string, double> last_ms() const;
  /// stage → {p50, p90, p99, mean} (numpy's linear percentiles), in order of first use.
  std::vector<std::pair<std::string, std::map<std::string, double>>> summary() const;

 private:
  std::vector<std::string> order_;
  std::map<std::string, std::vector<double>> samples_;
  std::vector<Clock::time_point> ticks_;
};

/// numpy.percentile(v, q) with linear interpolation.
double percentile(std::vector<double> v, double q);

struct Stats {
  long frames = 0, dropped = 0, reconnects = 0;
  double fps = 0, wall_s = 0, rss_start_mb = 0, rss_end_mb = 0;
  std::string backend, source, output, stopped_by = "end of stream";
  int width = 0, height = 0;
  bool has_output = false;
  std::string output_codec;  // empty: no video file
  std::vector<std::pair<std::string, std::map<std::string, double>>> stages_ms;
  std::string binary_backends;  // extra: what this binary was built with
  std::vector<double> frame_ms;  // extra: per-frame capture+preprocess+infer+postprocess+output

  std::string to_json() const;
  std::string summary_line() const;
};

/// Resident set size of this process (MiB), from /proc/self/statm.
double rss_mb();

/// Write `text` to `path` atomically (temp file in the same folder, then rename). RunError on failure.
void write_atomic(const std::string& path, const std::string& text);

}  // namespace tvn
