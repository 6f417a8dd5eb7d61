"""Checkpoint loading: every format, every split convention, every bad input."""

from __future__ import annotations

import hashlib
import os
import sys
import types
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from protoview.core.checkpoint import archs, file_sha256, inspect_checkpoint, load_checkpoint
from protoview.core.heads import CosineLinear, SplitCosineLinear, reduce_proxies
from protoview.core.warnings import ProtoviewWarning
from protoview.errors import CheckpointError, ParameterError
from tests import _ckpt_fixtures as fx

REPO = Path(__file__).resolve().parent.parent
X = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))

ARCH_SOURCE = """
from torch import nn
import torchvision
from tests import _ckpt_fixtures as fx

def backbone_fc(num_classes=4):
    return fx.BackboneFcNet(num_classes)

def featurizer_only():
    return fx.tiny_featurizer()

def dict_convnet():
    return fx.DictConvnet()

def mlp_head():
    return fx.MLPHeadNet()

def no_convention():
    return fx.NoConventionNet()

def tiny_vit():
    return torchvision.models.VisionTransformer(
        image_size=16, patch_size=8, num_layers=1, num_heads=2, hidden_dim=8, mlp_dim=16, num_classes=6)

def wide_backbone_fc():
    net = fx.BackboneFcNet(4)
    net.backbone[0] = nn.Conv2d(3, 8, 5, padding=2)
    return net
"""


@pytest.fixture()
def arch_file(tmp_path: Path) -> Path:
    return fx.write_arch_file(tmp_path / "my_arch.py", ARCH_SOURCE)


@pytest.fixture(scope="module")
def resnet18() -> nn.Module:
    torch.manual_seed(0)
    return fx.randomize_bn(torchvision.models.resnet18(num_classes=7)).eval()


@pytest.fixture()
def test_arch(monkeypatch: pytest.MonkeyPatch):
    """A built-in architecture registered for the test (the demo CNN may not exist yet)."""

    def build(head: str = "linear", nb_proxy: int = 1, in_channels: int = 3, head_dim: int = fx.FEATURE_DIM):
        classifier = nn.Linear(head_dim, 5) if head == "linear" else CosineLinear(head_dim, 5, nb_proxy, to_reduce=True)
        return fx.FeaturizerClassifierNet(classifier, in_channels)

    monkeypatch.setitem(archs.BUILTIN_ARCHS, "test-tiny", build)
    return build


def _logits(model: nn.Module, x: torch.Tensor = X) -> torch.Tensor:
    with torch.no_grad():
        out = model.eval()(x)
    return out["logits"] if isinstance(out, dict) else out


