"""Published-checkpoint conversion, model loading and `taskvec info/convert/prompt`."""

from __future__ import annotations

import argparse
import json
import pathlib

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from taskvec.model.checkpoint import convert_checkpoint, fingerprint, load_model, model_fingerprint, model_info
from taskvec.cli.main import main
from taskvec.model.config import get_config
from taskvec.errors import UserError
from taskvec.model.mae_vqgan import MaeVQGAN

# Names and shapes of the published MAE-VQGAN (mae_vit_large_patch16 + taming f16 VQGAN).
REFERENCE_SHAPES = {
    "cls_token": (1, 1, 1024),
    "pos_embed": (1, 197, 1024),
    "patch_embed.proj.weight": (1024, 3, 16, 16),
    "patch_embed.proj.bias": (1024,),
    "blocks.0.norm1.weight": (1024,),
    "blocks.0.attn.qkv.weight": (3072, 1024),
    "blocks.0.attn.qkv.bias": (3072,),
    "blocks.23.attn.proj.weight": (1024, 1024),
    "blocks.23.mlp.fc1.weight": (4096, 1024),
    "blocks.23.mlp.fc2.weight": (1024, 4096),
    "norm.weight": (1024,),
    "decoder_embed.weight": (512, 1024),
    "mask_token": (1, 1, 512),
    "decoder_pos_embed": (1, 197, 512),
    "decoder_blocks.7.attn.qkv.weight": (1536, 512),
    "decoder_blocks.7.mlp.fc2.weight": (512, 2048),
    "decoder_norm.weight": (512,),
    "decoder_pred.weight": (1024, 512),
    "decoder_pred.bias": (1024,),
    "vae.quantize.embedding.weight": (1024, 256),
    "vae.quant_conv.weight": (256, 256, 1, 1),
    "vae.post_quant_conv.weight": (256, 256, 1, 1),
    "vae.decoder.conv_out.weight": (3, 128, 3, 3),
}
TOP_LEVEL = {"cls_token", "pos_embed", "patch_embed", "blocks", "norm", "decoder_embed", "mask_token",
             "decoder_pos_embed", "decoder_blocks", "decoder_norm", "decoder_pred", "vae"}


class NotAllowed:
    """Pickled by reference: must be refused by the safe loader."""

    def __init__(self) -> None:
        self.payload = "x"


def write_published(path: pathlib.Path, model: MaeVQGAN, arch: str, args_obj=None) -> None:
    args = args_obj if args_obj is not None else argparse.Namespace(model=arch, input_size=224, lr=1e-4)
    torch.save({"model": model.state_dict(), "optimizer": {"state": {}}, "epoch": 3, "scaler": {"scale": 1.0},
                "args": args}, path)


def test_vit_large_has_the_reference_names_and_shapes():
    with torch.device("meta"):
        sd = MaeVQGAN(get_config("vit_large")).state_dict()
    for name, shape in REFERENCE_SHAPES.items():
        assert tuple(sd[name].shape) == shape, name
    assert {k.split(".")[0] for k in sd} == TOP_LEVEL
    assert max(int(k.split(".")[1]) for k in sd if k.startswith("blocks.")) == 23
    assert max(int(k.split(".")[1]) for k in sd if k.startswith("decoder_blocks.")) == 7


def test_convert_published_format_then_info(tmp_path):
    torch.manual_seed(0)
    model = MaeVQGAN(get_config("micro"))
    src, dst = tmp_path / "ckpt.pth", tmp_path / "out" / "micro.safetensors"
    write_published(src, model, "micro")
    card = convert_checkpoint(src, dst)
    assert dst.exists() and dst.with_suffix(".json").exists()
    assert card["fingerprint"] == fingerprint(model.state_dict())
    info = model_info(str(dst))
    assert info["config"]["name"] == "micro" and info["fingerprint"] == card["fingerprint"]
    loaded = load_model(str(dst))
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)


def test_convert_refuses_other_pickled_objects(tmp_path):
    model = MaeVQGAN(get_config("micro"))
    src, dst = tmp_path / "evil.pth", tmp_path / "evil.safetensors"
    write_published(src, model, "micro", args_obj=NotAllowed())
    with pytest.raises(UserError, match="refused"):
        convert_checkpoint(src, dst)
    assert not dst.exists() and not dst.with_suffix(".json").exists()
    assert list(tmp_path.iterdir()) == [src]


