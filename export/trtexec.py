"""The ``trtexec`` command equivalent to :func:`export.trt.build_engine`, for machines
without TensorRT's Python API: one line that pastes as is (``shlex.join``), with the
builder's engine and timing-cache names and the flags of the TensorRT it targets (10.x:
weak typing with LayerNorm/softmax pinned to FP32; 11.x: no precision flags, the FP16 graph).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from export.metadata import read_props
from export.spec import SPEC, IOSpec
from export.trt import (Precision, _major, engine_filename, fp16_graph_path, gpu_name, tensorrt_available,
                        tensorrt_module, timing_cache_path)
from taskvec.errors import UserError

TRTEXEC_JETSON = "/usr/src/tensorrt/bin/trtexec"


def _shape_arg(name: str, n: int, spec: IOSpec) -> str:
    return f"{name}:{n}x{spec.height}x{spec.width}x{spec.channels}"


def trtexec_path() -> str:
    """``trtexec`` on PATH, else JetPack's ``/usr/src/tensorrt/bin/trtexec`` where it exists,
    else the bare name (the target's PATH decides)."""
    return shutil.which("trtexec") or (TRTEXEC_JETSON if Path(TRTEXEC_JETSON).is_file() else "trtexec")


def fp32_layer_names(onnx_path: str | Path) -> list[str]:
    """Names of the graph's LayerNormalization and Softmax nodes (TensorRT's ONNX parser names
    its layers after them): the layers :func:`build_engine` pins to FP32 under 10.x fp16.
    Names a trtexec layer spec cannot carry (``:`` or ``,``) are left out."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    return [n.name for n in model.graph.node
            if n.op_type in ("LayerNormalization", "Softmax") and n.name and not set(n.name) & {":", ","}]


@dataclass(frozen=True)
class TrtexecPlan:
    """What :func:`trtexec_plan` decided: the command (argv), the TensorRT major it targets,
    the files it reads (exist) and writes (their folders exist), and notes for the user."""

    argv: list[str]
    major: int
    reads: list[Path]
    writes: list[Path]
    notes: list[str]

    @property
    def line(self) -> str:
        """The command as one line a POSIX shell runs as is (``shlex.join``)."""
        import shlex

        return shlex.join(self.argv)


def trtexec_plan(onnx_path: str | Path, precision: Precision = "fp16", batch_max: int = 8,
                 trt_version: str | None = None, gpu: str | None = None, spec: IOSpec = SPEC,
                 workspace_gib: float = 4.0) -> TrtexecPlan:
    """The ``trtexec`` equivalent of :func:`build_engine` for the installed TensorRT, or,
    without it, for ``trt_version`` (a full version or just the major, ``"10"``/``"11"``;
    default 10, what JetPack 6 ships).

    - 10.x fp32: ``--stronglyTyped`` on the FP32 graph (as the builder does);
    - 10.x fp16: ``--fp16 --precisionConstraints=obey`` with the graph's LayerNorm and softmax
      layers named in ``--layerPrecisions``/``--layerOutputTypes`` as FP32;
    - 11.x: no precision flags exist (every network is strongly typed): fp16 reads the FP16
      graph ``T.fp16.onnx`` (:mod:`export.fp16`, LayerNorm/softmax kept FP32), which
      :func:`write_trtexec_inputs` writes beside the FP32 one.

    Engine and timing-cache names are the builder's (:func:`engine_filename`,
    :func:`timing_cache_path`); the GPU is the one found here (``gpu_name``) unless given.
    Only the image inputs get a dynamic batch (the switchable graph's task-vector inputs
    are fixed-size)."""
    onnx_path = Path(onnx_path)
    if trt_version is None:
        trt_version = tensorrt_module().__version__ if tensorrt_available() else "10"
    major = _major(trt_version)
    if major < 10:
        raise UserError(f"TensorRT {trt_version}: this product builds with the 10.x API or later")
    gpu = gpu or gpu_name()
    meta = read_props(onnx_path) if onnx_path.is_file() else None
    examples = meta is not None and meta.graph == "in-context" and not meta.baked  # baked: the pair is constants
    names = [spec.input_name] + ([spec.example_in_name, spec.example_out_name] if examples else [])
    opt = max(1, min(4, batch_max))
    shapes = {k: ",".join(_shape_arg(n, b, spec) for n in names) for k, b in (("min", 1), ("opt", opt), ("max", batch_max))}
    engine = onnx_path.with_name(engine_filename(onnx_path, trt_version, gpu, precision))
    cache = timing_cache_path(onnx_path.parent, trt_version, gpu)
    source = fp16_graph_path(onnx_path) if (major >= 11 and precision == "fp16") else onnx_path
    notes: list[str] = []
    argv = [trtexec_path(), f"--onnx={source}", f"--saveEngine={engine}",
            f"--minShapes={shapes['min']}", f"--optShapes={shapes['opt']}", f"--maxShapes={shapes['max']}",
            f"--memPoolSize=workspace:{int(workspace_gib * 1024)}M", f"--timingCacheFile={cache}"]
    if major >= 11:
        notes.append(f"every network strongly typed, the precision comes from {source.name}")
    elif precision == "fp32":
        argv.append("--stronglyTyped")
    else:
        pinned = fp32_layer_names(onnx_path) if onnx_path.is_file() else []
        argv += ["--fp16", "--precisionConstraints=obey"]
        if pinned:
            spec_fp32 = ",".join(f"{n}:fp32" for n in pinned)
            argv += [f"--layerPrecisions={spec_fp32}", f"--layerOutputTypes={spec_fp32}"]
            notes.append(f"{len(pinned)} LayerNorm/softmax layers pinned to FP32")
        else:
            notes.append("no named LayerNorm/softmax nodes found to pin to FP32")
    return TrtexecPlan(argv, major, [source], [engine, cache], notes)


def write_trtexec_inputs(plan: TrtexecPlan, onnx_path: str | Path) -> None:
    """Write the files ``plan`` reads that do not exist yet (the FP16 graph for 11.x)."""
    for path in plan.reads:
        if not path.is_file() and path == fp16_graph_path(onnx_path):
            from export.fp16 import convert_file

            convert_file(onnx_path, path)


def trtexec_hint(onnx_path: str | Path, precision: Precision = "fp16", batch_max: int = 8,
                 trt_version: str | None = None, gpu: str | None = None, spec: IOSpec = SPEC) -> str:
    """The trtexec command of :func:`trtexec_plan` as one pasteable line."""
    return trtexec_plan(onnx_path, precision, batch_max, trt_version, gpu, spec).line
