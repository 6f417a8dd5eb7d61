"""Small models and writers that produce checkpoint files of every supported format.

Everything is generated inside the test's tmp dir; nothing binary is committed.
"""

from __future__ import annotations

import builtins
import json
import textwrap
import warnings
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from protoview.core.heads import CosineLinear, SplitCosineLinear

FEATURE_DIM = 8


def tiny_featurizer(in_channels: int = 3, dim: int = FEATURE_DIM) -> nn.Sequential:
    """Conv-BN-ReLU-pool-flatten: (N, C, H, W) -> (N, dim)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, dim, 3, padding=1),
        nn.BatchNorm2d(dim),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


def randomize_bn(module: nn.Module, seed: int = 0) -> nn.Module:
    """Give BatchNorm layers non-trivial running statistics (so eval mode matters)."""
    generator = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=generator) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
    return module


class FeaturizerClassifierNet(nn.Module):
    """``featurizer`` / ``classifier`` attributes (protoview demo, DomainBed)."""

    def __init__(self, classifier: nn.Module | None = None, in_channels: int = 3) -> None:
        super().__init__()
        self.featurizer = tiny_featurizer(in_channels)
        self.classifier = classifier if classifier is not None else nn.Linear(FEATURE_DIM, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.featurizer(x))


class ScaledLogitsNet(FeaturizerClassifierNet):
    """Its forward does more than classifier(featurizer(x)): the split cannot reproduce it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * super().forward(x)


class BackboneFcNet(nn.Module):
    """``backbone`` / ``fc`` attributes."""

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.backbone = tiny_featurizer()
        self.fc = nn.Linear(FEATURE_DIM, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.backbone(x))


class DictConvnet(nn.Module):
    """A PyCIL-style convnet returning ``{'fmaps': [...], 'features': (N, D)}``."""

    def __init__(self) -> None:
        super().__init__()
        self.body = tiny_featurizer()

    def forward(self, x: torch.Tensor) -> dict[str, object]:
        return {"fmaps": [x], "features": self.body(x)}


class PyCILNet(nn.Module):
    """PyCIL's IncrementalNet shape: ``convnet`` + ``fc``; forward returns a dict."""

    def __init__(self, fc: nn.Module) -> None:
        super().__init__()
        self.convnet = DictConvnet()
        self.fc = fc

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.convnet(x)["features"]
        return {"logits": self.fc(features), "features": features}


class NoConventionNet(nn.Module):
    """Names no split convention knows: ``trunk`` + ``top = Sequential(Dropout, Linear)``."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = tiny_featurizer()
        self.top = nn.Sequential(nn.Dropout(0.1), nn.Linear(FEATURE_DIM, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.top(self.trunk(x))


class MLPHeadNet(nn.Module):
    """A featurizer with an MLP head (unsupported: no single proxy matrix)."""

    def __init__(self) -> None:
        super().__init__()
        self.featurizer = tiny_featurizer()
        self.classifier = nn.Sequential(nn.Linear(FEATURE_DIM, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.featurizer(x))


def cosine_head(classes: int = 5, nb_proxy: int = 3, sigma: float = 4.0, seed: int = 0) -> CosineLinear:
    torch.manual_seed(seed)
    head = CosineLinear(FEATURE_DIM, classes, nb_proxy, to_reduce=True, sigma=True)
    with torch.no_grad():
        head.sigma.fill_(sigma)
    return head


def split_cosine_head(old: int = 3, new: int = 2, nb_proxy: int = 2, seed: int = 0) -> SplitCosineLinear:
    torch.manual_seed(seed)
    head = SplitCosineLinear(FEATURE_DIM, old, new, nb_proxy)
    with torch.no_grad():
        head.sigma.fill_(7.5)
    return head


class ScriptableCosine(nn.Module):
    """A PyCIL-style cosine head written by "someone else" (TorchScript-able, returns a dict)."""

    def __init__(self, classes: int, nb_proxy: int, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.nb_proxy = nb_proxy
        self.weight = nn.Parameter(torch.randn(classes * nb_proxy, FEATURE_DIM, generator=generator))
        self.sigma = nn.Parameter(torch.tensor([3.5]))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        sims = nn.functional.normalize(x, p=2.0, dim=1) @ nn.functional.normalize(self.weight, p=2.0, dim=1).T
        per_class = sims.view(sims.shape[0], -1, self.nb_proxy)
        reduced = (torch.softmax(per_class, dim=-1) * per_class).sum(-1)
        return {"logits": self.sigma * reduced}


# ---------------------------------------------------------------------------- writers
def save(obj: object, path: Path, *, legacy: bool = False) -> Path:
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


def write_protoview(path: Path, model: nn.Module, arch: str, arch_kwargs: dict, *, transform: dict | None = None,
                    class_names: list[str] | None = None) -> Path:
    meta = {"format": "protoview-checkpoint", "version": 1, "arch": arch, "arch_kwargs": arch_kwargs}
    if transform is not None:
        meta["transform"] = transform
    if class_names is not None:
        meta["class_names"] = class_names
    return save({"protoview": meta, "state_dict": model.state_dict()}, path)


def write_domainbed(path: Path, featurizer_state: dict, classifier_state: dict, *, hparams: dict | None = None,
                    input_shape: tuple[int, int, int] | None = None, with_network: bool = True) -> Path:
    """DomainBed's ``save_checkpoint`` layout; ``network.*`` duplicates like ERM's state_dict."""
    state = {f"featurizer.{k}": v for k, v in featurizer_state.items()}
    state |= {f"classifier.{k}": v for k, v in classifier_state.items()}
    if with_network:
        state |= {f"network.0.{k}": v.clone() for k, v in featurizer_state.items()}
        state |= {f"network.1.{k}": v.clone() for k, v in classifier_state.items()}
    payload = {"args": {"algorithm": "TSD", "dataset": "PACS"}, "model_dict": state}
    if hparams is not None:
        payload["model_hparams"] = hparams
    if input_shape is not None:
        payload["model_input_shape"] = input_shape
    return save(payload, path)


def write_pycil(path: Path, convnet_state: dict, fc_state: dict, *, separate: bool = False, task: int = 1) -> Path:
    """PyCIL's ``save_checkpoint`` ({'tasks', 'model_state_dict'}) or {'tasks', 'convnet', 'fc'}."""
    if separate:
        return save({"tasks": task, "convnet": convnet_state, "fc": fc_state, "test_acc": 71.5}, path)
    state = {f"convnet.{k}": v for k, v in convnet_state.items()} | {f"fc.{k}": v for k, v in fc_state.items()}
    return save({"tasks": task, "model_state_dict": state}, path)


def write_torchscript(path: Path, module: nn.Module) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated
        torch.jit.script(module).save(str(path))
    return path


def write_safetensors(path: Path, state: dict, protoview_meta: dict | None = None) -> Path:
    tensors = {k: v.detach().contiguous().clone() for k, v in state.items()}
    metadata = {"protoview": json.dumps(protoview_meta)} if protoview_meta is not None else None
    save_file(tensors, str(path), metadata=metadata)
    return path


def write_arch_file(path: Path, source: str) -> Path:
    path.write_text(textwrap.dedent(source))
    return path


class MarkerOnUnpickle:
    """Unpickling this creates ``marker`` (stands in for arbitrary code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


def write_malicious(path: Path, marker: Path, *, legacy: bool = False) -> Path:
    payload = {"state_dict": {"fc.weight": torch.zeros(2, 2)}, "payload": MarkerOnUnpickle(marker)}
    return save(payload, path, legacy=legacy)


def truncate(path: Path, fraction: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path
