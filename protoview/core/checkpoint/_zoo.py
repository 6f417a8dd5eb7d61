"""Built-in architectures of the common test-time-adaptation checkpoints (no library has them).

- :class:`WideResNet`: RobustBench's ``WideResNet`` (``robustbench/model_zoo/architectures/
  wide_resnet.py``, from TRADES), the architecture of its ``Standard`` CIFAR-10 model
  (depth 28, width 10) that TENT, CoTTA, EATA, SAR, ... adapt on CIFAR-10-C. Key layout:
  ``conv1``, ``block{1,2,3}.layer.{i}.{bn1,conv1,bn2,conv2,convShortcut}``, ``bn1``, ``fc``.
  Its inputs are pixels in [0, 1]: RobustBench normalises nothing.
- :class:`CifarResNet`: PyCIL's CIFAR ResNet (``convs/cifar_resnet.py``; ``resnet32`` is its
  CIFAR-100 backbone). Key layout: ``conv_1_3x3``, ``bn_1``,
  ``stage_{1,2,3}.{i}.{conv_a,bn_a,conv_b,bn_b}``, ``fc`` (PyCIL's convnet carries an unused
  ``fc`` of 10 rows; its real head lives in the network's ``fc``: ``convnet.*`` + ``fc.*``).
  Unlike PyCIL's (which returns ``{"fmaps", "features"}``), this one returns logits, so that
  a plain state_dict of the whole network loads too.

Both compute exactly what the reference code computes (same modules, same operations in the
same order): ``tests/test_zoo.py`` compares logits bit for bit with the ported originals in
``tests/oracles/``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


# ---------------------------------------------------------------------------- WideResNet
class _WideBasicBlock(nn.Module):
    def __init__(self, in_planes: int, out_planes: int, stride: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_planes, out_planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.droprate = drop_rate
        self.equalInOut = in_planes == out_planes  # noqa: N815 - the reference's attribute name
        self.convShortcut = (  # noqa: N815 - part of the checkpoints' key names
            None
            if self.equalInOut
            else nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, padding=0, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.equalInOut:
            x = self.relu1(self.bn1(x))
            out = self.relu2(self.bn2(self.conv1(x)))
        else:
            out = self.relu1(self.bn1(x))
            out = self.relu2(self.bn2(self.conv1(out)))
        if self.droprate > 0:
            out = F.dropout(out, p=self.droprate, training=self.training)
        out = self.conv2(out)
        return torch.add(x if self.equalInOut else self.convShortcut(x), out)


class _NetworkBlock(nn.Module):
    def __init__(self, nb_layers: int, in_planes: int, out_planes: int, stride: int, drop_rate: float) -> None:
        super().__init__()
        self.layer = nn.Sequential(
            *(
                _WideBasicBlock(in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1, drop_rate)
                for i in range(nb_layers)
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class WideResNet(nn.Module):
    """WideResNet-``depth``-``widen_factor`` for 32x32 inputs: (N, 3, 32, 32) -> (N, num_classes).

    ``features`` are the ``64 * widen_factor`` channels after the last BN + ReLU, average
    pooled over 8x8 (as the reference: ``F.avg_pool2d(out, 8)``).
    """

    def __init__(
        self, depth: int = 28, num_classes: int = 10, widen_factor: int = 10,
        sub_block1: bool = False, drop_rate: float = 0.0, bias_last: bool = True,
    ) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"depth must be 6n + 4 (28, 34, 70, ...), got {depth}")
        channels = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        n = (depth - 4) // 6
        self.conv1 = nn.Conv2d(3, channels[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.block1 = _NetworkBlock(n, channels[0], channels[1], 1, drop_rate)
        if sub_block1:
            self.sub_block1 = _NetworkBlock(n, channels[0], channels[1], 1, drop_rate)
        self.block2 = _NetworkBlock(n, channels[1], channels[2], 2, drop_rate)
        self.block3 = _NetworkBlock(n, channels[2], channels[3], 2, drop_rate)
        self.bn1 = nn.BatchNorm2d(channels[3])
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(channels[3], num_classes, bias=bias_last)
        self.nChannels = channels[3]  # noqa: N815 - the reference's attribute name
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                m.weight.data.normal_(0, math.sqrt(2.0 / fan))
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.data.fill_(1)
                m.bias.data.zero_()
            elif isinstance(m, nn.Linear) and m.bias is not None:
                m.bias.data.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        out = self.block1(out)
        out = self.block2(out)
        out = self.block3(out)
        out = self.relu(self.bn1(out))
        out = F.avg_pool2d(out, 8)
        out = out.view(-1, self.nChannels)
        return self.fc(out)


def wrn28_10(num_classes: int = 10) -> WideResNet:
    """RobustBench's ``Standard`` CIFAR-10 model: ``WideResNet(depth=28, widen_factor=10)``."""
    return WideResNet(depth=28, num_classes=num_classes, widen_factor=10)


# ---------------------------------------------------------------------------- PyCIL CIFAR ResNet
class _DownsampleA(nn.Module):
    """Stride-2 subsampling, zero channels appended (no weights)."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.avg = nn.AvgPool2d(kernel_size=1, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avg(x)
        return torch.cat((x, x.mul(0)), 1)


class _CifarBasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv_a = nn.Conv2d(inplanes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn_a = nn.BatchNorm2d(planes)
        self.conv_b = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn_b = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x
        out = F.relu(self.bn_a(self.conv_a(x)), inplace=True)
        out = self.bn_b(self.conv_b(out))
        if self.downsample is not None:
            residual = self.downsample(x)
        return F.relu(residual + out, inplace=True)


class CifarResNet(nn.Module):
    """PyCIL's ResNet for 32x32 inputs (depth 6n + 2): (N, C, 32, 32) -> (N, num_classes), 64-d features."""

    def __init__(self, depth: int = 32, num_classes: int = 10, channels: int = 3) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"depth must be 6n + 2 (20, 32, 44, 56, 110), got {depth}")
        blocks = (depth - 2) // 6
        self.conv_1_3x3 = nn.Conv2d(channels, 16, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn_1 = nn.BatchNorm2d(16)
        self.inplanes = 16
        self.stage_1 = self._make_layer(16, blocks, 1)
        self.stage_2 = self._make_layer(32, blocks, 2)
        self.stage_3 = self._make_layer(64, blocks, 2)
        self.avgpool = nn.AvgPool2d(8)
        self.out_dim = 64
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                m.weight.data.normal_(0, math.sqrt(2.0 / fan))
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.data.fill_(1)
                m.bias.data.zero_()
            elif isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight)
                m.bias.data.zero_()

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = _DownsampleA(stride) if stride != 1 or self.inplanes != planes else None
        layers = [_CifarBasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [_CifarBasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_1_3x3(x)
        x = F.relu(self.bn_1(x), inplace=True)
        x = self.stage_3(self.stage_2(self.stage_1(x)))
        pooled = self.avgpool(x)
        return self.fc(pooled.view(pooled.size(0), -1))


def cifar_resnet(depth: int, num_classes: int = 10) -> CifarResNet:
    """PyCIL's ``resnet20`` / ``resnet32`` / ``resnet44`` / ``resnet56`` / ``resnet110``."""
    return CifarResNet(depth, num_classes)
