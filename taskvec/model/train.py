"""Training the embedded default model (DESIGN §7).

Each step draws in-context canvases of the four tasks (paper and realistic variants)
from packaged photos and procedural scenes, drops half of the example tokens from the
encoder (MAE-style; the query is always seen) and trains the pixel head on

- the answer cell (per-task losses scaled by a running mean so a 0/1 mask does not
  dwarf photographic targets), and
- plain masked-image modelling: every example token hidden from the encoder is
  reconstructed too.

Everything random comes from one seeded generator whose state is checkpointed, so a
resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import json
import math
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from taskvec import geometry as G
from taskvec.data.bank import ImageBank, bank_crops, composite_stamps
from taskvec.model.checkpoint import save_model
from taskvec.model.config import get_config
from taskvec.data.images import load_folder, packaged_photos, prepare_photos, random_crops
from taskvec.errors import UserError, atomic_path
from taskvec.evaluation.metrics import changed_pixels
from taskvec.model.mae_vqgan import MaeVQGAN
from taskvec.data.scenes import procedural_scenes
from taskvec.data.tasks import build_canvases

TASKS = ("segmentation", "lowlight", "inpainting", "colorization")


@dataclass
class TrainConfig:
    config: str = "tiny"
    steps: int = 3000
    batch: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: int = 100
    keep: float = 0.5  # fraction of example tokens the encoder sees
    realistic: float = 0.3  # share of canvases with the realistic task variants
    mim_weight: float = 0.25
    seed: int = 0
    images: str | None = None  # extra folder of the user's images
    bank: str | None = None  # image bank from `taskvec data fetch` (wallpapers + stamps)
    ckpt_every: int = 250
    eval_every: int = 500
    eval_images: int = 48
    time_budget_min: float | None = None  # stop (and save) after this many minutes
    init: str | None = None  # start from these weights (.safetensors) instead of random
    changed_weight: float = 0.0  # extra answer-loss weight on the pixels the task changes (in-painting holes)
    grad_weight: float = 0.0  # weight of the L1 loss on image gradients (penalises blocky, per-patch fills)
    extra: dict = field(default_factory=dict)


STAMPED = 0.4  # share of photo cells that get a cut-out stamp pasted in (with a bank)


class DataSource:
    """Batches of training images: packaged photo crops, procedural scenes, user images and,
    with an image bank (:mod:`taskvec.data.bank`), wallpaper crops and stamp composites."""

    def __init__(self, device: torch.device, images: str | None = None, split: str = "train",
                 bank: str | None = None) -> None:
        photos = list(packaged_photos(split).values())
        if images and split == "train":
            photos += list(load_folder(images, size=256))
        self.photos = prepare_photos(photos, device=device)
        self.device = device
        self.bank = ImageBank.load(bank, split, device) if bank else None

    def photos_batch(self, n: int, gen: torch.Generator) -> Tensor:
        if self.bank is None:
            return random_crops(self.photos, n, gen, device=self.device)
        n_bank = n // 2
        x = torch.cat([bank_crops(self.bank, n_bank, gen, device=self.device),
                       random_crops(self.photos, n - n_bank, gen, device=self.device)])
        n_st = int(n * STAMPED)
        if n_st:
            x[:n_st] = composite_stamps(x[:n_st], self.bank.stamps, gen)[0]
        return x

    def scenes_batch(self, n: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """Images with foreground masks: procedural scenes and, with a bank, half stamp composites."""
        n_st = n // 2 if self.bank is not None else 0
        backgrounds = self.photos_batch(n, gen)
        imgs, masks = procedural_scenes(n - n_st, gen, backgrounds[: n - n_st], device=self.device)
        if n_st:
            si, sm = composite_stamps(backgrounds[n - n_st :], self.bank.stamps, gen)
            imgs, masks = torch.cat([imgs, si]), torch.cat([masks, sm])
        return imgs, masks


def sample_batch(src: DataSource, cfg: TrainConfig, gen: torch.Generator) -> list[tuple[str, Tensor, Tensor]]:
    """One training batch as (task, canvas [b,3,224,224] in [0,1], target [b,3,111,111]) groups."""
    per = cfg.batch // len(TASKS)
    groups = []
    for task in TASKS:
        n_real = int(round(per * cfg.realistic)) if task in ("lowlight", "inpainting") else 0
        for variant, n in (("paper", per - n_real), ("realistic", n_real)):
            if n == 0:
                continue
            # Half of the pairs come from procedural scenes (with masks), half from photos.
            if task == "segmentation":
                imgs, masks = src.scenes_batch(2 * n, gen)
            else:
                n_sc = n // 2
                sc, _ = src.scenes_batch(2 * n_sc, gen) if n_sc else (None, None)
                ph = src.photos_batch(2 * (n - n_sc), gen)
                imgs, masks = (torch.cat([sc, ph]) if sc is not None else ph), None
            ex, q = imgs[:n], imgs[n:]
            exm, qm = (masks[:n], masks[n:]) if masks is not None else (None, None)
            canvas, target, _ = build_canvases(task, ex, q, gen, variant, exm, qm, with_answer=False)
            groups.append((task, canvas, target))
    return groups


def lr_at(step: int, cfg: TrainConfig, elapsed_frac: float = 0.0) -> float:
    """Linear warm-up, then cosine decay over the steps (or the time budget, if that ends first)."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = max((step - cfg.warmup) / max(1, cfg.steps - cfg.warmup), elapsed_frac)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def answer_error(diff: Tensor, w: Tensor, grad_weight: float = 0.0) -> Tensor:
    """Per-sample answer loss from ``diff`` = prediction − target [B,3,H,W] and pixel weights
    ``w`` [B,1,H,W]: weighted MSE plus ``grad_weight`` × the weighted L1 norm of the error's
    image gradient — zero for an error that is the same everywhere, large for one that jumps
    from pixel to pixel (seams between 16-px patches, speckle)."""
    norm = w.mean(dim=(1, 2, 3))
    err = (diff.pow(2) * w).mean(dim=(1, 2, 3)) / norm
    if grad_weight:
        gx = (diff[..., :, 1:] - diff[..., :, :-1]).abs() * w[..., :, 1:]
        gy = (diff[..., 1:, :] - diff[..., :-1, :]).abs() * w[..., 1:, :]
        err = err + grad_weight * (gx.mean(dim=(1, 2, 3)) + gy.mean(dim=(1, 2, 3))) / norm
    return err


