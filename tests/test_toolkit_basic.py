"""BN-alpha, BN-EMA, RPL and RDumb against the code they are ported from.

Oracles: ``tests/oracles/toolkit_basic_reference.py`` (mariodoebler/test-time-adaptation
8b2ed63: ``TTAMethod``, ``BNAlpha``, ``BNEMA``, ``RPL``, ``EATA`` run as its ``rdumb.yaml``)
and ``tests/oracles/rdumb_reference.py`` (the RDumb authors' oripress/CCC 656dec3). Online
logits batch by batch: max difference 0.0; the adapted weights and the BatchNorm statistics
``torch.equal``. RDumb runs with a reset every 3 updates, so that resets happen within the
test (also in the middle of a batch's ``steps``). The models are the random tiny CNNs of
``tests/_tta_models.py`` (BatchNorm2d, or GroupNorm + LayerNorm); for RDumb with a sharpened
head and a wide ``d_margin`` so that its filters keep some samples, not all.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from protoview.core.adapt import make_adapter
from protoview.core.adapt.base import batchnorm_layers
from protoview.core.adapt.bn_alpha import _alpha_forward
from protoview.core.model import SplitModel
from protoview.errors import ParameterError
from tests._tta_models import batches, max_difference, moved, tiny_model
from tests.oracles import rdumb_reference as authors
from tests.oracles import toolkit_basic_reference as toolkit

CLASSES = 10
E_MARGIN = math.log(CLASSES) * 0.4

# CCC's softmax_entropy is TorchScript: spend its profiling run (see test_tsd_repo_methods).
authors.softmax_entropy(torch.ones(2, 3, requires_grad=True)).sum().backward()


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def oracle(cls, model: nn.Module, **overrides):
    """The toolkit's method ``cls`` on a copy of ``model`` with conf.py + ``overrides``."""
    cfg = toolkit.make_cfg({k.replace("__", "."): v for k, v in overrides.items()})
    return cls(cfg, copy.deepcopy(model), CLASSES)


def assert_same_weights(ours: nn.Module, theirs: nn.Module) -> None:
    """Every entry the toolkit's model still holds (its configure_model deletes the running
    statistics of BatchNorm2d layers it adapts) is equal."""
    theirs_state = theirs.state_dict()
    for name, value in ours.state_dict().items():
        if name in theirs_state:
            assert torch.equal(value, theirs_state[name]), name


def assert_running_statistics_unchanged(ours: nn.Module, source: nn.Module) -> None:
    for (name, a), (_, b) in zip(batchnorm_layers(ours), batchnorm_layers(source), strict=True):
        assert torch.equal(a.running_mean, b.running_mean), name
        assert torch.equal(a.running_var, b.running_var), name


# ---- BN-alpha -------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", [0.1, 0.0, 0.37, 1.0])
@pytest.mark.parametrize("head", ["linear", "cosine"])
def test_bn_alpha_equals_the_toolkit(alpha: float, head: str) -> None:
    model = tiny_model(CLASSES, head)
    source = copy.deepcopy(model)
    theirs = oracle(toolkit.BNAlpha, model, BN__ALPHA=alpha)
    adapter = make_adapter("bn_alpha", model, alpha=alpha)
    for step, x in enumerate(batches(3), start=1):
        expected = theirs(x).detach()
        assert max_difference(adapter.step(x), expected) == 0.0, f"step {step}"
        assert max_difference(adapter.predict(x), expected) == 0.0, f"step {step}"
    assert_same_weights(model, source)  # nothing moves: weights, running statistics, counts
    assert all("forward" not in m.__dict__ for m in model.modules())  # the layers are put back
    assert not model.training


def test_bn_alpha_mixes_source_and_unbiased_batch_statistics() -> None:
    model = tiny_model(CLASSES)
    layer, stem = model.featurizer[1], model.featurizer[0](batches(1)[0]).detach()
    mean, var = stem.mean((0, 2, 3)), stem.var((0, 2, 3), unbiased=True)
    for alpha in (0.0, 0.3, 1.0):
        mixed_mean = (1 - alpha) * layer.running_mean + alpha * mean
        mixed_var = (1 - alpha) * layer.running_var + alpha * var
        expected = F.batch_norm(stem, mixed_mean, mixed_var, layer.weight, layer.bias, eps=1e-5)
        assert (_alpha_forward(layer, alpha, stem) - expected).abs().max() < 1e-5


