"""tvrun resolves its task once: the model is built at most once per command (never on an
export-cache hit), and with a graph or an engine (or a cached graph) and a file source
nothing imports torch (issue 13)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def frames(tmp_path) -> Path:
    d = tmp_path / "frames"
    d.mkdir()
    for i in range(3):
        cv2.imwrite(str(d / f"f{i:02d}.png"), np.random.default_rng(i).integers(0, 256, (48, 64, 3), np.uint8))
    return d


@pytest.fixture
def built(monkeypatch):
    """Counts every MaeVQGAN built in this process."""
    from taskvec.model.mae_vqgan import MaeVQGAN

    calls = []
    init = MaeVQGAN.__init__

    def counting(self, cfg):
        calls.append(cfg.name)
        init(self, cfg)

    monkeypatch.setattr(MaeVQGAN, "__init__", counting)
    return calls


def _run(**kw) -> int:
    from runtime.cli import run_cli

    return run_cli(task="lowlight", headless=True, frames=2, **kw)


def test_torch_backend_loads_the_model_once(frames, built):
    assert _run(source=str(frames), backend="torch") == 0
    assert built == ["tiny"]


def test_export_cache_loads_the_model_once_then_never(frames, tmp_path, built, monkeypatch):
    import export.onnx_export as ox

    exported = []
    real = ox.export_resolved

    def counting_export(deployed, *a, **k):
        exported.append(deployed.fingerprint)
        return real(deployed, *a, **k)

    monkeypatch.setattr(ox, "export_resolved", counting_export)
    cache = tmp_path / "cache"
    assert _run(source=str(frames), cache_dir=str(cache)) == 0  # miss: export from the one loaded model
    assert built == ["tiny"] and len(exported) == 1
    assert _run(source=str(frames), cache_dir=str(cache)) == 0  # hit: the card's fingerprint suffices
    assert built == ["tiny"] and len(exported) == 1
    assert _subprocess({"source": str(frames), "cache_dir": str(cache)}) == "RC 0 TORCH False"  # nor torch


def test_onnx_run_builds_no_model(frames, exported_lowlight, built):
    """With --onnx the graph is all tvrun needs: no model is built."""
    path, _, _ = exported_lowlight
    assert _run(source=str(frames), onnx=str(path)) == 0
    assert built == []


CHECK = """
import sys
from runtime.cli import run_cli
rc = run_cli(task="lowlight", headless=True, frames=2, **{kw})
print("RC", rc, "TORCH", "torch" in sys.modules)
"""


def _subprocess(kw: dict) -> str:
    r = subprocess.run([sys.executable, "-c", CHECK.replace("{kw}", repr(kw))], cwd=ROOT, capture_output=True,
                       text=True, timeout=300, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                                                    "OMP_NUM_THREADS": "1"})
    assert "RC" in r.stdout, r.stderr[-2000:]
    return r.stdout.strip().splitlines()[-1]


def test_onnx_and_engine_runs_import_no_torch(frames, exported_lowlight, tmp_path, clip):
    import hashlib

    from export.metadata import read_props

    path, _, _ = exported_lowlight
    assert _subprocess({"source": str(frames), "onnx": str(path)}) == "RC 0 TORCH False"
    assert _subprocess({"source": str(clip), "onnx": str(path)}) == "RC 0 TORCH False"
    # an engine (its sidecar and checks; no TensorRT here, so it is refused in one line — without torch)
    data = b"engine bytes"
    eng = tmp_path / "lowlight.trt10.0.1.nvidia-h200.fp16.engine"
    eng.write_bytes(data)
    Path(str(eng) + ".json").write_text(json.dumps({
        "tensorrt": "10.0.1", "gpu": "NVIDIA H200", "gpu_slug": "nvidia-h200", "precision": "fp16",
        "sha256": hashlib.sha256(data).hexdigest(), "metadata": read_props(path).to_dict()}))
    assert _subprocess({"source": str(frames), "engine": str(eng)}) == "RC 2 TORCH False"


CLICK_CHECK = """
import sys
from runtime.cli import main
try:
    main({argv}, standalone_mode=False)
finally:
    print("TORCH", "torch" in sys.modules)
"""


def test_the_command_line_parses_without_torch(frames, exported_lowlight):
    """The tvrun command itself, not only run_cli: parsing --task (TaskType, pairs-aware)
    must not import the task registry or the pairs module, which import torch."""
    path, _, _ = exported_lowlight
    argv = ["--source", str(frames), "--task", "lowlight", "--onnx", str(path), "--headless", "--frames", "1"]
    r = subprocess.run([sys.executable, "-c", CLICK_CHECK.replace("{argv}", repr(argv))], cwd=ROOT,
                       capture_output=True, text=True, timeout=300,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == "TORCH False"
