"""T3A's and TSD's memory of support features (:class:`SupportMemory`) and the prediction
entropy it ranks them by (:func:`softmax_entropy`, every entropy method's loss)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from protoview.core.heads import head_proxies
from protoview.errors import ParameterError


def softmax_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of ``softmax(logits)`` per row: (N, C) float -> (N,) float (nats)."""
    return -(logits.softmax(1) * logits.log_softmax(1)).sum(1)


@dataclass
class SupportMemory:
    """T3A / TSD memory of support features.

    supports: (M, D) float32 features; labels: (M, C) float32 one-hot predicted classes;
    entropy: (M,) float32 prediction entropy; scores: (M, C) float32 softmax (TSD only).
    """

    supports: torch.Tensor
    labels: torch.Tensor
    entropy: torch.Tensor
    scores: torch.Tensor | None = None

    @classmethod
    @torch.no_grad()
    def from_head(cls, classifier: nn.Module, with_scores: bool) -> tuple[SupportMemory, int]:
        """Warm-up memory: every head row (``C*P`` of them) labelled by ``argmax classifier(row)``.

        Returns the memory and ``num_classes = classifier(rows).shape[1]`` (C, not C*P).
        Raises :class:`ParameterError` (``where="classifier"``) for heads without weight rows.
        """
        try:
            rows, _ = head_proxies(classifier)
        except TypeError as exc:
            raise ParameterError(
                "classifier", f"{exc}; T3A and TSD need such a head for their warm-up supports"
            ) from None
        rows = rows.detach().clone().float()
        logits = classifier(rows)
        num_classes = int(logits.shape[1])
        labels = F.one_hot(logits.argmax(1), num_classes=num_classes).float()
        scores = F.softmax(logits, 1) if with_scores else None
        return cls(rows, labels, softmax_entropy(logits), scores), num_classes

    def __len__(self) -> int:
        return int(self.supports.shape[0])

    def clone(self) -> SupportMemory:
        scores = None if self.scores is None else self.scores.clone()
        return SupportMemory(
            self.supports.clone(), self.labels.clone(), self.entropy.clone(), scores
        )

    def to(self, device: torch.device) -> SupportMemory:
        scores = None if self.scores is None else self.scores.to(device)
        return SupportMemory(
            self.supports.to(device), self.labels.to(device), self.entropy.to(device), scores
        )

    def append(self, z: torch.Tensor, logits: torch.Tensor) -> None:
        """Add a batch: features (B, D), classifier logits (B, C), both detached here."""
        z, logits = z.detach(), logits.detach()
        num_classes = self.labels.shape[1]
        self.supports = torch.cat([self.supports, z])
        self.labels = torch.cat(
            [self.labels, F.one_hot(logits.argmax(1), num_classes=num_classes).float()]
        )
        self.entropy = torch.cat([self.entropy, softmax_entropy(logits)])
        if self.scores is not None:
            self.scores = torch.cat([self.scores, F.softmax(logits, 1)])

    def select(self, filter_k: int, legacy_minus_one: bool = False) -> None:
        """Keep the ``filter_k`` lowest-entropy supports of each predicted class.

        ``filter_k == -1`` keeps all; with ``legacy_minus_one`` it reproduces the reference
        code instead, whose ``-1`` branch is dead: ``[:-1]`` drops each class's
        highest-entropy support. The kept supports are grouped by class (in class order),
        each group sorted by ascending entropy; ``-1`` (keep all) keeps arrival order.
        """
        if filter_k == -1 and not legacy_minus_one:
            return  # keep all, in arrival order (DomainBed's T3A)
        predicted = self.labels.argmax(dim=1).long()
        every = torch.arange(len(self.entropy), device=self.entropy.device)
        kept = []
        for c in range(self.labels.shape[1]):
            _, order = torch.sort(self.entropy[predicted == c])
            kept.append(every[predicted == c][order][:filter_k])
        idx = torch.cat(kept)
        self.supports, self.labels, self.entropy = (
            self.supports[idx],
            self.labels[idx],
            self.entropy[idx],
        )
        if self.scores is not None:
            self.scores = self.scores[idx]

    def prototype_weights(self) -> torch.Tensor:
        """(C, D) per-class sums of L2-normalised supports: ``(normalize(S).T @ labels).T``."""
        return (F.normalize(self.supports, dim=1).T @ self.labels).T