def test_bn_alpha_with_batch_size_one_equals_the_toolkit() -> None:
    """The toolkit's norm_alpha.yaml files run BN-alpha one sample at a time."""
    model = tiny_model(CLASSES)
    theirs = oracle(toolkit.BNAlpha, model, TEST__BATCH_SIZE=1)
    adapter = make_adapter("bn_alpha", model)
    for x in batches(1, size=4)[0].split(1):
        assert max_difference(adapter.step(x), theirs(x).detach()) == 0.0


def test_bn_alpha_refusals_are_one_line_naming_the_parameter() -> None:
    with pytest.raises(ParameterError, match="BatchNorm") as info:
        make_adapter("bn_alpha", tiny_model(CLASSES, norm="gn"))
    assert info.value.where == "method"
    for alpha in (-0.1, 1.5, float("nan")):
        with pytest.raises(ParameterError, match=r"\[0, 1\]") as info:
            make_adapter("bn_alpha", tiny_model(CLASSES), alpha=alpha)
        assert info.value.where == "alpha"
    model = tiny_model(CLASSES)
    model.featurizer[1] = nn.BatchNorm2d(8, track_running_stats=False)
    with pytest.raises(ParameterError, match="featurizer.1") as info:
        make_adapter("bn_alpha", model)
    assert info.value.where == "model" and "\n" not in str(info.value)


# ---- BN-EMA ---------------------------------------------------------------------------------
@pytest.mark.parametrize("head", ["linear", "cosine"])
def test_bn_ema_equals_the_toolkit(head: str) -> None:
    model = tiny_model(CLASSES, head)
    source = copy.deepcopy(model)
    theirs = oracle(toolkit.BNEMA, model)
    adapter = make_adapter("bn_ema", model)
    for step, x in enumerate(batches(4), start=1):
        assert max_difference(adapter.step(x), theirs(x).detach()) == 0.0, f"step {step}"
        assert_same_weights(model, theirs.model.model)  # running statistics and counts too
    assert not torch.equal(model.featurizer[1].running_mean, source.featurizer[1].running_mean)
    adapter.reset()
    assert_same_weights(model, source)


def test_bn_ema_refuses_a_model_without_batchnorm() -> None:
    with pytest.raises(ParameterError, match="BatchNorm") as info:
        make_adapter("bn_ema", tiny_model(CLASSES, norm="gn"))
    assert info.value.where == "method"


# ---- RPL ------------------------------------------------------------------------------------
RPL_SETTINGS = {  # ours -> the toolkit's config
    "adam": ({"lr": 1e-2}, {"OPTIM__LR": 1e-2}),
    "nesterov": (
        {"lr": 5e-2, "optimizer": "nesterov"}, {"OPTIM__LR": 5e-2, "OPTIM__METHOD": "SGD"},
    ),
    "sgd": (
        {"lr": 5e-2, "optimizer": "sgd"},
        {"OPTIM__LR": 5e-2, "OPTIM__METHOD": "SGD", "OPTIM__NESTEROV": False},
    ),
    "steps": ({"lr": 1e-2, "steps": 2}, {"OPTIM__LR": 1e-2, "OPTIM__STEPS": 2}),
    "episodic": ({"lr": 1e-2, "episodic": True}, {"OPTIM__LR": 1e-2, "MODEL__EPISODIC": True}),
    "q": ({"lr": 1e-2, "q": 0.3}, {"OPTIM__LR": 1e-2, "RPL__Q": 0.3}),
}


@pytest.mark.parametrize("setting", sorted(RPL_SETTINGS))
@pytest.mark.parametrize(("norm", "head"), [("bn", "linear"), ("bn", "cosine"), ("gn", "linear")])
def test_rpl_equals_the_toolkit(setting: str, norm: str, head: str) -> None:
    ours_params, cfg = RPL_SETTINGS[setting]
    model = tiny_model(CLASSES, head, sharp=3.0, norm=norm)
    source = copy.deepcopy(model)
    theirs = oracle(toolkit.RPL, model, **cfg)
    adapter = make_adapter("rpl", model, **ours_params)
    assert adapter.updated_parameter_names == tuple(
        n for n, p in theirs.model.named_parameters() if p.requires_grad
    )
    for step, x in enumerate(batches(4), start=1):
        assert max_difference(adapter.step(x), theirs(x).detach()) == 0.0, f"step {step}"
        assert_same_weights(model, theirs.model)
    assert_running_statistics_unchanged(model, source)
    if setting != "episodic":
        assert moved(model, source) > 1e-4


