"""Preprocessing (issue 13): explicit, visible, right by default, the same option everywhere.

The pixels are compared with torchvision's own transforms (the oracle of what a training
script fed the model); the sources of the default are checked one by one; float arrays are
never rescaled by a guess; ``--preprocess`` and its mistakes are one line each.
"""

from __future__ import annotations

import dataclasses

import h5py
import numpy as np
import pytest
import torch
import torchvision
import torchvision.transforms as T
from PIL import Image

from protoview.cli import main
from protoview.cli._common import progress_printer
from protoview.core.checkpoint import load_checkpoint
from protoview.core.data import ImageFolderDataset, open_dataset
from protoview.core.model import TransformSpec
from protoview.core.preprocess import (
    DEFAULT,
    PRESETS,
    check_spec,
    parse_preprocess,
    resolve_preprocess,
)
from protoview.core.snapshot import read_snapshot
from protoview.errors import DatasetError, ParameterError
from tests import _ckpt_fixtures as fx

ARCH_SOURCE = """
import torch
from torch import nn
from tests import _ckpt_fixtures as fx


class Net(nn.Module):
    def __init__(self, classes=5, channels=3):
        super().__init__()
        self.featurizer = nn.Sequential(
            nn.Conv2d(channels, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.Tanh(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(8, classes)

    def forward(self, x):
        return self.classifier(self.featurizer(x))


def build():
    return Net()


def dict_convnet():
    return fx.DictConvnet()
"""


@pytest.fixture()
def arch_file(tmp_path):
    return fx.write_arch_file(tmp_path / "tiny_arch.py", ARCH_SOURCE)


def _net(arch_file, seed: int = 0):
    from protoview.core.checkpoint.archs import load_user_builder, resolve_arch

    torch.manual_seed(seed)
    net = load_user_builder(resolve_arch(f"{arch_file}:build", where="test"))()
    return fx.randomize_bn(net, seed).eval()


# ---------------------------------------------------------------- the option
def test_presets_are_what_the_training_scripts_use():
    imagenet, domainbed = PRESETS["imagenet"], PRESETS["domainbed"]
    assert (imagenet.size, imagenet.resize, imagenet.crop) == ((256, 256), "short-side", (224, 224))
    assert (domainbed.size, domainbed.resize, domainbed.crop) == ((224, 224), "exact", None)
    assert imagenet.mean == domainbed.mean == (0.485, 0.456, 0.406)
    assert PRESETS["cifar10"].input_size == PRESETS["cifar100"].input_size == (32, 32)
    assert PRESETS["cifar10"].mean != PRESETS["cifar100"].mean
    assert PRESETS["none"].is_none and PRESETS["none"].input_size is None


@pytest.mark.parametrize(
    "text",
    ["none", "imagenet", "domainbed", "cifar10", "cifar100", "size=32,mean=0.5,std=0.25",
     "size=12x10,channels=1,mean=0.1,std=0.2,interpolation=bicubic",
     "size=40,resize=short-side,crop=32,mean=0.4914,0.4822,0.4465,std=0.2,0.2,0.2,scale=255",
     "cifar10,size=40"],
)
def test_option_round_trips(text):
    spec = parse_preprocess(text).apply(DEFAULT)
    again = parse_preprocess(spec.option()).apply(DEFAULT)
    assert again == spec and again.key() == spec.key()
    assert spec.describe()


