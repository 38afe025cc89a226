"""Fixtures for the runtime tests: a fake backend, tiny generated clips, an exported graph."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from runtime.backends import BackendBase


class FakeClock:
    """A clock the test moves by hand (``clock.t += …``); starts at 100 s."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


class LutBackend(BackendBase):
    """A stand-in graph: ``out = clip(in * gain)`` per pixel (gain 1 = identity)."""

    def __init__(self, gain: float = 1.0) -> None:
        super().__init__()
        self.name = f"fake:x{gain:g}"
        self.lut = np.clip(np.arange(256) * gain + 0.5, 0, 255).astype(np.uint8)
        self.calls = 0
        self.batches: list[np.ndarray] = []

    def infer(self, batch: np.ndarray) -> np.ndarray:
        batch = self.check_batch(batch)
        self.calls += 1
        self.batches.append(batch.copy())
        return self.lut[batch]


def write_clip(path: Path, n: int, size=(96, 64), fps: float = 10.0, dark: bool = False) -> Path:
    """A small mp4 with moving structure (so codecs and filters see edges)."""
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened()
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(n):
        img = np.stack([(xx * 255 // w + 8 * i) % 256, (yy * 255 // h) % 256, ((xx + yy + 5 * i) % 64) * 4], -1)
        img = img.astype(np.uint8)
        if dark:
            img = (img // 4).astype(np.uint8)
        writer.write(img)
    writer.release()
    return path


@pytest.fixture
def lut_backend():
    return LutBackend


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return write_clip(tmp_path / "clip.mp4", 9)


@pytest.fixture(scope="session")
def exported_lowlight(tmp_path_factory) -> tuple[Path, object, object]:
    """(onnx path, model, TaskVector) of a small exported low-light graph with one patched
    block."""
    import torch

    from export.onnx_export import export_task
    from taskvec.model.checkpoint import load_model, model_fingerprint
    from taskvec.model.mae_vqgan import BlockId
    from taskvec.vectors.sites import Site
    from taskvec.vectors.taskvector import TaskVector

    model = load_model("tiny")  # trained: a random gated head starts as "copy the query"
    bid = BlockId("dec", 1)
    n, c = 99, model.cfg.decoder_embed_dim
    g = torch.Generator().manual_seed(0)
    mul = torch.ones(n, c)
    mul[:, :32] = 0.0  # head 0 replaced everywhere
    add = torch.zeros(n, c)
    add[:, :32] = 0.5 * torch.randn(n, 32, generator=g)
    tv = TaskVector("lowlight", model.cfg.name, model_fingerprint(model), "test", "head",
                    [Site("dec", 1, 0, "all")], {bid: mul}, {bid: add})
    out = tmp_path_factory.mktemp("exported")
    result = export_task("lowlight", model=model, taskvec=tv, out_dir=out, check=False)
    return Path(result.onnx_path), model, tv


@pytest.fixture
def count_frames():
    """``count_frames(path) -> (frames, (width, height))`` of a video file, read back with OpenCV."""

    def count(path) -> tuple[int, tuple[int, int]]:
        cap = cv2.VideoCapture(str(path))
        n, size = 0, (0, 0)
        while True:
            ok, img = cap.read()
            if not ok:
                break
            n, size = n + 1, (img.shape[1], img.shape[0])
        cap.release()
        return n, size

    return count
