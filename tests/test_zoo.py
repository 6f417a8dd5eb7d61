"""The architectures of the common TTA checkpoints, loaded by name from their real key layouts.

Each test builds the reference model (the ported original in ``tests/oracles/``, or the
DomainBed / TSD featurizer as their code builds it), saves it the way its project saves
it, loads the file with protoview and compares the logits bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from protoview.core.checkpoint import inspect_checkpoint, load_checkpoint, resolve_arch
from protoview.core.checkpoint._zoo import CifarResNet, WideResNet
from protoview.errors import CheckpointError
from tests import _ckpt_fixtures as fx
from tests.oracles import pycil_cifar_resnet as pycil
from tests.oracles import robustbench_wrn as robustbench
from tests.oracles.pycil_cosine import CosineLinear as PyCILCosine


def _inputs(n: int = 3, size: int = 32, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _perturb_affine_and_stats(module: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics and affine weights, so eval mode and every key matter."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=generator) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
                m.weight.copy_(1 + 0.1 * torch.randn(m.num_features, generator=generator))
                m.bias.copy_(0.1 * torch.randn(m.num_features, generator=generator))
            elif isinstance(m, nn.Linear) and m.bias is not None:
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=generator))
    return module.eval()


# ---------------------------------------------------------------------------- RobustBench
@pytest.mark.slow
def test_robustbench_standard_wrn28_10_bit_for_bit(tmp_path):
    """RobustBench's Standard.pt: {'state_dict': {'module.conv1.weight', ...}} of WideResNet-28-10."""
    torch.manual_seed(0)
    reference = _perturb_affine_and_stats(robustbench.WideResNet(depth=28, widen_factor=10))
    state = {f"module.{k}": v for k, v in reference.state_dict().items()}
    assert "module.block1.layer.0.bn1.weight" in state and "module.block1.layer.0.convShortcut.weight" in state
    path = fx.save({"state_dict": state}, tmp_path / "Standard.pt")
    x = _inputs(2)
    with torch.no_grad():
        expected = reference(x)
    model = load_checkpoint(path, "robustbench:Standard")
    with torch.no_grad():
        assert torch.equal(model(x), expected)
    assert model.info.arch == "wrn28_10" and model.info.head.num_classes == 10
    assert model.info.head.feature_dim == 640
    assert model.info.transform.size == (32, 32) and model.info.transform.mean == (0.0, 0.0, 0.0)
    assert model.info.transform_source == "built-in"


@pytest.mark.parametrize("classes", [10, 100])
def test_wide_resnet_variants_match_reference(tmp_path, classes):
    """A smaller WideResNet (depth 10, width 2) of the same code, CIFAR-10 and CIFAR-100 heads,
    as a plain state_dict with a sub_block1 (a variant RobustBench also builds)."""
    torch.manual_seed(1)
    reference = _perturb_affine_and_stats(
        robustbench.WideResNet(depth=10, num_classes=classes, widen_factor=2, sub_block1=True)
    )
    ours = WideResNet(depth=10, num_classes=classes, widen_factor=2, sub_block1=True)
    ours.load_state_dict(reference.state_dict())
    assert list(ours.state_dict()) == list(reference.state_dict())
    x = _inputs(4, seed=2)
    with torch.no_grad():
        assert torch.equal(ours.eval()(x), reference(x))


def test_builtin_takes_the_head_rows_of_a_cifar100_checkpoint(tmp_path):
    """A plain state_dict of a whole CIFAR-100 resnet32 (its own fc is the head, 100 rows)."""
    torch.manual_seed(2)
    reference = _perturb_affine_and_stats(CifarResNet(32, num_classes=100))
    path = fx.save(reference.state_dict(), tmp_path / "resnet32_c100.pt")
    model = load_checkpoint(path, "cifar_resnet32")
    assert model.info.head.num_classes == 100 and not any("rebuilt" in n for n in model.info.notes)
    x = _inputs(2, seed=3)
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))


# ---------------------------------------------------------------------------- PyCIL
def _pycil_network(head: nn.Module, seed: int = 0) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    convnet = _perturb_affine_and_stats(pycil.resnet32(), seed)
    return convnet, head


