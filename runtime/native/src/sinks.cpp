// Sinks (runtime/sinks.py): video file written under a hidden name and renamed, image folder,
// window; the --output check made before any work.
#include <cstdio>
#include <opencv2/highgui.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/videoio.hpp>
#include <sys/stat.h>
#include <unistd.h>

#include "common.hpp"
#include "fs_util.hpp"
#include "io.hpp"

namespace tvn {
namespace {

using namespace fs;

class VideoFileSink final : public Sink {
 public:
  VideoFileSink(std::string path, double fps) : path_(std::move(path)), fps_(fps) {
    const auto slash = path_.find_last_of('/');
    dir_ = slash == std::string::npos ? "." : path_.substr(0, slash);
    const std::string base = slash == std::string::npos ? path_ : path_.substr(slash + 1);
    make_dirs(dir_);
    const std::string ext = suffix(path_);
    fourcc_ = ext == ".avi" ? cv::VideoWriter::fourcc('M', 'J', 'P', 'G') : cv::VideoWriter::fourcc('m', 'p', '4', 'v');
    codec = ext == ".avi" ? "mjpg" : "mp4v";  // OpenCV's own writers (the Python runtime's fallback; no H.264 here)
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
