"""PyTorch reference backend: the exported wrapper run eagerly.

It runs :class:`export.wrapper.ZeroShotGraph` — the very module ``tvexport`` traces, with
the task vector as its constants, the graph's pre-processing (uint8 BGR → RGB [0,1] → the
query cell of a white canvas → ImageNet normalisation), the patched zero-shot forward, the
same VQ decode (``decode``/``halo``, default as exported) and the post-processing (rounded
uint8 BGR) — so the torch, ONNX Runtime and TensorRT backends compute the same graph.
CUDA when available, else CPU; FP16 on CUDA through autocast.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from export.spec import SPEC
from runtime.backends import BackendBase, BackendError
from taskvec import geometry as G
from taskvec.model.mae_vqgan import MaeVQGAN


class TorchBackend(BackendBase):
    """``TorchBackend(graph, device=None, fp16=False)``: ``graph`` is an export wrapper
    (uint8 [N,111,111,3] BGR in → (uint8 output, float answer)); :meth:`zero_shot` builds the
    task graph from a model and a task vector."""

    def __init__(self, graph: nn.Module, device: str | torch.device | None = None, fp16: bool = False) -> None:
        super().__init__(SPEC)
        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise BackendError("the torch backend was asked for CUDA but torch.cuda is not available")
        self.fp16 = bool(fp16 and dev.type == "cuda")
        self.device = dev
        self.graph = graph.to(dev).eval()
        self.name = f"torch:{dev.type}" + ("-fp16" if self.fp16 else "")

    @classmethod
    def zero_shot(cls, model: MaeVQGAN, taskvector=None, *, decode: G.DecodeKind = "answer", halo: int = 1,
                  device: str | torch.device | None = None, fp16: bool = False) -> "TorchBackend":
        """The task graph of ``model`` patched with ``taskvector`` (None: unpatched zero-shot)."""
        from export.wrapper import ZeroShotGraph

        mul, add = (taskvector.mul, taskvector.add) if taskvector is not None else ({}, {})
        return cls(ZeroShotGraph(model, mul, add, decode=decode, halo=halo), device=device, fp16=fp16)

    @torch.inference_mode()
    def infer(self, batch: np.ndarray) -> np.ndarray:
        """uint8 [N,111,111,3] BGR → uint8 [N,111,111,3] BGR."""
        batch = self.check_batch(batch)
        x = torch.from_numpy(batch).to(self.device)
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.fp16, cache_enabled=False):
            out = self.graph(x)[0]
        return np.ascontiguousarray(out.cpu().numpy())

    def close(self) -> None:
        self.graph = None  # type: ignore[assignment]
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        super().close()