def test_rpl_defaults_are_the_toolkit_conf() -> None:
    model = tiny_model(CLASSES, sharp=3.0)
    theirs = oracle(toolkit.RPL, model)
    adapter = make_adapter("rpl", model)
    for x in batches(3):
        assert max_difference(adapter.step(x), theirs(x).detach()) == 0.0
    assert_same_weights(model, theirs.model)
    assert isinstance(adapter.optimizer, torch.optim.Adam)
    assert adapter.optimizer.defaults["lr"] == theirs.cfg.OPTIM.LR == 1e-3
    assert adapter.q == theirs.gce.q == 0.8


@pytest.mark.parametrize(
    ("name", "value"),
    [("q", 0.0), ("q", 1.5), ("lr", 0.0), ("optimizer", "rmsprop"), ("steps", 0)],
)
def test_rpl_bad_parameters_are_named(name: str, value: object) -> None:
    with pytest.raises(ParameterError) as info:
        make_adapter("rpl", tiny_model(CLASSES), **{name: value})
    assert info.value.where == name and "\n" not in str(info.value)


def no_norm_model() -> SplitModel:
    return SplitModel(nn.Sequential(nn.Flatten(), nn.Linear(108, 16)), nn.Linear(16, CLASSES))


@pytest.mark.parametrize("method", ["rpl", "rdumb"])
def test_a_model_without_norm_layers_is_refused(method: str) -> None:
    with pytest.raises(ParameterError, match="LayerNorm or GroupNorm") as info:
        make_adapter(method, no_norm_model())
    assert info.value.where == "method"


# ---- RDumb ----------------------------------------------------------------------------------
RDUMB_SETTINGS = {  # ours -> the toolkit's config (EATA as its rdumb.yaml runs it)
    "sgd": ({"optimizer": "sgd"}, {"OPTIM__METHOD": "SGD", "OPTIM__NESTEROV": False}),
    "nesterov": ({"optimizer": "nesterov"}, {"OPTIM__METHOD": "SGD"}),
    "adam": ({"optimizer": "adam"}, {}),
    "steps": (
        {"optimizer": "sgd", "steps": 2},
        {"OPTIM__METHOD": "SGD", "OPTIM__NESTEROV": False, "OPTIM__STEPS": 2},
    ),
    "episodic": (
        {"optimizer": "sgd", "episodic": True},
        {"OPTIM__METHOD": "SGD", "OPTIM__NESTEROV": False, "MODEL__EPISODIC": True},
    ),
}


def rdumb_oracle(model: nn.Module, reset_every: int = 3, **cfg):
    return oracle(
        toolkit.EATA, model, EATA__FISHER_ALPHA=0.0, EATA__D_MARGIN=0.4, OPTIM__LR=1e-2,
        MODEL__RESET_AFTER_NUM_UPDATES=reset_every, **cfg,
    )  # fmt: skip


def compare_rdumb(theirs, adapter, xs: list[torch.Tensor]) -> list[int]:
    kept = []
    for step, x in enumerate(xs, start=1):
        ours = adapter.step(x)
        assert max_difference(ours, theirs(x).detach()) == 0.0, f"step {step}"
        assert_same_weights(adapter.model, theirs.model)
        probs, their_probs = adapter.current_model_probs, theirs.current_model_probs
        assert (probs is None) == (their_probs is None), f"step {step}"
        assert probs is None or torch.equal(probs, their_probs), f"step {step}"
        assert adapter.num_samples_update_2 == theirs.num_samples_update_2
        kept.append(adapter.last_selected)
    assert adapter.performed_updates == theirs.performed_updates
    return kept


@pytest.mark.parametrize("setting", sorted(RDUMB_SETTINGS))
@pytest.mark.parametrize(
    ("norm", "head", "sharp"),
    [("bn", "linear", 60.0), ("bn", "cosine", 6.0), ("gn", "linear", 60.0)],
)
def test_rdumb_equals_the_toolkit_eata_with_resets(
    setting: str, norm: str, head: str, sharp: float
) -> None:
    ours_params, cfg = RDUMB_SETTINGS[setting]
    model = tiny_model(CLASSES, head, sharp=sharp, norm=norm)
    source = copy.deepcopy(model)
    theirs = rdumb_oracle(model, **cfg)
    adapter = make_adapter("rdumb", model, lr=1e-2, d_margin=0.4, reset_every=3, **ours_params)
    assert adapter.updated_parameter_names == tuple(
        n for n, p in theirs.model.named_parameters() if p.requires_grad
    )
    kept = compare_rdumb(theirs, adapter, batches(8))
    steps = ours_params.get("steps", 1)
    assert adapter.resets == 8 * steps // 3
    assert 0 < sum(kept) <= 8 * 32
    if setting != "episodic":  # (episodic: every batch is a first one, no redundancy filter)
        assert sum(kept) < 8 * 32  # the filters kept some, not all
    assert_running_statistics_unchanged(model, source)


