"""The map's layout in torch (issue 24): chosen when CUDA is there, named in the notes, and,
forced onto the CPU here, as good as umap-learn's own optimiser on the same graph."""

import numpy as np
import pytest

from protoview.core import projection as P
from protoview.core.projection import _torch_layout
from protoview.errors import CancelledError


def _blobs(n=600, d=32, c=6, seed=0):
    rng = np.random.default_rng(seed)
    lab = rng.integers(0, c, n)
    return (rng.normal(size=(c, d))[lab] * 3 + rng.normal(size=(n, d))).astype(np.float32)


def test_layout_device_is_cuda_only_when_torch_sees_it(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _torch_layout.layout_device() is None
    assert "on the CPU (no CUDA device)" in P.fit_map(_blobs(60), n_epochs=5).notes
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert _torch_layout.layout_device() == "cuda"


def test_torch_layout_on_the_cpu_matches_umap_learn_in_quality(monkeypatch):
    from sklearn.manifold import trustworthiness

    x = _blobs()
    ref = P.fit_map(x, seed=0, n_epochs=200)
    monkeypatch.setattr(_torch_layout, "layout_device", lambda: "cpu")
    seen = []
    ours = P.fit_map(x, seed=0, n_epochs=200, progress=lambda i, n: seen.append(i))
    assert "ported to torch, on cpu" in ours.notes
    assert seen == list(range(200))
    assert np.isfinite(ours.embedding).all() and ours.embedding.dtype == np.float32
    np.testing.assert_array_equal(ours.embedding, P.fit_map(x, seed=0, n_epochs=200).embedding)
    unit = P.unit_rows(x)
    tw_ref = trustworthiness(unit, ref.embedding, n_neighbors=10)
    tw = trustworthiness(unit, ours.embedding, n_neighbors=10)
    assert tw >= tw_ref - 0.02, (tw, tw_ref)
    with pytest.raises(CancelledError):
        P.fit_map(x, seed=0, n_epochs=50, cancel=lambda: True)
