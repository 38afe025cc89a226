"""Multiply-accumulates counted from the exported ONNX graphs (DESIGN §5).

For a model, export (without the numerical check, weights random where named
``random:NAME``) and count, per image (batch 1):

- ``task``: the deployed zero-shot graph, answer-only VQGAN decode;
- ``task-full-decode``: the reference zero-shot pipeline, which still decodes the full
  14×14 canvas;
- ``in-context-full-decode``: the one-shot prompt as the reference code runs it (the
  baseline of the ratios);
- ``in-context``: the one-shot prompt with answer-only decode.

MACs come from shapes (ONNX Runtime's symbolic shape inference, weights not loaded):
MatMul/Gemm (weight matmuls and attention matmuls separately), Conv, ConvTranspose.
Elementwise ops, norms and softmax are not counted.

    python -m benchmarks.macs                      # vit_large (random weights) and tiny
    python -m benchmarks.macs --models random:micro --out /tmp/macs
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx

VARIANTS = {
    # name: (graph, decode)
    "task": ("task", "answer"),
    "task-full-decode": ("task", "full"),
    "in-context": ("in-context", "answer"),
    "in-context-full-decode": ("in-context", "full"),
}
BASELINE = "in-context-full-decode"
RESULTS = Path(__file__).parent / "results"


def _weights_as_inputs(model: onnx.ModelProto, max_elements: int = 4096) -> None:
    """Turn large (or external-data) initializers into graph inputs of the same type and
    shape, so shape inference never reads weights; small ones (shape constants) stay."""
    keep, moved = [], []
    for t in model.graph.initializer:
        n = int(np.prod(t.dims)) if t.dims else 1
        if n > max_elements or t.data_location == onnx.TensorProto.EXTERNAL:
            moved.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
        else:
            keep.append(t)
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    model.graph.input.extend(moved)


def _shapes(model: onnx.ModelProto) -> dict[str, list[int | None]]:
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    for i in model.graph.input:
        dims = i.type.tensor_type.shape.dim
        if dims and dims[0].dim_param:  # the batch
            dims[0].dim_value = 1  # per image
    inferred = SymbolicShapeInference.infer_shapes(model, auto_merge=True)
    out: dict[str, list[int | None]] = {}
    for v in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        out[v.name] = [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
    for t in inferred.graph.initializer:
        out[t.name] = list(t.dims)
    for n in inferred.graph.node:
        if n.op_type == "Constant":
            out[n.output[0]] = list(n.attribute[0].t.dims)
    return out


def count_macs(path: str | Path) -> dict[str, int]:
    """MACs per image by op type for the ONNX file at ``path`` (weights not loaded)."""
    model = onnx.load(str(path), load_external_data=False)
    weights = {t.name for t in model.graph.initializer}
    _weights_as_inputs(model)
    shapes = _shapes(model)
    macs: dict[str, int] = defaultdict(int)
    for node in model.graph.node:
        op = node.op_type
        if op not in ("MatMul", "Gemm", "Conv", "ConvTranspose"):
            continue
        ins = [shapes.get(x) for x in node.input]
        y = shapes.get(node.output[0])
        if y is None or any(d is None for d in y) or ins[0] is None or ins[1] is None:
            raise RuntimeError(f"{Path(path).name}: unresolved shape at {node.name}")
        if op == "MatMul":
            k = ins[0][-1]
            key = "MatMul (weights)" if node.input[1] in weights else "MatMul (attention)"
            macs[key] += int(np.prod(y)) * k
        elif op == "Gemm":
            trans_a = next((a.i for a in node.attribute if a.name == "transA"), 0)
            k = ins[0][0] if trans_a else ins[0][1]
            macs["Gemm"] += int(np.prod(y)) * k
        elif op == "Conv":
            w = ins[1]  # [Cout, Cin/groups, kh, kw]
            macs["Conv"] += int(np.prod(y)) * int(np.prod(w[1:]))
        else:
            w = ins[1]  # [Cin, Cout/groups, kh, kw]
            macs["ConvTranspose"] += int(np.prod(ins[0])) * int(np.prod(w[1:]))
    macs["total"] = sum(v for k, v in macs.items() if k != "total")
    return dict(macs)


def _taskvector(model, task: str):
    from export.onnx_export import random_taskvector

    return random_taskvector(model, task)


def measure(model_spec: str, task: str = "inpainting", out_dir: str | Path | None = None) -> dict:
    """Export every variant of ``model_spec`` and count its MACs. Returns a result dict."""
    from export.onnx_export import compare_decodes, export_task
    from taskvec.model.checkpoint import load_model

    model = load_model(model_spec)
    tv = _taskvector(model, task)
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="macs-", dir=out_dir) as tmp:
        for name, (graph, decode) in VARIANTS.items():
            if model.cfg.head != "vq" and name.endswith("full-decode"):
                continue
            t0 = time.perf_counter()
            res = export_task(task, model, tv, tmp, graph=graph, decode=decode, check=False,
                              filename=f"{task}.{name}.onnx")
            rows[name] = {"macs": count_macs(res.onnx_path), "export_s": round(time.perf_counter() - t0, 1)}
            print(f"{model_spec:>18} {name:<24} {rows[name]['macs']['total'] / 1e9:8.2f} GMAC")
    base = rows.get(BASELINE) or rows["in-context"]
    for r in rows.values():
        r["ratio_vs_baseline"] = round(r["macs"]["total"] / base["macs"]["total"], 4)
    return {
        "model": model_spec,
        "head": model.cfg.head,
        "baseline": BASELINE if BASELINE in rows else "in-context",
        "variants": rows,
        "decode_comparison": compare_decodes(model, "in-context", halo=1),
    }


def to_markdown(results: list[dict]) -> str:
    lines = ["# MACs per image (batch 1), counted from the exported ONNX graphs", ""]
    for res in results:
        lines += [f"## {res['model']} ({res['head']} head) — ratios vs `{res['baseline']}`", ""]
        kinds = sorted({k for r in res["variants"].values() for k in r["macs"] if k != "total"})
        lines.append("| graph | " + " | ".join(kinds) + " | total GMAC | ratio |")
        lines.append("|---" * (len(kinds) + 3) + "|")
        for name, r in res["variants"].items():
            cells = [f"{r['macs'].get(k, 0) / 1e9:.3f}" for k in kinds]
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {r['macs']['total'] / 1e9:.3f} | {r['ratio_vs_baseline']:.3f} |")
        dc = res.get("decode_comparison")
        if dc:
            lines += ["", f"Each VQGAN decode of the {dc['layout']} answer vs the full-canvas (reference) decode, "
                      f"{dc['batch']} random prompt(s), grey levels (`export.onnx_export.compare_decodes`):", "",
                      "| decode | decode GMAC | total GMAC | mean abs | max abs | PSNR dB |", "|---|---|---|---|---|---|"]
            lines += [f"| {k} | {v['decode_gmac']:.3f} | {v['total_gmac']:.3f} | {v['mean_abs']:.2f} | {v['max_abs']:.1f} "
                      f"| {v['psnr_db']:.2f} |" for k, v in dc["decodes"].items()]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["random:vit_large", "tiny"])
    ap.add_argument("--task", default="inpainting")
    ap.add_argument("--out", default=str(RESULTS), help="folder for macs.json and macs.md")
    ap.add_argument("--tmp", default=None, help="folder for the temporary exports (vit_large: ~1.5 GB each)")
    args = ap.parse_args(argv)
    results = [measure(m, args.task, args.tmp) for m in args.models]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from taskvec.errors import atomic_path

    with atomic_path(out / "macs.json") as tmp:
        tmp.write_text(json.dumps(results, indent=2) + "\n")
    with atomic_path(out / "macs.md") as tmp:
        tmp.write_text(to_markdown(results))
    print(to_markdown(results))


if __name__ == "__main__":
    main()
