// tvrun-native: the native `tvrun` (runtime/cli.py) — source → predictor → sink, timed per stage.
// Exit codes as in Python: 0 done, 2 bad input (one `error:` line), 1 a source or sink failed
// mid-run (the output keeps the frames written so far, or is removed), 130 interrupted.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <malloc.h>
#include <opencv2/core/utility.hpp>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <optional>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include "backend.hpp"
#include "common.hpp"
#include "io.hpp"
#include "predictor.hpp"
#include "timing.hpp"

namespace {

using namespace tvn;

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }

const char* kHelp = R"(usage: tvrun-native (--camera N | --source URI) --task lowlight|inpainting (--onnx FILE | --engine FILE)
                    [--headless] [--output PATH] [--frames N] [--loop] [--stats JSON]
                    [--mask FILE | --mask-rect x,y,w,h] [--tiles RxC] [--gain luma|rgb]
                    [--transfer denoise|temporal|gain] [--noise-k K] [--guide-blur PX] [--lift LO,HI]
                    [--temporal-alpha A] [--overlay] [--threads N] [--ort-spin] [--cv-threads N] [--warmup N]

The native tvrun: runs a graph exported by tvexport (its JSON sidecar gives the task, the I/O
names and the cell size) on every frame of a camera, a stream, a video file or an image folder.

  --camera N          V4L2 camera index (same as --source N)
  --source URI        0, /dev/videoN, csi://N (GStreamer), rtsp://..., a video file, an image folder
  --task T            lowlight | inpainting (must match the graph's sidecar)
  --onnx FILE         exported graph (ONNX Runtime CPU backend)
  --engine FILE       TensorRT engine (tvexport --engine; needs a build with TensorRT)
  --headless          no window
  --output PATH       video file (.mp4/.m4v/.mov/.avi) or an image folder (frame_000001.png, ...)
  --frames N          stop after N frames
  --loop              replay a file or folder source forever (stop with --frames or Ctrl-C)
  --stats JSON        FPS, drops and per-stage latency, in the Python tvrun's schema
  --mask FILE         in-painting hole: image, white = hole (resized to the frame)
  --mask-rect x,y,w,h in-painting hole as a rectangle in pixels
  --tiles RxC         low-light: RxC overlapping tiles in one batch
  --gain luma|rgb     low-light: one gain for all channels or one per channel [rgb]
  --transfer MODE     low-light full-resolution transfer: denoise (default) | temporal | gain
  --noise-k K, --guide-blur PX, --lift LO,HI, --temporal-alpha A
                      low-light denoise/temporal parameters (tvrun --help)
  --overlay           also draw the FPS overlay into --output (always in the window)
  --threads N         ONNX Runtime intra-op threads [one per core]
  --ort-spin          let ONNX Runtime's threads spin-wait between runs (its default; off here because the
                      frame's pre/postprocess needs the same cores right after each graph call)
  --cv-threads N      OpenCV's worker threads for the pre/postprocessing [OpenCV's default]
  --warmup N          run the graph N times on a blank batch before the first frame (benchmarks)

Examples:
  tvrun-native --source clip.mp4 --task lowlight --onnx out/lowlight.onnx --headless --output out/bright.mp4
  tvrun-native --camera 0 --task lowlight --engine lowlight.trt10.3.0.orin.fp16.engine
  tvrun-native --source frames/ --task inpainting --onnx out/inpainting.onnx --mask-rect 280,200,80,60 --headless --output out/fill/
)";

struct Options {
  std::optional<std::string> camera, source, onnx, engine, output, stats, mask, mask_rect, tiles, lift;
  std::string task, gain = "rgb", transfer = "denoise";
  std::optional<double> noise_k, guide_blur, temporal_alpha;
  bool headless = false, loop = false, overlay = false, ort_spin = false;
  long frames = 0;
  int threads = 0, warmup = 0, cv_threads = -1;
};

double to_number(const std::string& opt, const std::string& v) {
  try {
    size_t used = 0;
    const double d = std::stod(v, &used);
    if (used != v.size()) throw std::invalid_argument(v);
    return d;
  } catch (const std::exception&) {
    throw UserError("bad " + opt + " '" + v + "': expected a number");
  }
}