def _assert_same_logits(loaded: nn.Module, original: nn.Module, x: torch.Tensor = X) -> None:
    torch.testing.assert_close(_logits(loaded, x), _logits(original, x), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------- protoview format
def test_protoview_checkpoint_cosine(tmp_path, test_arch):
    original = fx.randomize_bn(test_arch(head="cosine", nb_proxy=3))
    with torch.no_grad():
        original.classifier.sigma.fill_(6.0)
    transform = {"size": [16, 16], "channels": 3, "mean": [0.1, 0.2, 0.3], "std": [0.5, 0.5, 0.5]}
    path = fx.write_protoview(tmp_path / "p.pt", original, "test-tiny", {"head": "cosine", "nb_proxy": 3},
                              transform=transform, class_names=list("abcde"))
    model = load_checkpoint(path)
    _assert_same_logits(model, original)
    info = model.info
    assert info.format == "protoview checkpoint v1" and info.arch == "test-tiny"
    assert "cosine head: 5 classes x 3 proxies" in info.describe()
    assert info.transform.size == (16, 16) and info.transform.mean == (0.1, 0.2, 0.3)
    assert info.class_names == list("abcde")
    assert not any("nb_proxy" in n for n in info.notes)  # stored, not guessed
    assert not model.training and isinstance(model.classifier, CosineLinear)


def test_protoview_checkpoint_stored_nb_proxy_beats_argument(tmp_path, test_arch):
    original = test_arch(head="cosine", nb_proxy=3)
    path = fx.write_protoview(tmp_path / "p.pt", original, "test-tiny", {"head": "cosine", "nb_proxy": 3})
    info = inspect_checkpoint(path, nb_proxy=1)
    assert info.head.nb_proxy == 3


def test_protoview_checkpoint_newer_version_and_file_arch_refused(tmp_path, test_arch):
    model = test_arch()
    path = fx.save({"protoview": {"format": "protoview-checkpoint", "version": 99, "arch": "test-tiny"},
                    "state_dict": model.state_dict()}, tmp_path / "new.pt")
    with pytest.raises(CheckpointError, match="version 99 is newer"):
        load_checkpoint(path)
    marker = tmp_path / "ran"
    evil = fx.write_arch_file(tmp_path / "evil.py", f"open({str(marker)!r}, 'w').close()\ndef build():\n    pass\n")
    path = fx.save({"protoview": {"arch": f"{evil}:build"}, "state_dict": model.state_dict()}, tmp_path / "e.pt")
    with pytest.raises(CheckpointError, match="never runs code named by a checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()


def test_demo_cnn_architecture(tmp_path):
    demo_model = pytest.importorskip("protoview.core.demo")
    kwargs = {"head": "cosine", "num_classes": 10, "nb_proxy": 3, "feature_dim": 64, "sigma": True}
    original = fx.randomize_bn(demo_model.build_demo_model(**kwargs))
    transform = {"size": [8, 8], "channels": 1, "mean": [0.3], "std": [0.4]}
    path = fx.write_protoview(tmp_path / "demo.pt", original, "protoview-demo-cnn", kwargs, transform=transform)
    model = load_checkpoint(path)
    _assert_same_logits(model, original, torch.randn(4, 1, 8, 8))
    assert "cosine head: 10 classes x 3 proxies" in model.info.describe()


@pytest.mark.parametrize("head", ["linear", "cosine"])
def test_committed_demo_checkpoints(head):
    path = REPO / "resources" / "demo" / f"demo_{head}.pt"
    if not path.exists():
        pytest.skip(f"{path} is not trained yet")
    pytest.importorskip("protoview.core.demo")
    info = inspect_checkpoint(path)
    if head == "cosine":
        assert "cosine head: 10 classes x 3 proxies" in info.describe()
    else:
        assert info.head.kind == "linear" and info.head.num_classes == 10
    assert info.transform is not None and info.transform.channels == 1


# ---------------------------------------------------------------------------- torchvision / timm / user file
def test_torchvision_resnet18_state_dict(tmp_path, resnet18):
    path = fx.save(resnet18.state_dict(), tmp_path / "r18.pth")
    model = load_checkpoint(path, "resnet18")
    x = torch.randn(2, 3, 32, 32)
    _assert_same_logits(model, resnet18, x)
    assert model.classifier is not None and model.featurizer(x).shape == (2, 512)
    info = model.info
    assert (info.head.kind, info.head.num_classes, info.head.feature_dim) == ("linear", 7, 512)
    assert info.param_count == sum(p.numel() for p in resnet18.parameters())
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert any("fc (torchvision" in n for n in info.notes)


def test_torchvision_classifier_sequential_convention(tmp_path):
    torch.manual_seed(0)
    original = torchvision.models.mobilenet_v3_small(num_classes=3).eval()
    path = fx.save(original.state_dict(), tmp_path / "mb.pt")
    model = load_checkpoint(path, "torchvision:mobilenet_v3_small")
    x = torch.randn(2, 3, 32, 32)
    _assert_same_logits(model, original, x)
    assert model.info.head.feature_dim == 1024 and any("classifier.3" in n for n in model.info.notes)


def test_vit_heads_head_convention_via_user_file(tmp_path, arch_file):
    builder = archs.load_user_builder(archs.resolve_arch(f"{arch_file}:tiny_vit", where="t"))
    torch.manual_seed(0)
    original = builder().eval()
    path = fx.save(original.state_dict(), tmp_path / "vit.pt")
    model = load_checkpoint(path, f"{arch_file}:tiny_vit")
    _assert_same_logits(model, original)
    assert model.info.head.num_classes == 6 and any("heads.head" in n for n in model.info.notes)


class _FakeTimmNet(nn.Module):
    pretrained_cfg = {"input_size": (3, 16, 16), "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.stem = fx.tiny_featurizer()
        self.head = nn.Linear(fx.FEATURE_DIM, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x):
        return self.stem(x)

    def get_classifier(self):
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        self.head = nn.Linear(fx.FEATURE_DIM, num_classes) if num_classes else nn.Identity()

    def forward(self, x):
        return self.head(self.forward_features(x))


def test_timm_name_with_a_stand_in_timm(tmp_path, monkeypatch):
    fake = types.SimpleNamespace(
        is_model=lambda name: name == "fakenet_tiny",
        list_models=lambda: ["fakenet_tiny"],
        create_model=lambda name, pretrained=False, num_classes=1000: _FakeTimmNet(num_classes),
    )
    monkeypatch.setitem(sys.modules, "timm", fake)
    torch.manual_seed(0)
    original = fx.randomize_bn(_FakeTimmNet(9)).eval()
    path = fx.save(original.state_dict(), tmp_path / "t.pt")
    model = load_checkpoint(path, "fakenet_tiny")
    _assert_same_logits(model, original)
    assert model.info.arch == "fakenet_tiny (timm)" and model.info.transform.input_size == (16, 16)
    # timm's evaluation transform: the short side to floor(16 / 0.875) = 18, center crop 16
    assert (model.info.transform.size, model.info.transform.resize) == ((18, 18), "short-side")
    assert model.info.transform_source == "timm config"
    assert any("timm get_classifier" in n for n in model.info.notes)
    with pytest.raises(CheckpointError, match="close matches: fakenet_tiny"):
        load_checkpoint(path, "fakenet_tiyn")


def test_real_timm_model(tmp_path):
    timm = pytest.importorskip("timm")
    original = timm.create_model("resnet18", pretrained=False, num_classes=4).eval()
    path = fx.save(original.state_dict(), tmp_path / "timm.pt")
    _assert_same_logits(load_checkpoint(path, "timm:resnet18"), original, torch.randn(2, 3, 32, 32))


def test_user_file_arch_and_errors(tmp_path, arch_file):
    torch.manual_seed(0)
    original = fx.randomize_bn(fx.BackboneFcNet(11))
    path = fx.save(original.state_dict(), tmp_path / "bf.pt")
    model = load_checkpoint(path, f"{arch_file}:backbone_fc")
    _assert_same_logits(model, original)
    assert model.info.head.num_classes == 11 and "user file" in model.info.arch
    with pytest.raises(CheckpointError, match="has no function 'nope'.*backbone_fc"):
        load_checkpoint(path, f"{arch_file}:nope")
    with pytest.raises(CheckpointError, match="architecture file not found"):
        load_checkpoint(path, f"{tmp_path / 'missing.py'}:build")
    with pytest.raises(CheckpointError, match="FILE.py:build_fn"):
        load_checkpoint(path, str(arch_file))
    broken = fx.write_arch_file(tmp_path / "broken.py", "def build(:\n")
    with pytest.raises(CheckpointError, match="importing the architecture file failed: SyntaxError"):
        load_checkpoint(path, f"{broken}:build")


@pytest.mark.parametrize("key", ["state_dict", "model_state_dict", "model", "model_dict"])
def test_nested_dicts_with_ddp_prefix(tmp_path, arch_file, key):
    torch.manual_seed(0)
    original = fx.BackboneFcNet(4)
    ddp = {f"module.{k}": v for k, v in original.state_dict().items()}
    path = fx.save({key: ddp, "epoch": 12, "optimizer": {"lr": 0.1}}, tmp_path / "n.pt")
    model = load_checkpoint(path, f"{arch_file}:backbone_fc")
    _assert_same_logits(model, original)
    assert any("'module.'" in n for n in model.info.notes)
    assert any(repr(key) in n for n in model.info.notes)


def test_legacy_torch_save_and_fp16(tmp_path, arch_file):
    torch.manual_seed(0)
    original = fx.BackboneFcNet(4)
    path = fx.save(original.half().state_dict(), tmp_path / "old.pt", legacy=True)
    model = load_checkpoint(path, f"{arch_file}:backbone_fc")
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert "legacy" in model.info.format and any("float16" in n for n in model.info.notes)
    _assert_same_logits(model, original.float())


# ---------------------------------------------------------------------------- DomainBed / TSD
@pytest.fixture(scope="module")
def resnet18_body(resnet18) -> nn.Module:
    """The resnet18 fixture without its fc: what DomainBed's ResNet featurizer wraps."""
    with torch.device("meta"):
        body = torchvision.models.resnet18()
    body.fc = nn.Identity()
    body.load_state_dict({k: v.clone() for k, v in resnet18.state_dict().items() if not k.startswith("fc.")}, assign=True)
    return body.eval()


@pytest.mark.parametrize("tsd_style", [False, True])
def test_domainbed_tsd_checkpoint(tmp_path, resnet18_body, tsd_style):
    """DomainBed: classifier.* (no duplicates here); TSD: classifier.fc.* + network.* twins."""
    body, classifier = resnet18_body, nn.Linear(512, 7)
    feat_state = {f"network.{k}": v for k, v in body.state_dict().items()}
    cls_state = {f"fc.{k}" if tsd_style else k: v for k, v in classifier.state_dict().items()}
    path = fx.write_domainbed(tmp_path / "model.pkl", feat_state, cls_state, input_shape=(3, 64, 64),
                              with_network=tsd_style)
    model = load_checkpoint(path, "resnet18")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), classifier(body(x)), rtol=1e-5, atol=1e-5)
    info = model.info
    assert info.format == "DomainBed/TSD checkpoint" and info.transform.size == (64, 64)
    assert any("duplicate network.*" in n for n in info.notes) == tsd_style
    assert type(model.classifier) is nn.Linear


def test_domainbed_arch_from_hparams(tmp_path, resnet18_body):
    feat_state = {f"network.{k}": v for k, v in resnet18_body.state_dict().items()}
    path = fx.write_domainbed(tmp_path / "a.pkl", feat_state, nn.Linear(512, 7).state_dict(),
                              hparams={"resnet18": True}, with_network=False)
    info = inspect_checkpoint(path)
    assert info.arch.startswith("resnet18") and any("model_hparams" in n for n in info.notes)


def test_domainbed_duplicates_must_agree(tmp_path, arch_file):
    featurizer, classifier = fx.tiny_featurizer(), nn.Linear(fx.FEATURE_DIM, 3)
    path = fx.write_domainbed(tmp_path / "a.pkl", featurizer.state_dict(), classifier.state_dict())
    model = load_checkpoint(path, f"{arch_file}:featurizer_only")
    _assert_same_logits(model, nn.Sequential(featurizer, classifier))
    payload = torch.load(path, weights_only=True)
    payload["model_dict"]["network.1.weight"] = payload["model_dict"]["network.1.weight"] + 1
    bad = fx.save(payload, tmp_path / "b.pkl")
    with pytest.raises(CheckpointError, match="network.1.weight differs from classifier.weight"):
        load_checkpoint(bad, f"{arch_file}:featurizer_only")
    del payload["model_dict"]["classifier.weight"]
    only_network = fx.save(payload, tmp_path / "c.pkl")
    with pytest.raises(CheckpointError, match="network.1.weight has no twin"):
        load_checkpoint(only_network, f"{arch_file}:featurizer_only")
    state = torch.load(path, weights_only=True)["model_dict"]
    network = {k: v for k, v in state.items() if k.startswith("network.")}
    network_only = fx.save({"args": {}, "model_dict": network}, tmp_path / "d.pkl")
    model = load_checkpoint(network_only, f"{arch_file}:featurizer_only")
    assert any("renamed network.0.*" in n for n in model.info.notes)
    _assert_same_logits(model, nn.Sequential(featurizer, classifier))


# ---------------------------------------------------------------------------- PyCIL
def _pycil_cosine_file(tmp_path, nb_proxy=3, classes=5):
    torch.manual_seed(0)
    net = fx.PyCILNet(fx.cosine_head(classes, nb_proxy))
    fx.randomize_bn(net)
    convnet = net.convnet.state_dict()
    path = fx.write_pycil(tmp_path / "pycil_1.pkl", convnet, net.fc.state_dict())
    return path, net


@pytest.mark.parametrize(
    ("kwargs", "expected_p", "note"),
    [
        ({"nb_proxy": 3}, 3, "nb_proxy=3 taken from --nb-proxy"),
        ({"num_classes": 5}, 3, "15 proxy rows / 5 classes (class count 5 taken from the dataset)"),
        ({}, 1, "assuming 1 proxy per class"),
    ],
)
def test_pycil_cosine_nb_proxy(tmp_path, arch_file, kwargs, expected_p, note):
    path, net = _pycil_cosine_file(tmp_path)
    model = load_checkpoint(path, f"{arch_file}:dict_convnet", **kwargs)
    info = model.info
    assert info.format.startswith("PyCIL") and info.head.nb_proxy == expected_p
    assert info.head.num_classes == 15 // expected_p and any(note in n for n in info.notes)
    feats = net.eval().convnet(X)["features"]
    w = net.fc.weight.detach()
    expected = net.fc.sigma * reduce_proxies(nn.functional.normalize(feats) @ nn.functional.normalize(w).T, expected_p)
    torch.testing.assert_close(_logits(model), expected.detach(), rtol=1e-5, atol=1e-5)
    if expected_p == 3:
        _assert_same_logits(model, net)


def test_pycil_rows_not_divisible(tmp_path, arch_file):
    path, _ = _pycil_cosine_file(tmp_path)
    with pytest.raises(CheckpointError, match="15 proxy rows, not divisible by nb_proxy=4"):
        load_checkpoint(path, f"{arch_file}:dict_convnet", nb_proxy=4)
    with pytest.raises(CheckpointError, match="not a multiple of the 4 classes"):
        load_checkpoint(path, f"{arch_file}:dict_convnet", num_classes=4)


def test_pycil_split_cosine_with_torchvision_backbone(tmp_path, resnet18, resnet18_body):
    convnet = {k: v for k, v in resnet18.state_dict().items() if not k.startswith("fc.")}
    torch.manual_seed(3)
    head = SplitCosineLinear(512, 4, 3, nb_proxy=2)
    with torch.no_grad():
        head.sigma.fill_(5.0)
    path = fx.write_pycil(tmp_path / "ucir.pkl", convnet, head.state_dict(), separate=True)
    model = load_checkpoint(path, "resnet18", nb_proxy=2)
    assert isinstance(model.classifier, SplitCosineLinear)
    assert (model.info.head.num_classes, model.info.head.nb_proxy) == (7, 2)
    body = resnet18_body
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), head(body(x)), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------- TorchScript
def test_torchscript_featurizer_classifier(tmp_path):
    torch.manual_seed(0)
    original = fx.randomize_bn(fx.FeaturizerClassifierNet()).eval()
    path = fx.write_torchscript(tmp_path / "ts.pt", original)
    model = load_checkpoint(path)
    _assert_same_logits(model, original)
    assert type(model.classifier) is nn.Linear and model.info.format == "TorchScript archive"
    assert any("converted to an equivalent Linear" in n for n in model.info.notes)


