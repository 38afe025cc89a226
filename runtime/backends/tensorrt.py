"""TensorRT backend: a serialized engine run through :class:`export.trt_session.TrtSession`
— the one session class the benchmarks and the engine checks use too.

``tensorrt`` is imported lazily (STYLE §6). The session refuses an engine built for another
TensorRT version, GPU, task or model, or whose tensors do not match its graph; device
buffers come from the CUDA runtime through ctypes (no torch) and are reused while the batch
size does not change.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from export.metadata import GraphRequest
from export.spec import SPEC
from runtime.backends import BackendBase, BackendError
from taskvec.errors import UserError


class TensorRTBackend(BackendBase):
    """``TensorRTBackend(path, request=None)``: ``request`` (default: a task graph with the
    runtime's I/O) is what the engine's graph must be."""

    name = "tensorrt"

    def __init__(self, path: str | os.PathLike[str], request: GraphRequest | None = None) -> None:
        super().__init__(SPEC)
        from export.trt import INSTALL_HINT, tensorrt_available
        from export.trt_session import TrtSession

        if not tensorrt_available():
            raise BackendError(f"TensorRT is not installed: {INSTALL_HINT}")
        self.path = Path(path)
        if not self.path.is_file():
            raise BackendError(f"engine {self.path} does not exist")
        try:
            self.session = TrtSession.open(self.path, request or GraphRequest(graph="task", spec=SPEC))
        except UserError as e:
            raise BackendError(str(e)) from None
        self.spec = self.session.metadata.io_spec if self.session.metadata else SPEC

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """uint8 [N,111,111,3] BGR → uint8 [N,111,111,3] BGR."""
        batch = self.check_batch(batch)
        try:
            return self.session.infer({self.spec.input_name: batch})[self.spec.output_name]
        except UserError as e:
            raise BackendError(str(e)) from None

    def close(self) -> None:
        if getattr(self, "session", None) is not None:
            self.session.close()
            self.session = None
        super().close()
