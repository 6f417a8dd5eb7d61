"""Sinkhorn-Knopp against SwAV's ``distributed_sinkhorn`` (few iterations) and POT (converged)."""

from __future__ import annotations

import math

import numpy as np
import ot
import pytest
import torch
import torch.nn.functional as F

from protoview.core.sinkhorn import (
    SinkhornResult,
    _sinkhorn_fast,
    _sinkhorn_log,
    sinkhorn_assign,
    sinkhorn_knopp,
    sinkhorn_scores,
)
from protoview.errors import ParameterError
from tests.oracles.swav_sinkhorn import distributed_sinkhorn


def random_scores(
    seed: int, n: int | None = None, k: int | None = None, dim: int = 16
) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    n = n or int(torch.randint(5, 501, (1,), generator=gen))
    k = k or int(torch.randint(2, 51, (1,), generator=gen))
    feats = F.normalize(torch.randn(n, dim, generator=gen), dim=1)
    protos = F.normalize(torch.randn(k, dim, generator=gen), dim=1)
    return feats @ protos.T


def reference_log_sinkhorn(
    scores: torch.Tensor, eps: float, iters: int, r: torch.Tensor | None = None
):
    """Textbook log-domain Sinkhorn in float64 with full logsumexp half-steps (SwAV's order)."""
    x = scores.double() / eps
    n, k = x.shape
    log_r = (torch.full((k,), 1.0 / k, dtype=torch.float64) if r is None else r.double()).log()
    log_v = torch.zeros(n, dtype=torch.float64)
    for _ in range(iters):
        log_u = log_r - torch.logsumexp(x + log_v[:, None], dim=0)
        log_v = -math.log(n) - torch.logsumexp(x + log_u, dim=1)
    return torch.softmax(x + log_u, dim=1)


def pot_plan(scores: torch.Tensor, eps: float, r: np.ndarray | None = None) -> np.ndarray:
    """POT's converged plan, as SwAV lays it out: ``(ot.sinkhorn(...) * B).T``."""
    n, k = scores.shape
    a = np.full(k, 1.0 / k) if r is None else r
    plan = ot.sinkhorn(
        a, np.full(n, 1.0 / n), -scores.double().numpy().T, eps, numItermax=20000, stopThr=1e-13
    )
    return (plan * n).T


# ---------------------------------------------------------------- the seed, few iterations


@pytest.mark.parametrize("eps", [0.05, 0.1, 0.5])
@pytest.mark.parametrize("iters", [1, 3, 10])
def test_matches_swav_seed(eps, iters):
    for trial in range(3):
        scores = random_scores(100 * iters + trial + int(eps * 100))
        expected = distributed_sinkhorn(scores.clone(), eps, iters)
        assert torch.isfinite(expected).all()
        r = torch.full((scores.shape[1],), 1.0 / scores.shape[1])
        ours = sinkhorn_knopp(scores, epsilon=eps, n_iters=iters)
        fast = _sinkhorn_fast(scores, eps, r, iters)
        log = _sinkhorn_log(scores / eps, r, iters)
        assert fast is not None and ours.dtype == torch.float32 and ours.shape == scores.shape
        torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)
        torch.testing.assert_close(fast, expected, atol=1e-5, rtol=0)
        torch.testing.assert_close(log, expected, atol=1e-5, rtol=0)


def test_rows_sum_to_one_and_not_the_converged_plan_at_three_iterations():
    scores = random_scores(1, n=200, k=10)
    plan = sinkhorn_knopp(scores, n_iters=3)
    torch.testing.assert_close(plan.sum(1), torch.ones(200), atol=1e-5, rtol=0)
    assert np.abs(plan.numpy() - pot_plan(scores, 0.05)).max() > 1e-3


# ---------------------------------------------------------------- convergence


@pytest.mark.parametrize("seed", range(2))
def test_converges_to_pot(seed):
    scores = random_scores(seed, n=120, k=9)
    expected = pot_plan(scores, 0.05)
    np.testing.assert_allclose(
        sinkhorn_knopp(scores, epsilon=0.05, n_iters=1000).numpy(), expected, atol=1e-4
    )
    r = torch.full((9,), 1.0 / 9, dtype=torch.float64)
    log = _sinkhorn_log(scores.double() / 0.05, r, 1000)
    np.testing.assert_allclose(log.numpy(), expected, atol=1e-6)


