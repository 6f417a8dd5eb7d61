"""umap-learn's layout optimiser (``optimize_layout_euclidean``, ``move_other=True``) in
torch, for a CUDA device: chosen by :func:`layout_device` when torch is loaded and CUDA is
there, and named in the map's notes.

Port of umap-learn 0.5.12 ``umap/layouts.py`` (``_optimize_layout_euclidean_single_epoch``,
``optimize_layout_euclidean``) and of the set-up of ``umap/umap_.py``
``simplicial_set_embedding`` (pruning, initialisation, scaling into the [0, 10] box).
Changed to run on a GPU, nothing else: the edges due in an epoch are applied at once (the
attractive moves, then the negative samples, added with ``index_add_``) where umap-learn
applies them one after the other in place (its ``parallel=True`` is Hogwild, unordered,
too); the negative samples are drawn by torch's generator, not umap-learn's ``tau_rand``.
So the layouts agree in quality (trustworthiness, tested on the CPU), not bit for bit."""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np


def layout_device() -> str | None:
    """"cuda" when torch is loaded and a CUDA device is there, else None (umap-learn's
    numba optimiser on the CPU). Never imports torch (the CLI's map must not pay for it)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return "cuda"
    return None


def embed_torch(graph, x: np.ndarray, init, n_epochs: int, alpha: float, seed: int,
                device: str, hook: Callable[[int, int], None] | None = None) -> np.ndarray:
    """As ``simplicial_set_embedding(x, graph, 2, alpha, a, b, 1.0, 5, n_epochs, init, ...)``
    with the optimiser on ``device``; ``hook(epoch, n_epochs)`` before each epoch."""
    from umap.spectral import spectral_layout
    from umap.umap_ import find_ab_params, make_epochs_per_sample, noisy_scale_coords

    g = graph.tocoo()
    g.sum_duplicates()
    default = 500 if g.shape[0] <= 10_000 else 200
    g.data[g.data < g.data.max() / float(n_epochs if n_epochs > 10 else default)] = 0.0
    g.eliminate_zeros()
    rs = np.random.RandomState(seed)
    if isinstance(init, str) and init == "random":
        emb = rs.uniform(low=-10.0, high=10.0, size=(g.shape[0], 2)).astype(np.float32)
    elif isinstance(init, str) and init == "spectral":
        emb = spectral_layout(x, g, 2, rs, metric="euclidean", metric_kwds={})
        emb = noisy_scale_coords(emb, rs, max_coord=10, noise=0.0001)
    else:
        emb = np.asarray(init, np.float32)
    emb = (10.0 * (emb - emb.min(0)) / (emb.max(0) - emb.min(0))).astype(np.float32)
    a, b = find_ab_params(1.0, 0.1)
    eps = make_epochs_per_sample(g.data, n_epochs)
    return optimize_layout_torch(emb, g.row, g.col, eps, n_epochs, a, b, alpha, seed,
                                 device, hook=hook)


def optimize_layout_torch(emb: np.ndarray, head: np.ndarray, tail: np.ndarray,
                          epochs_per_sample: np.ndarray, n_epochs: int, a: float, b: float,
                          initial_alpha: float, seed: int, device: str,
                          negative_sample_rate: int = 5, gamma: float = 1.0,
                          hook: Callable[[int, int], None] | None = None) -> np.ndarray:
    """umap-learn's SGD epochs (attraction along the graph's edges as often as their
    weight says, ``negative_sample_rate`` repulsions per attraction, the learning rate
    falling linearly to 0), all edges due in an epoch at once. Returns (N, 2) float32."""
    import torch

    dev = torch.device(device)
    y = torch.as_tensor(np.ascontiguousarray(emb), dtype=torch.float32, device=dev).clone()
    n = y.shape[0]
    h = torch.as_tensor(np.asarray(head), dtype=torch.int64, device=dev)
    t = torch.as_tensor(np.asarray(tail), dtype=torch.int64, device=dev)
    eps = torch.as_tensor(np.asarray(epochs_per_sample), dtype=torch.float64, device=dev)
    eps_neg = eps / negative_sample_rate
    next_sample, next_neg = eps.clone(), eps_neg.clone()
    gen = torch.Generator(device=dev)
    gen.manual_seed(int(seed))
    for epoch in range(n_epochs):
        if hook is not None:
            hook(epoch, n_epochs)
        alpha = initial_alpha * (1.0 - max(epoch - 1, 0) / n_epochs)  # as umap-learn's loop
        due = torch.nonzero(next_sample <= epoch).squeeze(1)
        j, k = h[due], t[due]
        diff = y[j] - y[k]
        d2 = (diff * diff).sum(1)
        pos = d2 > 0
        safe = torch.where(pos, d2, torch.ones_like(d2))
        coef = torch.where(pos, -2.0 * a * b * safe.pow(b - 1.0) / (a * safe.pow(b) + 1.0),
                           torch.zeros_like(d2))
        grad = (coef[:, None] * diff).clamp(-4.0, 4.0) * alpha
        y.index_add_(0, j, grad)
        y.index_add_(0, k, -grad)
        next_sample[due] += eps[due]
        n_neg = torch.trunc((epoch - next_neg[due]) / eps_neg[due])
        jj = torch.repeat_interleave(j, n_neg.clamp(min=0).to(torch.int64))
        kk = torch.randint(0, n, (jj.numel(),), generator=gen, device=dev)
        diff = y[jj] - y[kk]
        d2 = (diff * diff).sum(1)
        coef = 2.0 * gamma * b / ((0.001 + d2) * (a * d2.pow(b) + 1.0))
        coef = torch.where(d2 > 0, coef, torch.zeros_like(d2))  # j == k or a twin: no push
        grad = torch.where(coef[:, None] > 0, (coef[:, None] * diff).clamp(-4.0, 4.0),
                           torch.zeros_like(diff)) * alpha
        y.index_add_(0, jj, grad)
        next_neg[due] += n_neg * eps_neg[due]
    return y.cpu().numpy().astype(np.float32)
