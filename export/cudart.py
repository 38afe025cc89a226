"""The few CUDA runtime calls a TensorRT session needs, through ``ctypes`` (as Polygraphy
does), so running an engine needs neither torch nor pycuda.

:class:`CudaRuntime` wraps ``libcudart``: device buffers (``malloc``/``free``), one stream,
host↔device copies on it and a synchronise. Errors are one-line
:class:`~taskvec.errors.UserError`. ``lib`` may be any object with the same functions
(the tests pass a fake one that keeps "device memory" in host buffers).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import importlib.util
import os
from pathlib import Path

import numpy as np

from taskvec.errors import UserError

H2D, D2H = 1, 2  # cudaMemcpyKind
PROPS_BYTES = 4096  # > sizeof(cudaDeviceProp) (about 1 KB); its first field is char name[256]
SEARCH = ("/usr/local/cuda/lib64", "/usr/local/cuda/targets/aarch64-linux/lib", "/usr/lib/aarch64-linux-gnu",
          "/usr/lib/x86_64-linux-gnu")


def find_cudart() -> str | None:
    """``libcudart`` on the loader path, in the pip wheel ``nvidia-cuda-runtime-cu12`` (which
    ``tensorrt`` pulls in on x86), or in the usual CUDA / JetPack folders; None if absent."""
    name = ctypes.util.find_library("cudart")
    if name:
        return name
    folders = list(SEARCH)
    try:
        spec = importlib.util.find_spec("nvidia.cuda_runtime")
        folders += [str(Path(p) / "lib") for p in (spec.submodule_search_locations or [])] if spec else []
    except (ImportError, ValueError):
        pass
    for folder in folders:
        hits = sorted(glob.glob(os.path.join(folder, "libcudart.so*")))
        if hits:
            return hits[0]
    return None


class CudaRuntime:
    """Device memory and one stream. ``CudaRuntime()`` loads libcudart (one-line error when
    it cannot); ``CudaRuntime(lib)`` uses the given library object."""

    def __init__(self, lib=None) -> None:
        if lib is None:
            path = find_cudart()
            if path is None:
                raise UserError("the CUDA runtime (libcudart) was not found; TensorRT engines need a CUDA GPU")
            try:
                lib = ctypes.CDLL(path)
            except OSError as e:
                raise UserError(f"cannot load the CUDA runtime {path}: {e}") from None
            lib.cudaGetErrorString.restype = ctypes.c_char_p
        self.lib = lib

    def _ok(self, err: int, what: str) -> None:
        if err:
            text = self.lib.cudaGetErrorString(err)
            text = text.decode() if isinstance(text, bytes) else str(text)
            raise UserError(f"CUDA {what} failed: {text} ({err})")

    def device_count(self) -> int:
        n = ctypes.c_int(0)
        err = self.lib.cudaGetDeviceCount(ctypes.byref(n))
        return int(n.value) if not err else 0

    def device_name(self, index: int = 0) -> str:
        """``cudaDeviceProp.name`` of device ``index`` (what ``torch.cuda.get_device_name`` returns)."""
        props = ctypes.create_string_buffer(PROPS_BYTES)
        fn = getattr(self.lib, "cudaGetDeviceProperties_v2", None) or self.lib.cudaGetDeviceProperties
        self._ok(fn(props, ctypes.c_int(index)), "device query")
        return props.raw[:256].split(b"\0", 1)[0].decode(errors="replace")

    def malloc(self, nbytes: int) -> int:
        ptr = ctypes.c_void_p()
        self._ok(self.lib.cudaMalloc(ctypes.byref(ptr), ctypes.c_size_t(max(1, nbytes))), f"malloc of {nbytes} bytes")
        return int(ptr.value or 0)

    def free(self, ptr: int) -> None:
        if ptr:
            self._ok(self.lib.cudaFree(ctypes.c_void_p(ptr)), "free")

    def stream(self) -> int:
        s = ctypes.c_void_p()
        self._ok(self.lib.cudaStreamCreate(ctypes.byref(s)), "stream creation")
        return int(s.value or 0)

    def destroy_stream(self, stream: int) -> None:
        if stream:
            self._ok(self.lib.cudaStreamDestroy(ctypes.c_void_p(stream)), "stream destruction")

    def synchronize(self, stream: int) -> None:
        self._ok(self.lib.cudaStreamSynchronize(ctypes.c_void_p(stream)), "stream synchronisation")

    def to_device(self, dst: int, host: np.ndarray, stream: int) -> None:
        """Copy the C-contiguous ``host`` array to device address ``dst`` on ``stream``."""
        host = np.ascontiguousarray(host)
        self._ok(self.lib.cudaMemcpyAsync(ctypes.c_void_p(dst), ctypes.c_void_p(host.ctypes.data),
                                          ctypes.c_size_t(host.nbytes), H2D, ctypes.c_void_p(stream)), "copy to device")

    def to_host(self, host: np.ndarray, src: int, stream: int) -> None:
        """Copy ``host.nbytes`` bytes from device address ``src`` into ``host`` on ``stream``."""
        self._ok(self.lib.cudaMemcpyAsync(ctypes.c_void_p(host.ctypes.data), ctypes.c_void_p(src),
                                          ctypes.c_size_t(host.nbytes), D2H, ctypes.c_void_p(stream)), "copy to host")