@pytest.mark.parametrize("name", ["cifar_resnet32", "pycil:resnet32"])
def test_pycil_resnet32_simple_linear_bit_for_bit(tmp_path, name):
    """PyCIL's save_checkpoint: {'tasks', 'model_state_dict'} with convnet.* (and its unused
    convnet.fc.*) + fc.* of a SimpleLinear head."""
    torch.manual_seed(3)
    fc = pycil.SimpleLinear(64, 20)
    with torch.no_grad():
        fc.bias.normal_()
    convnet, fc = _pycil_network(fc)
    state = {f"convnet.{k}": v for k, v in convnet.state_dict().items()}
    state |= {f"fc.{k}": v for k, v in fc.state_dict().items()}
    assert "convnet.stage_1.0.conv_a.weight" in state and "convnet.fc.weight" in state
    path = fx.save({"tasks": 1, "model_state_dict": state}, tmp_path / "icarl_1.pkl")
    model = load_checkpoint(path, name)
    x = _inputs(3, seed=4)
    with torch.no_grad():
        assert torch.equal(model(x), pycil.incremental_logits(convnet, fc, x))
    info = model.info
    assert info.arch == "cifar_resnet32" and info.head.num_classes == 20 and info.head.feature_dim == 64
    assert any("convnet.fc.*" in n for n in info.notes), info.notes  # PyCIL's unused fc is named
    assert any("shuffle=True, seed 1993" in n for n in info.notes)  # its class order is its own
    assert info.transform.size == (32, 32)


def test_pycil_resnet32_cosine_head(tmp_path):
    """A UCIR/PODNet-style CosineLinear head with 2 proxies per class on PyCIL's resnet32."""
    torch.manual_seed(4)
    fc = PyCILCosine(64, 10, nb_proxy=2, to_reduce=True, sigma=True)
    with torch.no_grad():
        fc.sigma.fill_(5.0)
    convnet, fc = _pycil_network(fc, seed=5)
    path = fx.write_pycil(tmp_path / "podnet_1.pkl", convnet.state_dict(), fc.state_dict(), separate=True)
    model = load_checkpoint(path, "cifar_resnet32", nb_proxy=2)
    x = _inputs(3, seed=6)
    with torch.no_grad():
        torch.testing.assert_close(model(x), pycil.incremental_logits(convnet, fc, x), rtol=0, atol=1e-6)
    assert model.info.head.num_classes == 10 and model.info.head.nb_proxy == 2


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110])
def test_cifar_resnet_depths_match_reference(depth):
    torch.manual_seed(depth)
    reference = _perturb_affine_and_stats(pycil.CifarResNet(pycil.ResNetBasicblock, depth))
    ours = CifarResNet(depth, num_classes=10)
    ours.load_state_dict(reference.state_dict())
    assert list(ours.state_dict()) == list(reference.state_dict())
    x = _inputs(2, seed=depth)
    with torch.no_grad():
        features = reference(x)["features"]
        assert torch.equal(ours.eval()(x), reference.fc(features))


def test_builtin_names_and_bad_depths():
    assert resolve_arch("pycil:resnet110", where="x").target == "cifar_resnet110"
    assert resolve_arch("robustbench:Standard", where="x").label == "wrn28_10"
    with pytest.raises(CheckpointError, match="unknown architecture 'wrn28_1'.*wrn28_10"):
        resolve_arch("wrn28_1", where="x")
    with pytest.raises(ValueError, match="6n \\+ 4"):
        WideResNet(depth=27)
    with pytest.raises(ValueError, match="6n \\+ 2"):
        CifarResNet(depth=33)


def test_wrn_weights_of_another_width_are_refused(tmp_path):
    torch.manual_seed(5)
    narrow = robustbench.WideResNet(depth=28, widen_factor=2)
    path = fx.save({"state_dict": narrow.state_dict()}, tmp_path / "narrow.pt")
    with pytest.raises(CheckpointError, match="narrow.pt: the weights do not fit architecture wrn28_10.*shape"):
        load_checkpoint(path, "wrn28_10")