def test_unequal_target_marginals_reach_their_balance():
    gen = torch.Generator().manual_seed(3)
    feats, targets = torch.randn(300, 16, generator=gen), torch.randn(5, 16, generator=gen)
    scores = sinkhorn_scores(feats, targets)
    r = np.array([0.4, 0.3, 0.15, 0.1, 0.05])
    result = sinkhorn_assign(feats, targets, epsilon=0.05, n_iters=1000, target_marginals=r)
    np.testing.assert_allclose(result.balance, r, atol=1e-4)
    np.testing.assert_allclose(result.Q, pot_plan(scores, 0.05, r), atol=1e-4)
    few = sinkhorn_knopp(scores.double(), epsilon=0.05, n_iters=4, target_marginals=torch.tensor(r))
    torch.testing.assert_close(
        few, reference_log_sinkhorn(scores, 0.05, 4, torch.tensor(r)), atol=1e-9, rtol=0
    )
    uniform = sinkhorn_assign(feats, targets, epsilon=0.05, n_iters=1000)
    np.testing.assert_allclose(uniform.balance, 0.2, atol=1e-4)


# ---------------------------------------------------------------- small epsilon


def test_small_epsilon_is_finite_where_the_seed_overflows():
    scores = random_scores(4, n=150, k=12)
    with torch.no_grad():
        seed_plan = distributed_sinkhorn(scores.clone(), 1e-3, 3)
    assert not torch.isfinite(seed_plan).all()
    r = torch.full((12,), 1.0 / 12)
    assert _sinkhorn_fast(scores, 1e-3, r, 3) is None  # spread 2000 >> 60: log path
    plan = sinkhorn_knopp(scores, epsilon=1e-3, n_iters=3)
    assert torch.isfinite(plan).all()
    torch.testing.assert_close(plan.sum(1), torch.ones(150), atol=1e-5, rtol=0)
    expected = reference_log_sinkhorn(scores, 1e-3, 3)
    torch.testing.assert_close(
        sinkhorn_knopp(scores.double(), epsilon=1e-3, n_iters=3), expected, atol=1e-9, rtol=0
    )
    torch.testing.assert_close(
        plan.double(), expected, atol=1e-3, rtol=0
    )  # float32 at 1/eps = 1000


def test_log_path_handles_samples_whose_sums_underflow():
    """Sample 0 scores -1 against every target, the others +1: its first-sweep sum is exp(-2000)."""
    scores = torch.ones(6, 3)
    scores[0] = -1.0
    scores[1:, 1] = 0.5
    for eps in (1e-3, 0.01):
        plan = sinkhorn_knopp(scores.double(), epsilon=eps, n_iters=5)
        torch.testing.assert_close(plan, reference_log_sinkhorn(scores, eps, 5), atol=1e-9, rtol=0)
        plan32 = sinkhorn_knopp(scores, epsilon=eps, n_iters=5)
        assert torch.isfinite(plan32).all()
        torch.testing.assert_close(
            plan32.double(), reference_log_sinkhorn(scores, eps, 5), atol=1e-4, rtol=0
        )


# ---------------------------------------------------------------- targets, shapes, devices


def test_targets_can_be_several_proxies_per_class():
    gen = torch.Generator().manual_seed(5)
    classes, per_class = 4, 3
    proxies = torch.randn(classes * per_class, 8, generator=gen)
    feats = torch.randn(40, 8, generator=gen)
    result = sinkhorn_assign(feats, proxies)
    assert (
        isinstance(result, SinkhornResult)
        and result.Q.shape == (40, 12)
        and result.Q.dtype == np.float32
    )
    expected = distributed_sinkhorn(sinkhorn_scores(feats, proxies), 0.05, 3).numpy()
    np.testing.assert_allclose(result.Q, expected, atol=1e-5)
    np.testing.assert_array_equal(result.assignments, result.Q.argmax(1))
    np.testing.assert_allclose(result.balance, result.Q.sum(0) / 40, rtol=1e-6)
    np.testing.assert_allclose(result.Q.sum(1), 1.0, atol=1e-5)
    as_numpy = sinkhorn_assign(feats.numpy(), proxies.numpy(), device="cpu")
    np.testing.assert_allclose(as_numpy.Q, result.Q, atol=1e-6)
    assert result.seconds >= 0


