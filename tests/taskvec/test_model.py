"""The model, layouts and the capture/patch API (DESIGN §1–§3)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from taskvec import geometry as G
from taskvec.model.checkpoint import load_model, model_fingerprint
from taskvec.model.config import get_config
from taskvec.model.mae_vqgan import BlockId, MaeVQGAN, Patch, gaussian_blur, gaussian_kernel, sincos_pos_embed, smooth_painted
from taskvec.vectors.sites import Site, SiteSpace, enumerate_sites


def _means_from(heads: dict, layout: G.Layout, row: int = 0) -> dict:
    """Per-slot 'means' taken from one recorded sample."""
    means = {}
    for bid, z in heads.items():
        full = torch.zeros(G.NUM_SLOTS, *z.shape[2:])
        full[torch.tensor(layout.slots(bid.stage))] = z[row]
        means[bid] = full
    return means


def _random_means(model: MaeVQGAN, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    cfg = model.cfg
    shape = {"enc": (cfg.num_heads, cfg.head_dim), "dec": (cfg.decoder_num_heads, cfg.decoder_head_dim)}
    return {bid: torch.randn(G.NUM_SLOTS, *shape[bid.stage], generator=gen) for bid in model.block_ids()}


@pytest.fixture(scope="module")
def micro_pixel() -> MaeVQGAN:
    model = load_model("random:micro_pixel")
    torch.nn.init.normal_(model.decoder_pred.weight, std=0.05)  # not the identity start
    return model


@pytest.fixture(scope="module")
def micro_vq() -> MaeVQGAN:
    return load_model("random:micro")


def test_layout_sizes_match_the_reference():
    ic, zs = G.get_layout("in-context"), G.get_layout("zero-shot")
    assert (ic.num_enc, ic.num_dec) == (148, 197)
    assert (zs.num_enc, zs.num_dec) == (50, 99)
    assert G.cell_tokens("answer")[0] == 7 * 14 + 7 and len(G.cell_tokens("answer")) == 49
    # zero-shot decoder: CLS + bottom half in raster order
    assert zs.dec_slots[1:] == tuple(1 + t for t in range(98, 196))
    # the answer is never visible to the encoder
    assert not set(G.cell_slots("answer")) & set(ic.enc_slots)


def test_zero_shot_runs_50_encoder_and_99_decoder_tokens_for_vit_large():
    with torch.device("meta"):
        model = MaeVQGAN(get_config("vit_large"))
    seen = {}
    model.blocks[0].register_forward_hook(lambda m, i, o: seen.__setitem__("enc", o[0].shape[1]))
    model.decoder_blocks[0].register_forward_hook(lambda m, i, o: seen.__setitem__("dec", o[0].shape[1]))
    out = model(torch.empty(1, 3, 224, 224, device="meta"), G.get_layout("zero-shot"))  # shapes only
    assert seen == {"enc": 50, "dec": 99}
    assert out.logits.shape == (1, 49, 1024) and out.answer.shape == (1, 3, 111, 111)


def test_site_count_of_vit_large_is_1152():
    assert len(enumerate_sites(get_config("vit_large"))) == 24 * 16 * 2 + 8 * 16 * 3
    assert len(enumerate_sites(get_config("vit_large"), "head")) == 24 * 16 + 8 * 16


def test_pos_embed_is_sincos_with_zero_cls_row_and_column_first():
    emb = sincos_pos_embed(8, grid=14)
    assert emb.shape == (197, 8) and torch.all(emb[0] == 0)
    # first half depends only on the column, second half only on the row
    t_a, t_b = 1 + 3 * 14 + 5, 1 + 9 * 14 + 5  # same column, other row
    assert torch.allclose(emb[t_a, :4], emb[t_b, :4]) and not torch.allclose(emb[t_a, 4:], emb[t_b, 4:])


@pytest.mark.parametrize("layout_name", ["zero-shot", "in-context"])
def test_patching_every_site_with_own_activations_reproduces_output(micro_pixel, layout_name):
    layout = G.get_layout(layout_name)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        ref = micro_pixel(x, layout, record=True)
        space = SiteSpace(micro_pixel.cfg, enumerate_sites(micro_pixel.cfg, "region", layout), layout)
        means = _means_from(ref.heads, layout)
        # regions cover cls/query/answer: patch the remaining example tokens too via "head" sites
        head_space = SiteSpace(micro_pixel.cfg, enumerate_sites(micro_pixel.cfg, "head", layout), layout)
        out = micro_pixel(x, layout, patches=head_space.patches(torch.ones(len(head_space)), means))
        out_regions = micro_pixel(x, layout, patches=space.patches(torch.ones(len(space)), means))
    assert (out.answer_norm - ref.answer_norm).abs().max() < 1e-5
    if layout_name == "zero-shot":  # regions cover every token of the zero-shot layout
        assert (out_regions.answer_norm - ref.answer_norm).abs().max() < 1e-5


def test_patching_changes_the_output(micro_pixel):
    layout = G.get_layout("zero-shot")
    x = torch.randn(1, 3, 224, 224)
    space = SiteSpace(micro_pixel.cfg, enumerate_sites(micro_pixel.cfg), layout)
    means = _random_means(micro_pixel)
    with torch.no_grad():
        a = micro_pixel(x, layout).answer_norm
        b = micro_pixel(x, layout, patches=space.patches(torch.ones(len(space)), means)).answer_norm
    assert (a - b).abs().max() > 1e-3


def test_k_site_sets_in_one_batch_equal_k_separate_forwards(micro_vq):
    model = micro_vq
    torch.nn.init.normal_(model.decoder_pred.weight, std=0.05)
    layout = G.get_layout("zero-shot")
    space = SiteSpace(model.cfg, enumerate_sites(model.cfg), layout)
    means = _random_means(model)
    k, r = 4, 3
    gen = torch.Generator().manual_seed(0)
    sel = (torch.rand(k, len(space), generator=gen) < 0.5).float()
    x = torch.randn(r, 3, 224, 224, generator=gen)
    with torch.no_grad():
        batched = model(x.repeat(k, 1, 1, 1), layout, patches=space.patches(sel, means))
        for i in range(k):
            single = model(x, layout, patches=space.patches(sel[i : i + 1], means))
            assert torch.allclose(batched.logits[i * r : (i + 1) * r], single.logits, atol=1e-5)
            assert torch.equal(batched.logits[i * r : (i + 1) * r].argmax(-1), single.logits.argmax(-1))
            # same codes; the full-grid VQGAN decode (convolutions, attention) of a batch of 12
            # vs 3 differs by float rounding alone: ~1e-5 with 2 threads, 0.03 grey levels at 1e-4
            assert torch.allclose(batched.answer[i * r : (i + 1) * r], single.answer, atol=1e-4)


def test_patch_mul_add_follow_the_site_definition():
    cfg = get_config("micro_pixel")
    layout = G.get_layout("zero-shot")
    site = Site("dec", 1, 1, "answer")
    space = SiteSpace(cfg, [site], layout)
    means = {BlockId("dec", 1): torch.arange(G.NUM_SLOTS * 2 * 16.0).reshape(G.NUM_SLOTS, 2, 16)}
    p = space.patches(torch.ones(1), means)
    assert list(p) == [BlockId("dec", 1)]
    mul, add = p[BlockId("dec", 1)].mul[0].reshape(99, 2, 16), p[BlockId("dec", 1)].add[0].reshape(99, 2, 16)
    pos = layout.dec_index(G.cell_slots("answer"))
    other = [i for i in range(99) if i not in pos]
    assert torch.all(mul[pos, 1] == 0) and torch.all(mul[pos, 0] == 1) and torch.all(mul[other] == 1)
    assert torch.equal(add[pos, 1], means[BlockId("dec", 1)][list(G.cell_slots("answer")), 1])
    assert torch.all(add[other] == 0) and torch.all(add[:, 0] == 0)


def test_site_names_round_trip():
    for s in enumerate_sites(get_config("micro_pixel"), "token")[:5] + enumerate_sites(get_config("micro_pixel")):
        assert Site.parse(str(s)) == s


def test_gated_head_starts_as_copy_of_query():
    torch.manual_seed(0)
    model = MaeVQGAN(dataclasses.replace(get_config("micro_pixel"), paint_sigma=0.0)).eval()
    gen = torch.Generator().manual_seed(1)
    q = torch.rand(2, 3, 111, 111, generator=gen)
    canvas = G.normalize(G.make_canvas(None, None, q))
    with torch.no_grad():
        out = model(canvas, G.get_layout("zero-shot"))
    # gate starts at sigmoid(2) and the correction at 0: the answer is a damped query
    expect = G.denormalize(torch.sigmoid(torch.tensor(2.0)) * G.normalize(q)).clamp(0, 1)
    assert torch.allclose(out.answer, expect, atol=1e-5)


def test_patch_with_wrong_batch_is_refused(micro_pixel):
    layout = G.get_layout("zero-shot")
    bad = {BlockId("enc", 0): Patch(torch.ones(3, 50, 64), torch.zeros(3, 50, 64))}
    with pytest.raises(ValueError):
        micro_pixel(torch.randn(4, 3, 224, 224), layout, patches=bad)


def test_canvas_geometry_round_trip():
    gen = torch.Generator().manual_seed(0)
    cells = [torch.rand(1, 3, 111, 111, generator=gen) for _ in range(4)]
    canvas = G.make_canvas(*cells)
    for name, cell in zip(G.CELLS, cells):
        assert torch.equal(G.get_cell(canvas, name), cell)
    assert torch.all(canvas[:, :, 111:113, :] == 1) and torch.all(canvas[:, :, :, 111:113] == 1)
    x = torch.rand(2, 3, 224, 224, generator=gen)
    assert torch.equal(G.unpatchify(G.patchify(x), 14, 14), x)


def test_answer_source_patches_equal_the_shifted_canvas():
    from taskvec.model.mae_vqgan import answer_source_patches, source_canvas

    x = torch.randn(2, 3, 224, 224)
    full = G.patchify(source_canvas(x))[:, torch.tensor(G.cell_tokens("answer"))]
    assert torch.equal(answer_source_patches(x), full)
    # the answer block's source is the query, shifted by one cell pitch
    src = source_canvas(x)
    assert torch.equal(src[..., 113:, 113:], x[..., 113:, :111])


def test_gaussian_blur_and_smooth_painted():
    k = gaussian_kernel(2.0)
    assert k.shape == (3, 1, 13) and torch.allclose(k.sum(-1), torch.ones(3, 1))
    flat = torch.full((1, 3, 40, 40), 0.3)
    assert torch.allclose(gaussian_blur(flat, k), flat, atol=1e-6)  # a flat image stays flat, borders too
    x = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    gate = torch.ones(2, 1, 40, 40)
    gate[..., 10:20, 10:20] = 0.0  # the "painted" square
    y = smooth_painted(x, gate, k)
    assert torch.equal(y[..., gate[0, 0] > 0], x[..., gate[0, 0] > 0])  # copied pixels untouched
    hole = gate[0, 0] == 0
    assert torch.allclose(y[..., hole], gaussian_blur(x, k)[..., hole])  # painted pixels blurred
    assert y[..., hole].std() < 0.5 * x[..., hole].std()


def test_paint_sigma_smooths_only_where_the_gate_is_closed():
    cfg = get_config("micro_pixel")
    assert cfg.paint_sigma > 0
    torch.manual_seed(0)
    smooth = MaeVQGAN(cfg).eval()
    sharp = MaeVQGAN(dataclasses.replace(cfg, paint_sigma=0.0)).eval()
    # the smoothing has no weights: same state dict, same fingerprint
    sharp.load_state_dict(smooth.state_dict())
    assert model_fingerprint(sharp) == model_fingerprint(smooth)
    q = torch.rand(2, 3, 111, 111, generator=torch.Generator().manual_seed(1))
    canvas, layout = G.normalize(G.make_canvas(None, None, q)), G.get_layout("zero-shot")
    pp = cfg.patch_size**2
    for bias, same in ((30.0, True), (-30.0, False)):
        for m in (smooth, sharp):
            with torch.no_grad():
                m.decoder_pred.weight.normal_(0, 0.05, generator=torch.Generator().manual_seed(2))
                m.decoder_pred.bias[-pp:] = bias
        with torch.no_grad():
            a, b = smooth(canvas, layout).answer_norm, sharp(canvas, layout).answer_norm
        if same:  # gate open everywhere: the answer is copied, nothing to smooth
            assert torch.allclose(a, b, atol=1e-5)
        else:  # gate closed everywhere: everything is painted, everything is blurred
            assert torch.allclose(a, gaussian_blur(b, smooth.paint_kernel), atol=1e-5)
            assert torch.allclose(a, gaussian_blur(b, smooth.paint_kernel, smooth.paint_norm), atol=1e-5)
            assert not torch.allclose(a, b, atol=1e-3)


def test_paint_sigma_needs_the_gated_head():
    with pytest.raises(ValueError, match="gated"):
        MaeVQGAN(dataclasses.replace(get_config("micro_pixel"), pixel_mode="residual"))


def _init_from(model, state, tmp_path):
    from safetensors.torch import save_file

    from taskvec.model.checkpoint import load_init_weights

    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "w.safetensors"))
    load_init_weights(model, tmp_path / "w.safetensors")


def test_refine_starts_as_the_model_without_it(tmp_path):
    """A refinement fine-tuned from weights without one starts exactly where they were."""

    torch.manual_seed(0)
    base = MaeVQGAN(get_config("micro_pixel")).eval()
    with torch.no_grad():  # a head that paints (gate partly closed), so every input of the refiner matters
        base.decoder_pred.weight.normal_(std=0.05)
    ref = MaeVQGAN(get_config("micro_refine")).eval()
    _init_from(ref, base.state_dict(), tmp_path)
    x = G.normalize(torch.rand(2, 3, 224, 224))
    for name in ("in-context", "zero-shot"):
        with torch.no_grad():
            assert torch.equal(base(x, G.get_layout(name)).answer, ref(x, G.get_layout(name)).answer)
    with torch.no_grad():  # once trained, the refinement changes the answer, smoothly and everywhere
        ref.refine.out.weight.normal_(std=0.05)
        d = (ref(x, G.get_layout("zero-shot")).answer - base(x, G.get_layout("zero-shot")).answer).abs()
    assert d.mean() > 1e-3 and d[..., :20, :20].mean() > 0 and d[..., -20:, -20:].mean() > 0


def test_refine_init_refuses_other_architectures(tmp_path):
    from taskvec.errors import UserError

    ref = MaeVQGAN(get_config("micro_refine"))
    with pytest.raises(UserError, match="--init"):
        _init_from(ref, MaeVQGAN(get_config("micro")).state_dict(), tmp_path)


def test_refine_receptive_field_reaches_a_holes_centre():
    """The refinement carries information ≥ 14 px (half a 27-px hole) from where it starts."""
    torch.manual_seed(0)
    r = MaeVQGAN(get_config("micro_refine")).refine
    torch.nn.init.normal_(r.out.weight, std=0.1)
    a = torch.zeros(1, 3, 112, 112, requires_grad=True)
    out = r(a, torch.zeros_like(a), torch.ones_like(a[:, :1]))
    out[0, :, 56, 56].sum().backward()
    reach = a.grad[0].abs().sum(0).nonzero()
    assert (reach[:, 1] - 56).abs().max() >= 14


def test_block_names_have_one_writer_and_one_parser():
    from export.spec import parse_patch_name, patch_name

    for bid in MaeVQGAN(get_config("micro_pixel")).block_ids():
        assert BlockId.parse(str(bid)) == bid
        assert parse_patch_name(patch_name(bid, "add")) == (bid, "add")
        assert Site.parse(str(Site(bid.stage, bid.block, 1, "query"))).block_id == bid
    assert patch_name(BlockId("enc", 7), "mul") == "tv/enc/b07/mul"
    for bad in ("enc/7", "mid/b01", "enc/bx", "enc"):
        with pytest.raises(ValueError):
            BlockId.parse(bad)
    assert parse_patch_name("tv/enc/b07/scale") is None and parse_patch_name("tv_mul_enc_b07") is None
