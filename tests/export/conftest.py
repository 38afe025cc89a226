"""Fixtures for the export tests: models and task vectors made in the test."""

from __future__ import annotations

import pytest

from export.onnx_export import random_taskvector
from taskvec.model.checkpoint import load_model


@pytest.fixture(scope="session")
def tiny():
    return load_model("tiny")


@pytest.fixture(scope="session")
def micro():
    return load_model("random:micro")


@pytest.fixture(scope="session")
def nano_vq():
    """``micro`` with a narrower VQGAN (8 base channels): the VQ head at a quarter of the
    decode cost, for tests that decode the full canvas."""
    import dataclasses

    import torch

    from taskvec.model.config import get_config
    from taskvec.model.mae_vqgan import MaeVQGAN
    from taskvec.model.vqgan import VQGANConfig

    vq = VQGANConfig(ch=8, ch_mult=(1, 1, 2, 2, 4), num_res_blocks=1, z_channels=16, n_embed=64, embed_dim=16)
    torch.manual_seed(0)
    return MaeVQGAN(dataclasses.replace(get_config("micro"), name="micro", vqgan=vq)).eval()


@pytest.fixture(scope="session")
def micro_pixel():
    return load_model("random:micro_pixel")


@pytest.fixture(scope="session")
def tiny_tv(tiny):
    return random_taskvector(tiny, "inpainting")


@pytest.fixture(scope="session")
def micro_tv(micro):
    return random_taskvector(micro, "inpainting")
