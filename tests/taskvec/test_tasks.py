import pytest
import torch

from taskvec.geometry import CANVAS, CELL, get_cell
from taskvec.data.tasks import _REGISTRY, HOLE_SIDE, LUMA_601, Task, build_canvases, get_task, list_tasks, register_task


def _imgs(b=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, CELL, CELL, generator=g)


def _gen(seed=1):
    return torch.Generator().manual_seed(seed)


def test_registry():
    assert list_tasks() == ["colorization", "inpainting", "lowlight", "segmentation"]
    assert get_task("lowlight").metric == "psnr"
    assert get_task("segmentation").metric == "iou" and get_task("segmentation").needs_mask
    with pytest.raises(ValueError, match="unknown task 'x'; choose from colorization"):
        get_task("x")


def test_register_custom_task():
    class Identity(Task):
        def apply(self, images, params, masks=None, generator=None):
            return images, images

    t = register_task(Identity("identity-test", "psnr", False, "copy"))
    try:
        assert get_task("identity-test") is t and "identity-test" in list_tasks()
    finally:
        _REGISTRY.pop("identity-test")


def test_lowlight_paper_exact():
    x = _imgs()
    t = get_task("lowlight")
    p = t.sample_params(4, _gen(), "cpu")
    inp, tgt = t.apply(x, p)
    assert torch.equal(inp, 0.5 * x) and torch.equal(tgt, x)


def test_lowlight_realistic_dark_noisy_and_views_differ():
    x = _imgs(8)
    t = get_task("lowlight")
    g = _gen()
    p = t.sample_params(8, g, "cpu", "realistic")
    assert ((p["gamma"] >= 1.5) & (p["gamma"] <= 3)).all() and ((p["gain"] >= 0.15) & (p["gain"] <= 0.5)).all()
    a, tgt = t.apply(x, p, generator=g)
    b, _ = t.apply(x, p, generator=g)
    assert torch.equal(tgt, x)
    assert a.min() >= 0 and a.max() <= 1
    assert a.mean() < 0.5 * x.mean()
    clean = p["gain"].view(-1, 1, 1, 1) * x ** p["gamma"].view(-1, 1, 1, 1)
    assert (a - clean).abs().mean() > 0.005  # noisy
    assert not torch.equal(a, b)  # fresh noise per view
    # without a generator the noise comes from the params' seed: repeatable
    c, _ = t.apply(x, p)
    d, _ = t.apply(x, p)
    assert torch.equal(c, d)


def test_inpainting_paper_square():
    x = _imgs(16)
    t = get_task("inpainting")
    p = t.sample_params(16, _gen(), "cpu")
    hole = p["hole"]
    assert hole.shape == (16, 1, CELL, CELL)
    for h in hole[:, 0]:
        ys, xs = torch.nonzero(h, as_tuple=True)
        assert h.sum() == HOLE_SIDE * HOLE_SIDE == 27 * 27
        assert ys.max() - ys.min() + 1 == 27 and xs.max() - xs.min() + 1 == 27
        assert ys.min() >= 0 and ys.max() < CELL and xs.min() >= 0 and xs.max() < CELL
    inp, tgt = t.apply(x, p)
    m = hole.bool().expand_as(x)
    assert (inp[m] == 0).all() and torch.equal(inp[~m], x[~m]) and torch.equal(tgt, x)
    # same place in example and query
    canvas, target, q_in = build_canvases("inpainting", _imgs(16, 5), x, _gen(3))
    ex_hole = (get_cell(canvas, "example_in") == 0).all(1)
    q_hole = (q_in == 0).all(1)
    assert torch.equal(ex_hole, q_hole)


def test_inpainting_realistic_kinds():
    t = get_task("inpainting")
    p = t.sample_params(64, _gen(), "cpu", "realistic")
    assert set(p["kind"].tolist()) == {0, 1, 2}
    area = p["hole"].flatten(1).sum(1)
    assert (area > 20).all() and (area < CELL * CELL * 0.6).all()
    assert set(p["hole"].unique().tolist()) <= {0.0, 1.0}


def test_colorization():
    x = _imgs()
    inp, tgt = get_task("colorization").apply(x, {})
    luma = sum(w * x[:, i] for i, w in enumerate(LUMA_601))
    assert torch.equal(inp[:, 0], inp[:, 1]) and torch.equal(inp[:, 1], inp[:, 2])
    assert torch.allclose(inp[:, 0], luma, atol=1e-6) and torch.equal(tgt, x)


def test_segmentation_target_and_mask_required():
    x = _imgs(2)
    m = torch.zeros(2, 1, CELL, CELL)
    m[:, :, 10:50, 20:60] = 1
    t = get_task("segmentation")
    inp, tgt = t.apply(x, {}, m)
    assert torch.equal(inp, x) and tgt.shape == (2, 3, CELL, CELL)
    assert torch.equal(tgt, m.expand(-1, 3, -1, -1))
    with pytest.raises(ValueError):
        t.apply(x, {})


@pytest.mark.parametrize("name", ["lowlight", "inpainting", "colorization", "segmentation"])
@pytest.mark.parametrize("variant", ["paper", "realistic"])
def test_build_canvases_deterministic(name, variant):
    ex, q = _imgs(3, 1), _imgs(3, 2)
    m = (torch.rand(3, 1, CELL, CELL, generator=_gen(9)) > 0.5).float()
    kw = dict(ex_masks=m, q_masks=m) if name == "segmentation" else {}
    c1, t1, q1 = build_canvases(name, ex, q, _gen(7), variant, **kw)
    c2, t2, q2 = build_canvases(name, ex, q, _gen(7), variant, **kw)
    assert c1.shape == (3, 3, CANVAS, CANVAS) and t1.shape == q1.shape == (3, 3, CELL, CELL)
    assert torch.equal(c1, c2) and torch.equal(t1, t2) and torch.equal(q1, q2)
    assert torch.equal(get_cell(c1, "answer"), t1) and torch.equal(get_cell(c1, "query"), q1)
    c3, _, _ = build_canvases(name, ex, q, _gen(7), variant, with_answer=False, **kw)
    assert (get_cell(c3, "answer") == 1).all()
    assert c1.min() >= 0 and c1.max() <= 1
