"""GTTA (Marsden, Döbler & Yang, 2022): gradual test-time adaptation by self-training and
mixing source images into the test domain (GTTA-MIX) or giving them its style (GTTA-ST).

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
step), as the toolkit's code returns them; the map shows those features. Oracles:
``tests/oracles/gtta_reference.py`` (and ``toolkit_style_transfer.py`` for GTTA-ST); tests:
``tests/test_gtta.py``, ``tests/test_gtta_style.py``.

**GTTA-ST** (``style_transfer=True``, the toolkit's ``USE_STYLE_TRANSFER``, set in its
ImageNet, CCC and DomainNet-126 configs): instead of the mixup, the source batch is given the
styles of the newest test images by an AdaIN network (:mod:`._style_transfer`, the toolkit's
``models/style_transfer.py``): a frozen VGG-19 encoder up to relu4_1 and a trained decoder,
AdaIN at relu1_2 (a skip connection) and relu4_1. The user supplies two files:

- ``vgg_weights``: AdaIN's ImageNet-trained VGG-19 (the toolkit's ``vgg_normalized.pth``, the
  ``state_dict`` of its ``vggnet``; pytorch-AdaIN's ``vgg_normalised.pth`` is taken too, its
  convolutions in order). Missing, unreadable or of another layout: one line naming
  ``vgg_weights`` and the file;
- ``decoder``: loaded when it exists; else, when the source data arrive, the decoder is
  pre-trained on them for ``pretrain_steps`` Adam steps (lr 1e-4; the toolkit's
  ``PRETRAIN_STEPS_ADAIN`` 20,000) with random source styles (the moments of up to 100,000
  source images; ``torch.randint`` from the global generator, as released), saved there as
  ``{"decoder": state_dict}`` and loaded back, as the toolkit does.

On the first of the ``steps`` updates of a test batch, its images' AdaIN moments join a
buffer (the newest 100,000 kept) and the decoder takes ``steps_adain`` Adam steps (the
toolkit's ``STEPS_ADAIN``, 1) on source batches styled like the newest test images (content
loss + 0.1 x style loss); then the next source batch, styled, is the source step's input
(source image ``i`` takes the style of the ``i``-th newest test image). The encoder and
decoder work on pixels in [0, 1]: a normalised batch goes back to pixels with the dataset's
preprocessing (:attr:`~.base.Adapter.pixels`) and the decoder's output is normalised again
(the identity for ``--preprocess none``, as the oracle test runs it). Images must be RGB with
sides multiples of 8 (one line naming ``style_transfer`` otherwise).

``variant="reference"`` is the toolkit's code with only what keeps it from running here
changed: its ``__init__`` reads an undefined ``dataset_name`` to name the decoder file
(``NameError``; here the file is the ``decoder`` parameter, the toolkit's
``CKPT_DIR/adain/decoder_<dataset>.pth``), and its ``.cuda()``, ``map_location="cuda"`` and
``device="cuda"`` (the decoder's load, the moment buffers, ``reset``) are the model's device.
Two flaws are kept there and fixed by ``variant="corrected"``: the method's ``episodic`` reset
restores the decoder's weights but not its Adam (``opt_adain_dec`` is outside the saved
state, so the restored decoder is stepped with the moments of earlier batches); and the
style-transfer branch does not cut the source batch to the test batch's size (the mixup
branch does), so with a test batch shorter than the source batch the extra source images
take the styles of the previous batch's images, and on a first batch (nothing before it) the
released index runs out of the buffer: ``reference`` refuses that in one line naming
``variant``. A run's reset (a new run, the ``episodic`` stream, ``reset_each_shift``) gives
both variants the decoder as pre-trained, empty buffers and a fresh decoder Adam. The
networks are built per adapter (the toolkit's are module-level objects shared by every
``TransferNet`` of a process, so two GTTA-ST instances there train one decoder). A snapshot
holds the decoder, its Adam and the moment buffers (shared, never changed in place).

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

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from protoview.core.adapt import _style_transfer as st
from protoview.core.adapt._toolkit import SourceBatches, weights_and_biases
from protoview.core.adapt.base import Adapter, use_batch_statistics
from protoview.core.adapt.params import (
    EPISODIC,
    LR,
    STEPS,
    VARIANT,
    Param,
    checked,
    with_default,
)
from protoview.errors import ParameterError

#: The toolkit's ``ignore_label`` of a filtered pseudo-label.
IGNORE = -1
#: The toolkit's ``buffer_size``: the test images whose AdaIN moments are kept.
MOMENT_BUFFER = 100_000


class _Shared:
    """A value a snapshot shares instead of copying (the moment buffers: replaced, never
    changed in place, and up to 100,000 images' moments)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __deepcopy__(self, memo: dict[int, Any]) -> _Shared:
        return self


class GTTA(Adapter):
    """GTTA-MIX (see the module docstring)."""

    method = "gtta"
    summary = (
        "self-training on confident pseudo-labels plus source images mixed with their most "
        "similar test images (GTTA-MIX) or given their styles by AdaIN (GTTA-ST: style_transfer, "
        "a VGG-19 file) (Marsden et al., arXiv 2022), equal to the authors' code "
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
        Param("style_transfer", False, "GTTA-ST: AdaIN style-transferred source images instead "
              "of the mixup (needs vgg_weights and decoder)", kind="bool", window=True),
        Param("vgg_weights", None, "AdaIN's VGG-19 encoder weights (vgg_normalised.pth) for "
              "style_transfer", kind="text", optional=True, window=True),
        Param("decoder", None, "the style transfer's decoder file: loaded when it exists, else "
              "pre-trained on the source data (pretrain_steps) and saved there", kind="text",
              optional=True, window=True),
        Param("pretrain_steps", 20000, "the decoder's pre-training steps when its file is "
              "absent (PRETRAIN_STEPS_ADAIN)", kind="int", low=0),
        Param("steps_adain", 1, "decoder updates on source batches per test batch, styled "
              "like it (STEPS_ADAIN)", kind="int", low=0),
        with_default(VARIANT, "reference", window=False,
                     help="with style_transfer: reference = the toolkit's code, corrected = the "
                     "decoder's Adam reset by episodic and source batches cut to the test "
                     "batch's size"),
    )  # fmt: skip

    def __init__(
        self,
        model: nn.Module,
        lr: float = 1e-5,
        lambda_mixup: float = 1 / 3,
        steps: int = 1,
        episodic: bool = False,
        style_transfer: bool = False,
        vgg_weights: str | None = None,
        decoder: str | None = None,
        pretrain_steps: int = 20000,
        steps_adain: int = 1,
        variant: str = "reference",
    ) -> None:
        super().__init__(model)
        self.lr, self.lambda_mixup, self.steps, self.episodic = checked(
            self.params, lr=lr, lambda_mixup=lambda_mixup, steps=steps, episodic=episodic
        )
        (self.style_transfer, self.vgg_weights, self.decoder_path, self.pretrain_steps,
         self.steps_adain, self.variant) = checked(
            self.params, style_transfer=style_transfer, vgg_weights=vgg_weights,
            decoder=decoder, pretrain_steps=pretrain_steps, steps_adain=steps_adain,
            variant=variant)  # fmt: skip
        named = weights_and_biases(self.model, self.method)
        self.updated_parameter_names = tuple(name for name, _ in named)
        self._params = [p for _, p in named]
        self.optimizer = self._build_optimizer()
        self._source: SourceBatches | None = None
        #: The style transfer (``style_transfer``): the AdaIN network, its decoder's Adam, the
        #: decoder as pre-trained or loaded (what a reset goes back to), the moment buffers.
        self.transfer: st.TransferNet | None = None
        self.transfer_optimizer: torch.optim.Optimizer | None = None
        self._transfer_source: dict[str, torch.Tensor] | None = None
        self.moments: st.Moments | None = None
        if self.style_transfer:
            self._build_transfer()
        self._clear_run_state()

    def _build_transfer(self) -> None:
        """The toolkit's ``TransferNet`` construction, less the pre-training (which needs the
        source data: :meth:`use_source`)."""
        if self.vgg_weights is None:
            raise ParameterError("vgg_weights", "style_transfer needs AdaIN's VGG-19 encoder "
                                 "weights: --param vgg_weights=PATH (vgg_normalised.pth)")
        if self.decoder_path is None:
            raise ParameterError("decoder", "style_transfer needs a decoder file: --param "
                                 "decoder=PATH (loaded when it exists, else pre-trained on the "
                                 "source data and saved there)")
        path = Path(self.decoder_path).expanduser()
        if not path.is_file() and not path.parent.is_dir():
            raise ParameterError("decoder", f"{path}: no such file, and its folder "
                                 f"{path.parent} does not exist to save a pre-trained one in")
        decoder = st.build_decoder()  # random initial weights, as the toolkit's module-level one
        encoder = st.load_encoder(self.vgg_weights, "vgg_weights")
        self.transfer = st.TransferNet(encoder, decoder).to(self.device)
        if path.is_file():
            st.load_decoder(self.transfer.decoder, str(path), self.device, "decoder")
            self._transfer_ready()

    def _transfer_ready(self) -> None:
        assert self.transfer is not None
        self._transfer_source = {k: v.clone() for k, v in self.transfer.state_dict().items()}
        self.transfer_optimizer = self.transfer.new_optimizer()

    def _build_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self._params, lr=self.lr, betas=(0.9, 0.999), weight_decay=0.0)

    def _clear_run_state(self) -> None:
        self.avg_conf = torch.tensor(0.9).to(self.device)
        self.counter = 0
        self.filtered_pseudos: torch.Tensor | None = None
        if self.transfer is not None:
            self._restore_transfer(fresh_optimizer=True)

    def _restore_transfer(self, fresh_optimizer: bool) -> None:
        """The toolkit's reset of the style transfer: the decoder as pre-trained (or loaded),
        empty moment buffers; a fresh decoder Adam when ``fresh_optimizer``."""
        assert self.transfer is not None
        if self._transfer_source is not None:
            self.transfer.load_state_dict(self._transfer_source)
            if fresh_optimizer:
                self.transfer_optimizer = self.transfer.new_optimizer()
        self.moments = st.empty_moments(self.device)

    def _configure(self) -> None:
        """The authors' ``configure_model``: train mode, BatchNorm on batch statistics,
        gradients for every parameter."""
        use_batch_statistics(self.model, whole_model_training=True)
        self.model.requires_grad_(True)

    # ---- source data -------------------------------------------------------------------------
    def use_source(self, loader: Any) -> None:
        """Keep the source batches (the authors' ``src_loader``); with ``style_transfer`` and
        no decoder file yet, pre-train the decoder on them and save it (the toolkit's
        ``TransferNet.__init__``)."""
        self._source = SourceBatches(loader)
        if self.transfer is None or self._transfer_source is not None:
            return
        assert self.decoder_path is not None
        data_iter = iter(loader)  # TransferNet's data_loader_iter, taken before the pre-training
        self.transfer.pretrain(loader, data_iter, self.pretrain_steps, self.pixels, self.device)
        path = str(Path(self.decoder_path).expanduser())
        st.save_decoder(self.transfer.decoder, path)
        st.load_decoder(self.transfer.decoder, path, self.device, "decoder")
        self._transfer_ready()

    # ---- reset and snapshots -----------------------------------------------------------------
    def reset(self) -> None:
        """Source weights, a fresh Adam and ``avg_conf`` at 0.9 (a fresh start)."""
        super().reset()
        self._clear_run_state()

    def _extra_state(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"avg_conf": self.avg_conf, "counter": self.counter,
                                 "filtered_pseudos": self.filtered_pseudos}  # fmt: skip
        if self.transfer is not None:
            optimizer = self.transfer_optimizer
            extra["decoder"] = self.transfer.decoder.state_dict()
            extra["moments"] = _Shared(self.moments)
            extra["decoder_optimizer"] = None if optimizer is None else optimizer.state_dict()
        return extra

    def _load_extra_state(self, extra: dict[str, Any] | None) -> None:
        assert extra is not None
        self.avg_conf, self.counter = extra["avg_conf"], extra["counter"]
        self.filtered_pseudos = extra["filtered_pseudos"]
        if self.transfer is not None:
            self.transfer.decoder.load_state_dict(extra["decoder"])
            self.moments = extra["moments"].value
            if self.transfer_optimizer is not None and extra["decoder_optimizer"] is not None:
                self.transfer_optimizer.load_state_dict(extra["decoder_optimizer"])

    def state_bytes(self) -> int:
        """The model's bytes, and with the style transfer its decoder's (weights and Adam)."""
        total = super().state_bytes()
        if self.transfer is not None:
            decoder = sum(p.numel() * p.element_size() for p in self.transfer.decoder.parameters())
            total += 3 * decoder
        return total

    # ---- adaptation --------------------------------------------------------------------------
    def _adapt(self, x: torch.Tensor) -> torch.Tensor:
        if self._source is None:
            raise self.missing_source_data()
        if self.style_transfer:
            st.check_images(x)
        if self.episodic:  # the released reset: weights and optimizer, avg_conf kept
            self._restore_source()
            if self.transfer is not None:  # the decoder's Adam kept, as released
                self._restore_transfer(fresh_optimizer=self.variant == "corrected")
        self._configure()
        outputs = x.new_empty(0)
        for _ in range(self.steps):
            outputs = self._forward_and_adapt(x)
        return outputs.detach()

    def _forward_and_adapt(self, imgs_test: torch.Tensor) -> torch.Tensor:
        """The authors' ``forward_and_adapt`` (GTTA-MIX)."""
        with torch.no_grad():
            outputs_test = self.model(imgs_test)
        assert self._source is not None
        if self.counter == 0:
            self.filtered_pseudos = self._pseudo_labels(outputs_test)
            if self.transfer is not None:
                self._train_decoder(imgs_test)
        assert self.filtered_pseudos is not None
        with torch.no_grad():
            imgs_src, labels_src = self._source.next(self.device)
            labels_src = labels_src.to(self.device).long()
            batch_size = imgs_test.shape[0]
            if self.transfer is not None:
                if self.variant == "corrected":  # each source image styled by a test image
                    imgs_src, labels_src = imgs_src[:batch_size], labels_src[:batch_size]
                imgs_src = self._styled(imgs_src)
            else:
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

    def _train_decoder(self, imgs_test: torch.Tensor) -> None:
        """The toolkit's style-transfer part of ``forward_and_adapt``: the test batch's
        moments into the buffers, then ``steps_adain`` decoder updates on source batches
        styled like the newest test images."""
        assert self.transfer is not None and self.transfer_optimizer is not None
        assert self._source is not None and self.moments is not None
        self.transfer.train()
        with torch.no_grad():
            new = self.transfer(self.pixels.to_pixels(imgs_test))
        self.moments = st.append_moments(self.moments, new, cap=MOMENT_BUFFER)
        for _ in range(self.steps_adain):
            imgs_src, _ = self._source.next(self.device)
            if self.variant == "corrected":
                imgs_src = imgs_src[: imgs_test.shape[0]]
            pixels = self._source_pixels(imgs_src)
            self.transfer_optimizer.zero_grad()
            _, loss_content, loss_style = self.transfer(pixels, moments_list=self.moments)
            loss_adain = 1.0 * loss_content + 0.1 * loss_style
            loss_adain.backward()
            self.transfer_optimizer.step()

    def _source_pixels(self, imgs_src: torch.Tensor) -> torch.Tensor:
        """A source batch's pixels; ``reference`` refuses one with more images than the
        buffers hold (the released index runs out of them)."""
        assert self.moments is not None
        pixels = self.pixels.to_pixels(imgs_src)
        st.check_images(pixels)
        held = len(self.moments[0][0])
        if imgs_src.shape[0] > held:
            raise ParameterError(
                "variant", f"the reference style transfer gives the i-th source image the "
                f"style of the i-th newest test image and has {held} test images for "
                f"{imgs_src.shape[0]} source images (a first test batch shorter than the "
                "source batch); use --param variant=corrected")
        return pixels

    def _styled(self, imgs_src: torch.Tensor) -> torch.Tensor:
        """Source images in the newest test images' styles, as the model's input."""
        assert self.transfer is not None and self.moments is not None
        generated, _, _ = self.transfer(self._source_pixels(imgs_src), moments_list=self.moments)
        return self.pixels.from_pixels(generated)

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