def test_torchscript_foreign_cosine_head_backbone_fc(tmp_path):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = fx.tiny_featurizer()
            self.fc = fx.ScriptableCosine(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.backbone(x))["logits"]

    original = fx.randomize_bn(Net()).eval()
    path = fx.write_torchscript(tmp_path / "ts.pt", original)
    model = load_checkpoint(path)
    _assert_same_logits(model, original)
    assert isinstance(model.classifier, CosineLinear) and model.info.head.nb_proxy == 2
    assert model.info.head.num_classes == 4


def test_torchscript_without_split_attributes(tmp_path, arch_file):
    torch.manual_seed(0)
    original = fx.BackboneFcNet(4)
    original.trunk = original.backbone  # noqa: B010 - rename the pair so no convention applies
    del original.backbone

    class Renamed(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.trunk, self.out = net.trunk, net.fc

        def forward(self, x):
            return self.out(self.trunk(x))

    scripted_src = Renamed(original).eval()
    path = fx.write_torchscript(tmp_path / "ts.pt", scripted_src)
    with pytest.raises(CheckpointError, match="pass --split HEAD_ATTR; or pass --arch"):
        load_checkpoint(path)
    model = load_checkpoint(path, split="trunk:out")
    _assert_same_logits(model, scripted_src)
    with pytest.raises(ParameterError, match="cannot have its head replaced"):
        load_checkpoint(path, split="out")


# ---------------------------------------------------------------------------- safetensors
def test_safetensors_with_and_without_metadata(tmp_path, arch_file, test_arch):
    torch.manual_seed(0)
    original = fx.BackboneFcNet(4)
    path = fx.write_safetensors(tmp_path / "w.safetensors", original.state_dict())
    with pytest.raises(CheckpointError, match="safetensors file does not say which architecture.*pass --arch"):
        load_checkpoint(path)
    model = load_checkpoint(path, f"{arch_file}:backbone_fc")
    _assert_same_logits(model, original)
    assert model.info.format == "safetensors"

    tiny = test_arch(head="cosine", nb_proxy=2)
    meta = {"format": "protoview-checkpoint", "version": 1, "arch": "test-tiny",
            "arch_kwargs": {"head": "cosine", "nb_proxy": 2}, "class_names": ["a", "b", "c", "d", "e"],
            "transform": {"size": [16, 16], "channels": 3, "mean": [0, 0, 0], "std": [1, 1, 1]}}
    path = fx.write_safetensors(tmp_path / "m.safetensors", tiny.state_dict(), meta)
    model = load_checkpoint(path)
    _assert_same_logits(model, tiny)
    assert model.info.format == "safetensors with protoview metadata v1"
    assert model.info.head.nb_proxy == 2 and model.info.class_names[0] == "a"


# ---------------------------------------------------------------------------- pickled code
@pytest.mark.parametrize("legacy", [False, True])
def test_malicious_pickle_never_runs_without_trust(tmp_path, legacy):
    marker = tmp_path / "pwned"
    path = fx.write_malicious(tmp_path / "evil.pt", marker, legacy=legacy)
    with pytest.raises(CheckpointError, match="contains pickled Python code.*--trust-checkpoint") as err:
        load_checkpoint(path, "resnet18")
    assert "io.open" in str(err.value) and str(path) in str(err.value)  # builtins.open pickles as io.open
    assert not marker.exists()
    with pytest.raises(CheckpointError):
        load_checkpoint(path, "resnet18", trust=True)  # the user's choice: the code runs
    assert marker.exists()  # proves the file really carries code


def test_full_pickled_module_needs_trust(tmp_path):
    torch.manual_seed(0)
    net = fx.randomize_bn(fx.PyCILNet(fx.cosine_head(5, 2))).eval()
    path = fx.save(net, tmp_path / "full.pt")
    with pytest.raises(CheckpointError, match=r"pickled Python code \(.*tests\._ckpt_fixtures\."):
        load_checkpoint(path)
    model = load_checkpoint(path, trust=True)
    _assert_same_logits(model, net)
    assert model.info.format == "pickled module (trusted)" and model.info.head.nb_proxy == 2
    assert any("'features' entry" in n for n in model.info.notes)


def test_plain_pickle_needs_trust(tmp_path):
    import pickle

    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps({"fc.weight": torch.ones(2, 2)}, protocol=4))
    with pytest.raises(CheckpointError, match="plain Python pickle.*--trust-checkpoint"):
        load_checkpoint(path, "resnet18")


