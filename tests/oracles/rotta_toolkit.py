# ruff: noqa
"""The toolkit's RoTTA as a second test oracle (beside the authors', ``rotta_reference``).

Repository: github.com/mariodoebler/test-time-adaptation, commit
8b2ed63255d906b6b0afaefc6ae630b9ec4bdaa1. Files: ``classification/methods/base.py``
(``TTAMethod``: imported from ``tests/oracles/toolkit_base.py``, verbatim there),
``classification/utils/misc.py`` (its first lines: ``ema_update_model``) and
``classification/methods/rotta.py``, verbatim and concatenated; the test-time
augmentations are ``tests/oracles/toolkit_transforms_cotta.py`` (its
``augmentations/transforms_cotta.py``). ``build`` is ``test_time.py``'s set-up with the
config of ``conf.py`` and ``cfgs/cifar10_c/rotta.yaml`` (Adam, lr 1e-3, beta 0.9, wd 0;
ROTTA: NU 0.001, MEMORY_SIZE 64, UPDATE_FREQUENCY 64, LAMBDA_T 1, LAMBDA_U 1, ALPHA 0.05;
STEPS 1, EPISODIC False, RESET_AFTER_NUM_UPDATES 0, WINDOW_LENGTH 1, MIXED_PRECISION False).

Changed to run here, nothing else:
- the package imports are commented out (the names are defined above them or imported from
  ``toolkit_transforms_cotta``); the registry decorator is commented out;
- ``self.device`` is ``"cpu"`` (it was ``"cuda"`` when CUDA is available: the tests run on
  the CPU): ``TTAMethod`` below is the toolkit's with that one change;
- ``@torch.jit.script`` on ``softmax_cross_entropy`` is applied with torch's deprecation
  warning silenced;
- the yacs config is a namespace (``build``).

Left as released: in single precision ``forward_and_adapt`` calls
``self.loss_calculation(x)``, which takes no argument, so the first update raises a
``TypeError``; ``build(runnable=True)`` returns :class:`RoTTARunnable`, whose
``loss_calculation`` accepts and ignores that argument (a test shows both). The image size
of the augmentations comes, as in the toolkit, from the model's ``model_preprocess``
(the tests give the model one) or else the dataset's name.
"""

import types
import warnings

# ---- classification/methods/base.py: verbatim in tests/oracles/toolkit_base.py ----
import logging
import torch
import torch.nn as nn
from torch.nn.utils.weight_norm import WeightNorm
from torchvision import transforms

from copy import deepcopy
from functools import wraps

from tests.oracles import toolkit_base

logger = logging.getLogger(__name__)


class TTAMethod(toolkit_base.TTAMethod):
    # Changed here (see the header): ``self.device`` is "cpu", where the toolkit's __init__
    # sets "cuda" when CUDA is available: the test models run on the CPU. A property whose
    # setter ignores that assignment, so the device is the CPU from the first line of
    # __init__ on (configure_model and the single-sample pointer read it there).
    device = property(lambda self: "cpu", lambda self, value: None)


forward_decorator = toolkit_base.forward_decorator


# ---- classification/utils/misc.py (ema_update_model) ----
import torch
import logging

logger = logging.getLogger(__name__)


@torch.no_grad()
def ema_update_model(model_to_update, model_to_merge, momentum, device, update_all=False):
    if momentum < 1.0:
        for param_to_update, param_to_merge in zip(model_to_update.parameters(), model_to_merge.parameters()):
            if param_to_update.requires_grad or update_all:
                param_to_update.data = momentum * param_to_update.data + (1 - momentum) * param_to_merge.data.to(device)
    return model_to_update


# ---- classification/methods/rotta.py ----
"""
Builds upon: https://github.com/BIT-DA/RoTTA
Corresponding paper: https://arxiv.org/pdf/2303.13899.pdf
"""

import math
import torch
import torch.nn as nn

from copy import deepcopy
# from methods.base import TTAMethod  (above)
from tests.oracles.toolkit_transforms_cotta import get_tta_transforms
# from utils.registry import ADAPTATION_REGISTRY
# from utils.misc import ema_update_model  (above)


