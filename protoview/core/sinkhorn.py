"""Balanced assignment of samples to targets by Sinkhorn-Knopp, with SwAV's semantics.

Same numbers as SwAV's ``distributed_sinkhorn`` (seed 001_*, oracle
``tests/oracles/swav_sinkhorn.py``) on one process: the K x B plan ``exp(scores / eps)`` is
normalised ``n_iters`` times, first each target (prototype) row to mass ``1/K``, then each
sample column to ``1/B``, and returned times ``B`` and transposed, so each sample's row sums
to 1. With few iterations this is *not* the converged transport plan; at convergence it is
POT's ``ot.sinkhorn(1/K, 1/B, -scores.T, eps) * B``.

Written with dual potentials instead of the seed's repeated matrix divisions, so that
small ``epsilon`` never overflows (the seed's ``exp(out / eps)`` is Inf for ``eps = 1e-3``):

- fast path: ``kernel = exp(scores / eps - max_b)`` once (max per target, every target
  column holds a 1), then only matrix-vector products for the scalings ``u`` (K targets)
  and ``v`` (B samples); used when no kernel entry can underflow and every sum stays normal;
- log-domain path otherwise: potentials ``log u``, ``log v``; one ``exp`` per sweep, and
  ``logsumexp`` only for the samples whose sum underflows.

The result equals ``softmax(scores / eps + log u, dim=1)``: each sample's row sums to 1.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from protoview.core.geometry import as_matrix, check_finite_tensor, cosine_similarity_matrix
from protoview.errors import ParameterError

#: Largest spread of ``scores / eps`` within one target column for the fast path (exp(-60)
#: is far above float32's smallest normal number).
_FAST_SPREAD = {torch.float32: 60.0, torch.float64: 600.0}


@dataclass(frozen=True)
class SinkhornResult:
    """Outcome of :func:`sinkhorn_assign`.

    Attributes
    ----------
    Q: ``(N, K)`` float32 plan, each row sums to 1 (SwAV's ``Q * B``, transposed).
    assignments: ``(N,)`` int64 ``argmax`` of each row of ``Q``.
    balance: ``(K,)`` float32 share of samples per target, ``Q.sum(0) / N``.
    seconds: wall time of scores and iterations.
    """

    Q: np.ndarray
    assignments: np.ndarray
    balance: np.ndarray
    seconds: float


def sinkhorn_scores(features: Any, targets: Any) -> Any:
    """Cosine scores ``normalize(features) @ normalize(targets).T``.

    Parameters
    ----------
    features: ``(N, D)`` float samples, numpy or torch.
    targets: ``(K, D)`` float prototypes, proxies or centers.

    Returns
    -------
    ``(N, K)`` in ``[-1, 1]``; a tensor if either input is one, else float32 numpy.
    """
    return cosine_similarity_matrix(features, targets, names=("features", "targets"))


def _as_device(device: Any) -> torch.device | None:
    if device is None:
        return None
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ParameterError("device", f"unknown device {device!r} ({exc})") from None


def _as_score_tensor(scores: Any, device: torch.device | None) -> torch.Tensor:
    if not isinstance(scores, torch.Tensor):
        try:
            scores = torch.as_tensor(np.asarray(scores))
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ParameterError("scores", f"cannot be read as a numeric array ({exc})") from None
    s = scores.detach()
    if device is not None:
        s = s.to(device)
    if s.dtype != torch.float64:
        s = s.float()
    if s.ndim != 2 or s.shape[0] == 0 or s.shape[1] == 0:
        raise ParameterError(
            "scores", f"must be a non-empty 2-D array (N, K), got shape {tuple(s.shape)}"
        )
    check_finite_tensor(s, "scores")
    return s


def _check_epsilon(epsilon: Any) -> float:
    try:
        eps = float(epsilon)
    except (TypeError, ValueError):
        raise ParameterError("epsilon", f"must be a number, got {epsilon!r}") from None
    if not math.isfinite(eps) or eps <= 0:
        raise ParameterError("epsilon", f"must be a positive finite number, got {epsilon!r}")
    return eps


def _check_iters(n_iters: Any) -> int:
    if isinstance(n_iters, bool) or not isinstance(n_iters, (int, np.integer)) or n_iters < 1:
        raise ParameterError("n_iters", f"must be an integer >= 1, got {n_iters!r}")
    return int(n_iters)


def _target_marginals(marginals: Any, k: int, like: torch.Tensor) -> torch.Tensor:
    """``(K,)`` positive masses summing to 1 (uniform ``1/K`` when ``marginals`` is None)."""
    if marginals is None:
        return torch.full((k,), 1.0 / k, dtype=like.dtype, device=like.device)
    if isinstance(marginals, torch.Tensor):
        marginals = marginals.detach().cpu().numpy()
    r = np.asarray(marginals, dtype=np.float64)
    if r.shape != (k,):
        raise ParameterError(
            "target_marginals", f"must have shape ({k},) (one per target), got {r.shape}"
        )
    if not np.isfinite(r).all() or r.min() <= 0:
        raise ParameterError("target_marginals", "must be positive finite numbers")
    if abs(r.sum() - 1.0) > 1e-4:
        raise ParameterError("target_marginals", f"must sum to 1, got {r.sum():.6g}")
    return torch.as_tensor(r / r.sum(), dtype=like.dtype, device=like.device)


def sinkhorn_knopp(
    scores: Any,
    *,
    epsilon: float = 0.05,
    n_iters: int = 3,
    target_marginals: Any = None,
    device: Any = None,
) -> torch.Tensor:
    """SwAV's Sinkhorn-Knopp on a score matrix, overflow-free.

    Parameters
    ----------
    scores:
        ``(N, K)`` float similarities of N samples to K targets (SwAV's ``out``); tensor or
        numpy. float64 stays float64, anything else is computed in float32.
    epsilon:
        Entropy weight (> 0); smaller is sharper. SwAV: 0.05.
    n_iters:
        Number of (target, sample) normalisation sweeps, >= 1. SwAV: 3.
    target_marginals:
        ``(K,)`` positive masses summing to 1 for the targets (default uniform ``1/K``).
    device:
        Where to compute; default the device of ``scores`` (CPU for numpy).

    Returns
    -------
    torch.Tensor
        ``(N, K)`` plan on that device, each row summing to 1.
    """
    s = _as_score_tensor(scores, _as_device(device))
    eps = _check_epsilon(epsilon)
    n_iters = _check_iters(n_iters)
    r = _target_marginals(target_marginals, s.shape[1], s)
    with torch.no_grad():
        plan = _sinkhorn_fast(s, eps, r, n_iters)
        if plan is None:
            plan = _sinkhorn_log(s / eps, r, n_iters)
    return plan


def _tiny(dtype: torch.dtype) -> float:
    """Smallest sum trusted to full precision (far above the subnormal range)."""
    return torch.finfo(dtype).tiny * 1e8


def _sinkhorn_fast(
    s: torch.Tensor, eps: float, r: torch.Tensor, n_iters: int
) -> torch.Tensor | None:
    """Scaling form on ``kernel = exp((s - max over samples) / eps)``; ``None`` when unsafe.

    ``s``: ``(N, K)`` scores; ``r``: ``(K,)`` target masses. Unsafe means a kernel entry could
    leave float's normal range (spread of ``s / eps`` above ``_FAST_SPREAD``) or a sample's
    sum fell below it during the sweeps.
    """
    col_max = s.amax(dim=0)  # (K,)
    if float(col_max.max() - s.min()) / eps > _FAST_SPREAD.get(s.dtype, 60.0):
        return None
    kernel = torch.add(col_max / -eps, s, alpha=1.0 / eps).exp_()  # (N, K), the one exp
    v = torch.ones(s.shape[0], dtype=s.dtype, device=s.device)  # sample scalings
    smallest = torch.tensor(math.inf, dtype=s.dtype, device=s.device)
    for _ in range(n_iters):
        u = r / (kernel.T @ v)  # every target's mass -> r_k
        row = kernel @ u  # each sample's mass before its normalisation
        smallest = torch.minimum(smallest, row.min())
        v = 1.0 / (s.shape[0] * row)  # every sample's mass -> 1/B
    if not bool(torch.isfinite(smallest) & (smallest > _tiny(s.dtype)) & torch.isfinite(u).all()):
        return None
    # entries are kernel * u / row <= 1 and row is normal: finite with no further check
    return kernel.mul_(u).div_(row[:, None])  # (SwAV's Q * B).T: rows sum to 1


def _sinkhorn_log(x: torch.Tensor, r: torch.Tensor, n_iters: int) -> torch.Tensor:
    """Log-domain form, exact for any finite ``x``: ``(N, K)`` plan, rows sum to 1.

    Per sweep one ``exp``: ``e = exp(x + log_v - m)`` with ``m`` the max per target, whose
    column sums (>= 1) give the target potentials ``log_u``; the sample sums ``e @ a`` reuse
    it, and only samples whose sum falls below the normal range get a ``logsumexp``.
    """
    log_r = r.log()
    tiny = _tiny(x.dtype)
    log_v = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for _ in range(n_iters):
        e = x + log_v[:, None]
        m = e.amax(dim=0)
        e.sub_(m).exp_()
        col = e.sum(dim=0)  # (K,) >= 1
        log_u = log_r - m - col.log()
        a = r / col  # exp(log_u + m)
        row = e @ a  # exp(logsumexp_k(x + log_u) + log_v)
        low = row <= tiny
        lse = row.log() - log_v
        if bool(low.any()):
            lse[low] = torch.logsumexp(x[low] + log_u, dim=1)
        log_v = -math.log(x.shape[0]) - lse
    plan = e.mul_(a).div_(row[:, None])
    if bool(low.any()):
        plan[low] = torch.softmax(x[low] + log_u, dim=1)
    return plan


def sinkhorn_assign(
    features: Any,
    targets: Any,
    *,
    epsilon: float = 0.05,
    n_iters: int = 3,
    target_marginals: Any = None,
    device: Any = None,
) -> SinkhornResult:
    """Balanced soft assignment of samples to targets (prototypes, proxies or centers).

    Parameters
    ----------
    features: ``(N, D)`` float samples, numpy or torch.
    targets: ``(K, D)`` float targets; scores are cosine similarities (:func:`sinkhorn_scores`).
    epsilon, n_iters, target_marginals: as :func:`sinkhorn_knopp`.
    device: where to compute; default the device of a tensor input, else the CPU.

    Returns
    -------
    SinkhornResult
    """
    start = time.perf_counter()
    dev = _as_device(device)
    if dev is not None and not isinstance(features, torch.Tensor):
        features = torch.from_numpy(as_matrix(features, "features"))
    if dev is not None:
        features = features.to(dev)
    scores = sinkhorn_scores(features, targets)
    plan = sinkhorn_knopp(
        scores, epsilon=epsilon, n_iters=n_iters, target_marginals=target_marginals, device=dev
    )
    q = plan.float().cpu().numpy()
    return SinkhornResult(
        Q=q,
        assignments=np.argmax(q, axis=1).astype(np.int64),
        balance=(q.sum(axis=0, dtype=np.float64) / q.shape[0]).astype(np.float32),
        seconds=time.perf_counter() - start,
    )
