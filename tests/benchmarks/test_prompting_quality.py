"""benchmarks.prompting_quality: the table's rows and the seen/unseen in-painting comparison."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from benchmarks.prompting_quality import main


def test_quality_table_with_seen_unseen_rows(tmp_path):
    out = tmp_path / "q.json"
    res = CliRunner().invoke(main, ["--model", "random:micro_pixel", "--n", "6", "--seen-unseen", "--json", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert set(data["rows"]) == {"lowlight", "inpainting", "colorization", "segmentation", "task_identification"}
    seen = data["inpainting_seen_unseen"]
    assert list(seen) == ["training_photos", "heldout_photos", "procedural_scenes"]
    for r in seen.values():
        assert {"model_hole_psnr", "model_ssim", "mean_colour_hole_psnr", "opencv_telea_ssim"} <= set(r)
        # the baselines touch only the hole: Telea's border-aware fill beats one flat colour
        assert r["opencv_telea_hole_psnr"] > r["mean_colour_hole_psnr"]
        assert 0 < r["mean_colour_ssim"] < 1
    # the markdown table printed after the main one: one row per image set
    assert res.output.count("| training photos |") == 1 and "| procedural scenes |" in res.output


def test_paint_sigma_sweep(tmp_path):
    out = tmp_path / "q.json"
    args = ["--model", "random:micro_pixel", "--n", "4", "--paint-sigma-sweep", "0,3", "--json", str(out)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    sweep = json.loads(out.read_text())["paint_sigma_sweep"]
    assert list(sweep) == ["0", "3"]
    for rows in sweep.values():
        assert list(rows) == ["training_photos", "heldout_photos", "procedural_scenes"]
        assert all(set(r) == {"model_hole_psnr", "model_ssim"} for r in rows.values())
    # same weights, same queries: only the smoothing of the painted pixels differs
    assert sweep["0"]["heldout_photos"] != sweep["3"]["heldout_photos"]
    assert "| 3 |" in res.output


@pytest.mark.parametrize("value", ["0,x", "-1"])
def test_paint_sigma_sweep_bad_value(value):
    res = CliRunner().invoke(main, ["--model", "random:micro_pixel", "--n", "4", "--paint-sigma-sweep", value])
    assert res.exit_code == 2 and "--paint-sigma-sweep" in res.output