def test_argparse_namespace_and_numpy_metadata_load_safely(tmp_path, arch_file):
    import argparse

    import numpy as np

    original = fx.BackboneFcNet(4)
    payload = {"args": argparse.Namespace(lr=0.1), "acc": np.float64(0.93), "state_dict": original.state_dict()}
    model = load_checkpoint(fx.save(payload, tmp_path / "x.pt"), f"{arch_file}:backbone_fc")
    _assert_same_logits(model, original)


# ---------------------------------------------------------------------------- splitting
def test_split_override_and_bad_split(tmp_path, arch_file):
    torch.manual_seed(0)
    original = fx.BackboneFcNet(4)
    path = fx.save(original.state_dict(), tmp_path / "bf.pt")
    model = load_checkpoint(path, f"{arch_file}:backbone_fc", split="fc")
    _assert_same_logits(model, original)
    assert any("--split fc" in n for n in model.info.notes)
    with pytest.raises(ParameterError, match="no submodule 'head.fc'.*backbone, fc"):
        load_checkpoint(path, f"{arch_file}:backbone_fc", split="head.fc")


def test_dotted_split_override_when_no_convention_applies(tmp_path, arch_file):
    torch.manual_seed(0)
    original = fx.randomize_bn(fx.NoConventionNet()).eval()
    path = fx.save(original.state_dict(), tmp_path / "nc.pt")
    with pytest.raises(CheckpointError, match="cannot find the classifier head|pass --split"):
        load_checkpoint(path, f"{arch_file}:no_convention")
    model = load_checkpoint(path, f"{arch_file}:no_convention", split="top.1")
    _assert_same_logits(model, original)
    assert model.featurizer.top[1].__class__ is nn.Identity and model.info.head.num_classes == 3


