"""Classifier heads and their proxies (PyCIL semantics).

``CosineLinear`` and ``SplitCosineLinear`` reproduce PyCIL's modules of the same name,
with one interface change: ``forward`` returns the logits tensor itself instead of
``{'logits': ...}`` so that every head in protoview maps ``(N, D) -> (N, C)``.

:class:`NoHead` stands for the head of an encoder that has none (a self-supervised
backbone: SwAV, MoCo / PCL, SimSiam, DINO): ``(N, D) -> (N, 0)`` logits, no proxies.

Proxies are the head's weight rows. A cosine head with ``nb_proxy = P`` over ``C``
classes holds ``C*P`` rows, class-major: rows ``c*P ... c*P+P-1`` belong to class ``c``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def reduce_proxies(out: torch.Tensor, nb_proxy: int) -> torch.Tensor:
    """Merge ``nb_proxy`` similarity columns per class with softmax attention (PyCIL).

    Parameters
    ----------
    out: (N, C*P) similarities, class-major.
    nb_proxy: P.

    Returns
    -------
    (N, C) tensor: ``sum_p softmax_p(s_cp) * s_cp``.
    """
    if nb_proxy == 1:
        return out
    simi_per_class, attentions = proxy_attention(out, nb_proxy)
    return (attentions * simi_per_class).sum(-1)


def proxy_attention(out: torch.Tensor, nb_proxy: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The similarities per class and their softmax attention, as :func:`reduce_proxies`
    weighs them (PyCIL).

    out: (N, C*P) similarities, class-major; nb_proxy: P. Returns two (N, C, P) tensors:
    ``out`` viewed per class, and ``softmax`` over each class's P proxies.
    """
    bs = out.shape[0]
    nb_classes = out.shape[1] / nb_proxy
    if not nb_classes.is_integer():
        raise ValueError(f"{out.shape[1]} outputs are not a multiple of nb_proxy={nb_proxy}")
    simi_per_class = out.view(bs, int(nb_classes), nb_proxy)
    return simi_per_class, F.softmax(simi_per_class, dim=-1)


