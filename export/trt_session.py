"""One TensorRT session: an engine's named tensors, its device buffers and ``execute_async_v3``
(DESIGN §5, STYLE §14). The same class serves ``tvrun``'s TensorRT backend
(``runtime.backends.tensorrt``), the benchmarks (``benchmarks.graph_runners.trt_runner``,
``benchmarks.trt_compare``) and the engine tests, as Polygraphy's runners serve its CLI and API.

    with TrtSession.open("lowlight.trt10.3.0.orin.fp16.engine", GraphRequest("lowlight")) as s:
        out = s.infer({"image": batch})["output"]          # host arrays in and out

    s.bind({"image": (4, 111, 111, 3)}); s.upload(feeds)   # once, then
    s.execute(stream)                                       # enqueue only (GPU-time loops)

:meth:`TrtSession.open` checks the engine file (name, sidecar, checksum, TensorRT version,
GPU), its graph metadata against the request (:mod:`export.metadata`) and its tensors
against that metadata before anything runs. Device memory comes from
:class:`export.cudart.CudaRuntime` (ctypes, no torch). The constructor takes an already
deserialized engine, the ``tensorrt`` module and a runtime, so tests run it on fakes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from export.cudart import CudaRuntime
from export.metadata import GraphRequest
from export.spec import GraphMetadata
from taskvec.errors import UserError


class TrtSession:
    """``engine`` (``trt.ICudaEngine``), ``trt`` (the module: ``TensorIOMode``, ``nptype``),
    ``cuda`` (:class:`CudaRuntime`); ``name`` for messages; ``metadata`` the graph's."""

    def __init__(self, engine: Any, trt: Any, cuda: CudaRuntime, name: str = "engine",
                 metadata: GraphMetadata | None = None) -> None:
        self.engine, self.trt, self.cuda, self.name, self.metadata = engine, trt, cuda, name, metadata
        self.context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self.inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self._dtypes = {n: np.dtype(trt.nptype(engine.get_tensor_dtype(n))) for n in names}  # looked up once
        self.stream = cuda.stream()
        self.shapes: dict[str, tuple[int, ...]] = {}
        self._buffers: dict[str, tuple[int, int]] = {}  # name → (device address, bytes)
        if metadata is not None:
            self.check_io(metadata)

    @classmethod
    def open(cls, path: str | os.PathLike[str], request: GraphRequest | None = None,
             cuda: CudaRuntime | None = None) -> "TrtSession":
        """Check and deserialize the engine at ``path`` (one-line UserError on any mismatch)."""
        from export.metadata import load_engine_metadata
        from export.trt import deserialize_engine, gpu_name, tensorrt_module

        trt = tensorrt_module()
        meta, _ = load_engine_metadata(path, request, trt.__version__, gpu_name())  # every check, the checksum once
        name = Path(path).name
        return cls(deserialize_engine(Path(path).read_bytes(), name), trt, cuda or CudaRuntime(), name, meta)

    # ------------------------------------------------------------------ tensors
    def dtype(self, name: str) -> np.dtype:
        return self._dtypes[name]

    def check_io(self, meta: GraphMetadata) -> None:
        """The engine's tensors against the graph's metadata: input names, the output, uint8 images."""
        spec = meta.io_spec
        if sorted(self.inputs) != sorted(meta.input_names) or spec.output_name not in self.outputs:
            raise UserError(f"{self.name}: engine I/O ({', '.join(self.inputs)} → {', '.join(self.outputs)}) does not "
                            f"match its graph ({', '.join(meta.input_names)} → {spec.output_name}); rebuild it with "
                            "tvexport --engine")
        images = [n for n in meta.input_names if n not in meta.switch_inputs] + [spec.output_name]
        for n in images:
            if self.dtype(n) != np.dtype(spec.dtype):
                raise UserError(f"{self.name}: tensor {n} is {self.dtype(n)}, its graph says {spec.dtype}")

    # ------------------------------------------------------------------ running
    def bind(self, shapes: dict[str, tuple[int, ...]]) -> None:
        """Set every input's shape and bind device buffers for inputs and outputs; buffers are
        reused while they are large enough (same batch: nothing to do)."""
        shapes = {n: tuple(int(d) for d in s) for n, s in shapes.items()}
        if shapes == {n: self.shapes.get(n) for n in shapes} and self._buffers:
            return
        missing = [n for n in self.inputs if n not in shapes]
        if missing:
            raise UserError(f"{self.name}: no shape for input {missing[0]}")
        for n in self.inputs:
            if not self.context.set_input_shape(n, shapes[n]):
                raise UserError(f"{self.name}: {n} {list(shapes[n])} is outside the engine's optimisation profile")
        all_shapes = {**shapes, **{n: tuple(self.context.get_tensor_shape(n)) for n in self.outputs}}
        for n in self.inputs + self.outputs:
            nbytes = int(np.prod(all_shapes[n])) * self.dtype(n).itemsize
            ptr, have = self._buffers.get(n, (0, 0))
            if have < nbytes:
                self.cuda.free(ptr)
                ptr, have = self.cuda.malloc(nbytes), nbytes
                self._buffers[n] = (ptr, have)
            self.context.set_tensor_address(n, ptr)
        self.shapes = all_shapes

    def upload(self, feeds: dict[str, np.ndarray]) -> None:
        """Copy host inputs (cast to the engine's dtypes) into the bound buffers."""
        for n in self.inputs:
            arr = np.ascontiguousarray(feeds[n], dtype=self.dtype(n))
            if tuple(arr.shape) != self.shapes.get(n):
                raise UserError(f"{self.name}: {n} is {list(arr.shape)}, bound as {list(self.shapes.get(n, ()))}")
            self.cuda.to_device(self._buffers[n][0], arr, self.stream)

    def execute(self, stream: int | None = None) -> None:
        """Enqueue one run on ``stream`` (default: the session's) without waiting."""
        if not self.context.execute_async_v3(self.stream if stream is None else stream):
            raise UserError(f"{self.name}: TensorRT execution failed")

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Host arrays by input name → host arrays by output name (bind, copy, run, copy back, wait)."""
        self.bind({n: np.shape(feeds[n]) for n in self.inputs})
        self.upload(feeds)
        self.execute()
        outs = {n: np.empty(self.shapes[n], dtype=self.dtype(n)) for n in self.outputs}
        for n, arr in outs.items():
            self.cuda.to_host(arr, self._buffers[n][0], self.stream)
        self.cuda.synchronize(self.stream)
        return outs

    def close(self) -> None:
        for ptr, _ in self._buffers.values():
            self.cuda.free(ptr)
        self._buffers.clear()
        if self.stream:
            self.cuda.destroy_stream(self.stream)
            self.stream = 0
        self.context = None
        self.engine = None

    def __enter__(self) -> "TrtSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
