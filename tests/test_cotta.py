"""CoTTA against the authors' code (tests/oracles/cotta_reference.py, qinenergy/cotta c212a20,
``cifar/cotta.py``; ``cotta_imagenet_reference.py`` for their ``imagenet/cotta.py``) and the
toolkit's (tests/oracles/cotta_toolkit.py, mariodoebler/test-time-adaptation 8b2ed63).

Torch's generator is seeded alike before each side's step: the teacher's outputs (the
predictions) batch by batch have max difference 0.0 and the student's and the teacher's
weights are ``torch.equal`` after every step, on random BN and GN/LN models, with the
augmentation-averaged and the plain branch both taken and weights restored to the source.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from protoview.core.adapt import make_adapter
from protoview.core.adapt.augment import image_tta_transforms, tta_transforms
from protoview.core.adapt.cotta import CoTTA
from protoview.core.model import SplitModel
from protoview.core.preprocess import TransformSpec
from protoview.errors import ParameterError
from tests._tta_models import batches, max_difference, moved, tiny_model
from tests.oracles import cotta_imagenet_reference as authors_imagenet
from tests.oracles import cotta_reference as authors
from tests.oracles import cotta_toolkit as toolkit

SIDE = 6  # the tiny batches' images are 6 x 6 (the authors hard-code 32, or 224)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def anchor_confidences(model: nn.Module, xs: list[torch.Tensor]) -> list[float]:
    """The anchor's mean top-class probability per batch (source weights, batch statistics)."""
    anchor = authors.configure_model(copy.deepcopy(model))
    with torch.no_grad():
        return [float(anchor(x).softmax(1).max(1)[0].mean()) for x in xs]


