"""LAME (Boudiaf et al., CVPR 2022): Laplacian-adjusted maximum-likelihood estimation.

Ported from the authors' ``src/adaptation/lame.py`` (github.com/fiveai/LAME, commit
d2e5f63090bc1c8129bf7cbd781029a5955e1a67; oracle: ``tests/oracles/lame_reference.py``).
No gradient, no weight changes: the model runs in eval mode (BatchNorm on its running
statistics); for each batch the output probabilities ``p`` (N, C) are adjusted with the
batch's L2-normalised features ``f`` (N, D):

- ``unary = -log(p + 1e-10)``; ``kernel = affinity(f)`` (N, N): ``knn`` (1 for each of
  the ``knn`` nearest other samples), ``rbf`` (``exp(-d^2 / 2 sigma^2)``, ``sigma`` a mean
  neighbour distance, see below) or ``linear`` (``f f^T``); ``force_symmetry`` averages it
  with its transpose;
- ``Y = softmax(-unary)``, then up to 100 times ``Y = softmax(-unary + kernel @ Y)``,
  stopping when the energy changes by at most ``1e-8`` of itself.

``step`` and ``predict`` return ``log Y`` (clamped at float32's smallest normal number,
so no logit is ``-inf``): ``softmax(logits) = Y``. LAME keeps no state between batches.
Defaults are the authors' (``rbf``, ``knn = 5``, no forced symmetry; their ``sigma``
setting is read by nothing, so there is none here).

``reference`` is the authors' code number for number, including the flaw of its ``rbf``
kernel: the ``knn``-th distance is taken over the sorted distances *including the sample
itself* (distance 0; their comment says ``[N, knn + 1]``, the code takes ``min(knn, N)``),
so ``sigma`` is the mean distance to the ``(knn-1)``-th other sample; with ``knn = 1``, a
batch of one sample or one where every sample has ``knn - 1`` exact duplicates,
``sigma = 0`` and ``exp(-0/0)`` makes all of ``Y`` NaN (``knn = 1`` is refused with
``rbf`` in this variant, since every batch would be NaN). ``corrected`` takes the ``knn``-th *other* sample (``min(knn + 1, N)`` sorted
distances, as their ``knn`` kernel does) and, where ``sigma`` is still 0 (all points
identical), the limit ``sigma -> 0``: 1 between identical points, 0 elsewhere. The
``knn`` and ``linear`` kernels are the same in both variants.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from protoview.core.adapt.base import Adapter
from protoview.core.adapt.params import VARIANT, Param, checked
from protoview.errors import ParameterError

AFFINITIES = ("rbf", "knn", "linear")


def knn_affinity(x: torch.Tensor, knn: int) -> torch.Tensor:
    """(N, N) 0/1: row i marks the ``knn`` nearest other samples of sample i."""
    n = x.size(0)
    dist = torch.norm(x.unsqueeze(0) - x.unsqueeze(1), dim=-1, p=2)
    n_neighbors = min(knn + 1, n)
    knn_index = dist.topk(n_neighbors, -1, largest=False).indices[:, 1:]
    w = torch.zeros(n, n, device=x.device)
    w.scatter_(dim=-1, index=knn_index, value=1.0)
    return w


def rbf_affinity(x: torch.Tensor, knn: int, corrected: bool = False) -> torch.Tensor:
    """(N, N) Gaussian kernel; sigma: the mean distance to the ``knn``-th nearest sample,
    counting the sample itself (the authors') or not (``corrected``)."""
    n = x.size(0)
    dist = torch.norm(x.unsqueeze(0) - x.unsqueeze(1), dim=-1, p=2)
    n_neighbors = min(knn + 1 if corrected else knn, n)
    kth_dist = dist.topk(k=n_neighbors, dim=-1, largest=False).values[:, -1]
    sigma = kth_dist.mean()
    if corrected and not bool(sigma > 0):
        return (dist == 0).to(dist.dtype)
    return torch.exp(-(dist**2) / (2 * sigma**2))


def laplacian_optimization(
    unary: torch.Tensor, kernel: torch.Tensor, bound_lambda: float = 1, max_steps: int = 100
) -> torch.Tensor:
    """The authors' bound optimisation: (N, C) unary, (N, N) kernel -> (N, C) Y."""
    old_e = float("inf")
    y = (-unary).softmax(-1)
    for i in range(max_steps):
        pairwise = bound_lambda * kernel.matmul(y)
        exponent = -unary + pairwise
        y = exponent.softmax(-1)
        e = entropy_energy(y, unary, pairwise, bound_lambda).item()
        if i > 1 and (abs(e - old_e) <= 1e-8 * abs(old_e)):
            break
        old_e = e
    return y


def entropy_energy(
    y: torch.Tensor, unary: torch.Tensor, pairwise: torch.Tensor, bound_lambda: float
) -> torch.Tensor:
    return (unary * y - bound_lambda * pairwise * y + y * torch.log(y.clip(1e-20))).sum()


class LAME(Adapter):
    """LAME on the output probabilities (see the module docstring)."""

    method = "lame"
    summary = (
        "Laplacian adjustment of the output probabilities, no gradient (Boudiaf et al., "
        "CVPR 2022), equal to the authors' code (fiveai/LAME d2e5f63)"
    )
    batch_statistics = False  # eval mode; a batch of one has no neighbours (see one_sample_problem)
    params = (
        Param("affinity", "rbf", "the kernel between the batch's features", kind="choice",
              choices=AFFINITIES, casefold=True),
        Param("knn", 5, "neighbours of the knn kernel and of the rbf kernel's sigma",
              kind="int", low=1),
        Param("force_symmetry", False, "average the kernel with its transpose", kind="bool"),
        VARIANT,
    )  # fmt: skip

    def __init__(
        self,
        model: nn.Module,
        affinity: str = "rbf",
        knn: int = 5,
        force_symmetry: bool = False,
        variant: str = "reference",
    ) -> None:
        super().__init__(model)
        self.affinity, self.knn, self.force_symmetry, self.variant = checked(
            self.params, affinity=affinity, knn=knn, force_symmetry=force_symmetry,
            variant=variant,
        )
        if self.affinity == "rbf" and self.knn == 1 and self.variant == "reference":
            raise ParameterError(
                "knn",
                "with affinity='rbf' the reference takes sigma from the sample itself for "
                "knn=1, which makes every output NaN; use knn >= 2 or variant='corrected'",
            )

    def one_sample_problem(self) -> str | None:
        """A batch of one: LAME's output is the model's own (no neighbour), except that the
        reference's rbf kernel takes sigma from the sample itself, which is 0: NaN."""
        if self.affinity == "rbf" and self.variant == "reference":
            return ("lame with affinity='rbf' (reference) takes the kernel's sigma from the "
                    "sample itself in a batch of one, which makes every output NaN; use "
                    "variant='corrected' or affinity knn or linear")
        return super().one_sample_problem()

    def _adapt(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self._features(x)[1]

    def adjusted_probabilities(self, z: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """LAME's ``Y`` (N, C) for features z (N, D) and logits (N, C) of one batch."""
        probas = logits.softmax(-1)
        unary = -torch.log(probas + 1e-10)
        feats = F.normalize(z, p=2, dim=-1)
        if self.affinity == "knn":
            kernel = knn_affinity(feats, self.knn)
        elif self.affinity == "rbf":
            kernel = rbf_affinity(feats, self.knn, corrected=self.variant == "corrected")
        else:
            kernel = torch.matmul(feats, feats.t())
        if self.force_symmetry:
            kernel = 1 / 2 * (kernel + kernel.t())
        return laplacian_optimization(unary, kernel)

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.model.eval()
        z = self.model.featurizer(x)
        y = self.adjusted_probabilities(z, self.model.classifier(z))
        return z, y.clamp_min(torch.finfo(y.dtype).tiny).log()