def test_mlp_head_is_refused(tmp_path, arch_file):
    path = fx.save(fx.MLPHeadNet().state_dict(), tmp_path / "mlp.pt")
    with pytest.raises(CheckpointError, match="unsupported classifier head 'classifier' \\(Sequential\\).*nn.Linear, CosineLinear"):
        load_checkpoint(path, f"{arch_file}:mlp_head")


def test_split_that_changes_logits_warns(tmp_path):
    net = fx.ScaledLogitsNet()
    path = fx.save(net, tmp_path / "scaled.pt")
    with pytest.warns(ProtoviewWarning, match="logits differ"):
        model = load_checkpoint(path, trust=True)
    assert any("logits differ" in n for n in model.info.notes)


# ---------------------------------------------------------------------------- bad input
def test_missing_directory_empty_random_text(tmp_path):
    with pytest.raises(CheckpointError, match="file not found") as err:
        load_checkpoint(tmp_path / "nope.pt")
    assert str(err.value).startswith(str(tmp_path / "nope.pt"))
    with pytest.raises(CheckpointError, match="is a directory"):
        load_checkpoint(tmp_path)
    empty = tmp_path / "empty.pt"
    empty.touch()
    with pytest.raises(CheckpointError, match=r"empty \(0 bytes\)"):
        load_checkpoint(empty)
    noise = tmp_path / "noise.pt"
    noise.write_bytes(os.urandom(4096).replace(b"\x80", b"\x81").replace(b"PK", b"pk"))
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        load_checkpoint(noise)
    text = tmp_path / "notes.pth"
    text.write_text("epoch 3: loss 0.2\n")
    with pytest.raises(CheckpointError, match="is a text file"):
        load_checkpoint(text)


