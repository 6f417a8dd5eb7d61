"""Fast stand-ins for the core Session (random 2-D maps, no model) for GUI tests."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from protoview.core.session import HistoryRow
from protoview.core.state import GeometryState
from protoview.errors import CancelledError, CheckpointError, UntrustedCodeError


def random_state(n: int = 300, c: int = 10, p: int = 2, k: int = 0, seed: int = 0,
                 d: int = 16) -> GeometryState:
    """A GeometryState with clustered random features and a random 2-D embedding."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n).astype(np.int64)
    means = rng.normal(size=(c, d)).astype(np.float32) * 3
    feats = (means[labels] + rng.normal(size=(n, d))).astype(np.float32)
    logits = (feats @ means.T / 4 + rng.normal(size=(n, c))).astype(np.float32)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    centers = np.stack([feats[labels == j].mean(0) if (labels == j).any() else means[j]
                        for j in range(c)]).astype(np.float32)
    emb2 = rng.normal(size=(c, 2)) * 6
    emb = (emb2[labels] + rng.normal(size=(n, 2))).astype(np.float32)
    proxies = np.repeat(means, p, axis=0)
    return GeometryState(
        features=feats, logits=logits, labels=labels, predictions=probs.argmax(1).astype(np.int64),
        confidence=probs.max(1).astype(np.float32),
        entropy=(-(probs * np.log(probs + 1e-30)).sum(1)).astype(np.float32),
        centers=centers, center_labels=np.arange(c, dtype=np.int64), proxies=proxies,
        proxy_classes=np.repeat(np.arange(c), p).astype(np.int64),
        prototypes=feats[:k].copy(), prototype_density=rng.uniform(0.1, 1, k).astype(np.float32),
        embedding=emb, centers_embedding=emb2.astype(np.float32),
        proxies_embedding=(np.repeat(emb2, p, 0) + rng.normal(size=(c * p, 2))).astype(np.float32),
        prototypes_embedding=emb[:k].copy(),
        metrics={"accuracy": float((probs.argmax(1) == labels).mean()), "center_loss": 1.0},
    )


@dataclass
class FakeDataset:
    n: int
    class_names: list[str] = field(default_factory=lambda: [str(i) for i in range(10)])
    description: str = "fake blobs"

    def __len__(self) -> int:
        return self.n

    def thumbnail(self, index: int, max_side: int = 96) -> np.ndarray:
        return np.full((8, 8), index % 255, np.uint8)


class FakeSession:
    """Session-shaped object: open/step/reset/kmeans/sinkhorn/to_snapshot on random data.

    ``step_seconds`` makes each step busy-compute (Python + numpy, holding the GIL in
    slices like the real thing) for that long, checking ``cancel`` in between.
    """

    step_seconds = 0.0
    opened_requests: list = []

    def __init__(self, n: int = 300) -> None:
        self.state = random_state(n)
        self.dataset = FakeDataset(n)
        self.history: list[HistoryRow] = []
        self.timeline: list[dict] = []
        self.source_accuracy = self.state.metrics["accuracy"]
        self._rng = np.random.default_rng(1)

    @classmethod
    def open(cls, req, progress=None, cancel=None):
        if "broken" in req.checkpoint:
            raise CheckpointError(req.checkpoint, "is not a PyTorch checkpoint (bad magic number)")
        if "pickled" in req.checkpoint and not req.trust:
            raise UntrustedCodeError(
                req.checkpoint, "contains pickled Python code (mymodule.Net); it was not loaded. "
                "If you trust this file, pass --trust-checkpoint")
        cls.opened_requests.append(req)
        if progress:
            progress(1, 1)
        return cls()

    def _busy(self, seconds: float, cancel) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            if cancel is not None and cancel():
                raise CancelledError("cancelled")
            a = np.random.default_rng(0).normal(size=(120, 120))
            _ = sum(float(v) for v in (a @ a).ravel()[:2000])

    def step(self, req, progress=None, cancel=None):
        n = req.n_steps if req.n_steps > 0 else 5
        for i in range(n):
            self._busy(self.step_seconds, cancel)
            s = self.state
            s.embedding = s.embedding + self._rng.normal(scale=0.3, size=s.embedding.shape).astype(np.float32)
            flip = self._rng.random(len(s.labels)) < 0.2
            s.predictions = np.where(flip, s.labels, s.predictions)
            s.metrics["accuracy"] = float((s.predictions == s.labels).mean())
            step = len(self.history) + 1
            self.history.append(HistoryRow(step, 0.5 + 0.01 * step, 0.6, s.metrics["accuracy"], 0.01))
            self.timeline.append({"step": step, "embedding": s.embedding.copy(),
                                  "predictions": s.predictions.copy(), "accuracy": s.metrics["accuracy"],
                                  "prototypes_embedding": s.prototypes_embedding.copy()})
            if progress:
                progress(i + 1, n)
        return self.state

    def reset(self):
        self.history.clear()
        self.timeline.clear()
        self.state = random_state(len(self.state.labels))
        return self.state

    def kmeans(self, req, progress=None, cancel=None):
        s = self.state
        k = min(req.k, len(s.labels))
        s.prototypes = s.features[:k].copy()
        s.prototypes_embedding = s.embedding[:k].copy()
        s.prototype_density = np.linspace(0.1, 1, k).astype(np.float32)
        s.assignment = (((s.features[:, None] - s.prototypes[None]) ** 2).sum(-1)).argmin(1)
        s.metrics.update(nmi=0.5, ari=0.4)
        return s

    def sinkhorn(self, req):
        s = self.state
        k = max(len(s.prototypes), 1)
        s.assignment = np.arange(len(s.labels)) % k
        return s

    def to_snapshot(self):
        from protoview.core.state import state_to_snapshot

        snap = state_to_snapshot(self.state)
        snap.history = {"step": np.array([h.step for h in self.history], np.int64),
                        "accuracy": np.array([h.full_accuracy for h in self.history]),
                        "online_accuracy": np.array([h.online_accuracy for h in self.history])}
        snap.metrics["source_accuracy"] = float(self.source_accuracy)
        snap.timeline = [dict(f) for f in self.timeline]
        return snap
