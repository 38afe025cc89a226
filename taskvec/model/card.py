"""A ``--model`` value resolved without loading weights (no torch): the weights file, its
JSON card (config, fingerprint, training record) and the model's identity.

A model on disk is ``NAME.safetensors`` plus a card ``NAME.json``. ``--model`` accepts a
registered name with shipped weights (``tiny``, the default everywhere), ``random:NAME`` (a
registered config with seeded random weights) or a ``.safetensors`` path. Loading the
weights is :func:`taskvec.model.checkpoint.load_model`'s job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taskvec.errors import UserError
from taskvec.model.config import list_configs

WEIGHTS_DIR = Path(__file__).parents[1] / "weights"  # package data of taskvec/
DEFAULT_MODEL = "tiny"
RANDOM_PREFIX = "random:"


def card_path(weights: Path) -> Path:
    return weights.with_suffix(".json")


def read_card(path: Path) -> dict[str, Any]:
    """The JSON card of weights file ``path``; without one, the config in the file's metadata."""
    cp = card_path(path)
    if cp.exists():
        return json.loads(cp.read_text())
    from safetensors import safe_open

    with safe_open(str(path), "numpy") as f:
        meta = f.metadata() or {}
    if "config" not in meta:
        raise UserError(f"{path}: no JSON card ({cp.name}) and no config in the file's metadata")
    return {"config": json.loads(meta["config"])}


def resolve_model_path(spec: str) -> Path | None:
    """The weights file a ``--model`` value names, or None for ``random:NAME``."""
    if spec.startswith(RANDOM_PREFIX):
        return None
    if spec in list_configs():
        path = WEIGHTS_DIR / f"{spec}.safetensors"
        if not path.exists():
            raise UserError(f"no shipped weights for {spec!r}; use random:{spec} or a .safetensors path")
        return path
    path = Path(spec)
    if not path.exists():
        raise UserError(f"model {spec!r} is neither a known name ({', '.join(list_configs())}) nor a file")
    if path.suffix != ".safetensors":
        raise UserError(f"{path}: expected a .safetensors file (convert a .pth with `taskvec convert`)")
    return path


@dataclass(frozen=True)
class ModelRef:
    """A ``--model`` value before its weights are loaded.

    ``path``: the weights (None for ``random:NAME``); ``name``: the config name;
    ``fingerprint``: the weights' sha256 as the card records it (None for ``random:`` models
    and cards without one: only the loaded weights tell)."""

    spec: str
    path: Path | None
    name: str
    fingerprint: str | None
    card: dict[str, Any] = field(default_factory=dict, compare=False)


def model_ref(spec: str = DEFAULT_MODEL) -> ModelRef:
    """Resolve ``spec`` to a :class:`ModelRef`, reading only the card (one-line UserError)."""
    path = resolve_model_path(spec)
    if path is None:
        name = spec[len(RANDOM_PREFIX):]
        if name not in list_configs():
            raise UserError(f"unknown config {name!r}; choose from {', '.join(list_configs())}")
        return ModelRef(spec, None, name, None, {})
    try:
        card = read_card(path)
        name = str(card["config"]["name"])
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 — a corrupt card or header
        raise UserError(f"{path}: cannot read its card ({type(e).__name__}: {e})") from None
    return ModelRef(spec, path, name, card.get("fingerprint"), card)
