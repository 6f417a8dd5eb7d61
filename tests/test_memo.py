"""MEMO against the authors' code (tests/oracles/memo_reference*.py, zhangmarvin/memo 228b290).

Each image of a batch is one iteration of the authors' loop (reset, adapt on its AugMix
views, predict): the online logits (max difference 0.0) and the adapted weights of every
image (equal) match their ImageNet script (224 x 224 images, BatchNorm prior) and their
CIFAR-10 script (32 x 32, padded crop), with torch's, numpy's and python's generators
seeded alike before each side. The images are made from uint8 pixels, as their datasets'.
"""

from __future__ import annotations

import copy
import math
import random

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image
from torch import nn

from protoview.core.adapt import augmix as am
from protoview.core.adapt import make_adapter
from protoview.core.adapt.base import clone_state
from protoview.core.adapt.memo import MEMO
from protoview.core.model import SplitModel
from protoview.core.preprocess import TransformSpec
from protoview.errors import ParameterError
from tests._tta_models import max_difference, tiny_model
from tests.oracles import memo_reference as imagenet
from tests.oracles import memo_reference_cifar as cifar
from tests.oracles import toolkit_deyo_memo as toolkit

CLASSES = 10
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
CIFAR = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def seed(s: int) -> None:
    torch.manual_seed(s)
    np.random.seed(s)
    random.seed(s)


def uint8_images(n: int, size: int, channels: int = 3, seed_: int = 0) -> np.ndarray:
    """(n, H, W, C) uint8 with some structure (a gradient plus noise), as a dataset's."""
    rng = np.random.default_rng(seed_)
    ramp = np.linspace(0, 200, size)[None, :, None, None] + np.linspace(0, 50, size)[None, None]
    noise = rng.integers(0, 60, (n, size, size, channels))
    return np.clip(ramp[..., :1] + noise, 0, 255).astype(np.uint8)


def batch_of(arrays: np.ndarray, stats) -> torch.Tensor:
    """The dataset's batch: ``Normalize(ToTensor(image))`` of each image."""
    tf = T.Compose([T.ToTensor(), T.Normalize(*stats)])
    return torch.stack([tf(Image.fromarray(a)) for a in arrays])


def memo(model: nn.Module, stats, **params) -> MEMO:
    adapter = make_adapter("memo", model, **params)
    size = 32
    adapter.input_transform = TransformSpec((size, size), 3, *stats)
    return adapter


def adapted_states(adapter: MEMO) -> list[dict[str, torch.Tensor]]:
    """The model's weights at each image's prediction (after its adaptation)."""
    states = []
    predict_one = adapter._predict_one

    def recording(image):
        states.append(clone_state(adapter.model.state_dict()))
        return predict_one(image)

    adapter._predict_one = recording
    return states


def check_states(ours: list, theirs: list) -> None:
    assert len(ours) == len(theirs) > 0
    for a, b in zip(ours, theirs, strict=True):
        for name, value in a.items():
            assert torch.equal(value, b[name]), name


@pytest.mark.parametrize("norm", ["gn", "bn"])
def test_memo_equals_the_authors_cifar_script(norm: str) -> None:
    model = tiny_model(CLASSES, sharp=4.0, norm=norm)
    source = copy.deepcopy(model)
    cifar.setup(copy.deepcopy(model), batch_size=8)
    adapter = memo(model, CIFAR, lr=0.005, n_augmentations=8, prior_strength=-1, crop="padded")
    ours_states, theirs_states = adapted_states(adapter), []
    arrays = uint8_images(5, 32)
    for step, chunk in enumerate((arrays[:3], arrays[3:]), start=1):  # two batches
        seed(step)
        ours = adapter.step(batch_of(chunk, CIFAR))
        seed(step)
        theirs = cifar.run(chunk, lambda net: theirs_states.append(clone_state(net.state_dict())))
        assert max_difference(ours, theirs) == 0.0
    check_states(ours_states, theirs_states)
    moved = max((ours_states[0][k] - v).abs().max().item() for k, v in source.state_dict().items())
    assert moved > 1e-5  # it adapted
    for name, value in adapter.model.state_dict().items():  # back at the source after a step
        assert torch.equal(value, source.state_dict()[name])