# ---------------------------------------------------------------------------- DomainBed / TSD
class _DomainBedResNet(nn.Module):
    """DomainBed's ``networks.ResNet`` as far as its weights go: torchvision's resnet in
    ``self.network`` with ``fc`` replaced by an identity (``domainbed/networks.py``)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.network = getattr(torchvision.models, name)()
        del self.network.fc
        self.network.fc = nn.Identity()
        self.dropout = nn.Dropout(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.network(x))


class _TSDResBase(nn.Module):
    """TSD's ``network/img_network.py`` ``ResBase``: the resnet's modules copied to the top level."""

    def __init__(self, name: str) -> None:
        super().__init__()
        resnet = getattr(torchvision.models, name)()
        for part in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool"):
            setattr(self, part, getattr(resnet, part))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.avgpool(self.layer4(self.layer3(self.layer2(self.layer1(x)))))
        return x.view(x.size(0), -1)


class _TSDClassifier(nn.Module):
    """TSD's ``feat_classifier`` of type 'linear': ``self.fc = nn.Linear``."""

    def __init__(self, dim: int, classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def _algorithm_state(featurizer: nn.Module, classifier: nn.Module) -> dict[str, torch.Tensor]:
    """``Algorithm.state_dict()`` of DomainBed's ERM / TSD's ERM: featurizer, classifier and
    ``network = nn.Sequential(featurizer, classifier)`` (the same tensors twice)."""

    class Algorithm(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.featurizer, self.classifier = featurizer, classifier
            self.network = nn.Sequential(featurizer, classifier)

    return dict(Algorithm().state_dict())


@pytest.mark.parametrize("name, dim", [("resnet18", 512), ("resnet50", 2048)])
def test_domainbed_erm_checkpoint_bit_for_bit(tmp_path, name, dim):
    """DomainBed's save_checkpoint: args, model_input_shape, model_num_classes, model_hparams,
    model_dict; the arch comes from model_hparams['resnet18']."""
    torch.manual_seed(6)
    featurizer = _perturb_affine_and_stats(_DomainBedResNet(name))
    classifier = _perturb_affine_and_stats(nn.Linear(dim, 7))
    payload = {
        "args": {"dataset": "PACS", "test_envs": [2], "algorithm": "ERM"},
        "model_input_shape": (3, 224, 224), "model_num_classes": 7, "model_num_domains": 3,
        "model_hparams": {"resnet18": name == "resnet18", "resnet_dropout": 0.0},
        "model_dict": _algorithm_state(featurizer, classifier),
    }
    path = fx.save(payload, tmp_path / "model.pkl")
    model = load_checkpoint(path)
    x = _inputs(2, size=64, seed=7)
    with torch.no_grad():
        assert torch.equal(model(x), classifier(featurizer(x)))
    info = model.info
    assert info.arch.startswith(name) and info.head.num_classes == 7 and info.transform.size == (224, 224)
    assert info.trained_on == {"dataset": "PACS", "test_envs": [2]}


@pytest.mark.parametrize("name, dim", [("resnet18", 512), ("resnet50", 2048)])
def test_tsd_checkpoint_bit_for_bit(tmp_path, name, dim):
    """TSD's train.py save_checkpoint: {'args': vars(args), 'model_dict': alg.state_dict()}
    with ResBase (featurizer.conv1.*) and feat_classifier (classifier.fc.*); arch from args.net."""
    torch.manual_seed(7)
    featurizer = _perturb_affine_and_stats(_TSDResBase(name))
    classifier = _perturb_affine_and_stats(_TSDClassifier(dim, 7))
    args = {"dataset": "PACS", "test_envs": [0], "net": name, "algorithm": "ERM"}
    path = fx.save({"args": args, "model_dict": _algorithm_state(featurizer, classifier)}, tmp_path / "model.pkl")
    model = load_checkpoint(path)
    x = _inputs(2, size=64, seed=8)
    with torch.no_grad():
        assert torch.equal(model(x), classifier(featurizer(x)))
    assert model.info.arch.startswith(name) and any("args (net=" in n for n in model.info.notes)
    assert model.info.trained_on == {"dataset": "PACS", "test_envs": [0]}


@pytest.mark.parametrize("dataset, size, mean", [("PACS", (224, 224), (0.485, 0.456, 0.406)), ("dg5", (32, 32), (0.5, 0.5, 0.5))])
def test_tsd_checkpoint_gets_the_test_loader_of_tsd(tmp_path, dataset, size, mean):
    """TSD's train.py stores no input shape: the preprocessing is its test loader's
    (code/datautil/imgdata/util.py image_test: Resize((224, 224)) + ImageNet statistics, or
    32x32 with 0.5 for its dg5 digits), from the checkpoint, not torchvision's weights."""
    featurizer, classifier = _TSDResBase("resnet18"), _TSDClassifier(512, 7)
    args = {"dataset": dataset, "test_envs": [0], "net": "resnet18", "algorithm": "TSD"}
    path = fx.save({"args": args, "model_dict": _algorithm_state(featurizer, classifier)}, tmp_path / "model.pkl")
    info = inspect_checkpoint(path)
    assert info.transform_source == "checkpoint"
    assert info.transform.size == size and info.transform.resize == "exact" and info.transform.crop is None
    assert info.transform.mean == mean


def test_info_with_data_infers_the_proxies_per_class_as_adapt_does(tmp_path, capsys):
    """A PyCIL CosineLinear head of 10 classes x 2 proxies: ``info CKPT DATA`` said "20
    classes x 1 proxies ... cannot be matched" while adapt / export inferred 2 per class."""
    from protoview.cli import main
    from tests._benchmark_fixtures import make_cifar_c

    torch.manual_seed(4)
    fc = PyCILCosine(64, 10, nb_proxy=2, to_reduce=True, sigma=True)
    convnet, fc = _pycil_network(fc, seed=5)
    path = fx.write_pycil(tmp_path / "podnet_1.pkl", convnet.state_dict(), fc.state_dict(),
                          separate=True)
    root, _ = make_cifar_c(tmp_path / "CIFAR-10-C", ("fog",), n=4)
    assert main(["info", str(path), f"cifar10c:{root}:fog:5", "--arch", "pycil:resnet32"]) == 0
    out = capsys.readouterr().out
    assert "10 classes x 2 proxies" in out and "cannot be matched" not in out


@pytest.mark.parametrize("which", ["pycil", "robustbench"])
def test_a_state_dict_without_arch_names_the_arch_its_keys_are(tmp_path, which):
    """PyCIL / RobustBench state_dicts without --arch: the error suggests the fix."""
    from protoview.errors import CheckpointError

    if which == "pycil":
        convnet, fc = _pycil_network(pycil.SimpleLinear(64, 10))
        state = {f"convnet.{k}": v for k, v in convnet.state_dict().items()}
        state |= {f"fc.{k}": v for k, v in fc.state_dict().items()}
        expected = "its keys are PyCIL's CIFAR ResNet-32.*pass --arch pycil:resnet32"
    else:
        state = robustbench.WideResNet(depth=28, widen_factor=10).state_dict()
        expected = "its keys are RobustBench's WideResNet-28-10.*pass --arch robustbench:Standard"
    path = fx.save(state, tmp_path / f"{which}.pt")
    with pytest.raises(CheckpointError, match=expected) as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)


def test_a_pycil_model_on_cifar10_data_gets_pycils_cifar10_statistics(tmp_path, capsys):
    """PyCIL normalises each dataset with its own statistics (utils/data.py iCIFAR10): on
    CIFAR-10-C data a pycil:resnet32 took CIFAR-100's (32.5% against PyCIL's 62.0%)."""
    from protoview.cli import main
    from protoview.core.opening import open_model_and_data
    from tests._benchmark_fixtures import make_cifar_c

    convnet, fc = _pycil_network(pycil.SimpleLinear(64, 10))
    state = {f"convnet.{k}": v for k, v in convnet.state_dict().items()}
    state |= {f"fc.{k}": v for k, v in fc.state_dict().items()}
    path = fx.save({"tasks": 1, "model_state_dict": state}, tmp_path / "icarl_1.pkl")
    root, _ = make_cifar_c(tmp_path / "CIFAR-10-C", ("fog",), n=4)
    model, data = open_model_and_data(str(path), f"cifar10c:{root}:fog:5", arch="pycil:resnet32",
                                      class_order="data")  # the order: tests/test_class_order.py
    assert data.transform.mean == (0.4914, 0.4822, 0.4465)
    assert data.transform.std == (0.2023, 0.1994, 0.2010)
    assert "iCIFAR10" in model.info.transform_source
    images = np.load(root / "fog.npy")[16:20]  # severity 5 of n=4: rows 16..19, PyCIL's pipeline
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
    std = torch.tensor([0.2023, 0.1994, 0.2010]).view(1, 3, 1, 1)
    x = torch.stack([data[i][0] for i in range(4)])
    torch.testing.assert_close(x, (pixels - mean) / std, rtol=0, atol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), pycil.incremental_logits(convnet, fc, x))
    assert main(["info", str(path), f"cifar10c:{root}:fog:5", "--arch", "pycil:resnet32"]) == 0
    out = capsys.readouterr().out
    assert "PyCIL's iCIFAR10 statistics for cifar10c data" in out
    # CIFAR-100 data keep CIFAR-100's statistics (PyCIL's iCIFAR100)
    root100, _ = make_cifar_c(tmp_path / "CIFAR-100-C", ("fog",), n=4, num_classes=10)
    _, data100 = open_model_and_data(str(path), f"cifar100c:{root100}:fog:5", arch="pycil:resnet32")
    assert data100.transform.mean == (0.5071, 0.4867, 0.4408)
