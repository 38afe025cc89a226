"""collect / search across 2 processes (gloo on this CPU): same results as one process.

The 2-process runs start the real entry point (``python -m taskvec.cli``) under
``torchrun --standalone`` or, where a test needs to break the launcher's environment,
as two processes given torchrun's ``env://`` variables by hand.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from taskvec.vectors.activations import RunningMeans
from taskvec.model.checkpoint import load_model, save_model
from taskvec.cli.main import main
from taskvec.distributed import Dist, launch_env
from taskvec.errors import UserError
from taskvec.search.common import pair_blocks

N, BATCH = 14, 4  # 4 windows, the last one partial


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The in-process runs use one thread, like each of the launched processes (OMP_NUM_THREADS=1);
    two threads on a busy two-core machine are many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def folder(random_image_folder):
    return random_image_folder(6)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """The micro pixel model with a random (not zero-initialised) head, so patches change the answer."""
    model = load_model("random:micro_pixel")
    with torch.no_grad():
        model.decoder_pred.weight.normal_(0, 0.05, generator=torch.Generator().manual_seed(0))
    return str(save_model(model, tmp_path_factory.mktemp("model") / "micro.safetensors"))


def _collect_args(folder, model_file, out, n=N):
    return ["collect", "--task", "inpainting", "--images", str(folder), "--model", model_file, "--out", str(out),
            "--batch", str(BATCH), "--n", str(n)]  # fmt: skip


def _one(args):
    """The command in this process (no launcher)."""
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    return r


def _torchrun(args, nproc=2, timeout=240):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
           "-m", "taskvec.cli", "--", *args]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(args, rank, world, port, **kw):
    """One rank of a hand-made launch (torchrun's env:// variables)."""
    env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank), "OMP_NUM_THREADS": "1",
           "LOCAL_WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}  # fmt: skip
    return subprocess.Popen([sys.executable, "-m", "taskvec.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)  # fmt: skip


def _max_abs(a: RunningMeans, b: RunningMeans) -> float:
    ma, mb = a.means(), b.means()
    assert ma.keys() == mb.keys() and all(torch.equal(a.counts[k], b.counts[k]) for k in a.counts)
    return max(float((ma[k] - mb[k]).abs().max()) for k in ma)


@pytest.fixture(scope="module")
def one_means(folder, model_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "m.safetensors"
    _one(_collect_args(folder, model_file, out))
    return out


def test_two_processes_collect_the_means_of_one(folder, model_file, one_means, tmp_path):
    two = tmp_path / "two.safetensors"
    r = _torchrun(_collect_args(folder, model_file, two))
    assert f"({N} canvases, 2 processes)" in r.stdout
    b = RunningMeans.load(two)
    assert b.n_seen == N and b.info["world_size"] == 2
    assert _max_abs(RunningMeans.load(one_means), b) <= 1e-6
    # a one-process collection stopped inside a window, resumed by two processes
    part = tmp_path / "part.safetensors"
    _one(_collect_args(folder, model_file, part, n=6))
    _torchrun(_collect_args(folder, model_file, part) + ["--resume"])
    resumed = RunningMeans.load(part)
    assert resumed.n_seen == N and _max_abs(RunningMeans.load(one_means), resumed) <= 1e-6


# CMA and GRS go through the same sharded Objective.score as REINFORCE: slow (make test-all)
@pytest.mark.parametrize("method", ["reinforce", pytest.param("cma", marks=pytest.mark.slow),
                                    pytest.param("grs", marks=pytest.mark.slow)])
def test_two_processes_search_the_vector_of_one(folder, model_file, one_means, tmp_path, method):
    opts = {"reinforce": ["--steps", "4", "--k", "6", "--r", "3", "--init-logit", "0.2"], "cma": [],
            "grs": ["--steps", "3"]}[method]  # fmt: skip
    args = ["search", "--task", "inpainting", "--images", str(folder), "--model", model_file, "--means",
            str(one_means), "--method", method, "--seed", "3", *opts]  # fmt: skip
    _one(args + ["--out", str(tmp_path / "one.safetensors")])
    _torchrun(args + ["--out", str(tmp_path / "two.safetensors")])
    a, b = (json.loads((tmp_path / f"{w}.json").read_text()) for w in ("one", "two"))
    assert a["sites"] and a["sites"] == b["sites"]  # the same, non-empty task vector
    assert b["meta"]["search"]["world_size"] == 2 and a["meta"]["search"]["forwards"] == b["meta"]["search"]["forwards"]
    for key in ("site_probabilities", "site_gains"):  # REINFORCE's final p, CMA's per-site gains
        if key in a["meta"]:
            assert np.allclose(list(a["meta"][key].values()), list(b["meta"][key].values()), atol=1e-4)
    for key, v in a["meta"]["metrics"].items():
        assert abs(v - b["meta"]["metrics"][key]) <= 1e-4, key
    assert (tmp_path / "two.png").is_file()


def test_killed_distributed_collection_resumes_to_the_same_means(folder, model_file, tmp_path):
    n = 600
    out = tmp_path / "m.safetensors"
    args = _collect_args(folder, model_file, out, n=n) + ["--save-every", "0"]
    port = _free_port()
    procs = [_spawn(args, rank, 2, port, start_new_session=True) for rank in (0, 1)]
    seen, deadline = 0, time.monotonic() + 120
    try:
        while seen < 60 and time.monotonic() < deadline and procs[0].poll() is None:
            try:
                seen = RunningMeans.load(out).n_seen
            except UserError:  # not written yet
                pass
            time.sleep(0.01)
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
    killed = RunningMeans.load(out)
    assert 0 < killed.n_seen < n and killed.info["world_size"] == 2, "the run ended before it was killed"
    _one(args + ["--resume"])  # resumed by one process
    ref = tmp_path / "ref.safetensors"
    _one(_collect_args(folder, model_file, ref, n=n))
    assert RunningMeans.load(out).n_seen == n
    assert _max_abs(RunningMeans.load(ref), RunningMeans.load(out)) <= 1e-6


def _assert_one_line_failure(proc, timeout=120):
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_a_rank_that_cannot_reach_the_others(folder, model_file, tmp_path):
    out = tmp_path / "m.safetensors"
    args = _collect_args(folder, model_file, out) + ["--dist-timeout", "2"]
    rank0 = _spawn(args, 0, 2, _free_port())
    rank1 = _spawn(args, 1, 2, _free_port())  # looks for rank 0 at another port
    line = _assert_one_line_failure(rank0)
    assert "rank 0: cannot reach the other 1 rank(s)" in line
    rank1.communicate(timeout=120)
    assert rank1.returncode != 0
    assert list(tmp_path.iterdir()) == []  # no partial output


def test_mismatched_world_size_on_resume(folder, model_file, tmp_path):
    out = tmp_path / "m.safetensors"
    _one(_collect_args(folder, model_file, out, n=6))
    before = out.read_bytes()
    args = _collect_args(folder, model_file, out) + ["--resume", "--dist-timeout", "2"]
    port = _free_port()
    rank0, rank1 = _spawn(args, 0, 2, port), _spawn(args, 1, 3, port)  # rank 1 was told of 3 processes
    line = _assert_one_line_failure(rank0)  # rank 0 may connect to rank 1 before rank 1 gives up
    assert "rank 0: cannot reach" in line or "rank 0: lost contact with the other ranks" in line, line
    rank1.communicate(timeout=120)
    assert rank1.returncode != 0
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]


def test_ranks_that_resume_different_files_stop_before_any_work(folder, model_file, tmp_path):
    files = [tmp_path / "a" / "m.safetensors", tmp_path / "b" / "m.safetensors"]
    for f, n in zip(files, (6, 10)):  # e.g. a stale copy on another node's disk
        _one(_collect_args(folder, model_file, f, n=n))
    before = [f.read_bytes() for f in files]
    port = _free_port()
    procs = [_spawn(_collect_args(folder, model_file, f) + ["--resume"], rank, 2, port) for rank, f in enumerate(files)]
    line = _assert_one_line_failure(procs[0])
    assert "ranks disagree on the collection: rank 1 has n_seen=10, rank 0 has 6" in line, line
    _, err1 = procs[1].communicate(timeout=60)
    assert procs[1].returncode == 2 and err1.strip() == ""  # said once, by rank 0
    assert [f.read_bytes() for f in files] == before


def test_an_error_on_one_rank_is_said_once_by_rank_0(folder, model_file, tmp_path):
    out = tmp_path / "m.safetensors"
    port = _free_port()
    images = [folder, tmp_path / "missing"]  # rank 1's node lacks the image folder
    procs = [_spawn(_collect_args(im, model_file, out), rank, 2, port) for rank, im in enumerate(images)]
    line = _assert_one_line_failure(procs[0])
    assert line.startswith("error: rank 1: ") and "missing" in line, line
    _, err1 = procs[1].communicate(timeout=60)
    assert procs[1].returncode == 2 and err1.strip() == ""
    assert list(tmp_path.iterdir()) == []


def test_bad_launcher_variables_are_one_line(folder, model_file, tmp_path):
    out = tmp_path / "m.safetensors"
    for env, needle in (({"RANK": "2", "WORLD_SIZE": "2", "MASTER_ADDR": "x", "MASTER_PORT": "1"}, "outside WORLD_SIZE"),
                        ({"RANK": "0", "WORLD_SIZE": "2"}, "MASTER_ADDR, MASTER_PORT not set")):  # fmt: skip
        r = CliRunner().invoke(main, _collect_args(folder, model_file, out), env=env)
        assert r.exit_code == 2 and r.stderr.strip().startswith("error: ") and needle in r.stderr, r.output
        assert "\n" not in r.stderr.strip()
    assert not out.exists()
    assert launch_env({}) is None and launch_env({"RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "h",
                                                  "MASTER_PORT": "1"}).world_size == 1  # fmt: skip


@pytest.mark.parametrize("k,r,world", [(12, 4, 2), (1, 1, 2), (2, 3, 4), (5, 3, 4), (1, 16, 3), (3, 1, 8)])
def test_pair_blocks_cover_each_rank_slice_in_order(k, r, world):
    covered = []
    for rank in range(world):
        lo, hi = Dist(rank, world).shard(k * r)
        pairs = [kk * r + q for k0, k1, q0, q1 in pair_blocks(lo, hi, r) for kk in range(k0, k1) for q in range(q0, q1)]
        assert pairs == list(range(lo, hi))
        covered += pairs
    assert covered == list(range(k * r))