def test_convert_refuses_mismatched_weights(tmp_path):
    model = MaeVQGAN(get_config("micro"))
    sd = model.state_dict()
    sd.pop("decoder_norm.bias")
    sd["extra.weight"] = torch.zeros(1)
    src = tmp_path / "bad.pth"
    torch.save({"model": sd, "args": argparse.Namespace(model="micro")}, src)
    with pytest.raises(UserError, match="1 missing .*1 unexpected"):
        convert_checkpoint(src, tmp_path / "bad.safetensors")
    assert not (tmp_path / "bad.safetensors").exists()


def test_weights_replaced_without_their_card_are_refused(tmp_path):
    from taskvec.model.checkpoint import save_model

    a, b = MaeVQGAN(get_config("micro_pixel")), MaeVQGAN(get_config("micro_pixel"))
    path = save_model(a, tmp_path / "m.safetensors")
    from taskvec.model.checkpoint import load_model_ref

    model, ref, fp = load_model_ref(str(path))
    assert fp == ref.fingerprint == fingerprint(a.state_dict()) == model_fingerprint(model)
    assert not {"_fingerprint", "card"} & set(vars(model))  # nothing hidden on the model object
    card = path.with_suffix(".json").read_text()
    save_model(b, path)  # new weights, then the old card put back
    path.with_suffix(".json").write_text(card)
    with pytest.raises(UserError, match="changed without their card"):
        load_model(str(path))


@pytest.mark.slow
def test_convert_full_size_vit_large(tmp_path):
    model = MaeVQGAN(get_config("vit_large"))
    src, dst = tmp_path / "mae_visual_prompting.pth", tmp_path / "vit_large.safetensors"
    write_published(src, model, "mae_vit_large_patch16")
    card = convert_checkpoint(src, dst)
    assert card["config"]["name"] == "vit_large"
    assert model_info(str(dst))["params"] == sum(p.numel() for p in model.parameters())


def _run(args):
    result = CliRunner().invoke(main, args)
    return result.exit_code, result.output


def test_cli_info_reports_shipped_tiny():
    code, out = _run(["info"])
    info = json.loads(out)
    assert code == 0 and info["config"]["name"] == "tiny" and len(info["fingerprint"]) == 64
    assert 1e6 < info["params"] < 25e6 / 4  # fits the 25 MB budget in fp32


def test_cli_convert_errors_are_one_line(tmp_path):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"\x00not a checkpoint" * 10)
    for args in (["convert", str(corrupt), str(tmp_path / "o.safetensors")],
                 ["convert", str(tmp_path / "missing.pth"), str(tmp_path / "o.safetensors")],
                 ["info", "--model", str(tmp_path / "missing.safetensors")]):
        code, out = _run(args)
        assert code == 2 and out.count("\n") == 1 and out.startswith("error: "), out
    assert not (tmp_path / "o.safetensors").exists()


def test_cli_prompt_writes_the_answer_cell(tmp_path):
    img = (np.random.default_rng(0).random((150, 200, 3)) * 255).astype(np.uint8)
    q = tmp_path / "q.png"
    cv2.imwrite(str(q), img)
    out, canvas = tmp_path / "a.png", tmp_path / "c.png"
    code, text = _run(["prompt", "--task", "lowlight", "--query", str(q), "--out", str(out), "--canvas", str(canvas)])
    assert code == 0, text
    assert cv2.imread(str(out)).shape == (111, 111, 3) and cv2.imread(str(canvas)).shape == (224, 224, 3)


@pytest.mark.parametrize(
    "args",
    [
        ["prompt", "--task", "nosuchtask", "--query", "q.png", "--out", "a.png"],
        ["prompt", "--task", "lowlight", "--query", "missing.png", "--out", "a.png"],
        ["prompt", "--task", "lowlight", "--query", "notimage.png", "--out", "a.png"],
        ["prompt", "--task", "lowlight", "--query", "q.png", "--out", "a.png", "--example-in", "q.png"],
    ],
)
def test_cli_prompt_bad_input(tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    cv2.imwrite("q.png", np.zeros((20, 20, 3), np.uint8))
    pathlib.Path("notimage.png").write_text("hello")
    code, out = _run(args)
    assert code == 2 and not pathlib.Path("a.png").exists()
    assert out.startswith("error: ") and out.count("\n") == 1, out
