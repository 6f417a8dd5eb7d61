"""RoTTA against the authors' code (tests/oracles/rotta_reference.py, BIT-DA/RoTTA 67e34c9)
and the toolkit's (tests/oracles/rotta_toolkit.py, mariodoebler/test-time-adaptation 8b2ed63).

Batch by batch on random models whose predictions spread over the classes (so the memory
bank holds several classes and evicts): the teacher's outputs (the run's) max difference
0.0, the student's and the teacher's weights and robust BN statistics, Adam's state, the
memory bank (classes, order, data, ages, uncertainties) and the sample counter equal, with
updates falling inside batches.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn
from torchvision import transforms

from protoview.core.adapt import AdaptRun, make_adapter
from protoview.core.adapt.augment import tta_transforms
from protoview.core.adapt.rotta import RobustBN, RoTTA
from protoview.core.model import SplitModel
from protoview.core.preprocess import TransformSpec
from protoview.errors import ParameterError
from tests._tta_models import DIM, batches, max_difference, tiny_model
from tests.oracles import rotta_reference as authors
from tests.oracles import rotta_toolkit as toolkit

CLASSES = 4
# batches of 32: updates fall inside batches; 10 over 4 classes (2.5 each): a full bank evicts
# from the arriving class and from the majority classes (both paths of the authors' CSTU)
SMALL = {"memory_size": 10, "update_frequency": 24}

# The oracles' loss is TorchScript; spend its profiling run (see test_sar).
for _jit in (authors.softmax_entropy, toolkit.softmax_cross_entropy):
    _jit(torch.ones(2, 3, requires_grad=True), torch.ones(2, 3)).sum().backward()


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def rotta_model(head: str = "linear", bn1d: bool = True, norm: str = "bn") -> SplitModel:
    """A tiny CNN (BatchNorm2d, and BatchNorm1d on its features when ``bn1d``) whose source
    statistics are those of the test data, so that its predictions spread over the classes."""
    model = tiny_model(CLASSES, head, sharp=30.0 if head == "linear" else 1.0, norm=norm)
    if bn1d:
        model.featurizer.append(nn.BatchNorm1d(DIM))
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # the cumulative average of the calibration batches
    model.train()
    with torch.no_grad():
        model(torch.cat(batches(2, seed=9)))
    return model.eval()


def theirs_name(name: str) -> str:
    """Our robust BN's statistics have the authors' ``source_mean`` / ``source_var`` names."""
    return name.replace("running_mean", "source_mean").replace("running_var", "source_var")


def assert_same_state(ours: nn.Module, theirs: nn.Module, where: object) -> None:
    theirs_state = theirs.state_dict()
    for name, value in ours.state_dict().items():
        assert torch.equal(value, theirs_state[theirs_name(name)]), (where, name)


def assert_same_memory(adapter: RoTTA, mem) -> None:
    assert adapter.bank is not None
    assert [len(c) for c in adapter.bank.data] == [len(c) for c in mem.data]
    for ours, theirs in zip(adapter.bank.data, mem.data, strict=True):
        for a, b in zip(ours, theirs, strict=True):
            assert (a.age, a.uncertainty) == (b.age, b.uncertainty)
            assert torch.equal(a.data, b.data)


def compare(oracle, adapter: RoTTA, xs: list[torch.Tensor], student=None, teacher=None) -> None:
    """Same seed before each side's step; everything equal after each batch."""
    student = oracle.model if student is None else student
    for step, x in enumerate(xs, start=1):
        torch.manual_seed(step)
        ours = adapter.step(x)
        torch.manual_seed(step)
        theirs = oracle(x).detach()
        assert max_difference(ours, theirs) == 0.0, f"step {step}"
        assert adapter.seen == oracle.current_instance
        assert_same_state(adapter.model.student, student, ("student", step))
        assert_same_state(adapter.model.teacher, oracle.model_ema, ("teacher", step))
        assert_same_memory(adapter, oracle.mem)
        ours_adam = adapter.optimizer.state_dict()["state"]
        theirs_adam = oracle.optimizer.state_dict()["state"]
        assert ours_adam.keys() == theirs_adam.keys()
        for k, state in ours_adam.items():
            for key, value in state.items():
                assert torch.equal(value, theirs_adam[k][key]), (step, k, key)


