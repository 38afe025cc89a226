#include "io.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <opencv2/highgui.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/imgcodecs.hpp>
#include <sys/stat.h>
#include <unistd.h>

#include "common.hpp"

namespace tvn {
namespace {

bool is_dir(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
bool exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}
std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
std::string suffix(const std::string& p) {
  const auto slash = p.find_last_of('/');
  const auto dot = p.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash) || dot == slash + 1) return "";
  return lower(p.substr(dot));
}
bool is_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
}
const std::vector<std::string> kImageExt = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"};
const std::vector<std::string> kVideoExt = {".avi", ".m4v", ".mov", ".mp4"};
bool in(const std::vector<std::string>& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }

std::string redact(const std::string& url) {  // rtsp://user:pw@host → rtsp://***@host
  const auto scheme = url.find("://");
  const auto at = url.find('@');
  if (scheme == std::string::npos || at == std::string::npos || at < scheme) return url;
  return url.substr(0, scheme + 3) + "***" + url.substr(at);
}

// natural order: frame_2 before frame_10 (runtime/sources.py _natural_key)
bool natural_less(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) && std::isdigit(static_cast<unsigned char>(b[j]))) {
      size_t i2 = i, j2 = j;
      while (i2 < a.size() && std::isdigit(static_cast<unsigned char>(a[i2]))) ++i2;
      while (j2 < b.size() && std::isdigit(static_cast<unsigned char>(b[j2]))) ++j2;
      const long long x = std::stoll(a.substr(i, std::min<size_t>(i2 - i, 18)));
      const long long y = std::stoll(b.substr(j, std::min<size_t>(j2 - j, 18)));
      if (x != y) return x < y;
      i = i2;
      j = j2;
    } else {
      const char x = static_cast<char>(std::tolower(static_cast<unsigned char>(a[i])));
      const char y = static_cast<char>(std::tolower(static_cast<unsigned char>(b[j])));
      if (x != y) return x < y;
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

bool opencv_has_gstreamer() {
  const std::string info = cv::getBuildInformation();
  const auto p = info.find("GStreamer:");
  return p != std::string::npos && info.compare(info.find_first_not_of(" ", p + 10), 3, "YES") == 0;
}

const char* kNoGst =
    " needs OpenCV built with GStreamer (JetPack's OpenCV has it; Debian's libopencv-videoio has it too, "
    "a pip opencv-python does not)";

class CaptureSource final : public Source {
 public:
  explicit CaptureSource(const SourceSpec& s, bool loop) : loop_(loop) {
    spec = s;
    open();
    if (!cap_.read(first_) || first_.empty()) throw UserError("cannot open " + spec.describe() + ": no frame could be read");
    size = first_.size();
    const double f = cap_.get(cv::CAP_PROP_FPS);
    fps = (f > 0 && f < 1000) ? f : 30.0;
  }
  cv::Mat read() override {
    if (!first_.empty()) {
      cv::Mat f = first_;
      first_.release();
      return f;
    }
    cv::Mat img;
    if (!cap_.read(img) || img.empty()) {
      if (!loop_ || spec.live()) return cv::Mat();
      rewind();
      if (!cap_.read(img) || img.empty()) return cv::Mat();
    }
    if (img.channels() == 1) cv::cvtColor(img, img, cv::COLOR_GRAY2BGR);
    return img;
  }
  void rewind() override {
    cap_.release();
    open();
  }

 private:
  void open() {
    const std::string name = spec.describe();
    if (spec.kind == "v4l2") {
      if (!exists(spec.location))
        throw UserError("cannot open " + name + ": no such device — is it plugged in? try `v4l2-ctl --list-devices`");
      cap_.open(spec.location, cv::CAP_V4L2);
    } else if (spec.kind == "csi") {
      if (!opencv_has_gstreamer()) throw UserError(std::string("csi://") + kNoGst);
      cap_.open(gstreamer_pipeline(spec), cv::CAP_GSTREAMER);
    } else if (spec.kind == "rtsp") {
      cap_.open(spec.location, cv::CAP_FFMPEG);
    } else {
      struct stat st {};
      if (::stat(spec.location.c_str(), &st) != 0) throw UserError("cannot open " + name + ": no such file");
      if (!S_ISREG(st.st_mode)) throw UserError("cannot open " + name + ": not a regular file");
      cap_.open(spec.location, cv::CAP_ANY);
    }
    if (!cap_.isOpened()) {
      if (spec.kind == "file")
        throw UserError("cannot open " + name + ": OpenCV cannot decode it (unsupported container or codec?)");
      throw UserError("cannot open " + name + ": no answer from the device or stream");
    }
  }
  cv::VideoCapture cap_;
  cv::Mat first_;
  bool loop_;
};

// A PNG must end with its IEND chunk, a JPEG with the EOI marker: a cut file is refused before
// the decoder sees it (libpng would print to stderr and return half an image).
}  // namespace