@pytest.mark.parametrize(
    ("norm", "extra"),
    [("bn", {}), ("gn", {}), ("bn", {"steps": 2}), ("bn", {"prior_strength": 0})],
)
def test_memo_equals_the_authors_imagenet_script(norm: str, extra: dict) -> None:
    model = tiny_model(CLASSES, sharp=4.0, norm=norm)
    script = imagenet.Script(copy.deepcopy(model), batch_size=4, lr=0.01,
                             niter=extra.get("steps", 1),
                             prior_strength=extra.get("prior_strength", 16))  # fmt: skip
    adapter = memo(model, IMAGENET, lr=0.01, n_augmentations=4, **extra)
    ours_states, theirs_states = adapted_states(adapter), []
    arrays = uint8_images(1 if extra else 2, 224)
    seed(7)
    ours = adapter.step(batch_of(arrays, IMAGENET))
    seed(7)
    theirs = script.run([Image.fromarray(a) for a in arrays],
                        lambda net: theirs_states.append(clone_state(net.state_dict())))
    assert max_difference(ours, theirs) == 0.0
    check_states(ours_states, theirs_states)
    assert not hasattr(nn.BatchNorm2d, "prior")  # the oracle's class patch is undone


def test_adamw_keeps_its_state_across_images_in_reference_only() -> None:
    model = tiny_model(CLASSES, sharp=4.0)
    params = dict(lr=0.01, n_augmentations=4, optimizer="adamw", weight_decay=0.01)
    script = imagenet.Script(copy.deepcopy(model), batch_size=4, optimizer="adamw", lr=0.01,
                             weight_decay=0.01)  # fmt: skip
    reference = memo(copy.deepcopy(model), IMAGENET, **params)
    arrays = uint8_images(2, 224)
    x = batch_of(arrays, IMAGENET)
    seed(3)
    ours = reference.step(x)
    seed(3)
    theirs = script.run([Image.fromarray(a) for a in arrays])
    assert max_difference(ours, theirs) == 0.0
    assert reference.optimizer.state[reference._params[0]]["step"] == 2  # two images' steps

    corrected = memo(copy.deepcopy(model), IMAGENET, variant="corrected", **params)
    first = corrected.optimizer
    seed(3)
    corrected.step(x)
    assert corrected.optimizer is not first and len(corrected.optimizer.state) == 0


def test_batch_size_one_and_small_images() -> None:
    model = tiny_model(CLASSES, sharp=4.0)
    cifar.setup(copy.deepcopy(model), batch_size=8)
    adapter = memo(model, CIFAR, lr=0.005, n_augmentations=8, prior_strength=-1, crop="padded")
    arrays = uint8_images(1, 32)
    seed(1)
    ours = adapter.step(batch_of(arrays, CIFAR))
    seed(1)
    assert ours.shape == (1, CLASSES) and max_difference(ours, cifar.run(arrays)) == 0.0
    for channels in (3, 1):  # 8 x 8, RGB and grey: the authors' code at the image's size
        small = uint8_images(3, 8, channels)
        stats = ((0.5,) * channels, (0.25,) * channels)
        tf = T.Compose([T.ToTensor(), T.Normalize(*stats)])
        x = torch.stack([tf(Image.fromarray(a[..., 0] if channels == 1 else a)) for a in small])
        net = tiny_model(CLASSES, sharp=4.0)
        if channels == 1:
            net.featurizer[0] = nn.Conv2d(1, 8, 3, padding=1)
        adapter = make_adapter("memo", net, n_augmentations=4, lr=0.01)
        adapter.input_transform = TransformSpec((8, 8), channels, *stats)
        logits = adapter.step(x)
        assert logits.shape == (3, CLASSES) and torch.isfinite(logits).all()
        assert adapter.last_features.shape == (3, 16)


def test_uint8_images_come_back_exactly() -> None:
    arrays = uint8_images(4, 16)
    x = batch_of(arrays, IMAGENET)
    adapter = memo(tiny_model(CLASSES), IMAGENET)
    for array, image in zip(arrays, x, strict=True):
        pil = am.to_pil(adapter.pixels.to_pixels(image[None])[0])
        assert np.array_equal(np.asarray(pil), array)


def test_the_fill_is_dark_red_in_reference_and_grey_corrected() -> None:
    image = Image.new("RGB", (8, 8), (10, 20, 30))
    np.random.seed(0)
    reference = am.rotate(image, am.fill_colour("RGB", corrected=False), level=10)
    np.random.seed(0)
    corrected = am.rotate(image, am.fill_colour("RGB", corrected=True), level=10)
    assert reference.getpixel((0, 0)) == (128, 0, 0)
    assert corrected.getpixel((0, 0)) == (128, 128, 128)
    assert am.fill_colour("L", corrected=False) == am.fill_colour("L", corrected=True) == 128


