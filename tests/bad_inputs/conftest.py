"""Fixtures for the bad-input suite: one small exported low-light graph for tvrun's cases."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def micro_graph(tmp_path_factory) -> Path:
    """A micro_pixel low-light task graph (random task vector) exported once, unchecked."""
    from export.onnx_export import export_task, random_taskvector
    from taskvec.model.checkpoint import load_model

    model = load_model("random:micro_pixel")
    out = tmp_path_factory.mktemp("graph")
    result = export_task("lowlight", model=model, taskvec=random_taskvector(model, "lowlight"), out_dir=out,
                         check=False)
    return Path(result.onnx_path)


@pytest.fixture
def graph_copy(micro_graph, tmp_path) -> Path:
    """The exported graph and its sidecar copied into ``tmp_path/g`` (free to spoil)."""
    d = tmp_path / "g"
    d.mkdir()
    for f in micro_graph.parent.iterdir():
        shutil.copy(f, d / f.name)
    return d / micro_graph.name


@pytest.fixture
def clip_dir(tmp_path) -> Path:
    """Four small PNG frames in ``tmp_path/frames`` (an image-folder source)."""
    from badinput import good_image

    d = tmp_path / "frames"
    d.mkdir()
    for i in range(4):
        good_image(d / f"f{i}.png", 48, 64, seed=i)
    return d
