// What tvexport writes next to a graph, read in ONE place (the Python side's owner is
// export/spec.py + export/onnx_export.py): the JSON sidecar `T.json` next to `T.onnx`, and
// for engines `T.trt<ver>.<gpu>.<prec>.engine.json` whose "metadata" holds the same record.
// Nothing here repeats a value the sidecar holds (I/O names, cell size, task).
#pragma once

#include <map>
#include <string>

namespace tvn {

/// The graph's I/O contract (export/spec.py IOSpec): input uint8 [N,H,W,C] BGR NHWC → output same.
struct IOSpec {
  std::string input_name;
  std::string output_name;
  int height = 0;
  int width = 0;
  int channels = 0;
  std::string layout;
  std::string color;
  std::string dtype;
};

/// One deployed task graph (sidecar keys of the same names).
struct GraphInfo {
  std::string path;              // the .onnx or .engine file
  std::string sidecar_path;      // the JSON it was read from
  std::string task;              // "lowlight" | "inpainting"
  std::string graph;             // "task" (the runtime refuses in-context / switchable graphs)
  std::string model_name;
  std::string model_fingerprint;
  std::string taskvector_fingerprint;
  std::string site_count;        // kept as text: compared with metadata_props values
  std::string onnx_sha256;       // files.onnx_sha256 (may be empty)
  IOSpec io;
  // engines only (the engine sidecar's own keys)
  std::string trt_version, gpu, gpu_slug, precision;
  int batch_max = 0;
};

/// `T.json` next to `T.onnx` → GraphInfo. UserError (one line) when the graph or its sidecar is
/// missing or unreadable, or the sidecar lacks what the runtime needs.
GraphInfo read_onnx_sidecar(const std::string& onnx_path);

/// `X.engine.json` next to `X.engine` → GraphInfo (TensorRT version, GPU, precision filled in).
GraphInfo read_engine_sidecar(const std::string& engine_path);

/// The checks tvrun makes before it runs a graph for `task` (export/check.py verify_task_graph):
/// the task and graph kind, an IOSpec of uint8 NHWC BGR. UserError otherwise.
void check_for_task(const GraphInfo& info, const std::string& task);

/// The graph's own metadata_props (keys with the "taskvec." prefix removed) against its sidecar:
/// task, model and task-vector fingerprints and the site count must agree. UserError otherwise.
void check_metadata_matches(const GraphInfo& info, const std::map<std::string, std::string>& meta);

/// Prefix of tvexport's metadata_props keys (export/spec.py META_PREFIX).
extern const char* const kMetaPrefix;

}  // namespace tvn
