"""taskvec.data.fit: images of any aspect into the 111×111 cell and the answer back out."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from taskvec.data.fit import fit_image


def _smooth(h: int, w: int) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return torch.stack([xx, yy, 0.5 + 0.3 * torch.sin(6 * xx)]).clamp(0, 1)


@pytest.mark.parametrize("h, w", [(150, 300), (300, 120), (111, 111), (40, 500)])
def test_letterbox_keeps_aspect_and_restores_the_query(h, w):
    img = _smooth(h, w)
    cell, place = fit_image(img, "letterbox")
    assert cell.shape == (1, 3, 111, 111)
    top, left, bh, bw = place.box
    assert max(bh, bw) == 111 and abs(bh / bw - h / w) < 0.05  # aspect kept
    back = place.restore(cell)
    assert back.shape == (1, 3, h, w)
    assert float((back[0] - img).abs().mean()) < 0.03  # the content survives the round trip
    # the padding mirrors the image: a flat image stays flat (no bars the model would read)
    flat, _ = fit_image(torch.full((3, h, w), 0.3), "letterbox")
    assert torch.allclose(flat, torch.full_like(flat, 0.3), atol=1e-4)


def test_crop_and_squash():
    img = _smooth(100, 200)
    cell, place = fit_image(img, "crop")
    assert place.crop == (0, 50, 100, 100) and place.restore(cell).shape == (1, 3, 100, 100)
    assert float((place.restore(cell)[0] - img[:, :, 50:150]).abs().mean()) < 0.03
    cell, place = fit_image(img, "squash")
    assert cell.shape == (1, 3, 111, 111) and place.box == (0, 0, 111, 111) and place.restore(cell).shape == (1, 3, 100, 200)
    with pytest.raises(ValueError):
        fit_image(img, "stretch")


def test_prompt_answers_at_the_query_resolution(tmp_path):
    from taskvec.vectors.prompting import run_prompt

    rgb = (_smooth(90, 160).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    q = tmp_path / "q.png"
    cv2.imwrite(str(q), rgb[:, :, ::-1])
    out_cell, out_full = tmp_path / "cell.png", tmp_path / "full.png"
    run_prompt("lowlight", str(q), str(out_cell), model_spec="random:micro_pixel")
    run_prompt("lowlight", str(q), str(out_full), model_spec="random:micro_pixel", answer_size="query")
    assert cv2.imread(str(out_cell)).shape == (111, 111, 3)
    assert cv2.imread(str(out_full)).shape == (90, 160, 3)
    run_prompt("lowlight", str(q), str(out_full), model_spec="random:micro_pixel", fit="crop", answer_size="query")
    assert cv2.imread(str(out_full)).shape == (90, 90, 3)
