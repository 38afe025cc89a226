"""TensorRT engine vs ONNX Runtime on the same exported graph (needs TensorRT + a GPU).

Exports the task graph (or takes ``--onnx``), builds an engine per precision, runs both
on the same random images and reports the uint8 difference (max, mean, share of pixels
off by more than one grey level) and the median latency of each, measured in one run.

    python -m benchmarks.trt_compare --task lowlight --precision fp16 fp32 --batch 4
    python -m benchmarks.trt_compare --onnx exported/lowlight.onnx

Without TensorRT it prints the trtexec command for the target and exits with status 3.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def _median_ms(fn, iters: int, warmup: int = 5) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def compare(onnx_path: Path, precisions: list[str], batch: int, iters: int, out_dir: Path) -> dict:
    from export import trt
    from export.check import random_images
    from export.metadata import read_props
    from export.spec import SPEC
    from export.trt_session import TrtSession

    import onnxruntime as ort

    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
    sess = ort.InferenceSession(str(onnx_path), providers=providers)
    img = random_images(batch, 2024)
    feeds = {SPEC.input_name: img}
    ref = sess.run([SPEC.output_name], feeds)[0]
    result = {
        "onnx": onnx_path.name, "metadata": read_props(onnx_path).to_dict(), "batch": batch, "gpu": trt.gpu_name(),
        "tensorrt": trt.tensorrt_module().__version__, "ort_provider": sess.get_providers()[0],
        "ort_ms": _median_ms(lambda: sess.run([SPEC.output_name], feeds), iters), "engines": {},
    }
    for prec in precisions:
        engine = trt.build_engine(onnx_path, precision=prec, batch_max=max(batch, 8), out_dir=out_dir, log=print)
        with TrtSession.open(engine) as runner:
            out = runner.infer(feeds)[SPEC.output_name]
            diff = np.abs(out.astype(np.int16) - ref.astype(np.int16))
            result["engines"][prec] = {
                "engine": engine.name, "max_abs": int(diff.max()), "mean_abs": round(float(diff.mean()), 4),
                "share_above_1": round(float((diff > 1).mean()), 6),
                "trt_ms_end_to_end": _median_ms(lambda: runner.infer(feeds), iters),
            }
        print(f"{prec}: max |TRT − ORT| = {result['engines'][prec]['max_abs']} grey levels, "
              f"mean {result['engines'][prec]['mean_abs']}; TRT {result['engines'][prec]['trt_ms_end_to_end']:.2f} ms "
              f"vs ORT ({result['ort_provider']}) {result['ort_ms']:.2f} ms")
    return result


def main(argv: list[str] | None = None) -> None:
    from export.trt import PRECISIONS

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", default="lowlight")
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--taskvec", default=None, help="task-vector file (default: shipped; 'random' for random means)")
    ap.add_argument("--onnx", default=None, help="an exported graph instead of exporting")
    ap.add_argument("--precision", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--out", default="exported")
    ap.add_argument("--json", default=None, help="result file (default: benchmarks/results/trt_compare_<gpu>.json)")
    args = ap.parse_args(argv)

    from export import trt
    from taskvec.errors import UserError

    out = Path(args.out)
    try:
        if args.onnx:
            onnx_path = Path(args.onnx)
        else:
            from export.onnx_export import export_task, random_taskvector
            from taskvec.model.checkpoint import load_model

            model = load_model(args.model)
            tv = random_taskvector(model, args.task) if args.taskvec == "random" else args.taskvec
            onnx_path = export_task(args.task, model, tv, out, log=print).onnx_path
        if not trt.tensorrt_available():
            from export.trtexec import trtexec_hint

            print(trtexec_hint(onnx_path, args.precision[0], max(args.batch, 8)))
            print(f"error: TensorRT is not installed ({trt.INSTALL_HINT})", file=sys.stderr)
            sys.exit(3)
        result = compare(onnx_path, args.precision, args.batch, args.iters, out)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    dst = Path(args.json) if args.json else RESULTS / f"trt_compare_{trt.slug(result['gpu'])}.json"
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {dst}")


if __name__ == "__main__":
    main()
