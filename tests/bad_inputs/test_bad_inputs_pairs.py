"""Bad pairs folders (``--task pairs:DIR``) for every command that takes a task: one ``error:``
line, non-zero exit, no traceback, nothing written (issue 20)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from badinput import assert_nothing_left, assert_one_line, good_image, invoke
from taskvec.cli.main import main

MICRO = ["--model", "random:micro_pixel"]


def _pairs(root: Path, names=("a", "b", "c", "d"), size=(40, 48), target_size=None) -> Path:
    for sub in ("input", "target"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i, n in enumerate(names):
        good_image(root / "input" / f"{n}.png", *size, seed=i)
        good_image(root / "target" / f"{n}.png", *(target_size or size), seed=i + 10)
    return root


def _empty(tmp: Path) -> tuple[Path, str]:
    d = tmp / "pairs"
    (d / "input").mkdir(parents=True)
    (d / "target").mkdir()
    return d, "empty"


def _unmatched(tmp: Path) -> tuple[Path, str]:
    d = _pairs(tmp / "pairs")
    (d / "target" / "c.png").rename(d / "target" / "zz.png")
    return d, "unmatched"


def _mixed_sizes(tmp: Path) -> tuple[Path, str]:
    d = _pairs(tmp / "pairs")
    good_image(d / "target" / "b.png", 30, 30)
    return d, "same size"


def _target_not_image(tmp: Path) -> tuple[Path, str]:
    d = _pairs(tmp / "pairs")
    (d / "target" / "c.png").unlink()
    (d / "target" / "c.txt").write_text("not a picture\n")
    return d, "c.txt"


def _target_corrupt(tmp: Path) -> tuple[Path, str]:
    d = _pairs(tmp / "pairs")
    (d / "target" / "c.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    return d, "c.png"


def _no_layout(tmp: Path) -> tuple[Path, str]:
    d = tmp / "pairs"
    d.mkdir()
    good_image(d / "x.png")
    return d, "expected input/"


def _missing(tmp: Path) -> tuple[Path, str]:
    return tmp / "nowhere", "does not exist"


BAD = [_empty, _unmatched, _mixed_sizes, _target_not_image, _target_corrupt, _no_layout, _missing]


def _commands(d: Path, out: Path) -> dict[str, tuple]:
    from export.cli import main as tvexport
    from runtime.cli import main as tvrun

    spec = f"pairs:{d}"
    return {
        "collect": (main, ["collect", "--task", spec, "--out", out / "m.safetensors", "--n", "4", *MICRO]),
        "search": (main, ["search", "--task", spec, "--out", out / "tv.safetensors", "--n-means", "4", "--steps", "1",
                          *MICRO]),
        "evaluate": (main, ["evaluate", "--task", spec, "--json", out / "r.json", "--skip-baselines", *MICRO]),
        "figure": (main, ["figure", "--task", spec, "--out", out / "f.png", "--skip-baselines", *MICRO]),
        "prompt": (main, ["prompt", "--task", spec, "--query", d.parent / "q.png", "--out", out / "a.png", *MICRO]),
        "tvexport": (tvexport, ["--task", spec, "--graph", "in-context", "--out", out / "exp", *MICRO]),
        "tvrun": (tvrun, ["--source", d.parent / "q.png", "--task", spec, "--onnx", d.parent / "g.onnx",
                          "--headless", "--output", out / "video.mp4"]),
    }  # fmt: skip


@pytest.mark.parametrize("command", ["collect", "search", "evaluate", "figure", "prompt", "tvexport", "tvrun"])
@pytest.mark.parametrize("make", BAD, ids=lambda f: f.__name__.strip("_"))
def test_bad_pairs_folder(tmp_path, make, command):
    d, needle = make(tmp_path)
    good_image(tmp_path / "q.png")
    out = tmp_path / "out"
    out.mkdir()
    before = {p for p in (tmp_path.rglob("*"))}
    cmd, args = _commands(d, out)[command]
    assert_one_line(invoke(cmd, args), 2, needle)
    assert_nothing_left(out)
    assert {p for p in tmp_path.rglob("*")} == before


@pytest.mark.parametrize("command", ["collect", "search"])
def test_one_pair_is_not_enough_to_search(tmp_path, command):
    d = _pairs(tmp_path / "pairs", names=("only",))
    out = tmp_path / "out"
    out.mkdir()
    cmd, args = _commands(d, out)[command]
    assert_one_line(invoke(cmd, args), 2, "need at least 2")
    assert_nothing_left(out)


def test_iou_named_for_non_mask_targets(tmp_path):
    d = _pairs(tmp_path / "pairs")
    out = tmp_path / "out"
    out.mkdir()
    r = invoke(main, ["collect", "--task", f"pairs:{d}:iou", "--out", out / "m.safetensors", "--n", "4", *MICRO])
    assert_one_line(r, 2, "binary")
    assert_nothing_left(out)


def test_pairs_images_must_be_a_split(tmp_path):
    d = _pairs(tmp_path / "pairs")
    out = tmp_path / "out"
    out.mkdir()
    r = invoke(main, ["collect", "--task", f"pairs:{d}", "--images", "packaged:train", "--out", out / "m.safetensors",
                      *MICRO])  # fmt: skip
    assert_one_line(r, 2, "train, val, all")
    assert_nothing_left(out)


def test_builtin_task_still_needs_images(tmp_path):
    r = invoke(main, ["collect", "--task", "lowlight", "--out", tmp_path / "m.safetensors", *MICRO])
    assert_one_line(r, 2, "--images is required")
    assert_nothing_left(tmp_path)


def test_vector_of_other_pairs_refused(tmp_path):
    """A vector searched on one set of pairs is refused for other pairs and for a built-in task."""
    from export.cli import main as tvexport
    from taskvec.data.tasks import get_task

    a = _pairs(tmp_path / "x" / "pairs")
    b = _pairs(tmp_path / "y" / "pairs")  # same folder name, one target one grey level brighter
    img = cv2.imread(str(b / "target" / "d.png"))
    cv2.imwrite(str(b / "target" / "d.png"), np.clip(img.astype(int) + 1, 0, 255).astype(np.uint8))  # one pixel level
    out = tmp_path / "out"
    out.mkdir()
    tv = out / "tv.safetensors"
    r = invoke(main, ["search", "--task", f"pairs:{a}", "--out", tv, "--n-means", "4", "--steps", "1", "--k", "2", *MICRO])
    assert r.exit_code == 0, r.stderr
    ta, tb = get_task(f"pairs:{a}"), get_task(f"pairs:{b}")
    assert ta.label == tb.label and ta.digest != tb.digest and ta.name != tb.name
    before = set(out.rglob("*"))
    for spec, needle in ((f"pairs:{b}", tb.name), ("lowlight", "lowlight")):
        r = invoke(tvexport, ["--task", spec, "--taskvec", tv, "--out", out, *MICRO])
        assert_one_line(r, 2, ta.name, needle)
    assert set(out.rglob("*")) == before