bool truncated_image(const std::string& path) {
  const std::string ext = suffix(path);
  if (ext != ".png" && ext != ".jpg" && ext != ".jpeg") return false;
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  const std::streamoff n = f.tellg();
  if (n < 12) return true;
  f.seekg(n - 12);
  unsigned char tail[12];
  f.read(reinterpret_cast<char*>(tail), 12);
  if (ext == ".png") return std::memcmp(tail + 4, "IEND", 4) != 0;
  for (int i = 11; i > 0; --i)  // trailing padding after EOI is allowed
    if (tail[i] != 0) return !(tail[i] == 0xD9 && tail[i - 1] == 0xFF);
  return true;
}

namespace {

// Width × height from a PNG's IHDR or a JPEG's SOFn marker, without decoding; {0, 0} if unknown.
std::pair<long, long> header_size(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  unsigned char h[26] = {};
  f.read(reinterpret_cast<char*>(h), 26);
  auto be = [](const unsigned char* p, int n) {
    long v = 0;
    for (int i = 0; i < n; ++i) v = (v << 8) | p[i];
    return v;
  };
  if (f.gcount() >= 24 && std::memcmp(h, "\x89PNG", 4) == 0) return {be(h + 16, 4), be(h + 20, 4)};
  if (f.gcount() < 4 || h[0] != 0xFF || h[1] != 0xD8) return {0, 0};
  f.clear();
  f.seekg(2);
  unsigned char m[9];
  while (f.read(reinterpret_cast<char*>(m), 4) && m[0] == 0xFF) {
    const int marker = m[1];
    const long len = be(m + 2, 2);
    if (marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC) {
      if (!f.read(reinterpret_cast<char*>(m), 5)) break;
      return {be(m + 3, 2), be(m + 1, 2)};
    }
    f.seekg(len - 2, std::ios::cur);
  }
  return {0, 0};
}

}  // namespace

double max_megapixels() {
  const char* env = std::getenv("TASKVEC_MAX_PIXELS");
  const double mp = env ? std::atof(env) : 0.0;
  return mp > 0 ? mp : 40.0;  // taskvec/imageio.py DEFAULT_MAX_PIXELS
}

void check_image_file(const std::string& path) {
  if (truncated_image(path)) throw RunError("cannot decode " + path + ": the file is truncated");
  const auto [w, h] = header_size(path);
  const double mp = static_cast<double>(w) * static_cast<double>(h) / 1e6;
  if (mp > max_megapixels()) {
    char buf[160];
    std::snprintf(buf, sizeof buf, ": %ldx%ld is %.1f MP, above the %g MP limit; raise it with TASKVEC_MAX_PIXELS=MP", w,
                  h, mp, max_megapixels());
    throw RunError("cannot decode " + path + buf);
  }
}

namespace {

class ImageFolderSource final : public Source {
 public:
  ImageFolderSource(const SourceSpec& s, bool loop) : loop_(loop) {
    spec = s;
    if (is_dir(spec.location)) {
      DIR* d = ::opendir(spec.location.c_str());
      if (!d) throw UserError("cannot open " + spec.describe() + ": permission denied");
      while (dirent* e = ::readdir(d)) {
        const std::string n = e->d_name;
        const std::string full = spec.location + "/" + n;
        struct stat st {};
        if (n[0] != '.' && in(kImageExt, suffix(n)) && ::stat(full.c_str(), &st) == 0 && S_ISREG(st.st_mode))
          files_.push_back(n);
      }
      ::closedir(d);
      std::sort(files_.begin(), files_.end(), natural_less);
      for (auto& f : files_) f = spec.location + "/" + f;
    } else if (exists(spec.location)) {
      files_.push_back(spec.location);
    } else {
      throw UserError("cannot open " + spec.describe() + ": no such file or folder");
    }
    if (files_.empty())
      throw UserError("cannot open " + spec.describe() +
                      ": no images found (looked for .bmp, .jpeg, .jpg, .pgm, .png, .ppm, .tif, .tiff, .webp)");
    try {
      size = load(files_[0]).size();
    } catch (const RunError& e) {
      throw UserError(e.what());  // the first image decides whether the source opens at all: bad input
    }
  }
  cv::Mat read() override {
    if (pos_ >= files_.size()) {
      if (!loop_) return cv::Mat();
      pos_ = 0;
    }
    return load(files_[pos_++]);
  }
  void rewind() override { pos_ = 0; }