@pytest.mark.parametrize("legacy", [False, True])
def test_truncated_files(tmp_path, legacy):
    path = fx.save(fx.BackboneFcNet(4).state_dict(), tmp_path / "cut.pt", legacy=legacy)
    fx.truncate(path, 0.5)
    with pytest.raises(CheckpointError, match="truncated or damaged|damaged or truncated") as err:
        load_checkpoint(path, "resnet18")
    assert "pickled Python code" not in str(err.value)


def test_truncated_safetensors_and_torchscript(tmp_path):
    st = fx.truncate(fx.write_safetensors(tmp_path / "w.safetensors", fx.BackboneFcNet().state_dict()), 0.6)
    with pytest.raises(CheckpointError, match="damaged or truncated safetensors"):
        load_checkpoint(st, "resnet18")
    ts = fx.truncate(fx.write_torchscript(tmp_path / "ts.pt", fx.FeaturizerClassifierNet()), 0.7)
    with pytest.raises(CheckpointError, match="truncated or damaged zip"):
        load_checkpoint(ts)


def test_plain_state_dict_without_arch_and_unknown_arch(tmp_path, resnet18):
    path = fx.save(resnet18.state_dict(), tmp_path / "r.pt")
    with pytest.raises(CheckpointError, match="plain state_dict does not say which architecture.*pass --arch"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="unknown architecture 'resnet81'; close matches: .*resnet18"):
        load_checkpoint(path, "resnet81")