def both_branches_ap(model: nn.Module, xs: list[torch.Tensor]) -> float:
    """A threshold with some batches below it (averaged) and some not (plain)."""
    return sorted(anchor_confidences(model, xs))[len(xs) // 2]


def compare(ours: CoTTA, oracle, xs: list[torch.Tensor], seed: int = 100) -> tuple[list, list]:
    """Equal teacher outputs and student / teacher weights after every step; returns which
    steps averaged augmentations and how many elements each restored."""
    augmented, restored = [], []
    for step, x in enumerate(xs):
        torch.manual_seed(seed + step)
        mine = ours.step(x)
        torch.manual_seed(seed + step)
        theirs = oracle(x).detach()
        teacher = oracle.model_ema  # (the authors' episodic reset replaces it)
        assert max_difference(mine, theirs) == 0.0, f"step {step}"
        for name, model in (("student", oracle.model), ("teacher", teacher)):
            state = model.state_dict()
            mine_state = (ours.model if name == "student" else ours.teacher).state_dict()
            for key, value in mine_state.items():
                if key in state:  # configure_model deletes BatchNorm's running statistics
                    assert torch.equal(value, state[key]), (step, name, key)
        augmented.append(ours.last_augmented)
        restored.append(ours.last_restored)
    return augmented, restored


@pytest.mark.parametrize(
    ("head", "norm", "sharp"), [("linear", "bn", 4.0), ("cosine", "bn", 1.0), ("linear", "gn", 4.0)]
)
def test_cotta_equals_the_authors_code(head: str, norm: str, sharp: float) -> None:
    model = tiny_model(10, head, sharp=sharp, norm=norm)
    source = copy.deepcopy(model)
    xs = batches(6, size=16)
    ap = both_branches_ap(model, xs)
    oracle = authors.build(copy.deepcopy(model), ap=ap, img_shape=(SIDE, SIDE, 3))
    ours = make_adapter("cotta", model, ap=ap)
    augmented, restored = compare(ours, oracle, xs)
    assert True in augmented and False in augmented  # both branches taken
    assert ours.augmented_steps == sum(augmented)
    assert all(r > 0 for r in restored)  # rst 0.01 of ~1,600 weights: some each step
    assert moved(model, source) > 1e-4
    names = authors.collect_params(copy.deepcopy(source))[1]
    assert list(ours.updated_parameter_names) == names


def test_a_large_restore_probability_equals_the_authors_code() -> None:
    model = tiny_model(10, sharp=4.0)
    xs = batches(3, size=16)
    oracle = authors.build(copy.deepcopy(model), rst=0.5, img_shape=(SIDE, SIDE, 3))
    ours = make_adapter("cotta", copy.deepcopy(model), rst=0.5)
    _, restored = compare(ours, oracle, xs)
    total = sum(p.numel() for p in ours._params)
    assert all(0.4 * total < r < 0.6 * total for r in restored)
    source = model.state_dict()
    back = sum(int((p == source[n]).sum()) for n, p in ours.model.named_parameters())
    assert back >= restored[-1]  # the restored elements hold their source values


@pytest.mark.parametrize(
    "extra",
    [{"steps": 2}, {"episodic": True}, {"optimizer": "sgd", "lr": 0.01, "mt": 0.9}],
    ids=["steps", "episodic", "sgd"],
)
def test_steps_episodic_and_sgd_equal_the_authors_code(extra: dict) -> None:
    model = tiny_model(10, sharp=4.0, norm="gn")
    xs = batches(4, size=16)
    ap = both_branches_ap(model, xs)
    theirs = {k: v for k, v in extra.items() if k != "optimizer"}
    if "optimizer" in extra:
        theirs["method"] = "SGD"  # cifar10c.py's setup_optimizer: momentum 0.9, nesterov
    oracle = authors.build(copy.deepcopy(model), ap=ap, img_shape=(SIDE, SIDE, 3), **theirs)
    ours = make_adapter("cotta", model, ap=ap, **extra)
    augmented, _ = compare(ours, oracle, xs)
    assert True in augmented and False in augmented


def test_the_authors_image_size_on_their_cifar_images() -> None:
    """32 x 32 images and the oracle's literal ``(32, 32, 3)``: the batch's own size is theirs."""
    model = tiny_model(10, sharp=4.0)
    g = torch.Generator().manual_seed(3)
    xs = [torch.rand(8, 3, 32, 32, generator=g) for _ in range(2)]
    oracle = authors.build(copy.deepcopy(model), ap=1.0)  # always the averaged branch
    compare(make_adapter("cotta", model, ap=1.0), oracle, xs)


@pytest.mark.parametrize(("norm", "classes", "sharp"), [("bn", 20, 8.0), ("gn", 50, 1.35)])
def test_the_imagenet_setting_equals_the_authors_imagenet_code(
    norm: str, classes: int, sharp: float
) -> None:
    """Their ImageNet code hard-codes ap 0.1, rst 0.001, mt 0.999, the symmetric loss and
    augments only when needed (``corrected``); SGD lr 0.01 (nesterov) from its configs."""
    model = tiny_model(classes, sharp=sharp, norm=norm)
    xs = batches(5, size=16)
    confidences = anchor_confidences(model, xs)
    assert min(confidences) < 0.1 < max(confidences)  # both branches
    oracle = authors_imagenet.build(copy.deepcopy(model), img_shape=(SIDE, SIDE, 3))
    ours = make_adapter(
        "cotta", model, optimizer="sgd", lr=0.01, rst=0.001, ap=0.1, loss="symmetric",
        variant="corrected",
    )  # fmt: skip
    augmented, _ = compare(ours, oracle, xs)
    assert True in augmented and False in augmented


@pytest.mark.parametrize("extra", [{}, {"n_augmentations": 4, "rst": 0.0}], ids=["cifar", "n4"])
def test_corrected_equals_the_toolkit(extra: dict) -> None:
    model = tiny_model(10, sharp=4.0)
    xs = batches(5, size=16)
    ap = both_branches_ap(model, xs)
    oracle = toolkit.build(copy.deepcopy(model), img_size=(SIDE, SIDE), ap=ap, **extra)
    ours = make_adapter("cotta", model, ap=ap, variant="corrected", **extra)
    augmented, _ = compare(ours, oracle, xs)
    assert True in augmented and False in augmented


def test_the_toolkit_differs_from_the_authors_after_a_confident_batch() -> None:
    """The toolkit skips the augmented passes on a confident batch, so its restore masks
    come from other random numbers: same predictions on that batch, other weights after."""
    model = tiny_model(10, sharp=4.0)
    xs = batches(6, size=16)
    confidences = anchor_confidences(model, xs)
    order = sorted(range(len(xs)), key=confidences.__getitem__)
    xs = [xs[order[0]], xs[order[1]], xs[order[-1]]]  # two unsure batches, then a sure one
    ap = (confidences[order[1]] + confidences[order[-1]]) / 2
    plain = 2
    theirs = authors.build(copy.deepcopy(model), ap=ap, img_shape=(SIDE, SIDE, 3))
    tool = toolkit.build(copy.deepcopy(model), img_size=(SIDE, SIDE), ap=ap)
    for step, x in enumerate(xs):
        torch.manual_seed(step)
        a = theirs(x).detach()
        torch.manual_seed(step)
        b = tool(x).detach()
        assert max_difference(a, b) == 0.0  # the plain step's teacher outputs too
        same = all(
            torch.equal(p, q)
            for p, q in zip(theirs.model.parameters(), tool.model.parameters(), strict=True)
        )
        assert same == (step < plain), step


def test_reference_always_augments_and_corrected_only_when_used() -> None:
    model = tiny_model(10, sharp=4.0)
    x = batches(1, size=16)[0]
    calls = {}
    for variant in ("reference", "corrected"):
        adapter = make_adapter("cotta", copy.deepcopy(model), ap=0.0, variant=variant)
        calls[variant] = 0

        def counted(*_, variant=variant) -> None:
            calls[variant] += 1

        adapter.teacher.register_forward_hook(counted)
        adapter.step(x)
        assert adapter.last_augmented is False
    assert calls == {"reference": 32, "corrected": 0}  # + the featurizer/classifier pass


def test_predictions_and_the_map_are_the_teachers() -> None:
    model = tiny_model(10, sharp=4.0)
    xs = batches(3, size=16)
    adapter = make_adapter("cotta", model, ap=0.0)  # plain branch: the teacher's logits on x
    adapter.step(xs[0])
    teacher = copy.deepcopy(adapter.teacher)  # before the next step's update
    with torch.no_grad():
        z = teacher.featurizer(xs[1])
        expected = teacher.classifier(z)
    logits = adapter.step(xs[1])
    assert torch.equal(logits, expected)
    assert torch.equal(adapter.last_features, z)
    z_map, logits_map = adapter.features(xs[2])
    with torch.no_grad():
        assert torch.equal(logits_map, adapter.teacher(xs[2]))
        assert not torch.equal(logits_map, adapter.model(xs[2]))  # not the student's


def test_augmentations_run_on_pixels() -> None:
    """With a normalising preprocessing the teacher sees the augmented pixels normalised again:
    equal to the authors' code on a model that normalises inside, up to float rounding."""
    mean, std = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
    model = tiny_model(10, sharp=4.0)

    class Normalised(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner
            self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

        def forward(self, pixels):
            return self.inner((pixels - self.mean) / self.std)

    g = torch.Generator().manual_seed(5)
    pixels = [torch.rand(16, 3, SIDE, SIDE, generator=g) for _ in range(2)]
    oracle = authors.build(Normalised(copy.deepcopy(model)), ap=1.0, img_shape=(SIDE, SIDE, 3))
    ours = make_adapter("cotta", model, ap=1.0)
    ours.input_transform = TransformSpec((SIDE, SIDE), 3, mean, std)
    for step, p in enumerate(pixels):
        torch.manual_seed(step)
        mine = ours.step(ours.pixels.from_pixels(p))
        torch.manual_seed(step)
        assert max_difference(mine, oracle(p).detach()) < 1e-4


def test_snapshot_restore_reset_and_state_bytes() -> None:
    model = tiny_model(10, sharp=4.0)
    source = copy.deepcopy(model)
    xs = batches(4, size=16)
    adapter = make_adapter("cotta", model, ap=both_branches_ap(model, xs))

    def run(batches_: list[torch.Tensor]) -> list[torch.Tensor]:
        out = []
        for i, x in enumerate(batches_):
            torch.manual_seed(i)
            out.append(adapter.step(x))
        return out

    run(xs[:1])
    snap = adapter.snapshot()
    teacher = copy.deepcopy(adapter.teacher.state_dict())
    after = run(xs[1:])
    counted = adapter.augmented_steps
    adapter.restore(snap)
    assert all(torch.equal(v, teacher[k]) for k, v in adapter.teacher.state_dict().items())
    again = run(xs[1:])
    assert all(torch.equal(a, b) for a, b in zip(after, again, strict=True))
    assert adapter.augmented_steps == counted
    one = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    assert adapter.state_bytes() == 2 * one  # the student and the teacher
    adapter.reset()
    assert adapter.augmented_steps == 0 and adapter.last_restored is None
    for name, value in source.state_dict().items():
        assert torch.equal(adapter.model.state_dict()[name], value)
        assert torch.equal(adapter.teacher.state_dict()[name], value)


@pytest.mark.parametrize(
    ("name", "value"),
    [("lr", 0.0), ("optimizer", "adamw"), ("mt", 1.5), ("rst", -0.1), ("ap", 2.0),
     ("n_augmentations", 0), ("loss", "kl"), ("steps", 0), ("episodic", 1),
     ("variant", "fixed")],
)  # fmt: skip
def test_bad_parameters_are_named(name: str, value: object) -> None:
    with pytest.raises(ParameterError) as info:
        make_adapter("cotta", tiny_model(10), **{name: value})
    assert info.value.where == name


@pytest.mark.parametrize("shape", [(8, 3 * SIDE * SIDE), (8, 4, SIDE, SIDE)])
def test_a_batch_that_is_not_images_is_refused(shape: tuple[int, ...]) -> None:
    model = tiny_model(10) if len(shape) == 4 else SplitModel(nn.Identity(), nn.Linear(108, 3))
    with pytest.raises(ParameterError, match="augments images") as info:
        make_adapter("cotta", model).step(torch.rand(*shape))
    assert info.value.where == "batch"


def test_a_model_without_weights_is_refused() -> None:
    with pytest.raises(ParameterError, match="weights and biases") as info:
        make_adapter("cotta", SplitModel(nn.Flatten(), nn.Identity()))
    assert info.value.where == "method"


def test_image_tta_transforms_keep_any_size() -> None:
    x = torch.rand(2, 3, 8, 8)
    torch.manual_seed(4)
    a = image_tta_transforms(8, 8)(x)
    torch.manual_seed(4)
    assert torch.equal(a, tta_transforms(8)(x))  # a square: the toolkit's, draw for draw
    assert image_tta_transforms(8, 12)(torch.rand(2, 3, 8, 12)).shape == (2, 3, 8, 12)
    assert tta_transforms(8)(torch.rand(2, 3, 8, 12)).shape == (2, 3, 8, 8)  # it crops a square
