"""AdaptRun: seeded batches by index, online / cumulative accuracy, cancel, divergence guard."""

from __future__ import annotations

import copy
import threading

import numpy as np
import pytest
import torch
from torch import nn

from protoview.core.adapt.baselines import NoAdapt, Tent
from protoview.core.adapt.registry import make_adapter
from protoview.core.adapt.run import AdaptRun
from protoview.core.model import SplitModel
from protoview.errors import CancelledError, DatasetError, ParameterError, ProtoviewError

CLASSES = 3


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models: one thread is faster, and spares the cores of a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_model(seed: int = 0) -> SplitModel:
    torch.manual_seed(seed)
    featurizer = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )
    return SplitModel(featurizer, nn.Linear(4, CLASSES)).eval()


class ArrayDataset:
    """dataset[i] -> (x (1, 4, 4) float32, y int); optional .labels."""

    def __init__(self, n: int, seed: int = 0, with_labels: bool = True) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 1, 4, 4, generator=g)
        self.y = torch.randint(0, CLASSES, (n,), generator=g)
        if with_labels:
            self.labels = self.y.numpy().astype(np.int64)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.x[i], int(self.y[i])


def test_batches_cover_each_pass_once_in_a_seeded_order() -> None:
    data = ArrayDataset(50)
    run = AdaptRun(NoAdapt(tiny_model()), data, batch_size=16, seed=3)
    assert run.steps_per_pass == 4
    first = run.run_pass()
    assert [len(r.batch_indices) for r in first] == [16, 16, 16, 2]
    order = np.concatenate([r.batch_indices for r in first])
    assert sorted(order.tolist()) == list(range(50)) and order.tolist() != list(range(50))
    second = run.run_pass()
    assert [r.pass_index for r in second] == [1] * 4 and [r.step for r in second] == [5, 6, 7, 8]
    assert np.concatenate([r.batch_indices for r in second]).tolist() != order.tolist()
    run.reset()
    assert run.history == []
    assert np.concatenate([r.batch_indices for r in run.run(4)]).tolist() == order.tolist()
    other_seed = AdaptRun(NoAdapt(tiny_model()), data, batch_size=16, seed=4).run(4)
    assert np.concatenate([r.batch_indices for r in other_seed]).tolist() != order.tolist()
    plain = AdaptRun(NoAdapt(tiny_model()), data, batch_size=16, shuffle=False).run(4)
    assert np.concatenate([r.batch_indices for r in plain]).tolist() == list(range(50))


def test_records_hold_online_predictions_and_accuracies() -> None:
    data = ArrayDataset(40, with_labels=False)  # labels read from the items
    model = tiny_model()
    run = AdaptRun(NoAdapt(model), data, batch_size=12, seed=1)
    records = run.run_pass()
    seen_pred, seen_true = [], []
    for r in records:
        expected = model(data.x[r.batch_indices]).detach().numpy()
        np.testing.assert_allclose(r.online_logits, expected, rtol=0, atol=1e-6)
        assert r.online_logits.dtype == np.float32
        np.testing.assert_array_equal(r.online_predictions, expected.argmax(1))
        truth = data.y[r.batch_indices].numpy()
        assert r.online_accuracy == pytest.approx((expected.argmax(1) == truth).mean())
        seen_pred.append(expected.argmax(1))
        seen_true.append(truth)
        pooled = (np.concatenate(seen_pred) == np.concatenate(seen_true)).mean()
        assert r.cumulative_accuracy == pytest.approx(pooled)
        assert r.full_accuracy is None and r.seconds >= 0
    full = (model(data.x).argmax(1) == data.y).float().mean().item()
    assert run.evaluate() == pytest.approx(full)


def test_evaluate_every_fills_full_accuracy_and_unknown_labels_give_nan() -> None:
    data = ArrayDataset(30)
    run = AdaptRun(make_adapter("bn", tiny_model()), data, batch_size=10, evaluate_every=2)
    records = run.run(3)
    assert records[0].full_accuracy is None and records[2].full_accuracy is None
    assert records[1].full_accuracy == pytest.approx(run.evaluate())
    data.labels = np.full(30, -1)
    record = AdaptRun(NoAdapt(tiny_model()), data, batch_size=10).step()
    assert np.isnan(record.online_accuracy) and np.isnan(record.cumulative_accuracy)


def test_batch_size_is_clamped_checked_and_a_lone_last_sample_merged() -> None:
    data = ArrayDataset(10)
    run = AdaptRun(NoAdapt(tiny_model()), data, batch_size=64)
    assert run.batch_size == 10 and run.steps_per_pass == 1 and "clamped" in run.notes[0]
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ParameterError) as info:
            AdaptRun(NoAdapt(tiny_model()), data, batch_size=bad)
        assert info.value.where == "batch_size"
    merged = AdaptRun(make_adapter("tent", tiny_model()), ArrayDataset(9), batch_size=4)
    assert [len(r.batch_indices) for r in merged.run_pass()] == [4, 5] and merged.notes
    dropped = AdaptRun(NoAdapt(tiny_model()), ArrayDataset(9), batch_size=4, drop_last=True)
    assert dropped.steps_per_pass == 2 and dropped.notes