def training_loss(
    model: MaeVQGAN, groups, layout: G.Layout, scale: dict[str, float], mim_weight: float,
    changed_weight: float = 0.0, grad_weight: float = 0.0,
) -> tuple[Tensor, dict[str, float]]:
    canvas = torch.cat([c for _, c, _ in groups])
    x = G.normalize(canvas)
    out = model(x, layout)
    # masked-image modelling: every example token the encoder did not see
    seen, answer = set(layout.enc_slots), set(G.cell_slots("answer"))
    hidden = [s for s in layout.dec_slots[1:] if s not in seen and s not in answer]
    if hidden:
        tokens = [s - 1 for s in hidden]
        feats = out.decoder_out[:, torch.tensor(layout.dec_index(hidden), dtype=torch.long, device=x.device)]
        pred = model.pixel_tokens(feats, x, tokens)
        mim = F.mse_loss(pred, G.patchify(x)[:, torch.tensor(tokens, dtype=torch.long, device=x.device)])
    else:
        mim = x.new_zeros(())

    losses, logs, start = [], {}, 0
    by_task: dict[str, list[Tensor]] = {}
    for task, c, target in groups:
        n = c.shape[0]
        diff = out.answer_norm[start : start + n] - G.normalize(target)
        w = torch.ones_like(diff[:, :1])
        if changed_weight:
            w = 1.0 + changed_weight * changed_pixels(G.get_cell(c, "query"), target)
        err = answer_error(diff, w, grad_weight)
        by_task.setdefault(task, []).append(err)
        start += n
    for task, errs in by_task.items():
        e = torch.cat(errs).mean()
        losses.append(e / scale.get(task, 1.0))
        logs[task] = float(e.detach())
    logs["mim"] = float(mim.detach())
    return torch.stack(losses).mean() + mim_weight * mim, logs


@torch.no_grad()
def validate(model: MaeVQGAN, device: torch.device, n: int = 48, seed: int = 1234,
             bank: str | None = None) -> dict[str, float]:
    """One-shot prompting on held-out photos (and held-out scenes for segmentation); with a
    bank, on its validation pictures and stamps too."""
    from taskvec.evaluation.metrics import compute_metrics

    model.eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    src = _val_source(device, bank)
    out: dict[str, float] = {}
    for task in TASKS:
        if task == "segmentation":
            imgs, masks = src.scenes_batch(2 * n, gen)
        else:
            imgs, masks = src.photos_batch(2 * n, gen), None
        ex, q = imgs[:n], imgs[n:]
        exm, qm = (masks[:n], masks[n:]) if masks is not None else (None, None)
        canvas, target, q_in = build_canvases(task, ex, q, gen, "paper", exm, qm, with_answer=False)
        pred = model(G.normalize(canvas), G.get_layout("in-context")).answer
        m = compute_metrics(task, pred.float().cpu(), target.float().cpu())
        for k, v in m.items():
            out[f"{task}/{k}"] = round(v, 4)
        if task != "segmentation":
            base = compute_metrics(task, q_in.float().cpu(), target.float().cpu())
            out[f"{task}/input_{'psnr' if 'psnr' in base else 'mse'}"] = round(base.get("psnr", base["mse"]), 4)
    model.train()
    return out


_VAL_SOURCES: dict = {}


def _val_source(device: torch.device, bank: str | None) -> DataSource:
    key = (str(device), bank)
    if key not in _VAL_SOURCES:
        _VAL_SOURCES[key] = DataSource(device, split="val", bank=bank)
    return _VAL_SOURCES[key]


def _checkpoint_state(model, opt, step, gen, scale, cfg) -> dict:
    return {
        "model": model.state_dict(),
        "opt": opt.state_dict(),
        "step": step,
        "gen": gen.get_state(),
        "scale": scale,
        "train_config": asdict(cfg),
    }