@pytest.mark.parametrize(("head", "bn1d"), [("linear", True), ("cosine", True), ("linear", False)])
def test_rotta_equals_the_authors_code(head: str, bn1d: bool) -> None:
    model = rotta_model(head, bn1d)
    source = copy.deepcopy(model.state_dict())
    oracle = authors.build(copy.deepcopy(model), CLASSES, img_size=(6, 6), **SMALL)
    adapter = make_adapter("rotta", model, **SMALL)
    xs = batches(6)
    compare(oracle, adapter, xs)
    assert adapter.updates == 6 * 32 // 24
    sizes = [len(c) for c in adapter.bank.data]
    assert sum(sizes) == 10 and sum(n > 0 for n in sizes) >= 3  # full, several classes
    assert all(torch.equal(v, source[k]) for k, v in model.state_dict().items())  # untouched
    assert list(adapter.updated_parameter_names) == authors.BaseAdapter.collect_params(
        oracle, oracle.model
    )[1]
    robust = [m for m in adapter.model.student.modules() if isinstance(m, RobustBN)]
    assert len(robust) == 3 if bn1d else 2
    moved = (adapter.model.teacher.featurizer[1].running_mean - source["featurizer.1.running_mean"])
    assert moved.abs().max() > 1e-3  # the robust statistics moved


def test_defaults_are_the_authors_config() -> None:
    model = rotta_model()
    oracle = authors.build(copy.deepcopy(model), CLASSES, img_size=(6, 6))
    adapter = make_adapter("rotta", model)
    compare(oracle, adapter, batches(5))  # 160 samples: updates at 64 and 128
    assert adapter.updates == 2 and adapter.last_selected is None  # none in the last batch
    rotta = oracle.cfg.ADAPTER.RoTTA
    assert (adapter.nu, adapter.memory_size, adapter.update_frequency) == (
        rotta.NU, rotta.MEMORY_SIZE, rotta.UPDATE_FREQUENCY
    )
    assert (adapter.lambda_t, adapter.lambda_u, adapter.alpha) == (
        rotta.LAMBDA_T, rotta.LAMBDA_U, rotta.ALPHA
    )
    assert adapter.optimizer.defaults["lr"] == oracle.optimizer.defaults["lr"] == 1e-3
    assert adapter.optimizer.defaults["betas"] == oracle.optimizer.defaults["betas"]


def test_steps_equal_the_authors_code() -> None:
    model = rotta_model()
    oracle = authors.build(copy.deepcopy(model), CLASSES, img_size=(6, 6), steps=2, **SMALL)
    compare(oracle, make_adapter("rotta", model, steps=2, **SMALL), batches(3))


def test_batch_size_one_equals_the_authors_code() -> None:
    model = rotta_model()
    oracle = authors.build(
        copy.deepcopy(model), CLASSES, img_size=(6, 6), memory_size=4, update_frequency=3
    )
    adapter = make_adapter("rotta", model, memory_size=4, update_frequency=3)
    compare(oracle, adapter, [x[:1] for x in batches(7)])
    assert adapter.updates == 2


def test_non_square_images_equal_the_authors_code() -> None:
    """The strong view is a square crop of the image's height, as the authors' (kept)."""
    model = rotta_model()
    oracle = authors.build(copy.deepcopy(model), CLASSES, img_size=(6, 8), **SMALL)
    adapter = make_adapter("rotta", model, **SMALL)
    g = torch.Generator().manual_seed(4)
    compare(oracle, adapter, [torch.randn(32, 3, 6, 8, generator=g) * 2 + 0.5 for _ in range(2)])
    assert adapter.updates == 2 and adapter._augment(torch.rand(2, 3, 6, 8)).shape[-2:] == (6, 6)


def test_transforms_are_the_authors_draw_for_draw() -> None:
    cfg = authors._ns(INPUT=authors._ns(SIZE=(16, 16)))
    x = torch.rand(4, 3, 16, 16)
    torch.manual_seed(3)
    ours = [tta_transforms((16, 16))(x) for _ in range(3)]
    torch.manual_seed(3)
    theirs = [authors.get_tta_transforms(cfg)(x) for _ in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))