def test_prediction_mode_is_the_source_model_each_image_alone() -> None:
    model = tiny_model(CLASSES, sharp=4.0)
    source = copy.deepcopy(model)
    adapter = memo(model, IMAGENET, n_augmentations=2)
    x = batch_of(uint8_images(3, 32), IMAGENET)
    seed(0)
    adapter.step(x)
    script = imagenet.Script(source, batch_size=2)
    with script.patched():
        nn.BatchNorm2d.prior = 16 / 17
        expected = torch.cat([source.eval()(image[None]) for image in x])
    assert max_difference(adapter.predict(x), expected.detach()) == 0.0


def test_the_toolkit_differs_by_its_batchnorm_mix_and_nesterov() -> None:
    model = tiny_model(CLASSES, sharp=4.0)
    x = batch_of(uint8_images(1, 32), IMAGENET)
    adapter = memo(copy.deepcopy(model), IMAGENET, n_augmentations=4, lr=0.01)
    views = []
    make_views = adapter._views
    adapter._views = lambda image: views.append(make_views(image)) or views[-1]
    seed(0)
    ours = adapter.step(x)

    def run_toolkit(**cfg) -> torch.Tensor:
        method = toolkit.MEMO(toolkit.make_cfg(**cfg), copy.deepcopy(model), CLASSES)
        return method([x, views[0]]).detach()

    authors_like = run_toolkit(**{"OPTIM.METHOD": "SGD", "OPTIM.LR": 0.01, "OPTIM.MOMENTUM": 0.0,
                                  "OPTIM.NESTEROV": False, "BN.ALPHA": 1 / 17})  # fmt: skip
    assert (ours - authors_like).abs().max() < 1e-5  # (1 - 1/17) vs 16/17: float rounding
    defaults = run_toolkit(**{"OPTIM.METHOD": "SGD", "OPTIM.LR": 0.01})  # alpha 0.1, Nesterov
    assert (ours - defaults).abs().max() > 1e-3


def test_snapshot_restore_and_reset() -> None:
    adapter = memo(tiny_model(CLASSES, sharp=4.0), IMAGENET, n_augmentations=2,
                   optimizer="adamw", lr=0.01)  # fmt: skip
    xs = [batch_of(uint8_images(2, 16, seed_=i), IMAGENET) for i in range(3)]
    adapter.step(xs[0])
    snap = adapter.snapshot()
    after = []
    for i, x in enumerate(xs[1:]):
        seed(i)
        after.append(adapter.step(x))
    adapter.restore(snap)
    for i, x in enumerate(xs[1:]):
        seed(i)
        assert torch.equal(after[i], adapter.step(x))
    adapter.reset()
    assert adapter.steps_done == 0 and len(adapter.optimizer.state) == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [("lr", 0.0), ("n_augmentations", 0), ("prior_strength", -2), ("prior_strength", 1.5),
     ("crop", "center"), ("optimizer", "adam"), ("weight_decay", -0.1), ("steps", 0),
     ("variant", "fixed")],
)  # fmt: skip
def test_bad_parameters_are_named(name: str, value: object) -> None:
    with pytest.raises(ParameterError) as info:
        make_adapter("memo", tiny_model(CLASSES), **{name: value})
    assert info.value.where == name


@pytest.mark.parametrize(
    ("x", "words"),
    [(torch.rand(2, 3, 8), "1 or 3 channels"), (torch.rand(2, 4, 8, 8), "1 or 3 channels"),
     (torch.randn(2, 3, 8, 8) * 3, "--preprocess")],
)  # fmt: skip
def test_batches_it_cannot_augment_are_refused(x: torch.Tensor, words: str) -> None:
    adapter = make_adapter("memo", tiny_model(CLASSES), n_augmentations=2)
    with pytest.raises(ParameterError, match=words) as info:
        adapter.step(x)
    assert info.value.where == "batch"


def test_a_model_without_parameters_is_refused() -> None:
    with pytest.raises(ParameterError, match="no|none") as info:
        make_adapter("memo", SplitModel(nn.Flatten(), nn.Identity()))
    assert info.value.where == "method"
    assert math.isfinite(MEMO.params[0].default)
