"""GTTA (GTTA-MIX) against the code its authors released it in (tests/oracles/gtta_reference.py,
the toolkit 8b2ed63): online logits and every weight equal batch by batch (max difference 0.0),
the running confidence and the pseudo-labels too, the source batches drawn from the same
shuffling DataLoader with torch's global generator in the same state."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from protoview.core.adapt import make_adapter
from protoview.errors import ParameterError
from tests._tta_models import batches, max_difference, moved, tiny_model
from tests.oracles import gtta_reference as authors

CLASSES = 4


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _source(n: int = 40, seed: int = 5) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 3, 6, 6, generator=g), torch.arange(n) % CLASSES)


def _test_batches(n: int) -> list[torch.Tensor]:
    return batches(n, size=16, seed=1)


def _pair(model, **params):
    # 40 source samples in batches of 16: the third batch of each pass is short (8), so
    # the loader restarts mid-run and a short source batch meets a full test batch
    torch.manual_seed(11)
    oracle = authors.GTTA(copy.deepcopy(model), CLASSES, DataLoader(_source(), 16, shuffle=True),
                          lr=params.get("lr", 1e-5), lambda_mixup=params.get("lambda_mixup", 1 / 3),
                          steps=params.get("steps", 1), episodic=params.get("episodic", False))
    torch.manual_seed(11)
    ours = make_adapter("gtta", model, **params)
    ours.use_source(DataLoader(_source(), 16, shuffle=True))
    return oracle, ours


def _compare(oracle, ours, xs) -> None:
    assert [n.split(".", 1)[-1] for n in ours.updated_parameter_names] == [
        n.split(".", 1)[-1] for n in oracle.param_names]
    for step, x in enumerate(xs, start=1):
        state = torch.get_rng_state()
        theirs = oracle(x).detach()
        torch.set_rng_state(state)
        mine = ours.step(x)
        assert max_difference(mine, theirs) == 0.0, step
        for name, value in ours.model.state_dict().items():
            if name in oracle.model.state_dict():  # configure_model deletes BN running stats
                assert torch.equal(value, oracle.model.state_dict()[name]), (step, name)
        assert torch.equal(ours.avg_conf, oracle.avg_conf), step
        assert torch.equal(ours.filtered_pseudos, oracle.filtered_pseudos), step
        assert ours.counter == oracle.counter == 0
        assert ours.last_selected == int((oracle.filtered_pseudos != -1).sum())


# head sharpness chosen so that some pseudo-labels are kept and some ignored at every batch
@pytest.mark.parametrize(("norm", "head", "sharp"),
                         [("bn", "linear", 60.0), ("gn", "linear", 10.0), ("bn", "cosine", 3.0)])
def test_gtta_equals_the_released_code(norm: str, head: str, sharp: float) -> None:
    model = tiny_model(CLASSES, head, sharp=sharp, norm=norm)
    source = copy.deepcopy(model)
    oracle, ours = _pair(model, lr=1e-3)
    kept = []
    for x in _test_batches(5):
        _compare(oracle, ours, [x])
        kept.append(ours.last_selected)
    assert moved(model, source) > 1e-4
    assert all(0 < k < 16 for k in kept), kept


def test_defaults_steps_episodic_and_mixup_equal_the_released_code() -> None:
    oracle, ours = _pair(tiny_model(CLASSES, sharp=60.0))  # lr 1e-5, lambda 1/3
    _compare(oracle, ours, _test_batches(3))
    oracle, ours = _pair(tiny_model(CLASSES, sharp=60.0), steps=3, lr=1e-3)
    _compare(oracle, ours, _test_batches(2))  # pseudo-labels of the first update reused
    oracle, ours = _pair(tiny_model(CLASSES, sharp=60.0), episodic=True, lr=1e-3,
                         lambda_mixup=0.5)
    _compare(oracle, ours, _test_batches(3))  # weights and Adam reset, avg_conf kept
    for optimizer in (ours.optimizer, oracle.optimizer):  # a source and a target step
        assert max(float(s["step"]) for s in optimizer.state.values()) == 2.0


def test_no_kept_pseudo_label_gives_a_nan_loss_with_nothing_selected() -> None:
    oracle, ours = _pair(tiny_model(CLASSES, sharp=0.1), lr=1e-3)  # nothing confident
    _compare(oracle, ours, _test_batches(2))
    assert ours.last_selected == 0 and ours.last_loss != ours.last_loss
    assert ours.state_is_finite()


def test_snapshot_restore_and_reset_continue_identically() -> None:
    _, ours = _pair(tiny_model(CLASSES, sharp=60.0), lr=1e-3)
    xs = _test_batches(4)
    for x in xs[:2]:
        ours.step(x)
    snap = ours.snapshot()
    conf = ours.avg_conf.clone()
    torch.manual_seed(3)
    first = [ours.step(x) for x in xs[2:]]
    ours.restore(snap)
    assert torch.equal(ours.avg_conf, conf)
    ours.use_source(DataLoader(_source(), 16, shuffle=True))  # the same source batches again
    _, twin = _pair(tiny_model(CLASSES, sharp=60.0), lr=1e-3)
    for x in xs[:2]:
        twin.step(x)
    twin.use_source(DataLoader(_source(), 16, shuffle=True))
    torch.manual_seed(3)
    again = [ours.step(x) for x in xs[2:]]
    torch.manual_seed(3)
    expected = [twin.step(x) for x in xs[2:]]
    for a, b, c in zip(first, again, expected, strict=True):
        assert torch.equal(b, c)
        assert a.shape == b.shape
    ours.reset()
    assert float(ours.avg_conf) == pytest.approx(0.9) and ours.steps_done == 0


def test_without_source_data_it_says_what_to_pass() -> None:
    adapter = make_adapter("gtta", tiny_model(CLASSES))
    with pytest.raises(ParameterError, match="--source-data") as info:
        adapter.step(_test_batches(1)[0])
    assert info.value.where == "--source-data"


@pytest.mark.parametrize(("params", "where"), [
    ({"lambda_mixup": 1.5}, "lambda_mixup"), ({"lr": 0.0}, "lr"), ({"steps": 0}, "steps"),
])  # fmt: skip
def test_bad_parameters_are_refused_in_one_line(params, where) -> None:
    with pytest.raises(ParameterError) as info:
        make_adapter("gtta", tiny_model(CLASSES), **params)
    assert info.value.where == where and "\n" not in str(info.value)


def test_the_command_line_runs_it_with_source_data(capsys) -> None:
    from protoview.cli import main

    assert main(["adapt", "demo", "demo", "--method", "gtta", "--steps", "1"]) == 2
    assert "--source-data" in capsys.readouterr().err
    assert main(["adapt", "demo", "demo", "--method", "gtta", "--source-data", "demo:source",
                 "--steps", "2", "--param", "lambda_mixup=0.5"]) == 0
    assert "after 2 steps of gtta" in capsys.readouterr().out
