"""benchmarks.tegrastats: recorded lines from four Jetsons, and the sampler on a fake tegrastats."""

from __future__ import annotations

import os
import stat
import time

import pytest

from benchmarks.tegrastats import TegrastatsSampler, parse_tegrastats_line

ORIN_NANO_JP6 = (
    "11-27-2026 17:14:12 RAM 2448/7620MB (lfb 2x4MB) SWAP 0/3810MB (cached 0MB) "
    "CPU [2%@1510,0%@1510,5%@1510,1%@1510,off,off] EMC_FREQ 0%@2133 GR3D_FREQ 37%@[611] "
    "NVDEC off NVJPG off NVJPG1 off VIC off OFA off APE 200 cpu@47.5C soc2@46.062C soc0@46.218C "
    "gpu@46.937C tj@47.5C soc1@46.5C VDD_IN 4022mW/3981mW VDD_CPU_GPU_CV 483mW/470mW VDD_SOC 1329mW/1320mW"
)
AGX_ORIN = (
    "RAM 4722/30536MB (lfb 5807x4MB) SWAP 0/15268MB (cached 0MB) "
    "CPU [0%@729,1%@729,0%@729,0%@729,3%@1190,0%@1190,0%@1190,0%@1190,off,off,off,off] "
    "EMC_FREQ 1%@2133 GR3D_FREQ 12%@[1300,1300] VIC_FREQ 729 APE 174 CV0@-256C CPU@45.156C Tboard@33C "
    "SOC2@41.343C Tdiode@34.75C SOC0@42.375C CV1@-256C GPU@44.25C tj@45.156C SOC1@41.687C CV2@-256C "
    "VDD_GPU_SOC 2374mW/2370mW VDD_CPU_CV 395mW/400mW VIN_SYS_5V0 2718mW/2700mW NC 0mW/0mW "
    "VDDQ_VDD2_1V8AO 402mW/401mW NC 0mW/0mW"
)
XAVIER_NX_JP4 = (
    "RAM 1903/7765MB (lfb 1x4MB) SWAP 0/3883MB (cached 0MB) CPU [8%@1190,4%@1190,3%@1190,3%@1190,off,off] "
    "EMC_FREQ 0% GR3D_FREQ 0% AUX@33C CPU@35C thermal@34.3C AO@35C GPU@34C PMIC@50C "
    "VDD_IN 3579/3601 VDD_CPU_GPU_CV 521/530 VDD_SOC 1144/1150"
)
XAVIER_NX_JP5 = (
    "RAM 2011/6854MB (lfb 12x4MB) SWAP 0/3427MB (cached 0MB) CPU [12%@1420,6%@1420,off,off,off,off] "
    "EMC_FREQ 4%@1600 GR3D_FREQ 99%@1109 AUX@38C CPU@40.5C thermal@39.3C AO@38.5C GPU@40C "
    "VDD_IN 5321mW/5321mW VDD_CPU_GPU_CV 1950mW/1950mW VDD_SOC 1344mW/1344mW"
)
NANO = (
    "RAM 1523/3956MB (lfb 117x4MB) SWAP 0/1978MB (cached 0MB) IRAM 0/252kB(lfb 252kB) "
    "CPU [10%@1479,4%@1479,6%@1479,3%@1479] EMC_FREQ 3%@1600 GR3D_FREQ 0%@76 APE 25 PLL@25C CPU@27C "
    "PMIC@100C GPU@25C AO@33C thermal@26.25C POM_5V_IN 3450/3450 POM_5V_GPU 0/0 POM_5V_CPU 1098/1098"
)


def test_orin_nano_jetpack6():
    s = parse_tegrastats_line(ORIN_NANO_JP6)
    assert s["timestamp"] == "11-27-2026 17:14:12"
    assert (s["ram_used_mb"], s["ram_total_mb"], s["swap_used_mb"], s["swap_total_mb"]) == (2448, 7620, 0, 3810)
    assert s["cpu_load_pct"] == [2, 0, 5, 1, None, None]
    assert s["cpu_freq_mhz"] == [1510, 1510, 1510, 1510, None, None]
    assert (s["emc_pct"], s["emc_freq_mhz"], s["gr3d_pct"], s["gr3d_freq_mhz"]) == (0, 2133, 37, 611)
    assert s["temps_c"] == {"cpu": 47.5, "soc2": 46.062, "soc0": 46.218, "gpu": 46.937, "tj": 47.5, "soc1": 46.5}
    assert s["rails"] == {
        "VDD_IN": {"now_mw": 4022, "avg_mw": 3981},
        "VDD_CPU_GPU_CV": {"now_mw": 483, "avg_mw": 470},
        "VDD_SOC": {"now_mw": 1329, "avg_mw": 1320},
    }
    assert (s["power_in_mw"], s["power_in_avg_mw"], s["power_in_rail"]) == (4022, 3981, "VDD_IN")