def test_sinkhorn_scores_is_cosine_similarity():
    feats, targets = torch.randn(7, 5), torch.randn(3, 5)
    expected = F.cosine_similarity(feats.unsqueeze(1), targets.unsqueeze(0), dim=2)
    torch.testing.assert_close(sinkhorn_scores(feats, targets), expected, atol=1e-6, rtol=0)
    assert isinstance(sinkhorn_scores(feats.numpy(), targets.numpy()), np.ndarray)
    with pytest.raises(ParameterError) as info:
        sinkhorn_scores(feats, torch.randn(3, 4))
    assert info.value.where == "targets"


def test_one_sample_and_one_target():
    assert sinkhorn_knopp(torch.tensor([[0.3, -0.2, 0.9]])).sum().item() == pytest.approx(
        1.0, abs=1e-6
    )
    torch.testing.assert_close(sinkhorn_knopp(torch.randn(4, 1)), torch.ones(4, 1))
    one = np.array([[0.1, 0.5]], dtype=np.float32)
    torch.testing.assert_close(
        sinkhorn_knopp(one), distributed_sinkhorn(torch.from_numpy(one), 0.05, 3)
    )


@pytest.mark.gpu
def test_cuda_matches_cpu():
    scores = random_scores(6, n=300, k=20)
    for eps in (0.05, 1e-3):
        gpu = sinkhorn_knopp(scores, epsilon=eps, device="cuda")
        assert gpu.device.type == "cuda"
        torch.testing.assert_close(
            gpu.cpu(), sinkhorn_knopp(scores, epsilon=eps), atol=1e-4, rtol=0
        )
    result = sinkhorn_assign(torch.randn(50, 8, device="cuda"), torch.randn(5, 8))
    assert np.isfinite(result.Q).all()


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs, where",
    [
        ({"epsilon": 0.0}, "epsilon"),
        ({"epsilon": -0.1}, "epsilon"),
        ({"epsilon": float("nan")}, "epsilon"),
        ({"epsilon": "small"}, "epsilon"),
        ({"n_iters": 0}, "n_iters"),
        ({"n_iters": 1.5}, "n_iters"),
        ({"target_marginals": [0.5, 0.5]}, "target_marginals"),
        ({"target_marginals": [0.5, 0.6, -0.1]}, "target_marginals"),
        ({"target_marginals": [0.2, 0.2, 0.2]}, "target_marginals"),
        ({"device": "not-a-device"}, "device"),
    ],
)
def test_bad_parameters(kwargs, where):
    with pytest.raises(ParameterError) as info:
        sinkhorn_knopp(torch.rand(4, 3), **kwargs)
    assert info.value.where == where


def test_bad_scores():
    bad = torch.rand(5, 3)
    bad[[1, 3], 0] = float("nan")
    with pytest.raises(ParameterError, match="scores contain NaN in 2 rows"):
        sinkhorn_knopp(bad)
    with pytest.raises(ParameterError, match="Inf in 1 row"):
        sinkhorn_knopp(torch.tensor([[0.0, float("inf")]]))
    for shape in [(0, 3), (3, 0), (4,)]:
        with pytest.raises(ParameterError, match="non-empty 2-D"):
            sinkhorn_knopp(torch.zeros(shape))
    with pytest.raises(ParameterError) as info:
        sinkhorn_assign(np.full((2, 3), np.nan), np.ones((2, 3)), device="cpu")
    assert info.value.where == "features"
    with pytest.raises(ParameterError) as info:
        sinkhorn_assign(np.ones((2, 3)), np.ones((0, 3)))
    assert info.value.where == "targets"
