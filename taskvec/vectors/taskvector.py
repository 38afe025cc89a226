"""The task-vector file: per-block ``mul``/``add`` constants for the zero-shot layout.

A task vector says, for one task and one model, which head outputs of the zero-shot
forward are replaced by the task's mean activation (DESIGN §3):
``z' = z ⊙ mul + add`` before the block's output projection. ``mul`` and ``add`` are
[N,C] float32 in the zero-shot layout's sequence order (N = 50 encoder / 99 decoder
positions, C = heads·head_dim); only blocks with a patched site are stored.

On disk: ``NAME.safetensors`` with keys ``enc/b07/mul``, ``enc/b07/add`` … and a JSON
sidecar ``NAME.json`` (task, model, fingerprint, method, granularity, sites, meta).
``export/`` and ``runtime/`` read this format; keep the API stable.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import Tensor

from taskvec.errors import UserError, atomic_paths, check_finite
from taskvec.model.mae_vqgan import BlockId, MaeVQGAN, Patch
from taskvec.vectors.shipped import TASKVECTOR_DIR, default_taskvector_path, runtime_taskvector_path  # noqa: F401
from taskvec.vectors.sites import Site, SiteSpace

if TYPE_CHECKING:
    from taskvec.vectors.activations import RunningMeans

FORMAT = "taskvec-taskvector/1"


def _block_key(bid: BlockId) -> str:
    return str(bid)


@dataclass
class TaskVector:
    task: str
    model_name: str
    model_fingerprint: str
    method: str
    granularity: str
    sites: list[Site]  # selected sites
    mul: dict[BlockId, Tensor]  # [N,C] float32, zero-shot layout; only blocks with a patched site
    add: dict[BlockId, Tensor]
    meta: dict = field(default_factory=dict)  # site probabilities, search config, data, metrics, created

    def patches(self, device=None) -> dict[BlockId, Patch]:
        """Per-block :class:`Patch` with ``mul``/``add`` [1,N,C] on ``device``."""
        return {
            bid: Patch(self.mul[bid][None].to(device), self.add[bid][None].to(device)) for bid in sorted(self.mul)
        }

    @property
    def num_sites(self) -> int:
        return len(self.sites)

    def header(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "task": self.task,
            "model_name": self.model_name,
            "model_fingerprint": self.model_fingerprint,
            "method": self.method,
            "granularity": self.granularity,
            "num_sites": self.num_sites,
            "sites": [str(s) for s in self.sites],
            "meta": self.meta,
        }

    def save(self, path: str | Path, extra: dict[Path, Callable[[Path], Any]] | None = None) -> None:
        """``path`` (.safetensors) + ``path.with_suffix('.json')`` as one artifact: both appear
        (the vector last) or neither. ``extra`` maps more files of the artifact (the search
        curve) to functions that write them to a given temporary path."""
        from safetensors.torch import save_file

        path = Path(path)
        if path.suffix != ".safetensors":
            raise UserError(f"{path}: a task-vector file must end in .safetensors")
        tensors = {}
        for bid in sorted(self.mul):
            tensors[f"{_block_key(bid)}/mul"] = self.mul[bid].detach().float().cpu().contiguous()
            tensors[f"{_block_key(bid)}/add"] = self.add[bid].detach().float().cpu().contiguous()
        check_finite(tensors, f"refusing to write task vector {path}")
        head = self.header()
        small = {k: v for k, v in head.items() if k != "meta"}
        extra = extra or {}
        with atomic_paths([*extra, path.with_suffix(".json"), path]) as tmps:
            for write, tmp in zip(extra.values(), tmps):
                write(tmp)
            save_file(tensors, str(tmps[-1]), metadata={"taskvector": json.dumps(small)})
            tmps[-2].write_text(json.dumps(head, indent=2, allow_nan=False) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "TaskVector":
        """Read a task-vector file; one-line :class:`UserError` when missing or corrupt."""
        from safetensors import safe_open
        from safetensors.torch import load_file

        path = Path(path)
        if not path.is_file():
            raise UserError(f"task-vector file {path} does not exist")
        try:
            tensors = load_file(str(path))
            side = path.with_suffix(".json")
            if side.is_file():
                head = json.loads(side.read_text())
            else:
                with safe_open(str(path), "pt") as f:
                    head = json.loads((f.metadata() or {})["taskvector"])
            if head.get("format") != FORMAT:
                raise ValueError("format")
            mul, add = {}, {}
            for key, t in tensors.items():
                bkey, kind = key.rsplit("/", 1)
                {"mul": mul, "add": add}[kind][BlockId.parse(bkey)] = t.float()
            if set(mul) != set(add) or any(mul[b].shape != add[b].shape or mul[b].ndim != 2 for b in mul):
                raise ValueError("mul/add mismatch")
            check_finite(tensors, str(path))
            tv = cls(
                task=head["task"], model_name=head["model_name"], model_fingerprint=head["model_fingerprint"],
                method=head["method"], granularity=head["granularity"],
                sites=[Site.parse(s) for s in head["sites"]], mul=mul, add=add, meta=head.get("meta", {}),
            )  # fmt: skip
        except UserError:
            raise
        except Exception as e:  # noqa: BLE001 — any decode failure is a bad file
            raise UserError(f"{path}: not a readable task-vector file ({type(e).__name__})") from None
        tv.meta.setdefault("path", str(path))
        return tv

    def validate(self, task: str, model: MaeVQGAN, fingerprint: str) -> None:
        """One-line UserError unless this vector is for ``task`` and these weights
        (``fingerprint``), its blocks exist in ``model`` with its widths, every tensor has
        the zero-shot layout's token count and every value is finite. The one check of a
        task vector's identity (:func:`taskvec.vectors.resolved.resolve_task` runs it once)."""
        from taskvec import geometry as G

        where = self.meta.get("path", f"{self.model_name}-{self.task}")
        if self.task != task:
            raise UserError(f"task vector {where} is for {self.task!r}, not {task!r}")
        if self.model_fingerprint != fingerprint:
            raise UserError(f"task vector {where} was made for model {self.model_name} {self.model_fingerprint[:16]}…, "
                            f"not {model.cfg.name} {fingerprint[:16]}…")
        layout, cfg = G.get_layout("zero-shot"), model.cfg
        known = set(model.block_ids())
        for bid in sorted(set(self.mul) | set(self.add)):
            if bid not in known or bid not in self.mul or bid not in self.add:
                raise UserError(f"task vector {where}: block {bid} does not fit model {cfg.name}")
            width = cfg.embed_dim if bid.stage == "enc" else cfg.decoder_embed_dim
            n = layout.num_enc if bid.stage == "enc" else layout.num_dec
            for kind, t in (("mul", self.mul[bid]), ("add", self.add[bid])):
                if tuple(t.shape) != (n, width):
                    raise UserError(f"task vector {where}: {kind} of block {bid} is {list(t.shape)}, the zero-shot "
                                    f"layout of {cfg.name} needs [{n}, {width}] token positions × width")
                if not bool(t.isfinite().all()):
                    raise UserError(f"task vector {where}: {kind} of block {bid} holds NaN/Inf")

    def check_model(self, model: MaeVQGAN) -> None:
        """:meth:`validate` against ``model``'s current weights, for this vector's task."""
        from taskvec.model.checkpoint import model_fingerprint

        self.validate(self.task, model, model_fingerprint(model))


