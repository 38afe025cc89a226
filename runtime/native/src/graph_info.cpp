#include "graph_info.hpp"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <sys/stat.h>

#include "common.hpp"

namespace tvn {

const char* const kMetaPrefix = "taskvec.";

int round_half_even(double x) { return static_cast<int>(std::nearbyint(x)); }

namespace {

using nlohmann::json;

bool is_file(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string base_name(const std::string& p) {
  auto i = p.find_last_of('/');
  return i == std::string::npos ? p : p.substr(i + 1);
}

json load_json(const std::string& path, const std::string& what) {
  std::ifstream f(path);
  if (!f) throw UserError(path + ": cannot read " + what);
  try {
    json j = json::parse(f);
    if (!j.is_object()) throw UserError(path + ": not a readable " + what + " (not an object)");
    return j;
  } catch (const json::exception&) {
    throw UserError(path + ": not a readable " + what + " (invalid JSON)");
  }
}

std::string as_text(const json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return "";
  const json& v = j[key];
  return v.is_string() ? v.get<std::string>() : v.dump();
}

void fill_record(GraphInfo& g, const json& j) {
  g.task = as_text(j, "task");
  g.graph = j.contains("graph") ? as_text(j, "graph") : "task";
  g.model_name = as_text(j, "model_name");
  g.model_fingerprint = as_text(j, "model_fingerprint");
  g.taskvector_fingerprint = as_text(j, "taskvector_fingerprint");
  g.site_count = as_text(j, "site_count");
  if (j.contains("files") && j["files"].is_object()) g.onnx_sha256 = as_text(j["files"], "onnx_sha256");
  if (!j.contains("io_spec") || !j["io_spec"].is_object())
    throw UserError(g.sidecar_path + ": no io_spec (not written by tvexport?); re-export the graph with tvexport");
  const json& io = j["io_spec"];
  try {
    g.io.input_name = io.at("input_name").get<std::string>();
    g.io.output_name = io.at("output_name").get<std::string>();
    g.io.height = io.at("height").get<int>();
    g.io.width = io.at("width").get<int>();
    g.io.channels = io.at("channels").get<int>();
    g.io.layout = io.value("layout", "NHWC");
    g.io.color = io.value("color", "BGR");
    g.io.dtype = io.value("dtype", "uint8");
  } catch (const json::exception&) {
    throw UserError(g.sidecar_path + ": incomplete io_spec; re-export the graph with tvexport");
  }
}

}  // namespace

GraphInfo read_onnx_sidecar(const std::string& onnx_path) {
  if (!is_file(onnx_path)) throw UserError("ONNX graph " + onnx_path + " does not exist");
  GraphInfo g;
  g.path = onnx_path;
  std::string stem = onnx_path;
  if (stem.size() > 5 && stem.compare(stem.size() - 5, 5, ".onnx") == 0) stem.resize(stem.size() - 5);
  g.sidecar_path = stem + ".json";
  if (!is_file(g.sidecar_path))
    throw UserError(onnx_path + ": its sidecar " + base_name(g.sidecar_path) +
                    " is missing (tvexport writes both; copy them together)");
  json j = load_json(g.sidecar_path, "sidecar");
  if (g.task = as_text(j, "task"); g.task.empty() || as_text(j, "model_fingerprint").empty())
    throw UserError(onnx_path + ": not a graph exported by tvexport (no taskvec metadata in its sidecar)");
  fill_record(g, j);
  return g;
}

GraphInfo read_engine_sidecar(const std::string& engine_path) {
  if (!is_file(engine_path)) throw UserError("engine " + engine_path + " does not exist");
  struct stat st {};
  ::stat(engine_path.c_str(), &st);
  if (st.st_size == 0) throw UserError("engine " + engine_path + " is empty");
  GraphInfo g;
  g.path = engine_path;
  g.sidecar_path = engine_path + ".json";
  if (!is_file(g.sidecar_path))
    throw UserError(base_name(engine_path) + ": no sidecar " + base_name(g.sidecar_path) +
                    "; rebuild the engine with tvexport --engine");
  json j = load_json(g.sidecar_path, "engine sidecar");
  if (!j.contains("metadata") || !j["metadata"].is_object())
    throw UserError(g.sidecar_path + ": no graph metadata in the engine sidecar; rebuild it with tvexport --engine");
  fill_record(g, j["metadata"]);
  g.trt_version = as_text(j, "tensorrt");
  g.gpu = as_text(j, "gpu");
  g.gpu_slug = as_text(j, "gpu_slug");
  g.precision = as_text(j, "precision");
  g.batch_max = j.value("batch_max", 1);
  return g;
}

void check_for_task(const GraphInfo& g, const std::string& task) {
  if (g.task != task) throw UserError(g.path + " is the '" + g.task + "' graph, not '" + task + "'");
  if (g.graph != "task")
    throw UserError(g.path + " is a " + g.graph + " graph; tvrun runs task graphs (tvexport --graph task)");
  const IOSpec& io = g.io;
  if (io.dtype != "uint8" || io.layout != "NHWC" || io.color != "BGR" || io.channels != 3 || io.height <= 0 ||
      io.width <= 0)
    throw UserError(g.sidecar_path + ": unsupported I/O (" + io.dtype + " " + io.layout + " " + io.color + " " +
                    std::to_string(io.channels) + " channels); tvrun-native runs uint8 NHWC BGR graphs");
}

void check_metadata_matches(const GraphInfo& g, const std::map<std::string, std::string>& meta) {
  if (meta.find("task") == meta.end() || meta.find("model_fingerprint") == meta.end())
    throw UserError(g.path + ": not a graph exported by tvexport (no taskvec metadata); export one with `tvexport --task " +
                    g.task + "`");
  const std::pair<const char*, const std::string*> keys[] = {{"task", &g.task},
                                                             {"model_fingerprint", &g.model_fingerprint},
                                                             {"taskvector_fingerprint", &g.taskvector_fingerprint},
                                                             {"site_count", &g.site_count}};
  for (const auto& [key, side] : keys) {
    auto it = meta.find(key);
    std::string in_graph = it == meta.end() ? "" : it->second;
    if (in_graph != *side)
      throw UserError(g.sidecar_path + " does not describe " + base_name(g.path) + ": " + key + " '" +
                      side->substr(0, 20) + "' in the sidecar, '" + in_graph.substr(0, 20) + "' in the graph");
  }
}

}  // namespace tvn