# @ADAPTATION_REGISTRY.register()
class RoTTA(TTAMethod):
    def __init__(self, cfg, model, num_classes):
        super().__init__(cfg, model, num_classes)

        self.memory_size = cfg.ROTTA.MEMORY_SIZE
        self.lambda_t = cfg.ROTTA.LAMBDA_T
        self.lambda_u = cfg.ROTTA.LAMBDA_U
        self.nu = 1 - cfg.ROTTA.NU  # we do the ema update consistently the other way round: (param * ema_model + (1-param) * model)
        self.update_frequency = cfg.ROTTA.UPDATE_FREQUENCY  # actually the same as the size of memory bank
        self.current_instance = 0
        self.mem = CSTU(capacity=self.memory_size, num_class=self.num_classes, lambda_t=self.lambda_t, lambda_u=self.lambda_u)

        # setup the ema model
        self.model_ema = self.copy_model(self.model)
        for param in self.model_ema.parameters():
            param.detach_()

        # note: if the self.model is never reset, like for continual adaptation,
        # then skipping the state copy would save memory
        self.models = [self.model, self.model_ema]
        self.model_states, self.optimizer_state = self.copy_model_and_optimizer()

        # create the test-time transformations
        self.transform = get_tta_transforms(self.img_size)

    def loss_calculation(self):
        self.model.train()
        self.model_ema.train()
        # get memory data
        sup_data, ages = self.mem.get_memory()
        loss_sup = torch.tensor([(float('nan'))])
        if len(sup_data) > 0:
            sup_data = torch.stack(sup_data)
            strong_sup_aug = self.transform(sup_data)
            ema_sup_out = self.model_ema(sup_data)
            stu_sup_out = self.model(strong_sup_aug)
            instance_weight = timeliness_reweighting(ages, device=self.device)
            loss_sup = (softmax_cross_entropy(stu_sup_out, ema_sup_out) * instance_weight).mean()
        return loss_sup

    @torch.enable_grad()
    def forward_and_adapt(self, x):
        imgs_test = x[0]

        with torch.no_grad():
            self.model.eval()
            self.model_ema.eval()
            ema_out = self.model_ema(imgs_test)
            predict = torch.softmax(ema_out, dim=1)
            pseudo_label = torch.argmax(predict, dim=1)
            entropy = torch.sum(- predict * torch.log(predict + 1e-6), dim=1)

        # add into memory
        for i, data in enumerate(imgs_test):
            p_l = pseudo_label[i].item()
            uncertainty = entropy[i].item()
            current_instance = (data, p_l, uncertainty)
            self.mem.add_instance(current_instance)
            self.current_instance += 1

            if self.current_instance % self.update_frequency == 0:
                if self.mixed_precision and self.device == "cuda":
                    with torch.cuda.amp.autocast():
                        loss = self.loss_calculation()
                    self.scaler.scale(loss).backward()
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                    self.optimizer.zero_grad()
                else:
                    loss = self.loss_calculation(x)
                    loss.backward()
                    self.optimizer.step()
                    self.optimizer.zero_grad()

                self.model_ema = ema_update_model(
                    model_to_update=self.model_ema,
                    model_to_merge=self.model,
                    momentum=self.nu,
                    device=self.device,
                    update_all=True
                )

        return ema_out

    def reset(self):
        if self.model_states is None or self.optimizer_state is None:
            raise Exception("cannot reset without saved self.model/optimizer state")
        self.load_model_and_optimizer()
        self.current_instance = 0
        self.mem = CSTU(capacity=self.memory_size,
                        num_class=self.num_classes,
                        lambda_t=self.lambda_t,
                        lambda_u=self.lambda_u)

    def configure_model(self):
        self.model.requires_grad_(False)
        normlayer_names = []

        for name, sub_module in self.model.named_modules():
            if isinstance(sub_module, nn.BatchNorm1d) or isinstance(sub_module, nn.BatchNorm2d):
                normlayer_names.append(name)
            elif isinstance(sub_module, (nn.LayerNorm, nn.GroupNorm)):
                sub_module.requires_grad_(True)

        for name in normlayer_names:
            bn_layer = get_named_submodule(self.model, name)
            if isinstance(bn_layer, nn.BatchNorm1d):
                NewBN = RobustBN1d
            elif isinstance(bn_layer, nn.BatchNorm2d):
                NewBN = RobustBN2d
            else:
                raise RuntimeError()

            momentum_bn = NewBN(bn_layer, self.cfg.ROTTA.ALPHA)
            momentum_bn.requires_grad_(True)
            set_named_submodule(self.model, name, momentum_bn)


