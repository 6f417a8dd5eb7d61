"""RMT against its authors' code (tests/oracles/rmt_reference.py, the toolkit 8b2ed63).

Source prototypes, projector, warm-up and every adaptation step: the ensemble logits, the
student's and the teacher's weights and the projector equal batch by batch (max difference
0.0), on BatchNorm and GroupNorm models, seeded draws (source shuffling, augmentations,
projector initialisation) taken in the same order.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from protoview.core.adapt import AdaptRun, make_adapter
from protoview.errors import ParameterError
from tests._tta_models import batches, max_difference, moved, tiny_model
from tests.oracles import rmt_reference as authors

CLASSES = 4


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _source(n: int = 48, seed: int = 5) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 6, 6, generator=g)
    y = torch.arange(n) % CLASSES
    return TensorDataset(x, y)


def _pixels(n: int, seed: int = 1) -> list[torch.Tensor]:
    return [b.clamp(0, 1) for b in batches(n, size=16, seed=seed)]


def _pair(model, source, **params):
    """(oracle, ours) built from the same model, source data and generator state."""
    oracle_params = {
        "lr": params.get("lr", 1e-3), "lambda_ce_src": params.get("lambda_ce_src", 1.0),
        "num_samples_warm_up": params.get("warmup_samples", 50000),
        "projection_dim": params.get("projection_dim", 128), "steps": params.get("steps", 1),
        "episodic": params.get("episodic", False),
    }
    params = dict(params)
    torch.manual_seed(11)
    oracle = authors.RMT(copy.deepcopy(model), CLASSES, DataLoader(source, 16, shuffle=True),
                         (6, 6), **oracle_params)
    torch.manual_seed(11)
    ours = make_adapter("rmt", model, **params)
    ours.use_source(DataLoader(source, 16, shuffle=True))
    return oracle, ours


def _compare(oracle, ours, xs) -> None:
    assert ours.prototypes is not None
    assert torch.equal(ours.prototypes, oracle.prototypes_src)
    for step, x in enumerate(xs, start=1):
        state = torch.get_rng_state()
        theirs = oracle(x).detach()
        torch.set_rng_state(state)
        mine = ours.step(x)
        assert max_difference(mine, theirs) == 0.0, step
        for name, value in ours.model.state_dict().items():
            if name in oracle.model.state_dict():  # configure_model deletes BN running stats
                assert torch.equal(value, oracle.model.state_dict()[name]), (step, name)
        for a, b in zip(ours.teacher.parameters(), oracle.model_ema.parameters(), strict=True):
            assert torch.equal(a, b), step
        for a, b in zip(ours.projector.parameters(), oracle.projector.parameters(), strict=True):
            assert torch.equal(a, b), step


@pytest.mark.parametrize(("norm", "head"), [("bn", "linear"), ("gn", "linear"), ("bn", "cosine")])
def test_rmt_equals_the_authors_code(norm: str, head: str) -> None:
    model = tiny_model(CLASSES, head, sharp=3.0, norm=norm)
    source = copy.deepcopy(model)
    oracle, ours = _pair(model, _source(), warmup_samples=32, projection_dim=8)
    _compare(oracle, ours, _pixels(4))
    assert moved(model, source) > 1e-4


def test_without_warm_up_or_replay_and_with_steps() -> None:
    model = tiny_model(CLASSES, sharp=3.0)
    oracle, ours = _pair(model, _source(), warmup_samples=0, lambda_ce_src=0.0,
                         projection_dim=8, steps=2)
    _compare(oracle, ours, _pixels(3))


def test_episodic_reproduces_the_authors_shared_optimizer_state_and_corrected_fixes_it() -> None:
    model = tiny_model(CLASSES, sharp=3.0)
    oracle, ours = _pair(copy.deepcopy(model), _source(), warmup_samples=16, projection_dim=8,
                         episodic=True)
    _compare(oracle, ours, _pixels(3))

    def adam_steps(adapter) -> list[float]:
        return sorted({float(s["step"]) for s in adapter.optimizer.state.values()})

    assert max(adam_steps(ours)) == 4.0  # 1 warm-up step + 3 updates: the resets restored nothing
    _, corrected = _pair(model, _source(), warmup_samples=16, projection_dim=8, episodic=True,
                         variant="corrected")
    for x in _pixels(3):
        corrected.step(x)
    assert max(adam_steps(corrected)) == 2.0  # each batch from the warmed-up state: 1 + 1
    warmed = corrected._ready["model"]
    corrected.reset()
    for name, value in corrected.model.state_dict().items():
        assert torch.equal(value, warmed[name]), name


def test_the_run_gives_the_source_data_and_refuses_to_run_without() -> None:
    from tests.test_adapt_run import ArrayDataset

    model = tiny_model(CLASSES, sharp=3.0)
    with pytest.raises(ParameterError, match="--source-data") as info:
        AdaptRun(make_adapter("rmt", copy.deepcopy(model)), _Images(32), batch_size=8)
    assert info.value.where == "--source-data"
    run = AdaptRun(make_adapter("rmt", model, warmup_samples=16, projection_dim=8), _Images(32),
                   batch_size=8, source=_Images(24, labelled=True))
    record = run.step()
    assert record.online_logits.shape == (8, CLASSES) and run.adapter.prototypes.shape[0] == CLASSES
    del ArrayDataset


def test_source_data_without_every_class_or_labels_are_refused() -> None:
    model = tiny_model(CLASSES, sharp=3.0)
    few = TensorDataset(torch.rand(8, 3, 6, 6), torch.zeros(8, dtype=torch.long))
    with pytest.raises(ParameterError, match="no sample of class 1"):
        make_adapter("rmt", model).use_source(DataLoader(few, 4, shuffle=True))
    with pytest.raises(ParameterError, match="needs a label for every source sample"):
        AdaptRun(make_adapter("rmt", copy.deepcopy(model)), _Images(16), batch_size=8,
                 source=_Images(16, labelled=False))


def test_snapshot_and_restore_hold_the_teacher_and_projector() -> None:
    model = tiny_model(CLASSES, sharp=3.0)
    _, ours = _pair(model, _source(), warmup_samples=0, projection_dim=8)
    xs = _pixels(2)
    ours.step(xs[0])
    snap = ours.snapshot()
    teacher = copy.deepcopy(ours.teacher.state_dict())
    ours.step(xs[1])
    ours.restore(snap)
    for name, value in ours.teacher.state_dict().items():
        assert torch.equal(value, teacher[name]), name
    assert ours.state_bytes() > sum(p.numel() * 4 for p in model.parameters())


class _Images:
    """dataset[i] -> (x (3, 6, 6), y); labels (N,) (all -1 when not ``labelled``)."""

    def __init__(self, n: int, labelled: bool = True) -> None:
        g = torch.Generator().manual_seed(n)
        self.x = torch.rand(n, 3, 6, 6, generator=g)
        self.y = torch.arange(n) % CLASSES
        self.labels = self.y.numpy() if labelled else -1 + 0 * self.y.numpy()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i], int(self.y[i])


def test_the_command_line_takes_source_data_and_names_the_option_when_missing(capsys) -> None:
    from protoview.cli import main

    assert main(["adapt", "demo", "demo", "--method", "rmt", "--steps", "1"]) == 2
    assert "--source-data" in capsys.readouterr().err
    assert main(["adapt", "demo", "demo", "--method", "rmt", "--source-data", "demo:source",
                 "--steps", "1", "--param", "warmup_samples=64", "--param",
                 "projection_dim=16"]) == 0
    assert "after 1 steps of rmt" in capsys.readouterr().out


def test_compare_takes_source_data_for_the_methods_that_need_them(capsys, tmp_path) -> None:
    from protoview.cli import main

    assert main(["compare", "demo", "demo:noise:3", "--methods", "none,rmt"]) == 2
    assert "--source-data" in capsys.readouterr().err
    out = tmp_path / "t.csv"
    assert main(["compare", "demo", "demo:noise:3", "--methods", "none,rmt", "--source-data",
                 "demo:source", "--param", "rmt.warmup_samples=64", "--param",
                 "rmt.projection_dim=16", "--csv", str(out)]) == 0
    text = out.read_text()
    assert "# source_data: demo:source" in text and "\nrmt," in text
