"""SANTA against the code it was released in (tests/oracles/santa_reference.py, the toolkit
8b2ed63): source prototypes, projector and every adaptation step, the student's logits and
weights and the projector equal batch by batch (max difference 0.0), seeded draws (source
shuffling, augmentations, projector initialisation) taken in the same order."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from protoview.core.adapt import make_adapter
from protoview.errors import ParameterError
from tests._tta_models import batches, max_difference, moved, tiny_model
from tests.oracles import santa_reference as authors

CLASSES = 4


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _source(n: int = 48, seed: int = 5) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.rand(n, 3, 6, 6, generator=g), torch.arange(n) % CLASSES)


def _pixels(n: int) -> list[torch.Tensor]:
    return [b.clamp(0, 1) for b in batches(n, size=16, seed=1)]


def _pair(model, **params):
    torch.manual_seed(11)
    oracle = authors.SANTA(copy.deepcopy(model), CLASSES, DataLoader(_source(), 16, shuffle=True),
                           (6, 6), projection_dim=8, steps=params.get("steps", 1),
                           episodic=params.get("episodic", False))
    torch.manual_seed(11)
    ours = make_adapter("santa", model, projection_dim=8, **params)
    ours.use_source(DataLoader(_source(), 16, shuffle=True))
    return oracle, ours


def _compare(oracle, ours, xs) -> None:
    assert torch.equal(ours.prototypes, oracle.prototypes_src)
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
        for a, b in zip(ours.projector.parameters(), oracle.projector.parameters(), strict=True):
            assert torch.equal(a, b), step


@pytest.mark.parametrize(("norm", "head"), [("bn", "linear"), ("gn", "linear"), ("bn", "cosine")])
def test_santa_equals_the_released_code(norm: str, head: str) -> None:
    model = tiny_model(CLASSES, head, sharp=3.0, norm=norm)
    source = copy.deepcopy(model)
    oracle, ours = _pair(model)
    _compare(oracle, ours, _pixels(4))
    assert moved(model, source) > 1e-4


def test_steps_and_episodic_equal_the_released_code() -> None:
    oracle, ours = _pair(tiny_model(CLASSES, sharp=3.0), steps=2)
    _compare(oracle, ours, _pixels(2))
    oracle, ours = _pair(tiny_model(CLASSES, sharp=3.0), episodic=True)
    _compare(oracle, ours, _pixels(3))  # the released reset's shared optimizer state included
    _, corrected = _pair(tiny_model(CLASSES, sharp=3.0), episodic=True, variant="corrected")
    for x in _pixels(3):
        corrected.step(x)
    assert max(float(s["step"]) for s in corrected.optimizer.state.values()) == 1.0


def test_without_source_data_it_says_what_to_pass() -> None:
    adapter = make_adapter("santa", tiny_model(CLASSES))
    with pytest.raises(ParameterError, match="--source-data") as info:
        adapter.step(_pixels(1)[0])
    assert info.value.where == "--source-data"


def test_the_command_line_runs_it_with_source_data(capsys) -> None:
    from protoview.cli import main

    assert main(["adapt", "demo", "demo", "--method", "santa", "--steps", "1"]) == 2
    assert "--source-data" in capsys.readouterr().err
    assert main(["adapt", "demo", "demo", "--method", "santa", "--source-data", "demo:source",
                 "--steps", "2", "--param", "projection_dim=16"]) == 0
    assert "after 2 steps of santa" in capsys.readouterr().out