Options parse_args(int argc, char** argv) {
  Options o;
  std::vector<std::string> a(argv + 1, argv + argc);
  for (size_t i = 0; i < a.size(); ++i) {
    const std::string& k = a[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= a.size()) throw UserError("option " + k + " needs a value");
      return a[++i];
    };
    if (k == "-h" || k == "--help") {
      std::cout << kHelp;
      std::exit(0);
    } else if (k == "--camera") o.camera = val();
    else if (k == "--source") o.source = val();
    else if (k == "--task") o.task = val();
    else if (k == "--onnx") o.onnx = val();
    else if (k == "--engine") o.engine = val();
    else if (k == "--output") o.output = val();
    else if (k == "--stats") o.stats = val();
    else if (k == "--mask") o.mask = val();
    else if (k == "--mask-rect") o.mask_rect = val();
    else if (k == "--tiles") o.tiles = val();
    else if (k == "--lift") o.lift = val();
    else if (k == "--gain") o.gain = val();
    else if (k == "--transfer") o.transfer = val();
    else if (k == "--noise-k") o.noise_k = to_number(k, val());
    else if (k == "--guide-blur") o.guide_blur = to_number(k, val());
    else if (k == "--temporal-alpha") o.temporal_alpha = to_number(k, val());
    else if (k == "--headless") o.headless = true;
    else if (k == "--loop") o.loop = true;
    else if (k == "--overlay") o.overlay = true;
    else if (k == "--ort-spin") o.ort_spin = true;
    else if (k == "--frames") {
      const double f = to_number(k, val());
      if (f < 1 || f != static_cast<long>(f)) throw UserError("--frames must be a positive integer");
      o.frames = static_cast<long>(f);
    } else if (k == "--cv-threads") {
      o.cv_threads = static_cast<int>(to_number(k, val()));
    } else if (k == "--warmup") {
      o.warmup = static_cast<int>(to_number(k, val()));
    } else if (k == "--threads") {
      o.threads = static_cast<int>(to_number(k, val()));
    } else {
      throw UserError("unknown option " + k + " (tvrun-native --help)");
    }
  }
  return o;
}

LowLightParams lowlight_params(const Options& o) {
  LowLightParams p = LowLightParams::for_mode(o.transfer);
  if (o.noise_k) p.noise_k = *o.noise_k;
  if (o.guide_blur) p.guide_blur = *o.guide_blur;
  if (o.temporal_alpha) p.temporal_alpha = *o.temporal_alpha;
  if (o.lift) {
    const auto comma = o.lift->find(',');
    if (comma == std::string::npos) throw UserError("bad --lift '" + *o.lift + "': expected LO,HI, e.g. 1.2,1.7");
    p.lift_lo = to_number("--lift", o.lift->substr(0, comma));
    p.lift_hi = to_number("--lift", o.lift->substr(comma + 1));
  }
  p.validate();
  return p;
}

