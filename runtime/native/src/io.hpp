// Sources and sinks with OpenCV's C++ API (runtime/sources.py, runtime/sinks.py): the same
// URIs — 0 or /dev/videoN (V4L2), csi://N (the same GStreamer pipeline string), rtsp://…, a
// video file, an image folder — and the same outputs: window, video file, image folder, none.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <opencv2/core.hpp>
#include <opencv2/videoio.hpp>
#include <string>
#include <thread>
#include <vector>

namespace tvn {

struct SourceSpec {
  std::string kind;      // v4l2 | csi | rtsp | file | images
  std::string location;  // /dev/videoN, sensor id, URL, path
  std::string uri;
  std::string describe() const;  // the Python SourceSpec.describe() wording
  bool live() const { return kind == "v4l2" || kind == "csi" || kind == "rtsp"; }
};

/// Parse a source URI like runtime/sources.py parse_source (sample: is Python-only). UserError.
SourceSpec parse_source(const std::string& uri);
/// The csi:// / rtsp:// GStreamer launch string, as in runtime/sources.py gstreamer_pipeline.
std::string gstreamer_pipeline(const SourceSpec& spec);

class Source {
 public:
  virtual ~Source() = default;
  /// The next frame (CV_8UC3), or an empty Mat at the end of the stream.
  virtual cv::Mat read() = 0;
  virtual void rewind() {}
  cv::Size size;
  double fps = 30.0;
  SourceSpec spec;
};

/// Opens (and reads the first frame of) a source; UserError with one line when it cannot.
std::unique_ptr<Source> open_source(const SourceSpec& spec, bool loop);

/// Capture on its own thread: live sources keep only the newest frame (overwritten ones count
/// as dropped); files and folders go through a small FIFO with back-pressure (every frame).
class ThreadedCapture {
 public:
  struct Frame {
    cv::Mat image;
    double capture_ms = 0;
  };
  ThreadedCapture(Source& src, double stall_timeout_s = 5.0);
  ~ThreadedCapture();
  /// Blocks for the next frame; false at the end of the stream. RunError on a stall or failure.
  bool get(Frame& out);
  long dropped() const { return dropped_; }

 private:
  void run();
  Source& src_;
  double stall_timeout_s_;
  size_t capacity_;
  std::deque<Frame> frames_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false, stop_ = false;
  std::string error_;
  long dropped_ = 0;
  std::thread thread_;
};

class Sink {
 public:
  virtual ~Sink() = default;
  virtual void write(const cv::Mat& image) = 0;
  /// Finalise (rename the temporary file into place). RunError when it cannot.
  virtual void close() {}
  /// Remove whatever was written (a failed run leaves no file).
  virtual void abort() {}
  virtual int poll_key() { return -1; }
  long frames_written = 0;
  std::string codec;  // a video file's codec ("mp4v", "mjpg"); empty for other sinks
};

/// A .png without its IEND chunk or a .jpg without its EOI marker (refused before decoding).
bool truncated_image(const std::string& path);
/// The image pixel limit in megapixels: TASKVEC_MAX_PIXELS, else 40 (as taskvec/imageio.py).
double max_megapixels();
/// Refuse (RunError) a truncated image or one whose header says it is above max_megapixels().
void check_image_file(const std::string& path);
/// mkdir -p.
void make_dirs(const std::string& folder);

/// Refuse, before any work, an --output path the sinks would refuse (UserError).
void check_output_path(const std::string& path);
/// --output PATH (video file or folder) or nullptr; the window when not headless.
std::unique_ptr<Sink> open_file_sink(const std::string& path, double fps);
std::unique_ptr<Sink> open_window_sink();

}  // namespace tvn