def test_fields_override_a_preset_or_the_model_own():
    spec = parse_preprocess("cifar10,size=40").apply(DEFAULT)
    assert spec.size == (40, 40) and spec.mean == PRESETS["cifar10"].mean
    own = TransformSpec((16, 16), 1, (0.3,), (0.4,))
    spec, source = resolve_preprocess("mean=0.5,std=0.25", own, "checkpoint")
    assert (spec.size, spec.channels, spec.mean, source) == ((16, 16), 1, (0.5,), "option over checkpoint")
    spec, source = resolve_preprocess("cifar100", own, "checkpoint")
    assert spec == PRESETS["cifar100"] and source == "option"
    spec, source = resolve_preprocess(None, None, "default")
    assert spec == DEFAULT and source == "default"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("mean=0.5,0.5", "mean has 2 values; give 1 value, or one per channel (1 or 3)"),
        ("size=32,mean=0.5,0.5,std=0.2", "mean has 2 values for 3 channels"),
        ("size=0", "size must be at least 1 pixel"),
        ("size=32x0,mean=0,std=1", "at least 1 pixel"),
        ("imagenett", "unknown preset 'imagenett' (did you mean imagenet?)"),
        ("cifar-10", "unknown preset"),
        ("channels=2", "channels must be 1 or 3"),
        ("channels=rgb", "channels must be a whole number"),
        ("size=32,mean=0.5,std=0", "std must be positive"),
        ("sise=32", "unknown field 'sise' (did you mean size?)"),
        ("size=32,size=64", "size is given twice"),
        ("size=thirty", "size must be a whole number"),
        ("mean=nan", "mean must be a finite number"),
        ("size=32,resize=short-side,mean=0,std=1", "resize=short-side needs crop="),
        ("size=32,crop=40,mean=0,std=1", "crop 40 is larger than the resized image 32"),
        ("resize=long-side", "resize must be exact or short-side"),
        ("interpolation=lanczos", "interpolation must be"),
        ("scale=0", "scale must be a positive number"),
        ("none,size=32", "none takes no fields"),
        ("size=32,oops", "'oops' is not a field"),
    ],
)
def test_bad_options_are_one_line_naming_the_option(text, words):
    with pytest.raises(ParameterError) as info:
        parse_preprocess(text).apply(DEFAULT)
    assert info.value.where == "--preprocess" and words in info.value.problem
    assert "\n" not in str(info.value)


def test_the_cache_key_covers_every_field():
    base = check_spec(PRESETS["imagenet"])
    changes = [dict(size=(288, 288)), dict(channels=1, mean=(0.485,), std=(0.229,)), dict(mean=(0.5,)),
               dict(std=(0.5,)), dict(resize="exact"), dict(crop=(200, 200)), dict(interpolation="bicubic"),
               dict(scale=255.0)]
    keys = {base.key()} | {check_spec(dataclasses.replace(base, **change)).key() for change in changes}
    assert len(keys) == 1 + len(changes)
    assert TransformSpec.none().key() not in keys
    assert dataclasses.replace(base, name="other").key() == base.key()  # a label only


# ---------------------------------------------------------------- pixels, against torchvision
def _rgb_folder(root, sizes=((40, 30), (23, 50), (32, 32)), seed=0):
    rng = np.random.default_rng(seed)
    for i, (w, h) in enumerate(sizes):
        folder = root / ("a" if i % 2 == 0 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


@pytest.mark.parametrize(
    "text",
    ["size=20,resize=short-side,crop=16,mean=0.4,0.5,0.6,std=0.2,0.25,0.3",
     "size=20,resize=short-side,crop=16,interpolation=bicubic,mean=0.5,std=0.25",
     "size=24x20,mean=0.485,0.456,0.406,std=0.229,0.224,0.225",
     "size=22,crop=14x18,interpolation=nearest,mean=0.1,std=0.9"],
)
def test_image_folder_equals_torchvision_transforms(tmp_path, text):
    """Resize / CenterCrop / ToTensor / Normalize, as a torchvision training script has them."""
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import InterpolationMode

    root = _rgb_folder(tmp_path / "imgs")
    spec = parse_preprocess(text).apply(DEFAULT)
    mode = InterpolationMode(spec.interpolation)
    size = [spec.size[0]] if spec.resize == "short-side" else list(spec.size)
    steps = [T.Resize(size, interpolation=mode)]
    if spec.crop is not None:
        steps.append(T.CenterCrop(list(spec.crop)))
    reference = ImageFolder(str(root), T.Compose([*steps, T.ToTensor(), T.Normalize(spec.mean, spec.std)]))
    dataset = open_dataset(root, spec)
    assert isinstance(dataset, ImageFolderDataset) and len(dataset) == len(reference) == 3
    for i in range(3):
        torch.testing.assert_close(dataset[i][0], reference[i][0], rtol=0, atol=1e-6)


def test_domainbed_preset_is_the_tsd_scripts_loader(tmp_path):
    """TSD's unsupervise_adapt.py: Resize((224, 224)), ToTensor, Normalize(ImageNet)."""
    from torchvision.datasets import ImageFolder

    root = _rgb_folder(tmp_path / "pacs", sizes=((227, 227), (300, 180)))
    script = T.Compose([T.Resize((224, 224)), T.ToTensor(),
                        T.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])
    reference = ImageFolder(str(root), transform=script)
    dataset = open_dataset(root, PRESETS["domainbed"])
    for i in range(len(reference)):
        torch.testing.assert_close(dataset[i][0], reference[i][0], rtol=0, atol=1e-6)


def test_arrays_follow_torchvision_tensor_transforms(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (4, 3, 30, 40), dtype=np.uint8)
    np.savez(tmp_path / "x.npz", x=x, y=np.arange(4) % 2)
    spec = parse_preprocess("size=20,resize=short-side,crop=16,mean=0.4,0.5,0.6,std=0.2,0.25,0.3").apply(DEFAULT)
    batch, _ = open_dataset(tmp_path / "x.npz", spec).get_batch(np.arange(4))
    reference = T.Compose([T.Resize(20, antialias=True), T.CenterCrop(16), T.Normalize(spec.mean, spec.std)])(
        torch.from_numpy(x).float() / 255
    )
    torch.testing.assert_close(batch, reference, rtol=0, atol=1e-5)


# ---------------------------------------------------------------- no guess on float arrays
def test_float_model_inputs_pass_untouched_with_none_and_are_refused_otherwise(tmp_path):
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((6, 3, 12, 12)) * 1.1 + 0.2).astype(np.float32)  # normalised tensors
    path = tmp_path / "inputs.npz"
    np.savez(path, x=x, y=np.arange(6) % 3)
    with pytest.raises(DatasetError) as info:
        open_dataset(path, PRESETS["cifar10"])
    text = str(info.value)
    assert str(path) in text and f"[{x.min():.4g}, {x.max():.4g}]" in text
    assert "--preprocess none" in text and "\n" not in text
    batch, _ = open_dataset(path, TransformSpec.none()).get_batch(np.arange(6))
    assert torch.equal(batch, torch.from_numpy(x))  # bit for bit: no scaling, resizing, normalising


