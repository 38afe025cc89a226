"""TorchScript vs dynamo ONNX exporter on the deployed task graph (the evidence for the
exporter choice in ``export.onnx_export``).

    python -m benchmarks.exporter_compare [--task lowlight] [--json benchmarks/results/exporter_compare_cpu.json]

For ``tiny``'s task graph with its shipped task vector, in one process: export with
``torch.onnx.export(dynamo=False)`` (what tvexport does) and ``dynamo=True`` (opset 18,
dynamic batch via ``torch.export.Dim``), each then simplified with onnxslim; per exporter:
export seconds, opset, nodes as exported and after onnxslim, LayerNormalization/GatherND/
Constant counts, whether the ``tv_*`` patch buffers survive as initializers, FP32 max-abs
and uint8 max difference against the PyTorch module on 4 fresh images, batch 1 and 4 runs,
and whether the module's eager forward still works after the export (tvexport's parity
check runs it).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from taskvec.errors import atomic_path


def _summary(path: Path, ref: list[np.ndarray], img: np.ndarray) -> dict:
    import onnx
    import onnxruntime as ort
    import onnxslim

    raw = onnx.load(str(path))
    lean = onnxslim.slim(raw)
    onnx.save(lean, str(path.with_suffix(".slim.onnx")))
    ops = Counter(n.op_type for n in lean.graph.node)
    sess = ort.InferenceSession(str(path.with_suffix(".slim.onnx")), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    out = sess.run(None, {name: img})
    one = sess.run(None, {name: img[:1]})[0]
    return {
        "opset": raw.opset_import[0].version, "nodes_exported": len(raw.graph.node), "nodes_after_onnxslim": len(lean.graph.node),
        "LayerNormalization": ops["LayerNormalization"], "GatherND": ops["GatherND"], "Constant": ops["Constant"],
        "patch_initializers": sum(1 for i in lean.graph.initializer if "tv" in i.name and ("mul" in i.name or "add" in i.name)),
        "max_abs_float": float(np.abs(out[1] - ref[1]).max()),
        "max_abs_uint8": int(np.abs(out[0].astype(int) - ref[0].astype(int)).max()),
        "batch_1_and_4": [list(one.shape), list(out[0].shape)],
    }


def measure(task: str = "lowlight") -> dict:
    import torch

    from export.check import random_images
    from export.onnx_export import _module_and_args, _trace
    from export.spec import FLOAT_OUTPUT, SPEC
    from taskvec.vectors.resolved import resolve_task

    deployed = resolve_task(task, "tiny", variant="realistic" if task == "lowlight" else "paper")
    net, tv = deployed.model, deployed.taskvector
    module, args, _ = _module_and_args("task", net, tv, "answer", 0)
    module.eval()
    img = random_images(4, 2)

    def eager() -> list[np.ndarray]:
        with torch.no_grad():
            return [r.numpy().copy() for r in module(torch.from_numpy(img))]

    ref = eager()
    out: dict = {"task": task, "model": "tiny", "torch": torch.__version__}
    with tempfile.TemporaryDirectory(prefix="tvexp-") as tmp:
        d = Path(tmp)
        t = time.perf_counter()
        _trace(module, args, d / "ts.onnx", [SPEC.input_name], [SPEC.input_name])
        out["torchscript"] = {"export_s": round(time.perf_counter() - t, 2), **_summary(d / "ts.onnx", ref, img)}
        t = time.perf_counter()
        torch.onnx.export(module, args, str(d / "dyn.onnx"), dynamo=True, input_names=[SPEC.input_name],
                          output_names=[SPEC.output_name, FLOAT_OUTPUT], opset_version=18, optimize=True,
                          dynamic_shapes=({0: torch.export.Dim("N", min=1, max=64)},), verbose=False)
        out["dynamo"] = {"export_s": round(time.perf_counter() - t, 2), **_summary(d / "dyn.onnx", ref, img)}
    try:
        after = eager()
        out["eager_forward_after_dynamo"] = {"ok": True, "max_abs_vs_before": float(np.abs(after[1] - ref[1]).max())}
    except Exception as e:  # noqa: BLE001 — the finding itself
        out["eager_forward_after_dynamo"] = {"ok": False, "error": f"{type(e).__name__}: {' '.join(str(e).split())[:200]}"}
    from benchmarks.env import capture_environment

    out["environment"] = capture_environment()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.exporter_compare", description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="lowlight")
    ap.add_argument("--json", default="benchmarks/results/exporter_compare_cpu.json")
    args = ap.parse_args(argv)
    rep = measure(args.task)
    with atomic_path(Path(args.json)) as tmp:
        tmp.write_text(json.dumps(rep, indent=2) + "\n")
    print(json.dumps({k: v for k, v in rep.items() if k != "environment"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
