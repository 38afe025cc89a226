"""`taskvec prompt` answers as the reference MAE-VQGAN does (DESIGN §1, issue 13 item 5).

A published-format checkpoint (the pickle with ``model``/``optimizer``/``epoch``/``scaler``/
``args``) with non-trivial random weights — norm gains ≠ 1, weights of scale 1/√fan-in, a
unit-variance codebook — goes through ``taskvec convert`` and ``taskvec prompt``. The
reference answer is computed here, independently of the model's decode code: argmax codes of
every canvas token (zero-shot: the bottom half's 98 codes placed in both halves) → the VQGAN
decoder on the full 14×14 grid → the answer cell cropped. The prompt's PNG must equal it
within one grey level, while the answer-only decode is tens of grey levels away (so the
weights are non-trivial enough for the test to tell the decodes apart).
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np
import pytest
import torch

from export.check import random_images
from export.onnx_export import random_taskvector
from taskvec import geometry as G
from taskvec.model.checkpoint import convert_checkpoint, load_model
from taskvec.model.config import get_config
from taskvec.model.mae_vqgan import MaeVQGAN
from taskvec.data.images import load_image
from taskvec.vectors.prompting import run_prompt


def nontrivial_state_dict(cfg_name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights far from the initialisation: 1-D ``weight``s (LayerNorm/GroupNorm gains)
    1 ± 0.3, biases N(0, 0.1²), matrices and kernels N(0, 1/fan-in), codebook N(0, 1);
    the fixed sin-cos position embeddings stay."""
    gen = torch.Generator().manual_seed(seed)
    sd = MaeVQGAN(get_config(cfg_name)).state_dict()
    out = {}
    for name, t in sd.items():
        if "pos_embed" in name:
            out[name] = t.clone()
        elif name == "vae.quantize.embedding.weight":
            out[name] = torch.randn(t.shape, generator=gen)
        elif t.ndim == 1 and name.endswith("weight"):
            out[name] = 1 + 0.3 * torch.randn(t.shape, generator=gen)
        elif t.ndim == 1:
            out[name] = 0.1 * torch.randn(t.shape, generator=gen)
        elif name in ("cls_token", "mask_token"):
            out[name] = torch.randn(t.shape, generator=gen)
        else:
            fan_in = int(np.prod(t.shape[1:]))
            out[name] = torch.randn(t.shape, generator=gen) / fan_in**0.5
    return out


def _published_checkpoint(tmp_path, cfg_name: str):
    src = tmp_path / "published.pth"
    torch.save({"model": nontrivial_state_dict(cfg_name), "optimizer": {}, "epoch": 0, "scaler": {},
                "args": argparse.Namespace(model=cfg_name)}, src)
    dst = tmp_path / f"{cfg_name}.safetensors"
    convert_checkpoint(src, dst)
    src.unlink()
    return dst


def _write_cells(tmp_path) -> dict[str, str]:
    paths = {}
    for i, name in enumerate(("query", "example_in", "example_out")):
        p = tmp_path / f"{name}.png"
        cv2.imwrite(str(p), random_images(1, 40 + i)[0])  # BGR uint8, already 111×111
        paths[name] = str(p)
    return paths


@torch.no_grad()
def reference_answer(model: MaeVQGAN, query, example_in=None, example_out=None, patches=None) -> torch.Tensor:
    """The reference pipeline: full 14×14 code grid → VQGAN → crop the answer → [1,3,111,111]."""
    zero_shot = example_in is None
    layout = G.get_layout("zero-shot" if zero_shot else "in-context")
    canvas = G.make_canvas(example_in, example_out, query)
    dec = model(G.normalize(canvas), layout, patches=patches, decode="answer").decoder_out
    codes = model.decoder_pred(dec[:, 1:]).argmax(dim=-1)  # canvas tokens in raster order
    half = G.GRID // 2
    if zero_shot:  # 98 bottom-half codes: the same codes in the top half
        codes = torch.cat([codes, codes], dim=1)
    grid = codes.reshape(1, G.GRID, G.GRID)
    assert grid.shape[1] == 2 * half
    image = (model.vae.decode_indices(grid) + 1) / 2
    return G.get_cell(image, "answer")


def _png(path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1].astype(np.int16)  # RGB


def _u8(x: torch.Tensor) -> np.ndarray:
    return (x[0].detach().clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.int16)


@pytest.mark.parametrize("cfg_name", ["micro", pytest.param("vit_large", marks=pytest.mark.slow)])
def test_prompt_answer_is_the_full_grid_decode(tmp_path, cfg_name):
    weights = _published_checkpoint(tmp_path, cfg_name)
    model = load_model(str(weights))
    cells = _write_cells(tmp_path)
    q, ex_in, ex_out = (load_image(cells[k])[None] for k in ("query", "example_in", "example_out"))
    tv = random_taskvector(model, "lowlight", every=2)
    tv_path = tmp_path / "tv.safetensors"
    tv.save(tv_path)

    # in-context
    run_prompt("lowlight", cells["query"], tmp_path / "ic.png", cells["example_in"], cells["example_out"],
               model_spec=str(weights))
    ref = reference_answer(model, q, ex_in, ex_out)
    got = _png(tmp_path / "ic.png")
    assert np.abs(got - _u8(ref)).max() <= 1
    only = model(G.normalize(G.make_canvas(ex_in, ex_out, q)), G.get_layout("in-context"), decode="answer").answer
    assert np.abs(got - _u8(only)).max() > 10  # the answer-only decode is visibly another answer

    # zero-shot with the task vector
    run_prompt("lowlight", cells["query"], tmp_path / "zs.png", use_zero_shot=True, taskvec_file=str(tv_path),
               model_spec=str(weights))
    ref = reference_answer(model, q, patches=tv.patches())
    got = _png(tmp_path / "zs.png")
    assert np.abs(got - _u8(ref)).max() <= 1
    only = model(G.normalize(G.make_canvas(None, None, q)), G.get_layout("zero-shot"), patches=tv.patches(),
                 decode="answer").answer
    assert np.abs(got - _u8(only)).max() > 10


def test_decode_regions_follow_the_layout():
    zs, ic = G.get_layout("zero-shot"), G.get_layout("in-context")
    full = G.decode_region(zs, "full")
    assert (full.rows, full.cols, full.crop_top, full.crop_left) == (G.GRID, G.GRID, 113, 113)
    # zero-shot: token (r, c) of the top half takes the code of (r + 7, c)
    bottom = zs.dec_index([1 + t for t in range(G.NUM_TOKENS // 2, G.NUM_TOKENS)])
    assert list(full.sources) == bottom + bottom
    assert list(G.decode_region(ic, "full").sources) == list(range(1, G.NUM_SLOTS))
    ans = G.decode_region(zs, "answer")
    assert (ans.rows, ans.cols, ans.crop_top, ans.crop_left) == (7, 7, 1, 1)
    assert list(ans.answer_positions) == list(range(49))
    # halo: zero-shot has no decoder tokens above the answer, so it grows left only
    h = G.decode_region(zs, "halo", 2)
    assert (h.r0, h.c0, h.crop_top, h.crop_left) == (7, 5, 1, 33)
    h = G.decode_region(ic, "halo", 2)
    assert (h.r0, h.c0) == (5, 5)
    assert [h.sources[p] for p in h.answer_positions] == ic.answer_dec_index()
