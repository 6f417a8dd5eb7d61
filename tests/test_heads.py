"""Our heads reproduce PyCIL's CosineLinear / reduce_proxies (the seed), numbers and shapes."""

import pytest
import torch
from torch import nn

from protoview.core.heads import (
    CosineLinear,
    SplitCosineLinear,
    describe_head,
    head_proxies,
    reduce_proxies,
)
from tests.oracles import pycil_cosine as ref


@pytest.mark.parametrize("nb_proxy", [1, 2, 3])
@pytest.mark.parametrize("sigma", [True, False])
def test_cosine_linear_matches_pycil(nb_proxy, sigma):
    torch.manual_seed(nb_proxy)
    ours = CosineLinear(16, 7, nb_proxy, to_reduce=True, sigma=sigma)
    theirs = ref.CosineLinear(16, 7, nb_proxy, to_reduce=True, sigma=sigma)
    theirs.load_state_dict(ours.state_dict())
    if sigma:
        with torch.no_grad():
            ours.sigma.fill_(4.2)
            theirs.sigma.fill_(4.2)
    x = torch.randn(33, 16)
    torch.testing.assert_close(ours(x), theirs(x)["logits"], rtol=0, atol=1e-6)


def test_reduce_proxies_matches_and_rejects_bad_width():
    out = torch.randn(5, 12)
    torch.testing.assert_close(reduce_proxies(out, 3), ref.reduce_proxies(out, 3))
    assert reduce_proxies(out, 1) is out
    with pytest.raises(ValueError, match="multiple of nb_proxy"):
        reduce_proxies(torch.randn(5, 10), 3)


def test_split_cosine_linear_is_fc1_then_fc2_class_major():
    torch.manual_seed(0)
    head = SplitCosineLinear(8, 3, 2, nb_proxy=2)
    x = torch.randn(4, 8)
    sims = torch.cat([head.fc1.weight, head.fc2.weight])
    expected = head.sigma * ref.reduce_proxies(
        torch.nn.functional.normalize(x) @ torch.nn.functional.normalize(sims).T, 2
    )
    torch.testing.assert_close(head(x), expected)
    info = describe_head(head)
    assert (info.kind, info.num_classes, info.nb_proxy, info.feature_dim) == ("cosine", 5, 2, 8)


def test_describe_and_proxies_of_linear_and_cosine():
    lin = nn.Linear(6, 4)
    info = describe_head(lin)
    assert (info.kind, info.num_classes, info.nb_proxy, info.has_bias) == ("linear", 4, 1, True)
    cos = CosineLinear(6, 4, nb_proxy=3, to_reduce=True)
    vecs, classes = head_proxies(cos)
    assert vecs.shape == (12, 6)
    assert classes.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert "4 classes x 3 proxies" in describe_head(cos).describe()


def test_mlp_head_is_refused_with_what_is_supported():
    with pytest.raises(TypeError, match="supports nn.Linear, CosineLinear"):
        describe_head(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)))
