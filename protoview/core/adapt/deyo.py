"""DeYO (Lee et al., ICLR 2024): entropy and pseudo-label probability difference (PLPD).

Ported from the authors' ``methods/deyo.py`` with the defaults of their ``config.py`` and
``main.py`` (github.com/Jhyun17/DeYO, commit 3d7d2897d864907571ef75edf31f0028d53f1432;
oracle: ``tests/oracles/deyo_reference.py``). Each step, on the scale and shift of the
normalisation layers (BatchNorm2d, LayerNorm, GroupNorm, skipping a ResNet's ``layer4`` and
a ViT-B's blocks 9 to 11 and final norm, as the authors' ``collect_params``), the whole model
in train mode with BatchNorm on batch statistics (running statistics never updated):

1. forward; keep the samples with entropy ``< margin`` (``0.5 ln C``);
2. shuffle each kept image (``aug_type``): ``patch`` (default) cuts it into
   ``patch_len x patch_len`` patches (4 x 4) and puts them back in a random order, one
   permutation per image drawn from torch's global generator (``argsort(rand(N, P))``, as
   the authors); ``pixel`` shuffles all pixels (one permutation for the batch); ``occ``
   paints an ``occlusion_size`` square at (``row_start``, ``column_start``) with each
   channel's mean;
3. PLPD = the predicted class's probability on the image minus that on the shuffled image
   (a forward without gradients); keep the samples with PLPD ``> plpd_threshold`` (0.2);
4. weight each kept entropy by ``exp(margin_e0 - entropy) + exp(plpd)`` (``margin_e0``
   ``0.4 ln C``) and take one SGD step (lr 0.00025, momentum 0.9) on their mean; no step
   when no sample is left.

The patch shuffle resizes the images to a multiple of ``patch_len`` and back when their size
is not one (torchvision's ``Resize``, bilinear with antialiasing; the identity when it is);
an image smaller than ``patch_len`` pixels a side, or a batch that is not images
``(N, C, H, W)``, is refused with one line. The online logits are the first forward's;
``last_selected`` counts the samples of the update (after both filters), ``last_loss`` its
loss (``NaN`` when none is left and no step is taken).

``reference`` reproduces the authors' code, ``corrected`` fixes two flaws that only
non-square images meet: the patch shuffle resizes to and from ``W x W`` (the last
dimension twice), so an ``H x W`` batch comes back ``W x W`` (``corrected``: ``H x W``), and
the pixel shuffle folds the pixels back into ``W x W`` (the reference fails there, one line:
use ``corrected``). ``episodic``: the released ``reset()`` reads a model and optimiser state
that ``__init__`` never stores (an ``AttributeError``); both variants do what it means, as
Tent's reset it was built on: back to the source weights and a fresh optimiser.

Where the toolkit (mariodoebler/test-time-adaptation 8b2ed63, ``methods/deyo.py``) differs
from the authors: its model is in eval mode (dropout and stochastic depth off; BatchNorm2d
still on batch statistics, BatchNorm1d in train mode) where the authors' is in train mode;
it adapts BatchNorm1d layers too; its SGD is Nesterov (its default ``OPTIM.NESTEROV``), and
its CIFAR configurations use Adam (lr 1e-3); it has no ``filter_*`` switches (both filters
always on). ``tests/test_deyo.py`` runs the toolkit's code (``tests/oracles/toolkit_deyo.py``)
to show it equal to the authors' with their SGD and different with its own.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torchvision
from torch import nn

from protoview.core.adapt.base import Adapter, softmax_entropy, train_only, use_batch_statistics
from protoview.core.adapt.params import (
    EPISODIC,
    LR,
    STEPS,
    VARIANT,
    Param,
    checked,
    with_default,
)
from protoview.core.adapt.sar import sar_parameters
from protoview.core.heads import scored_class_count
from protoview.errors import ParameterError

AUG_TYPES = ("patch", "pixel", "occ")


def deyo_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The authors' ``collect_params``: SAR's choice, with BatchNorm2d (not 1d) only."""
    return sar_parameters(
        model, layers=(nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm), method="deyo",
        norms="BatchNorm2d, LayerNorm or GroupNorm",
    )  # fmt: skip