def _softmax_cross_entropy(x, x_ema):
    return -(x_ema.softmax(1) * x.log_softmax(1)).sum(1)


with warnings.catch_warnings():  # @torch.jit.script, its deprecation warning silenced
    warnings.simplefilter("ignore", FutureWarning)
    softmax_cross_entropy = torch.jit.script(_softmax_cross_entropy)


def timeliness_reweighting(ages, device):
    if isinstance(ages, list):
        ages = torch.tensor(ages).float().to(device)
    return torch.exp(-ages) / (1 + torch.exp(-ages))


def get_named_submodule(model, sub_name: str):
    names = sub_name.split(".")
    module = model
    for name in names:
        module = getattr(module, name)

    return module


def set_named_submodule(model, sub_name, value):
    names = sub_name.split(".")
    module = model
    for i in range(len(names)):
        if i != len(names) - 1:
            module = getattr(module, names[i])

        else:
            setattr(module, names[i], value)


class MomentumBN(nn.Module):
    def __init__(self, bn_layer: nn.BatchNorm2d, momentum):
        super().__init__()
        self.num_features = bn_layer.num_features
        self.momentum = momentum
        if bn_layer.track_running_stats and bn_layer.running_var is not None and bn_layer.running_mean is not None:
            self.register_buffer("source_mean", deepcopy(bn_layer.running_mean))
            self.register_buffer("source_var", deepcopy(bn_layer.running_var))
            self.source_num = bn_layer.num_batches_tracked
        self.weight = deepcopy(bn_layer.weight)
        self.bias = deepcopy(bn_layer.bias)

        self.register_buffer("target_mean", torch.zeros_like(self.source_mean))
        self.register_buffer("target_var", torch.ones_like(self.source_var))
        self.eps = bn_layer.eps

        self.current_mu = None
        self.current_sigma = None

    def forward(self, x):
        raise NotImplementedError


class RobustBN1d(MomentumBN):
    def forward(self, x):
        if self.training:
            b_var, b_mean = torch.var_mean(x, dim=0, unbiased=False, keepdim=False)  # (C,)
            mean = (1 - self.momentum) * self.source_mean + self.momentum * b_mean
            var = (1 - self.momentum) * self.source_var + self.momentum * b_var
            self.source_mean, self.source_var = deepcopy(mean.detach()), deepcopy(var.detach())
            mean, var = mean.view(1, -1), var.view(1, -1)
        else:
            mean, var = self.source_mean.view(1, -1), self.source_var.view(1, -1)

        x = (x - mean) / torch.sqrt(var + self.eps)
        weight = self.weight.view(1, -1)
        bias = self.bias.view(1, -1)

        return x * weight + bias


class RobustBN2d(MomentumBN):
    def forward(self, x):
        if self.training:
            b_var, b_mean = torch.var_mean(x, dim=[0, 2, 3], unbiased=False, keepdim=False)  # (C,)
            mean = (1 - self.momentum) * self.source_mean + self.momentum * b_mean
            var = (1 - self.momentum) * self.source_var + self.momentum * b_var
            self.source_mean, self.source_var = deepcopy(mean.detach()), deepcopy(var.detach())
            mean, var = mean.view(1, -1, 1, 1), var.view(1, -1, 1, 1)
        else:
            mean, var = self.source_mean.view(1, -1, 1, 1), self.source_var.view(1, -1, 1, 1)

        x = (x - mean) / torch.sqrt(var + self.eps)
        weight = self.weight.view(1, -1, 1, 1)
        bias = self.bias.view(1, -1, 1, 1)

        return x * weight + bias


class MemoryItem:
    def __init__(self, data=None, uncertainty=0, age=0):
        self.data = data
        self.uncertainty = uncertainty
        self.age = age

    def increase_age(self):
        if not self.empty():
            self.age += 1

    def get_data(self):
        return self.data, self.uncertainty, self.age

    def empty(self):
        return self.data == "empty"


