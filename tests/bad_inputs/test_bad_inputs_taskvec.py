"""Bad input and faults for ``taskvec`` (info, convert, prompt, train, collect, search,
evaluate, figure): one ``error:`` line, non-zero exit, no traceback, nothing left behind."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from badinput import (assert_nothing_left, assert_one_line, bomb_png, enospc, good_image, invoke, nan_model,
                      taskvector_file, truncated)
from taskvec.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
MICRO = ["--model", "random:micro_pixel"]


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    return bomb_png(tmp_path_factory.mktemp("bomb") / "bomb.png")


def _prompt(tmp_path, query, *extra):
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    before = {p.name for p in out.iterdir()}
    r = invoke(main, ["prompt", "--task", "lowlight", "--query", query, "--out", out / "a.png", *MICRO, *extra])
    assert {p.name for p in out.iterdir()} == before
    return r


# ------------------------------------------------------------------ decoding (bounded)

def test_decompression_bomb_is_refused_in_bounded_memory(tmp_path, bomb):
    """1.1 MB that decodes to 20 000 × 20 000: refused from the header, peak RSS < 1 GB."""
    code = ("import resource, sys\nfrom taskvec.cli.main import main\ntry:\n    main()\nfinally:\n"
            "    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    proc = subprocess.run([sys.executable, "-c", code, "prompt", "--task", "lowlight", "--query", str(bomb),
                           "--out", str(tmp_path / "a.png"), *MICRO], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "20000x20000" in lines[0] and "--max-pixels" in lines[0]
    peak_kib = int(proc.stdout.strip().splitlines()[-1])
    assert peak_kib < 1024 * 1024, f"peak RSS {peak_kib / 1024:.0f} MiB"
    assert not (tmp_path / "a.png").exists() and bomb.stat().st_size < 2 << 20


def test_bomb_refused_in_process(tmp_path, bomb):
    assert_one_line(_prompt(tmp_path, bomb), 2, "400.0 MP")


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_image_refused(tmp_path, suffix):
    assert_one_line(_prompt(tmp_path, truncated(tmp_path / f"q{suffix}")), 2, "truncated")


def test_not_an_image(tmp_path):
    (tmp_path / "q.png").write_text("hello, not a picture\n")
    assert_one_line(_prompt(tmp_path, tmp_path / "q.png"), 2, "q.png")


def test_empty_image_file(tmp_path):
    (tmp_path / "q.jpg").write_bytes(b"")
    assert_one_line(_prompt(tmp_path, tmp_path / "q.jpg"), 2, "q.jpg")


def test_pixel_limit_flag(tmp_path):
    q = good_image(tmp_path / "q.png", 1200, 1000)
    assert_one_line(_prompt(tmp_path, q, "--max-pixels", "1"), 2, "1.2 MP", "--max-pixels")
    r = invoke(main, ["prompt", "--task", "lowlight", "--query", q, "--out", tmp_path / "ok.png", *MICRO])
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "ok.png").is_file()


def test_pixel_limit_environment(tmp_path):
    q = good_image(tmp_path / "q.png", 1200, 1000)
    r = invoke(main, ["prompt", "--task", "lowlight", "--query", q, "--out", tmp_path / "o" / "a.png", *MICRO],
               env={"TASKVEC_MAX_PIXELS": "0.5"})
    assert_one_line(r, 2, "0.5 MP")
    assert not (tmp_path / "o" / "a.png").exists()


def test_file_size_limit(tmp_path):
    q = good_image(tmp_path / "q.png", 32, 32)
    with open(q, "ab") as f:  # a small image padded with 12 MB of trailing junk
        f.write(os.urandom(12 << 20))
    assert_one_line(_prompt(tmp_path, q, "--max-pixels", "1"), 2, "MiB", "--max-pixels")


def test_bad_example_image(tmp_path):
    q = good_image(tmp_path / "q.png")
    assert_one_line(_prompt(tmp_path, q, "--example-in", truncated(tmp_path / "e.png"), "--example-out", q), 2)


def test_prompt_write_fails_disk_full(tmp_path, monkeypatch):
    import taskvec.vectors.prompting as P

    q = good_image(tmp_path / "q.png")
    monkeypatch.setattr(P.cv2, "imwrite", lambda *a, **k: enospc(None, a[0]))
    out = tmp_path / "out"
    out.mkdir()
    r = invoke(main, ["prompt", "--task", "lowlight", "--query", q, "--out", out / "a.png", *MICRO])
    assert_one_line(r, 1, "disk full")
    assert_nothing_left(out)


# ------------------------------------------------------------------ non-finite weights and vectors

def test_nan_weights_refused(tmp_path):
    model = nan_model(tmp_path)
    q = good_image(tmp_path / "q.png")
    r = invoke(main, ["prompt", "--task", "lowlight", "--query", q, "--out", tmp_path / "a.png", "--model", model])
    assert_one_line(r, 2, "nan", "nan.safetensors")
    assert not (tmp_path / "a.png").exists()


def test_info_nan_weights(tmp_path):
    assert_one_line(invoke(main, ["info", "--model", nan_model(tmp_path)]), 2, "NaN/Inf")


def _nan_edit(t):
    key = sorted(k for k in t if k.endswith("/add"))[0]
    t[key][0, 0] = float("inf")


def test_nan_task_vector_refused(tmp_path):
    tv = taskvector_file(tmp_path, edit=_nan_edit)
    q = good_image(tmp_path / "q.png")
    r = invoke(main, ["prompt", "--task", "lowlight", "--query", q, "--out", tmp_path / "a.png", "--zero-shot",
                      "--taskvec", tv, *MICRO])
    assert_one_line(r, 2, "NaN/Inf", "/add")
    assert not (tmp_path / "a.png").exists()


def test_task_vector_wrong_token_count(tmp_path):
    def cut(t):
        for k in list(t):
            t[k] = t[k][:-3].contiguous()

    tv = taskvector_file(tmp_path, edit=cut)
    q = good_image(tmp_path / "q.png")
    r = invoke(main, ["prompt", "--task", "lowlight", "--query", q, "--out", tmp_path / "a.png", "--zero-shot",
                      "--taskvec", tv, *MICRO])
    assert_one_line(r, 2, "token positions")


def test_corrupt_task_vector(tmp_path):
    bad = tmp_path / "tv.safetensors"
    bad.write_bytes(os.urandom(300))
    q = good_image(tmp_path / "q.png")
    r = invoke(main, ["prompt", "--task", "lowlight", "--query", q, "--out", tmp_path / "a.png", "--zero-shot",
                      "--taskvec", bad, *MICRO])
    assert_one_line(r, 2, "tv.safetensors")


def test_corrupt_weights(tmp_path):
    bad = tmp_path / "m.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ")
    assert_one_line(invoke(main, ["info", "--model", bad]), 2, "m.safetensors")


def test_weights_changed_without_card(tmp_path):
    from taskvec.model.checkpoint import load_model, save_model

    path = save_model(load_model("random:micro_pixel"), tmp_path / "m.safetensors")
    card = json.loads(path.with_suffix(".json").read_text())
    card["fingerprint"] = "0" * 64
    path.with_suffix(".json").write_text(json.dumps(card))
    assert_one_line(invoke(main, ["info", "--model", path]), 2, "card")


# ------------------------------------------------------------------ convert

def _pth(tmp_path: Path, arch: str = "micro_pixel") -> Path:
    from taskvec.model.checkpoint import load_model

    sd = load_model(f"random:{arch}").state_dict()
    path = tmp_path / "ckpt.pth"
    torch.save({"model": sd, "args": argparse.Namespace(model=arch), "epoch": 1}, str(path))
    return path


def test_convert_missing_source(tmp_path):
    assert_one_line(invoke(main, ["convert", tmp_path / "nope.pth", tmp_path / "m.safetensors"]), 2, "nope.pth")
    assert_nothing_left(tmp_path)


def test_convert_truncated_source(tmp_path):
    src = _pth(tmp_path)
    src.write_bytes(src.read_bytes()[:5000])
    before = {"ckpt.pth"}
    assert_one_line(invoke(main, ["convert", src, tmp_path / "m.safetensors"]), 2, "ckpt.pth")
    assert_nothing_left(tmp_path, before)


def test_convert_malicious_pickle(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    src = tmp_path / "evil.pth"
    torch.save({"model": {}, "x": Evil()}, str(src))
    assert_one_line(invoke(main, ["convert", src, tmp_path / "m.safetensors"]), 2, "refused")
    assert not (tmp_path / "pwned").exists()
    assert_nothing_left(tmp_path, {"evil.pth"})


def test_convert_destination_is_a_folder(tmp_path):
    src = _pth(tmp_path)
    (tmp_path / "m.safetensors").mkdir()
    assert_one_line(invoke(main, ["convert", src, tmp_path / "m.safetensors"]), 2)
    assert_nothing_left(tmp_path, {"ckpt.pth", "m.safetensors"})


def test_convert_wrong_suffix(tmp_path):
    src = _pth(tmp_path)
    assert_one_line(invoke(main, ["convert", src, tmp_path / "m.bin"]), 2, ".safetensors")
    assert_nothing_left(tmp_path, {"ckpt.pth"})


@pytest.mark.parametrize("where", ["weights", "card"])
def test_convert_disk_full_publishes_nothing(tmp_path, monkeypatch, where):
    """A full disk while writing either file leaves neither: no model without its card."""
    import safetensors.torch

    src = _pth(tmp_path)
    if where == "weights":
        monkeypatch.setattr(safetensors.torch, "save_file", enospc)
    else:
        real = Path.write_text

        def write_text(self, *a, **k):
            if self.name.startswith(".m.json"):
                enospc(None, str(self))
            return real(self, *a, **k)

        monkeypatch.setattr(Path, "write_text", write_text)
    assert_one_line(invoke(main, ["convert", src, tmp_path / "m.safetensors"]), 1, "disk full")
    assert_nothing_left(tmp_path, {"ckpt.pth"})


def test_convert_nan_checkpoint(tmp_path):
    from taskvec.model.checkpoint import load_model

    sd = dict(load_model("random:micro_pixel").state_dict())
    k = next(k for k in sd if k.endswith("weight"))
    sd[k] = sd[k].clone()
    sd[k].view(-1)[3] = float("nan")
    torch.save({"model": sd, "args": argparse.Namespace(model="micro_pixel")}, str(tmp_path / "c.pth"))
    assert_one_line(invoke(main, ["convert", tmp_path / "c.pth", tmp_path / "m.safetensors"]), 2, "NaN/Inf", k)
    assert_nothing_left(tmp_path, {"c.pth"})


# ------------------------------------------------------------------ train

def _train(tmp_path, *args):
    return invoke(main, ["train", "--config", "micro_pixel", "--out", tmp_path / "run", *args])


@pytest.mark.parametrize("steps", ["0", "-5"])
def test_train_steps_not_positive(tmp_path, steps):
    assert_one_line(_train(tmp_path, "--steps", steps), 2, "--steps")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("device,needle", [("cuda", "CUDA is not available"), ("banana", "--device"),
                                           ("cuda:x", "--device"), ("mps", "not supported")])
def test_train_bad_device(tmp_path, device, needle):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    assert_one_line(_train(tmp_path, "--device", device, "--steps", "1"), 2, needle)
    assert not (tmp_path / "run").exists()


def test_train_batch_not_multiple_of_4(tmp_path):
    assert_one_line(_train(tmp_path, "--batch", "6", "--steps", "1"), 2, "--batch")


def test_train_init_of_another_architecture(tmp_path):
    from taskvec.model.checkpoint import load_model, save_model

    other = save_model(load_model("random:tiny"), tmp_path / "tiny.safetensors")
    assert_one_line(_train(tmp_path, "--init", other, "--steps", "1", "--device", "cpu"), 2, "do not match micro_pixel")


def test_train_init_corrupt(tmp_path):
    bad = tmp_path / "w.safetensors"
    bad.write_bytes(b"garbage" * 10)
    assert_one_line(_train(tmp_path, "--init", bad, "--steps", "1", "--device", "cpu"), 2, "--init")


def test_train_init_nan(tmp_path):
    assert_one_line(_train(tmp_path, "--init", nan_model(tmp_path), "--steps", "1", "--device", "cpu"), 2, "NaN/Inf")


@pytest.mark.parametrize("kind", ["truncated", "foreign", "other-arch"])
def test_train_resume_bad_checkpoint(tmp_path, kind):
    from taskvec.model.checkpoint import load_model

    run = tmp_path / "run"
    run.mkdir()
    ckpt = run / "last.pt"
    if kind == "truncated":
        torch.save({"model": load_model("random:micro_pixel").state_dict(), "opt": {}, "gen": torch.zeros(3),
                    "step": 1, "scale": {}}, str(ckpt))
        ckpt.write_bytes(ckpt.read_bytes()[:2000])
    elif kind == "foreign":
        torch.save({"weights": torch.zeros(3)}, str(ckpt))
    else:
        torch.save({"model": load_model("random:tiny").state_dict(), "opt": {}, "gen": torch.zeros(3),
                    "step": 1, "scale": {}}, str(ckpt))
    before = {"last.pt"}
    assert_one_line(_train(tmp_path, "--resume", "--steps", "2", "--device", "cpu"), 2, "last.pt")
    assert_nothing_left(run, before)


def test_train_resume_nothing(tmp_path):
    assert_one_line(_train(tmp_path, "--resume", "--steps", "2", "--device", "cpu"), 2, "nothing to resume")


# ------------------------------------------------------------------ collect / search / evaluate / figure

@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("imgs")
    for i in range(4):
        good_image(d / f"im{i}.png", 40, 48, seed=i)
    return d


def _search(tmp_path, images, *args):
    out = tmp_path / "o"
    out.mkdir(exist_ok=True)
    r = invoke(main, ["search", "--task", "lowlight", "--images", images, "--out", out / "tv.safetensors", *MICRO,
                      "--n-means", "4", *args])
    assert_nothing_left(out)
    return r


@pytest.mark.parametrize("args,needle", [(["--k", "0"], "--k"), (["--k", "1"], "--k"), (["--r", "0"], "--r"),
                                         (["--steps", "-1"], "--steps"), (["--steps", "0"], "--steps"),
                                         (["--n-means", "0"], "--n-means"), (["--pool", "0"], "--pool")])
def test_search_bad_arguments(tmp_path, images, args, needle):
    assert_one_line(_search(tmp_path, images, *args), 2, needle)


def test_search_nan_means(tmp_path, images):
    from taskvec.vectors.activations import RunningMeans
    from taskvec.model.checkpoint import load_model

    rm = RunningMeans.empty(load_model("random:micro_pixel"), "lowlight")
    means = tmp_path / "m.safetensors"
    rm.save(means)

    def edit(t):
        k = next(k for k in t if k.endswith("/sum"))
        t[k].view(-1)[0] = float("nan")

    from badinput import rewrite_safetensors

    rewrite_safetensors(means, edit)
    assert_one_line(_search(tmp_path, images, "--means", means, "--steps", "1"), 2, "NaN/Inf", "m.safetensors")


def test_search_means_file_missing(tmp_path, images):
    assert_one_line(_search(tmp_path, images, "--means", tmp_path / "none.safetensors"), 2, "none.safetensors")


def test_collect_bad_arguments(tmp_path, images):
    r = invoke(main, ["collect", "--task", "lowlight", "--images", images, "--out", tmp_path / "m.safetensors",
                      "--n", "0", *MICRO])
    assert_one_line(r, 2, "--n")
    assert_nothing_left(tmp_path)


def test_collect_folder_with_bomb(tmp_path, bomb):
    d = tmp_path / "imgs"
    d.mkdir()
    os.symlink(bomb, d / "big.png")
    r = invoke(main, ["collect", "--task", "lowlight", "--images", d, "--out", tmp_path / "m.safetensors", "--n", "4",
                      *MICRO])
    assert_one_line(r, 2, "big.png", "MP")
    assert_nothing_left(tmp_path, {"imgs", "imgs/big.png"})


def test_collect_folder_with_truncated_image(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    good_image(d / "a.png")
    truncated(d / "b.jpg")
    r = invoke(main, ["collect", "--task", "lowlight", "--images", d, "--out", tmp_path / "m.safetensors", "--n", "4",
                      *MICRO])
    assert_one_line(r, 2, "b.jpg")
    assert_nothing_left(tmp_path, {"imgs", "imgs/a.png", "imgs/b.jpg"})


def test_collect_missing_folder(tmp_path):
    r = invoke(main, ["collect", "--task", "lowlight", "--images", tmp_path / "none", "--out", tmp_path / "m.safetensors",
                      *MICRO])
    assert_one_line(r, 2, "none")
    assert_nothing_left(tmp_path)


def test_collect_disk_full(tmp_path, images, monkeypatch):
    import safetensors.torch

    monkeypatch.setattr(safetensors.torch, "save_file", enospc)
    r = invoke(main, ["collect", "--task", "lowlight", "--images", images, "--out", tmp_path / "m.safetensors",
                      "--n", "4", "--batch", "4", *MICRO])
    assert_one_line(r, 1, "disk full")
    assert_nothing_left(tmp_path)


def test_evaluate_nan_result_not_written(tmp_path, images, monkeypatch):
    import taskvec.evaluation.evaluate as E

    def fake(*a, **k):
        return {"task": "lowlight", "rows": [{"method": "zero-shot", "metrics": {"psnr": float("nan")}}]}

    monkeypatch.setattr(E, "run_evaluate", fake)
    r = invoke(main, ["evaluate", "--task", "lowlight", "--images", images, "--json", tmp_path / "r.json", *MICRO])
    assert_one_line(r, 2, "zero-shot", "nan")
    assert_nothing_left(tmp_path)


def test_evaluate_nan_task_vector(tmp_path, images):
    tv = taskvector_file(tmp_path, edit=_nan_edit)
    r = invoke(main, ["evaluate", "--task", "lowlight", "--images", images, "--json", tmp_path / "r.json",
                      "--taskvec", tv, "--cma", tv, "--grs", tv, "--n", "4", *MICRO])
    assert_one_line(r, 2, "NaN/Inf")
    assert not (tmp_path / "r.json").exists()


def test_evaluate_too_few_queries(tmp_path, images):
    r = invoke(main, ["evaluate", "--task", "lowlight", "--images", images, "--json", tmp_path / "r.json", "--n", "0",
                      *MICRO])
    assert_one_line(r, 2, "--n")


def test_figure_bad_rows(tmp_path, images):
    r = invoke(main, ["figure", "--task", "lowlight", "--images", images, "--out", tmp_path / "f.png", "--rows", "0",
                      *MICRO])
    assert_one_line(r, 2, "--rows")
    assert_nothing_left(tmp_path)


def test_figure_wrong_token_vector(tmp_path, images):
    def cut(t):
        for k in list(t):
            t[k] = t[k][:10].contiguous()

    tv = taskvector_file(tmp_path, edit=cut)
    before = {"tv.safetensors", "tv.json"}
    r = invoke(main, ["figure", "--task", "lowlight", "--images", images, "--out", tmp_path / "f.png",
                      "--taskvec", tv, "--cma", tv, "--grs", tv, *MICRO])
    assert_one_line(r, 2, "token positions")
    assert_nothing_left(tmp_path, before)


# ------------------------------------------------------------------ the boundary itself

def test_unexpected_error_is_one_line_with_debug_hint(tmp_path, monkeypatch):
    import taskvec.model.checkpoint as C

    monkeypatch.setattr(C, "model_info", lambda spec: (_ for _ in ()).throw(RuntimeError("boom\nsecond line")))
    assert_one_line(invoke(main, ["info", *MICRO]), 1, "internal error", "boom second line", "--debug")


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback(tmp_path, monkeypatch, how):
    import taskvec.model.checkpoint as C

    monkeypatch.setattr(C, "model_info", lambda spec: (_ for _ in ()).throw(RuntimeError("boom")))
    args, env = (["info", "--debug", *MICRO], None) if how == "flag" else (["info", *MICRO], {"TASKVEC_DEBUG": "1"})
    r = invoke(main, args, env=env)
    assert r.exit_code == 1
    assert "Traceback" in r.stderr and r.stderr.strip().splitlines()[-1].startswith("error: internal error")


def test_library_error_is_one_line(tmp_path, monkeypatch):
    import cv2

    import taskvec.vectors.prompting as P

    def broken(*a, **k):
        raise cv2.error("OpenCV(4.x) /io/loadsave.cpp:1 imwrite_: error: (-2:Unspecified) could not find a writer")

    q = good_image(tmp_path / "q.png")
    monkeypatch.setattr(P.cv2, "imwrite", broken)
    r = invoke(main, ["prompt", "--task", "lowlight", "--query", q, "--out", tmp_path / "o" / "a.png", *MICRO])
    assert_one_line(r, 2, "cv2", "could not find a writer")
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())
