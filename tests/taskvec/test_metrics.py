import math

import pytest
import torch

from taskvec.geometry import IMAGENET_STD
from taskvec.evaluation.metrics import compute_metrics, hole_psnr, iou, mse_normalized, paste_hole, psnr, ssim


def test_psnr_known_mse():
    a = torch.zeros(2, 3, 8, 8)
    b = torch.full((2, 3, 8, 8), 0.1)
    assert torch.allclose(psnr(a, b), torch.full((2,), 20.0), atol=1e-4)  # mse 0.01
    assert psnr(a, a)[0] == pytest.approx(100.0)
    assert psnr(a, b, data_range=2.0)[0] == pytest.approx(20 + 20 * math.log10(2), abs=1e-4)


def test_iou_known_masks():
    p = torch.zeros(3, 3, 10, 10)
    t = torch.zeros(3, 3, 10, 10)
    p[0, :, 0:4, :] = 0.9  # 40 px (rounded to white)
    t[0, :, 2:6, :] = 1.0  # 40 px, overlap 20 → 20/60
    p[1, :, :5] = 0.4  # rounds to black → both empty → 1
    t[2, :, :, :5] = 1  # pred empty, target 50 px → 0
    assert torch.allclose(iou(p, t), torch.tensor([1 / 3, 1.0, 0.0]))


def test_mse_normalized():
    a = torch.zeros(1, 3, 4, 4)
    b = torch.full((1, 3, 4, 4), 0.2)
    expected = sum(0.04 / s**2 for s in IMAGENET_STD) / 3
    assert mse_normalized(a, b)[0].item() == pytest.approx(expected, rel=1e-5)


def test_ssim():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 32, generator=g)
    assert torch.allclose(ssim(x, x), torch.ones(2))
    y = (x + 0.2 * torch.randn(2, 3, 32, 32, generator=g)).clamp(0, 1)
    assert (ssim(x, y) < 0.9).all()


def test_hole_psnr():
    a = torch.zeros(2, 3, 8, 8)
    b = a.clone()
    b[:, :, :4] = 0.1  # errors only in the top half
    hole = torch.zeros(2, 1, 8, 8)
    hole[0, :, :4] = 1
    hole[1, :, 4:] = 1
    out = hole_psnr(a, b, hole)
    assert out[0].item() == pytest.approx(20.0, abs=1e-4) and out[1].item() == pytest.approx(100.0)
    assert torch.isnan(hole_psnr(a, b, torch.zeros(2, 1, 8, 8))).all()


def test_compute_metrics_keys():
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    assert set(compute_metrics("segmentation", x, x)) == {"iou", "mse"}
    m = compute_metrics("lowlight", x, x)
    assert set(m) == {"psnr", "ssim", "mse"} and m["mse"] == 0 and m["ssim"] == pytest.approx(1.0)


def test_hole_metrics_judge_only_the_hole():
    g = torch.Generator().manual_seed(2)
    target = torch.rand(2, 3, 32, 32, generator=g)
    hole = torch.zeros(2, 1, 32, 32)
    hole[:, :, 8:16, 8:16] = 1
    pred = target.clone()
    pred[:, :, 8:16, 8:16] += 0.1  # error 0.1 inside the hole → 20 dB there
    pred[:, :, 20:] = 0  # the known pixels are wrong too: pasting discards them
    m = compute_metrics("inpainting", pred, target, hole)
    assert m["hole_psnr"] == pytest.approx(20.0, abs=1e-3)
    assert m["pasted_ssim"] > m["ssim"]
    pasted = paste_hole(pred, target, hole)
    assert torch.equal(pasted[:, :, 20:], target[:, :, 20:]) and torch.equal(pasted[:, :, 8:16, 8:16], pred[:, :, 8:16, 8:16])
    assert "hole_psnr" not in compute_metrics("inpainting", pred, target)
