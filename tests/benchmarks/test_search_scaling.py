"""benchmarks/search_scaling.py: the worker times the sharded objective; the report states the ratios."""

import json

from benchmarks.search_scaling import markdown, run_worker


def test_worker_times_objective_steps(tmp_path):
    out = tmp_path / "w.json"
    run_worker("random:micro_pixel", k=2, r=2, steps=2, out=str(out))  # one process: no launcher
    res = json.loads(out.read_text())
    assert res["world_size"] == 1 and res["device"] == "cpu" and len(res["step_s"]) == 2
    assert all(t > 0 for t in res["step_s"]) and len(res["cpu_s"]) == 2


def test_markdown_lists_every_row():
    load = [{"start": [1.5, 1, 1], "end": [1.2, 1, 1]}]
    rows = [{"processes": p, "threads_per_process": t, "device": "cpu", "step_s_median": 1.0, "forwards_per_s": f,
             "speedup_vs_1_process": s, "efficiency_per_process": e, "load_average": load}
            for p, t, f, s, e in ((1, 2, 10.0, 1.0, 0.67), (2, 1, 18.0, 1.8, 0.6), (1, 1, 15.0, 1.5, 1.0))]
    md = markdown({"model": "tiny", "k_site_sets": 8, "r_queries": 4, "rows": rows})
    assert "| 2 | 1 | cpu | 1.0 | 18.0 | 1.8× | 0.6 | – | – | 1.5 |" in md and md.count("\n| ") == 4  # header + 3 rows
