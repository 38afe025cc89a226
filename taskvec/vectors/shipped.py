"""Where the shipped task vectors live (no torch: ``tvrun`` finds its default vector without
loading the model). The file format is :mod:`taskvec.vectors.taskvector`'s."""

from __future__ import annotations

from pathlib import Path

TASKVECTOR_DIR = Path(__file__).parents[1] / "taskvectors"  # package data of taskvec/


def default_taskvector_path(task: str, model_name: str = "tiny", variant: str = "paper") -> Path:
    """The shipped vector: ``taskvec/taskvectors/{model_name}-{task}[-realistic].safetensors``.

    ``variant`` names the task construction it was searched on: the paper's (e.g. 0.5·image
    for low-light) or the realistic one (gamma, gain and sensor noise), which the runtime
    prefers for live video where it is shipped."""
    suffix = "" if variant == "paper" else f"-{variant}"
    return TASKVECTOR_DIR / f"{model_name}-{task}{suffix}.safetensors"


def runtime_taskvector_path(task: str, model_name: str) -> Path:
    """The vector the runtime uses by default: the realistic one where shipped, else the paper's."""
    realistic = default_taskvector_path(task, model_name, "realistic")
    return realistic if realistic.is_file() else default_taskvector_path(task, model_name)
