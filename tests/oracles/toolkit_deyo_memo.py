# ruff: noqa
"""The toolkit's DeYO and MEMO as test oracles (to name where they differ from the authors').

Repository: github.com/mariodoebler/test-time-adaptation, commit
8b2ed63255d906b6b0afaefc6ae630b9ec4bdaa1. Files, verbatim below their markers:
``classification/methods/base.py`` (``TTAMethod``: imported from
``tests/oracles/toolkit_base.py``, verbatim there), ``classification/utils/losses.py``
(``Entropy``), ``classification/methods/bn.py`` (``AlphaBatchNorm``),
``classification/methods/deyo.py`` and ``classification/methods/memo.py``; ``make_cfg``
holds the defaults of ``classification/conf.py`` they read.

Changed to run here, nothing else:
- ``ADAPTATION_REGISTRY.register()`` is an identity decorator; the imports between the files (``methods.base``,
  ``methods.bn``, ``utils.losses``, ``utils.registry``) are the definitions in this file;
- ``self.device`` is ``"cpu"`` (the original picks CUDA when present; the tests run the
  models on the CPU): ``TTAMethod`` below is the toolkit's with that one change;
- deyo.py's ``from einops import rearrange`` takes the equal torch ``rearrange`` of
  ``tests/oracles/deyo_reference.py`` (einops is not a protoview dependency);
- ``logger`` is a module logger; ``print`` in ``AlphaBatchNorm.adapt_model`` kept.
"""

import logging
from types import SimpleNamespace


class _Registry:
    def register(self):
        return lambda cls: cls


ADAPTATION_REGISTRY = _Registry()


def make_cfg(**changes):
    """conf.py's defaults of what TTAMethod, DeYO and MEMO read; ``changes``: "OPTIM.LR"=..."""
    cfg = SimpleNamespace(
        MODEL=SimpleNamespace(EPISODIC=False, RESET_AFTER_NUM_UPDATES=0),
        CORRUPTION=SimpleNamespace(DATASET="cifar10_c"),
        OPTIM=SimpleNamespace(STEPS=1, LR=1e-3, METHOD="Adam", BETA=0.9, MOMENTUM=0.9,
                              DAMPENING=0.0, NESTEROV=True, WD=0.0),
        TEST=SimpleNamespace(WINDOW_LENGTH=1, N_AUGMENTATIONS=32),
        MIXED_PRECISION=False,
        BN=SimpleNamespace(ALPHA=0.1),
        EATA=SimpleNamespace(MARGIN_E0=0.4),
        DEYO=SimpleNamespace(REWEIGHT_ENT=True, REWEIGHT_PLPD=True, PLPD=0.2, MARGIN=0.5,
                             AUG_TYPE="patch", OCCLUSION_SIZE=112, ROW_START=56,
                             COLUMN_START=56, PATCH_LEN=4),
    )
    for key, value in changes.items():
        group, name = key.split(".")
        setattr(getattr(cfg, group), name, value)
    return cfg


# ---- classification/methods/base.py: verbatim in tests/oracles/toolkit_base.py ----
import logging
import torch
import torch.nn as nn
from torch.nn.utils.weight_norm import WeightNorm
from torchvision import transforms

from copy import deepcopy
from functools import wraps


logger = logging.getLogger(__name__)

from tests.oracles import toolkit_base


class TTAMethod(toolkit_base.TTAMethod):
    # Changed here (see the header): ``self.device`` is "cpu", where the toolkit's __init__
    # sets "cuda" when CUDA is available: the test models run on the CPU. A property whose
    # setter ignores that assignment, so the device is the CPU from the first line of
    # __init__ on (configure_model and the single-sample pointer read it there).
    device = property(lambda self: "cpu", lambda self, value: None)


forward_decorator = toolkit_base.forward_decorator


# ---- classification/utils/losses.py (Entropy) ----
class Entropy(nn.Module):
    def __init__(self):
        super(Entropy, self).__init__()

    def __call__(self, logits):
        return -(logits.softmax(1) * logits.log_softmax(1)).sum(1)


# ---- classification/methods/bn.py (AlphaBatchNorm) ----
from torch import nn
from torch.nn import functional as F


class AlphaBatchNorm(nn.Module):
    """ Use the source statistics as a prior on the target statistics """

    @staticmethod
    def find_bns(parent, alpha):
        replace_mods = []
        if parent is None:
            return []
        for name, child in parent.named_children():
            if isinstance(child, nn.BatchNorm2d):
                module = AlphaBatchNorm(child, alpha)
                replace_mods.append((parent, name, module))
            else:
                replace_mods.extend(AlphaBatchNorm.find_bns(child, alpha))

        return replace_mods

    @staticmethod
    def adapt_model(model, alpha):
        replace_mods = AlphaBatchNorm.find_bns(model, alpha)
        print(f"| Found {len(replace_mods)} modules to be replaced.")
        for (parent, name, child) in replace_mods:
            setattr(parent, name, child)
        return model

    def __init__(self, layer, alpha):
        assert alpha >= 0 and alpha <= 1

        super().__init__()
        self.layer = layer
        self.layer.eval()
        self.alpha = alpha

        self.norm = nn.BatchNorm2d(self.layer.num_features, affine=False, momentum=1.0)

    def forward(self, input):
        self.norm(input)

        running_mean = ((1 - self.alpha) * self.layer.running_mean + self.alpha * self.norm.running_mean)
        running_var = ((1 - self.alpha) * self.layer.running_var + self.alpha * self.norm.running_var)

        return F.batch_norm(
            input,
            running_mean,
            running_var,
            self.layer.weight,
            self.layer.bias,
            False,
            0,
            self.layer.eps,
        )


