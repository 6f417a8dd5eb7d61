"""CoTTA (Wang et al., CVPR 2022): continual test-time adaptation with a mean teacher.

Ported from the authors' ``cifar/cotta.py`` and ``cifar/my_transforms.py``
(github.com/qinenergy/cotta, commit c212a204b32be4005092e4323105a24a29ad2952; oracle:
``tests/oracles/cotta_reference.py``, and ``tests/oracles/cotta_imagenet_reference.py`` for
their ``imagenet/cotta.py``). Three copies of the model: the student (adapted), its
teacher (an exponential moving average of the student) and the anchor (the source weights).
Every weight and bias of the student is updated; every module is in train mode and
BatchNorm normalises with the batch's statistics, in all three. One step on a batch ``x``:

1. the student's logits on ``x``; the anchor's mean top-class probability on ``x``; the
   teacher's logits on ``x`` and on ``n_augmentations`` (32) augmented copies of ``x``
   (:func:`~protoview.core.adapt.augment.image_tta_transforms`: colour jitter, padding,
   affine, blur, flip, noise, one draw for the whole batch, on the batch's pixels);
2. the teacher's prediction is the mean over the augmented copies when the anchor's mean
   confidence is below ``ap`` (0.92), else its logits on ``x``;
3. the student takes one optimiser step (Adam, lr 1e-3) on the cross-entropy between the
   teacher's softmax and the student's (``loss="symmetric"``: the average of both
   directions, the authors' ImageNet code);
4. the teacher moves to ``mt * teacher + (1 - mt) * student`` (``mt`` 0.999, every
   parameter);
5. stochastic restore: each element of each weight and bias of the student goes back to its
   source value with probability ``rst`` (0.01).

``step`` returns the teacher's prediction of step 2 (the authors' ``forward`` returns it),
``last_features`` are the teacher's features of ``x`` and the map (``features``) is the
teacher's. ``last_loss`` is the loss of step 3, ``last_augmented`` whether step 2 averaged
the augmentations (``augmented_steps`` counts them) and ``last_restored`` the number of
elements step 5 put back.

Defaults are the authors' CIFAR-10 configuration (``cifar/cfgs/cifar10/cotta.yaml``, which
``cifar/conf.py`` repeats as its defaults, as does the toolkit's ``conf.py``: their code's
default). Their other settings, as parameters: CIFAR-100 ``ap=0.72``; ImageNet
(``imagenet/cotta.py``, literals there) ``optimizer="sgd"`` (momentum 0.9, nesterov),
``lr=0.01``, ``rst=0.001``, ``ap=0.1``, ``loss="symmetric"`` and ``variant="corrected"``
(it augments only when the average is used; on the CPU this equals their ImageNet code draw
for draw, a test checks). ``mt`` (0.999) and the 32 augmentations are the same in both.

``reference`` is the authors' CIFAR code draw for draw (seed torch's generator alike and the
teacher's outputs and all weights are equal, batch by batch). Its flaws are costs, not wrong
numbers; ``corrected`` removes them and draws other random numbers (same distributions):

- the 32 augmented teacher passes run on every batch, also when the anchor is confident and
  their mean is thrown away (their own ImageNet code and the toolkit run them only when
  needed): ``corrected`` runs them only then;
- the restore masks are drawn on the CPU and copied to the GPU, one tensor per weight
  (``torch.rand(p.shape) < rst``, then ``.cuda()``): as many random numbers as the model has
  weights, made on the host, every step. ``corrected`` draws them on the model's device (on
  the CPU, the same numbers) and skips the restore when ``rst`` is 0.

Not flaws of the code, but worth knowing: the augmentations share one draw for the whole
batch; the anchor's confidence is the batch's mean, one decision per batch; the anchor runs
with batch statistics, as the student. The ``steps`` loop and the episodic ``reset`` (it
also puts back the teacher) are correct. A flaw not reproduced: the authors' ``.cuda()``
on each mask sends it to the current CUDA device, not the weight's (a model on another GPU
fails there); both variants here send it to the weight's device.

The toolkit (mariodoebler/test-time-adaptation 8b2ed63, ``methods/cotta.py``; oracle
``tests/oracles/cotta_toolkit.py``) differs from the authors' CIFAR code: it augments only
when needed (so after a confident batch its random stream, hence its restore masks, differ
from the authors'; it equals ``corrected`` on the CPU, a test shows both), skips the
restore when ``rst`` is 0, puts the model in eval mode (dropout off; BatchNorm still on
batch statistics), takes the image size from the model's preprocessing, and picks the
symmetric loss for every dataset whose name lacks "cifar".

Augmenting needs pixels: batches normalised by the dataset's preprocessing go back to
pixels in [0, 1] with :attr:`~protoview.core.adapt.base.Adapter.pixels` before the
augmentations and are normalised again after (the authors' models normalise inside).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from protoview.core.adapt._toolkit import ema, symmetric_cross_entropy, weights_and_biases
from protoview.core.adapt.augment import image_tta_transforms
from protoview.core.adapt.base import (
    Adapter,
    tensors_finite,
    train_only,
    use_batch_statistics,
)
from protoview.core.adapt.params import EPISODIC, LR, STEPS, VARIANT, Param, checked, with_default
from protoview.errors import ParameterError

OPTIMIZERS = ("adam", "sgd")
LOSSES = ("cross_entropy", "symmetric")


def _frozen_copy(model: nn.Module) -> nn.Module:
    twin = copy.deepcopy(model)
    for p in twin.parameters():
        p.detach_()  # as the authors' teacher: no gradients
    return twin


class CoTTA(Adapter):
    """CoTTA's student, EMA teacher and anchor (see the module docstring)."""

    method = "cotta"
    summary = (
        "continual test-time adaptation: the student learns the EMA teacher's "
        "augmentation-averaged predictions, weights restored to the source at random (Wang "
        "et al., CVPR 2022), equal to the authors' code (qinenergy/cotta c212a20)"
    )
    params = (
        with_default(LR, 1e-3, help="learning rate (the authors' CIFAR 1e-3; ImageNet 0.01 "
                     "with sgd)"),
        Param("optimizer", "adam", "adam (CIFAR: betas 0.9, 0.999) or sgd (ImageNet: "
              "momentum 0.9, nesterov)", kind="choice", choices=OPTIMIZERS),
        Param("mt", 0.999, "the teacher's EMA momentum", low=0.0, high=1.0),
        Param("rst", 0.01, "probability that a weight element goes back to its source value "
              "each step (ImageNet 0.001)", low=0.0, high=1.0, window=True, decimals=4),
        Param("ap", 0.92, "the anchor's mean confidence below which the teacher averages "
              "augmentations (CIFAR-100 0.72, ImageNet 0.1)", low=0.0, high=1.0, window=True),
        Param("n_augmentations", 32, "augmented teacher passes averaged", kind="int", low=1),
        Param("loss", "cross_entropy", "student vs teacher: cross_entropy (CIFAR) or "
              "symmetric (ImageNet)", kind="choice", choices=LOSSES),
        STEPS,
        EPISODIC,
        VARIANT,
    )  # fmt: skip

    def __init__(
        self,
        model: nn.Module,
        lr: float = 1e-3,
        optimizer: str = "adam",
        mt: float = 0.999,
        rst: float = 0.01,
        ap: float = 0.92,
        n_augmentations: int = 32,
        loss: str = "cross_entropy",
        steps: int = 1,
        episodic: bool = False,
        variant: str = "reference",
    ) -> None:
        super().__init__(model)
        (
            self.lr, self.optimizer_name, self.mt, self.rst, self.ap, self.n_augmentations,
            self.loss, self.steps, self.episodic, self.variant,
        ) = checked(
            self.params, lr=lr, optimizer=optimizer, mt=mt, rst=rst, ap=ap,
            n_augmentations=n_augmentations, loss=loss, steps=steps, episodic=episodic,
            variant=variant,
        )  # fmt: skip
        named = weights_and_biases(self.model, self.method)
        self.updated_parameter_names = tuple(name for name, _ in named)
        self._params = [p for _, p in named]
        self._sources = [self._source_state[name] for name, _ in named]
        self._numels = [p.numel() for p in self._params]
        self.optimizer = self._build_optimizer()
        self.teacher = _frozen_copy(self.model)
        self.anchor = _frozen_copy(self.model)
        self._student_all = list(self.model.parameters())
        self._teacher_all = list(self.teacher.parameters())
        self._teacher_features: torch.Tensor | None = None
        self._last_restored: torch.Tensor | None = None
        self.last_augmented: bool | None = None
        self.augmented_steps = 0

    def _build_optimizer(self) -> torch.optim.Optimizer:
        if self.optimizer_name == "sgd":
            return torch.optim.SGD(
                self._params, lr=self.lr, momentum=0.9, dampening=0.0, weight_decay=0.0,
                nesterov=True,
            )  # fmt: skip
        return torch.optim.Adam(self._params, lr=self.lr, betas=(0.9, 0.999), weight_decay=0.0)

    # ---- state ------------------------------------------------------------------------------
    @property
    def last_restored(self) -> int | None:
        """Weight elements the last step's stochastic restore put back to the source."""
        return None if self._last_restored is None else int(self._last_restored)

    def _restore_source(self) -> None:
        """Student, optimizer and teacher back to the source (the authors' ``reset``)."""
        super()._restore_source()
        self.teacher.load_state_dict(self._source_state)

    def reset(self) -> None:
        super().reset()
        self.augmented_steps, self.last_augmented, self._last_restored = 0, None, None

    def _extra_state(self) -> dict[str, Any]:
        return {
            "teacher": self.teacher.state_dict(),  # the snapshot deep-copies it
            "augmented_steps": self.augmented_steps,
            "last_augmented": self.last_augmented,
            "last_restored": self.last_restored,
        }

    def _load_extra_state(self, extra: dict[str, Any] | None) -> None:
        assert extra is not None
        self.teacher.load_state_dict(extra["teacher"])
        self.augmented_steps = extra["augmented_steps"]
        self.last_augmented = extra["last_augmented"]
        restored = extra["last_restored"]
        self._last_restored = None if restored is None else torch.tensor(restored)

    def state_bytes(self) -> int:
        """Bytes one snapshot holds: the student's and the teacher's states."""
        teacher = sum(t.numel() * t.element_size() for t in self.teacher.state_dict().values())
        return super().state_bytes() + teacher

    def state_is_finite(self) -> bool:
        teacher = list(self.teacher.state_dict().values())
        return super().state_is_finite() and tensors_finite(teacher)

    # ---- adaptation -------------------------------------------------------------------------
    def step(self, x: torch.Tensor) -> torch.Tensor:
        """The teacher's prediction (N, C); ``last_features``: the teacher's features of x."""
        logits = super().step(x)
        z = self._teacher_features
        self.last_features = None if z is None else (z.flatten(1) if z.ndim > 2 else z).float()
        return logits

    def _adapt(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ParameterError(
                "batch", "'cotta' augments images: it needs batches (N, C, H, W) with 1 or 3 "
                f"channels, got shape {tuple(x.shape)}"
            )  # fmt: skip
        if self.episodic:
            self._restore_source()
        use_batch_statistics(self.model, whole_model_training=True)
        train_only(self.model, self._params)
        use_batch_statistics(self.teacher, whole_model_training=True)
        use_batch_statistics(self.anchor, whole_model_training=True)
        outputs = x.new_empty(0)
        for _ in range(self.steps):
            outputs = self._forward_and_adapt(x)
        return outputs

    def _forward_and_adapt(self, x: torch.Tensor) -> torch.Tensor:
        outputs = self.model(x)
        with torch.no_grad():
            anchor_prob = F.softmax(self.anchor(x), dim=1).max(1)[0]
            z = self.teacher.featurizer(x)
            standard = self.teacher.classifier(z)
            self._teacher_features = z
            augment = bool(anchor_prob.mean(0) < self.ap)
            augmented = []
            if augment or self.variant == "reference":  # the authors' CIFAR code: always
                space = self.pixels
                transform = image_tta_transforms(int(x.shape[2]), int(x.shape[3]))
                pixels = space.to_pixels(x)
                for _ in range(self.n_augmentations):
                    augmented.append(self.teacher(space.from_pixels(transform(pixels))))
            target = torch.stack(augmented).mean(0) if augment else standard
        self.last_augmented = augment
        self.augmented_steps += int(augment)
        loss = self._loss(outputs, target).mean(0)
        self.last_loss = float(loss.detach())
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()
        self._update_teacher()
        self._stochastic_restore()
        return target

    def _loss(self, x: torch.Tensor, x_ema: torch.Tensor) -> torch.Tensor:
        if self.loss == "symmetric":
            return symmetric_cross_entropy(x, x_ema)
        return -(x_ema.softmax(1) * x.log_softmax(1)).sum(1)

    @torch.no_grad()
    def _update_teacher(self) -> None:
        """``teacher = mt * teacher + (1 - mt) * student``, rounded as the authors' code."""
        for mean, param in zip(self._teacher_all, self._student_all, strict=True):
            mean.copy_(ema(mean, param, self.mt))

    @torch.no_grad()
    def _stochastic_restore(self) -> None:
        """Each element back to its source value with probability ``rst``: the authors'
        ``source * mask + p * (1 - mask)``, their masks drawn in one go (the CPU generator
        gives one tensor's numbers as it gives the consecutive per-weight tensors')."""
        total, device = sum(self._numels), self._params[0].device
        if self.variant == "reference":
            keep = (torch.rand(total) < self.rst).to(device)
        elif self.rst > 0.0:
            keep = torch.rand(total, device=device) < self.rst
        else:
            self._last_restored = torch.zeros((), dtype=torch.long)
            return
        mask = keep.float()
        self._last_restored = keep.sum()
        masks = [m.view_as(p) for m, p in zip(mask.split(self._numels), self._params, strict=True)]
        inverse = [m.view_as(p) for m, p in zip((1.0 - mask).split(self._numels), self._params,
                                                   strict=True)]  # fmt: skip
        for p, source, m, rest in zip(self._params, self._sources, masks, inverse, strict=True):
            p.copy_(source * m + p * rest)

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        use_batch_statistics(self.teacher)
        z = self.teacher.featurizer(x)
        return z, self.teacher.classifier(z)
