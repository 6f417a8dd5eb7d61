"""EATA against the authors' code (tests/oracles/eata_reference.py, mr-eggplant/EATA f739b36).

Online logits batch by batch and the weights after: max difference 0.0. The models are
random BN CNNs with a sharpened head, so that the entropy filter keeps some samples of
each batch and the redundancy filter (with a wider ``d_margin`` than the authors' 0.05,
which on 10 classes keeps almost nothing) keeps some of those.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from protoview.core.adapt import AdaptRun, make_adapter
from protoview.core.adapt.eata import EATA
from protoview.errors import ParameterError
from tests._tta_models import batches, max_difference, moved, tiny_model, without_norm_layers
from tests.oracles import eata_reference as authors

CLASSES = 10
E_MARGIN = math.log(CLASSES) * 0.40

# The authors' softmax_entropy is TorchScript; spend its profiling run (see test_tsd_repo_methods).
authors.softmax_entropy(torch.ones(2, 3, requires_grad=True)).sum().backward()


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def compare(oracle, adapter: EATA, xs: list[torch.Tensor]) -> None:
    kept = []
    for step, x in enumerate(xs, start=1):
        ours = adapter.step(x)
        theirs = oracle(x).detach()
        assert max_difference(ours, theirs) == 0.0, f"step {step}"
        assert adapter.num_samples_update_1 == oracle.num_samples_update_1
        assert adapter.num_samples_update_2 == oracle.num_samples_update_2
        assert torch.equal(adapter.current_model_probs, oracle.current_model_probs)
        kept.append(adapter.last_selected)
    theirs_state = oracle.model.state_dict()
    for name, value in adapter.model.state_dict().items():
        if name in theirs_state:  # configure_model deletes the BN running statistics
            assert torch.equal(value, theirs_state[name]), name
    assert 0 < sum(kept) < len(xs) * len(xs[0])  # the filters kept some, not all


@pytest.mark.parametrize("head", ["linear", "cosine"])
def test_eta_without_fisher_equals_the_authors_code(head: str) -> None:
    model = tiny_model(CLASSES, head, sharp=60.0 if head == "linear" else 6.0)
    source = copy.deepcopy(model)
    oracle = authors.build(copy.deepcopy(model), lr=1e-2, e_margin=E_MARGIN, d_margin=0.4)
    adapter = make_adapter("eata", model, lr=1e-2, d_margin=0.4, fisher_alpha=0.0)
    compare(oracle, adapter, batches(6))
    assert adapter.fishers is None
    assert moved(model, source) > 1e-4


def test_fisher_from_the_first_test_batch_equals_the_authors_loop_on_it() -> None:
    model = tiny_model(CLASSES, sharp=60.0)
    xs = batches(6)
    oracle = authors.build(
        copy.deepcopy(model), lr=1e-2, fisher_loader=[xs[0]], fisher_alpha=50.0,
        e_margin=E_MARGIN, d_margin=0.4,
    )  # fmt: skip
    adapter = make_adapter("eata", model, lr=1e-2, d_margin=0.4, fisher_alpha=50.0)
    compare(oracle, adapter, xs)
    assert adapter.fishers.keys() == oracle.fishers.keys()
    for name, (fisher, theta0) in adapter.fishers.items():
        assert torch.equal(fisher, oracle.fishers[name][0]), name
        assert torch.equal(theta0, oracle.fishers[name][1]), name


def test_supplied_source_fisher_equals_the_authors_loop() -> None:
    model = tiny_model(CLASSES, sharp=60.0)
    source_batches = batches(3, seed=7)
    oracle = authors.build(
        copy.deepcopy(model), lr=1e-2, fisher_loader=source_batches, fisher_alpha=200.0,
        e_margin=E_MARGIN, d_margin=0.4,
    )  # fmt: skip
    adapter = EATA(model, lr=1e-2, d_margin=0.4, fisher_alpha=200.0)
    adapter.compute_fisher(source_batches)
    compare(oracle, adapter, batches(5))
    adapter.reset()  # a supplied Fisher survives a reset (it is not from the test stream)
    assert adapter.fishers is not None and adapter.current_model_probs is None


def test_fisher_over_several_test_batches_uses_the_source_weights() -> None:
    model = tiny_model(CLASSES, sharp=60.0)
    xs = batches(4)
    configured = authors.configure_model(copy.deepcopy(model))
    expected = authors.compute_fishers(configured, xs[:2])
    adapter = make_adapter("eata", model, lr=1e-2, d_margin=0.4, fisher_batches=2)
    adapter.step(xs[0])
    first = {n: f.clone() for n, (f, _) in adapter.fishers.items()}
    for x in xs[1:]:
        adapter.step(x)
    for name, (fisher, theta0) in adapter.fishers.items():
        assert torch.equal(fisher, expected[name][0]), name
        assert torch.equal(theta0, expected[name][1]), name
    assert any(not torch.equal(first[n], f) for n, (f, _) in adapter.fishers.items())
    assert adapter._fisher_seen == 2  # frozen after fisher_batches


@pytest.mark.parametrize("extra", [{"steps": 2}, {"episodic": True}])
def test_steps_and_episodic_equal_the_authors_code(extra: dict) -> None:
    model = tiny_model(CLASSES, sharp=60.0)
    oracle = authors.build(copy.deepcopy(model), lr=1e-2, e_margin=E_MARGIN, d_margin=0.4, **extra)
    adapter = make_adapter("eata", model, lr=1e-2, d_margin=0.4, fisher_alpha=0.0, **extra)
    compare(oracle, adapter, batches(4))


def test_defaults_are_the_authors_main_py() -> None:
    model = tiny_model(CLASSES, sharp=60.0)
    xs = batches(4)
    oracle = authors.build(
        copy.deepcopy(model), fisher_loader=[xs[0]], e_margin=math.log(CLASSES) * 0.40
    )
    adapter = make_adapter("eata", model)
    for x in xs:
        assert max_difference(adapter.step(x), oracle(x).detach()) == 0.0
    assert oracle.fisher_alpha == adapter.fisher_alpha == 2000.0
    assert adapter.optimizer.defaults["lr"] == 0.00025
    assert adapter.optimizer.defaults["momentum"] == 0.9


def test_no_reliable_sample_means_no_update_and_no_divergence() -> None:
    class Data:
        labels = np.zeros(40, np.int64)

        def __len__(self) -> int:
            return 40

        def __getitem__(self, i: int):
            return torch.randn(3, 6, 6, generator=torch.Generator().manual_seed(i)), 0

    model = tiny_model(CLASSES, sharp=1.0)  # nothing below the entropy margin
    source = copy.deepcopy(model)
    adapter = make_adapter("eata", model)
    records = AdaptRun(adapter, Data(), batch_size=10).run(4)
    assert all(np.isnan(r.loss) for r in records) and adapter.last_selected == 0
    assert moved(model, source) == 0.0


def test_snapshot_restore_and_reset_cover_the_moving_average() -> None:
    adapter = make_adapter("eata", tiny_model(CLASSES, sharp=60.0), lr=1e-2, d_margin=0.4)
    xs = batches(4)
    adapter.step(xs[0])
    snap = adapter.snapshot()
    after = [adapter.step(x) for x in xs[1:]]
    adapter.restore(snap)
    again = [adapter.step(x) for x in xs[1:]]
    for a, b in zip(after, again, strict=True):
        assert torch.equal(a, b)
    adapter.reset()
    assert adapter.current_model_probs is None and adapter.fishers is None
    assert adapter.num_samples_update_1 == adapter.num_samples_update_2 == 0
    fresh = make_adapter("eata", tiny_model(CLASSES, sharp=60.0), lr=1e-2, d_margin=0.4)
    for x in xs:
        assert torch.equal(adapter.step(x), fresh.step(x))


@pytest.mark.parametrize(
    ("name", "value"),
    [("lr", 0.0), ("e_margin", -1.0), ("e_margin", float("nan")), ("d_margin", 0.0),
     ("fisher_alpha", -1.0), ("fisher_batches", 0), ("steps", 0), ("episodic", "yes")],
)  # fmt: skip
def test_bad_parameters_are_named(name: str, value: object) -> None:
    with pytest.raises(ParameterError) as info:
        make_adapter("eata", tiny_model(CLASSES), **{name: value})
    assert info.value.where == name


def test_bad_models_and_inputs() -> None:
    with pytest.raises(ParameterError, match="BatchNorm") as info:
        make_adapter("eata", without_norm_layers(tiny_model(CLASSES)))
    assert info.value.where == "method"
    adapter = EATA(tiny_model(CLASSES))
    with pytest.raises(ParameterError) as info:
        adapter.compute_fisher([])
    assert info.value.where == "fisher"
    with pytest.raises(ParameterError) as info:
        adapter.step(torch.zeros(0, 3, 6, 6))
    assert info.value.where == "batch"
