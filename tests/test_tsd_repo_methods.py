"""Every released method of the TSD repository against protoview's method of the same name.

The oracle (tests/oracles/tsd_repo_baselines.py and tsd_reference.py) is built as the
repository's ``unsupervise_adapt.py`` builds it (train mode, its optimiser and parameter
group); protoview's adapter comes from ``make_adapter``. Online logits batch by batch and
the weights afterwards must be equal: max difference 0.0 (the same operations in the same
order).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from protoview.core.adapt import AdaptRun, make_adapter
from protoview.core.heads import CosineLinear
from protoview.core.model import SplitModel
from tests.oracles import tsd_repo_baselines as repo
from tests.oracles.tsd_reference import TSD as RepoTSD

CLASSES, DIM, BATCH = 5, 16, 24

# The released softmax_entropy is TorchScript: its first call with a gradient in a process is
# TorchScript's profiling run (eager autograd's order of gradient sums); every later call
# runs its autodiff graph, whose order protoview's SHOT-IM reproduces (see shot.py). Spend
# the profiling run here so that the comparisons do not depend on the order of the tests.
repo.softmax_entropy(torch.ones(2, 3, requires_grad=True)).sum().backward()


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models: one thread is faster, and spares the cores of a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class ReleasedNet(SplitModel):
    """The repository's ``ERM`` algorithm: ``predict(x) = network(x)``."""

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self(x)


def tiny_model(head: str = "linear", seed: int = 0, sharp: float = 1.0) -> ReleasedNet:
    """A BN CNN; ``sharp`` scales the head so that some predictions are confident."""
    torch.manual_seed(seed)
    featurizer = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, DIM, 3, padding=1), nn.BatchNorm2d(DIM), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )  # fmt: skip
    if head == "linear":
        classifier = nn.Linear(DIM, CLASSES)
        with torch.no_grad():
            classifier.weight.mul_(sharp)
    else:
        classifier = CosineLinear(DIM, CLASSES, nb_proxy=3, to_reduce=True)
        classifier.sigma.data.fill_(8.0 * sharp)
    model = ReleasedNet(featurizer, classifier)
    with torch.no_grad():  # source running statistics unlike the test batches' ones
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    return model


def batches(n: int, size: int = BATCH, seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(size, 3, 6, 6, generator=g) * 2 + 0.5 for _ in range(n)]


def released(name: str, model: ReleasedNet, **kwargs):
    """The oracle as the script builds it, on a copy of ``model``."""
    twin = copy.deepcopy(model)
    if name == "TSD":
        twin.train()
        optimizer = torch.optim.Adam(twin.parameters(), lr=kwargs.pop("lr", 1e-4))
        num_classes = None if isinstance(twin.classifier, nn.Linear) else CLASSES
        return RepoTSD(
            twin, optimizer, classifier_weight=twin.classifier.weight,
            num_classes=num_classes, **kwargs,
        )  # fmt: skip
    if name == "T3A":
        kwargs["classifier_weight"] = twin.classifier.weight
        kwargs["num_classes"] = None if isinstance(twin.classifier, nn.Linear) else CLASSES
    return repo.build_as_script(name, twin, **kwargs)


def compare(oracle, adapter, xs: list[torch.Tensor]) -> list[torch.Tensor]:
    """Online logits equal at every batch, then the whole state equal; returns ours."""
    outs = []
    for step, x in enumerate(xs, start=1):
        ours = adapter.step(x)
        theirs = oracle(x).detach()
        assert (ours - theirs).abs().max().item() == 0.0, f"step {step}"
        outs.append(ours)
    theirs_state = oracle.model.state_dict()
    for name, value in adapter.model.state_dict().items():
        if name in theirs_state:  # Tent's configure_model deletes BN running statistics
            assert torch.equal(value, theirs_state[name]), name
    return outs


def moved(model: nn.Module, source: nn.Module) -> float:
    return max(
        (p - s).abs().max().item()
        for p, s in zip(model.parameters(), source.parameters(), strict=True)
    )


# (released name, protoview name, released kwargs, protoview params)
GRADIENT_METHODS = [
    ("Tent", "tent", {"lr": 1e-2}, {"lr": 1e-2}),
    ("PL", "pl", {"lr": 1e-3, "beta": 0.5}, {"lr": 1e-3, "beta": 0.5}),
    ("PLC", "plc", {"lr": 1e-2, "beta": 0.5}, {"lr": 1e-2, "beta": 0.5}),
    ("SHOT-IM", "shot_im", {"lr": 1e-3}, {"lr": 1e-3}),
    ("TSD", "tsd", {"lr": 1e-3}, {"lr": 1e-3}),
]


@pytest.mark.parametrize("head", ["linear", "cosine"])
@pytest.mark.parametrize(("theirs", "ours", "their_kw", "our_kw"), GRADIENT_METHODS)
def test_gradient_methods_equal_the_released_code(head, theirs, ours, their_kw, our_kw) -> None:
    model = tiny_model(head, sharp=3.0)
    source = copy.deepcopy(model)
    oracle = released(theirs, model, **their_kw)
    adapter = make_adapter(ours, model, **our_kw)
    compare(oracle, adapter, batches(6))
    assert moved(model, source) > 1e-4  # not a comparison of two untouched models


