"""Loading, saving, fingerprinting and converting model weights.

A model on disk is ``NAME.safetensors`` plus a JSON card ``NAME.json`` holding its
config (and, for trained models, data, seed, steps, metrics). ``--model`` accepts:

- a registered name with shipped weights (``tiny``, the default everywhere),
- ``random:NAME`` — a registered config with seeded random weights (benchmarks, tests),
- a path to a ``.safetensors`` file with its JSON card beside it.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from taskvec.model.config import PUBLISHED_ARCHS, ModelConfig, get_config, list_configs
from taskvec.errors import UserError, atomic_paths, check_finite
from taskvec.model.card import (DEFAULT_MODEL, WEIGHTS_DIR, ModelRef, card_path, model_ref, read_card,  # noqa: F401
                                resolve_model_path)
from taskvec.model.mae_vqgan import MaeVQGAN



def fingerprint(state_dict: dict[str, Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes of every tensor, in name order."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def model_fingerprint(model: MaeVQGAN) -> str:
    """The fingerprint of ``model``'s current weights (computed each time: a command that
    needs it often resolves it once, :func:`taskvec.vectors.resolved.resolve_task`)."""
    return fingerprint(model.state_dict())


def save_model(model: MaeVQGAN, path: str | Path, card: dict[str, Any] | None = None) -> Path:
    """Write ``path`` (.safetensors) and its JSON card atomically. Returns the weights path."""
    from safetensors.torch import save_file

    path = Path(path)
    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    info = {"config": model.cfg.to_dict(), "fingerprint": fingerprint(sd), **(card or {})}
    check_finite(sd, f"refusing to save {path}")
    # one artifact: the card is published first, the weights (what loaders look for) last
    with atomic_paths([card_path(path), path]) as (tmp_card, tmp):
        save_file(sd, str(tmp), metadata={"config": json.dumps(model.cfg.to_dict())})
        tmp_card.write_text(json.dumps(info, indent=2) + "\n")
    return path


def load_model(spec: str = DEFAULT_MODEL, device: str | torch.device = "cpu", seed: int = 0) -> MaeVQGAN:
    """Build and load the model named by ``spec`` (see module doc), in eval mode."""
    return load_model_ref(spec, device, seed)[0]


def load_model_ref(spec: str = DEFAULT_MODEL, device: str | torch.device = "cpu",
                   seed: int = 0) -> tuple[MaeVQGAN, ModelRef, str]:
    """:func:`load_model` → (model, its :class:`~taskvec.model.card.ModelRef`, the loaded
    weights' fingerprint), each found once."""
    ref = model_ref(spec)
    path = ref.path
    if path is None:
        cfg = get_config(ref.name)
        torch.manual_seed(seed)
        model = MaeVQGAN(cfg).eval()
        fp = model_fingerprint(model)
        return model.to(device), dataclasses.replace(ref, fingerprint=fp), fp
    from safetensors.torch import load_file

    card = ref.card
    try:
        cfg = ModelConfig.from_dict(card["config"])
        sd = load_file(str(path))
    except UserError:
        raise
    except Exception as e:  # corrupt file or card
        raise UserError(f"{path}: cannot read weights ({type(e).__name__}: {e})") from None
    model = MaeVQGAN(cfg)
    check_state_dict(model, sd, str(path))
    check_finite(sd, str(path))
    model.load_state_dict(sd)
    fp = fingerprint(sd)
    if card.get("fingerprint", fp) != fp:
        raise UserError(f"{path}: the weights changed without their card (card fingerprint "
                        f"{card['fingerprint'][:8]}…, weights {fp[:8]}…)")  # fmt: skip
    return model.eval().to(device), ref, fp


def check_state_dict(model: MaeVQGAN, sd: dict[str, Tensor], where: str) -> None:
    """Refuse a state dict whose names or shapes differ from ``model``'s, with one line."""
    ref = model.state_dict()
    missing = sorted(set(ref) - set(sd))
    unexpected = sorted(set(sd) - set(ref))
    bad = [k for k in ref if k in sd and tuple(sd[k].shape) != tuple(ref[k].shape)]
    if missing or unexpected or bad:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if bad:
            k = bad[0]
            parts.append(f"{len(bad)} with wrong shape (e.g. {k}: {tuple(sd[k].shape)} vs {tuple(ref[k].shape)})")
        raise UserError(f"{where}: weights do not match {model.cfg.name}: " + "; ".join(parts))


def read_published_checkpoint(src: str | Path) -> tuple[dict[str, Tensor], str]:
    """Read the published MAE-VQGAN pickle safely → (state dict, config name).

    Only tensors, containers and ``argparse.Namespace`` are unpickled; anything else is
    refused."""
    src = Path(src)
    if not src.is_file():
        raise UserError(f"checkpoint {src} does not exist")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            ckpt = torch.load(str(src), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "unpickling failed"
        raise UserError(f"{src}: refused — it holds objects other than tensors and argparse.Namespace ({first})") from None
    except Exception as e:
        raise UserError(f"{src}: not a readable PyTorch checkpoint ({type(e).__name__})") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict):
        raise UserError(f"{src}: expected a dict with the weights under 'model'")
    args = ckpt.get("args")
    arch = getattr(args, "model", None) if args is not None else None
    if arch is None:
        name = "vit_large"
    elif arch in PUBLISHED_ARCHS:
        name = PUBLISHED_ARCHS[arch]
    elif arch in list_configs():
        name = arch
    else:
        raise UserError(f"{src}: unknown architecture args.model={arch!r}")
    sd = {k: v for k, v in ckpt["model"].items() if isinstance(v, Tensor)}
    return sd, name


def convert_checkpoint(src: str | Path, dst: str | Path, config: str | None = None) -> dict[str, Any]:
    """Published ``.pth`` → ``dst`` safetensors + JSON card. Returns the card."""
    dst = Path(dst)
    if dst.suffix != ".safetensors":
        raise UserError(f"{dst}: the output must end in .safetensors")
    sd, name = read_published_checkpoint(src)
    cfg = get_config(config or name)
    model = MaeVQGAN(cfg)
    check_state_dict(model, sd, str(src))
    check_finite(sd, str(src))
    model.load_state_dict(sd)
    card = {"source": str(Path(src).name), "converted_from": "published MAE-VQGAN checkpoint"}
    save_model(model, dst, card)
    return read_card(dst)


def model_info(spec: str) -> dict[str, Any]:
    model = load_model(spec)
    info = {
        "model": spec,
        "config": model.cfg.to_dict(),
        "params": sum(p.numel() for p in model.parameters()),
        "fingerprint": model_fingerprint(model),
    }
    card = getattr(model, "card", {})
    for key in ("data", "seed", "steps", "wall_time_s", "hardware", "metrics"):
        if key in card:
            info[key] = card[key]
    return info


def load_init_weights(model: MaeVQGAN, path: str | Path) -> None:
    """``taskvec train --init``: load ``path`` into ``model``, refusing another architecture,
    a corrupt file or NaN/Inf weights with one line. A model with an answer refinement may
    start from weights without one: the refinement keeps its zero start."""
    from safetensors.torch import load_file

    path = Path(path)
    try:
        sd = load_file(str(path))
    except Exception as e:  # noqa: BLE001 — a corrupt or foreign file
        raise UserError(f"--init {path}: cannot read weights ({type(e).__name__})") from None
    if not any(k.startswith("refine.") for k in sd):
        sd = {**{k: v for k, v in model.state_dict().items() if k.startswith("refine.")}, **sd}
    check_state_dict(model, sd, f"--init {path}")
    check_finite(sd, f"--init {path}")
    model.load_state_dict(sd)


RESUME_KEYS = ("model", "opt", "gen", "step", "scale")


def load_resume_state(path: str | Path, model: MaeVQGAN, device) -> dict[str, Any]:
    """``taskvec train --resume``: read ``last.pt`` (tensors only) and check it fits ``model``."""
    path = Path(path)
    try:
        state = torch.load(str(path), map_location=device, weights_only=True)
    except Exception as e:  # noqa: BLE001 — truncated, foreign or malicious pickle
        raise UserError(f"{path}: not a readable training checkpoint ({type(e).__name__}); "
                        "delete it to start over") from None
    if not isinstance(state, dict) or any(k not in state for k in RESUME_KEYS):
        raise UserError(f"{path}: not a taskvec training checkpoint (needs {', '.join(RESUME_KEYS)})")
    if not isinstance(state["model"], dict):
        raise UserError(f"{path}: not a taskvec training checkpoint (no model weights)")
    check_state_dict(model, state["model"], str(path))
    check_finite(state["model"], str(path))
    return state


def resolve_device(spec: str | None) -> str | None:
    """Check a ``--device`` value (None: automatic) → the same value; one line when it cannot run here."""
    if spec is None:
        return None
    text = spec.strip().lower()
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise UserError(f"bad --device {spec!r}: use cpu, cuda or cuda:N") from None
    if dev.type == "cpu":
        return "cpu"
    if dev.type != "cuda":
        raise UserError(f"--device {spec!r} is not supported: use cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise UserError(f"--device {spec}: CUDA is not available here (use --device cpu)")
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UserError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) here")
    return text
