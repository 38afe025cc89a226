"""Bad input and faults for ``tvexport`` and ``tvbench``: non-finite or misshapen vectors and
weights, outputs that cannot be written, full disks, undecodable sources."""

from __future__ import annotations

import pytest

from badinput import (assert_nothing_left, assert_one_line, bomb_png, enospc, invoke, nan_model, snapshot,
                      taskvector_file, truncated)

MICRO = ["--model", "random:micro_pixel"]


def _export(tmp_path, *args):
    from export.cli import main

    return invoke(main, ["--task", "lowlight", "--out", tmp_path / "out", *args])


def _empty(folder):
    assert not folder.exists() or not list(folder.iterdir()), sorted(p.name for p in folder.iterdir())


def _nan(t):
    k = sorted(k for k in t if k.endswith("/mul"))[0]
    t[k][0, 0] = float("nan")


def test_export_nan_task_vector(tmp_path):
    tv = taskvector_file(tmp_path, edit=_nan)
    assert_one_line(_export(tmp_path, "--taskvec", tv, "--no-check", *MICRO), 2, "NaN/Inf", "/mul")
    _empty(tmp_path / "out")


def test_export_nan_constants_refused_without_check(tmp_path):
    """An in-memory vector with NaN (not from a file): --no-check still never writes NaN constants."""
    import torch

    from export.onnx_export import export_task, random_taskvector
    from taskvec.model.checkpoint import load_model
    from taskvec.errors import UserError

    model = load_model("random:micro_pixel")
    tv = random_taskvector(model, "lowlight")
    bid = sorted(tv.add)[0]
    tv.add[bid] = tv.add[bid].clone()
    tv.add[bid][0, 0] = torch.inf
    with pytest.raises(UserError, match="NaN/Inf"):
        export_task("lowlight", model, tv, tmp_path / "out", check=False)
    _empty(tmp_path / "out")


def test_export_wrong_token_count(tmp_path):
    def cut(t):
        for k in list(t):
            t[k] = t[k][:7].contiguous()

    tv = taskvector_file(tmp_path, edit=cut)
    assert_one_line(_export(tmp_path, "--taskvec", tv, *MICRO), 2, "token positions")
    _empty(tmp_path / "out")


def test_export_nan_weights(tmp_path):
    assert_one_line(_export(tmp_path, "--model", nan_model(tmp_path)), 2, "NaN/Inf")
    _empty(tmp_path / "out")


def test_export_corrupt_model(tmp_path):
    (tmp_path / "m.safetensors").write_bytes(b"\x00" * 64)
    assert_one_line(_export(tmp_path, "--model", tmp_path / "m.safetensors"), 2, "m.safetensors")


def test_export_out_is_a_file(tmp_path):
    (tmp_path / "out").write_text("x")
    assert_one_line(_export(tmp_path, *MICRO), 2, "out")


def test_export_taskvector_for_another_task(tmp_path):
    tv = taskvector_file(tmp_path, task="inpainting")
    assert_one_line(_export(tmp_path, "--taskvec", tv, *MICRO), 2, "inpainting")
    _empty(tmp_path / "out")


@pytest.mark.parametrize("where", ["graph", "sidecar"])
def test_export_disk_full_publishes_nothing(tmp_path, monkeypatch, where):
    import export.onnx_export as ox

    tv = taskvector_file(tmp_path)
    monkeypatch.setattr(ox, "_save" if where == "graph" else "_write_sidecar", enospc)
    assert_one_line(_export(tmp_path, "--taskvec", tv, "--no-check", *MICRO), 1, "disk full")
    _empty(tmp_path / "out")


def test_export_rename_fails_midway_takes_back(tmp_path, monkeypatch):
    """The graph is renamed into place, then the sidecar's rename fails: the graph is taken back."""
    import os

    import export.onnx_export as ox

    tv = taskvector_file(tmp_path)
    real = os.replace

    def replace(src, dst):
        if str(dst).endswith(".json"):
            raise OSError(5, "Input/output error", str(dst))
        return real(src, dst)

    monkeypatch.setattr(ox.os, "replace", replace)
    assert_one_line(_export(tmp_path, "--taskvec", tv, "--no-check", *MICRO), 1, "Input/output error")
    _empty(tmp_path / "out")


def test_export_bad_halo(tmp_path):
    assert_one_line(_export(tmp_path, "--halo", "9", *MICRO), 2, "--halo")


# ------------------------------------------------------------------ tvbench

def _bench(*args):
    from benchmarks.cli import main

    return invoke(main, ["--task", "lowlight", *MICRO, "--iters", "1", "--warmup", "0", *args])


@pytest.mark.parametrize("args,needle", [(["--batch", "x"], "--batch"), (["--batch", "0"], "--batch"),
                                         (["--iters", "0"], "--iters"), (["--backend", "nope"], "nope"),
                                         (["--precision", "fp8"], "fp8")])
def test_bench_bad_arguments(args, needle):
    assert_one_line(_bench(*args), 2, needle)


def test_bench_source_bomb(tmp_path):
    d = tmp_path / "frames"
    d.mkdir()
    bomb_png(d / "a.png", 9000)
    assert_one_line(_bench("--source", d, "--json", tmp_path / "r.json"), 2, "MP")
    assert snapshot(tmp_path) == {"frames", "frames/a.png"}


def test_bench_source_truncated(tmp_path):
    d = tmp_path / "frames"
    d.mkdir()
    truncated(d / "a.jpg")
    assert_one_line(_bench("--source", d), 2, "truncated")


def test_bench_json_is_a_folder(tmp_path):
    (tmp_path / "r.json").mkdir()
    assert_one_line(_bench("--json", tmp_path / "r.json"), 2, "folder")
    assert_nothing_left(tmp_path, {"r.json"})
