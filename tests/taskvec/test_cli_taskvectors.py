"""The collect/search/evaluate/figure commands: one-line errors, no partial output."""

import pytest
import torch
from click.testing import CliRunner

from taskvec.model.checkpoint import load_model
from taskvec.cli.main import main
from taskvec.vectors.taskvector import TaskVector

MODEL = ["--model", "random:micro_pixel"]


@pytest.fixture()
def runner():
    return CliRunner()


@pytest.fixture(scope="module")
def folder(random_image_folder):
    return random_image_folder(4)


def _fails(result, *needles):
    assert result.exit_code == 2, result.output
    err = result.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in result.output
    for n in needles:
        assert n in err, err


def test_commands_are_registered(runner):
    out = runner.invoke(main, ["--help"]).output
    for cmd in ("collect", "search", "evaluate", "figure"):
        assert cmd in out
    assert "packaged:train" in runner.invoke(main, ["collect", "--help"]).output


def test_collect_and_resume(runner, folder, tmp_path):
    out = tmp_path / "m.safetensors"
    base = ["collect", "--task", "lowlight", "--images", str(folder), "--out", str(out), "--batch", "2", *MODEL]
    r = runner.invoke(main, base + ["--n", "2"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, base + ["--n", "4", "--resume"])
    assert r.exit_code == 0 and "(4 canvases)" in r.output
    one = tmp_path / "one.safetensors"
    assert runner.invoke(main, [*base[:6], str(one), *base[7:], "--n", "4"]).exit_code == 0
    from taskvec.vectors.activations import RunningMeans

    a, b = RunningMeans.load(out), RunningMeans.load(one)
    assert all(torch.equal(a.sums[k], b.sums[k]) for k in a.sums)


def test_bad_input_is_one_line(runner, tmp_path, folder):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "o.safetensors"
    _fails(runner.invoke(main, ["collect", "--task", "lowlight", "--images", str(empty), "--out", str(out), *MODEL]), "no images")
    _fails(runner.invoke(main, ["collect", "--task", "segmentation", "--images", str(folder), "--out", str(out), *MODEL]),
           "needs foreground masks")  # fmt: skip
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    _fails(runner.invoke(main, ["search", "--task", "lowlight", "--images", str(folder), "--out", str(out),
                                "--means", str(bad), *MODEL]), "not a readable means file")  # fmt: skip
    r = runner.invoke(main, ["search", "--task", "nope", "--images", str(folder), "--out", str(out)])
    assert r.exit_code == 2 and "nope" in r.output
    assert not out.exists() and not out.with_suffix(".json").exists() and not out.with_suffix(".png").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_vector_for_another_model_refused(runner, tmp_path, folder):
    from taskvec.vectors.activations import collect_means
    from taskvec.vectors.sites import enumerate_sites
    from taskvec.vectors.taskvector import make_taskvector

    other = load_model("random:micro_pixel", seed=1)
    means = collect_means(other, "lowlight", torch.rand(2, 3, 111, 111), 2, batch=2, progress=False)
    sites = enumerate_sites(other.cfg)
    tv = make_taskvector(other, means, sites, torch.ones(len(sites)))
    path = tmp_path / "other.safetensors"
    tv.save(path)
    js = tmp_path / "r.json"
    args = ["evaluate", "--task", "lowlight", "--images", str(folder), "--json", str(js), "--taskvec", str(path),
            "--cma", str(path), "--grs", str(path), *MODEL]  # fmt: skip
    _fails(runner.invoke(main, args), "was made for model")
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x01" * 64)
    bad_args = [str(corrupt) if a == str(path) else a for a in args]
    _fails(runner.invoke(main, bad_args), "not a readable task-vector file")
    png = tmp_path / "f.png"
    _fails(runner.invoke(main, ["figure", "--task", "lowlight", "--images", str(folder), "--out", str(png),
                                "--taskvec", str(path), "--cma", str(path), "--grs", str(path), *MODEL]),
           "was made for model")  # fmt: skip
    assert not js.exists() and not png.exists()


def test_search_evaluate_figure(runner, tmp_path, folder):
    tv_path = tmp_path / "tv.safetensors"
    r = runner.invoke(main, ["search", "--task", "inpainting", "--images", str(folder), "--out", str(tv_path),
                             "--steps", "2", "--k", "2", "--r", "1", "--n-means", "2", *MODEL])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert tv_path.with_suffix(".png").is_file() and TaskVector.load(tv_path).method == "reinforce"
    js = tmp_path / "e.json"
    vec = ["--taskvec", str(tv_path), "--cma", str(tv_path), "--grs", str(tv_path)]
    r = runner.invoke(main, ["evaluate", "--task", "inpainting", "--images", str(folder), "--json", str(js), *vec, *MODEL])
    assert r.exit_code == 0, r.output
    import json

    rows = json.loads(js.read_text())["rows"]
    assert [row["method"] for row in rows] == ["zero-shot", "one-shot", "cma", "grs", "task-vector"]
    assert all(row["n_images"] == 4 and {"psnr", "hole_psnr", "pasted_ssim"} <= set(row["metrics"]) for row in rows)
    png = tmp_path / "f.png"
    r = runner.invoke(main, ["figure", "--task", "inpainting", "--images", str(folder), "--out", str(png), "--rows", "2",
                             *vec, *MODEL])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert png.read_bytes()[:4] == b"\x89PNG"
