"""Every export is checked (DESIGN §5, STYLE §5): the ONNX checker, the graph rules,
then ONNX Runtime against the PyTorch module on fresh random images.

The float answer (before uint8 quantisation) must agree within ``bound`` (1e-4 in
FP32) and the uint8 output within one grey level; the comparison is printed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx

from export.graph_edit import graph_problems, op_counts
from export.spec import FLOAT_OUTPUT, SPEC
from taskvec.errors import UserError

if TYPE_CHECKING:
    from torch import nn

FP32_BOUND = 1e-4
UINT8_BOUND = 1


@dataclass
class CheckReport:
    batch: int
    max_abs_float: float  # float answer in [0,1], ORT vs PyTorch
    max_abs_uint8: int  # grey levels, ORT vs PyTorch
    bound: float
    layernorm_nodes: int
    seconds: float

    def line(self) -> str:
        return (
            f"check: ONNX Runtime vs PyTorch on {self.batch} random images: max-abs {self.max_abs_float:.2e} "
            f"(bound {self.bound:.0e}), uint8 max diff {self.max_abs_uint8} grey level(s)"
        )

    def to_dict(self) -> dict:
        return asdict(self)


def random_images(batch: int, seed: int) -> np.ndarray:
    """uint8 [batch,111,111,3] BGR: smooth random colour fields plus noise (fresh per seed)."""
    import torch

    gen = np.random.default_rng(seed)
    coarse = gen.uniform(0, 255, size=(batch, 8, 8, SPEC.channels)).astype(np.float32)
    t = torch.from_numpy(coarse).permute(0, 3, 1, 2)
    smooth = torch.nn.functional.interpolate(t, size=(SPEC.height, SPEC.width), mode="bilinear", align_corners=False)
    img = smooth.permute(0, 2, 3, 1).numpy() + gen.normal(0, 12, size=(batch, SPEC.height, SPEC.width, SPEC.channels))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def check_model_file(path: str | Path) -> None:
    """ONNX checker (by path, so models with external data work) + the graph rules."""
    try:
        onnx.checker.check_model(str(path), full_check=False)
    except Exception as e:
        raise UserError(f"export: ONNX checker failed on {Path(path).name}: {e}") from None
    model = onnx.load(str(path), load_external_data=False)
    problems = graph_problems(model)
    if problems:
        raise UserError(f"export: forbidden ops in {Path(path).name}: {', '.join(problems[:5])}")


def ort_session(path: str | Path, providers: list[str] | None = None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=providers or ["CPUExecutionProvider"])


def compare_with_torch(
    path: str | Path,
    module: nn.Module,
    extra_feeds: dict[str, np.ndarray] | None = None,
    example_inputs: tuple[str, ...] = (),
    batch: int = 4,
    seed: int = 1234,
    bound: float = FP32_BOUND,
) -> CheckReport:
    """Run the ONNX file at ``path`` (with the float debug output) in ONNX Runtime and
    ``module`` in PyTorch on the same fresh images; raise UserError above the bounds.

    ``example_inputs`` names further uint8 image inputs (the in-context examples);
    ``extra_feeds`` are fixed float inputs passed positionally after the images."""
    import time

    import torch

    t0 = time.perf_counter()
    names = (SPEC.input_name, *example_inputs)
    images = {n: random_images(batch, seed + i) for i, n in enumerate(names)}
    feeds = {**images, **(extra_feeds or {})}
    sess = ort_session(path)
    out_u8, out_f = sess.run([SPEC.output_name, FLOAT_OUTPUT], feeds)
    args = [torch.from_numpy(images[n]) for n in names] + [torch.from_numpy(v) for v in (extra_feeds or {}).values()]
    with torch.no_grad():
        ref_u8, ref_f = module(*args)
    err = float(np.abs(out_f - ref_f.numpy()).max())
    err_u8 = int(np.abs(out_u8.astype(np.int16) - ref_u8.numpy().astype(np.int16)).max())
    ln = op_counts(onnx.load(str(path), load_external_data=False))["LayerNormalization"]
    report = CheckReport(batch, err, err_u8, bound, ln, time.perf_counter() - t0)
    if out_u8.dtype != np.uint8 or out_u8.shape != (batch, SPEC.height, SPEC.width, SPEC.channels):
        raise UserError(f"export: output is {out_u8.dtype} {out_u8.shape}, expected uint8 [N,111,111,3]")
    if not err <= bound or err_u8 > UINT8_BOUND:
        raise UserError(f"export: {report.line()} — above the bound")
    return report


def file_sha256(path: str | Path) -> str:
    """sha256 hex digest of a file's bytes (the runtime's :func:`runtime.cache.file_digest`)."""
    from runtime.cache import file_digest

    return file_digest(path)