def load_taskvector(task: str, model: MaeVQGAN, path: str | os.PathLike | None = None, variant: str = "paper",
                    fingerprint: str | None = None) -> TaskVector:
    """Load ``path`` (default: the shipped ``variant`` vector of ``task`` for ``model``) and check it
    (``fingerprint``: the model's, when the caller has it; else it is computed)."""
    if path is None:
        p = default_taskvector_path(task, model.cfg.name, variant)
        if not p.is_file():
            raise UserError(
                f"no shipped task vector for {task!r} on model {model.cfg.name!r} ({p.name}); "
                f"make one with `taskvec search` and pass it with --taskvec"
            )
    else:
        p = Path(path)
    from taskvec.model.checkpoint import model_fingerprint

    tv = TaskVector.load(p)
    tv.validate(task, model, fingerprint or model_fingerprint(model))
    return tv


def make_taskvector(model: MaeVQGAN, means: "RunningMeans", sites: list[Site], selection: Tensor, **meta: Any) -> TaskVector:
    """Task vector patching the sites where ``selection`` [S] is 1 with ``means``.

    ``meta`` may name ``method`` and ``granularity``; the rest goes to ``meta``."""
    fp = means.check_model(model)  # the weights hashed once
    sel = selection.reshape(-1).float()
    if sel.numel() != len(sites):
        raise ValueError(f"selection has {sel.numel()} entries for {len(sites)} sites")
    method = str(meta.pop("method", "reinforce"))
    granularity = str(meta.pop("granularity", _granularity(sites)))
    chosen = [s for s, v in zip(sites, sel.tolist()) if v > 0.5]
    space = SiteSpace(model.cfg, sites)
    patches = space.patches(sel[None], means.means())
    meta.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%S"))
    meta.setdefault("means", {k: means.info.get(k) for k in ("n_seen", "images", "variant", "seed")})
    return TaskVector(
        task=means.task, model_name=model.cfg.name, model_fingerprint=fp, method=method,
        granularity=granularity, sites=chosen, mul={b: p.mul[0].clone() for b, p in patches.items()},
        add={b: p.add[0].clone() for b, p in patches.items()}, meta=meta,
    )  # fmt: skip


def _granularity(sites: list[Site]) -> str:
    if sites and all(s.region == "all" for s in sites):
        return "head"
    if any(s.region.startswith("slot:") for s in sites):
        return "token"
    return "region"
