"""Bad input ends in one line, a non-zero exit, and no partial file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from export import onnx_export
from export.cli import main
from export.onnx_export import export_task, random_taskvector
from taskvec.errors import UserError

ROOT = Path(__file__).resolve().parents[2]


def _run(args, **kw):
    result = CliRunner().invoke(main, args, **kw)
    return result.exit_code, result.output


def test_unknown_task(tmp_path):
    code, out = _run(["--task", "nope", "--out", str(tmp_path)])
    assert code == 2 and "nope" in out and out.startswith("error:") and len(out.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_taskvector_for_another_model(tmp_path, micro_pixel, tiny):
    tv = random_taskvector(micro_pixel, "inpainting")
    path = tmp_path / "tv.safetensors"
    tv.save(path)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["--task", "inpainting", "--taskvec", str(path), "--out", str(out)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "made for model micro_pixel" in lines[0]
    assert not out.exists() or list(out.iterdir()) == []


def test_bad_input_in_a_real_process(tmp_path):
    """The installed entry point's contract: one line on stderr, exit 2, no traceback."""
    proc = subprocess.run([sys.executable, "-c", "from export.cli import main; main()", "--task", "inpainting",
                           "--model", str(tmp_path / "missing.safetensors"), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists() or list((tmp_path / "o").iterdir()) == []


def test_wrong_task_in_taskvector(tmp_path, tiny, tiny_tv):
    with pytest.raises(UserError, match="inpainting"):
        export_task("lowlight", tiny, tiny_tv, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output(tmp_path, tiny, tiny_tv, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if os.geteuid() == 0:  # root ignores the mode bits: make the check see what a user would
        real_access = os.access
        monkeypatch.setattr(onnx_export.os, "access", lambda p, m: False if Path(p) == locked else real_access(p, m))
    try:
        code, out = _run(["--task", "inpainting", "--out", str(locked)])
        assert code == 2 and out.strip().startswith("error: cannot write") and len(out.strip().splitlines()) == 1
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_output_path_is_a_file(tmp_path, tiny, tiny_tv):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, out = _run(["--task", "inpainting", "--out", str(blocker / "sub")])
    assert code == 2 and out.strip().startswith("error:") and len(out.strip().splitlines()) == 1


def test_failure_leaves_no_file(tmp_path, micro_pixel, monkeypatch):
    """A failure after the graph was written to the temp folder leaves nothing behind."""

    def boom(*a, **k):
        raise UserError("simulated check failure")

    monkeypatch.setattr(onnx_export.C, "compare_with_torch", boom)
    with pytest.raises(UserError, match="simulated"):
        export_task("inpainting", micro_pixel, random_taskvector(micro_pixel, "inpainting"), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_engine_without_tensorrt(tmp_path, micro_pixel):
    from export import trt

    if trt.tensorrt_available():
        pytest.skip("TensorRT is installed")
    path = tmp_path / "tv.safetensors"
    random_taskvector(micro_pixel, "inpainting").save(path)
    code, out = _run(["--task", "inpainting", "--model", "random:micro_pixel", "--taskvec", str(path),
                      "--out", str(tmp_path / "o"), "--engine", "--no-check"])
    assert code == 3
    assert "trtexec" in out and "--minShapes=image:1x111x111x3" in out and "--fp16" in out
    assert (tmp_path / "o" / "inpainting.onnx").is_file()


@pytest.mark.parametrize("target, precision", [("10", "fp16"), ("10", "fp32"), ("11", "fp16"), ("11", "fp32")])
def test_printed_trtexec_line_pastes(tmp_path, micro_pixel, target, precision):
    """The printed trtexec line is one shell command (shlex), with no placeholders; every
    file it reads exists and every file it writes has an existing folder; the timing cache
    is the one the Python builder uses; TensorRT 11 gets no removed precision flags."""
    import shlex

    from export import trt

    if trt.tensorrt_available():
        pytest.skip("TensorRT is installed: tvexport builds the engine itself")
    path = tmp_path / "tv.safetensors"
    random_taskvector(micro_pixel, "lowlight").save(path)
    out_dir = tmp_path / "o"
    code, out = _run(["--task", "lowlight", "--model", "random:micro_pixel", "--taskvec", str(path),
                      "--out", str(out_dir), "--engine", "--no-check", "--precision", precision,
                      "--trt-version", target])
    assert code == 3
    lines = [ln for ln in out.splitlines() if ln.split(" ", 1)[0].endswith("trtexec")]
    assert len(lines) == 1, out
    argv = shlex.split(lines[0])
    assert Path(argv[0]).name == "trtexec"
    opts = dict(a[2:].split("=", 1) for a in argv[1:] if "=" in a)
    flags = {a for a in argv[1:] if "=" not in a}
    assert Path(opts["onnx"]).is_file()
    for key in ("saveEngine", "timingCacheFile"):
        assert Path(opts[key]).parent.is_dir() and not Path(opts[key]).exists()
    assert Path(opts["timingCacheFile"]) == trt.timing_cache_path(out_dir, target, trt.gpu_name())
    assert trt.parse_engine_name(opts["saveEngine"])["precision"] == precision
    removed = {"fp16", "precisionConstraints", "layerPrecisions", "layerOutputTypes", "stronglyTyped"}
    if target == "11":
        assert not (removed & (set(opts) | {f[2:] for f in flags}))
        assert Path(opts["onnx"]).name == ("lowlight.fp16.onnx" if precision == "fp16" else "lowlight.onnx")
    elif precision == "fp16":
        assert "--fp16" in flags and opts["precisionConstraints"] == "obey"
        import onnx

        names = {n.name for n in onnx.load(opts["onnx"]).graph.node if n.op_type in ("LayerNormalization", "Softmax")}
        pinned = {p.rsplit(":", 1)[0] for p in opts["layerPrecisions"].split(",")}
        assert pinned == names and names
    else:
        assert "--stronglyTyped" in flags


@pytest.mark.parametrize("fail_on", [".onnx", ".json"])
def test_external_data_is_atomic(tmp_path, micro_pixel, monkeypatch, fail_on):
    """With external data, a failure while publishing leaves none of T.onnx, T.onnx.data, T.json."""
    tv = random_taskvector(micro_pixel, "inpainting")
    res = export_task("inpainting", micro_pixel, tv, tmp_path / "ok", check=False, external_data=True)
    assert res.data_path is not None and res.data_path.is_file()
    real_replace = os.replace

    def failing_replace(src, dst):
        if str(dst).endswith(fail_on):
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(onnx_export.os, "replace", failing_replace)
    with pytest.raises(OSError):
        export_task("inpainting", micro_pixel, tv, tmp_path / "bad", check=False, external_data=True)
    assert list((tmp_path / "bad").iterdir()) == []
