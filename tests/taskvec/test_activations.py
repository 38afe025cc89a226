import pytest
import torch

from taskvec import geometry as G
from taskvec.vectors.activations import RunningMeans, collect_means
from taskvec.model.checkpoint import load_model
from taskvec.errors import UserError


@pytest.fixture(scope="module")
def model():
    return load_model("random:micro_pixel")


def _images(n=6, seed=0):
    return torch.rand(n, 3, G.CELL, G.CELL, generator=torch.Generator().manual_seed(seed))


def _collect(model, n, resume=None):
    return collect_means(model, "lowlight", _images(), n, batch=4, generator=torch.Generator().manual_seed(3),
                         resume=resume, progress=False)  # fmt: skip


def test_resumed_collection_equals_one_run(model, tmp_path):
    one = _collect(model, 10)
    part = _collect(model, 6)  # stops inside the second window
    part.save(tmp_path / "m.safetensors")
    resumed = _collect(model, 10, resume=RunningMeans.load(tmp_path / "m.safetensors"))
    assert resumed.n_seen == one.n_seen == 10
    for bid in one.sums:
        assert torch.equal(one.sums[bid], resumed.sums[bid])
        assert torch.equal(one.counts[bid], resumed.counts[bid])
    m1, m2 = one.means(), resumed.means()
    assert m1.keys() == m2.keys() and all(torch.equal(m1[k], m2[k]) for k in m1)


def test_counts_follow_the_layout(model):
    rm = _collect(model, 5)
    enc = rm.counts[model.block_ids()[0]]
    answer = G.cell_slots("answer")
    assert enc[answer].eq(0).all() and enc[0] == 5 and enc[G.cell_slots("query")].eq(5).all()
    dec = rm.counts[model.block_ids()[-1]]
    assert dec.eq(5).all()
    means = rm.means()[model.block_ids()[0]]
    assert means.shape == (G.NUM_SLOTS, model.cfg.num_heads, model.cfg.head_dim)
    assert means[answer].eq(0).all()


def test_means_match_recorded_heads(model):
    rm = RunningMeans.empty(model, "lowlight")
    x = torch.randn(3, 3, 224, 224)
    layout = G.get_layout("in-context")
    with torch.no_grad():
        heads = model(x, layout, record=True).heads
    rm.update(heads, layout)
    bid = model.block_ids()[-1]
    torch.testing.assert_close(rm.means()[bid][list(layout.dec_slots)], heads[bid].mean(0), atol=1e-6, rtol=0)


def test_bad_files(model, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        RunningMeans.load(tmp_path / "none.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(UserError, match="not a readable means file"):
        RunningMeans.load(bad)
    other = load_model("random:micro_pixel", seed=1)
    with pytest.raises(UserError, match="collected with model"):
        _collect(model, 4).check_model(other)
