"""benchmarks.env: Jetson parsers, tolerant commands, and the environment record."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

from benchmarks import env

R32 = "# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t210ref, EABI: aarch64, DATE: Sat Feb 19 17:05:08 UTC 2022\n"
R35 = "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, DATE: Tue Aug  1 19:57:35 UTC 2023\n"
R36 = (
    "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: Wed Jan  8 01:49:37 UTC 2025\n"
    "# KERNEL_VARIANT: oot\nTARGET_USERSPACE_LIB_DIR=nvidia\nTARGET_USERSPACE_LIB_DIR_PATH=usr/lib/aarch64-linux-gnu/nvidia\n"
)
NVPMODEL_ORIN = "NV Fan Mode:quiet\nNV Power Mode: 15W\n0\n"
NVPMODEL_XAVIER = "NVPM WARN: fan mode is not set!\nNV Power Mode: MODE_20W_6CORE\n8\n"
CLOCKS_ON = """SOC family:tegra234  Machine:NVIDIA Jetson AGX Orin Developer Kit
Online CPUs: 0-11
cpu0: Online=1 Governor=schedutil MinFreq=2201600 MaxFreq=2201600 CurrentFreq=2201600 IdleStates: WFI=0 c7=0
cpu1: Online=1 Governor=schedutil MinFreq=2201600 MaxFreq=2201600 CurrentFreq=2201600 IdleStates: WFI=0 c7=0
cpu11: Online=0 Governor=schedutil MinFreq=729600 MaxFreq=2201600 CurrentFreq=729600 IdleStates: WFI=1 c7=1
GPU MinFreq=1300500000 MaxFreq=1300500000 CurrentFreq=1300500000
EMC MinFreq=204000000 MaxFreq=3199000000 CurrentFreq=3199000000 FreqOverride=1
EMC MinFreq=3199000000 MaxFreq=3199000000 CurrentFreq=3199000000 FreqOverride=1
NV Power Mode: MAXN
"""
CLOCKS_OFF = """SOC family:tegra234  Machine:NVIDIA Jetson Orin Nano Developer Kit
cpu0: Online=1 Governor=schedutil MinFreq=115200 MaxFreq=1510400 CurrentFreq=729600 IdleStates: WFI=1 c7=1
GPU MinFreq=306000000 MaxFreq=624750000 CurrentFreq=306000000
EMC MinFreq=204000000 MaxFreq=2133000000 CurrentFreq=2133000000 FreqOverride=0
"""


def test_parse_nv_tegra_release():
    assert env.parse_nv_tegra_release(R35) == {
        "l4t": "35.4.1", "release": "35", "revision": "4.1", "board": "t186ref", "gcid": "33958178",
        "date": "Tue Aug 1 19:57:35 UTC 2023", "jetpack": "5.1.2",
    }
    assert env.parse_nv_tegra_release(R32)["l4t"] == "32.7.1" and env.parse_nv_tegra_release(R32)["jetpack"] == "4.6.1"
    r36 = env.parse_nv_tegra_release(R36)
    assert (r36["l4t"], r36["jetpack"], r36["board"]) == ("36.4.3", "6.2", "generic")
    unknown = env.parse_nv_tegra_release("# R99 (release), REVISION: 0.1, GCID: 1")
    assert unknown["l4t"] == "99.0.1" and unknown["jetpack"] is None
    assert env.parse_nv_tegra_release("")["l4t"] is None


def test_parse_nvpmodel():
    assert env.parse_nvpmodel(NVPMODEL_ORIN) == {"name": "15W", "id": 0, "fan_mode": "quiet"}
    assert env.parse_nvpmodel(NVPMODEL_XAVIER) == {"name": "MODE_20W_6CORE", "id": 8, "fan_mode": None}
    assert env.parse_nvpmodel("nonsense") == {"name": None, "id": None, "fan_mode": None}


def test_parse_jetson_clocks():
    on = env.parse_jetson_clocks(CLOCKS_ON)
    assert on == {"enabled": False, "cpu_pinned": True, "gpu_pinned": True, "emc_pinned": False}
    on_fixed = env.parse_jetson_clocks(CLOCKS_ON.replace("EMC MinFreq=204000000", "EMC MinFreq=3199000000"))
    assert on_fixed["enabled"] is True  # offline cpu11 does not count
    assert env.parse_jetson_clocks(CLOCKS_OFF) == {
        "enabled": False, "cpu_pinned": False, "gpu_pinned": False, "emc_pinned": False,
    }
    assert env.parse_jetson_clocks("permission denied")["enabled"] is None


def test_parse_cpuinfo():
    x86 = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R)  CPU @ 2.20GHz\n"
    assert env.parse_cpuinfo(x86) == "Intel(R) Xeon(R) CPU @ 2.20GHz"
    orin = "processor\t: 0\nBogoMIPS\t: 62.50\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU part\t: 0xd42\n"
    assert env.parse_cpuinfo(orin) == "Cortex-A78AE"
    assert env.parse_cpuinfo("CPU implementer\t: 0x4e\nCPU part\t: 0x004\n") == "NVIDIA Carmel"
    assert env.parse_cpuinfo("") is None


def test_run_command_tolerates_missing_failing_and_slow_tools():
    assert env.run_command(["definitely-not-a-real-tool-xyz"]) is None
    if os.name == "posix":
        assert env.run_command(["false"]) is None
        assert env.run_command(["sleep", "5"], timeout=0.2) is None
        assert env.run_command(["echo", "hi"]).strip() == "hi"


def fake_tool(folder, name: str, output: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\ncat <<'EOF'\n" + output + "EOF\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.mark.skipif(os.name != "posix", reason="fake tools are shell scripts")
def test_jetson_info_with_fake_tools(tmp_path, monkeypatch):
    release = tmp_path / "nv_tegra_release"
    release.write_text(R35)
    model = tmp_path / "model"
    model.write_bytes(b"NVIDIA Jetson AGX Orin Developer Kit\x00")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_tool(bin_dir, "nvpmodel", NVPMODEL_ORIN)
    fake_tool(bin_dir, "jetson_clocks", CLOCKS_OFF)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setattr(env, "NV_TEGRA_RELEASE", release)
    monkeypatch.setattr(env, "DEVICE_TREE_MODEL", model)
    monkeypatch.setattr(env.shutil, "which", lambda name, _which=env.shutil.which: (
        None if name == "dpkg-query" else _which(name)))
    info = env.jetson_info()
    assert info["model"] == "NVIDIA Jetson AGX Orin Developer Kit"
    assert (info["l4t"], info["jetpack"]) == ("35.4.1", "5.1.2")
    assert info["power_mode"] == {"name": "15W", "id": 0, "fan_mode": "quiet"}
    assert info["jetson_clocks"]["enabled"] is False


def test_capture_environment_off_jetson(tmp_path, monkeypatch):
    monkeypatch.setattr(env, "NV_TEGRA_RELEASE", tmp_path / "absent")
    data = env.capture_environment()
    json.dumps(data)  # JSON-ready
    assert data["jetson"] is None
    assert data["versions"]["numpy"] == np.__version__
    assert set(data["versions"]) == {"numpy", "torch", "onnxruntime", "tensorrt", "opencv"}
    assert data["cpu"]["cores_logical"] == os.cpu_count() and data["cpu"]["arch"]
    assert data["python"].count(".") == 2 and data["os"]
    if data["versions"]["onnxruntime"]:
        assert "CPUExecutionProvider" in data["onnxruntime_providers"]
    assert env.module_version("surely_no_such_module_abc") is None
