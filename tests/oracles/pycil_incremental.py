# ruff: noqa
"""PyCIL's class-incremental bookkeeping, verbatim, as a test oracle.

Repository: https://github.com/G-U-N/PyCIL
Commit:     87cc4110d60765dc3f64af7ef7a693efed8418ff
Files:      utils/toolkit.py (``accuracy``), trainer.py (``_train``: the accuracy matrix and
            the forgetting, the average accuracy), utils/inc_net.py (``IncrementalNet``'s
            and ``SimpleCosineIncrementalNet``'s ``update_fc`` and ``generate_fc``,
            ``IncrementalNet.weight_align``, used by models/wa.py with
            ``increment = self._total_classes - self._known_classes``;
            ``CosineIncrementalNet``'s ``update_fc`` and ``generate_fc``, PODNet's network),
            convs/linears.py (the first ``SplitCosineLinear``, the one inc_net imports).
Changed to run here, nothing else:
- ``accuracy`` is verbatim.
- the trainer's lines after the task loop are wrapped in ``trainer_forgetting(cnn_matrix,
  task)`` returning ``(forgetting, np_acctable)`` instead of printing and logging them;
  ``average_accuracy(cnn_curve_top1)`` is its ``sum(cnn_curve["top1"])/len(...)``.
- ``update_fc`` / ``generate_fc`` / ``weight_align`` are methods of two small classes that
  hold only ``fc`` and ``feature_dim`` (the convnet is not needed); ``.cuda()`` removed;
  ``weight_align`` returns ``gamma`` instead of printing it (it still rescales the rows).
- ``SimpleLinear`` comes from ``tests/oracles/pycil_cifar_resnet.py`` and
  ``CosineLinear`` / ``reduce_proxies`` from ``tests/oracles/pycil_cosine.py`` (both
  verbatim there); ``SplitCosineLinear`` is verbatim below.
"""
import copy

import numpy as np
import torch
from torch import nn

from tests.oracles.pycil_cifar_resnet import SimpleLinear
from tests.oracles.pycil_cosine import CosineLinear, reduce_proxies


# ------------------------------------------------------------------ convs/linears.py
class SplitCosineLinear(nn.Module):
    def __init__(self, in_features, out_features1, out_features2, nb_proxy=1, sigma=True):
        super(SplitCosineLinear, self).__init__()
        self.in_features = in_features
        self.out_features = (out_features1 + out_features2) * nb_proxy
        self.nb_proxy = nb_proxy
        self.fc1 = CosineLinear(in_features, out_features1, nb_proxy, False, False)
        self.fc2 = CosineLinear(in_features, out_features2, nb_proxy, False, False)
        if sigma:
            self.sigma = nn.Parameter(torch.Tensor(1))
            self.sigma.data.fill_(1)
        else:
            self.register_parameter('sigma', None)

    def forward(self, x):
        out1 = self.fc1(x)
        out2 = self.fc2(x)

        out = torch.cat((out1['logits'], out2['logits']), dim=1)  # concatenate along the channel

        # Reduce_proxy
        out = reduce_proxies(out, self.nb_proxy)

        if self.sigma is not None:
            out = self.sigma * out

        return {
            'old_scores': reduce_proxies(out1['logits'], self.nb_proxy),
            'new_scores': reduce_proxies(out2['logits'], self.nb_proxy),
            'logits': out
        }


# ------------------------------------------------------------------ utils/toolkit.py
def accuracy(y_pred, y_true, nb_old, increment=10):
    assert len(y_pred) == len(y_true), "Data length error."
    all_acc = {}
    all_acc["total"] = np.around(
        (y_pred == y_true).sum() * 100 / len(y_true), decimals=2
    )

    # Grouped accuracy
    for class_id in range(0, np.max(y_true), increment):
        idxes = np.where(
            np.logical_and(y_true >= class_id, y_true < class_id + increment)
        )[0]
        label = "{}-{}".format(
            str(class_id).rjust(2, "0"), str(class_id + increment - 1).rjust(2, "0")
        )
        all_acc[label] = np.around(
            (y_pred[idxes] == y_true[idxes]).sum() * 100 / len(idxes), decimals=2
        )

    # Old accuracy
    idxes = np.where(y_true < nb_old)[0]
    all_acc["old"] = (
        0
        if len(idxes) == 0
        else np.around(
            (y_pred[idxes] == y_true[idxes]).sum() * 100 / len(idxes), decimals=2
        )
    )

    # New accuracy
    idxes = np.where(y_true >= nb_old)[0]
    all_acc["new"] = np.around(
        (y_pred[idxes] == y_true[idxes]).sum() * 100 / len(idxes), decimals=2
    )

    return all_acc


