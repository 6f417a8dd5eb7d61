# ruff: noqa
"""The toolkit's CoTTA as a second test oracle.

Repository: github.com/mariodoebler/test-time-adaptation, commit
8b2ed63255d906b6b0afaefc6ae630b9ec4bdaa1. Files: ``classification/methods/base.py``
(``TTAMethod``, imported from ``tests/oracles/toolkit_base.py``, verbatim there),
``classification/utils/misc.py`` (``ema_update_model``) and
``classification/methods/cotta.py``, verbatim below in that order; the augmentations are
``classification/augmentations/transforms_cotta.py``, already ported in
``tests/oracles/toolkit_transforms_cotta.py`` and imported from there. ``build`` gives the
configuration its ``cfgs/cifar10_c/cotta.yaml`` values (and ``conf.py``'s defaults) unless
told otherwise.

Changed to run here, nothing else:
- the configuration object is a namespace built by ``make_cfg`` from arguments;
- ``@ADAPTATION_REGISTRY.register()`` dropped; imports of the toolkit's modules replaced by
  the inlined code;
- ``@torch.jit.script`` on the two entropies is applied with torch's deprecation warning
  silenced;
- ``build(..., img_size=...)`` sets ``transform`` to ``get_tta_transforms(img_size)``, the
  size the toolkit reads from a model's ``model_preprocess`` (the test models have none; it
  would take 32 for a CIFAR dataset name).
"""

import types
import warnings

from tests.oracles.toolkit_transforms_cotta import get_tta_transforms


def make_cfg(lr=1e-3, method="Adam", mt=0.999, rst=0.01, ap=0.92, n_augmentations=32,
             steps=1, episodic=False, dataset="cifar10_c"):
    ns = types.SimpleNamespace
    return ns(
        MODEL=ns(EPISODIC=episodic, RESET_AFTER_NUM_UPDATES=0),
        CORRUPTION=ns(DATASET=dataset),
        OPTIM=ns(STEPS=steps, LR=lr, METHOD=method, BETA=0.9, MOMENTUM=0.9, DAMPENING=0.0,
                 NESTEROV=True, WD=0.0),
        M_TEACHER=ns(MOMENTUM=mt),
        COTTA=ns(RST=rst, AP=ap),
        TEST=ns(N_AUGMENTATIONS=n_augmentations, WINDOW_LENGTH=1),
        MIXED_PRECISION=False,
    )


def build(model, num_classes=10, img_size=None, **options):
    method = CoTTA(make_cfg(**options), model, num_classes)
    if img_size is not None:  # what the toolkit reads from the model's preprocessing
        method.transform = get_tta_transforms(img_size)
    return method


# ---- classification/methods/base.py: verbatim in tests/oracles/toolkit_base.py ----
import logging
import torch
import torch.nn as nn
from torch.nn.utils.weight_norm import WeightNorm
from torchvision import transforms

from copy import deepcopy
from functools import wraps

from tests.oracles.toolkit_base import TTAMethod, forward_decorator

logger = logging.getLogger(__name__)


# ---- classification/utils/misc.py ----
def ema_update_model(model_to_update, model_to_merge, momentum, device, update_all=False):
    if momentum < 1.0:
        for param_to_update, param_to_merge in zip(model_to_update.parameters(), model_to_merge.parameters()):
            if param_to_update.requires_grad or update_all:
                param_to_update.data = momentum * param_to_update.data + (1 - momentum) * param_to_merge.data.to(device)
    return model_to_update


# ---- classification/methods/cotta.py ----
import torch
import torch.nn as nn
import torch.jit



