"""A task the product was never told about, end to end (issue 20): pairs made on the fly
→ collect → search → evaluate → tvexport → tvrun on a clip, each step's output checked.

Two kinds of pairs, both from the packaged validation photos (never seen by ``tiny``):
``dusk`` (gamma 1.6, gain 0.4, blue cast — unlike the built-in low-light constructions;
PSNR) and ``masks`` (scenes → white-on-black foreground masks; IoU). Searches are tiny
(32 canvases of means, 6 REINFORCE steps starting at p = 0.5) so the test stays in the
default suite; the vector must still beat zero-shot on the pairs' validation split.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from taskvec.cli.main import main as taskvec_main
from taskvec.data.pairs_demo import dusk, write_example_pairs

N_PAIRS = 12


def _ok(result):
    assert result.exit_code == 0, (result.output, result.stderr if hasattr(result, "stderr") else "")
    return result


def _clip(path: Path, kind: str, frames: int = 4, size: int = 144) -> Path:
    """A short MJPG clip of ``kind`` inputs (other crops of the validation photos)."""
    from taskvec.data.images import packaged_photos, prepare_photos, random_crops
    from taskvec.data.scenes import procedural_scenes

    gen = torch.Generator().manual_seed(99)
    crops = random_crops(prepare_photos(list(packaged_photos("val").values())), frames, gen, size=size)
    x = dusk(crops) if kind == "dusk" else procedural_scenes(frames, gen, crops, size=size)[0]
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (size, size))
    for t in x:
        w.write(np.ascontiguousarray((t.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)[:, :, ::-1]))
    w.release()
    return path


def _graph(onnx_path: Path, bgr: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return sess.run(["output"], {"image": bgr[None]})[0][0]


@pytest.mark.parametrize("kind,metric", [("dusk", "psnr"), ("masks", "iou")])
def test_pairs_collect_search_evaluate_export_run(tmp_path, kind, metric):
    from runtime.cli import main as tvrun_main
    from export.cli import main as tvexport_main
    from taskvec.data.tasks import get_task

    run = CliRunner()
    pairs = write_example_pairs(tmp_path / kind, kind, N_PAIRS, photos="val", seed=3)
    spec = f"pairs:{pairs}"
    task = get_task(spec)
    assert task.metric == metric and len(task.val_names) == 3
    micro = ["--n", "32", "--batch", "32"]

    # collect: means over the train pairs only
    means = tmp_path / "means.safetensors"
    _ok(run.invoke(taskvec_main, ["collect", "--task", spec, "--out", str(means), *micro]))
    from taskvec.vectors.activations import RunningMeans

    rm = RunningMeans.load(means)
    assert rm.task == task.name and rm.n_seen == 32 and "train (9 of 12)" in rm.info["images"]

    # search: on the pairs' own train/val split; the sidecar names the pairs
    tv_path = tmp_path / "tv.safetensors"
    _ok(run.invoke(taskvec_main, ["search", "--task", spec, "--means", str(means), "--out", str(tv_path),
                                  "--steps", "6", "--k", "8", "--init-logit", "0"]))  # fmt: skip
    side = json.loads(tv_path.with_suffix(".json").read_text())
    ident = side["meta"]["task_identity"]
    assert side["task"] == task.name and ident["pairs_sha256"] == task.digest and ident["metric"] == metric
    assert side["meta"]["data"]["train"] == 9 and side["meta"]["data"]["val"] == 3 and side["num_sites"] > 0

    # evaluate: on the validation pairs, the vector beats zero-shot
    res_path = tmp_path / "eval.json"
    _ok(run.invoke(taskvec_main, ["evaluate", "--task", spec, "--taskvec", str(tv_path), "--json", str(res_path),
                                  "--skip-baselines"]))  # fmt: skip
    res = json.loads(res_path.read_text())
    rows = {r["method"]: r["metrics"][metric] for r in res["rows"]}
    assert set(rows) == {"zero-shot", "one-shot", "task-vector"}
    assert res["task_identity"]["pairs_sha256"] == task.digest and "val (3 of 12)" in res["images"]
    print(f"{kind} validation pairs ({metric}): {rows}")  # shown with pytest -s
    assert rows["task-vector"] > rows["zero-shot"], rows

    # export: the graph's answer equals `taskvec prompt --zero-shot` within 2 grey levels
    out_dir = tmp_path / "exported"
    _ok(run.invoke(tvexport_main, ["--task", spec, "--taskvec", str(tv_path), "--out", str(out_dir)]))
    onnx_path = out_dir / f"{task.name}.onnx"
    from export.metadata import read_props

    meta = read_props(onnx_path)
    assert meta.task == task.name and meta.task_identity["pairs_sha256"] == task.digest
    query = pairs / "input" / f"{task.val_names[0]}.png"
    answer = tmp_path / "answer.png"
    _ok(run.invoke(taskvec_main, ["prompt", "--task", spec, "--zero-shot", "--taskvec", str(tv_path),
                                  "--query", str(query), "--out", str(answer)]))  # fmt: skip
    graph_out = _graph(onnx_path, cv2.imread(str(query)))
    diff = np.abs(graph_out.astype(int) - cv2.imread(str(answer)).astype(int))
    print(f"{kind}: graph vs taskvec prompt --zero-shot, max {diff.max()} grey levels")
    assert diff.max() <= 2, diff.max()

    # tvrun on a clip: every frame through the graph, the identity in the stats
    clip = _clip(tmp_path / "clip.avi", kind)
    frames_dir, stats = tmp_path / "frames", tmp_path / "stats.json"
    r = run.invoke(tvrun_main, ["--source", str(clip), "--task", spec, "--onnx", str(onnx_path), "--headless",
                                "--output", str(frames_dir), "--stats", str(stats)])  # fmt: skip
    assert r.exit_code == 0, r.output
    st = json.loads(stats.read_text())
    assert st["frames"] == 4 and st["extra"]["task_identity"]["pairs_sha256"] == task.digest
    written = sorted(frames_dir.iterdir())
    assert len(written) == 4
    cap = cv2.VideoCapture(str(clip))
    ok, first = cap.read()
    cap.release()
    assert ok
    from runtime.predictor import area_resize

    want = cv2.resize(_graph(onnx_path, area_resize(first, (111, 111))), first.shape[1::-1], interpolation=cv2.INTER_CUBIC)
    got = cv2.imread(str(written[0]))
    assert got.shape == first.shape and np.abs(got.astype(int) - want.astype(int)).max() <= 2


def test_one_pair_deploys_in_context(tmp_path):
    """Too few pairs for a search: the one-shot graph bakes the pair and tvrun runs it."""
    from runtime.cli import main as tvrun_main
    from export.cli import main as tvexport_main
    from taskvec.data.tasks import get_task
    from taskvec.vectors.prompting import one_shot

    pairs = write_example_pairs(tmp_path / "one", "dusk", 1, seed=4)
    spec = f"pairs:{pairs}"
    task = get_task(spec)
    run = CliRunner()
    r = run.invoke(tvexport_main, ["--task", spec, "--graph", "in-context", "--out", str(tmp_path / "x"),
                                   "--model", "random:micro_pixel"])  # fmt: skip
    assert r.exit_code == 0, r.output
    onnx_path = tmp_path / "x" / f"{task.name}.in-context.onnx"
    from export.metadata import load_graph_metadata
    import onnx

    meta = load_graph_metadata(onnx_path)  # the sidecar says the same, field by field
    assert meta.example_pair == "p000" and meta.task_identity["pairs"] == 1 and meta.baked
    assert [i.name for i in onnx.load(str(onnx_path), load_external_data=False).graph.input] == ["image"]
    # the baked graph answers as the one-shot prompt with that pair
    from taskvec.model.checkpoint import load_model

    q = cv2.imread(str(pairs / "input" / "p000.png"))
    got = _graph(onnx_path, q)
    ex_in, ex_out = task.inputs[:1], task.targets[:1]
    rgb = torch.from_numpy(q[:, :, ::-1].copy()).permute(2, 0, 1)[None].float() / 255
    ans, _ = one_shot(load_model("random:micro_pixel"), ex_in, ex_out, rgb)
    want = (ans[0].clamp(0, 1).permute(1, 2, 0).numpy()[:, :, ::-1] * 255 + 0.5).astype(np.uint8)
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 2
    clip = _clip(tmp_path / "clip.avi", "dusk", frames=2, size=64)
    r = run.invoke(tvrun_main, ["--source", str(clip), "--task", spec, "--onnx", str(onnx_path), "--headless",
                                "--frames", "2", "--model", "random:micro_pixel"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "2 frames" in r.output