# ------------------------------------------------------------------ trainer.py
def cnn_matrix_row(grouped):
    """The trainer's lines that turn one task's ``cnn_accy["grouped"]`` into a matrix row."""
    cnn_keys = [key for key in grouped.keys() if '-' in key]
    cnn_keys_sorted = sorted(cnn_keys)
    cnn_values = [grouped[key] for key in cnn_keys_sorted]
    return cnn_values


def trainer_forgetting(cnn_matrix, task):
    if len(cnn_matrix)>0:
        np_acctable = np.zeros([task + 1, task + 1])
        for idxx, line in enumerate(cnn_matrix):
            idxy = len(line)
            np_acctable[idxx, :idxy] = np.array(line)
        np_acctable = np_acctable.T
        forgetting = np.mean((np.max(np_acctable, axis=1) - np_acctable[:, task])[:task])
        return forgetting, np_acctable


def average_accuracy(cnn_curve_top1):
    return sum(cnn_curve_top1)/len(cnn_curve_top1)


# ------------------------------------------------------------------ utils/inc_net.py
class IncrementalNet:
    def __init__(self, feature_dim):
        self.feature_dim = feature_dim
        self.fc = None

    def update_fc(self, nb_classes):
        fc = self.generate_fc(self.feature_dim, nb_classes)
        if self.fc is not None:
            nb_output = self.fc.out_features
            weight = copy.deepcopy(self.fc.weight.data)
            bias = copy.deepcopy(self.fc.bias.data)
            fc.weight.data[:nb_output] = weight
            fc.bias.data[:nb_output] = bias

        del self.fc
        self.fc = fc

    def weight_align(self, increment):
        weights = self.fc.weight.data
        newnorm = torch.norm(weights[-increment:, :], p=2, dim=1)
        oldnorm = torch.norm(weights[:-increment, :], p=2, dim=1)
        meannew = torch.mean(newnorm)
        meanold = torch.mean(oldnorm)
        gamma = meanold / meannew
        self.fc.weight.data[-increment:, :] *= gamma
        return gamma

    def generate_fc(self, in_dim, out_dim):
        fc = SimpleLinear(in_dim, out_dim)

        return fc


class SimpleCosineIncrementalNet:
    def __init__(self, feature_dim):
        self.feature_dim = feature_dim
        self.fc = None

    def update_fc(self, nb_classes, nextperiod_initialization=None):
        fc = self.generate_fc(self.feature_dim, nb_classes)
        if self.fc is not None:
            nb_output = self.fc.out_features
            weight = copy.deepcopy(self.fc.weight.data)
            fc.sigma.data = self.fc.sigma.data
            if nextperiod_initialization is not None:

                weight = torch.cat([weight, nextperiod_initialization])
            else:
                weight = torch.cat([weight, torch.zeros(nb_classes - nb_output, self.feature_dim)])
            fc.weight = nn.Parameter(weight)
        del self.fc
        self.fc = fc

    def generate_fc(self, in_dim, out_dim):
        fc = CosineLinear(in_dim, out_dim)
        return fc


class CosineIncrementalNet:
    def __init__(self, feature_dim, nb_proxy=1):
        self.feature_dim = feature_dim
        self.fc = None
        self.nb_proxy = nb_proxy

    def update_fc(self, nb_classes, task_num):
        fc = self.generate_fc(self.feature_dim, nb_classes)
        if self.fc is not None:
            if task_num == 1:
                fc.fc1.weight.data = self.fc.weight.data
                fc.sigma.data = self.fc.sigma.data
            else:
                prev_out_features1 = self.fc.fc1.out_features
                fc.fc1.weight.data[:prev_out_features1] = self.fc.fc1.weight.data
                fc.fc1.weight.data[prev_out_features1:] = self.fc.fc2.weight.data
                fc.sigma.data = self.fc.sigma.data

        del self.fc
        self.fc = fc

    def generate_fc(self, in_dim, out_dim):
        if self.fc is None:
            fc = CosineLinear(in_dim, out_dim, self.nb_proxy, to_reduce=True)
        else:
            prev_out_features = self.fc.out_features // self.nb_proxy
            # prev_out_features = self.fc.out_features
            fc = SplitCosineLinear(
                in_dim, prev_out_features, out_dim - prev_out_features, self.nb_proxy
            )

        return fc
