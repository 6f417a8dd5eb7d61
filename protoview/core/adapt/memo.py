"""MEMO (Zhang, Levine and Finn, NeurIPS 2022): marginal entropy over AugMix views of ONE image.

Ported from the authors' test-time scripts (github.com/zhangmarvin/memo, commit
228b2908d271c954ef8bf19cf143ede3b2fa8e3e: ``imagenet-exps/test_calls/test_adapt.py``,
``imagenet-exps/utils/adapt_helpers.py``, ``train_helpers.py`` (the BatchNorm prior),
``third_party.py`` (AugMix: :mod:`~protoview.core.adapt.augmix`), and the CIFAR-10 script;
oracles: ``tests/oracles/memo_reference.py`` and ``memo_reference_cifar.py``).

MEMO adapts on one test image at a time; a protoview batch of N images is N of the authors'
iterations, in order, each: back to the source weights; ``steps`` times (``niter``):
``n_augmentations`` AugMix views of the image (64, the ImageNet script; CIFAR-10: 32), one
SGD step (lr 0.00025, no momentum; CIFAR-10: 0.005) on *every* parameter, minimising the
entropy of the views' averaged softmax (their ``marginal_entropy``); then the prediction:
the adapted model on the image itself. The step's online logits are those N predictions;
after the step the model holds the source weights again (the authors load them before the
next image), so the prediction mode (``predict``, the map) is the source model, each image
alone. Batch size 1 works.

The model is in eval mode throughout. BatchNorm2d layers normalise with the authors' prior
(``prior_strength`` 16, their ImageNet default): ``16/17`` of the running statistics plus
``1/17`` of the batch's own (mean and unbiased variance; the views' batch while adapting,
the single image when predicting); ``prior_strength=-1``: running statistics only.

AugMix works on PIL images, as the authors' datasets give them: each normalised image goes
back to pixels (``pixels``: the dataset's normalisation undone) and to uint8 (see
:func:`~protoview.core.adapt.augmix.to_pil`: exact for data that came from uint8 images),
is augmented with the authors' numpy / torch random draws, and each view goes back through
``ToTensor`` and the dataset's normalisation (the authors' ``preprocess``). ``crop``:
``resized`` (RandomResizedCrop, ImageNet script) or ``padded`` (RandomCrop with 4 pixels of
padding, CIFAR-10 script), each then a horizontal flip. It needs images with 1 or 3
channels whose pixels lie in [0, 1]: a batch outside is refused with one line (tell
protoview how the data were normalised: ``--preprocess``).

``reference`` reproduces the authors' code; ``corrected`` fixes two flaws: AugMix's
rotations, shears and translations fill RGB images with ``fillcolor=128``, which PIL takes
as the colour (128, 0, 0) (``corrected``: grey), and with ``optimizer=adamw`` (their RVT /
ResNeXt runs: lr 1e-5, weight decay 0.01) the optimiser is made once, so AdamW's moments
and step count carry over from image to image while the weights are reset (``corrected``:
a fresh optimiser for every image). With SGD (no momentum) there is no such state.

Where the toolkit (mariodoebler/test-time-adaptation 8b2ed63, ``methods/memo.py``) differs
from the authors: its BatchNorm mixes ``0.9`` of the running and ``0.1`` of the batch
statistics (``BN.ALPHA``; the authors' prior weighs the batch ``1/17``); its SGD has
momentum 0.9 with Nesterov (its defaults), so its one step per image moves 1.9 times as far;
it updates only parameters named ``weight`` / ``bias``; its AugMix (google-research's ops)
fills with black and lists the operations in another order (``posterize`` third), and
crops the original image before ``Resize`` / ``CenterCrop`` rather than the test image;
its views come from the data loader, not from the test batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms as transforms
from torch import nn

from protoview.core.adapt.augmix import CROPS, augmix, fill_colour, preaugment, to_pil
from protoview.core.adapt.base import Adapter, train_only
from protoview.core.adapt.params import LR, STEPS, VARIANT, Param, checked, with_default
from protoview.errors import ParameterError

OPTIMIZERS = ("sgd", "adamw")


def marginal_entropy(outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The authors' loss: entropy of the mean softmax over the views (N, C) -> (), (C,)."""
    logits = outputs - outputs.logsumexp(dim=-1, keepdim=True)
    avg_logits = logits.logsumexp(dim=0) - np.log(logits.shape[0])
    min_real = torch.finfo(avg_logits.dtype).min
    avg_logits = torch.clamp(avg_logits, min=min_real)
    return -(avg_logits * torch.exp(avg_logits)).sum(dim=-1), avg_logits