void check_stats_path(const std::string& path) {
  const auto slash = path.find_last_of('/');
  const std::string parent = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  struct stat st {};
  if (::stat(parent.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw UserError("cannot write --stats " + path + ": " + parent + " is not a folder");
  if (::access(parent.c_str(), W_OK | X_OK) != 0) throw UserError("cannot write --stats " + path + ": permission denied");
}

void draw_overlay(cv::Mat& img, double fps, const std::map<std::string, double>& ms, const std::string& backend) {
  std::vector<std::string> lines;
  char buf[96];
  std::snprintf(buf, sizeof buf, "%5.1f FPS  %s", fps, backend.c_str());
  lines.emplace_back(buf);
  for (const auto& [k, v] : ms) {
    std::snprintf(buf, sizeof buf, "%-8s %6.1f ms", k.c_str(), v);
    lines.emplace_back(buf);
  }
  const double scale = std::max(0.3, std::min(0.6, img.rows / 1000.0));
  const int line_h = static_cast<int>(22 * scale / 0.6);
  cv::Mat roi = img(cv::Rect(0, 0, std::min(img.cols, static_cast<int>(260 * scale / 0.6)),
                             std::min(img.rows, line_h * static_cast<int>(lines.size()) + 6)));
  roi *= 0.4;
  for (size_t i = 0; i < lines.size(); ++i)
    cv::putText(img, lines[i], cv::Point(4, line_h * static_cast<int>(i + 1)), cv::FONT_HERSHEY_SIMPLEX, scale,
                cv::Scalar(255, 255, 255), 1, cv::LINE_AA);
}

std::string keep_partial(Sink* sink, const std::optional<std::string>& output) {
  if (!sink || !output) return "no output file";
  if (sink->frames_written == 0) {
    sink->abort();
    return "nothing was written to " + *output;
  }
  try {
    sink->close();
  } catch (const std::exception& e) {
    sink->abort();
    return *output + " could not be finalised and was removed (" + e.what() + ")";
  }
  return "kept the " + std::to_string(sink->frames_written) + " frames written so far in " + *output;
}

int run(const Options& o) {
  // --- everything that can be refused is refused before a frame is read or a file made
  if (o.camera.has_value() == o.source.has_value()) throw UserError("give exactly one of --camera N or --source URI");
  if (o.task != "lowlight" && o.task != "inpainting")
    throw UserError(o.task.empty() ? "--task is required (lowlight or inpainting)"
                                   : "tvrun has no predictor for task '" + o.task + "'; choose lowlight or inpainting");
  if (o.mask && o.mask_rect) throw UserError("give --mask or --mask-rect, not both");
  if (o.task != "inpainting" && (o.mask || o.mask_rect)) throw UserError("--mask/--mask-rect are for --task inpainting");
  if (o.task != "lowlight" && o.tiles) throw UserError("--tiles is for --task lowlight");
  if (o.task == "inpainting" && !o.mask && !o.mask_rect)
    throw UserError("--task inpainting needs --mask FILE or --mask-rect x,y,w,h");
  if (o.onnx.has_value() == o.engine.has_value()) throw UserError("give --onnx FILE or --engine FILE (one of them)");
  if (o.gain != "luma" && o.gain != "rgb") throw UserError("bad --gain '" + o.gain + "': choose luma or rgb");
  if (o.output) check_output_path(*o.output);
  if (o.stats) check_stats_path(*o.stats);
  const auto tiles = parse_tiles(o.tiles.value_or(""));
  const LowLightParams ll = lowlight_params(o);
  std::optional<std::array<int, 4>> rect;
  if (o.mask_rect) rect = parse_rect(*o.mask_rect);
  cv::Mat hole;
  if (o.mask) {
    try {
      check_image_file(*o.mask);
      hole = cv::imread(*o.mask, cv::IMREAD_GRAYSCALE);
    } catch (const RunError& e) {
      throw UserError("cannot read mask: " + std::string(e.what()));
    } catch (const cv::Exception&) {
      hole.release();
    }
    if (hole.empty()) throw UserError("cannot read mask " + *o.mask + " (missing or not an image)");
    hole = hole > 127;
  }
  if (o.cv_threads >= 0) cv::setNumThreads(o.cv_threads);
  const SourceSpec spec = parse_source(o.camera ? *o.camera : *o.source);
  std::unique_ptr<Backend> backend = o.onnx ? open_onnx(*o.onnx, o.task, o.threads, o.ort_spin) : open_engine(*o.engine, o.task);
  std::unique_ptr<Source> src = open_source(spec, o.loop);
  std::cout << "backend: " << backend->name() << " — " << backend->reason() << std::endl;
  if (o.warmup > 0) {
    const cv::Mat blank(backend->cell_height(), backend->cell_width(), CV_8UC3, cv::Scalar::all(0));
    for (int i = 0; i < o.warmup; ++i) backend->infer(blank);
  }

  std::unique_ptr<Predictor> predictor;
  if (o.task == "lowlight")
    predictor = std::make_unique<LowLightEnhancer>(*backend, tiles, o.gain, ll);
  else
    predictor = std::make_unique<Inpainter>(*backend, hole, rect);

  // --- the loop
  Stats stats;
  stats.rss_start_mb = rss_mb();
  StageTimer timer;
  std::unique_ptr<Sink> file_sink = o.output ? open_file_sink(*o.output, src->fps) : nullptr;
  std::unique_ptr<Sink> window = o.headless ? nullptr : open_window_sink();
  long n = 0;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    ThreadedCapture cap(*src);
    ThreadedCapture::Frame frame;
    while (o.frames == 0 || n < o.frames) {
      if (g_stop) {
        stats.stopped_by = "interrupt";
        break;
      }
      bool got;
      {
        StageTimer::Scope s(&timer, "wait");
        got = cap.get(frame);
      }
      if (!got) break;
      timer.record("capture", frame.capture_ms);
      cv::Mat out = (*predictor)(frame.image, &timer);
      int key = -1;
      {
        StageTimer::Scope s(&timer, "output");
        if (file_sink) {
          if (o.overlay) {
            cv::Mat shown = out.clone();
            draw_overlay(shown, timer.fps(), timer.last_ms(), backend->name());
            file_sink->write(shown);
          } else {
            file_sink->write(out);
          }
        }
        if (window) {
          cv::Mat shown = out.clone();
          draw_overlay(shown, timer.fps(), timer.last_ms(), backend->name());
          window->write(shown);
          key = window->poll_key();
        }
      }
      ++n;
      timer.tick();
      double total = frame.capture_ms;  // this frame's own stages (queueing excluded), as tvbench sums them
      const auto last = timer.last_ms();
      for (const char* st : {"preprocess", "infer", "postprocess", "output"}) {
        const auto it = last.find(st);
        if (it != last.end()) total += it->second;  // a stage this frame did not time counts 0
      }
      stats.frame_ms.push_back(total);
      if (key == 27 || key == 'q' || key == 'Q') {
        stats.stopped_by = "key";
        break;
      }
    }
    if (o.frames != 0 && n >= o.frames) stats.stopped_by = "frame limit";
    stats.dropped = cap.dropped();
  } catch (const RunError& e) {
    throw RunError(std::string(e.what()) + "; " + keep_partial(file_sink.get(), o.output));
  } catch (...) {
    if (file_sink) file_sink->abort();
    throw;
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (file_sink) file_sink->close();
  if (window) window->close();
  stats.frames = n;
  stats.fps = wall > 0 ? static_cast<double>(n) / wall : 0.0;
  stats.wall_s = wall;
  stats.backend = backend->name();
  stats.source = spec.describe();
  stats.width = src->size.width;
  stats.height = src->size.height;
  for (const char* k : {"capture", "preprocess", "infer", "postprocess", "output", "wait"})
    for (auto& st : timer.summary())
      if (st.first == k) stats.stages_ms.push_back(st);
  stats.rss_end_mb = rss_mb();
  stats.has_output = o.output.has_value() && n > 0;
  stats.output = o.output.value_or("");
  stats.output_codec = file_sink && n > 0 ? file_sink->codec : "";
  stats.binary_backends = built_backends();
  if (o.stats) write_atomic(*o.stats, stats.to_json());
  std::cout << stats.summary_line() << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Frame-sized buffers are allocated and freed every frame: keep them on the heap instead of
  // fresh mmap()s, whose page faults cost more than the arithmetic (the Python runtime reuses
  // its buffers for the same reason, runtime/guided.py reuse_buffer).
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  // stderr carries the one `error:` line: OpenCV's and FFmpeg's own logging stays quiet unless asked for
  ::setenv("OPENCV_FFMPEG_LOGLEVEL", "-8", 0);
  if (!std::getenv("OPENCV_LOG_LEVEL")) cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  try {
    return run(parse_args(argc, argv));
  } catch (const UserError& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 2;
  } catch (const RunError& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 1;
  } catch (const cv::Exception& e) {
    std::cerr << "error: OpenCV: " << UserError::one_line(e.err) << std::endl;
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << UserError::one_line(e.what()) << std::endl;
    return 1;
  }
}
