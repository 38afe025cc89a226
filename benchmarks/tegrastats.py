"""Jetson ``tegrastats``: parse its lines and sample power during a benchmark.

``parse_tegrastats_line`` reads the formats of Nano/TX (``POM_5V_IN 3450/3450``), Xavier
(``VDD_IN 5321/5321`` or ``…mW/…mW``) and Orin (``VDD_IN 4022mW/4022mW``, JetPack 6 lines
start with a date). ``TegrastatsSampler`` runs ``tegrastats --interval N`` for the length of
a ``with`` block and integrates the input power; off Jetson it is a no-op with
``available == False``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from typing import Any

# Rails that measure the whole module's input, best first.
INPUT_RAILS = ("VDD_IN", "POM_5V_IN")
_NOT_RAILS = frozenset({"RAM", "SWAP", "IRAM"})

_TIMESTAMP = re.compile(r"^\s*(\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2})\s")
_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_SWAP = re.compile(r"\bSWAP (\d+)/(\d+)MB")
_CPU = re.compile(r"\bCPU \[([^\]]*)\]")
_EMC = re.compile(r"\bEMC_FREQ (\d+)%(?:@(\d+))?")
_GR3D = re.compile(r"\bGR3D_FREQ (\d+)%(?:@\[?([\d,]+)\]?)?")
_TEMP = re.compile(r"(?<![\w@])([A-Za-z][\w]*)@(-?\d+(?:\.\d+)?)C\b")
_RAIL = re.compile(r"(?<![\w/])([A-Za-z][A-Za-z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?![\w/])")


def parse_tegrastats_line(line: str) -> dict[str, Any]:
    """One tegrastats line → dict (fields absent from the line are None / empty):

    timestamp (str), ram_used_mb, ram_total_mb, swap_used_mb, swap_total_mb (int),
    cpu_load_pct / cpu_freq_mhz (one entry per core, None for ``off``), emc_pct,
    emc_freq_mhz, gr3d_pct, gr3d_freq_mhz (int), temps_c {sensor: °C} (sensors reading
    -256, i.e. powered off, are left out), rails {name: {"now_mw", "avg_mw"}},
    power_in_mw / power_in_avg_mw (VDD_IN or POM_5V_IN; else the sum of all rails, which
    is what AGX Orin's split rails give) and power_in_rail (the rail name or "sum").
    """
    out: dict[str, Any] = {
        "timestamp": None, "ram_used_mb": None, "ram_total_mb": None, "swap_used_mb": None,
        "swap_total_mb": None, "cpu_load_pct": [], "cpu_freq_mhz": [], "emc_pct": None,
        "emc_freq_mhz": None, "gr3d_pct": None, "gr3d_freq_mhz": None, "temps_c": {}, "rails": {},
        "power_in_mw": None, "power_in_avg_mw": None, "power_in_rail": None,
    }
    if m := _TIMESTAMP.match(line):
        out["timestamp"] = m.group(1)
    if m := _RAM.search(line):
        out["ram_used_mb"], out["ram_total_mb"] = int(m.group(1)), int(m.group(2))
    if m := _SWAP.search(line):
        out["swap_used_mb"], out["swap_total_mb"] = int(m.group(1)), int(m.group(2))
    if m := _CPU.search(line):
        for core in m.group(1).split(","):
            core = core.strip()
            c = re.fullmatch(r"(\d+)%(?:@(\d+))?", core)
            out["cpu_load_pct"].append(int(c.group(1)) if c else None)
            out["cpu_freq_mhz"].append(int(c.group(2)) if c and c.group(2) else None)
    if m := _EMC.search(line):
        out["emc_pct"] = int(m.group(1))
        out["emc_freq_mhz"] = int(m.group(2)) if m.group(2) else None
    if m := _GR3D.search(line):
        out["gr3d_pct"] = int(m.group(1))
        out["gr3d_freq_mhz"] = int(m.group(2).split(",")[0]) if m.group(2) else None
    for name, value in _TEMP.findall(line):
        if float(value) > -255:
            out["temps_c"][name] = float(value)
    for name, now, avg in _RAIL.findall(line):
        if name not in _NOT_RAILS:
            out["rails"][name] = {"now_mw": int(now), "avg_mw": int(avg)}
    rails = out["rails"]
    rail = next((r for r in INPUT_RAILS if r in rails), None)
    if rail is not None:
        out["power_in_mw"], out["power_in_avg_mw"] = rails[rail]["now_mw"], rails[rail]["avg_mw"]
        out["power_in_rail"] = rail
    elif rails:
        out["power_in_mw"] = sum(r["now_mw"] for r in rails.values())
        out["power_in_avg_mw"] = sum(r["avg_mw"] for r in rails.values())
        out["power_in_rail"] = "sum"
    return out


class TegrastatsSampler:
    """Sample ``tegrastats`` in the background while a ``with`` block runs.

        with TegrastatsSampler(interval_ms=100) as power:
            run_benchmark()
        power.mean_power_mw(), power.energy_mj(seconds)

    ``samples`` holds (time.monotonic(), parsed dict). With no tegrastats on PATH (or
    ``command`` not found) ``available`` is False and every result is None.
    """

    def __init__(self, interval_ms: int = 100, command: str = "tegrastats") -> None:
        self.interval_ms = int(interval_ms)
        self.executable = shutil.which(command)
        self.available = self.executable is not None
        self.samples: list[tuple[float, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "TegrastatsSampler":
        if not self.available or self._proc is not None:
            return self
        try:
            self._proc = subprocess.Popen(
                [self.executable, "--interval", str(self.interval_ms)],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True, bufsize=1,
            )
        except OSError:
            self.available = False
            return self
        self._thread = threading.Thread(target=self._reader, name="tegrastats", daemon=True)
        self._thread.start()
        return self

    def _reader(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            if "RAM" not in line:
                continue
            parsed = parse_tegrastats_line(line)
            with self._lock:
                self.samples.append((time.monotonic(), parsed))

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=2.0)
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None

    def __enter__(self) -> "TegrastatsSampler":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _powers(self, since: float | None, until: float | None) -> list[int]:
        with self._lock:
            return [
                s["power_in_mw"] for t, s in self.samples
                if s["power_in_mw"] is not None and (since is None or t >= since) and (until is None or t <= until)
            ]

    def mean_power_mw(self, since: float | None = None, until: float | None = None) -> float | None:
        """Mean instantaneous input power over the samples (optionally between two
        ``time.monotonic()`` marks); None without samples."""
        p = self._powers(since, until)
        return sum(p) / len(p) if p else None

    def peak_power_mw(self, since: float | None = None, until: float | None = None) -> int | None:
        p = self._powers(since, until)
        return max(p) if p else None

    def energy_mj(self, duration_s: float, since: float | None = None, until: float | None = None) -> float | None:
        """Energy in millijoules: mean power (mW) × ``duration_s``; None without samples."""
        mean = self.mean_power_mw(since, until)
        return None if mean is None else mean * duration_s

    def summary(self) -> dict[str, Any]:
        """JSON-ready: available, samples, power rail, mean/peak mW, mean GR3D %, max °C."""
        with self._lock:
            parsed = [s for _, s in self.samples]
        gr3d = [s["gr3d_pct"] for s in parsed if s["gr3d_pct"] is not None]
        temps = [t for s in parsed for t in s["temps_c"].values()]
        return {
            "available": self.available,
            "interval_ms": self.interval_ms,
            "samples": len(parsed),
            "power_in_rail": parsed[-1]["power_in_rail"] if parsed else None,
            "mean_power_mw": self.mean_power_mw(),
            "peak_power_mw": self.peak_power_mw(),
            "mean_gr3d_pct": sum(gr3d) / len(gr3d) if gr3d else None,
            "max_temp_c": max(temps) if temps else None,
        }
