"""TSD: Test-time Self-Distillation (Wang et al., CVPR 2023), reference and corrected.

The ``reference`` variant reproduces the authors' ``TSD`` class (``adapt_algorithm.py`` of
github.com/SakurajimaMaiii/TSD, seed ``001_*``) number for number, including its quirks:

(a) ``filter_K = -1`` is dead code: the slice ``[:-1]`` drops each class's highest-entropy
    support instead of keeping all;
(b) the "soft" loss is ``softmax_kl_loss(scores, dist)``: ``KL(softmax(dist) || softmax(scores))``
    where ``scores`` are already probabilities (a softmax of a softmax), summed over classes
    and averaged over the batch;
(c) ``steps`` and ``episodic`` are ignored (one update per batch, never reset);
(d) a class that no support predicts has an all-zero prototype (its cosine is 0);
(e) ``prototype_loss`` and ``topk_cluster`` call ``F.normalize(x, 1)``, whose second
    positional argument is the norm's order ``p``, not ``dim``: features and prototypes are
    L1-normalised there, so ``dist`` is not a cosine (its values are a fraction of one and
    the softmax over it is nearly uniform) and the top-k neighbours are not the nearest by
    cosine. The supports themselves are L2-normalised (``dim=1``) before the class sums.

The ``corrected`` variant changes exactly these:

(a) ``filter_K = -1`` keeps every support;
(b) the loss is ``KL(scores || softmax(dist))`` =
    ``F.kl_div(F.log_softmax(dist, 1), scores.detach(), reduction="none").sum(1).mean()``:
    the classifier's probabilities (detached) are the teacher, the prototype cosine
    logits the student, as in the paper's self-distillation. ``dist`` stays the plain cosine
    (``tau = 1`` as in the code, values in [-1, 1]), so the student cannot reach a peaked
    teacher exactly and the loss stays above zero;
(c) ``steps`` updates per batch (each re-forwards; the batch enters the memory once, on the
    first forward; the returned logits are those of the first forward) and ``episodic``
    resets the weights, the optimizer and the memory before each batch;
(d) classes without any support are left out of the loss: ``dist`` and ``scores`` keep only
    the supported columns and ``scores`` is renormalised over them;
(e) L2 normalisation (true cosines) in the loss and in the local-clustering term.

Both variants, deliberately different from the seed:

- ``num_classes = classifier(rows).shape[1]`` (C), not the number of weight rows: a cosine
  head with ``nb_proxy = P`` has ``C*P`` rows but ``C`` logits, and the seed crashes there.
  The warm-up supports are all ``C*P`` rows, labelled by ``argmax classifier(row)``.
- the head's rows come from :func:`protoview.core.heads.head_proxies`, not ``classifier.fc``;
- nothing calls ``.cuda()``: tensors follow the input's device;
- the local-clustering term (``lam * topk_cluster``) uses ``k = min(topk, M)`` supports (the
  seed crashes when fewer than ``k`` remain) and is skipped when ``lam == 0`` (the seed adds
  ``0 * term``: the same numbers whenever the term is finite). As in the seed it compares
  the raw logits ``p`` with neighbour probabilities and carries a minus sign.
- a non-finite loss is recorded in ``last_loss`` and the update is skipped.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from protoview.core.adapt.base import (
    Adapter,
    SupportMemory,
    select_parameters,
    train_only,
    use_batch_statistics,
)
from protoview.core.adapt.params import (
    EPISODIC,
    FILTER_K,
    LR,
    STEPS,
    UPDATE_CHOICES,
    VARIANT,
    Param,
    checked,
    with_default,
)
from protoview.errors import ParameterError

#: TSD's parameters, the fields of :class:`TSDConfig` (a test checks they agree).
TSD_PARAMS: tuple[Param, ...] = (
    with_default(LR, 1e-4, help="Adam's learning rate (the authors' script: 1e-4)"),
    with_default(FILTER_K, 100, help="supports kept per class (lowest entropy); -1 keeps all "
                 "(reference: drops one per class, as the authors' code)"),
    Param("lam", 0.0, "weight of the local-clustering (top-k) term; 0 as released",
          low=0.0, window=True, window_range=(0.0, 100.0)),
    Param("update", "all", "which parameters adapt: all, BatchNorm affine, featurizer (body) "
          "or classifier (head)", kind="choice", choices=UPDATE_CHOICES, window=True),
    VARIANT,
    with_default(STEPS, 1, help="updates per batch (corrected only)"),
    with_default(EPISODIC, False, help="reset before every batch (corrected only)"),
    Param("topk", 3, "neighbours of the local-clustering term", kind="int", low=1),
)  # fmt: skip


@dataclass(frozen=True)
class TSDConfig:
    """TSD's parameters (defaults from the authors' script: Adam, lr 1e-4, filter_K 100).

    lr: Adam learning rate (> 0); filter_K: supports kept per class (>= 1, or -1);
    lam: weight of the local-clustering term (>= 0); update: all | affine | body | head;
    variant: reference | corrected; steps: updates per batch (corrected only);
    episodic: reset before each batch (corrected only); topk: neighbours of that term.
    Each field is checked by its declaration in :data:`TSD_PARAMS` (a ParameterError
    naming it).
    """

    lr: float = 1e-4
    filter_K: int = 100  # noqa: N815 - the paper's and the code's name
    lam: float = 0.0
    update: str = "all"
    variant: str = "reference"
    steps: int = 1
    episodic: bool = False
    topk: int = 3

    def __post_init__(self) -> None:
        names = [f.name for f in dataclasses.fields(self)]
        values = checked(TSD_PARAMS, **{name: getattr(self, name) for name in names})
        for name, value in zip(names, values, strict=True):
            object.__setattr__(self, name, value)  # the checked value (lr 1 -> 1.0)


def topk_cluster(
    feature: torch.Tensor,
    supports: torch.Tensor,
    scores: torch.Tensor,
    p: torch.Tensor,
    k: int = 3,
    norm: float = 1.0,
) -> torch.Tensor:
    """The seed's local-clustering term, with ``k`` clamped to the number of supports.

    feature: (B, D) detached features; supports: (M, D); scores: (M, C) support
    probabilities; p: (B, C) logits; norm: the order of the normalisation of features and
    supports (1 in the seed, see quirk (e); 2 for cosines). Returns the scalar
    ``mean(-sim_topk * ||p - s||^2)``.
    """
    feature = F.normalize(feature, p=norm, dim=1)
    supports = F.normalize(supports, p=norm, dim=1)
    sim_matrix = feature @ supports.T
    topk_sim, idx_near = torch.topk(sim_matrix, min(k, supports.shape[0]), dim=1)
    scores_near = scores[idx_near].detach().clone()
    diff_scores = torch.sum((p.unsqueeze(1) - scores_near) ** 2, -1)
    return (-1.0 * topk_sim * diff_scores).mean()


class TSDAdapter(Adapter):
    """TSD on a :class:`~protoview.core.model.SplitModel` (see the module docstring).

    The model runs in train mode during a step (BatchNorm uses batch statistics and updates
    its running statistics, as in the authors' script); ``predict`` runs it in eval mode
    except BatchNorm, which uses the batch's statistics (as during adaptation) and leaves
    the running ones alone.
    ``updated_parameter_names`` lists what Adam updates; the other parameters have
    ``requires_grad=False`` during each step and get their flag back afterwards.
    """

    method = "tsd"
    summary = (
        "test-time self-distillation on a support memory (Wang et al., CVPR 2023), equal "
        "to the authors' code (SakurajimaMaiii/TSD a79a34e)"
    )
    params = TSD_PARAMS
    batch_statistics = True  # train mode in step, use_batch_statistics in prediction

    @classmethod
    def from_params(cls, model: nn.Module, **params: Any) -> TSDAdapter:
        """TSD with :class:`TSDConfig` (``**params``)."""
        return cls(model, TSDConfig(**params))

    def __init__(self, model: nn.Module, config: TSDConfig | None = None) -> None:
        super().__init__(model)
        self.config = config = config if config is not None else TSDConfig()
        if config.update == "head" and config.lam == 0:
            raise ParameterError(
                "update",
                "with lam = 0 the TSD loss never reaches the classifier, so update='head' would "
                "change nothing; set lam > 0 or update all, body or affine",
            )
        named = select_parameters(self.model, config.update)
        self.updated_parameter_names = tuple(name for name, _ in named)
        self._params = [p for _, p in named]
        self.optimizer = self._build_optimizer()
        memory, self.num_classes = SupportMemory.from_head(self.model.classifier, with_scores=True)
        self._source_memory = memory
        self.memory = memory.clone()

    # ---- read-only views of the memory -----------------------------------------------------
    @property
    def supports(self) -> torch.Tensor:
        """(M, D) float32 support features (a copy)."""
        return self.memory.supports.clone()

    @property
    def support_labels(self) -> torch.Tensor:
        """(M,) int64 class each support was predicted as."""
        return self.memory.labels.argmax(1)

    @property
    def support_scores(self) -> torch.Tensor:
        """(M, C) float32 softmax of each support (a copy)."""
        return self.memory.scores.clone()

    @property
    def support_entropy(self) -> torch.Tensor:
        """(M,) float32 prediction entropy of each support (a copy)."""
        return self.memory.entropy.clone()

    def prototypes(self) -> torch.Tensor:
        """(C, D) support-prototype weights ``(normalize(supports).T @ one_hot_labels).T``.

        Rows are not normalised (the loss normalises them); a class without support is 0.
        """
        return self.memory.prototype_weights().detach().clone()

    # ---- adaptation -------------------------------------------------------------------------
    def _build_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self._params, lr=self.config.lr, betas=(0.9, 0.999))

    def _adapt(self, x: torch.Tensor) -> torch.Tensor:
        corrected = self.config.variant == "corrected"
        if corrected and self.config.episodic:
            self._restore_source()
        self._enable_training()
        z = self.model.featurizer(x)
        p = self.model.classifier(z)
        online = p.detach()
        self._update(self._loss(z, p, remember=True))
        for _ in range(self.config.steps - 1 if corrected else 0):
            z = self.model.featurizer(x)
            p = self.model.classifier(z)
            self._update(self._loss(z, p, remember=False))
        return online

    def _enable_training(self) -> None:
        self.model.train()
        train_only(self.model, self._params)

    def _loss(self, z: torch.Tensor, p: torch.Tensor, remember: bool) -> torch.Tensor:
        cfg = self.config
        reference = cfg.variant == "reference"
        scores = F.softmax(p, 1)
        with torch.no_grad():
            if remember:
                self.memory = self.memory.to(z.device)
                self.memory.append(z, p)
                self.memory.select(cfg.filter_K, legacy_minus_one=reference)
            supports = F.normalize(self.memory.supports, dim=1)
            weights = supports.T @ self.memory.labels
        if reference:
            loss = self._reference_kl(z, weights.T, scores)
        else:
            loss = self._corrected_kl(z, weights.T, scores, self.memory.labels.sum(0) > 0)
        if cfg.lam != 0:
            loss = loss + cfg.lam * topk_cluster(
                z.detach().clone(), supports, self.memory.scores, p, k=cfg.topk, norm=self._norm
            )
        return loss

    @property
    def _norm(self) -> float:
        """Order of the normalisation in the loss: 1 as the seed does (quirk (e)), else 2."""
        return 1.0 if self.config.variant == "reference" else 2.0

    def _cosine_logits(self, z: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
        norm = self._norm
        return F.normalize(z, p=norm, dim=1) @ F.normalize(prototypes, p=norm, dim=1).T

    def _reference_kl(
        self, z: torch.Tensor, prototypes: torch.Tensor, scores: torch.Tensor
    ) -> torch.Tensor:
        dist = self._cosine_logits(z, prototypes)
        target = F.softmax(dist, dim=1)
        kl = F.kl_div(F.log_softmax(scores.detach(), dim=1), target, reduction="none")
        return kl.sum(1).mean(0)

    def _corrected_kl(
        self,
        z: torch.Tensor,
        prototypes: torch.Tensor,
        scores: torch.Tensor,
        supported: torch.Tensor,
    ) -> torch.Tensor:
        dist = self._cosine_logits(z, prototypes)
        target = scores.detach()
        if not bool(supported.all()):
            dist, target = dist[:, supported], target[:, supported]
            target = target / target.sum(1, keepdim=True).clamp_min(torch.finfo(target.dtype).tiny)
        kl = F.kl_div(F.log_softmax(dist, dim=1), target, reduction="none")
        return kl.sum(1).mean()

    def _update(self, loss: torch.Tensor) -> None:
        value = float(loss.detach())
        self.last_loss = value
        if not math.isfinite(value) or not loss.requires_grad:
            return
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        use_batch_statistics(self.model)
        z = self.model.featurizer(x)
        return z, self.model.classifier(z)
