"""RoTTA (Yuan et al., CVPR 2023): robust test-time adaptation in dynamic scenarios.

Ported from the authors' code (github.com/BIT-DA/RoTTA, commit
67e34c900cdd355fc07e55edd4c577ea7b8ebcc9: ``core/adapter/rotta.py``, ``core/utils/memory.py``,
``core/utils/bn_layers.py``, ``core/utils/custom_transforms.py``; defaults from
``core/configs/defaults.py`` and ``configs/adapter/rotta.yaml``; oracle:
``tests/oracles/rotta_reference.py``).

- **Robust BatchNorm**: every ``BatchNorm1d`` / ``BatchNorm2d`` becomes a robust BN
  (:class:`RobustBN1d` / :class:`RobustBN2d`) that normalises with its own statistics,
  starting at the source running ones; in train mode it first moves them towards the batch's
  (``stat = (1 - alpha) stat + alpha batch_stat``, ``alpha`` 0.05) and normalises with the
  result. Only their scale and shift are trained (Adam, lr 1e-3, beta 0.9).
- **Teacher**: a copy of that model; its predictions are the run's (``step`` returns them, as
  the authors' ``forward`` returns ``ema_out``, and ``features`` / the map are the
  teacher's). After each update every parameter of the teacher moves towards the student's:
  ``teacher = (1 - nu) teacher + nu student`` (``nu`` 0.001).
- **CSTU memory bank** (category-balanced, timeliness and uncertainty): each test sample
  enters with the teacher's pseudo-label and prediction entropy; a class holds at most
  ``memory_size / C`` samples; when full, the sample with the highest score
  ``lambda_t / (1 + exp(-age / memory_size)) + lambda_u * entropy / ln C`` (of its class,
  or of the majority classes) leaves if the newcomer's score (age 0) is lower; every
  sample ages by one at each arrival.
- **Update**, every ``update_frequency`` samples (64; counted sample by sample, so it can
  fall inside a batch): both models in train mode, the student sees a strong augmentation
  of the memory (the toolkit's CoTTA augmentations, :func:`~.augment.tta_transforms`, equal
  to the authors' ``get_tta_transforms``), the teacher the memory itself; the loss is the
  teacher-to-student soft cross-entropy weighted by timeliness ``exp(-a) / (1 + exp(-a))``
  (``a = age / memory_size``). Both forwards move their robust BN statistics.

protoview augments pixels (:attr:`~.base.Adapter.pixels`): the memory holds the batches as
given, the student's view goes to pixels in [0, 1], is augmented and normalised again.

The model given is never changed: the student and the teacher are copies with robust BN
(the authors replace the layers of the model they are given); :attr:`model` holds both
(``model.student``, ``model.teacher``; its ``featurizer`` / ``classifier`` / ``forward`` are
the teacher's), so ``reset`` gives back the source weights and BN statistics in both, and
``snapshot`` / ``restore`` carry both models, Adam's state, the memory bank and the sample
counter.

No flaw of the authors' code changes their numbers, so there is no ``variant``. Differences
that do not change a number: the memory keeps a copy of each sample it admits (the authors'
keeps a view of its whole batch, which holds every batch with a sample in memory alive);
the authors' ageing tests each memory sample with ``data == "empty"`` (a tensor against a
string: a caught ``TypeError`` in torch, ~50 us each, up to ``memory_size`` per arriving
sample), never true, and is skipped here; a 0-dim parameter is averaged (the authors'
``param[:]`` raises on one). Kept as theirs: the strong augmentation's final crop is a
square of the image's height (``n_pixels = INPUT.SIZE[0]``), so a non-square input gives
the student a square view.

The toolkit's RoTTA (mariodoebler/test-time-adaptation 8b2ed63,
``classification/methods/rotta.py``; oracle ``tests/oracles/rotta_toolkit.py``) differs
from the authors': it also trains LayerNorm and GroupNorm scale and shift (``norms="all"``
here; the authors' code trains robust BN only, so a model without BatchNorm has nothing to
train and its first update fails: ``norms="bn"`` refuses it); its single-precision update
calls ``loss_calculation(x)``, which takes no argument (a ``TypeError`` at the first
update); ``reset`` (and ``episodic``) clears the memory and the counter; its augmentations
take the image size from the dataset's name (32 for CIFAR, else 224) unless the model
carries a ``model_preprocess``. Its teacher average ``m * t + (1 - m) * s`` with
``m = 1 - nu`` equals the authors' in float32.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from protoview.core.adapt.augment import tta_transforms
from protoview.core.adapt.base import Adapter, clone_state, train_only
from protoview.core.adapt.params import EPISODIC, LR, STEPS, Param, checked, with_default
from protoview.errors import ParameterError

#: Which norm layers train their scale and shift: the authors' robust BN only, or also
#: LayerNorm and GroupNorm (the toolkit's).
NORM_CHOICES = ("bn", "all")


class RobustBN(nn.Module):
    """The authors' ``MomentumBN``: scale, shift and statistics copied from a BatchNorm.

    ``running_mean`` / ``running_var`` are the authors' ``source_mean`` / ``source_var``
    (the source statistics at first, then their moving average); the authors' unused
    ``target_mean`` / ``target_var`` buffers are left out.
    """

    reduce: tuple[int, ...] = (0,)

    def __init__(self, bn: _BatchNorm, momentum: float) -> None:
        super().__init__()
        self.num_features = bn.num_features
        self.momentum = momentum
        self.eps = bn.eps
        assert bn.weight is not None and bn.bias is not None and bn.running_mean is not None
        self.weight = nn.Parameter(bn.weight.detach().clone())
        self.bias = nn.Parameter(bn.bias.detach().clone())
        self.register_buffer("running_mean", bn.running_mean.detach().clone())
        self.register_buffer("running_var", bn.running_var.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (len(self.reduce) - 1)
        if self.training:
            b_var, b_mean = torch.var_mean(x, dim=list(self.reduce), unbiased=False)
            mean = (1 - self.momentum) * self.running_mean + self.momentum * b_mean
            var = (1 - self.momentum) * self.running_var + self.momentum * b_var
            with torch.no_grad():
                self.running_mean.copy_(mean)
                self.running_var.copy_(var)
            mean, var = mean.view(shape), var.view(shape)
        else:
            mean, var = self.running_mean.view(shape), self.running_var.view(shape)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return x * self.weight.view(shape) + self.bias.view(shape)

    def extra_repr(self) -> str:
        return f"{self.num_features}, momentum={self.momentum}, eps={self.eps}"


class RobustBN1d(RobustBN):
    """``RobustBN1d``: statistics over the batch of (N, C) features."""

    reduce = (0,)


class RobustBN2d(RobustBN):
    """``RobustBN2d``: statistics over the batch and the positions of (N, C, H, W) maps."""

    reduce = (0, 2, 3)


def robust_batchnorm(model: nn.Module, alpha: float) -> list[str]:
    """Replace each ``BatchNorm1d`` / ``BatchNorm2d`` of ``model`` in place by a robust BN
    (the authors' ``configure_model``); returns their names.

    Raises :class:`ParameterError` (``where="method"``) for a BatchNorm without running
    statistics or without scale and shift (the authors' code fails on both).
    """
    names = []
    for name, m in list(model.named_modules()):
        if not isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            continue
        if not m.track_running_stats or m.running_mean is None or m.running_var is None:
            raise ParameterError(
                "method", f"'rotta' starts its robust BatchNorm at the source running "
                f"statistics and BatchNorm layer {name!r} keeps none"
            )  # fmt: skip
        if m.weight is None or m.bias is None:
            raise ParameterError(
                "method", f"'rotta' trains BatchNorm scale and shift and BatchNorm layer "
                f"{name!r} has none (affine=False)"
            )  # fmt: skip
        robust = (RobustBN1d if isinstance(m, nn.BatchNorm1d) else RobustBN2d)(m, alpha)
        parent, _, leaf = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, leaf, robust)
        names.append(name)
    return names


class TeacherStudent(nn.Module):
    """RoTTA's two models; ``featurizer``, ``classifier`` and ``forward`` are the teacher's
    (its predictions are the run's), the student is trained."""

    def __init__(self, teacher: nn.Module, student: nn.Module) -> None:
        super().__init__()
        self.teacher = teacher
        self.student = student

    @property
    def featurizer(self) -> nn.Module:
        return self.teacher.featurizer

    @property
    def classifier(self) -> nn.Module:
        return self.teacher.classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.teacher(x)


@dataclass
class MemoryItem:
    """One sample of the bank: its data (C, H, W), prediction entropy and age (arrivals since)."""

    data: torch.Tensor
    uncertainty: float
    age: int = 0


class _BankState:
    """A bank's contents for a snapshot: copying it copies the lists, not the samples (they
    are never changed in place)."""

    def __init__(self, classes: list[list[tuple[torch.Tensor, float, int]]]) -> None:
        self.classes = classes

    def __deepcopy__(self, memo: dict) -> _BankState:
        return _BankState([list(items) for items in self.classes])


class CSTU:
    """The authors' category-balanced memory bank with timeliness and uncertainty
    (``core/utils/memory.py``), every score computed as theirs (Python floats)."""

    def __init__(self, capacity: int, num_class: int, lambda_t: float = 1.0,
                 lambda_u: float = 1.0) -> None:  # fmt: skip
        self.capacity = capacity
        self.num_class = num_class
        self.per_class = self.capacity / self.num_class
        self.lambda_t = lambda_t
        self.lambda_u = lambda_u
        self.data: list[list[MemoryItem]] = [[] for _ in range(self.num_class)]

    def get_occupancy(self) -> int:
        return sum(len(items) for items in self.data)

    def heuristic_score(self, age: int, uncertainty: float) -> float:
        return self.lambda_t * 1 / (1 + math.exp(-age / self.capacity)) + (
            self.lambda_u * uncertainty / math.log(self.num_class)
        )

    def add_instance(self, data: torch.Tensor, prediction: int, uncertainty: float) -> bool:
        """The authors' ``add_instance``; ``data`` is copied when admitted. True if admitted."""
        admitted = self._remove_instance(prediction, self.heuristic_score(0, uncertainty))
        if admitted:
            self.data[prediction].append(MemoryItem(data.detach().clone(), uncertainty, 0))
        for items in self.data:  # add_age
            for item in items:
                item.age += 1
        return admitted

    def _remove_instance(self, cls: int, score: float) -> bool:
        if len(self.data[cls]) < self.per_class:
            if self.get_occupancy() < self.capacity:
                return True
            sizes = [len(items) for items in self.data]
            majority = [i for i, n in enumerate(sizes) if n == max(sizes)]
            return self._remove_from_classes(majority, score)
        return self._remove_from_classes([cls], score)

    def _remove_from_classes(self, classes: list[int], score_base: float) -> bool:
        max_class = max_index = max_score = None
        for cls in classes:
            for idx, item in enumerate(self.data[cls]):
                score = self.heuristic_score(age=item.age, uncertainty=item.uncertainty)
                if max_score is None or score >= max_score:
                    max_score, max_index, max_class = score, idx, cls
        if max_class is None:
            return True
        assert max_index is not None and max_score is not None
        if max_score > score_base:
            self.data[max_class].pop(max_index)
            return True
        return False

    def get_memory(self) -> tuple[list[torch.Tensor], list[float]]:
        """The samples, class by class in arrival order, and their ages / capacity."""
        items = [item for class_list in self.data for item in class_list]
        return [item.data for item in items], [item.age / self.capacity for item in items]

    def state(self) -> _BankState:
        return _BankState([[(i.data, i.uncertainty, i.age) for i in c] for c in self.data])

    def load_state(self, state: _BankState) -> None:
        self.data = [[MemoryItem(*item) for item in c] for c in state.classes]


def timeliness_reweighting(ages: list[float], device: torch.device) -> torch.Tensor:
    """``exp(-a) / (1 + exp(-a))`` per sample (the authors', ``ages`` as float32)."""
    a = torch.tensor(ages).float().to(device)
    return torch.exp(-a) / (1 + torch.exp(-a))


def soft_cross_entropy(x: torch.Tensor, x_ema: torch.Tensor) -> torch.Tensor:
    """The authors' ``softmax_entropy(x, x_ema)``: ``-(softmax(x_ema) * log_softmax(x)).sum(1)``."""
    return -(x_ema.softmax(1) * x.log_softmax(1)).sum(1)


class RoTTA(Adapter):
    """RoTTA: robust BN, CSTU memory, EMA teacher (see the module docstring)."""

    method = "rotta"
    batch_statistics = False  # robust BatchNorm: moving statistics, a batch of one updates them
    summary = (
        "robust BatchNorm, a category-balanced memory bank and a teacher distilled into a "
        "student on strong augmentations; the teacher predicts (Yuan et al., CVPR 2023), "
        "equal to the authors' code (BIT-DA/RoTTA 67e34c9)"
    )
    params = (
        with_default(LR, 1e-3, help="Adam's learning rate (the authors' 1e-3)"),
        Param("nu", 0.001, "teacher update: teacher = (1 - nu) teacher + nu student",
              low=0.0, high=1.0),
        Param("memory_size", 64, "samples the category-balanced memory bank holds",
              kind="int", low=1, window=True, window_range=(1, 4096)),
        Param("update_frequency", 64, "test samples between two student updates",
              kind="int", low=1, window=True, window_range=(1, 4096)),
        Param("lambda_t", 1.0, "weight of a memory sample's age in its removal score",
              low=0.0),
        Param("lambda_u", 1.0, "weight of a memory sample's entropy in its removal score",
              low=0.0),
        Param("alpha", 0.05, "robust BatchNorm's momentum towards each batch's statistics",
              low=0.0, high=1.0),
        Param("norms", "bn", "trained scale and shift: bn = robust BatchNorm's (the "
              "authors'), all = also LayerNorm and GroupNorm's (the toolkit's)",
              kind="choice", choices=NORM_CHOICES),
        STEPS,
        EPISODIC,
    )  # fmt: skip

    def __init__(
        self,
        model: nn.Module,
        lr: float = 1e-3,
        nu: float = 0.001,
        memory_size: int = 64,
        update_frequency: int = 64,
        lambda_t: float = 1.0,
        lambda_u: float = 1.0,
        alpha: float = 0.05,
        norms: str = "bn",
        steps: int = 1,
        episodic: bool = False,
    ) -> None:
        super().__init__(model)
        (
            self.lr, self.nu, self.memory_size, self.update_frequency, self.lambda_t,
            self.lambda_u, self.alpha, self.norms, self.steps, self.episodic,
        ) = checked(
            self.params, lr=lr, nu=nu, memory_size=memory_size,
            update_frequency=update_frequency, lambda_t=lambda_t, lambda_u=lambda_u,
            alpha=alpha, norms=norms, steps=steps, episodic=episodic,
        )  # fmt: skip
        student = _copy(self.model)
        self.robust_layers = tuple(robust_batchnorm(student, self.alpha))
        named = self._trained(student)
        teacher = _copy(student)
        teacher.requires_grad_(False)  # the authors' build_ema detaches the teacher's
        self.model = TeacherStudent(teacher, student)
        self.updated_parameter_names = tuple(name for name, _ in named)
        self._params = [p for _, p in named]
        self._source_state = clone_state(self.model.state_dict())
        self.optimizer = self._build_optimizer()
        self.bank: CSTU | None = None  # made at the first batch (the number of classes)
        self.seen = 0  # the authors' current_instance: samples seen
        self.updates = 0

    def _trained(self, student: nn.Module) -> list[tuple[str, nn.Parameter]]:
        kinds: tuple[type, ...] = (RobustBN,)
        if self.norms == "all":
            kinds = (RobustBN, nn.LayerNorm, nn.GroupNorm)
        named = [
            (f"{name}.{pname}", p)
            for name, m in student.named_modules()
            if isinstance(m, kinds)
            for pname, p in m.named_parameters(recurse=False)
            if pname in ("weight", "bias")
        ]
        if not named and self.norms == "bn":
            raise ParameterError(
                "method", "'rotta' trains the scale and shift of BatchNorm1d/2d layers (made "
                "robust BatchNorm, as the authors' code does) and the model has none; "
                "norms=all also trains LayerNorm and GroupNorm (the toolkit's)"
            )  # fmt: skip
        if not named:
            raise ParameterError(
                "method", "'rotta' with norms=all trains the scale and shift of BatchNorm, "
                "LayerNorm or GroupNorm layers and the model has none"
            )  # fmt: skip
        return named

    def _build_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self._params, lr=self.lr, betas=(0.9, 0.999), weight_decay=0.0)

    # ---- state --------------------------------------------------------------------------------
    def _restore_source(self) -> None:
        super()._restore_source()
        self.bank, self.seen, self.updates = None, 0, 0

    def _extra_state(self) -> dict[str, Any]:
        bank = None if self.bank is None else self.bank.state()
        return {"bank": bank, "seen": self.seen, "updates": self.updates}

    def _load_extra_state(self, extra: dict[str, Any] | None) -> None:
        assert extra is not None
        self.seen, self.updates = extra["seen"], extra["updates"]
        self.bank = None
        if extra["bank"] is not None:
            self.bank = self._new_bank(len(extra["bank"].classes))
            self.bank.load_state(extra["bank"])

    def _new_bank(self, num_class: int) -> CSTU:
        return CSTU(self.memory_size, num_class, self.lambda_t, self.lambda_u)

    # ---- adaptation ---------------------------------------------------------------------------
    def _adapt(self, x: torch.Tensor) -> torch.Tensor:
        if self.episodic:
            self._restore_source()
        self.last_loss = self.last_selected = None
        train_only(self.model, self._params)
        outputs = x.new_empty(0)
        for _ in range(self.steps):
            outputs = self._forward_and_adapt(x)
        return outputs

    def _forward_and_adapt(self, x: torch.Tensor) -> torch.Tensor:
        teacher, student = self.model.teacher, self.model.student
        with torch.no_grad():
            student.eval()
            teacher.eval()
            ema_out = teacher(x)
            predict = torch.softmax(ema_out, dim=1)
            pseudo_label = torch.argmax(predict, dim=1)
            entropy = torch.sum(-predict * torch.log(predict + 1e-6), dim=1)
        if self.bank is None:
            self._check_classes(int(ema_out.shape[1]))
            self.bank = self._new_bank(int(ema_out.shape[1]))
        for i, (label, uncertainty) in enumerate(
            zip(pseudo_label.tolist(), entropy.tolist(), strict=True)
        ):
            self.bank.add_instance(x[i], label, uncertainty)
            self.seen += 1
            if self.seen % self.update_frequency == 0:
                self._update()
        return ema_out

    def _update(self) -> None:
        """The authors' ``update_model``: distil the teacher into the student on the memory."""
        teacher, student = self.model.teacher, self.model.student
        assert self.bank is not None
        student.train()
        teacher.train()
        sup_data, ages = self.bank.get_memory()
        if sup_data:
            sup = torch.stack(sup_data)
            strong_sup_aug = self._augment(sup)
            ema_sup_out = teacher(sup)
            stu_sup_out = student(strong_sup_aug)
            instance_weight = timeliness_reweighting(ages, sup.device)
            loss = (soft_cross_entropy(stu_sup_out, ema_sup_out) * instance_weight).mean()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.last_loss, self.last_selected = float(loss.detach()), len(sup_data)
        self._update_teacher()
        self.updates += 1

    @torch.no_grad()
    def _update_teacher(self) -> None:
        nu = self.nu
        teacher = list(self.model.teacher.parameters())
        student = list(self.model.student.parameters())
        for ema, param in zip(teacher, student, strict=True):  # the authors' update_ema
            ema.copy_((1 - nu) * ema + nu * param)

    def _augment(self, sup: torch.Tensor) -> torch.Tensor:
        """The authors' ``get_tta_transforms`` on the memory's pixels, normalised again."""
        return self.pixels.apply(tta_transforms(tuple(int(s) for s in sup.shape[-2:])), sup)

    def _check_classes(self, num_classes: int) -> None:
        if num_classes < 2:
            raise ParameterError(
                "method", "'rotta' scores entropy over ln C and needs at least 2 classes"
            )

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        teacher = self.model.teacher
        teacher.eval()
        z = teacher.featurizer(x)
        return z, teacher.classifier(z)


def _copy(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model)
