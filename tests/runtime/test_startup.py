"""runtime.startup: the one-line status before the first frame and its per-phase breakdown."""

from __future__ import annotations

import io

from runtime.startup import StartupStatus


def test_breakdown_adds_phases_in_order_and_prints_one_line(fake_clock):
    clock, out = fake_clock, io.StringIO()
    st = StartupStatus(stream=out, tty=False, clock=clock)
    st.phase("checks")  # quiet
    clock.t += 0.5
    st.phase("source", "opening sample:lowlight")
    clock.t += 0.25
    st.phase("backend", "starting the backend")
    clock.t += 0.1
    st.phase("graph", "the graph")
    clock.t += 1.0
    st.phase("backend", "starting the backend")  # started twice: adds up
    clock.t += 0.2
    st.first_frame()
    b = st.breakdown_ms()
    assert list(b)[1:] == ["checks", "source", "backend", "graph", "total"]
    assert (b["checks"], b["source"], b["backend"], b["graph"]) == (500.0, 250.0, 300.0, 1000.0)
    assert b["total"] >= 2050.0  # plus the process's age before the status existed
    lines = out.getvalue().splitlines()
    assert lines[0] == "preparing the first frame: opening sample:lowlight…"
    assert lines[1].startswith("first frame after ") and "graph 1.00" in lines[1]
    assert len(lines) == 2
    st.first_frame()  # once only
    assert len(out.getvalue().splitlines()) == 2


def test_terminal_rewrites_one_line_and_clears_on_error(fake_clock):
    out = io.StringIO()
    st = StartupStatus(stream=out, tty=True, clock=fake_clock)
    st.phase("source", "opening 0")
    st.phase("graph", "the graph")
    st.clear()
    text = out.getvalue()
    assert "\n" not in text and text.count("\r\x1b[K") == 3


def test_tvrun_says_what_it_prepares_and_records_the_breakdown(tmp_path, exported_lowlight, clip):
    import json

    from click.testing import CliRunner

    from runtime.cli import main

    onnx, _, _ = exported_lowlight
    stats = tmp_path / "s.json"
    r = CliRunner().invoke(main, ["--source", str(clip), "--task", "lowlight", "--onnx", str(onnx), "--headless",
                                  "--frames", "2", "--stats", str(stats)])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    first = next(i for i, ln in enumerate(lines) if ln.startswith("preparing the first frame: opening "))
    ready = next(i for i, ln in enumerate(lines) if ln.startswith("first frame after "))
    assert first < ready
    startup = json.loads(stats.read_text())["extra"]["startup_ms"]
    assert {"imports", "source", "backend", "first frame", "total"} <= set(startup)
    assert startup["total"] >= sum(v for k, v in startup.items() if k != "total") - 1.0
