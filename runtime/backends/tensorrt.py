"""TensorRT backend: a serialized engine run with ``execute_async_v3`` and named tensors.

``tensorrt`` is imported lazily (STYLE §6); the engine is loaded through
``export.trt.load_engine``, which refuses an engine built for another TensorRT version,
GPU or graph. Device buffers are torch CUDA tensors (no pycuda needed); the output buffer
is reused while the batch size does not change.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from export.spec import SPEC
from runtime.backends import BackendBase, BackendError


class TensorRTBackend(BackendBase):
    name = "tensorrt"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(SPEC)
        try:
            import tensorrt as trt  # noqa: F401  (lazy: only this backend needs it)
        except ImportError:
            raise BackendError(
                "TensorRT is not installed: on Jetson it comes with JetPack; on x86 pip install tensorrt"
            ) from None
        import torch

        if not torch.cuda.is_available():
            raise BackendError("the TensorRT backend needs a CUDA GPU (torch.cuda is not available)")
        try:
            from export.trt import load_engine
        except ImportError as e:
            raise BackendError(f"cannot load engines: export.trt is unavailable ({e})") from None
        self.path = Path(path)
        if not self.path.is_file():
            raise BackendError(f"engine {self.path} does not exist")
        engine = load_engine(str(self.path))  # raises on a mismatched engine
        if isinstance(engine, (bytes, bytearray, memoryview)):
            self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
            engine = self._runtime.deserialize_cuda_engine(bytes(engine))
        if engine is None:
            raise BackendError(f"TensorRT could not deserialize {self.path}")
        self.engine = engine
        self.context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if self.spec.input_name not in inputs or self.spec.output_name not in outputs:
            raise BackendError(
                f"{self.path}: engine I/O ({', '.join(inputs)} → {', '.join(outputs)}) does not match the runtime's "
                f"({self.spec.input_name} → {self.spec.output_name}); rebuild it with tvexport --engine"
            )
        self._torch = torch
        self.device = torch.device("cuda")
        self.stream = torch.cuda.Stream()
        self._in = None
        self._out = None
        self.name = "tensorrt"

    def _buffers(self, n: int):
        torch = self._torch
        shape = (n, self.spec.height, self.spec.width, self.spec.channels)
        if self._in is None or self._in.shape[0] != n:
            self._in = torch.empty(shape, dtype=torch.uint8, device=self.device)
            self._out = torch.empty(shape, dtype=torch.uint8, device=self.device)
            if not self.context.set_input_shape(self.spec.input_name, shape):
                raise BackendError(f"{self.path}: batch {n} is outside the engine's optimisation profile")
            self.context.set_tensor_address(self.spec.input_name, self._in.data_ptr())
            self.context.set_tensor_address(self.spec.output_name, self._out.data_ptr())
        return self._in, self._out

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """uint8 [N,111,111,3] BGR → uint8 [N,111,111,3] BGR."""
        batch = self.check_batch(batch)
        torch = self._torch
        d_in, d_out = self._buffers(batch.shape[0])
        with torch.cuda.stream(self.stream):
            d_in.copy_(torch.from_numpy(batch), non_blocking=False)
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise BackendError(f"{self.path}: TensorRT execution failed")
            host = d_out.cpu()
        self.stream.synchronize()
        return host.numpy()

    def close(self) -> None:
        self.context = None
        self.engine = None
        self._in = self._out = None
        super().close()