def test_float_pixels_in_0_255_need_scale(tmp_path):
    x = np.random.default_rng(3).integers(0, 256, (3, 1, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "p.npz", x=x)
    with pytest.raises(DatasetError, match="add scale=255 to --preprocess"):
        open_dataset(tmp_path / "p.npz", TransformSpec((8, 8), 1, (0.0,), (1.0,)))
    batch, _ = open_dataset(tmp_path / "p.npz", TransformSpec((8, 8), 1, (0.0,), (1.0,), scale=255.0)).get_batch([0, 1, 2])
    torch.testing.assert_close(batch, torch.from_numpy(x / 255), rtol=0, atol=1e-7)


def test_pixels_are_not_model_inputs(tmp_path):
    np.savez(tmp_path / "u8.npz", x=np.zeros((2, 3, 4, 4), np.uint8))
    with pytest.raises(DatasetError, match="8-bit pixels .* --preprocess none"):
        open_dataset(tmp_path / "u8.npz", TransformSpec.none())
    root = _rgb_folder(tmp_path / "imgs")
    with pytest.raises(DatasetError, match="image files"):
        open_dataset(root, TransformSpec.none())
    np.savez(tmp_path / "i64.npz", x=np.full((2, 1, 4, 4), 300, np.int64))
    with pytest.raises(DatasetError, match=r"int64 values in \[300, 300\]"):
        open_dataset(tmp_path / "i64.npz")
    np.savez(tmp_path / "i32.npz", x=np.full((2, 1, 4, 4), 255, np.int32))
    batch, _ = open_dataset(tmp_path / "i32.npz", TransformSpec((4, 4), 1, (0.0,), (1.0,))).get_batch([0])
    assert torch.all(batch == 1.0)


def test_preview_shows_the_input_as_the_model_sees_it(tmp_path):
    root = _rgb_folder(tmp_path / "imgs")
    dataset = open_dataset(root, PRESETS["imagenet"])
    thumb, seen, (low, high) = dataset.preview(1)
    assert thumb.dtype == seen.dtype == np.uint8 and seen.shape == (224, 224, 3)
    x = dataset[1][0]
    assert (low, high) == (float(x.min()), float(x.max()))
    x = (np.random.default_rng(0).standard_normal((2, 3, 5, 5)) * 2).astype(np.float32)
    np.savez(tmp_path / "in.npz", x=x)
    _, seen, (low, high) = open_dataset(tmp_path / "in.npz", TransformSpec.none()).preview(0)
    assert seen.shape == (5, 5, 3) and seen.min() == 0 and seen.max() == 255  # stretched to be seen
    assert (low, high) == (float(x[0].min()), float(x[0].max()))


# ---------------------------------------------------------------- where the default comes from
def test_sources_in_order(tmp_path, arch_file):
    net = _net(arch_file)
    plain = fx.save(net.state_dict(), tmp_path / "plain.pt")
    info = load_checkpoint(plain, f"{arch_file}:build").info
    assert (info.transform, info.transform_source) == (DEFAULT, "default")
    info = load_checkpoint(plain, f"{arch_file}:build", preprocess="cifar10").info
    assert (info.transform, info.transform_source) == (PRESETS["cifar10"], "option")

    meta = fx.write_protoview(tmp_path / "own.pt", net, f"{arch_file}:build", {},
                              transform={"size": [12, 12], "channels": 3, "mean": [0.5] * 3, "std": [0.25] * 3})
    info = load_checkpoint(meta, f"{arch_file}:build").info
    assert info.transform.size == (12, 12) and info.transform_source == "checkpoint"
    text = fx.write_protoview(tmp_path / "text.pt", net, f"{arch_file}:build", {}, transform="cifar100")
    assert load_checkpoint(text, f"{arch_file}:build").info.transform == PRESETS["cifar100"]

    bed = fx.write_domainbed(tmp_path / "bed.pkl", net.featurizer.state_dict(), net.classifier.state_dict(),
                             input_shape=(3, 224, 224))
    info = load_checkpoint(bed, f"{arch_file}:build").info
    assert info.transform == PRESETS["domainbed"] and info.transform_source == "checkpoint"

    torch.manual_seed(0)
    resnet = torchvision.models.resnet18(num_classes=3).eval()
    info = load_checkpoint(fx.save(resnet.state_dict(), tmp_path / "r18.pt"), "resnet18").info
    assert info.transform == PRESETS["imagenet"] and info.transform_source == "torchvision weights"
    assert "imagenet: resize the short side to 256 (bilinear), center-crop 224x224" in info.describe()

    from protoview.core.demo import DEMO_TRANSFORM, build_demo_model

    demo = build_demo_model().eval()
    info = load_checkpoint(fx.save(demo.state_dict(), tmp_path / "demo.pt"), "protoview-demo-cnn").info
    assert info.transform == DEMO_TRANSFORM and info.transform_source == "built-in"


def test_torchvision_transform_reads_the_weights_metadata():
    from protoview.core.checkpoint._preprocess import torchvision_transform

    spec, _ = torchvision_transform("efficientnet_b3")
    weights = torchvision.models.get_model_weights("efficientnet_b3").DEFAULT.transforms()
    assert spec.size == (weights.resize_size[0],) * 2 and spec.crop == (weights.crop_size[0],) * 2
    assert spec.interpolation == "bicubic" and spec.resize == "short-side"
    assert torchvision_transform("not_a_model") == (None, "")


def test_torchvision_weights_file_is_recognised_by_its_hash():
    """ResNet-50's classic IMAGENET1K_V1 file (resnet50-0676ba61.pth) resizes to 256, its
    default V2 to 232: a file whose sha256 starts with a weights file's hash prefix gets
    those weights' preprocessing; any other file the default's, with a note naming the
    weights that differ."""
    from protoview.core.checkpoint._preprocess import torchvision_transform

    v1, note = torchvision_transform("resnet50", "0676ba61" + "0" * 56)
    assert v1.size == (256, 256) and v1.crop == (224, 224) and "IMAGENET1K_V1" in note
    default, note = torchvision_transform("resnet50", "f" * 64)
    assert default.size == (232, 232) and "IMAGENET1K_V2" in note
    assert "IMAGENET1K_V1" in note and "--preprocess" in note


@pytest.mark.filterwarnings("always::protoview.core.warnings.ProtoviewWarning")  # shown as the CLI does
def test_info_prints_the_preprocessing_and_warns_once_for_the_default(tmp_path, arch_file, capsys):
    plain = fx.save(_net(arch_file).state_dict(), tmp_path / "plain.pt")
    assert main(["info", str(plain), "--arch", f"{arch_file}:build"]) == 0
    captured = capsys.readouterr()
    assert "preprocess:  domainbed: resize to 224x224 (bilinear), RGB" in captured.out
    assert "(from: default)" in captured.out
    warnings = [line for line in captured.err.splitlines() if line]
    assert len(warnings) == 1 and warnings[0].startswith("protoview: warning: no preprocessing is known")
    assert "--preprocess" in warnings[0]
    assert main(["info", str(plain), "--arch", f"{arch_file}:build", "--preprocess", "size=12,mean=0.5,std=0.25"]) == 0
    captured = capsys.readouterr()
    assert "input:       3x12x12" in captured.out and "(from: option)" in captured.out and not captured.err


def test_a_channel_count_the_model_cannot_take_is_named(tmp_path, capsys):
    from protoview.core.demo import demo_checkpoint_path

    assert main(["info", str(demo_checkpoint_path("cosine")), "--preprocess", "cifar10"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("protoview: error: --preprocess:") and "1-channel" in err and "\n" not in err


# ---------------------------------------------------------------- the commands
def test_extract_records_the_preprocessing(tmp_path, arch_file, capsys):
    plain = fx.save(_net(arch_file).state_dict(), tmp_path / "plain.pt")
    x = np.random.default_rng(4).integers(0, 256, (10, 3, 12, 12), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(10) % 5)
    out = tmp_path / "f.h5"
    argv = ["extract", str(plain), str(tmp_path / "d.npz"), "--arch", f"{arch_file}:build",
            "--preprocess", "cifar10", "--out", str(out), "--no-cache"]
    assert main(argv) == 0
    with h5py.File(out) as h5:
        assert h5.attrs["preprocess"] == "cifar10" and h5.attrs["preprocess_source"] == "option"
    snap = tmp_path / "s.h5"
    argv = ["export", str(plain), str(tmp_path / "d.npz"), "--arch", f"{arch_file}:build",
            "--preprocess", "size=12,mean=0.5,std=0.25", "--out", str(snap), "--no-map", "--no-cache"]
    assert main(argv) == 0
    attrs = read_snapshot(snap).attrs
    assert attrs["preprocess"] == "size=12,channels=3,mean=0.5,0.5,0.5,std=0.25,0.25,0.25"
    assert attrs["preprocess_source"] == "option"
    capsys.readouterr()
    assert main(["info", str(snap)]) == 0
    assert "preprocess size=12,channels=3" in capsys.readouterr().out


def test_tsd_with_preprocess_none_gives_the_authors_online_logits(tmp_path, arch_file, capsys):
    """The issue's check: a plain state_dict + --arch file.py:build, an .npz of normalised
    float inputs; ``protoview adapt --preprocess none`` records the same online logits as the
    authors' TSD (tests/oracles/tsd_reference.py, as their unsupervise_adapt.py drives it:
    the model in train mode, Adam over all parameters) on the same batches."""
    from tests.oracles.tsd_reference import TSD as OracleTSD

    net = _net(arch_file, seed=1)
    plain = fx.save(net.state_dict(), tmp_path / "model.pt")
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((70, 3, 12, 12)) * 1.2 + 0.3).astype(np.float32)
    data = tmp_path / "inputs.npz"
    np.savez(data, x=x, y=rng.integers(0, 5, 70))
    common = [str(plain), str(data), "--arch", f"{arch_file}:build", "--method", "tsd",
              "--batch-size", "16", "--lr", "1e-3", "--filter-k", "5"]
    assert main(["adapt", *common]) == 2  # without the option: refused, not silently rescaled
    err = capsys.readouterr().err
    assert "inputs.npz" in err and "--preprocess none" in err
    run = tmp_path / "run.h5"
    assert main(["adapt", *common, "--preprocess", "none", "--out", str(run)]) == 0
    snap = read_snapshot(run)
    assert snap.attrs["preprocess"] == "none"
    width = int(snap.metrics["num_logits"])

    model = _net(arch_file, seed=1)
    model.load_state_dict(torch.load(plain, weights_only=True))
    model.train()  # the script: algorithm.train(); TSD with Adam over all parameters
    oracle = OracleTSD(model, torch.optim.Adam(model.parameters(), lr=1e-3), filter_K=5,
                       classifier_weight=model.classifier.weight)
    batches = snap.history["batch_indices"]
    assert sorted(np.concatenate(batches).tolist()) == list(range(70))  # one pass, all of it
    for indices, logits in zip(batches, snap.history["online_logits"], strict=True):
        theirs = oracle(torch.from_numpy(x[indices])).detach().numpy()
        np.testing.assert_allclose(logits.reshape(-1, width), theirs, rtol=0, atol=1e-5)


def test_cosine_head_proxies_follow_the_data_in_every_command(tmp_path, arch_file, capsys):
    torch.manual_seed(0)
    pycil = fx.PyCILNet(fx.cosine_head(5, 3))
    fx.randomize_bn(pycil)
    path = fx.write_pycil(tmp_path / "pycil.pkl", pycil.convnet.state_dict(), pycil.fc.state_dict())
    x = np.random.default_rng(6).integers(0, 256, (20, 3, 16, 16), dtype=np.uint8)
    np.savez(tmp_path / "five.npz", x=x, y=np.arange(20) % 5)
    np.savez(tmp_path / "four.npz", x=x, y=np.arange(20) % 4)
    options = ["--arch", f"{arch_file}:dict_convnet", "--preprocess", "size=16,mean=0.5,std=0.25", "--no-cache"]
    out = tmp_path / "f.h5"
    assert main(["extract", str(path), str(tmp_path / "five.npz"), *options, "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "note: 3 proxies per class inferred from the 15 rows of the cosine head and the 5 classes" in said
    with h5py.File(out) as h5:
        assert h5["logits"].shape == (20, 5)
    snap = tmp_path / "s.h5"
    assert main(["export", str(path), str(tmp_path / "five.npz"), *options, "--out", str(snap), "--no-map"]) == 0
    assert read_snapshot(snap).proxies["class"].tolist() == np.repeat(np.arange(5), 3).tolist()
    capsys.readouterr()
    assert main(["extract", str(path), str(tmp_path / "four.npz"), *options, "--out", str(tmp_path / "g.h5")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("protoview: error: --nb-proxy:") and "15 proxy rows" in err and "4 classes" in err
    assert "\n" not in err and not (tmp_path / "g.h5").exists()
    assert main(["extract", str(path), str(tmp_path / "four.npz"), *options, "--nb-proxy", "3",
                 "--out", str(tmp_path / "g.h5")]) == 0  # the user says: no inference


def test_a_torchvision_name_that_fails_suggests_timm(tmp_path, monkeypatch):
    import sys
    import types

    from protoview.errors import CheckpointError

    fake = types.SimpleNamespace(is_model=lambda name: name == "resnet18", list_models=lambda: ["resnet18"])
    monkeypatch.setitem(sys.modules, "timm", fake)
    wrong = fx.save(fx.BackboneFcNet(4).state_dict(), tmp_path / "timm_like.pt")
    with pytest.raises(CheckpointError, match="pass --arch timm:resnet18"):
        load_checkpoint(wrong, "resnet18")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(wrong, "torchvision:resnet18")  # the user chose torchvision: no hint
    assert "timm:" not in str(info.value)


def test_progress_is_lines_when_not_on_a_terminal(capsys):
    progress = progress_printer("extract", interactive=False, every_s=0.0)
    for done in (0, 50, 100):
        progress(done, 100)
    lines = capsys.readouterr().err.splitlines()
    assert lines == [line for line in lines if line.startswith("protoview: extract ")]
    assert len(lines) == 3 and lines[-1].startswith("protoview: extract 100% (100/100)")
    quiet = progress_printer("extract", interactive=False, every_s=3600.0)
    for done in range(1, 11):
        quiet(done, 10)
    assert len(capsys.readouterr().err.splitlines()) == 1  # only the last, at most one per minute


def test_the_window_command_takes_the_same_options(monkeypatch, tmp_path):
    from protoview.gui import window as app

    seen = {}
    monkeypatch.setattr(app, "run_app", lambda checkpoint, data, **options: seen.update(
        request=app.initial_request(checkpoint, data, **options)) or 0)
    argv = ["ckpt.pt", "data.npz", "--arch", "resnet18", "--split", "fc", "--nb-proxy", "2", "--preprocess", "cifar10"]
    assert main(argv) == 0
    request = seen["request"]
    assert (request.checkpoint, request.data, request.arch, request.split) == ("ckpt.pt", "data.npz", "resnet18", "fc")
    assert (request.nb_proxy, request.preprocess) == (2, "cifar10")
    assert main(["ckpt.pt", "data.npz", "--preprocess", "size=0"]) == 2
