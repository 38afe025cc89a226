import json

import pytest
import torch

from taskvec import geometry as G
from taskvec.vectors.activations import collect_means
from taskvec.model.checkpoint import load_model
from taskvec.errors import UserError
from taskvec.vectors.sites import SiteSpace, enumerate_sites
from taskvec.vectors.taskvector import TaskVector, default_taskvector_path, load_taskvector, make_taskvector


@pytest.fixture(scope="module")
def model():
    return load_model("random:micro_pixel")


@pytest.fixture(scope="module")
def means(model):
    imgs = torch.rand(4, 3, G.CELL, G.CELL, generator=torch.Generator().manual_seed(0))
    return collect_means(model, "lowlight", imgs, 4, batch=4, progress=False)


@pytest.fixture()
def tv(model, means):
    sites = enumerate_sites(model.cfg)
    sel = torch.zeros(len(sites))
    sel[[0, 3, len(sites) - 1]] = 1
    return make_taskvector(model, means, sites, sel, method="reinforce", note="test")


def test_make_and_patch(model, means, tv):
    sites = enumerate_sites(model.cfg)
    assert tv.num_sites == 3 and tv.granularity == "region" and tv.meta["note"] == "test"
    layout = G.get_layout("zero-shot")
    for bid, m in tv.mul.items():
        n = len(layout.slots(bid.stage))
        assert m.shape == tv.add[bid].shape and m.shape[0] == n and m.dtype == torch.float32
    x = torch.randn(2, 3, 224, 224)
    sel = torch.zeros(len(sites))
    sel[[0, 3, len(sites) - 1]] = 1
    ref = SiteSpace(model.cfg, sites).patches(sel[None], means.means())
    with torch.no_grad():
        a = model(x, layout, patches=tv.patches()).answer
        b = model(x, layout, patches=ref).answer
    assert torch.equal(a, b)
    assert all(p.mul.shape[0] == 1 for p in tv.patches().values())


def test_save_load_round_trip(tv, tmp_path):
    path = tmp_path / "v.safetensors"
    tv.save(path)
    assert path.with_suffix(".json").is_file() and not list(tmp_path.glob(".*"))
    back = TaskVector.load(path)
    assert back.sites == tv.sites and back.task == tv.task and back.model_fingerprint == tv.model_fingerprint
    assert back.mul.keys() == tv.mul.keys()
    assert all(torch.equal(back.mul[b], tv.mul[b]) and torch.equal(back.add[b], tv.add[b]) for b in tv.mul)
    assert json.loads(path.with_suffix(".json").read_text())["sites"] == [str(s) for s in tv.sites]
    path.with_suffix(".json").unlink()  # the header is in the safetensors metadata too
    assert TaskVector.load(path).sites == tv.sites


def test_refuses_other_model(model, tv, tmp_path):
    path = tmp_path / "v.safetensors"
    tv.save(path)
    other = load_model("random:micro_pixel", seed=1)
    with pytest.raises(UserError) as e:
        load_taskvector("lowlight", other, str(path))
    msg = str(e.value)
    assert "was made for model" in msg and tv.model_fingerprint[:16] in msg and "\n" not in msg
    assert load_taskvector("lowlight", model, str(path)).num_sites == 3
    with pytest.raises(UserError, match="is for 'lowlight', not 'inpainting'"):
        load_taskvector("inpainting", model, str(path))


def test_bad_files(model, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        TaskVector.load(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 40)
    with pytest.raises(UserError, match="not a readable task-vector file"):
        TaskVector.load(bad)
    with pytest.raises(UserError, match="no shipped task vector"):
        load_taskvector("lowlight", model)  # nothing shipped for micro_pixel
    assert default_taskvector_path("lowlight").name == "tiny-lowlight.safetensors"


def test_runtime_prefers_the_realistic_vector_where_shipped():
    from taskvec.vectors.taskvector import default_taskvector_path, runtime_taskvector_path

    assert default_taskvector_path("lowlight", "tiny", "realistic").name == "tiny-lowlight-realistic.safetensors"
    assert runtime_taskvector_path("lowlight", "tiny") == default_taskvector_path("lowlight", "tiny", "realistic")
    # no realistic in-painting vector is shipped: the paper's is used
    assert runtime_taskvector_path("inpainting", "tiny") == default_taskvector_path("inpainting", "tiny")
    for task in ("lowlight", "inpainting", "colorization", "segmentation"):
        assert default_taskvector_path(task, "tiny").is_file()