def test_state_dict_that_does_not_fit(tmp_path, resnet18, arch_file):
    path = fx.save(resnet18.state_dict(), tmp_path / "r.pt")
    with pytest.raises(CheckpointError, match=r"do not fit architecture resnet34.*missing keys \(first: layer1\.2\."):
        load_checkpoint(path, "resnet34")
    small = fx.save(fx.BackboneFcNet(4).state_dict(), tmp_path / "s.pt")
    with pytest.raises(CheckpointError, match=r"shape mismatches \(backbone\.0\.weight: checkpoint \[8, 3, 3, 3\] vs model \[8, 3, 5, 5\]"):
        load_checkpoint(small, f"{arch_file}:wide_backbone_fc")


def test_head_dim_differs_from_feature_dim(tmp_path, test_arch):
    model = test_arch(head_dim=6)
    path = fx.write_protoview(tmp_path / "p.pt", model, "test-tiny", {"head_dim": 6})
    with pytest.raises(CheckpointError, match="featurizer gives 8-d features but the head expects 6-d"):
        load_checkpoint(path)


def test_nan_weights_named(tmp_path, arch_file):
    state = fx.BackboneFcNet(4).state_dict()
    state["backbone.1.running_var"][2] = float("inf")
    state["fc.weight"][0, 0] = float("nan")
    path = fx.save(state, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match=r"NaN or Inf values \(first bad tensor: backbone\.1\.running_var\)"):
        load_checkpoint(path, f"{arch_file}:backbone_fc")