def test_augmentation_is_in_pixel_space() -> None:
    """A normalised dataset: ours on normalised batches equals the authors' on pixels with
    the normalisation inside the model, to float rounding."""
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    model = rotta_model()
    inside = copy.deepcopy(model)
    inside.featurizer.insert(0, transforms.Normalize(mean, std))
    oracle = authors.build(inside, CLASSES, img_size=(6, 6), **SMALL)
    adapter = make_adapter("rotta", model, **SMALL)
    adapter.input_transform = TransformSpec((6, 6), 3, mean, std)
    for step, x in enumerate(batches(4), start=1):
        pixels = (x * 0.1 + 0.5).clamp(0, 1)
        torch.manual_seed(step)
        ours = adapter.step(transforms.Normalize(mean, std)(pixels))
        torch.manual_seed(step)
        theirs = oracle(pixels).detach()
        assert max_difference(ours, theirs) < 1e-4, step
    assert adapter.updates == 5


def test_the_toolkits_single_precision_update_raises() -> None:
    model = rotta_model()
    model.model_preprocess = transforms.Compose([transforms.CenterCrop(6)])  # its image size
    released = toolkit.build(model, CLASSES, runnable=False, **SMALL)
    with pytest.raises(TypeError, match="positional argument"):
        released(batches(1)[0])  # the 24th sample's update calls loss_calculation(x)


@pytest.mark.parametrize("extra", [{}, {"episodic": True}])
def test_the_toolkits_rotta_equals_ours_on_batchnorm(extra: dict) -> None:
    """Its teacher average (m = 1 - nu) rounds as the authors' in float32; episodic is its
    reset (memory and counter cleared) before every batch."""
    model = rotta_model()
    theirs = copy.deepcopy(model)
    theirs.model_preprocess = transforms.Compose([transforms.CenterCrop(6)])
    oracle = toolkit.build(theirs, CLASSES, **SMALL, **extra)
    adapter = make_adapter("rotta", model, **SMALL, **extra)
    compare(oracle, adapter, batches(4), student=oracle.model)
    assert adapter.updates == (1 if extra else 5)  # episodic: one update from the source


def test_norms_all_is_the_toolkits_layer_and_group_norm_training() -> None:
    model = rotta_model(bn1d=False, norm="gn")
    model.featurizer.insert(1, nn.BatchNorm2d(8))  # one BN beside the GroupNorms
    model.featurizer[1].running_mean.uniform_(-0.1, 0.1)
    theirs = copy.deepcopy(model)
    theirs.model_preprocess = transforms.Compose([transforms.CenterCrop(6)])
    oracle = toolkit.build(theirs, CLASSES, **SMALL)
    adapter = make_adapter("rotta", model, norms="all", **SMALL)
    compare(oracle, adapter, batches(3), student=oracle.model)
    assert sorted(adapter.updated_parameter_names) == sorted(oracle.collect_params()[1])
    assert any("featurizer.2." in n for n in adapter.updated_parameter_names)  # a GroupNorm
    authors_names = make_adapter("rotta", copy.deepcopy(model)).updated_parameter_names
    assert authors_names == ("featurizer.1.weight", "featurizer.1.bias")  # robust BN only


def test_a_model_without_batchnorm_is_refused_as_the_authors_code_fails() -> None:
    model = rotta_model(bn1d=False, norm="gn")
    with pytest.raises(ParameterError, match="BatchNorm1d/2d") as info:
        make_adapter("rotta", model)
    assert info.value.where == "method" and "norms=all" in str(info.value)
    assert "\n" not in str(info.value)
    oracle = authors.build(copy.deepcopy(model), CLASSES, img_size=(6, 6), **SMALL)
    assert oracle.optimizer is None  # nothing to train: its first update fails
    with pytest.raises(AttributeError):
        oracle(batches(1)[0])
    make_adapter("rotta", model, norms="all")  # the toolkit's choice trains the GroupNorms
    with pytest.raises(ParameterError, match="LayerNorm") as info:
        make_adapter("rotta", SplitModel(nn.Flatten(), nn.Linear(108, 3)), norms="all")


@pytest.mark.parametrize(
    ("layer", "message"),
    [(nn.BatchNorm2d(8, affine=False), "affine=False"),
     (nn.BatchNorm2d(8, track_running_stats=False), "running")],
)  # fmt: skip
def test_batchnorm_the_authors_cannot_convert_is_refused(layer: nn.Module, message: str) -> None:
    model = tiny_model(CLASSES)
    model.featurizer[1] = layer
    with pytest.raises(ParameterError, match=message) as info:
        make_adapter("rotta", model)
    assert info.value.where == "method" and "featurizer.1" in str(info.value)


