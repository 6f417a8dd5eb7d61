"""Fast stand-ins for the core Session (random 2-D maps, no model) for GUI tests: a
:class:`FakeSession` implements :class:`protoview.present.Computes`, the worker's protocol."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from protoview.core.runs import HistoryRow
from protoview.core.state import GeometryState
from protoview.core.updates import detached
from protoview.errors import CancelledError, CheckpointError, UntrustedCodeError
from protoview.present import (
    DataView,
    ForgetRunsRequest,
    GeometryRequest,
    KMeansRequest,
    RefreshRequest,
    ResetRequest,
    SinkhornRequest,
    StepRequest,
    Update,
)


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
    """A session as the worker drives it (``run`` / ``background`` / ``update`` /
    ``to_snapshot``), on random data.

    ``step_seconds`` makes each step busy-compute (Python + numpy, holding the GIL in
    slices like the real thing) for that long, checking ``cancel`` in between.
    """

    step_seconds = 0.0
    opened_requests: list = []
    refresh_pending = False
    map_pending = False  # no quick preview: the map is there at open

    def __init__(self, n: int = 300) -> None:
        self.state = random_state(n)
        self.source_state = self.state
        self.dataset = FakeDataset(n)
        self.history: list[HistoryRow] = []
        self.timeline: list[dict] = []
        self.source_accuracy = self.state.metrics["accuracy"]
        self._rng = np.random.default_rng(1)

    @classmethod
    def open(cls, req, progress=None, cancel=None, preview=False):
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

    # ---------------------------------------------------------------- the protocol
    def run(self, request, progress=None, cancel=None, detail=None):
        t0 = time.perf_counter()
        if isinstance(request, StepRequest):
            n = request.n_steps if request.n_steps > 0 else 5
            for i in range(n):
                if cancel is not None and cancel():
                    raise CancelledError(f"cancelled after {i} of {n} steps")
                self._step(cancel)
                if progress:
                    progress(i + 1, n)
                yield self.update("step", request, t0, partial=i + 1 < n)
            return
        if isinstance(request, GeometryRequest):
            yield replace(self.update("geometry", request, t0), payload=self.geometry(request))
            return
        kind = {ResetRequest: "reset", ForgetRunsRequest: "runs", RefreshRequest: "refresh",
                KMeansRequest: "kmeans", SinkhornRequest: "sinkhorn"}[type(request)]
        if kind == "reset":
            self.reset()
        elif kind == "kmeans":
            self.kmeans(request)
        elif kind == "sinkhorn":
            self.sinkhorn(request)
        yield self.update(kind, request, t0)

    def background(self, seconds=0.5, cancel=None):
        return None

    def finish_open(self, request=None, progress=None, cancel=None):
        return iter(())

    def update(self, kind, request=None, started=None, partial=False, followed=False):
        data = DataView.of(self.dataset) if kind == "open" else None
        return Update(
            kind=kind, state=detached(self.state), history=[replace(h) for h in self.history],
            current_run=1 if self.history else 0,  # one run: the steps since the source
            source_state=self.source_state, source_accuracy=self.source_accuracy,
            class_names=list(self.dataset.class_names), thumbnail=self.dataset.thumbnail,
            request=request, data=data, partial=partial, followed=followed,
            seconds=0.0 if started is None else time.perf_counter() - started,
        )

    # ---------------------------------------------------------------- the work
    def _busy(self, seconds: float, cancel) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            if cancel is not None and cancel():
                raise CancelledError("cancelled")
            a = np.random.default_rng(0).normal(size=(120, 120))
            _ = sum(float(v) for v in (a @ a).ravel()[:2000])

    def _step(self, cancel) -> None:
        self._busy(self.step_seconds, cancel)
        s = self.state
        embedding = s.embedding + self._rng.normal(scale=0.3, size=s.embedding.shape)
        flip = self._rng.random(len(s.labels)) < 0.2
        predictions = np.where(flip, s.labels, s.predictions)
        accuracy = float((predictions == s.labels).mean())
        self.state = replace(s, embedding=embedding.astype(np.float32), predictions=predictions,
                             metrics={**s.metrics, "accuracy": accuracy})
        step = len(self.history) + 1
        self.history.append(HistoryRow(step, 0.5 + 0.01 * step, 0.6, accuracy, 0.01,
                                       pass_index=(step - 1) // 9))  # the demo: 9 a pass
        self.timeline.append({"step": step, "embedding": self.state.embedding.copy(),
                              "predictions": predictions.copy(), "accuracy": accuracy,
                              "prototypes_embedding": s.prototypes_embedding.copy()})

    def step(self, req, progress=None, cancel=None):
        for _update in self.run(req, progress, cancel):
            pass
        return self.state

    def reset(self):
        self.history.clear()
        self.timeline.clear()
        self.state = self.source_state
        return self.state

    def kmeans(self, req, progress=None, cancel=None):
        s = self.state
        k = min(req.k, len(s.labels))
        assignment = (((s.features[:, None] - s.features[:k][None]) ** 2).sum(-1)).argmin(1)
        self.state = replace(
            s, prototypes=s.features[:k].copy(), prototypes_embedding=s.embedding[:k].copy(),
            prototype_density=np.linspace(0.1, 1, k).astype(np.float32), assignment=assignment,
            assignment_target="prototypes", metrics={**s.metrics, "nmi": 0.5, "ari": 0.4},
            attrs={**s.attrs, "kmeans": f"k-means {req.init}: (the fake's path)"})
        return self.state

    def sinkhorn(self, req):
        s = self.state
        k = {"prototypes": len(s.prototypes), "proxies": len(s.center_labels),
             "centers": len(s.centers)}[req.target]
        self.state = replace(s, assignment=np.arange(len(s.labels)) % max(k, 1),
                             assignment_target=req.target)
        return self.state

    def geometry(self, req):
        """The real measurement (core.measures) of the fake map's features and proxies (two
        a class); against the source map's features once a step was taken."""
        from protoview.core.measures import MapGeometry, compare_representations, measure_geometry

        s = self.state
        report = measure_geometry(s.features, s.logits, s.labels, head_rows=s.proxies,
                                  nb_proxy=2, kmeans_k=req.kmeans_k, knn_k=req.knn_k,
                                  knn_max_queries=None, seed=req.seed)
        step = self.history[-1].step if self.history else 0
        comparison = (compare_representations(self.source_state.features, s.features)
                      if step else None)
        return MapGeometry(report, comparison, run=1 if step else 0, step=step, method="tsd",
                           versus_note="" if step else "the source model is shown")

    def to_snapshot(self):
        from protoview.core.state import state_to_snapshot

        snap = state_to_snapshot(self.state)
        snap.history = {"step": np.array([h.step for h in self.history], np.int64),
                        "accuracy": np.array([h.full_accuracy for h in self.history]),
                        "online_accuracy": np.array([h.online_accuracy for h in self.history])}
        snap.metrics["source_accuracy"] = float(self.source_accuracy)
        snap.timeline = [dict(f) for f in self.timeline]
        return snap


def answer_the_export_dialog(monkeypatch, path, file_filter: str, what: str) -> None:
    """The file dialog answers ``path`` with ``file_filter`` chosen, and asking for a
    pixel width fails the test (``what``, e.g. "an SVG", has none)."""
    from PySide6 import QtWidgets

    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName",
                        lambda *a, **k: (str(path), file_filter))

    def no_width(*_a, **_k):
        raise AssertionError(f"{what} has no pixel width to ask for")

    monkeypatch.setattr(QtWidgets.QInputDialog, "getInt", no_width)