@pytest.mark.parametrize(
    ("theirs", "ours"), [("PL", "pl"), ("SHOT-IM", "shot_im"), ("Tent", "tent")]
)
def test_steps_and_episodic_equal_the_released_code(theirs: str, ours: str) -> None:
    kw = {"lr": 1e-3, "beta": 0.5} if theirs == "PL" else {"lr": 1e-3}
    for extra in ({"steps": 3}, {"episodic": True}, {"steps": 2, "episodic": True}):
        model = tiny_model(sharp=3.0)
        compare(released(theirs, model, **kw, **extra), make_adapter(ours, model, **kw, **extra),
                batches(4))  # fmt: skip


@pytest.mark.parametrize("head", ["linear", "cosine"])
def test_bn_and_erm_equal_the_released_code(head: str) -> None:
    for theirs, ours in (("BN", "bn"), ("ERM", "none")):
        model = tiny_model(head)
        compare(released(theirs, model), make_adapter(ours, model), batches(4))


@pytest.mark.parametrize("head", ["linear", "cosine"])
@pytest.mark.parametrize("filter_k", [1, 5, 100, -1])
def test_t3a_reference_equals_the_released_code(head: str, filter_k: int) -> None:
    model = tiny_model(head)
    oracle = released("T3A", model, filter_K=filter_k)
    adapter = make_adapter("t3a", model, filter_K=filter_k)
    compare(oracle, adapter, batches(5))
    assert torch.equal(adapter.memory.supports, oracle.supports)


def test_t3a_filter_k_minus_one_drops_one_support_per_class_unless_corrected() -> None:
    xs = batches(3, size=20, seed=5)
    reference = make_adapter("t3a", tiny_model(), filter_K=-1)
    corrected = make_adapter("t3a", tiny_model(), filter_K=-1, variant="corrected")
    for x in xs:
        reference.step(x)
        corrected.step(x)
    assert len(corrected.memory) == CLASSES + 3 * 20  # keeps all
    classes = len(set(reference.memory.labels.argmax(1).tolist()))
    assert len(reference.memory) < len(corrected.memory) - classes + 1
    same = make_adapter("t3a", tiny_model(), filter_K=5, variant="corrected")
    compare(released("T3A", tiny_model(), filter_K=5), same, xs)  # equal for filter_K != -1


def test_tsd_default_parameters_equal_the_released_script_defaults() -> None:
    """``make_adapter(name, model)`` with no parameters is the script with its defaults."""
    for theirs, ours in (("TSD", "tsd"), ("PL", "pl"), ("PLC", "plc"), ("SHOT-IM", "shot_im"),
                         ("T3A", "t3a"), ("BN", "bn"), ("ERM", "none")):  # fmt: skip
        model = tiny_model(sharp=10.0)
        compare(released(theirs, model), make_adapter(ours, model), batches(3))


def confident_then_flat() -> list[torch.Tensor]:
    """A batch with confident predictions, then two of constant images: BatchNorm maps them
    to its shift, so the logits are nearly the classifier's bias and no prediction is sure."""
    x = batches(3, seed=2)
    return [x[0], x[1] * 0, x[2] * 0]


@pytest.mark.parametrize("name", ["PL", "PLC"])
def test_pl_reference_keeps_stepping_on_an_empty_mask_and_corrected_skips(name: str) -> None:
    model = tiny_model(sharp=30.0)
    with torch.no_grad():
        model.classifier.bias.zero_()
    xs = confident_then_flat()
    params = {"lr": 1e-4, "beta": 0.9}
    reference = make_adapter(name.lower(), copy.deepcopy(model), **params)
    oracle = released(name, model, **params)
    compare(oracle, reference, xs[:1])
    assert reference.last_selected > 0
    for x in xs[1:]:
        compare(oracle, reference, [x])
        assert reference.last_selected == 0 and np.isnan(reference.last_loss)
    corrected = make_adapter(name.lower(), copy.deepcopy(model), **params, variant="corrected")
    corrected.step(xs[0])
    after_first = {k: v.clone() for k, v in corrected.model.named_parameters()}
    for x in xs[1:]:
        corrected.step(x)
        assert corrected.last_selected == 0 and corrected.last_loss == 0.0
    state = corrected.optimizer.state[corrected.optimizer.param_groups[0]["params"][0]]
    assert int(state["step"]) == 1  # no Adam step on the empty batches
    for k, v in corrected.model.named_parameters():
        assert torch.equal(v, after_first[k]), k
    # the reference's Adam kept moving the weights on its momentum
    assert not torch.equal(reference.model.classifier.weight, corrected.model.classifier.weight)


def test_an_empty_mask_is_not_divergence_for_the_run() -> None:
    class Constant:
        def __init__(self) -> None:
            self.x = torch.zeros(40, 3, 6, 6)
            self.labels = np.zeros(40, np.int64)

        def __len__(self) -> int:
            return 40

        def __getitem__(self, i: int):
            return self.x[i], 0

    model = tiny_model(sharp=10.0)
    with torch.no_grad():
        model.classifier.bias.zero_()
    for variant in ("reference", "corrected"):
        adapter = make_adapter("pl", copy.deepcopy(model), lr=1e-2, variant=variant)
        records = AdaptRun(adapter, Constant(), batch_size=10).run(4)
        losses = [r.loss for r in records]
        assert all(np.isnan(v) for v in losses) if variant == "reference" else losses == [0.0] * 4
