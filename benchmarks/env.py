"""Record the environment a benchmark ran in (trtexec/MLPerf habit).

``capture_environment()`` returns a JSON-ready dict: CPU, OS, Python, library versions
(None when absent), GPU, and on Jetson the L4T/JetPack release, the nvpmodel power mode
and whether ``jetson_clocks`` pinned the clocks. Heavy libraries are imported lazily;
external commands run with a timeout and a missing or failing one gives None.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

NV_TEGRA_RELEASE = Path("/etc/nv_tegra_release")
DEVICE_TREE_MODEL = Path("/proc/device-tree/model")
COMMAND_TIMEOUT_S = 5.0

# L4T (major.minor.patch) → JetPack, from NVIDIA's JetPack archive.
L4T_TO_JETPACK = {
    "32.4.3": "4.4", "32.4.4": "4.4.1", "32.5.0": "4.5", "32.5.1": "4.5.1", "32.5.2": "4.5.1",
    "32.6.1": "4.6", "32.7.1": "4.6.1", "32.7.2": "4.6.2", "32.7.3": "4.6.3", "32.7.4": "4.6.4",
    "32.7.5": "4.6.5", "32.7.6": "4.6.6",
    "35.1.0": "5.0.2", "35.2.1": "5.1", "35.3.1": "5.1.1", "35.4.1": "5.1.2", "35.5.0": "5.1.3",
    "35.6.0": "5.1.4", "35.6.1": "5.1.5",
    "36.2.0": "6.0 DP", "36.3.0": "6.0", "36.4.0": "6.1", "36.4.3": "6.2", "36.4.4": "6.2.1",
}

# (implementer, part) from /proc/cpuinfo on Arm → core name (Jetson CPUs and a few common ones).
ARM_CORES = {
    ("0x41", "0xd03"): "Cortex-A53", ("0x41", "0xd07"): "Cortex-A57", ("0x41", "0xd08"): "Cortex-A72",
    ("0x41", "0xd0b"): "Cortex-A76", ("0x41", "0xd0c"): "Neoverse-N1", ("0x41", "0xd42"): "Cortex-A78AE",
    ("0x4e", "0x004"): "NVIDIA Carmel", ("0x4e", "0x003"): "NVIDIA Denver 2",
}

PACKAGES = {"numpy": "numpy", "torch": "torch", "onnxruntime": "onnxruntime", "tensorrt": "tensorrt", "opencv": "cv2"}


def run_command(argv: list[str], timeout: float = COMMAND_TIMEOUT_S) -> str | None:
    """stdout of ``argv`` (stderr appended when stdout is empty); None if the tool is
    missing, fails, or exceeds ``timeout`` seconds."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout if proc.stdout.strip() else proc.stderr


def parse_nv_tegra_release(text: str) -> dict[str, str | None]:
    """``# R35 (release), REVISION: 4.1, GCID: …, BOARD: t186ref, EABI: aarch64, DATE: …``
    → {"l4t": "35.4.1", "release": "35", "revision": "4.1", "board", "gcid", "date", "jetpack"}.
    Unknown fields are None; jetpack is None for an L4T not in :data:`L4T_TO_JETPACK`."""
    out: dict[str, str | None] = {k: None for k in ("l4t", "release", "revision", "board", "gcid", "date", "jetpack")}
    m = re.search(r"#\s*R(\d+)\s*\(release\)", text)
    if not m:
        return out
    out["release"] = m.group(1)
    for key, field in (("revision", "REVISION"), ("gcid", "GCID"), ("board", "BOARD"), ("date", "DATE")):
        f = re.search(rf"{field}:\s*([^,\n]+)", text)
        out[key] = " ".join(f.group(1).split()) if f else None
    if out["revision"]:
        parts = out["revision"].split(".")
        minor, patch = parts[0], parts[1] if len(parts) > 1 else "0"
        out["l4t"] = f"{out['release']}.{minor}.{patch}"
        out["jetpack"] = L4T_TO_JETPACK.get(out["l4t"])
    return out


def parse_nvpmodel(text: str) -> dict[str, object]:
    """``nvpmodel -q`` output → {"name": "15W", "id": 0, "fan_mode": "quiet" | None}.

    The output is ``NV Power Mode: NAME`` followed by the mode number on its own line,
    sometimes after ``NV Fan Mode:…`` and warnings."""
    name = re.search(r"NV Power Mode:\s*(\S+)", text)
    fan = re.search(r"NV Fan Mode:\s*(\S+)", text)
    mode_id = None
    if name:
        after = text[name.end():]
        m = re.search(r"^\s*(\d+)\s*$", after, re.MULTILINE)
        mode_id = int(m.group(1)) if m else None
    return {"name": name.group(1) if name else None, "id": mode_id, "fan_mode": fan.group(1) if fan else None}


