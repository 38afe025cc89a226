"""PyTorch reference backend: the model with the task's shipped task vector, zero-shot.

The same computation the exported graph folds into constants: uint8 BGR → RGB [0,1] →
query cell of a white canvas → ImageNet normalisation → patched zero-shot forward → the
answer cell → uint8 BGR (rounded). CUDA when available, else CPU; fp16 on CUDA optional.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from export.spec import SPEC
from runtime.backends import BackendBase, BackendError
from taskvec import geometry as G
from taskvec.model.mae_vqgan import BlockId, MaeVQGAN, Patch


def task_patches(task: str, model: MaeVQGAN, path: str | None = None) -> dict[BlockId, Patch]:
    """The shipped (or given) task vector of ``task`` as per-block patches."""
    try:
        from taskvec.vectors.taskvector import load_taskvector
    except ImportError as e:
        raise BackendError(f"no task vectors available ({e}); the torch backend needs taskvec.vectors.taskvector") from None
    return load_taskvector(task, model, path).patches()


class TorchBackend(BackendBase):
    """``TorchBackend(model, patches, device=None, fp16=False)``; ``from_spec("tiny", task)``."""

    def __init__(
        self,
        model: MaeVQGAN,
        patches: Mapping[BlockId, Patch] | None,
        device: str | torch.device | None = None,
        fp16: bool = False,
    ) -> None:
        super().__init__(SPEC)
        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise BackendError("the torch backend was asked for CUDA but torch.cuda is not available")
        self.fp16 = bool(fp16 and dev.type == "cuda")
        self.dtype = torch.float16 if self.fp16 else torch.float32
        self.device = dev
        self.model = model.to(dev, self.dtype).eval()
        self.patches = {
            k: Patch(p.mul.to(dev, self.dtype), p.add.to(dev, self.dtype)) for k, p in (patches or {}).items()
        }
        self.layout = G.get_layout("zero-shot")
        self.name = f"torch:{dev.type}" + ("-fp16" if self.fp16 else "")

    @classmethod
    def from_spec(cls, model: str, task: str, device: str | None = None, fp16: bool = False,
                  taskvec: str | None = None) -> "TorchBackend":
        from taskvec.model.checkpoint import load_model

        m = load_model(model)
        return cls(m, task_patches(task, m, taskvec), device=device, fp16=fp16)

    @torch.inference_mode()
    def infer(self, batch: np.ndarray) -> np.ndarray:
        """uint8 [N,111,111,3] BGR → uint8 [N,111,111,3] BGR."""
        batch = self.check_batch(batch)
        x = torch.from_numpy(batch[..., ::-1].copy()).to(self.device)
        q = x.permute(0, 3, 1, 2).to(self.dtype).div_(255.0)
        canvas = G.normalize(G.make_canvas(None, None, q))
        answer = self.model(canvas, self.layout, patches=self.patches).answer
        out = (answer.float().clamp(0, 1) * 255.0).round_().to(torch.uint8)
        return np.ascontiguousarray(out.permute(0, 2, 3, 1).cpu().numpy()[..., ::-1])

    def close(self) -> None:
        self.model = None  # type: ignore[assignment]
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        super().close()