class CoTTA(TTAMethod):
    def __init__(self, cfg, model, num_classes):
        super().__init__(cfg, model, num_classes)

        self.mt = cfg.M_TEACHER.MOMENTUM
        self.rst = cfg.COTTA.RST
        self.ap = cfg.COTTA.AP
        self.n_augmentations = cfg.TEST.N_AUGMENTATIONS

        # Setup EMA and anchor/source model
        self.model_ema = self.copy_model(self.model)
        for param in self.model_ema.parameters():
            param.detach_()

        self.model_anchor = self.copy_model(self.model)
        for param in self.model_anchor.parameters():
            param.detach_()

        # note: if the self.model is never reset, like for continual adaptation,
        # then skipping the state copy would save memory
        self.models = [self.model, self.model_ema, self.model_anchor]
        self.model_states, self.optimizer_state = self.copy_model_and_optimizer()

        self.softmax_entropy = softmax_entropy_cifar if "cifar" in self.dataset_name else softmax_entropy_imagenet
        self.transform = get_tta_transforms(self.img_size)

    def loss_calculation(self, x):
        imgs_test = x[0]
        outputs = self.model(imgs_test)

        # Create the prediction of the anchor (source) model
        anchor_prob = torch.nn.functional.softmax(self.model_anchor(imgs_test), dim=1).max(1)[0]

        # Augmentation-averaged Prediction
        ema_outputs = []
        if anchor_prob.mean(0) < self.ap:
            for _ in range(self.n_augmentations):
                outputs_ = self.model_ema(self.transform(imgs_test)).detach()
                ema_outputs.append(outputs_)

            # Threshold choice discussed in supplementary
            outputs_ema = torch.stack(ema_outputs).mean(0)
        else:
            # Create the prediction of the teacher model
            outputs_ema = self.model_ema(imgs_test)

        loss = self.softmax_entropy(outputs, outputs_ema).mean(0)
        return outputs_ema, loss

    @torch.enable_grad()
    def forward_and_adapt(self, x):
        if self.mixed_precision and self.device == "cuda":
            with torch.cuda.amp.autocast():
                outputs_ema, loss = self.loss_calculation(x)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad()
        else:
            outputs_ema, loss = self.loss_calculation(x)
            loss.backward()
            self.optimizer.step()
            self.optimizer.zero_grad()    

        # Teacher update
        self.model_ema = ema_update_model(
            model_to_update=self.model_ema,
            model_to_merge=self.model,
            momentum=self.mt,
            device=self.device,
            update_all=True
        )

        # Stochastic restore
        with torch.no_grad():
            if self.rst > 0.:
                for nm, m in self.model.named_modules():
                    for npp, p in m.named_parameters():
                        if npp in ['weight', 'bias'] and p.requires_grad:
                            mask = (torch.rand(p.shape) < self.rst).float().to(self.device)
                            p.data = self.model_states[0][f"{nm}.{npp}"] * mask + p * (1.-mask)
        return outputs_ema

    @torch.no_grad()
    def forward_sliding_window(self, x):
        """
        Create the prediction for single sample test-time adaptation with a sliding window
        :param x: The buffered data created with a sliding window
        :return: Model predictions
        """
        imgs_test = x[0]
        return self.model_ema(imgs_test)

    def configure_model(self):
        """Configure model."""
        # self.model.train()
        self.model.eval()  # eval mode to avoid stochastic depth in swin. test-time normalization is still applied
        # disable grad, to (re-)enable only what we update
        self.model.requires_grad_(False)
        # enable all trainable
        for m in self.model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.requires_grad_(True)
                # force use of batch stats in train and eval modes
                m.track_running_stats = False
                m.running_mean = None
                m.running_var = None
            elif isinstance(m, nn.BatchNorm1d):
                m.train()   # always forcing train mode in bn1d will cause problems for single sample tta
                m.requires_grad_(True)
            else:
                m.requires_grad_(True)


def _softmax_entropy_cifar(x, x_ema) -> torch.Tensor:
    return -(x_ema.softmax(1) * x.log_softmax(1)).sum(1)


def _softmax_entropy_imagenet(x, x_ema) -> torch.Tensor:
    return -0.5*(x_ema.softmax(1) * x.log_softmax(1)).sum(1)-0.5*(x.softmax(1) * x_ema.log_softmax(1)).sum(1)


with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    softmax_entropy_cifar = torch.jit.script(_softmax_entropy_cifar)
    softmax_entropy_imagenet = torch.jit.script(_softmax_entropy_imagenet)
