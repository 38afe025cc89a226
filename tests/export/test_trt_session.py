"""The one TensorRT session (export.trt_session) and the CUDA runtime wrapper, on fakes:
a libcudart stand-in that keeps "device memory" in host buffers and an engine stand-in
whose execution computes 255 − x, so shapes, bindings, copies and checks are exercised
without TensorRT or a GPU (those run under the ``tensorrt`` marker)."""

from __future__ import annotations

import ctypes
from types import SimpleNamespace

import numpy as np
import pytest

from export.cudart import CudaRuntime
from export.spec import GraphMetadata
from export.trt_session import TrtSession
from taskvec.errors import UserError


class FakeCudaLib:
    """libcudart's calls used by CudaRuntime; device memory = bytearrays keyed by address."""

    def __init__(self) -> None:
        self.mem: dict[int, bytearray] = {}
        self.next = 1 << 20
        self.copies = 0

    def _find(self, addr: int) -> tuple[bytearray, int]:
        for base, buf in self.mem.items():
            if base <= addr < base + len(buf):
                return buf, addr - base
        raise AssertionError(f"bad device address {addr}")

    def cudaMalloc(self, ref, size):
        self.mem[self.next] = bytearray(size.value)
        ref._obj.value = self.next
        self.next += size.value + 4096
        return 0

    def cudaFree(self, ptr):
        del self.mem[ptr.value]
        return 0

    def cudaStreamCreate(self, ref):
        ref._obj.value = 7
        return 0

    def cudaStreamDestroy(self, s):
        return 0

    def cudaStreamSynchronize(self, s):
        return 0

    def cudaGetDeviceCount(self, ref):
        ref._obj.value = 1
        return 0

    def cudaGetErrorString(self, err):
        return b"fake error"

    def cudaMemcpyAsync(self, dst, src, count, kind, stream):
        self.copies += 1
        n = count.value
        if kind == 1:  # host → device
            buf, off = self._find(dst.value)
            buf[off : off + n] = ctypes.string_at(src.value, n)
        else:
            buf, off = self._find(src.value)
            ctypes.memmove(dst.value, bytes(buf[off : off + n]), n)
        return 0


FAKE_TRT = SimpleNamespace(TensorIOMode=SimpleNamespace(INPUT="in", OUTPUT="out"), nptype=lambda dt: dt)


class FakeContext:
    def __init__(self, engine) -> None:
        self.engine, self.shapes, self.addr, self.runs = engine, {}, {}, 0

    def set_input_shape(self, name, shape):
        if not 1 <= shape[0] <= self.engine.batch_max:
            return False
        self.shapes[name] = tuple(shape)
        return True

    def get_tensor_shape(self, name):
        return self.shapes["image"]

    def set_tensor_address(self, name, ptr):
        self.addr[name] = ptr

    def execute_async_v3(self, stream):
        lib = self.engine.lib
        n = int(np.prod(self.shapes["image"]))
        src, so = lib._find(self.addr["image"])
        dst, do = lib._find(self.addr["output"])
        dst[do : do + n] = bytes(255 - np.frombuffer(bytes(src[so : so + n]), np.uint8))
        self.runs += 1
        return True


class FakeEngine:
    def __init__(self, lib, names=("image", "output"), dtype=np.uint8, batch_max=4) -> None:
        self.lib, self.names, self.dt, self.batch_max = lib, names, dtype, batch_max
        self.num_io_tensors = len(names)

    def get_tensor_name(self, i):
        return self.names[i]

    def get_tensor_mode(self, name):
        return "out" if name == "output" else "in"

    def get_tensor_dtype(self, name):
        return self.dt

    def create_execution_context(self):
        self.context = FakeContext(self)
        return self.context


META = GraphMetadata(task="lowlight", model_name="micro_pixel", model_fingerprint="ab" * 32)


def _session(**kw):
    lib = FakeCudaLib()
    engine = FakeEngine(lib, **kw)
    return TrtSession(engine, FAKE_TRT, CudaRuntime(lib), "fake.engine", META), lib, engine


def test_infer_binds_copies_and_reuses_buffers():
    s, lib, engine = _session()
    x = np.random.default_rng(0).integers(0, 256, (2, 111, 111, 3), np.uint8)
    out = s.infer({"image": x})["output"]
    assert out.dtype == np.uint8 and out.shape == x.shape and np.array_equal(out, 255 - x)
    buffers = set(lib.mem)
    s.infer({"image": x[:1]})  # smaller batch: same buffers, new shape
    assert set(lib.mem) == buffers and engine.context.shapes["image"] == (1, 111, 111, 3)
    s.close()
    assert lib.mem == {}


def test_bound_execute_for_timing_loops():
    s, lib, engine = _session()
    x = np.full((3, 111, 111, 3), 10, np.uint8)
    s.bind({"image": x.shape})
    s.upload({"image": x})
    copies = lib.copies
    for _ in range(5):
        s.execute()
    assert engine.context.runs == 5 and lib.copies == copies  # enqueue only, no copies


def test_refusals_are_one_line():
    with pytest.raises(UserError, match="does not match its graph"):
        _session(names=("frames", "output"))
    with pytest.raises(UserError, match="float32"):
        _session(dtype=np.float32)
    s, _, _ = _session()
    with pytest.raises(UserError, match="optimisation profile"):
        s.infer({"image": np.zeros((5, 111, 111, 3), np.uint8)})


def test_cuda_errors_are_one_line():
    lib = FakeCudaLib()
    lib.cudaMalloc = lambda ref, size: 2
    with pytest.raises(UserError) as e:
        CudaRuntime(lib).malloc(10)
    assert "fake error" in str(e.value) and "\n" not in str(e.value)
