"""LAME against the authors' code (tests/oracles/lame_reference.py, fiveai/LAME d2e5f63).

protoview returns ``log Y``; the oracle's ``Y`` goes through the same clamp and log, and
the two must be equal (max difference 0.0).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from protoview.core.adapt import AdaptRun, make_adapter
from protoview.errors import ParameterError
from tests._tta_models import batches, max_difference, tiny_model
from tests.oracles import lame_reference as authors

CLASSES = 10
AUTHORS_NAME = {"knn": "kNN", "rbf": "rbf", "linear": "linear"}


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def as_logits(y: torch.Tensor) -> torch.Tensor:
    return y.clamp_min(torch.finfo(y.dtype).tiny).log()


@pytest.mark.parametrize("head", ["linear", "cosine"])
@pytest.mark.parametrize("affinity", ["rbf", "knn", "linear"])
@pytest.mark.parametrize(("knn", "symmetric"), [(2, False), (5, False), (3, True)])
def test_lame_equals_the_authors_code(head: str, affinity: str, knn: int, symmetric: bool) -> None:
    model = tiny_model(CLASSES, head, sharp=20.0 if head == "linear" else 2.0)
    source = copy.deepcopy(model.state_dict())
    twin = copy.deepcopy(model)
    adapter = make_adapter("lame", model, affinity=affinity, knn=knn, force_symmetry=symmetric)
    changed = 0.0
    for x in batches(3):
        ours = adapter.step(x)
        y = authors.run_step(twin.featurizer, twin.classifier, x, AUTHORS_NAME[affinity], knn,
                             force_symmetry=symmetric)  # fmt: skip
        assert max_difference(ours, as_logits(y)) == 0.0
        torch.testing.assert_close(ours.softmax(1), y, rtol=0, atol=1e-6)
        with torch.no_grad():
            plain = model.eval()(x).softmax(1)
        changed = max(changed, max_difference(ours.softmax(1), plain))
        assert torch.equal(adapter.predict(x), ours)  # LAME keeps no state: predict = step
    for name, value in model.state_dict().items():
        assert torch.equal(value, source[name]), name  # no weight and no statistic changes
    assert changed > 1e-2  # the Laplacian term moved the probabilities


def test_defaults_are_the_authors_config() -> None:
    model = tiny_model(CLASSES, sharp=20.0)
    adapter = make_adapter("lame", model)
    assert (adapter.affinity, adapter.knn, adapter.force_symmetry) == ("rbf", 5, False)
    x = batches(1)[0]
    expected = authors.run_step(copy.deepcopy(model.featurizer), model.classifier, x)
    assert max_difference(adapter.step(x), as_logits(expected)) == 0.0
    assert make_adapter("lame", model, affinity="kNN").affinity == "knn"  # the authors' spelling


def hand_rbf(feats: torch.Tensor, knn: int) -> torch.Tensor:
    """The rbf kernel with sigma the mean distance to the knn-th nearest *other* sample."""
    d = torch.cdist(feats.double(), feats.double())
    kth = d.sort(dim=1).values[:, knn]  # column 0 is the sample itself
    return torch.exp(-(d**2) / (2 * kth.mean() ** 2))


def test_rbf_sigma_counts_the_sample_itself_in_the_reference_only() -> None:
    model = tiny_model(CLASSES, sharp=20.0)
    x = batches(1)[0]
    y = authors.run_step(copy.deepcopy(model.featurizer), model.classifier, x, "rbf", 1)
    assert torch.isnan(y).all()  # knn = 1: sigma is the distance to itself, 0
    with pytest.raises(ParameterError, match="knn >= 2") as info:
        make_adapter("lame", model, knn=1)  # every batch would be NaN: refused
    assert info.value.where == "knn"
    corrected = make_adapter("lame", model, knn=1, variant="corrected")
    assert torch.isfinite(corrected.step(x)).all()
    with torch.no_grad():
        z = torch.nn.functional.normalize(model.eval().featurizer(x), dim=-1)
    for knn in (1, 5):
        from protoview.core.adapt.lame import rbf_affinity

        torch.testing.assert_close(
            rbf_affinity(z, knn, corrected=True).double(), hand_rbf(z, knn), rtol=0, atol=1e-5
        )
        torch.testing.assert_close(
            rbf_affinity(z, knn + 1).double(), hand_rbf(z, knn), rtol=0, atol=1e-5
        )  # the reference's knn + 1 is the corrected knn


@pytest.mark.parametrize("size", [1, 6])
def test_identical_points_are_nan_in_the_reference_and_finite_when_corrected(size) -> None:
    model = tiny_model(CLASSES, sharp=20.0)
    x = batches(1)[0][:1].repeat(size, 1, 1, 1)  # every distance 0: sigma = 0, exp(-0 / 0)
    y = authors.run_step(copy.deepcopy(model.featurizer), model.classifier, x)
    assert torch.isnan(y).all()
    assert torch.isnan(make_adapter("lame", model).step(x)).all()
    corrected = make_adapter("lame", model, variant="corrected").step(x)
    assert torch.isfinite(corrected).all()
    with torch.no_grad():
        plain = model.eval()(x)
    assert torch.equal(corrected.argmax(1), plain.argmax(1))  # identical points: same class
    distinct = batches(1)[0]  # the knn and linear kernels do not depend on the variant
    for affinity in ("knn", "linear"):
        assert torch.equal(
            make_adapter("lame", model, affinity=affinity, variant="corrected").step(distinct),
            make_adapter("lame", model, affinity=affinity).step(distinct),
        )


def test_a_run_records_no_loss_and_full_set_accuracy_uses_lame() -> None:
    class Data:
        def __init__(self) -> None:
            self.x = torch.cat(batches(2, size=20))
            self.labels = np.arange(40, dtype=np.int64) % CLASSES

        def __len__(self) -> int:
            return 40

        def __getitem__(self, i: int):
            return self.x[i], int(self.labels[i])

    run = AdaptRun(make_adapter("lame", tiny_model(CLASSES, sharp=20.0)), Data(), batch_size=20)
    records = run.run(2)
    assert [r.loss for r in records] == [None, None]
    assert 0.0 <= run.evaluate() <= 1.0


@pytest.mark.parametrize(
    ("name", "value"),
    [("affinity", "cosine"), ("affinity", 3), ("knn", 0), ("knn", 2.5),
     ("force_symmetry", "no"), ("variant", "fixed")],
)  # fmt: skip
def test_bad_parameters_are_named(name: str, value: object) -> None:
    with pytest.raises(ParameterError) as info:
        make_adapter("lame", tiny_model(CLASSES), **{name: value})
    assert info.value.where == name