def patches_to_rows(x: torch.Tensor, p: int) -> torch.Tensor:
    """``rearrange(x, 'b c (ps1 h) (ps2 w) -> b (ps1 ps2) c h w', ps1=p, ps2=p)``."""
    b, c, height, width = x.shape
    t = x.reshape(b, c, p, height // p, p, width // p).permute(0, 2, 4, 1, 3, 5)
    return t.reshape(b, p * p, c, height // p, width // p)


def rows_to_patches(x: torch.Tensor, p: int) -> torch.Tensor:
    """``rearrange(x, 'b (ps1 ps2) c h w -> b c (ps1 h) (ps2 w)', ps1=p, ps2=p)``."""
    b, _, c, h, w = x.shape
    return x.reshape(b, p, p, c, h, w).permute(0, 3, 1, 4, 2, 5).reshape(b, c, p * h, p * w)


class DeYO(Adapter):
    """DeYO on normalisation layers with SGD (see the module docstring)."""

    method = "deyo"
    summary = (
        "entropy and shuffled-patch (PLPD) sample selection and weighting (Lee et al., "
        "ICLR 2024), equal to the authors' code (Jhyun17/DeYO 3d7d289)"
    )
    params = (
        with_default(LR, 0.00025, help="SGD's learning rate (the authors' 0.00025 for "
                     "ResNets at batch >= 32; ViT-B: 0.001 / 64 x batch)"),
        Param("margin", None, "entropy threshold of the first filter; none = 0.5 ln C",
              low=0.0, low_open=True, optional=True),
        Param("margin_e0", None, "entropy margin of the weighting; none = 0.4 ln C",
              low=0.0, low_open=True, optional=True),
        Param("plpd_threshold", 0.2, "PLPD above which a sample is kept", window=True,
              window_range=(-1.0, 1.0)),
        Param("aug_type", "patch", "the shuffle behind PLPD: patch, pixel or occ(lusion)",
              kind="choice", choices=AUG_TYPES),
        Param("patch_len", 4, "patches per row and column of the patch shuffle", kind="int",
              low=1),
        Param("occlusion_size", 112, "side of the occlusion square (aug_type occ)",
              kind="int", low=1),
        Param("row_start", 56, "first row of the occlusion square", kind="int", low=0),
        Param("column_start", 56, "first column of the occlusion square", kind="int", low=0),
        Param("filter_ent", True, "keep only samples below the entropy margin", kind="bool"),
        Param("filter_plpd", True, "keep only samples above the PLPD threshold",
              kind="bool"),
        Param("reweight_ent", True, "weight by exp(margin_e0 - entropy)", kind="bool"),
        Param("reweight_plpd", True, "weight by exp(PLPD)", kind="bool"),
        STEPS,
        EPISODIC,
        VARIANT,
    )  # fmt: skip

    def __init__(
        self,
        model: nn.Module,
        lr: float = 0.00025,
        margin: float | None = None,
        margin_e0: float | None = None,
        plpd_threshold: float = 0.2,
        aug_type: str = "patch",
        patch_len: int = 4,
        occlusion_size: int = 112,
        row_start: int = 56,
        column_start: int = 56,
        filter_ent: bool = True,
        filter_plpd: bool = True,
        reweight_ent: bool = True,
        reweight_plpd: bool = True,
        steps: int = 1,
        episodic: bool = False,
        variant: str = "reference",
    ) -> None:
        super().__init__(model)
        (
            self.lr, self.margin, self.margin_e0, self.plpd_threshold, self.aug_type,
            self.patch_len, self.occlusion_size, self.row_start, self.column_start,
            self.filter_ent, self.filter_plpd, self.reweight_ent, self.reweight_plpd,
            self.steps, self.episodic, self.variant,
        ) = checked(
            self.params, lr=lr, margin=margin, margin_e0=margin_e0,
            plpd_threshold=plpd_threshold, aug_type=aug_type, patch_len=patch_len,
            occlusion_size=occlusion_size, row_start=row_start, column_start=column_start,
            filter_ent=filter_ent, filter_plpd=filter_plpd, reweight_ent=reweight_ent,
            reweight_plpd=reweight_plpd, steps=steps, episodic=episodic, variant=variant,
        )  # fmt: skip
        named = deyo_parameters(self.model)
        self.updated_parameter_names = tuple(name for name, _ in named)
        self._params = [p for _, p in named]
        self.optimizer = self._build_optimizer()
        #: Samples past the entropy filter in the last update (the authors' ``backward``).
        self.last_reliable: int | None = None

    def _build_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self._params, lr=self.lr, momentum=0.9)

    def _extra_state(self) -> dict[str, Any]:
        return {"last_reliable": self.last_reliable}

    def _load_extra_state(self, extra: dict[str, Any] | None) -> None:
        assert extra is not None
        self.last_reliable = extra["last_reliable"]

    # ---- adaptation -------------------------------------------------------------------------
    def _adapt(self, x: torch.Tensor) -> torch.Tensor:
        self._check_images(x)
        if self.episodic:
            self._restore_source()
        use_batch_statistics(self.model, whole_model_training=True)
        train_only(self.model, self._params)
        outputs = x.new_empty(0)
        for _ in range(self.steps):
            outputs = self._forward_and_adapt(x)
        return outputs.detach()

    def _check_images(self, x: torch.Tensor) -> None:
        if x.ndim != 4:
            raise ParameterError(
                "batch", f"deyo shuffles images: it needs a batch (N, C, H, W), got shape "
                f"{tuple(x.shape)}",
            )  # fmt: skip
        height, width = x.shape[-2:]
        if self.aug_type == "patch" and min(height, width) < self.patch_len:
            raise ParameterError(
                "patch_len", f"deyo cuts each image into {self.patch_len} x {self.patch_len} "
                f"patches: images of {height} x {width} pixels are too small",
            )  # fmt: skip
        if self.aug_type == "pixel" and height != width and self.variant == "reference":
            raise ParameterError(
                "variant", f"the authors' pixel shuffle takes square images, not {height} x "
                f"{width}: use variant=corrected",
            )  # fmt: skip
        if self.aug_type == "occ":
            rows = range(height)[self.row_start : self.row_start + self.occlusion_size]
            cols = range(width)[self.column_start : self.column_start + self.occlusion_size]
            if len(rows) != self.occlusion_size or len(cols) != self.occlusion_size:
                raise ParameterError(
                    "occlusion_size", f"the {self.occlusion_size}-pixel occlusion at row "
                    f"{self.row_start}, column {self.column_start} does not fit in images of "
                    f"{height} x {width}",
                )  # fmt: skip

    def _shuffled(self, x_prime: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The authors' augmentation of the kept images ``x_prime`` (``x``: the batch)."""
        if self.aug_type == "occ":
            first_mean = x_prime.view(x_prime.shape[0], x_prime.shape[1], -1).mean(dim=2)
            final_mean = first_mean.unsqueeze(-1).unsqueeze(-1)
            size, row, col = self.occlusion_size, self.row_start, self.column_start
            occlusion_window = final_mean.expand(-1, -1, size, size)
            x_prime[:, :, row : row + size, col : col + size] = occlusion_window
            return x_prime
        height, width = (x.shape[-1], x.shape[-1]) if self.variant == "reference" else x.shape[-2:]
        if self.aug_type == "patch":
            p = self.patch_len
            resize_t = torchvision.transforms.Resize(((height // p) * p, (width // p) * p))
            resize_o = torchvision.transforms.Resize((height, width))
            x_prime = patches_to_rows(resize_t(x_prime), p)
            perm_idx = torch.argsort(torch.rand(x_prime.shape[0], x_prime.shape[1]), dim=-1)
            x_prime = x_prime[torch.arange(x_prime.shape[0]).unsqueeze(-1), perm_idx]
            return resize_o(rows_to_patches(x_prime, p))
        b, c = x_prime.shape[:2]
        x_prime = x_prime.reshape(b, c, -1)
        x_prime = x_prime[:, :, torch.randperm(x_prime.shape[-1])]
        return x_prime.reshape(b, c, height, width)

    def _forward_and_adapt(self, x: torch.Tensor) -> torch.Tensor:
        outputs = self.model(x)
        self.optimizer.zero_grad()
        entropys = softmax_entropy(outputs)
        num_classes = scored_class_count(self.model, outputs.shape[1])
        margin = 0.5 * math.log(num_classes) if self.margin is None else self.margin
        margin_e0 = 0.4 * math.log(num_classes) if self.margin_e0 is None else self.margin_e0
        if self.filter_ent:
            filter_ids_1 = torch.where(entropys < margin)
        else:
            filter_ids_1 = torch.where(entropys <= math.log(1000))
        entropys = entropys[filter_ids_1]
        self.last_reliable = int(entropys.numel())
        self.last_loss, self.last_selected = math.nan, 0
        if self.last_reliable == 0:
            return outputs
        x_prime = x[filter_ids_1].detach()
        x_prime = self._shuffled(x_prime, x)
        with torch.no_grad():
            outputs_prime = self.model(x_prime)
        prob_outputs = outputs[filter_ids_1].softmax(1)
        prob_outputs_prime = outputs_prime.softmax(1)
        cls1 = prob_outputs.argmax(dim=1).reshape(-1, 1)
        plpd = torch.gather(prob_outputs, dim=1, index=cls1) - torch.gather(
            prob_outputs_prime, dim=1, index=cls1
        )
        plpd = plpd.reshape(-1)
        if self.filter_plpd:
            filter_ids_2 = torch.where(plpd > self.plpd_threshold)
        else:
            filter_ids_2 = torch.where(plpd >= -2.0)
        entropys = entropys[filter_ids_2]
        if len(entropys) == 0:
            return outputs
        plpd = plpd[filter_ids_2]
        if self.reweight_ent or self.reweight_plpd:
            weight_ent = 1 / torch.exp(entropys.clone().detach() - margin_e0)
            weight_plpd = 1 / torch.exp(-1.0 * plpd.clone().detach())
            coeff = int(self.reweight_ent) * weight_ent + int(self.reweight_plpd) * weight_plpd
            entropys = entropys.mul(coeff)
        loss = entropys.mean(0)
        self.last_loss, self.last_selected = float(loss.detach()), int(entropys.numel())
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()
        return outputs

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        use_batch_statistics(self.model)
        z = self.model.featurizer(x)
        return z, self.model.classifier(z)
