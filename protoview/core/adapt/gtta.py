"""GTTA (Marsden, Döbler & Yang, 2022): gradual test-time adaptation by self-training and
mixing source images into the test domain (GTTA-MIX).

Ported from the toolkit its authors released it in (github.com/mariodoebler/test-time-adaptation,
commit 8b2ed63, ``classification/methods/gtta.py``, ``conf.py``'s ``_C.GTTA``,
``cfgs/*/gtta.yaml``; oracle: ``tests/oracles/gtta_reference.py``). Every weight and bias of
the model is adapted (Adam, lr 1e-5, beta 0.9, as every ``gtta.yaml`` sets it), the whole
model in train mode with BatchNorm on the batch's statistics. It needs **labelled source
data** (``--source-data``): shuffled source batches of the test batch size, as the toolkit's
``get_source_loader`` gives them. Each update on a test batch:

1. the model's predictions on the batch (no gradient) give **pseudo-labels**; a sample keeps
   its label when its confidence (max softmax) reaches ``sqrt(avg_conf)``, the others are
   ignored; ``avg_conf`` (0.9 at first) follows the batch's mean confidence with momentum
   0.9 (computed on the first of the ``steps`` updates of a batch, reused by the others);
2. **mixup**: the next source batch (cut to the test batch's size); each source image is
   paired with the test image whose softmax is most similar to its own (the largest dot
   product of the two probability vectors) and mixed, ``lambda_mixup * test + (1 -
   lambda_mixup) * source``; one Adam step on the cross-entropy of the mixed images with
   the source labels;
3. one Adam step on the cross-entropy of the test batch with the kept pseudo-labels.

The prediction is the logits of step 3's forward (after the source step, before the target
step), as the toolkit's code returns them; the map shows those features.

Not ported: the style-transfer variant (``USE_STYLE_TRANSFER = True``, the toolkit's setting in
its ImageNet, CCC and DomainNet-126 configs): an AdaIN network built on a VGG-19 encoder (the
file ``vgg_normalized.pth``, ImageNet-trained) whose decoder is pre-trained for 20,000 steps on
the source data, then trained further on each batch's moments, making style-transferred
source images instead of the mixup. The released ``__init__`` of that variant reads an
undefined ``dataset_name`` and fails before adapting; protoview runs GTTA-MIX only (the
toolkit's default ``USE_STYLE_TRANSFER = False`` and its CIFAR configs).

Differences from the released code, none changing a number: the mixup is taken on the
normalised batches (the toolkit mixes pixels, normalisation inside its model; the mix is
affine, so the two agree up to rounding, and exactly for an identity normalisation). When
every pseudo-label is ignored the target loss is the mean over nothing (``NaN``, zero
gradients: Adam still steps along its moments), as released; ``last_selected`` is then 0
and the run's divergence guard lets it pass. The method's own ``episodic`` is the released
reset: source weights and a fresh Adam, the running confidence ``avg_conf`` kept (the toolkit
never resets it); a run's reset (a new run, the ``episodic`` stream, ``reset_each_shift``)
starts it fresh, ``avg_conf`` at 0.9 again, where the toolkit's ``reset_each_shift`` keeps
it. The source batches continue where they were after a reset or a restored snapshot (the
loader's position is not part of a snapshot). The toolkit's single-sample sliding window is
not ported (a model with BatchNorm refuses batches of one).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from protoview.core.adapt._toolkit import SourceBatches, weights_and_biases
from protoview.core.adapt.base import Adapter, use_batch_statistics
from protoview.core.adapt.params import EPISODIC, LR, STEPS, Param, checked, with_default

#: The toolkit's ``ignore_label`` of a filtered pseudo-label.
IGNORE = -1


class GTTA(Adapter):
    """GTTA-MIX (see the module docstring)."""

    method = "gtta"
    summary = (
        "self-training on confident pseudo-labels plus source images mixed with their most "
        "similar test images (Marsden et al., arXiv 2022; GTTA-MIX), equal to the authors' code "
        "(mariodoebler/test-time-adaptation 8b2ed63); needs --source-data"
    )
    needs_source = "labelled source data (mixed with the test images and learned with their labels)"
    batch_statistics = True
    params = (
        with_default(LR, 1e-5, help="Adam's learning rate (the authors' 1e-5)"),
        Param("lambda_mixup", 1 / 3, "share of the test image in a mixed source image",
              low=0.0, high=1.0),
        STEPS,
        EPISODIC,
    )  # fmt: skip

    def __init__(
        self,
        model: nn.Module,
        lr: float = 1e-5,
        lambda_mixup: float = 1 / 3,
        steps: int = 1,
        episodic: bool = False,
    ) -> None:
        super().__init__(model)
        self.lr, self.lambda_mixup, self.steps, self.episodic = checked(
            self.params, lr=lr, lambda_mixup=lambda_mixup, steps=steps, episodic=episodic
        )
        named = weights_and_biases(self.model, self.method)
        self.updated_parameter_names = tuple(name for name, _ in named)
        self._params = [p for _, p in named]
        self.optimizer = self._build_optimizer()
        self._source: SourceBatches | None = None
        self._clear_run_state()

    def _build_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self._params, lr=self.lr, betas=(0.9, 0.999), weight_decay=0.0)

    def _clear_run_state(self) -> None:
        self.avg_conf = torch.tensor(0.9).to(self.device)
        self.counter = 0
        self.filtered_pseudos: torch.Tensor | None = None

    def _configure(self) -> None:
        """The authors' ``configure_model``: train mode, BatchNorm on batch statistics,
        gradients for every parameter."""
        use_batch_statistics(self.model, whole_model_training=True)
        self.model.requires_grad_(True)

    # ---- source data -------------------------------------------------------------------------
    def use_source(self, loader: Any) -> None:
        """Keep the source batches (the authors' ``src_loader``)."""
        self._source = SourceBatches(loader)

    # ---- reset and snapshots -----------------------------------------------------------------
    def reset(self) -> None:
        """Source weights, a fresh Adam and ``avg_conf`` at 0.9 (a fresh start)."""
        super().reset()
        self._clear_run_state()

    def _extra_state(self) -> dict[str, Any]:
        return {"avg_conf": self.avg_conf, "counter": self.counter,
                "filtered_pseudos": self.filtered_pseudos}  # fmt: skip

    def _load_extra_state(self, extra: dict[str, Any] | None) -> None:
        assert extra is not None
        self.avg_conf, self.counter = extra["avg_conf"], extra["counter"]
        self.filtered_pseudos = extra["filtered_pseudos"]

    # ---- adaptation --------------------------------------------------------------------------
    def _adapt(self, x: torch.Tensor) -> torch.Tensor:
        if self._source is None:
            raise self.missing_source_data()
        if self.episodic:  # the released reset: weights and optimizer, avg_conf kept
            self._restore_source()
        self._configure()
        outputs = x.new_empty(0)
        for _ in range(self.steps):
            outputs = self._forward_and_adapt(x)
        return outputs.detach()

    def _forward_and_adapt(self, imgs_test: torch.Tensor) -> torch.Tensor:
        """The authors' ``forward_and_adapt`` (GTTA-MIX)."""
        with torch.no_grad():
            outputs_test = self.model(imgs_test)
        if self.counter == 0:
            self.filtered_pseudos = self._pseudo_labels(outputs_test)
        assert self.filtered_pseudos is not None
        assert self._source is not None
        with torch.no_grad():
            imgs_src, labels_src = self._source.next(self.device)
            labels_src = labels_src.to(self.device).long()
            batch_size = imgs_test.shape[0]
            imgs_src, labels_src = imgs_src[:batch_size], labels_src[:batch_size]
            outputs_src = self.model(imgs_src)
            _, ids = torch.max(outputs_src.softmax(1) @ outputs_test.softmax(1).T, dim=1)
            lam = self.lambda_mixup
            imgs_src = lam * imgs_test[ids] + (1 - lam) * imgs_src

        loss_source = F.cross_entropy(self.model(imgs_src), labels_src)
        loss_source.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()

        outputs_test = self.model(imgs_test)
        loss_target = F.cross_entropy(outputs_test, self.filtered_pseudos, ignore_index=IGNORE)
        loss_target.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()

        self.last_loss = float(loss_source.detach() + loss_target.detach())
        self.last_selected = int((self.filtered_pseudos != IGNORE).sum())
        self.counter = (self.counter + 1) % self.steps
        return outputs_test

    @torch.no_grad()
    def _pseudo_labels(self, outputs_test: torch.Tensor) -> torch.Tensor:
        """The authors' ``create_pseudo_labels``."""
        confidences, pseudo_labels = torch.max(outputs_test.softmax(dim=1), dim=1)
        momentum = 0.9
        self.avg_conf = momentum * self.avg_conf + (1 - momentum) * confidences.mean()
        filtered = pseudo_labels.clone()
        filtered[confidences < torch.sqrt(self.avg_conf)] = IGNORE
        return filtered

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        use_batch_statistics(self.model, whole_model_training=True)
        z = self.model.featurizer(x)
        return z, self.model.classifier(z)
