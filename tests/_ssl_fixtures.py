"""Self-supervised checkpoints built with their authors' classes and saved as their code saves
them (small widths, random weights; generated in the test's tmp dir).

- SwAV / DeepCluster-v2: ``tests/oracles/swav_resnet.py`` (``src/resnet50.py``), saved as
  ``main_swav.py`` / ``main_deepclusterv2.py`` do: ``{"epoch", "state_dict": DDP model's,
  "optimizer"}``;
- MoCo / PCL: ``tests/oracles/pcl_builder.py`` (``MoCo``), saved as ``main_pcl.py``'s
  ``save_checkpoint``: ``{"epoch", "arch", "state_dict": DDP model's, "optimizer"}``;
- SimSiam: ``tests/oracles/simsiam_builder.py``, saved as ``main_simsiam.py`` does (same keys);
- DINO: ``tests/oracles/dino_vit.py`` (``vision_transformer.py`` + ``MultiCropWrapper``), saved
  as ``main_dino.py`` does: ``{"student": DDP's, "teacher": (DDP's only with batch norms),
  "optimizer", "epoch", "args", "dino_loss"}``.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import torch
import torchvision
from torch import nn


def _randomize(model: nn.Module, seed: int) -> nn.Module:
    """Non-trivial batch-norm statistics and affine weights (eval mode matters)."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            if m.affine:
                m.weight.data.copy_(1 + 0.1 * torch.randn(m.num_features, generator=gen))
                m.bias.data.copy_(0.1 * torch.randn(m.num_features, generator=gen))
    return model.eval()


def _ddp(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The keys of a DistributedDataParallel model's ``state_dict()``."""
    return {f"module.{k}": v for k, v in state.items()}


def _optimizer(model: nn.Module) -> dict:
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return opt.state_dict()


# ---------------------------------------------------------------------------- SwAV
def swav_model(*, output_dim: int = 16, hidden_mlp: int = 32, nmb_prototypes=10,
               seed: int = 0) -> nn.Module:
    """SwAV's ``ResNet`` with BasicBlocks [2, 2, 2, 2] (torchvision's resnet18 names), as
    ``main_swav.py`` builds it (``normalize=True``); prototypes normalised then moved by a
    step, as the saved ones are (normalised before each step, saved after it)."""
    from tests.oracles.swav_resnet import BasicBlock, ResNet

    torch.manual_seed(seed)
    model = ResNet(BasicBlock, [2, 2, 2, 2], normalize=True, hidden_mlp=hidden_mlp,
                   output_dim=output_dim, nmb_prototypes=nmb_prototypes)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "prototypes" in name:
                p.copy_(nn.functional.normalize(p, dim=1) + 0.01 * torch.randn_like(p))
    return _randomize(model, seed)


def write_swav(path: Path, model: nn.Module, epoch: int = 5) -> Path:
    """``main_swav.py``'s save (rank 0): epoch, the DDP model's state_dict, the optimizer."""
    torch.save({"epoch": epoch, "state_dict": _ddp(model.state_dict()),
                "optimizer": _optimizer(model)}, path)
    return path


# ---------------------------------------------------------------------------- MoCo / PCL
def pcl_model(*, dim: int = 16, r: int = 32, mlp: bool = True, seed: int = 0) -> nn.Module:
    from tests.oracles.pcl_builder import MoCo

    torch.manual_seed(seed)
    model = MoCo(torchvision.models.resnet18, dim=dim, r=r, mlp=mlp)
    return _randomize(model, seed)


def write_pcl(path: Path, model: nn.Module, arch: str = "resnet18", epoch: int = 3) -> Path:
    """``main_pcl.py``'s ``save_checkpoint({'epoch', 'arch', 'state_dict', 'optimizer'})``."""
    torch.save({"epoch": epoch, "arch": arch, "state_dict": _ddp(model.state_dict()),
                "optimizer": _optimizer(model)}, path)
    return path


# ---------------------------------------------------------------------------- SimSiam
def simsiam_model(*, dim: int = 32, pred_dim: int = 8, seed: int = 0) -> nn.Module:
    from tests.oracles.simsiam_builder import SimSiam

    torch.manual_seed(seed)
    return _randomize(SimSiam(torchvision.models.resnet18, dim=dim, pred_dim=pred_dim), seed)


write_simsiam = write_pcl  # main_simsiam.py saves the same four entries


# ---------------------------------------------------------------------------- DINO
def dino_pair(arch: str = "vit_tiny", *, out_dim: int = 20, hidden_dim: int = 32,
              bottleneck_dim: int = 16, seed: int = 0, norm_last_layer: bool = True):
    """(student, teacher): ``MultiCropWrapper(backbone, DINOHead)`` as ``main_dino.py``
    builds them (DINO's ViT, or a torchvision ResNet); the teacher a distinct copy with other
    weights (an EMA after training), the student's ``weight_g`` free when not
    ``norm_last_layer``."""
    from tests.oracles.dino_vit import DINOHead, MultiCropWrapper, vit_tiny

    nets = []
    for k in range(2):
        torch.manual_seed(seed + k)
        if arch == "vit_tiny":
            backbone, dim = vit_tiny(patch_size=16), 192
        else:
            backbone = torchvision.models.__dict__[arch]()
            dim = backbone.fc.weight.shape[1]
        with warnings.catch_warnings():  # DINO's nn.utils.weight_norm is deprecated in torch 2
            warnings.simplefilter("ignore", FutureWarning)
            head = DINOHead(dim, out_dim, norm_last_layer=norm_last_layer, hidden_dim=hidden_dim,
                            bottleneck_dim=bottleneck_dim)
        if not norm_last_layer or k == 0:
            with torch.no_grad():
                head.last_layer.weight_g.uniform_(0.5, 2.0)
        nets.append(_randomize(MultiCropWrapper(backbone, head), seed + k))
    return nets[0], nets[1]


def write_dino(path: Path, student: nn.Module, teacher: nn.Module, arch: str = "vit_tiny",
               patch_size: int = 16, *, drop: tuple[str, ...] = ()) -> Path:
    """``main_dino.py``'s ``save_dict``: the DDP student's state_dict, the teacher's (DDP's
    only when the network has batch norms, as main_dino.py wraps it then), optimizer, epoch,
    args (an argparse.Namespace), dino_loss (its center). ``drop``: entries left out."""
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in teacher.modules())
    args = argparse.Namespace(arch=arch, patch_size=patch_size, out_dim=20, use_bn_in_head=False,
                              norm_last_layer=True, momentum_teacher=0.996)
    save = {
        "student": _ddp(student.state_dict()),
        "teacher": _ddp(teacher.state_dict()) if has_bn else teacher.state_dict(),
        "optimizer": _optimizer(student),
        "epoch": 10,
        "args": args,
        "dino_loss": {"center": torch.zeros(1, 20)},
    }
    torch.save({k: v for k, v in save.items() if k not in drop}, path)
    return path


# ---------------------------------------------------------------------------- plain backbone
def write_plain_backbone(path: Path, arch: str = "resnet18", seed: int = 0) -> tuple[Path, nn.Module]:
    """A torchvision model's weights without ``fc`` (as main_lincls.py strips an encoder)."""
    torch.manual_seed(seed)
    model = _randomize(torchvision.models.__dict__[arch](), seed)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}
    torch.save(state, path)
    model.fc = nn.Identity()
    return path, model