def _prior_forward(layer: nn.BatchNorm2d, prior: float):
    """The authors' ``_modified_bn_forward`` (from bethgelab/robustness) for one layer."""

    def forward(input: torch.Tensor) -> torch.Tensor:
        est_mean = torch.zeros(layer.running_mean.shape, device=layer.running_mean.device)
        est_var = torch.ones(layer.running_var.shape, device=layer.running_var.device)
        F.batch_norm(input, est_mean, est_var, None, None, True, 1.0, layer.eps)
        running_mean = prior * layer.running_mean + (1 - prior) * est_mean
        running_var = prior * layer.running_var + (1 - prior) * est_var
        return F.batch_norm(
            input, running_mean, running_var, layer.weight, layer.bias, False, 0, layer.eps
        )

    return forward


@contextlib.contextmanager
def batchnorm_prior(model: nn.Module, prior: float | None) -> Iterator[None]:
    """Every BatchNorm2d of ``model`` normalises with the prior while inside (None: as is)."""
    layers = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    layers = [m for m in layers if m.running_mean is not None] if prior is not None else []
    for layer in layers:
        layer.forward = _prior_forward(layer, prior)
    try:
        yield
    finally:
        for layer in layers:
            del layer.forward


class MEMO(Adapter):
    """MEMO, one image at a time (see the module docstring)."""

    method = "memo"
    batch_statistics = False  # one image at a time, BatchNorm on its prior-weighted statistics
    per_sample_predictions = True  # each image predicted alone by the source model
    summary = (
        "marginal entropy over AugMix views of one test image, reset after each (Zhang, "
        "Levine and Finn, NeurIPS 2022), equal to the authors' code (zhangmarvin/memo 228b290)"
    )
    params = (
        with_default(LR, 0.00025, help="the optimiser's learning rate (the authors' ImageNet "
                     "0.00025; CIFAR-10 0.005; AdamW runs 1e-5)"),
        Param("n_augmentations", 64, "AugMix views per image (the authors' ImageNet 64; "
              "CIFAR-10 32)", kind="int", low=1, window=True, window_range=(1, 512)),
        Param("prior_strength", 16, "BatchNorm prior N: N/(N+1) running + 1/(N+1) batch "
              "statistics", kind="int", low=0, special=((-1, "running statistics only"),)),
        Param("crop", "resized", "AugMix's crop: resized (ImageNet script) or padded "
              "(CIFAR-10 script)", kind="choice", choices=CROPS),
        Param("optimizer", "sgd", "sgd (no momentum) or adamw", kind="choice",
              choices=OPTIMIZERS),
        Param("weight_decay", 0.0, "the optimiser's weight decay (AdamW runs: 0.01)", low=0.0),
        STEPS,
        VARIANT,
    )  # fmt: skip

    def __init__(
        self,
        model: nn.Module,
        lr: float = 0.00025,
        n_augmentations: int = 64,
        prior_strength: int = 16,
        crop: str = "resized",
        optimizer: str = "sgd",
        weight_decay: float = 0.0,
        steps: int = 1,
        variant: str = "reference",
    ) -> None:
        super().__init__(model)
        (
            self.lr, self.n_augmentations, self.prior_strength, self.crop, self.optimizer_name,
            self.weight_decay, self.steps, self.variant,
        ) = checked(
            self.params, lr=lr, n_augmentations=n_augmentations, prior_strength=prior_strength,
            crop=crop, optimizer=optimizer, weight_decay=weight_decay, steps=steps,
            variant=variant,
        )  # fmt: skip
        named = list(self.model.named_parameters())
        if not named:
            raise ParameterError("method", "'memo' updates the model's parameters: it has none")
        self.updated_parameter_names = tuple(name for name, _ in named)
        self._params = [p for _, p in named]
        self.optimizer = self._build_optimizer()
        self._to_tensor = transforms.ToTensor()
        self._step_features: torch.Tensor | None = None

    @property
    def prior(self) -> float | None:
        """The running statistics' weight in BatchNorm2d (None: no prior, plain eval mode)."""
        if self.prior_strength < 0:
            return None
        return float(self.prior_strength) / float(self.prior_strength + 1)

    def _build_optimizer(self) -> torch.optim.Optimizer:
        if self.optimizer_name == "adamw":
            return torch.optim.AdamW(self._params, lr=self.lr, weight_decay=self.weight_decay)
        return torch.optim.SGD(self._params, lr=self.lr, weight_decay=self.weight_decay)

    # ---- the step -----------------------------------------------------------------------------
    def step(self, x: torch.Tensor) -> torch.Tensor:
        logits = super().step(x)
        self.last_features = self._step_features
        return logits

    def _adapt(self, x: torch.Tensor) -> torch.Tensor:
        self._check_images(x)
        self.model.eval()
        train_only(self.model, self._params)
        outputs, features = [], []
        for image in x:
            self._adapt_one(image)
            z, logits = self._predict_one(image)
            outputs.append(logits)
            features.append(z)
            self._back_to_source()
        self._step_features = torch.cat(features).flatten(1).float()
        return torch.cat(outputs)

    def _views(self, image: torch.Tensor) -> torch.Tensor:
        """``n_augmentations`` AugMix views of one normalised image, normalised (B, C, H, W)."""
        pil = to_pil(self.pixels.to_pixels(image[None])[0])
        fill = fill_colour(pil.mode, corrected=self.variant == "corrected")
        pre = preaugment(self.crop, tuple(image.shape[-2:]))

        def preprocess(img) -> torch.Tensor:
            return self.pixels.from_pixels(self._to_tensor(img)[None])[0]

        views = [augmix(pil, pre, preprocess, fill) for _ in range(self.n_augmentations)]
        return torch.stack(views).to(self.device)

    def _adapt_one(self, image: torch.Tensor) -> None:
        """The authors' ``adapt_single``."""
        with batchnorm_prior(self.model, self.prior):
            for _ in range(self.steps):
                inputs = self._views(image)
                self.optimizer.zero_grad()
                outputs = self.model(inputs)
                loss, _ = marginal_entropy(outputs)
                loss.backward()
                self.optimizer.step()
        self.last_loss = float(loss.detach())

    @torch.no_grad()
    def _predict_one(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The authors' ``test_single``: the image alone, BatchNorm with the prior."""
        with batchnorm_prior(self.model, self.prior):
            z = self.model.featurizer(image[None])
            return z, self.model.classifier(z)

    def _back_to_source(self) -> None:
        """The authors' ``net.load_state_dict(ckpt)`` before the next image; ``corrected``
        also starts every image with a fresh optimiser (``reference`` keeps AdamW's state)."""
        self.model.load_state_dict(self._source_state)
        if self.variant == "corrected":
            self.optimizer = self._build_optimizer()

    def _check_images(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ParameterError(
                "batch", "memo augments images with AugMix: it needs a batch (N, C, H, W) with "
                f"1 or 3 channels, got shape {tuple(x.shape)}",
            )  # fmt: skip
        pixels = self.pixels.to_pixels(x)
        low, high = float(pixels.min()), float(pixels.max())
        if low < -1e-3 or high > 1 + 1e-3:
            raise ParameterError(
                "batch", f"memo augments images: the batch's pixels lie in [{low:.3g}, "
                f"{high:.3g}], not [0, 1] ({self.pixels.describe()}); say how the data were "
                "normalised (--preprocess)",
            )  # fmt: skip

    # ---- prediction mode: the source model, each image alone ---------------------------------
    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.model.eval()
        pairs = [self._predict_one(image) for image in x]
        z = torch.cat([p[0] for p in pairs])
        return z, torch.cat([p[1] for p in pairs])
