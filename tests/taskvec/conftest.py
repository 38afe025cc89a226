"""Fixtures shared by the taskvec tests."""

from __future__ import annotations

import cv2
import numpy as np
import pytest


@pytest.fixture(scope="session")
def random_image_folder(tmp_path_factory):
    """``make(n)`` → a folder of ``n`` random 48×40 PNGs (seeded, the same for every caller)."""

    def make(n: int):
        d = tmp_path_factory.mktemp("imgs")
        rng = np.random.default_rng(0)
        for i in range(n):
            cv2.imwrite(str(d / f"im{i}.png"), rng.integers(0, 255, (40, 48, 3), dtype=np.uint8))
        return d

    return make
