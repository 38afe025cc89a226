import pytest
import torch

from taskvec import geometry as G
from taskvec.vectors.activations import collect_means
from taskvec.model.checkpoint import load_model
from taskvec.data.imagesets import ImageSet
from taskvec.search.driver import run_search, save_search
from taskvec.search.cma import candidate_ks
from taskvec.search.common import Objective, Queries, per_sample_reward, resolve_reward
from taskvec.vectors.sites import SiteSpace, enumerate_sites


@pytest.fixture(scope="module")
def model():
    return load_model("random:micro_pixel")


@pytest.fixture(scope="module")
def pool():
    return ImageSet(torch.rand(8, 3, G.CELL, G.CELL, generator=torch.Generator().manual_seed(0)), None, "test")


@pytest.fixture(scope="module")
def means(model, pool):
    return collect_means(model, "inpainting", pool.images, 8, batch=8, progress=False)


def test_batched_equals_separate_forwards(model, means, pool):
    sites = enumerate_sites(model.cfg)
    space = SiteSpace(model.cfg, sites)
    obj = Objective(model, "inpainting", space, means.means(), max_batch=1000)
    canv, _ = Queries("inpainting", pool).fixed(3, seed=0)
    sel = torch.bernoulli(torch.full((5, len(sites)), 0.4), generator=torch.Generator().manual_seed(1))
    batched = obj.answers(sel, canv)  # one forward of 15 canvases
    layout = G.get_layout("zero-shot")
    with torch.no_grad():
        for k in range(5):
            single = model(canv, layout, patches=space.patches(sel[k : k + 1], means.means())).answer
            assert (batched[k] - single).abs().max() < 1e-5
    chunked = Objective(model, "inpainting", space, means.means(), max_batch=6).answers(sel, canv)
    assert (chunked - batched).abs().max() < 1e-5


@pytest.mark.parametrize("method", ["reinforce", "cma", "grs"])
def test_same_seed_same_vector(model, means, pool, method, tmp_path):
    kw = dict(steps=3, k=4, r=2, n_val=2) if method == "reinforce" else dict(n_train=2, n_val=2)
    if method == "grs":
        kw.update(n_random=4, moves=3, steps=3)
    a = run_search(model, means, pool, method, seed=5, progress=False, **kw)
    b = run_search(model, means, pool, method, seed=5, progress=False, **kw)
    assert torch.equal(a[0].selection, b[0].selection)
    assert a[1].sites == b[1].sites and a[1].mul.keys() == b[1].mul.keys()
    assert all(torch.equal(a[1].add[k], b[1].add[k]) for k in a[1].add)
    assert a[0].selection.shape == (len(enumerate_sites(model.cfg)),)
    out, png = save_search(a[0], a[1], tmp_path / f"{method}.safetensors")
    assert out.is_file() and png.is_file() and png.read_bytes()[:4] == b"\x89PNG"
    if method == "reinforce":
        assert set(a[1].meta["site_probabilities"]) == {str(s) for s in enumerate_sites(model.cfg)}


def test_granularities(model, means, pool):
    for gran in ("head", "token"):
        _, tv = run_search(model, means, pool, "reinforce", gran, steps=1, k=2, r=1, n_val=1, progress=False)
        assert tv.granularity == gran


def test_init_logit_sets_where_reinforce_starts(model, means, pool):
    n = len(enumerate_sites(model.cfg, "head"))
    for logit, expect in ((-10.0, 0), (10.0, n)):  # one step barely moves a logit of ±10
        result, tv = run_search(model, means, pool, "reinforce", "head", steps=1, k=2, r=1, n_val=1, progress=False,
                                init_logit=logit)  # fmt: skip
        assert tv.num_sites == expect and result.config["init_logit"] == logit


def test_candidate_ks():
    assert candidate_ks(20) == [1, 2, 3, 4, 6, 9, 14, 20]
    assert candidate_ks(1) == [1]


def test_changed_reward_is_the_hole_psnr():
    g = torch.Generator().manual_seed(3)
    target = torch.rand(2, 3, G.CELL, G.CELL, generator=g) * 0.8 + 0.1
    query = target.clone()
    query[:, :, 40:67, 40:67] = 0  # a 27-px black hole
    pred = target.clone()
    pred[:, :, 40:67, 40:67] += 0.01  # 40 dB inside the hole
    pred[:, :, :20] = 1.0  # the pixels the task leaves alone do not count
    r = per_sample_reward("inpainting", "changed", pred, target, query)
    assert torch.allclose(r, torch.full((2,), 40.0), atol=1e-2)
    assert per_sample_reward("inpainting", "metric", pred, target)[0] < 30
    assert resolve_reward("inpainting", "auto") == "changed" and resolve_reward("segmentation", "auto") == "metric"
    assert resolve_reward("colorization", "auto") == "mse"
    with pytest.raises(ValueError):
        per_sample_reward("inpainting", "changed", pred, target)