class CSTU:
    def __init__(self, capacity, num_class, lambda_t=1.0, lambda_u=1.0):
        self.capacity = capacity
        self.num_class = num_class
        self.per_class = self.capacity / self.num_class
        self.lambda_t = lambda_t
        self.lambda_u = lambda_u

        self.data: list[list[MemoryItem]] = [[] for _ in range(self.num_class)]

    def get_occupancy(self):
        occupancy = 0
        for data_per_cls in self.data:
            occupancy += len(data_per_cls)
        return occupancy

    def per_class_dist(self):
        per_class_occupied = [0] * self.num_class
        for cls, class_list in enumerate(self.data):
            per_class_occupied[cls] = len(class_list)

        return per_class_occupied

    def add_instance(self, instance):
        assert (len(instance) == 3)
        x, prediction, uncertainty = instance
        new_item = MemoryItem(data=x, uncertainty=uncertainty, age=0)
        new_score = self.heuristic_score(0, uncertainty)
        if self.remove_instance(prediction, new_score):
            self.data[prediction].append(new_item)
        self.add_age()

    def remove_instance(self, cls, score):
        class_list = self.data[cls]
        class_occupied = len(class_list)
        all_occupancy = self.get_occupancy()
        if class_occupied < self.per_class:
            if all_occupancy < self.capacity:
                return True
            else:
                majority_classes = self.get_majority_classes()
                return self.remove_from_classes(majority_classes, score)
        else:
            return self.remove_from_classes([cls], score)

    def remove_from_classes(self, classes: list[int], score_base):
        max_class = None
        max_index = None
        max_score = None
        for cls in classes:
            for idx, item in enumerate(self.data[cls]):
                uncertainty = item.uncertainty
                age = item.age
                score = self.heuristic_score(age=age, uncertainty=uncertainty)
                if max_score is None or score >= max_score:
                    max_score = score
                    max_index = idx
                    max_class = cls

        if max_class is not None:
            if max_score > score_base:
                self.data[max_class].pop(max_index)
                return True
            else:
                return False
        else:
            return True

    def get_majority_classes(self):
        per_class_dist = self.per_class_dist()
        max_occupied = max(per_class_dist)
        classes = []
        for i, occupied in enumerate(per_class_dist):
            if occupied == max_occupied:
                classes.append(i)

        return classes

    def heuristic_score(self, age, uncertainty):
        return self.lambda_t * 1 / (1 + math.exp(-age / self.capacity)) + self.lambda_u * uncertainty / math.log(self.num_class)

    def add_age(self):
        for class_list in self.data:
            for item in class_list:
                item.increase_age()
        return

    def get_memory(self):
        tmp_data = []
        tmp_age = []

        for class_list in self.data:
            for item in class_list:
                tmp_data.append(item.data)
                tmp_age.append(item.age)

        tmp_age = [x / self.capacity for x in tmp_age]

        return tmp_data, tmp_age


class RoTTARunnable(RoTTA):
    """The toolkit's RoTTA with ``loss_calculation(x)`` callable (see the docstring)."""

    def loss_calculation(self, *unused):
        return RoTTA.loss_calculation(self)


# ---- test_time.py's set-up, with the config as arguments ----
def _ns(**kw):
    return types.SimpleNamespace(**kw)


def build(model, num_classes, lr=1e-3, nu=0.001, memory_size=64, update_frequency=64,
          lambda_t=1.0, lambda_u=1.0, alpha=0.05, steps=1, episodic=False,
          dataset="cifar10_c", runnable=True):
    """``RoTTA(cfg, model, num_classes)`` with the toolkit's RoTTA config."""
    cfg = _ns(
        MODEL=_ns(EPISODIC=episodic, RESET_AFTER_NUM_UPDATES=0),
        CORRUPTION=_ns(DATASET=dataset),
        OPTIM=_ns(STEPS=steps, LR=lr, METHOD="Adam", BETA=0.9, MOMENTUM=0.9, DAMPENING=0.0,
                  NESTEROV=True, WD=0.0),
        TEST=_ns(WINDOW_LENGTH=1),
        MIXED_PRECISION=False,
        ROTTA=_ns(MEMORY_SIZE=memory_size, UPDATE_FREQUENCY=update_frequency, NU=nu,
                  ALPHA=alpha, LAMBDA_T=lambda_t, LAMBDA_U=lambda_u),
    )
    return (RoTTARunnable if runnable else RoTTA)(cfg, model, num_classes)
