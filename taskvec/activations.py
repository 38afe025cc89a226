"""Mean head activations per task (DESIGN §3): the raw material of task vectors.

For every attention block and every slot (CLS or canvas token) we average the heads'
output ``z = softmax(qkᵀ)v`` over in-context prompts of one task — example pair plus
query, the answer cell masked (the in-context layout). Sums are kept in float64 with a
count per slot, so a collection can stop and resume.

Resuming is exact: canvases come in fixed windows of ``batch`` (window ``i`` is built
from a generator seeded by ``(seed, i)`` and always run as one full batch), and the
per-canvas head outputs are added in canvas order. A run that stops after ``k``
canvases and resumes to ``n`` therefore gives bit-for-bit the result of one run to
``n``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from taskvec import geometry as G
from taskvec.errors import UserError, atomic_paths, check_finite
from taskvec.model import BlockId, MaeVQGAN
from taskvec.tasks import build_canvases, get_task

FORMAT = "taskvec-means/1"


def block_key(bid: BlockId) -> str:
    return str(bid)  # "enc/b07"


def parse_block_key(key: str) -> BlockId:
    stage, b = key.split("/")
    if stage not in ("enc", "dec") or not b.startswith("b"):
        raise ValueError(f"not a block key: {key!r}")
    return BlockId(stage, int(b[1:]))  # type: ignore[arg-type]


class RunningMeans:
    """Per block: sum of z per slot [197,H,Dh] (float64) and counts [197] (int64).

    ``info`` holds the provenance: model fingerprint and name, task, variant, seed,
    batch, n_seen, images source."""

    def __init__(self, sums: dict[BlockId, Tensor], counts: dict[BlockId, Tensor], info: dict[str, Any]) -> None:
        self.sums = sums
        self.counts = counts
        self.info = info

    @classmethod
    def empty(cls, model: MaeVQGAN, task: str, **info: Any) -> "RunningMeans":
        from taskvec.checkpoint import model_fingerprint

        sums, counts = {}, {}
        for bid in model.block_ids():
            cfg = model.cfg
            heads, dh = (cfg.num_heads, cfg.head_dim) if bid.stage == "enc" else (cfg.decoder_num_heads, cfg.decoder_head_dim)
            sums[bid] = torch.zeros(G.NUM_SLOTS, heads, dh, dtype=torch.float64)
            counts[bid] = torch.zeros(G.NUM_SLOTS, dtype=torch.int64)
        base = {"format": FORMAT, "task": task, "model_name": model.cfg.name,
                "model_fingerprint": model_fingerprint(model), "n_seen": 0}  # fmt: skip
        return cls(sums, counts, {**base, **info})

    # ------------------------------------------------------------------ state
    @property
    def task(self) -> str:
        return self.info["task"]

    @property
    def n_seen(self) -> int:
        return int(self.info["n_seen"])

    def update(self, heads: dict[BlockId, Tensor], layout: G.Layout) -> None:
        """Add recorded head outputs ``{bid: [B,N,H,Dh]}`` (``layout``'s sequence order).

        Canvases are added one after the other (fixed order, hence reproducible sums)."""
        for bid, z in heads.items():
            slots = torch.tensor(layout.slots(bid.stage))
            acc = self.sums[bid][slots]
            zz = z.detach().to("cpu", torch.float64)
            for j in range(zz.shape[0]):
                acc += zz[j]
            self.sums[bid][slots] = acc
            self.counts[bid][slots] += zz.shape[0]

    def means(self) -> dict[BlockId, Tensor]:
        """Mean z per block [197,H,Dh] float32 (0 where a slot was never seen)."""
        out = {}
        for bid, s in self.sums.items():
            c = self.counts[bid].clamp(min=1).to(torch.float64).view(-1, 1, 1)
            out[bid] = (s / c).float()
        return out

    def check_model(self, model: MaeVQGAN) -> None:
        from taskvec.checkpoint import model_fingerprint

        fp = model_fingerprint(model)
        if self.info.get("model_fingerprint") != fp:
            raise UserError(
                f"means were collected with model {str(self.info.get('model_fingerprint'))[:16]}…, not {fp[:16]}…"
            )

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> None:
        """``path`` (.safetensors: ``enc/b07/sum``, ``enc/b07/count``) + JSON sidecar, atomically."""
        from safetensors.torch import save_file

        path = Path(path)
        tensors = {}
        for bid in sorted(self.sums):
            tensors[f"{block_key(bid)}/sum"] = self.sums[bid].contiguous()
            tensors[f"{block_key(bid)}/count"] = self.counts[bid].contiguous()
        check_finite(tensors, f"refusing to write means {path}")
        with atomic_paths([path.with_suffix(".json"), path]) as (tmp_json, tmp):  # both or neither
            save_file(tensors, str(tmp), metadata={"info": json.dumps(self.info)})
            tmp_json.write_text(json.dumps(self.info, indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "RunningMeans":
        from safetensors.torch import load_file

        path = Path(path)
        if not path.is_file():
            raise UserError(f"means file {path} does not exist")
        try:
            tensors = load_file(str(path))
            side = path.with_suffix(".json")
            info = json.loads(side.read_text()) if side.is_file() else _metadata_info(path)
            sums, counts = {}, {}
            for key, t in tensors.items():
                bkey, kind = key.rsplit("/", 1)
                (sums if kind == "sum" else counts)[parse_block_key(bkey)] = t
            if info.get("format") != FORMAT or not sums or set(sums) != set(counts):
                raise ValueError("not a means file")
            check_finite(tensors, str(path))
        except UserError:
            raise
        except Exception as e:  # noqa: BLE001 — any decode failure is a bad file
            raise UserError(f"{path}: not a readable means file ({type(e).__name__})") from None
        return cls(sums, counts, info)


def _metadata_info(path: Path) -> dict[str, Any]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return json.loads((f.metadata() or {})["info"])


def window_generator(seed: int, window: int) -> torch.Generator:
    """The generator of canvas window ``window`` of a collection seeded ``seed``."""
    return torch.Generator().manual_seed((seed * 1_000_003 + window) % 2**63)


def sample_pairs(n_images: int, n: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Indices (example, query) [n] into a pool of ``n_images``, example ≠ query."""
    ex = torch.randint(0, n_images, (n,), generator=gen)
    q = (ex + 1 + torch.randint(0, max(1, n_images - 1), (n,), generator=gen)) % n_images
    return ex, q


@torch.inference_mode()
def collect_means(
    model: MaeVQGAN,
    task: str,
    images: Tensor,
    n_canvases: int,
    batch: int = 64,
    generator: torch.Generator | None = None,
    variant: str = "paper",
    masks: Tensor | None = None,
    resume: RunningMeans | None = None,
    source: str = "tensor",
    on_window: Callable[[RunningMeans], None] | None = None,
    progress: bool = True,
) -> RunningMeans:
    """Mean head outputs of ``model`` over ``n_canvases`` in-context prompts of ``task``.

    ``images`` [N≥2,3,111,111] in [0,1] (``masks`` [N,1,111,111] where the task needs
    them) are paired at random (example ≠ query) with shared task parameters. The
    base seed is drawn from ``generator`` (or taken from ``resume``, whose batch,
    variant and seed are reused; it continues from ``resume.n_seen``). ``on_window``
    is called after every window (for periodic saves)."""
    t = get_task(task)
    if images.shape[0] < 2:
        raise UserError("need at least 2 images to build example/query pairs")
    if t.needs_mask and masks is None:
        raise UserError(f"{task} needs masks")
    if resume is not None:
        resume.check_model(model)
        if resume.task != task:
            raise UserError(f"the means file is for {resume.task!r}, not {task!r}")
        rm = resume
        seed, batch, variant = int(rm.info["seed"]), int(rm.info["batch"]), rm.info["variant"]
    else:
        gen = generator or torch.Generator().manual_seed(0)
        seed = int(torch.randint(0, 2**62, (1,), generator=gen))
        rm = RunningMeans.empty(model, task, seed=seed, batch=batch, variant=variant, images=source,
                                layout="in-context", created=time.strftime("%Y-%m-%dT%H:%M:%S"))  # fmt: skip
    layout = G.get_layout("in-context")
    dev = next(model.parameters()).device
    start = rm.n_seen
    bar = tqdm(total=n_canvases, initial=min(start, n_canvases), desc=f"collect {task}", unit="canvas",
               disable=not progress)  # fmt: skip
    try:
        while rm.n_seen < n_canvases:
            w = rm.n_seen // batch
            gen = window_generator(seed, w)
            ex, q = sample_pairs(images.shape[0], batch, gen)
            exm, qm = (masks[ex], masks[q]) if masks is not None else (None, None)
            canvas, _, _ = build_canvases(t, images[ex], images[q], gen, variant, exm, qm, with_answer=False)  # type: ignore[arg-type]
            out = model(G.normalize(canvas).to(dev), layout, record=True)
            lo = rm.n_seen - w * batch
            hi = min(batch, n_canvases - w * batch)
            rm.update({k: v[lo:hi] for k, v in out.heads.items()}, layout)
            rm.info["n_seen"] = w * batch + hi
            bar.update(hi - lo)
            if on_window is not None:
                on_window(rm)
    finally:
        bar.close()
    return rm