def train(cfg: TrainConfig, out_dir: str | Path, resume: bool = False, device: str | None = None) -> Path:
    """Train ``cfg.config`` and write ``out_dir/<config>.safetensors`` + card. Returns the path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    mcfg = get_config(cfg.config)
    if mcfg.head != "pixel":
        raise UserError(f"training supports pixel-head configs; {cfg.config} has a {mcfg.head} head")
    torch.manual_seed(cfg.seed)
    model = MaeVQGAN(mcfg)
    if cfg.init:
        from taskvec.model.checkpoint import load_init_weights

        load_init_weights(model, cfg.init)
    model = model.to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
    gen = torch.Generator(device=dev).manual_seed(cfg.seed)
    scale: dict[str, float] = {}
    step, history = 0, []
    ckpt = out_dir / "last.pt"
    if resume:
        if not ckpt.exists():
            raise UserError(f"nothing to resume: {ckpt} does not exist")
        from taskvec.model.checkpoint import load_resume_state

        state = load_resume_state(ckpt, model, dev)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        gen.set_state(state["gen"].cpu())
        step, scale = state["step"], dict(state["scale"])
        hist_file = out_dir / "history.json"
        history = json.loads(hist_file.read_text()) if hist_file.exists() else []
    src = DataSource(dev, cfg.images, bank=cfg.bank)
    amp = dev.type == "cuda"
    t0 = time.time()
    bar = tqdm(total=cfg.steps, initial=step, desc=f"train {cfg.config}", unit="step", dynamic_ncols=True)
    budget_s = cfg.time_budget_min * 60 if cfg.time_budget_min else None
    while step < cfg.steps:
        frac = (time.time() - t0) / budget_s if budget_s else 0.0
        if frac >= 1.0:
            tqdm.write(f"time budget of {cfg.time_budget_min} min reached at step {step}")
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg, frac)
        groups = sample_batch(src, cfg, gen)
        layout = G.random_drop_layout(cfg.keep, generator=_cpu_gen(gen))
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            loss, logs = training_loss(model, groups, layout, scale, cfg.mim_weight, cfg.changed_weight,
                                         cfg.grad_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        for t in TASKS:
            scale[t] = logs[t] if t not in scale else 0.99 * scale[t] + 0.01 * logs[t]
        step += 1
        bar.update(1)
        rate = bar.format_dict.get("rate") or 0.0  # steps/s
        bar.set_postfix(loss=f"{float(loss.detach()):.3f}", canvases_per_s=f"{cfg.batch * rate:.0f}")
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            with atomic_path(ckpt) as tmp:
                torch.save(_checkpoint_state(model, opt, step, gen, scale, cfg), str(tmp))
        if step % cfg.eval_every == 0 or step == cfg.steps:
            _log_eval(model, dev, cfg, step, t0, logs, history, out_dir)
    bar.close()
    if not history or history[-1]["step"] != step:
        _log_eval(model, dev, cfg, step, t0, logs, history, out_dir)
    wall = time.time() - t0
    card = {
        "trained_by": "taskvec train",
        "train_config": asdict(cfg),
        "data": {
            "photos": "scikit-image sample photos (train split), random crops/flips/colour jitter",
            "scenes": "procedural shapes/textures on photo backgrounds with foreground masks",
            "held_out_photos": "taskvec.data.images.VAL_PHOTOS",
            "user_images": cfg.images,
            **(bank_card(cfg.bank) if cfg.bank else {}),
        },
        "seed": cfg.seed,
        "steps": step,
        "wall_time_s": round(wall, 1),
        "hardware": hardware_name(dev),
        "metrics": history[-1] if history else {},
    }
    return save_model(model.cpu().eval(), out_dir / f"{cfg.config}.safetensors", card)


def bank_card(bank: str) -> dict:
    from taskvec.data.fetch import manifest_hash, read_manifest

    entries = read_manifest(bank)
    count = lambda kind, split: sum(e.kind == kind and e.split == split for e in entries)  # noqa: E731
    return {
        "bank_manifest_sha256": manifest_hash(bank),
        "bank": {k: {s: count(k, s) for s in ("train", "val", "test")} for k in ("wallpaper", "stamp")},
        "bank_packages": sorted({e.package for e in entries}),
    }


def _log_eval(model, dev, cfg: TrainConfig, step: int, t0: float, logs: dict, history: list, out_dir: Path) -> None:
    metrics = validate(model, dev, cfg.eval_images, bank=cfg.bank)
    history.append({"step": step, "elapsed_s": round(time.time() - t0, 1), **logs, **metrics})
    (out_dir / "history.json").write_text(json.dumps(history, indent=1))
    tqdm.write(json.dumps(history[-1]))


def _cpu_gen(gen: torch.Generator) -> torch.Generator:
    """A CPU generator seeded from ``gen`` (layouts are drawn on the CPU)."""
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen, device=gen.device).item())
    return torch.Generator().manual_seed(seed)


def hardware_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"{platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"