 private:
  static cv::Mat load(const std::string& path) {
    check_image_file(path);
    cv::Mat img;
    try {
      img = cv::imread(path, cv::IMREAD_COLOR);
    } catch (const cv::Exception&) {
      img.release();
    }
    if (img.empty()) throw RunError("cannot decode " + path + " (not an image OpenCV reads)");
    return img;
  }
  std::vector<std::string> files_;
  size_t pos_ = 0;
  bool loop_;
};

// --------------------------------------------------------------------------------- sinks

class VideoFileSink final : public Sink {
 public:
  VideoFileSink(std::string path, double fps) : path_(std::move(path)), fps_(fps) {
    const auto slash = path_.find_last_of('/');
    dir_ = slash == std::string::npos ? "." : path_.substr(0, slash);
    const std::string base = slash == std::string::npos ? path_ : path_.substr(slash + 1);
    make_dirs(dir_);
    const std::string ext = suffix(path_);
    fourcc_ = ext == ".avi" ? cv::VideoWriter::fourcc('M', 'J', 'P', 'G') : cv::VideoWriter::fourcc('m', 'p', '4', 'v');
    std::string tmpl = dir_ + "/." + base.substr(0, base.size() - ext.size()) + ".XXXXXX.part" + ext;
    std::vector<char> name(tmpl.begin(), tmpl.end());
    name.push_back('\0');
    const int fd = ::mkstemps(name.data(), static_cast<int>(5 + ext.size()));
    if (fd < 0) throw UserError("cannot write " + path_ + ": cannot create a file in " + dir_);
    ::fchmod(fd, 0644);
    ::close(fd);
    tmp_ = name.data();
  }
  ~VideoFileSink() override {
    if (!closed_) abort();
  }
  void write(const cv::Mat& image) override {
    if (!writer_.isOpened()) {
      size_ = image.size();
      if (!writer_.open(tmp_, fourcc_, fps_, size_)) {
        abort();
        throw RunError("cannot write " + path_ + ": OpenCV has no encoder for " + suffix(path_));
      }
    }
    if (image.size() != size_) throw RunError("frame size changed while writing " + path_);
    writer_.write(image);
    ++frames_written;
  }
  void close() override {
    if (closed_) return;
    writer_.release();
    closed_ = true;
    if (frames_written == 0) {
      std::remove(tmp_.c_str());
      return;
    }
    cv::VideoCapture check(tmp_);
    cv::Mat f;
    if (!check.isOpened() || !check.read(f)) {
      std::remove(tmp_.c_str());
      throw RunError("cannot write " + path_ + ": the finished file is not playable (disk full or an I/O error); removed it");
    }
    if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
      std::remove(tmp_.c_str());
      throw RunError("cannot write " + path_);
    }
  }
  void abort() override {
    writer_.release();
    std::remove(tmp_.c_str());
    closed_ = true;
  }

 private:
  std::string path_, dir_, tmp_;
  double fps_;
  int fourcc_;
  cv::Size size_;
  cv::VideoWriter writer_;
  bool closed_ = false;
};

class ImageFolderSink final : public Sink {
 public:
  explicit ImageFolderSink(std::string folder) : folder_(std::move(folder)) {
    while (folder_.size() > 1 && folder_.back() == '/') folder_.pop_back();
    created_ = !exists(folder_);
    if (created_) make_dirs(folder_);
    if (!is_dir(folder_)) throw UserError("cannot write images to " + folder_ + ": it is a file, not a folder");
  }
  void write(const cv::Mat& image) override {
    char name[32];
    std::snprintf(name, sizeof name, "frame_%06ld.png", frames_written + 1);
    const std::string target = folder_ + "/" + name;
    bool ok = false;
    try {
      ok = cv::imwrite(target, image);
    } catch (const cv::Exception&) {
    }
    if (!ok) {
      std::remove(target.c_str());
      throw RunError("cannot write " + target + " (disk full or an I/O error?)");
    }
    written_.push_back(target);
    ++frames_written;
  }
  void abort() override {
    for (const auto& f : written_) std::remove(f.c_str());
    written_.clear();
    if (created_) ::rmdir(folder_.c_str());
  }

 private:
  std::string folder_;
  bool created_ = false;
  std::vector<std::string> written_;
};