def test_bad_datasets_are_reported() -> None:
    with pytest.raises(DatasetError, match="empty"):
        AdaptRun(NoAdapt(tiny_model()), ArrayDataset(0), batch_size=4)
    short = ArrayDataset(6)
    short.labels = short.labels[:3]
    with pytest.raises(DatasetError, match="3 labels for 6 samples"):
        AdaptRun(NoAdapt(tiny_model()), short)
    nan = ArrayDataset(6)
    nan.x[2, 0, 0, 0] = float("nan")
    with pytest.raises(DatasetError, match=r"samples \[2\]"):
        AdaptRun(NoAdapt(tiny_model()), nan, batch_size=6).step()
    wrong = ArrayDataset(6)
    wrong.x = torch.randn(6, 3, 4, 4)  # three channels for a one-channel model
    with pytest.raises(DatasetError, match="cannot process"):
        AdaptRun(NoAdapt(tiny_model()), wrong, batch_size=6).step()
    with pytest.raises(ParameterError) as info:
        AdaptRun(NoAdapt(tiny_model()), ArrayDataset(6)).run(-1)
    assert info.value.where == "n_steps"


def test_cancel_stops_between_steps_at_the_last_completed_one() -> None:
    data = ArrayDataset(60)
    run = AdaptRun(Tent(tiny_model(), lr=1e-2), data, batch_size=10)
    calls: list[tuple[int, int]] = []
    with pytest.raises(CancelledError):
        run.run(
            5,
            progress=lambda done, total: calls.append((done, total)),
            cancel=lambda: len(calls) >= 2,
        )
    assert calls == [(1, 5), (2, 5)] and len(run.history) == 2
    twin = AdaptRun(Tent(tiny_model(), lr=1e-2), data, batch_size=10)
    twin.run(2)
    for k, v in run.adapter.model.state_dict().items():
        torch.testing.assert_close(v, twin.adapter.model.state_dict()[k], rtol=0, atol=0)
    event = threading.Event()
    event.set()
    with pytest.raises(CancelledError):
        run.run(1, cancel=event)
    assert len(run.history) == 2


def test_divergence_restores_the_last_good_state_and_names_lr() -> None:
    data = ArrayDataset(40)
    adapter = make_adapter("tsd", tiny_model(), lr=1e-2, filter_K=5)
    run = AdaptRun(adapter, data, batch_size=10)
    run.run(2)
    good_supports = adapter.supports
    adapter.model.classifier.weight.data[0, 0] = float("inf")  # breaks the next step's logits
    broken = copy.deepcopy(adapter.model.state_dict())
    with pytest.raises(ProtoviewError) as info:
        run.step()
    assert info.value.where == "lr" and "diverged at step 3" in info.value.problem
    for k, v in adapter.model.state_dict().items():
        torch.testing.assert_close(v, broken[k], rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(adapter.supports, good_supports)
    assert len(run.history) == 2  # the diverged step left no record


def test_divergence_without_a_copy_for_big_models() -> None:
    adapter = make_adapter("tent", tiny_model(), lr=1e-2)
    run = AdaptRun(adapter, ArrayDataset(20), batch_size=10, guard_max_bytes=0)
    adapter.model.featurizer[1].weight.data.fill_(float("nan"))
    with pytest.raises(ProtoviewError, match="too large to keep a copy"):
        run.step()


def test_divergence_of_the_update_itself_is_undone() -> None:
    adapter = make_adapter("tent", tiny_model(), lr=1e-2)
    run = AdaptRun(adapter, ArrayDataset(20), batch_size=10)
    before = copy.deepcopy(adapter.model.state_dict())
    optimizer_step = adapter.optimizer.step

    def poisoned_step(*args, **kwargs):  # an update that leaves NaN weights
        out = optimizer_step(*args, **kwargs)
        adapter.model.featurizer[1].bias.data[0] = float("nan")
        return out

    adapter.optimizer.step = poisoned_step
    with pytest.raises(ProtoviewError, match="weights are NaN"):
        run.step()
    for k, v in adapter.model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)


def test_in_memory_batches_name_the_bad_samples() -> None:
    """Datasets with get_batch are read in one op; a NaN image is still named."""
    from protoview.core.checkpoint import load_checkpoint
    from protoview.core.data import open_dataset
    from protoview.core.demo import demo_checkpoint_path

    model = load_checkpoint(demo_checkpoint_path("linear"))
    data = open_dataset("demo:noise:1", model.info.transform)
    assert data._images.is_floating_point()
    data._images[5] = float("nan")
    run = AdaptRun(NoAdapt(model), data, batch_size=len(data), shuffle=False)
    with pytest.raises(DatasetError, match=r"samples \[5\]"):
        run.step()


def test_the_run_tells_the_adapter_how_its_batches_were_prepared() -> None:
    """Augmenting methods go back to pixels with the dataset's transform, not the model's."""
    from protoview.core.preprocess import TransformSpec

    data = ArrayDataset(40)
    spec = TransformSpec((6, 6), 3, (0.5, 0.4, 0.3), (0.2, 0.2, 0.2))
    data.transform = spec
    adapter = NoAdapt(tiny_model())
    assert adapter.input_transform is None and adapter.pixels.is_identity
    AdaptRun(adapter, data, batch_size=8)
    assert adapter.input_transform == spec and adapter.pixels.mean == (0.5, 0.4, 0.3)