# ---- classification/methods/deyo.py ----
"""
Builds upon: https://github.com/Jhyun17/DeYO/blob/main/methods/deyo.py
Corresponding paper: https://openreview.net/pdf?id=9w3iw8wDuE
"""

import torch
import torch.nn as nn
import torch.jit
import torchvision
import math
from tests.oracles.deyo_reference import rearrange  # changed: see the header



@ADAPTATION_REGISTRY.register()
class DeYO(TTAMethod):
    def __init__(self, cfg, model, num_classes):
        super().__init__(cfg, model, num_classes)

        self.reweight_ent = cfg.DEYO.REWEIGHT_ENT
        self.reweight_plpd = cfg.DEYO.REWEIGHT_PLPD

        self.plpd_threshold = cfg.DEYO.PLPD
        self.deyo_margin = cfg.DEYO.MARGIN * math.log(num_classes)
        self.margin_e0 = cfg.EATA.MARGIN_E0 * math.log(num_classes)

        self.aug_type = cfg.DEYO.AUG_TYPE
        self.occlusion_size = cfg.DEYO.OCCLUSION_SIZE
        self.row_start = cfg.DEYO.ROW_START
        self.column_start = cfg.DEYO.COLUMN_START
        self.patch_len = cfg.DEYO.PATCH_LEN

        self.ent = Entropy()

    def loss_calculation(self, x):
        """Forward and adapt model on batch of data.
        Measure entropy of the model prediction, take gradients, and update params.
        """
        imgs_test = x[0]
        outputs = self.model(imgs_test)

        entropys = self.ent(outputs)
        filter_ids_1 = torch.where((entropys < self.deyo_margin))
        entropys = entropys[filter_ids_1]
        if len(entropys) == 0:
            loss = None  # set loss to None, since all instances have been filtered
            return outputs, loss

        x_prime = imgs_test[filter_ids_1]
        x_prime = x_prime.detach()
        if self.aug_type == 'occ':
            first_mean = x_prime.view(x_prime.shape[0], x_prime.shape[1], -1).mean(dim=2)
            final_mean = first_mean.unsqueeze(-1).unsqueeze(-1)
            occlusion_window = final_mean.expand(-1, -1, self.occlusion_size, self.occlusion_size)
            x_prime[:, :, self.row_start:self.row_start + self.occlusion_size, self.column_start:self.column_start + self.occlusion_size] = occlusion_window
        elif self.aug_type == 'patch':
            resize_t = torchvision.transforms.Resize(((imgs_test.shape[-1] // self.patch_len) * self.patch_len, (imgs_test.shape[-1] // self.patch_len) * self.patch_len))
            resize_o = torchvision.transforms.Resize((imgs_test.shape[-1], imgs_test.shape[-1]))
            x_prime = resize_t(x_prime)
            x_prime = rearrange(x_prime, 'b c (ps1 h) (ps2 w) -> b (ps1 ps2) c h w', ps1=self.patch_len, ps2=self.patch_len)
            perm_idx = torch.argsort(torch.rand(x_prime.shape[0], x_prime.shape[1]), dim=-1)
            x_prime = x_prime[torch.arange(x_prime.shape[0]).unsqueeze(-1), perm_idx]
            x_prime = rearrange(x_prime, 'b (ps1 ps2) c h w -> b c (ps1 h) (ps2 w)', ps1=self.patch_len, ps2=self.patch_len)
            x_prime = resize_o(x_prime)
        elif self.aug_type == 'pixel':
            x_prime = rearrange(x_prime, 'b c h w -> b c (h w)')
            x_prime = x_prime[:, :, torch.randperm(x_prime.shape[-1])]
            x_prime = rearrange(x_prime, 'b c (ps1 ps2) -> b c ps1 ps2', ps1=imgs_test.shape[-1], ps2=imgs_test.shape[-1])

        with torch.no_grad():
            outputs_prime = self.model(x_prime)

        prob_outputs = outputs[filter_ids_1].softmax(1)
        prob_outputs_prime = outputs_prime.softmax(1)

        cls1 = prob_outputs.argmax(dim=1)

        plpd = torch.gather(prob_outputs, dim=1, index=cls1.reshape(-1, 1)) - torch.gather(prob_outputs_prime, dim=1, index=cls1.reshape(-1, 1))
        plpd = plpd.reshape(-1)

        filter_ids_2 = torch.where(plpd > self.plpd_threshold)
        entropys = entropys[filter_ids_2]
        if len(entropys) == 0:
            loss = None  # set loss to None, since all instances have been filtered
            return outputs, loss

        plpd = plpd[filter_ids_2]

        if self.reweight_ent or self.reweight_plpd:
            coeff = (float(self.reweight_ent) * (1. / (torch.exp(((entropys.clone().detach()) - self.margin_e0)))) +
                     float(self.reweight_plpd) * (1. / (torch.exp(-1. * plpd.clone().detach())))
                     )
            entropys = entropys.mul(coeff)

        loss = entropys.mean(0)
        return outputs, loss

    @torch.enable_grad()
    def forward_and_adapt(self, x):
        if self.mixed_precision and self.device == "cuda":
            with torch.cuda.amp.autocast():
                outputs, loss = self.loss_calculation(x)
            # update model only if not all instances have been filtered
            if loss is not None:
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
            self.optimizer.zero_grad()
        else:
            outputs, loss = self.loss_calculation(x)
            # update model only if not all instances have been filtered
            if loss is not None:
                loss.backward()
                self.optimizer.step()
            self.optimizer.zero_grad()
        return outputs

    def collect_params(self):
        """Collect the affine scale + shift parameters from norm layers.
        Walk the model's modules and collect all normalization parameters.
        Return the parameters and their names.
        Note: other choices of parameterization are possible!
        """
        params = []
        names = []
        for nm, m in self.model.named_modules():
            # skip top layers for adaptation: layer4 for ResNets and blocks9-11 for Vit-Base
            if 'layer4' in nm:
                continue
            if 'blocks.9' in nm:
                continue
            if 'blocks.10' in nm:
                continue
            if 'blocks.11' in nm:
                continue
            if 'norm.' in nm:
                continue
            if nm in ['norm']:
                continue

            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)):
                for np, p in m.named_parameters():
                    if np in ['weight', 'bias']:  # weight is scale, bias is shift
                        params.append(p)
                        names.append(f"{nm}.{np}")

        return params, names
    
    def configure_model(self):
        """Configure model for use with DeYO."""
        # self.model.train()
        self.model.eval()  # eval mode to avoid stochastic depth in swin. test-time normalization is still applied
        # disable grad, to (re-)enable only what DeYO updates
        self.model.requires_grad_(False)
        # configure norm for DeYO updates: enable grad + force batch statisics (this only for BN models)
        for m in self.model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.requires_grad_(True)
                # force use of batch stats in train and eval modes
                m.track_running_stats = False
                m.running_mean = None
                m.running_var = None
            elif isinstance(m, nn.BatchNorm1d):
                m.train()
                m.requires_grad_(True)
            # LayerNorm and GroupNorm for ResNet-GN and Vit-LN models
            elif isinstance(m, (nn.LayerNorm, nn.GroupNorm)):
                m.requires_grad_(True)

# ---- classification/methods/memo.py ----
"""
Builds upon: https://github.com/zhangmarvin/memo
Corresponding paper: https://arxiv.org/abs/2110.09506
"""

import torch
import torch.jit
import numpy as np



@ADAPTATION_REGISTRY.register()
class MEMO(TTAMethod):
    def __init__(self, cfg, model, num_classes):
        super().__init__(cfg, model, num_classes)

    def forward(self, x):
        if self.episodic:
            self.reset()

        x_aug = torch.cat(x[1:], dim=0)
        for _ in range(self.steps):
            self.forward_and_adapt(x_aug)

        return self.model(x[0])

    def loss_calculation(self, x):
        """Forward and adapt model on batch of data.
        Measure entropy of the model prediction, take gradients, and update params.
        """
        outputs = self.model(x)
        loss, _ = marginal_entropy(outputs)
        return outputs, loss

    @torch.enable_grad()
    def forward_and_adapt(self, x):
        if self.mixed_precision and self.device == "cuda":
            with torch.cuda.amp.autocast():
                outputs, loss = self.loss_calculation(x)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad()
        else:
            outputs, loss = self.loss_calculation(x)
            loss.backward()
            self.optimizer.step()
            self.optimizer.zero_grad()
        return outputs

    def configure_model(self):
        self.model = AlphaBatchNorm.adapt_model(self.model, alpha=self.cfg.BN.ALPHA).to(self.device)


def marginal_entropy(outputs):
    logits = outputs - outputs.logsumexp(dim=-1, keepdim=True)
    avg_logits = logits.logsumexp(dim=0) - np.log(logits.shape[0])
    min_real = torch.finfo(avg_logits.dtype).min
    avg_logits = torch.clamp(avg_logits, min=min_real)
    return -(avg_logits * torch.exp(avg_logits)).sum(dim=-1), avg_logits