class WindowSink final : public Sink {
 public:
  void write(const cv::Mat& image) override {
    if (!opened_) {
      if (!std::getenv("DISPLAY") && !std::getenv("WAYLAND_DISPLAY"))
        throw RunError("no display: cannot open a window (DISPLAY is not set) — run with --headless or give --output");
      cv::namedWindow("tvrun-native", cv::WINDOW_AUTOSIZE);
      opened_ = true;
    }
    cv::imshow("tvrun-native", image);
    ++frames_written;
  }
  int poll_key() override { return opened_ ? cv::waitKey(1) : -1; }
  void close() override {
    if (opened_) cv::destroyAllWindows();
  }

 private:
  bool opened_ = false;
};

}  // namespace

std::string SourceSpec::describe() const {
  if (kind == "v4l2") {
    const std::string n = location.substr(std::string("/dev/video").size());
    return "camera " + n + " (" + location + ")";
  }
  if (kind == "csi") return "CSI camera " + location;
  if (kind == "rtsp") return "stream " + redact(location);
  if (kind == "images") return "images " + location;
  return "video file " + location;
}

SourceSpec parse_source(const std::string& uri_in) {
  std::string t = uri_in;
  t.erase(0, t.find_first_not_of(" \t"));
  t.erase(t.find_last_not_of(" \t") + 1);
  const std::string accepted = "a camera index (0), /dev/videoN, csi://N, a video file, an image folder or rtsp://…";
  if (t.empty()) throw UserError("empty source: give " + accepted);
  const std::string low = lower(t);
  auto strip_query = [](std::string s) { return s.substr(0, s.find('?')); };
  if (is_digits(t)) return {"v4l2", "/dev/video" + std::to_string(std::stoi(t)), t};
  if (low.rfind("v4l2://", 0) == 0) {
    std::string rest = strip_query(t.substr(7));
    if (is_digits(rest)) rest = "/dev/video" + std::to_string(std::stoi(rest));
    if (rest.rfind("/dev/", 0) != 0) throw UserError("bad camera URI '" + t + "': expected v4l2:///dev/videoN or v4l2://N");
    return {"v4l2", rest, t};
  }
  if (low.rfind("csi://", 0) == 0) {
    const std::string rest = strip_query(t.substr(6));
    if (!is_digits(rest)) throw UserError("bad CSI URI '" + t + "': expected csi://N with N the sensor id (0, 1, …)");
    return {"csi", std::to_string(std::stoi(rest)), t};
  }
  if (low.rfind("rtsp://", 0) == 0 || low.rfind("rtsps://", 0) == 0) return {"rtsp", t, t};
  if (low.rfind("sample:", 0) == 0)
    throw UserError("sample: sources are generated by the Python runtime; write one with "
                    "`python -c \"from runtime.sample import make_sample_clip; make_sample_clip('lowlight', 'clip.mp4')\"` "
                    "and pass the file");
  std::string path = t;
  if (low.rfind("file://", 0) == 0) path = strip_query(t.substr(7));
  else if (low.find("://") != std::string::npos) throw UserError("unsupported source '" + redact(t) + "': give " + accepted);
  if (path.rfind("/dev/video", 0) == 0) return {"v4l2", path, t};
  if (is_dir(path) || in(kImageExt, suffix(path))) return {"images", path, t};
  return {"file", path, t};
}

std::string gstreamer_pipeline(const SourceSpec& spec) {
  auto opt = [&spec](const std::string& key, int def) {
    const auto q = spec.uri.find('?');
    if (q == std::string::npos) return def;
    const std::string query = "&" + spec.uri.substr(q + 1);
    const auto p = query.find("&" + key + "=");
    if (p == std::string::npos) return def;
    const std::string v = query.substr(p + key.size() + 2, query.find('&', p + 1) - p - key.size() - 2);
    if (!is_digits(v)) throw UserError("bad option " + key + "='" + v + "' in " + spec.uri + ": expected an integer");
    return std::stoi(v);
  };
  const std::string tail =
      "video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! appsink drop=1 max-buffers=1";
  if (spec.kind == "csi") {
    const int w = opt("width", 1280), h = opt("height", 720), f = opt("fps", 30), fl = opt("flip", 0);
    if (fl < 0 || fl > 7) throw UserError("bad flip " + std::to_string(fl) + ": nvvidconv flip-method is 0..7");
    if (w <= 0 || h <= 0 || f <= 0) throw UserError("bad CSI mode: width, height and fps must be positive");
    return "nvarguscamerasrc sensor-id=" + spec.location + " ! video/x-raw(memory:NVMM),width=" + std::to_string(w) +
           ",height=" + std::to_string(h) + ",framerate=" + std::to_string(f) + "/1 ! nvvidconv flip-method=" +
           std::to_string(fl) + " ! " + tail;
  }
  if (spec.kind == "rtsp")
    return "rtspsrc location=\"" + spec.location + "\" latency=200 ! rtph264depay ! h264parse ! nvv4l2decoder ! nvvidconv ! " +
           tail;
  throw UserError("no GStreamer pipeline for a " + spec.kind + " source");
}

