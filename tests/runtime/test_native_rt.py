"""``tvrun-native`` (runtime/native, built by the top-level CMakeLists.txt) against the Python
``tvrun``: golden-frame parity on the same frames and graph, the ``--stats`` schema, and the
bad-input contract (one ``error:`` line, non-zero exit, no partial output file).

The binary is ``$TVRUN_NATIVE`` or ``build/tvrun-native``; without it every test here skips
with the reason (``make test`` needs no C++ build; ``.ci/run`` builds it, so CI runs these).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from runtime.cli import run_cli

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("TVRUN_NATIVE") or ROOT / "build" / "tvrun-native")

pytestmark = pytest.mark.skipif(
    not BINARY.is_file() or not os.access(BINARY, os.X_OK),
    reason=f"tvrun-native is not built ({BINARY}): cmake -S . -B build && cmake --build build",
)


def native(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(BINARY), *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


def assert_one_error_line(r: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def dark_frames(folder: Path, n: int = 3, size=(640, 480)) -> Path:
    """Dim, noisy frames with edges and colour (the low-light case), written as PNG (lossless)."""
    folder.mkdir(parents=True, exist_ok=True)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(7)
    for i in range(n):
        img = np.stack([xx / w * 200, yy / h * 160, ((xx + yy + 9 * i) % 97) * 2.0], -1)
        img[h // 3: h // 2, w // 4 + 10 * i: w // 2 + 10 * i] = (40, 200, 90)
        img = 0.18 * img + rng.normal(0, 2.0, img.shape)
        cv2.imwrite(str(folder / f"f{i}.png"), np.clip(img, 0, 255).astype(np.uint8))
    return folder


@pytest.fixture(scope="module")
def graphs(tmp_path_factory) -> dict[str, Path]:
    """The low-light and in-painting task graphs of the tiny model, each with one patched head."""
    import torch

    from export.onnx_export import export_task
    from taskvec.checkpoint import load_model, model_fingerprint
    from taskvec.model import BlockId
    from taskvec.sites import Site
    from taskvec.taskvector import TaskVector

    model = load_model("tiny")
    out = tmp_path_factory.mktemp("native-graphs")
    paths = {}
    for task in ("lowlight", "inpainting"):
        n, c = 99, model.cfg.decoder_embed_dim
        g = torch.Generator().manual_seed(1)
        mul, add = torch.ones(n, c), torch.zeros(n, c)
        mul[:, :32] = 0.0
        add[:, :32] = 0.3 * torch.randn(n, 32, generator=g)
        tv = TaskVector(task, model.cfg.name, model_fingerprint(model), "test", "head", [Site("dec", 1, 0, "all")],
                        {BlockId("dec", 1): mul}, {BlockId("dec", 1): add})
        paths[task] = Path(export_task(task, model=model, taskvec=tv, out_dir=out / task, check=False).onnx_path)
    return paths


def read_folder(folder: Path) -> list[np.ndarray]:
    return [cv2.imread(str(p)) for p in sorted(folder.glob("frame_*.png"))]


@pytest.mark.parametrize("task,extra", [
    ("lowlight", []),
    ("lowlight", ["--tiles", "2x2", "--gain", "luma"]),
    ("lowlight", ["--transfer", "temporal"]),
    ("lowlight", ["--transfer", "gain"]),
    ("inpainting", ["--mask-rect", "280,200,80,60"]),
])
def test_golden_frames_match_the_python_runtime(tmp_path, graphs, task, extra):
    frames = dark_frames(tmp_path / "in")
    opts = dict(zip(extra[::2], extra[1::2]))
    code = run_cli(source=str(frames), task=task, onnx=str(graphs[task]), headless=True,
                   output=str(tmp_path / "py") + "/", stats_path=str(tmp_path / "py.json"),
                   tiles=opts.get("--tiles"), gain_mode=opts.get("--gain", "rgb"),
                   transfer=opts.get("--transfer", "denoise"), mask_rect=opts.get("--mask-rect"))
    assert code == 0
    r = native("--source", frames, "--task", task, "--onnx", graphs[task], "--headless", "--output",
               f"{tmp_path / 'native'}/", "--stats", tmp_path / "native.json", *extra)
    assert r.returncode == 0, r.stderr
    py, nat = read_folder(tmp_path / "py"), read_folder(tmp_path / "native")
    assert len(py) == len(nat) == 3
    for a, b in zip(py, nat):
        diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
        assert diff.max() <= 1, f"max {diff.max()} grey levels, {(diff > 1).sum()} pixels above 1"
    src = [cv2.imread(str(p)) for p in sorted(frames.glob("*.png"))]
    assert any(np.abs(a.astype(int) - s).max() > 10 for a, s in zip(nat, src))  # the filter did something
    if task == "inpainting":  # outside the hole the output is the input, exactly
        outside = np.ones((480, 640), bool)
        outside[200:260, 280:360] = False
        assert all((b[outside] == s[outside]).all() for b, s in zip(nat, src))


def test_stats_have_the_python_schema(tmp_path, graphs):
    frames = dark_frames(tmp_path / "in", n=2)
    assert run_cli(source=str(frames), task="lowlight", onnx=str(graphs["lowlight"]), headless=True,
                   stats_path=str(tmp_path / "py.json")) == 0
    r = native("--source", frames, "--task", "lowlight", "--onnx", graphs["lowlight"], "--headless",
               "--stats", tmp_path / "native.json")
    assert r.returncode == 0, r.stderr
    py = json.loads((tmp_path / "py.json").read_text())
    nat = json.loads((tmp_path / "native.json").read_text())
    assert list(nat) == list(py)
    assert set(nat["stages_ms"]) == set(py["stages_ms"])
    assert all(set(v) == {"p50", "p90", "p99", "mean"} for v in nat["stages_ms"].values())
    assert nat["frames"] == py["frames"] == 2 and nat["resolution"] == py["resolution"] == [640, 480]
    assert nat["backend"] == py["backend"] == "onnxruntime:CPU" and nat["source"] == py["source"]
    assert nat["extra"]["runtime"] == "native" and nat["stopped_by"] == py["stopped_by"]
    assert r.stdout.strip().splitlines()[-1].startswith("2 frames, ")


# ------------------------------------------------------------------ bad input: the Python runtime's cases


@pytest.fixture
def frames(tmp_path) -> Path:
    return dark_frames(tmp_path / "frames", n=2, size=(96, 64))


def nothing_written(folder: Path, *names: str) -> None:
    for n in names:
        assert not (folder / n).exists(), n
    assert not [p.name for p in folder.rglob(".*")], "a hidden temporary file was left"


def test_missing_graph(tmp_path, frames):
    r = native("--source", frames, "--task", "lowlight", "--onnx", tmp_path / "none.onnx", "--headless",
               "--output", tmp_path / "o.mp4")
    assert_one_error_line(r, 2, "does not exist")
    nothing_written(tmp_path, "o.mp4")


def test_graph_for_another_task(tmp_path, frames, graphs):
    r = native("--source", frames, "--task", "inpainting", "--onnx", graphs["lowlight"], "--mask-rect", "1,1,10,10",
               "--headless", "--output", tmp_path / "o.mp4")
    assert_one_error_line(r, 2, "'lowlight' graph")
    nothing_written(tmp_path, "o.mp4")


def test_graph_without_sidecar_or_with_a_lying_one(tmp_path, frames, graphs):
    g = tmp_path / "g" / "lowlight.onnx"
    g.parent.mkdir()
    shutil.copy(graphs["lowlight"], g)
    assert_one_error_line(native("--source", frames, "--task", "lowlight", "--onnx", g, "--headless"), 2,
                          "sidecar", "missing")
    info = json.loads(graphs["lowlight"].with_suffix(".json").read_text())
    info["site_count"] = 999
    g.with_suffix(".json").write_text(json.dumps(info))
    assert_one_error_line(native("--source", frames, "--task", "lowlight", "--onnx", g, "--headless"), 2,
                          "site_count")


def test_graph_not_onnx(tmp_path, frames, graphs):
    g = tmp_path / "g.onnx"
    g.write_bytes(os.urandom(256))
    shutil.copy(graphs["lowlight"].with_suffix(".json"), tmp_path / "g.json")
    assert_one_error_line(native("--source", frames, "--task", "lowlight", "--onnx", g, "--headless"), 2,
                          "cannot load")


@pytest.mark.parametrize("source,needle", [("missing.mp4", "no such file"), ("notvideo.mp4", "cannot decode"),
                                           ("empty", "no images found"), ("/dev/video99", "no such device"),
                                           ("http://example.invalid/x", "unsupported source")])
def test_unreadable_source(tmp_path, graphs, source, needle):
    (tmp_path / "notvideo.mp4").write_bytes(b"not a video" * 50)
    (tmp_path / "empty").mkdir()
    src = source if source.startswith(("/", "http")) else tmp_path / source
    r = native("--source", src, "--task", "lowlight", "--onnx", graphs["lowlight"], "--headless",
               "--output", tmp_path / "o.mp4")
    assert_one_error_line(r, 2, needle)
    nothing_written(tmp_path, "o.mp4")


def test_truncated_frame_mid_run_keeps_the_frames_so_far(tmp_path, graphs, frames):
    data = (frames / "f1.png").read_bytes()
    (frames / "f1.png").write_bytes(data[: len(data) // 2])
    out = tmp_path / "o.mp4"
    r = native("--source", frames, "--task", "lowlight", "--onnx", graphs["lowlight"], "--headless", "--output", out)
    assert_one_error_line(r, 1, "cannot decode", "kept the 1 frames")
    cap = cv2.VideoCapture(str(out))
    assert cap.read()[0]
    nothing_written(tmp_path)


@pytest.mark.parametrize("output,needle", [("file/o.mp4", "not a folder"), ("o.gif", "unsupported output"),
                                           ("file/", "it is a file"), ("ro/o.mp4", "permission denied")])
def test_unwritable_output(tmp_path, graphs, frames, output, needle):
    (tmp_path / "file").write_text("x")
    (tmp_path / "ro").mkdir()
    os.chmod(tmp_path / "ro", 0o500)
    try:
        if needle == "permission denied" and os.access(tmp_path / "ro", os.W_OK):
            pytest.skip("running as a user that can write into a read-only folder (root)")
        target = str(tmp_path / output) + ("/" if output.endswith("/") else "")
        r = native("--source", frames, "--task", "lowlight", "--onnx", graphs["lowlight"], "--headless",
                   "--output", target)
        assert_one_error_line(r, 2, needle)
        assert not list((tmp_path / "ro").iterdir())
        nothing_written(tmp_path, "o.gif")
    finally:
        os.chmod(tmp_path / "ro", 0o700)


def test_stats_write_refused_before_the_run(tmp_path, graphs, frames):
    (tmp_path / "file").write_text("x")
    r = native("--source", frames, "--task", "lowlight", "--onnx", graphs["lowlight"], "--headless",
               "--stats", tmp_path / "file" / "s.json", "--output", tmp_path / "o.mp4")
    assert_one_error_line(r, 2, "--stats")
    nothing_written(tmp_path, "o.mp4")


@pytest.mark.parametrize("args,needle", [
    (["--frames", "0"], "--frames"),
    (["--tiles", "9x9"], "--tiles"),
    (["--mask-rect", "1,1,5,5"], "--mask"),
    (["--transfer", "fast"], "transfer"),
    (["--bogus"], "unknown option"),
])
def test_bad_options(graphs, frames, args, needle):
    r = native("--source", frames, "--task", "lowlight", "--onnx", graphs["lowlight"], "--headless", *args)
    assert_one_error_line(r, 2, needle)


def test_engine_without_tensorrt_or_sidecar(tmp_path, frames):
    eng = tmp_path / "x.engine"
    eng.write_bytes(b"not an engine" * 10)
    r = native("--source", frames, "--task", "lowlight", "--engine", eng, "--headless")
    assert_one_error_line(r, 2, "engine")


def test_help_lists_the_options():
    r = native("--help")
    assert r.returncode == 0
    for opt in ("--camera", "--source", "--onnx", "--engine", "--headless", "--output", "--frames", "--stats",
                "--mask", "--mask-rect", "--tiles"):
        assert opt in r.stdout


@pytest.mark.parametrize("kind", ["missing", "truncated", "text"])
def test_bad_mask(tmp_path, graphs, frames, kind):
    m = tmp_path / "mask.png"
    if kind == "truncated":
        cv2.imwrite(str(m), np.full((64, 96), 255, np.uint8))
        m.write_bytes(m.read_bytes()[:-20])
    elif kind == "text":
        m.write_text("x")
    r = native("--source", frames, "--task", "inpainting", "--onnx", graphs["inpainting"], "--headless", "--mask", m)
    assert_one_error_line(r, 2, "mask")


def test_output_folders_are_created_and_a_mask_file_works(tmp_path, graphs, frames):
    mask = np.zeros((32, 48), np.uint8)  # half the frame size: resized (nearest) to the frame
    mask[10:20, 15:30] = 255
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    out = tmp_path / "a" / "b" / "o.mp4"
    r = native("--source", frames, "--task", "inpainting", "--onnx", graphs["inpainting"], "--headless",
               "--mask", tmp_path / "mask.png", "--output", out)
    assert r.returncode == 0, r.stderr
    cap = cv2.VideoCapture(str(out))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 2
    nothing_written(tmp_path)


def _bomb_png(path: Path, side: int) -> Path:
    """A valid 1-bit PNG of side×side pixels that deflates to a few kB (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" * (1 + (side + 7) // 8)
    comp = zlib.compressobj(9)
    data = b"".join(comp.compress(row * 1000) for _ in range(side // 1000)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def test_source_folder_with_a_decompression_bomb(tmp_path, graphs):
    d = tmp_path / "frames"
    d.mkdir()
    _bomb_png(d / "f0.png", 12000)  # 144 MP, above the 40 MP limit the Python runtime also uses
    r = native("--source", d, "--task", "lowlight", "--onnx", graphs["lowlight"], "--headless",
               "--output", tmp_path / "o.mp4")
    assert_one_error_line(r, 2, "144.0 MP")
    nothing_written(tmp_path, "o.mp4")