def parse_jetson_clocks(text: str) -> dict[str, object]:
    """``jetson_clocks --show`` → {"enabled": bool | None, "cpu_pinned", "gpu_pinned", "emc_pinned"}.

    Clocks are pinned when MinFreq equals MaxFreq (what ``jetson_clocks`` sets); enabled is
    True when every listed CPU, the GPU and the EMC are pinned, None if nothing was listed."""

    def pinned(lines: list[str]) -> bool | None:
        pairs = [re.search(r"MinFreq=(\d+)\s+MaxFreq=(\d+)", ln) for ln in lines]
        pairs = [p for p in pairs if p]
        if not pairs:
            return None
        return all(p.group(1) == p.group(2) for p in pairs)

    lines = text.splitlines()
    cpu = pinned([ln for ln in lines if re.match(r"\s*cpu\d+:", ln) and "Online=1" in ln])
    gpu = pinned([ln for ln in lines if re.match(r"\s*GPU\b", ln)])
    emc = pinned([ln for ln in lines if re.match(r"\s*EMC\b", ln)])
    known = [v for v in (cpu, gpu, emc) if v is not None]
    return {"enabled": all(known) if known else None, "cpu_pinned": cpu, "gpu_pinned": gpu, "emc_pinned": emc}


def parse_cpuinfo(text: str) -> str | None:
    """CPU model from /proc/cpuinfo: ``model name`` (x86), else the Arm core from
    implementer/part, else ``Hardware``/``Model``."""
    m = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    if m:
        return " ".join(m.group(1).split())
    impl = re.search(r"^CPU implementer\s*:\s*(\S+)", text, re.MULTILINE)
    part = re.search(r"^CPU part\s*:\s*(\S+)", text, re.MULTILINE)
    if impl and part:
        key = (impl.group(1).lower(), part.group(1).lower())
        return ARM_CORES.get(key, f"Arm implementer {key[0]} part {key[1]}")
    m = re.search(r"^(?:Hardware|Model)\s*:\s*(.+)$", text, re.MULTILINE)
    return m.group(1).strip() if m else None


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def module_version(module: str) -> str | None:
    """``module.__version__`` if it imports, else None (never raises)."""
    if importlib.util.find_spec(module) is None:
        return None
    try:
        mod = importlib.import_module(module)
    except Exception:
        return None
    return str(getattr(mod, "__version__", None) or "") or None


def cpu_info() -> dict[str, object]:
    model = parse_cpuinfo(_read_text(Path("/proc/cpuinfo")) or "") or platform.processor() or None
    physical = None
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except Exception:
        pass
    return {"model": model, "arch": platform.machine(), "cores_logical": os.cpu_count(), "cores_physical": physical}


def gpu_info() -> dict[str, object] | None:
    """GPU name, driver and CUDA version: torch.cuda when it sees a GPU, else nvidia-smi."""
    info: dict[str, object] = {}
    if importlib.util.find_spec("torch") is not None:
        try:
            import torch

            if torch.cuda.is_available():
                info = {"name": torch.cuda.get_device_name(0), "cuda": torch.version.cuda, "driver": None,
                        "source": "torch"}
        except Exception:
            info = {}
    smi = run_command(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"])
    if smi and smi.strip():
        name, _, driver = smi.strip().splitlines()[0].partition(",")
        if not info:
            info = {"name": name.strip(), "cuda": None, "driver": driver.strip() or None, "source": "nvidia-smi"}
        else:
            info["driver"] = driver.strip() or None
    return info or None


def jetson_info() -> dict[str, object] | None:
    """L4T/JetPack, board model, power mode and jetson_clocks state; None off Jetson."""
    release = _read_text(NV_TEGRA_RELEASE)
    if release is None:
        return None
    l4t = parse_nv_tegra_release(release)
    jetpack_pkg = run_command(["dpkg-query", "--showformat=${Version}", "--show", "nvidia-jetpack"])
    model = _read_text(DEVICE_TREE_MODEL)
    nvp = run_command(["nvpmodel", "-q"])
    clocks = run_command(["jetson_clocks", "--show"])
    return {
        "model": model.strip("\x00 \n") if model else None,
        "l4t": l4t["l4t"],
        "jetpack": (jetpack_pkg.strip() if jetpack_pkg and jetpack_pkg.strip() else None) or l4t["jetpack"],
        "release": l4t,
        "power_mode": parse_nvpmodel(nvp) if nvp else None,
        "jetson_clocks": parse_jetson_clocks(clocks) if clocks else None,
    }


def capture_environment() -> dict[str, object]:
    """Everything above in one JSON-ready dict."""
    versions = {name: module_version(module) for name, module in PACKAGES.items()}
    providers = None
    if versions["onnxruntime"]:
        try:
            import onnxruntime

            providers = list(onnxruntime.get_available_providers())
        except Exception:
            providers = None
    return {
        "timestamp_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_info(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "versions": versions,
        "onnxruntime_providers": providers,
        "gpu": gpu_info(),
        "jetson": jetson_info(),
    }