@pytest.mark.parametrize("head", ["linear", "cosine"])
def test_rdumb_equals_the_authors_code(head: str) -> None:
    model = tiny_model(CLASSES, head, sharp=60.0 if head == "linear" else 6.0)
    theirs = authors.RDumb(copy.deepcopy(model), E_MARGIN, 0.4, 1e-2, 3)
    adapter = make_adapter("rdumb", model, lr=1e-2, d_margin=0.4, reset_every=3)
    source = copy.deepcopy(model)
    for step, x in enumerate(batches(8), start=1):
        assert max_difference(adapter.step(x), theirs(x).detach()) == 0.0, f"step {step}"
        # The authors reset at the start of the next batch, the toolkit and protoview after
        # the update: the same resets, the weights differ only in between.
        assert_same_weights(model, source if step % 3 == 0 else theirs.model)
    assert adapter.resets == 2 and theirs.total_steps == 8


def test_rdumb_defaults_are_the_authors() -> None:
    model = tiny_model(CLASSES, sharp=60.0)
    theirs = authors.RDumb(copy.deepcopy(model), e_margin=E_MARGIN)
    adapter = make_adapter("rdumb", model)
    for x in batches(3):
        assert max_difference(adapter.step(x), theirs(x).detach()) == 0.0
    assert (adapter.reset_every, adapter.d_margin, adapter.fisher_alpha) == (1000, 0.05, 0.0)
    defaults = adapter.optimizer.defaults
    assert (defaults["lr"], defaults["momentum"], defaults["nesterov"]) == (0.00025, 0.9, False)


def test_the_toolkit_sgd_is_nesterov_unlike_the_authors() -> None:
    """The toolkit's ImageNet rdumb.yaml (SGD, conf NESTEROV True) is not the authors' SGD."""
    model = tiny_model(CLASSES, sharp=60.0)
    theirs = rdumb_oracle(model, OPTIM__METHOD="SGD")
    adapter = make_adapter("rdumb", model, lr=1e-2, d_margin=0.4, reset_every=3)
    diffs = [max_difference(adapter.step(x), theirs(x).detach()) for x in batches(3)]
    assert diffs[0] == 0.0 and diffs[2] > 0.0  # same first step; momentum differs after


def test_rdumb_reset_counter_survives_snapshot_restore_and_restarts_with_a_run() -> None:
    adapter = make_adapter("rdumb", tiny_model(CLASSES, sharp=60.0), lr=1e-2, d_margin=0.4,
                           reset_every=3)  # fmt: skip
    xs = batches(7)
    for x in xs[:2]:
        adapter.step(x)
    snap = adapter.snapshot()
    after = [adapter.step(x) for x in xs[2:]]  # a reset after the next update
    assert (adapter.performed_updates, adapter.resets) == (7, 2)
    adapter.restore(snap)
    assert (adapter.performed_updates, adapter.resets) == (2, 0)
    again = [adapter.step(x) for x in xs[2:]]
    for a, b in zip(after, again, strict=True):
        assert torch.equal(a, b)
    adapter.reset()
    assert (adapter.performed_updates, adapter.resets) == (0, 0)
    assert adapter.current_model_probs is None
    fresh = make_adapter("rdumb", tiny_model(CLASSES, sharp=60.0), lr=1e-2, d_margin=0.4,
                         reset_every=3)  # fmt: skip
    for x in xs:
        assert torch.equal(adapter.step(x), fresh.step(x))


def test_reset_every_zero_is_eta() -> None:
    model = tiny_model(CLASSES, sharp=60.0)
    eta = make_adapter("eata", copy.deepcopy(model), lr=1e-2, d_margin=0.4, fisher_alpha=0.0)
    adapter = make_adapter("rdumb", model, lr=1e-2, d_margin=0.4, reset_every=0)
    for x in batches(5):
        assert torch.equal(adapter.step(x), eta.step(x))
    assert adapter.resets == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [("reset_every", -1), ("reset_every", 2.5), ("optimizer", "lbfgs"), ("d_margin", 0.0),
     ("lr", -1.0), ("e_margin", 0.0)],
)  # fmt: skip
def test_rdumb_bad_parameters_are_named(name: str, value: object) -> None:
    with pytest.raises(ParameterError) as info:
        make_adapter("rdumb", tiny_model(CLASSES), **{name: value})
    assert info.value.where == name and "\n" not in str(info.value)
