"""Tests for taskvec.model.vqgan: taming state-dict layout, shapes, ranges, ONNX export."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from taskvec.model.vqgan import VQGAN, VQGANConfig, vqgan_f16_1024, vqgan_tiny

# Total parameters of taming vqgan_imagenet_f16_1024 without the training loss
# (encoder 29,298,176 + decoder 42,449,795 + codebook 262,144 + 2 x 1x1 convs 65,792).
PUBLISHED_PARAMS = 72_141_699

WB = ("weight", "bias")


def _resblock_keys(prefix: str, nin: bool) -> list[str]:
    parts = ["norm1", "conv1", "norm2", "conv2"] + (["nin_shortcut"] if nin else [])
    return [f"{prefix}.{p}.{s}" for p in parts for s in WB]


def _attn_keys(prefix: str) -> list[str]:
    return [f"{prefix}.{p}.{s}" for p in ("norm", "q", "k", "v", "proj_out") for s in WB]


def _expected_published_keys() -> set[str]:
    """Hand-written taming layout for ch=128, ch_mult=(1,1,2,2,4), 2 res blocks."""
    keys: list[str] = []
    enc_channels = [(128, 128), (128, 128), (128, 256), (256, 256), (256, 512)]
    for i, (c_in, c_out) in enumerate(enc_channels):
        for j in range(2):
            keys += _resblock_keys(f"encoder.down.{i}.block.{j}", nin=(j == 0 and c_in != c_out))
            if i == 4:
                keys += _attn_keys(f"encoder.down.{i}.attn.{j}")
        if i < 4:
            keys += [f"encoder.down.{i}.downsample.conv.{s}" for s in WB]
    for part in ("encoder", "decoder"):
        keys += _resblock_keys(f"{part}.mid.block_1", nin=False)
        keys += _attn_keys(f"{part}.mid.attn_1")
        keys += _resblock_keys(f"{part}.mid.block_2", nin=False)
        keys += [f"{part}.{m}.{s}" for m in ("conv_in", "norm_out", "conv_out") for s in WB]
    dec_channels = {4: (512, 512), 3: (512, 256), 2: (256, 256), 1: (256, 128), 0: (128, 128)}
    for i, (c_in, c_out) in dec_channels.items():
        for j in range(3):
            keys += _resblock_keys(f"decoder.up.{i}.block.{j}", nin=(j == 0 and c_in != c_out))
            if i == 4:
                keys += _attn_keys(f"decoder.up.{i}.attn.{j}")
        if i > 0:
            keys += [f"decoder.up.{i}.upsample.conv.{s}" for s in WB]
    keys += ["quantize.embedding.weight"]
    keys += [f"{m}.{s}" for m in ("quant_conv", "post_quant_conv") for s in WB]
    assert len(keys) == len(set(keys))
    return set(keys)


@pytest.fixture(scope="module")
def published_meta() -> VQGAN:
    with torch.device("meta"):
        return VQGAN(vqgan_f16_1024())


@pytest.fixture(scope="module")
def tiny() -> VQGAN:
    torch.manual_seed(0)
    model = VQGAN(vqgan_tiny()).eval()
    with torch.no_grad():  # keep most decoded pixels inside (-1, 1) so the clamp hides nothing
        model.decoder.conv_out.weight.mul_(0.05)
        model.decoder.conv_out.bias.zero_()
    return model


def test_published_config_values() -> None:
    cfg = vqgan_f16_1024()
    assert cfg == VQGANConfig()
    assert (cfg.ch, cfg.ch_mult, cfg.num_res_blocks) == (128, (1, 1, 2, 2, 4), 2)
    assert (cfg.z_channels, cfg.n_embed, cfg.embed_dim) == (256, 1024, 256)
    assert cfg.downsample_factor == 16


def test_published_state_dict_keys(published_meta: VQGAN) -> None:
    sd = published_meta.state_dict()
    assert set(sd) == _expected_published_keys()
    assert "encoder.down.4.attn.0.q.weight" in sd
    assert "decoder.up.4.attn.2.proj_out.weight" in sd
    assert not any(k.startswith("encoder.down.4.downsample") for k in sd)
    assert not any(k.startswith("decoder.up.0.upsample") for k in sd)
    up_blocks = {k.split(".conv1.")[0] for k in sd if k.startswith("decoder.up.") and ".block." in k and ".conv1." in k}
    assert len(up_blocks) == 5 * 3
    down_blocks = {k.split(".conv1.")[0] for k in sd if k.startswith("encoder.down.") and ".conv1." in k}
    assert len(down_blocks) == 5 * 2


def test_published_shapes_and_param_count(published_meta: VQGAN) -> None:
    sd = published_meta.state_dict()
    assert tuple(sd["quantize.embedding.weight"].shape) == (1024, 256)
    assert tuple(sd["quant_conv.weight"].shape) == (256, 256, 1, 1)
    assert tuple(sd["post_quant_conv.weight"].shape) == (256, 256, 1, 1)
    assert tuple(sd["encoder.conv_out.weight"].shape) == (256, 512, 3, 3)  # double_z False
    assert tuple(sd["decoder.conv_in.weight"].shape) == (512, 256, 3, 3)
    assert tuple(sd["decoder.conv_out.weight"].shape) == (3, 128, 3, 3)
    assert tuple(sd["encoder.down.2.block.0.nin_shortcut.weight"].shape) == (256, 128, 1, 1)
    assert tuple(sd["decoder.up.1.block.0.nin_shortcut.weight"].shape) == (128, 256, 1, 1)
    assert tuple(sd["encoder.down.0.downsample.conv.weight"].shape) == (128, 128, 3, 3)
    assert sum(p.numel() for p in published_meta.parameters()) == PUBLISHED_PARAMS
    norms = [m for m in published_meta.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert norms and all(m.num_groups == 32 and m.eps == 1e-6 for m in norms)


@pytest.mark.parametrize("grid,pixels", [(7, 112), (14, 224)])
def test_decode_indices_shape_and_range(tiny: VQGAN, grid: int, pixels: int) -> None:
    idx = torch.randint(0, tiny.cfg.n_embed, (2, grid, grid), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        img = tiny.decode_indices(idx)
    assert img.shape == (2, 3, pixels, pixels)
    assert img.dtype == torch.float32
    assert float(img.min()) >= -1.0 and float(img.max()) <= 1.0


def test_decode_indices_equals_decode_codes(tiny: VQGAN) -> None:
    idx = torch.randint(0, tiny.cfg.n_embed, (1, 7, 7), generator=torch.Generator().manual_seed(2))
    codes = tiny.quantize.embedding.weight[idx].permute(0, 3, 1, 2)
    with torch.no_grad():
        torch.testing.assert_close(tiny.decode_indices(idx), tiny.decode_codes(codes))


def test_encode_round_trip_shapes(tiny: VQGAN) -> None:
    idx = torch.randint(0, tiny.cfg.n_embed, (2, 7, 7), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        back = tiny.encode_indices(tiny.decode_indices(idx))
    assert back.shape == idx.shape and back.dtype == torch.int64
    assert int(back.min()) >= 0 and int(back.max()) < tiny.cfg.n_embed


def test_nearest_code_is_l2(tiny: VQGAN) -> None:
    codebook = tiny.quantize.embedding.weight.detach()
    idx = torch.randint(0, tiny.cfg.n_embed, (2, 3, 4), generator=torch.Generator().manual_seed(4))
    z = codebook[idx].permute(0, 3, 1, 2) + 1e-4 * torch.randn(2, codebook.shape[1], 3, 4)
    assert torch.equal(tiny.quantize.nearest(z), idx)
    ref = torch.cdist(z.permute(0, 2, 3, 1).reshape(-1, codebook.shape[1]), codebook).argmin(1)
    assert torch.equal(tiny.quantize.nearest(z).flatten(), ref)


def test_attention_matches_reference(tiny: VQGAN) -> None:
    blk = tiny.decoder.mid.attn_1
    x = torch.randn(2, blk.q.in_channels, 3, 5)
    with torch.no_grad():
        h = blk.norm(x)
        q, k, v = (m(h).flatten(2) for m in (blk.q, blk.k, blk.v))  # [B, C, N]
        w = torch.softmax(torch.einsum("bci,bcj->bij", q, k) / q.shape[1] ** 0.5, dim=2)
        ref = x + blk.proj_out(torch.einsum("bcj,bij->bci", v, w).reshape(x.shape))
        torch.testing.assert_close(blk(x), ref)


def test_onnx_export_decode_codes(tiny: VQGAN, tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")

    class DecodeCodes(torch.nn.Module):
        def __init__(self, vq: VQGAN) -> None:
            super().__init__()
            self.vq = vq

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return self.vq.decode_codes(z)

    dim = tiny.cfg.embed_dim
    path = tmp_path / "decode.onnx"
    dyn = torch.export.Dim.DYNAMIC
    torch.onnx.export(DecodeCodes(tiny).eval(), (torch.randn(2, dim, 7, 7),), str(path), opset_version=17,
                      input_names=["codes"], output_names=["image"],
                      dynamic_shapes={"z": {0: dyn, 2: dyn, 3: dyn}}, dynamo=True)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch, grid in ((1, 7), (3, 7), (1, 14)):
        z = torch.randn(batch, dim, grid, grid, generator=torch.Generator().manual_seed(batch * grid))
        got = sess.run(None, {"codes": z.numpy()})[0]
        with torch.no_grad():
            want = tiny.decode_codes(z).numpy()
        assert got.shape == (batch, 3, 16 * grid, 16 * grid)
        err = float(np.abs(got - want).max())
        print(f"onnx vs torch decode_codes B={batch} {grid}x{grid}: max abs err {err:.2e}")
        assert err < 1e-4
        assert float(np.mean(np.abs(want) < 1.0)) > 0.5  # comparison not hidden by the clamp