class CosineLinear(nn.Module):
    """PyCIL's CosineLinear: ``sigma * reduce(normalize(x) @ normalize(W).T)``.

    ``weight`` is ``(out_features * nb_proxy, in_features)``; ``sigma`` a learnable scalar
    (or ``None``). ``forward`` returns the logits tensor.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        nb_proxy: int = 1,
        to_reduce: bool = False,
        sigma: bool = True,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features * nb_proxy
        self.nb_proxy = nb_proxy
        self.to_reduce = to_reduce
        self.weight = nn.Parameter(torch.empty(self.out_features, in_features))
        if sigma:
            self.sigma = nn.Parameter(torch.empty(1))
        else:
            self.register_parameter("sigma", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.weight.size(1))
        self.weight.data.uniform_(-stdv, stdv)
        if self.sigma is not None:
            self.sigma.data.fill_(1)

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 - PyCIL's name
        out = F.linear(F.normalize(input, p=2, dim=1), F.normalize(self.weight, p=2, dim=1))
        if self.to_reduce:
            out = reduce_proxies(out, self.nb_proxy)
        if self.sigma is not None:
            out = self.sigma * out
        return out


class SplitCosineLinear(nn.Module):
    """PyCIL's SplitCosineLinear: old classes in ``fc1``, new ones in ``fc2``, one sigma."""

    def __init__(
        self,
        in_features: int,
        out_features1: int,
        out_features2: int,
        nb_proxy: int = 1,
        sigma: bool = True,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = (out_features1 + out_features2) * nb_proxy
        self.nb_proxy = nb_proxy
        self.fc1 = CosineLinear(in_features, out_features1, nb_proxy, False, False)
        self.fc2 = CosineLinear(in_features, out_features2, nb_proxy, False, False)
        if sigma:
            self.sigma = nn.Parameter(torch.empty(1))
            self.sigma.data.fill_(1)
        else:
            self.register_parameter("sigma", None)

    @property
    def weight(self) -> torch.Tensor:
        """All proxy rows, ``fc1`` then ``fc2``: ``((C1+C2)*P, D)``."""
        return torch.cat([self.fc1.weight, self.fc2.weight], dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.cat((self.fc1(x), self.fc2(x)), dim=1)
        out = reduce_proxies(out, self.nb_proxy)
        if self.sigma is not None:
            out = self.sigma * out
        return out


@dataclass(frozen=True)
class HeadInfo:
    """What a classifier head is.

    kind: ``"linear"``, ``"cosine"`` or ``"none"`` (:class:`NoHead`); num_classes: C; nb_proxy: P (rows per class);
    feature_dim: D; sigma: the cosine scale (``None`` for linear heads or no sigma);
    has_bias: linear heads only.
    """

    kind: str
    num_classes: int
    nb_proxy: int
    feature_dim: int
    sigma: float | None = None
    has_bias: bool = False
    #: a partial head (:class:`ClassScatter`): the classes it has (left out of the repr, so
    #: that a whole head's description, which keys the feature cache, is as it was)
    held_classes: int | None = field(default=None, repr=False)

    @property
    def num_proxies(self) -> int:
        return self.held * self.nb_proxy

    @property
    def held(self) -> int:
        """The classes the head has rows for (``num_classes`` unless it is partial)."""
        return self.num_classes if self.held_classes is None else self.held_classes

    @property
    def partial(self) -> bool:
        """The head lacks some of its ``num_classes`` (a task checkpoint of a
        class-incremental run, put in the data's classes by :class:`ClassScatter`)."""
        return self.held < self.num_classes

    def describe(self) -> str:
        if self.kind == "none":
            return f"none (an encoder: {self.feature_dim}-d features, no classifier)"
        held = f" ({self.held} of them in the head, the others absent)" if self.partial else ""
        if self.kind == "cosine":
            s = "none" if self.sigma is None else f"{self.sigma:.4g}"
            return (
                f"cosine head: {self.num_classes} classes{held} x {self.nb_proxy} proxies "
                f"({self.num_proxies} rows), feature dim {self.feature_dim}, sigma {s}"
            )
        bias = "with bias" if self.has_bias else "no bias"
        return f"linear head: {self.num_classes} classes{held}, feature dim {self.feature_dim}, {bias}"


@dataclass(frozen=True, eq=False)
class PredictionMap:
    """A many-to-one map from a head's classes to the data's: head class ``k`` counts as data
    class ``classes[k]`` when a prediction is scored, ``-1`` as none of them (never right).

    ImageNet-D's 164 classes are scored so (Rusak et al., "If your data distribution shifts,
    use self-learning", TMLR 2022; bethgelab/robustness ``examples/imagenet_d/map_files.py``;
    the toolkit's ``IMAGENET_D_MAPPING`` and ``get_accuracy``): the argmax of the 1000-way
    logits, then ``mapping_vector[argmax]``. The logits themselves stay the head's own (the
    adaptation sees them whole); :func:`predicted_classes` applies the map.

    classes: (head classes,) ints in ``-1 .. num_classes-1``; num_classes: the data's;
    name: whose map it is (for messages).
    """

    classes: tuple[int, ...]
    num_classes: int
    name: str = ""

    def __post_init__(self) -> None:
        if not self.classes or min(self.classes) < -1 or max(self.classes) >= self.num_classes:
            raise ValueError(f"a prediction map's classes must lie in -1..{self.num_classes - 1}")

    @property
    def unmapped(self) -> int:
        """How many head classes are none of the data's classes."""
        return sum(1 for c in self.classes if c < 0)


def predicted_classes(logits: Any, mapping: PredictionMap | None = None) -> Any:
    """The one place logits become a predicted class: ``(N, C)`` logits -> ``(N,)`` int64,
    the argmax over the head's classes, put through ``mapping`` when there is one (-1: a
    head class that is none of the data's). A numpy array gives a numpy array, a tensor a
    tensor on its device; ``C == 0`` (an encoder without a head) predicts -1 everywhere."""
    if isinstance(logits, torch.Tensor):
        if logits.shape[1] == 0:
            return torch.full((logits.shape[0],), -1, dtype=torch.long, device=logits.device)
        top = logits.argmax(1)
        if mapping is None:
            return top
        return torch.tensor(mapping.classes, dtype=torch.long, device=top.device)[top]
    values = np.asarray(logits)
    if values.shape[1] == 0:
        return np.full(values.shape[0], -1, np.int64)
    top = values.argmax(axis=1).astype(np.int64)
    return top if mapping is None else np.asarray(mapping.classes, np.int64)[top]


class MappedHead(nn.Module):
    """A head whose predictions are scored through a :class:`PredictionMap`: its logits are
    the inner head's, untouched (``inner(z)``, to the bit: an adaptation method sees every
    class, as the authors adapt on ImageNet-D), its ``weight`` the inner head's rows; only
    :func:`predicted_classes` with :func:`prediction_map` maps them."""

    def __init__(self, inner: nn.Module, mapping: PredictionMap) -> None:
        super().__init__()
        if len(mapping.classes) != describe_head(inner).num_classes:
            raise ValueError(f"a map of {len(mapping.classes)} classes for a head of "
                             f"{describe_head(inner).num_classes}")
        self.inner = inner
        self.mapping = mapping

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.inner(z)

    @property
    def weight(self) -> torch.Tensor:
        return self.inner.weight


def prediction_map(model: Any) -> PredictionMap | None:
    """The :class:`PredictionMap` of a model's head (``model.classifier``) or of a head
    itself; None when its predictions are its own classes."""
    head = getattr(model, "classifier", model)
    return head.mapping if isinstance(head, MappedHead) else None


def scored_class_count(model: Any, width: int) -> int:
    """How many classes a model's predictions are scored among: the data's when its head
    maps predictions (ImageNet-D: 164 of 1000-way logits), else ``width`` (the logits').
    The toolkit hands its methods this count (``cfg`` ``NUM_CLASSES``), so the entropy
    margins ``k ln C`` of EATA, SAR and DeYO read it."""
    mapping = prediction_map(model)
    return mapping.num_classes if mapping is not None else int(width)


class NoHead(nn.Module):
    """The head of an encoder without a classifier: ``(N, D)`` features -> ``(N, 0)`` logits.

    Its ``weight`` is ``(0, D)``: no proxies, no classes. Everything that needs logits
    (predictions, accuracy, adaptation) sees none; features, centers, k-means and the
    model's own prototypes work as for any model.
    """

    def __init__(self, feature_dim: int) -> None:
        super().__init__()
        self.in_features = int(feature_dim)
        self.register_buffer("weight", torch.zeros(0, self.in_features), persistent=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z.new_zeros(z.shape[0], 0)


class ClassSubset(nn.Module):
    """A head's logits restricted to some of its classes: ``inner(z)[:, classes]``.

    An ImageNet-1k classifier evaluated on ImageNet-R / -A (200 classes) or ImageNet-D109
    (109) scores only those classes, as their authors' evaluation does
    (hendrycks/imagenet-r ``eval.py``: ``output[:, indices_in_1k]``; the toolkit's
    ``ImageNetXMaskingLayer``): class ``k`` of the subset is class ``classes[k]`` of the head.
    The logits are sliced (not a smaller matrix product) so they equal the authors' to the
    bit; the proxies are the rows of the kept classes.
    """

    def __init__(self, inner: nn.Module, classes: list[int] | tuple[int, ...]) -> None:
        super().__init__()
        info = describe_head(inner)
        chosen = [int(c) for c in classes]
        if not chosen or min(chosen) < 0 or max(chosen) >= info.num_classes:
            raise ValueError(f"class subset outside the head's {info.num_classes} classes")
        self.inner = inner
        self.register_buffer("classes", torch.tensor(chosen, dtype=torch.long), persistent=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.inner(z)[:, self.classes]

    @property
    def weight(self) -> torch.Tensor:
        """The kept classes' rows (their proxies, ``nb_proxy`` each, class by class)."""
        info = describe_head(self.inner)
        rows = self.inner.weight.reshape(info.num_classes, info.nb_proxy, -1)
        return rows[self.classes].reshape(-1, rows.shape[-1])


#: How far below a row's smallest logit an absent class's logit is put by
#: :class:`ClassScatter`: its softmax probability is exactly 0 in float32 and float64
#: (``exp(-1e4)`` underflows) while its log-probability stays finite, so an entropy, a
#: log-softmax or a loss over all the data's classes gets no -inf and no NaN.
ABSENT_MARGIN = 1.0e4


class ClassScatter(nn.Module):
    """A head that holds some classes of the data, its logits put in the data's classes.

    Head class ``k`` is the data's class ``classes[k]`` (PyCIL's class order: a task
    checkpoint's head of ``T`` classes holds the data classes ``order[:T]``); the output is
    ``(N, num_classes)``: column ``classes[k]`` is the head's logit ``k`` (copied, to the
    bit), a column of a class the head lacks is the row's smallest logit minus
    :data:`ABSENT_MARGIN` (never the prediction, probability 0, finite). ``present`` (C,)
    bool marks the classes the head has. The proxies stay the head's rows in its own order
    (``weight``); :func:`head_proxies` names each row's data class.
    """

    def __init__(self, inner: nn.Module, classes: list[int] | tuple[int, ...],
                 num_classes: int) -> None:
        super().__init__()
        info = describe_head(inner)
        chosen = [int(c) for c in classes]
        if len(chosen) != info.num_classes:
            raise ValueError(f"{len(chosen)} data classes for a head of {info.num_classes}")
        if len(set(chosen)) != len(chosen) or min(chosen, default=0) < 0 \
                or max(chosen, default=0) >= num_classes:
            raise ValueError(f"the head's classes must be distinct classes of 0..{num_classes - 1}")
        self.inner = inner
        self.num_classes = int(num_classes)
        self.register_buffer("classes", torch.tensor(chosen, dtype=torch.long), persistent=False)
        present = torch.zeros(num_classes, dtype=torch.bool)
        present[self.classes] = True
        self.register_buffer("present", present, persistent=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        logits = self.inner(z)
        floor = logits.detach().min(dim=1, keepdim=True).values - ABSENT_MARGIN
        out = floor.expand(-1, self.num_classes).clone()
        out[:, self.classes] = logits
        return out

    @property
    def weight(self) -> torch.Tensor:
        """The head's rows in its own order (``nb_proxy`` a class)."""
        return self.inner.weight


def describe_head(head: nn.Module) -> HeadInfo:
    """Describe a supported head (``nn.Linear``, ``CosineLinear``, ``SplitCosineLinear``, or
    a :class:`ClassSubset` or :class:`ClassScatter` of one).

    Raises ``TypeError`` naming the module type for any other head (e.g. an MLP): proxies
    are only defined for a single weight matrix.
    """
    if isinstance(head, ClassSubset):
        inner = describe_head(head.inner)
        return HeadInfo(
            inner.kind, len(head.classes), inner.nb_proxy, inner.feature_dim, inner.sigma,
            inner.has_bias,
        )  # fmt: skip
    if isinstance(head, NoHead):
        return HeadInfo("none", 0, 1, head.in_features)
    if isinstance(head, MappedHead):  # the head's own classes: a map changes only the scoring
        return describe_head(head.inner)
    if isinstance(head, ClassScatter):
        inner = describe_head(head.inner)
        return HeadInfo(
            inner.kind, head.num_classes, inner.nb_proxy, inner.feature_dim, inner.sigma,
            inner.has_bias, inner.num_classes if inner.num_classes < head.num_classes else None,
        )  # fmt: skip
    if isinstance(head, nn.Linear):
        return HeadInfo("linear", head.out_features, 1, head.in_features, None, head.bias is not None)
    if isinstance(head, (CosineLinear, SplitCosineLinear)):
        sigma = None if head.sigma is None else float(head.sigma.detach().reshape(-1)[0])
        classes = head.out_features // head.nb_proxy
        return HeadInfo("cosine", classes, head.nb_proxy, head.in_features, sigma)
    raise TypeError(
        f"unsupported head {type(head).__name__}: protoview supports nn.Linear, CosineLinear "
        "and SplitCosineLinear heads (one weight matrix whose rows are the class proxies)"
    )


def head_proxies(head: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """The head's proxies and their classes.

    Returns
    -------
    vectors: (C*P, D) float tensor, the weight rows (detached, not normalised).
    classes: (C*P,) int64 tensor, ``row // P`` (a :class:`ClassScatter`'s: the data class
    of the row's head class).
    """
    info = describe_head(head)
    weight = head.weight.detach()
    classes = torch.arange(weight.shape[0], device=weight.device) // info.nb_proxy
    if isinstance(head, ClassScatter):
        classes = head.classes.to(weight.device)[classes]
    return weight, classes


def map_proxies(head: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """The head's proxies as the map shows them, with the classes predictions are scored
    in: :func:`head_proxies`, and for a :class:`MappedHead` only the rows of head classes
    that map to a data class, each named by that class (ImageNet-D: the rows of the
    ImageNet classes the map sends to one of its 164, several rows to a class; the rows of
    the other ImageNet classes, never a right prediction, are left off the map).
    Adaptation methods that read the head's rows use :func:`head_proxies` (all of them)."""
    vectors, classes = head_proxies(head)
    mapping = prediction_map(head)
    if mapping is None:
        return vectors, classes
    nb_proxy = describe_head(head).nb_proxy
    to_class = torch.tensor(mapping.classes, dtype=torch.long, device=vectors.device)
    mapped = to_class[torch.arange(vectors.shape[0], device=vectors.device) // nb_proxy]
    keep = mapped >= 0
    return vectors[keep], mapped[keep]