def test_a_single_class_is_refused() -> None:
    adapter = make_adapter("rotta", SplitModel(nn.Sequential(nn.Flatten(), nn.BatchNorm1d(12)),
                                               nn.Linear(12, 1)))  # fmt: skip
    with pytest.raises(ParameterError, match="2 classes"):
        adapter.step(torch.randn(4, 3, 2, 2))


def test_snapshot_restore_reset_and_the_model_given() -> None:
    model = rotta_model()
    source = copy.deepcopy(model.state_dict())
    adapter = make_adapter("rotta", model, **SMALL)
    xs = batches(5)
    torch.manual_seed(0)
    adapter.step(xs[0])
    snap = adapter.snapshot()

    def run() -> list[torch.Tensor]:
        out = []
        for k, x in enumerate(xs[1:]):
            torch.manual_seed(k)
            out.append(adapter.step(x))
        return out

    after, memory = run(), adapter.bank.state()
    state, seen = copy.deepcopy(adapter.model.state_dict()), adapter.seen
    adapter.restore(snap)
    assert adapter.seen == 32 and adapter.updates == 1
    again = run()
    assert all(torch.equal(a, b) for a, b in zip(after, again, strict=True))
    assert adapter.seen == seen and adapter.updates == 6
    assert all(torch.equal(v, state[k]) for k, v in adapter.model.state_dict().items())
    for ours, theirs in zip(adapter.bank.state().classes, memory.classes, strict=True):
        assert [(u, a) for _, u, a in ours] == [(u, a) for _, u, a in theirs]

    adapter.reset()
    assert adapter.bank is None and adapter.seen == 0 and adapter.updates == 0
    fresh = make_adapter("rotta", copy.deepcopy(model), **SMALL)
    for k, v in adapter.model.state_dict().items():
        assert torch.equal(v, fresh.model.state_dict()[k]), k  # source weights and statistics
    assert len(adapter.optimizer.state) == 0
    # the model given keeps its BatchNorm layers and source weights throughout
    assert all(torch.equal(v, source[k]) for k, v in model.state_dict().items())
    assert isinstance(model.featurizer[1], nn.BatchNorm2d)


def test_predictions_are_the_teachers_and_adapt_nothing() -> None:
    adapter = make_adapter("rotta", rotta_model(), **SMALL)
    x = batches(1)[0]
    z, logits = adapter.features(x)  # the teacher in eval mode; nothing moves
    before = copy.deepcopy(adapter.model.state_dict())
    assert torch.equal(adapter.predict(x), logits)
    assert all(torch.equal(v, before[k]) for k, v in adapter.model.state_dict().items())
    online = adapter.step(x)  # an update (the 24th sample) inside the step
    assert adapter.updates == 1
    assert torch.equal(online, logits) and torch.equal(adapter.last_features, z)
    assert not torch.equal(adapter.predict(x), logits)  # the teacher moved
    assert np.isfinite(adapter.last_loss) and adapter.last_selected == 10  # the full memory


def test_a_run_through_adaptrun() -> None:
    class Data:
        labels = np.arange(40) % CLASSES

        def __len__(self) -> int:
            return 40

        def __getitem__(self, i: int):
            g = torch.Generator().manual_seed(i)
            return torch.randn(3, 6, 6, generator=g) * 2 + 0.5, int(self.labels[i])

    run = AdaptRun(make_adapter("rotta", rotta_model(), **SMALL), Data(), batch_size=10)
    records = run.run(4)
    assert [r.loss is None for r in records] == [True, True, False, True]  # the 24th sample
    assert all(r.batch_features is not None for r in records)
    assert 0.0 <= run.evaluate() <= 1.0


@pytest.mark.parametrize(
    ("name", "value"),
    [("lr", 0.0), ("nu", 1.5), ("memory_size", 0), ("update_frequency", 0),
     ("lambda_t", -1.0), ("lambda_u", float("nan")), ("alpha", -0.1), ("norms", "ln"),
     ("steps", 0), ("episodic", "yes")],
)  # fmt: skip
def test_bad_parameters_are_named(name: str, value: object) -> None:
    with pytest.raises(ParameterError) as info:
        make_adapter("rotta", tiny_model(CLASSES), **{name: value})
    assert info.value.where == name