def test_agx_orin_split_rails_and_off_sensors():
    s = parse_tegrastats_line(AGX_ORIN)
    assert s["timestamp"] is None and (s["ram_used_mb"], s["ram_total_mb"]) == (4722, 30536)
    assert len(s["cpu_load_pct"]) == 12 and s["cpu_load_pct"][4] == 3 and s["cpu_freq_mhz"][4] == 1190
    assert (s["gr3d_pct"], s["gr3d_freq_mhz"], s["emc_pct"]) == (12, 1300, 1)
    assert "CV0" not in s["temps_c"] and s["temps_c"]["GPU"] == 44.25 and s["temps_c"]["Tboard"] == 33.0
    assert s["rails"]["VIN_SYS_5V0"] == {"now_mw": 2718, "avg_mw": 2700}
    assert set(s["rails"]) == {"VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "NC", "VDDQ_VDD2_1V8AO"}
    assert (s["power_in_mw"], s["power_in_rail"]) == (2374 + 395 + 2718 + 402, "sum")


def test_xavier_nx_both_unit_styles():
    old = parse_tegrastats_line(XAVIER_NX_JP4)
    assert (old["emc_pct"], old["emc_freq_mhz"], old["gr3d_pct"], old["gr3d_freq_mhz"]) == (0, None, 0, None)
    assert old["rails"]["VDD_IN"] == {"now_mw": 3579, "avg_mw": 3601}
    assert (old["power_in_mw"], old["power_in_rail"]) == (3579, "VDD_IN")
    assert old["temps_c"]["thermal"] == 34.3 and old["cpu_load_pct"] == [8, 4, 3, 3, None, None]
    new = parse_tegrastats_line(XAVIER_NX_JP5)
    assert (new["power_in_mw"], new["gr3d_pct"], new["gr3d_freq_mhz"]) == (5321, 99, 1109)
    assert new["rails"]["VDD_CPU_GPU_CV"] == {"now_mw": 1950, "avg_mw": 1950}


def test_nano_pom_rails_and_iram_is_not_a_rail():
    s = parse_tegrastats_line(NANO)
    assert (s["ram_used_mb"], s["ram_total_mb"]) == (1523, 3956)
    assert s["cpu_load_pct"] == [10, 4, 6, 3] and s["cpu_freq_mhz"] == [1479] * 4
    assert (s["gr3d_pct"], s["gr3d_freq_mhz"]) == (0, 76)
    assert s["rails"] == {
        "POM_5V_IN": {"now_mw": 3450, "avg_mw": 3450},
        "POM_5V_GPU": {"now_mw": 0, "avg_mw": 0},
        "POM_5V_CPU": {"now_mw": 1098, "avg_mw": 1098},
    }
    assert (s["power_in_mw"], s["power_in_rail"]) == (3450, "POM_5V_IN")
    assert s["temps_c"]["PLL"] == 25.0 and s["temps_c"]["thermal"] == 26.25


def test_garbage_line():
    s = parse_tegrastats_line("tegrastats: command not supported")
    assert s["rails"] == {} and s["power_in_mw"] is None and s["cpu_load_pct"] == []


def test_sampler_unavailable_is_a_noop():
    sampler = TegrastatsSampler(command="no-such-tegrastats-binary")
    assert sampler.available is False
    with sampler as s:
        pass
    assert s.samples == [] and s.mean_power_mw() is None and s.energy_mj(1.0) is None
    assert s.summary()["available"] is False


@pytest.mark.skipif(os.name != "posix", reason="fake tegrastats is a shell script")
def test_sampler_reads_a_fake_tegrastats(tmp_path):
    script = tmp_path / "tegrastats"
    script.write_text(
        "#!/bin/sh\n"
        '[ "$1" = "--interval" ] || exit 2\n'
        f"while true; do echo '{XAVIER_NX_JP5}'; echo '{NANO}'; sleep 0.02; done\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    with TegrastatsSampler(interval_ms=20, command=str(script)) as sampler:
        assert sampler.available
        deadline = time.monotonic() + 5
        while len(sampler.samples) < 6 and time.monotonic() < deadline:
            time.sleep(0.02)
    n = len(sampler.samples)
    assert n >= 6
    time.sleep(0.1)
    assert len(sampler.samples) == n  # the subprocess is gone
    powers = [s["power_in_mw"] for _, s in sampler.samples]
    assert set(powers) == {5321, 3450}
    mean = sum(powers) / len(powers)
    assert sampler.mean_power_mw() == pytest.approx(mean)
    assert sampler.energy_mj(2.0) == pytest.approx(2.0 * mean)
    assert sampler.peak_power_mw() == 5321
    summary = sampler.summary()
    assert summary["samples"] == n and summary["max_temp_c"] == 100.0  # Nano's PMIC@100C
