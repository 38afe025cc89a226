"""`taskvec train`: deterministic with a seed, and a resumed run equals an uninterrupted one."""

from __future__ import annotations

import pytest
from safetensors.torch import load_file

import taskvec.model.train as T


def _cfg(**kw) -> T.TrainConfig:
    base = dict(config="micro_pixel", steps=4, batch=4, warmup=2, ckpt_every=2, eval_every=100, eval_images=2, seed=3)
    return T.TrainConfig(**{**base, **kw})


def _weights(path):
    return load_file(str(path))


def test_same_seed_same_weights_and_resume_is_exact(tmp_path, monkeypatch):
    a = T.train(_cfg(), tmp_path / "a", device="cpu")
    b = T.train(_cfg(), tmp_path / "b", device="cpu")
    wa, wb = _weights(a), _weights(b)
    assert all((wa[k] == wb[k]).all() for k in wa)

    # interrupt run c after 3 batches (its checkpoint is from step 2), then resume it
    real, calls = T.sample_batch, {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(T, "sample_batch", flaky)
    with pytest.raises(KeyboardInterrupt):
        T.train(_cfg(), tmp_path / "c", device="cpu")
    monkeypatch.setattr(T, "sample_batch", real)
    assert (tmp_path / "c" / "last.pt").exists() and not (tmp_path / "c" / "micro_pixel.safetensors").exists()
    wc = _weights(T.train(_cfg(), tmp_path / "c", resume=True, device="cpu"))
    assert all((wa[k] == wc[k]).all() for k in wa)

    d = _weights(T.train(_cfg(seed=4), tmp_path / "d", device="cpu"))
    assert any((wa[k] != d[k]).any() for k in wa)


def test_changed_weight_emphasises_the_hole():
    import torch

    from taskvec import geometry as G
    from taskvec.model.checkpoint import load_model
    from taskvec.data.tasks import build_canvases

    model = load_model("random:micro_pixel").train()
    gen = torch.Generator().manual_seed(0)
    imgs = torch.rand(4, 3, 111, 111, generator=gen)
    canvas, target, _ = build_canvases("inpainting", imgs[:2], imgs[2:], gen, with_answer=False)
    layout = G.get_layout("in-context")
    plain, _ = T.training_loss(model, [("inpainting", canvas, target)], layout, {}, 0.0)
    weighted, _ = T.training_loss(model, [("inpainting", canvas, target)], layout, {}, 0.0, changed_weight=8.0)
    assert weighted > plain  # the hole, where the untrained model is worst, counts more


def test_resume_without_checkpoint_is_a_one_line_error(tmp_path):
    from taskvec.errors import UserError

    with pytest.raises(UserError, match="nothing to resume"):
        T.train(_cfg(), tmp_path / "none", resume=True, device="cpu")


def test_gradient_loss_punishes_blocky_errors_not_uniform_ones():
    import torch

    w = torch.ones(2, 1, 32, 32)
    uniform = torch.full((2, 3, 32, 32), 0.5**0.5)  # the same offset everywhere: MSE 0.5
    stripes = torch.zeros(2, 3, 32, 32)
    stripes[..., ::2, :] = 1.0  # alternating rows: MSE 0.5 too, |∂y| = 1 everywhere
    assert torch.allclose(T.answer_error(uniform, w), T.answer_error(stripes, w))
    assert torch.equal(T.answer_error(uniform, w, grad_weight=1.0), T.answer_error(uniform, w))
    assert torch.allclose(T.answer_error(stripes, w, grad_weight=1.0), torch.full((2,), 1.5))
    left = stripes.clone()
    left[..., 16:] = 0  # the error only in the left half
    heavy = w.clone()
    heavy[..., :16] = 9.0  # … where the weights are high
    assert (T.answer_error(left, heavy, 1.0) > T.answer_error(left, w, 1.0) + 0.5).all()