def test_head_with_zero_classes(tmp_path, arch_file):
    state = fx.BackboneFcNet(4).state_dict()
    state["fc.weight"], state["fc.bias"] = torch.zeros(0, fx.FEATURE_DIM), torch.zeros(0)
    path = fx.save(state, tmp_path / "zero.pt")
    with pytest.raises(CheckpointError, match="0 classes"):
        load_checkpoint(path, f"{arch_file}:backbone_fc")


def test_non_state_dict_payloads(tmp_path):
    with pytest.raises(CheckpointError, match="holds no state_dict.*'epoch'"):
        load_checkpoint(fx.save({"epoch": 3, "lr": 0.1}, tmp_path / "a.pt"), "resnet18")
    with pytest.raises(CheckpointError, match="holds a list"):
        load_checkpoint(fx.save([torch.ones(2)], tmp_path / "b.pt"), "resnet18")
    with pytest.raises(CheckpointError, match="'state_dict' entry is empty"):
        load_checkpoint(fx.save({"state_dict": {}}, tmp_path / "c.pt"), "resnet18")


def test_bad_arguments(tmp_path, arch_file):
    path = fx.save(fx.BackboneFcNet(4).state_dict(), tmp_path / "bf.pt")
    with pytest.raises(ParameterError, match="--nb-proxy"):
        load_checkpoint(path, f"{arch_file}:backbone_fc", nb_proxy=0)
    with pytest.raises(ParameterError, match="--num-classes"):
        load_checkpoint(path, f"{arch_file}:backbone_fc", num_classes=-2)
    with pytest.raises(ParameterError, match="--device"):
        load_checkpoint(path, f"{arch_file}:backbone_fc", map_location="tpu:0")
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="CUDA is not available"):
            load_checkpoint(path, f"{arch_file}:backbone_fc", map_location="cuda")


def test_file_sha256(tmp_path):
    path = tmp_path / "blob.bin"
    data = os.urandom(3 * (1 << 20) + 17)
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()
    with pytest.raises(CheckpointError, match="file not found"):
        file_sha256(tmp_path / "missing.bin")
    with pytest.raises(CheckpointError, match="empty"):
        (tmp_path / "e").touch()
        file_sha256(tmp_path / "e")


@pytest.mark.gpu
def test_loads_onto_cuda(tmp_path, arch_file):
    original = fx.BackboneFcNet(4).eval()
    path = fx.save(original.state_dict(), tmp_path / "bf.pt")
    model = load_checkpoint(path, f"{arch_file}:backbone_fc", map_location="cuda")
    assert next(model.parameters()).is_cuda
    torch.testing.assert_close(_logits(model, X.cuda()).cpu(), _logits(original), rtol=1e-4, atol=1e-4)


def test_domainbed_resnet50_augmix_builds_timms_resnet50_whatever_resnet18_says(tmp_path):
    """DomainBed's current defaults (resnet18=False or True, resnet50_augmix=True) build timm's
    resnet50.ram_in1k (networks.ResNet, b93c22a): the weights are a ResNet-50's."""
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    network = timm.create_model("resnet50.ram_in1k", pretrained=False)
    network.fc = nn.Identity()
    network.eval()
    classifier = nn.Linear(2048, 7)
    feat_state = {f"network.{k}": v for k, v in network.state_dict().items()}
    path = fx.write_domainbed(tmp_path / "augmix.pkl", feat_state, classifier.state_dict(),
                              hparams={"resnet18": True, "resnet50_augmix": True},
                              input_shape=(3, 224, 224), with_network=False)
    model = load_checkpoint(path)
    assert "resnet50.ram_in1k" in model.info.arch
    assert any("resnet50_augmix=True" in n for n in model.info.notes)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), classifier(network(x)), rtol=1e-5, atol=1e-5)
    assert model.info.transform.size == (224, 224)  # DomainBed's loader, not timm's