std::unique_ptr<Source> open_source(const SourceSpec& spec, bool loop) {
  if (spec.kind == "images") return std::make_unique<ImageFolderSource>(spec, loop);
  return std::make_unique<CaptureSource>(spec, loop);
}

ThreadedCapture::ThreadedCapture(Source& src, double stall_timeout_s)
    : src_(src), stall_timeout_s_(stall_timeout_s), capacity_(src.spec.live() ? 1 : 4) {
  thread_ = std::thread([this] { run(); });
}

ThreadedCapture::~ThreadedCapture() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ThreadedCapture::run() {
  const bool live = src_.spec.live();
  while (true) {
    {
      std::unique_lock<std::mutex> lk(mu_);
      if (!live) cv_.wait(lk, [this] { return stop_ || frames_.size() < capacity_; });
      if (stop_) return;
    }
    Frame f;
    const auto t0 = std::chrono::steady_clock::now();
    try {
      f.image = src_.read();
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lk(mu_);
      error_ = e.what();
      done_ = true;
      cv_.notify_all();
      return;
    }
    f.capture_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::lock_guard<std::mutex> lk(mu_);
    if (f.image.empty()) {
      done_ = true;
      cv_.notify_all();
      return;
    }
    if (live && frames_.size() >= capacity_) {  // keep the newest frame; the older one is dropped
      frames_.pop_front();
      ++dropped_;
    }
    frames_.push_back(std::move(f));
    cv_.notify_all();
  }
}

bool ThreadedCapture::get(Frame& out) {
  std::unique_lock<std::mutex> lk(mu_);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(stall_timeout_s_);
  while (frames_.empty() && !done_) {
    if (cv_.wait_until(lk, deadline) == std::cv_status::timeout && frames_.empty() && !done_)
      throw RunError(src_.spec.describe() + " stalled: no frame for " + std::to_string(static_cast<int>(stall_timeout_s_)) + " s");
  }
  if (frames_.empty()) {
    if (!error_.empty()) throw RunError(error_);
    return false;
  }
  out = std::move(frames_.front());
  frames_.pop_front();
  cv_.notify_all();
  return true;
}

void check_output_path(const std::string& path) {
  const std::string ext = suffix(path);
  const bool folder = is_dir(path) || path.back() == '/' || ext.empty();
  if (in(kVideoExt, ext)) {
    if (is_dir(path)) throw UserError("cannot write " + path + ": it is a folder");
  } else if (!folder) {
    throw UserError("unsupported output " + path + ": give a video file (.avi, .m4v, .mov, .mp4) or a folder");
  } else if (exists(path) && !is_dir(path)) {
    throw UserError("cannot write images to " + path + ": it is a file, not a folder");
  }
  // the nearest existing ancestor must be a writable folder (the sinks create the folders below it)
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  std::string parent = p;
  do {
    const auto slash = parent.find_last_of('/');
    parent = slash == std::string::npos ? "." : (slash == 0 ? "/" : parent.substr(0, slash));
  } while (!exists(parent) && parent != "." && parent != "/");
  if (!is_dir(parent)) throw UserError("cannot write " + path + ": " + parent + " is not a folder");
  if (::access(parent.c_str(), W_OK | X_OK) != 0) throw UserError("cannot write " + path + ": permission denied");
}

void make_dirs(const std::string& folder) {
  for (size_t i = 1; i <= folder.size(); ++i)
    if (i == folder.size() || folder[i] == '/') {
      const std::string part = folder.substr(0, i);
      if (!exists(part) && ::mkdir(part.c_str(), 0755) != 0) throw UserError("cannot create folder " + part);
    }
}

std::unique_ptr<Sink> open_file_sink(const std::string& path, double fps) {
  if (in(kVideoExt, suffix(path))) return std::make_unique<VideoFileSink>(path, fps);
  return std::make_unique<ImageFolderSink>(path);
}

std::unique_ptr<Sink> open_window_sink() { return std::make_unique<WindowSink>(); }

}  // namespace tvn
