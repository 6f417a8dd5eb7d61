"""ROID and CMF against the toolkit its authors released them in (tests/oracles/
roid_cmf_reference.py, mariodoebler/test-time-adaptation 8b2ed63).

Batch by batch on random BN and GN/LN models: the online (prior-corrected) logits max
difference 0.0, every weight equal, the class-probability average, CMF's hidden model, its
variance and gain equal; the augmentations drawn from torch's generator seeded alike.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from protoview.core.adapt import make_adapter
from protoview.core.adapt.cmf import CMF
from protoview.core.adapt.roid import ROID
from protoview.core.model import SplitModel
from protoview.core.preprocess import TransformSpec
from protoview.errors import ParameterError
from tests._tta_models import batches, max_difference, moved, tiny_model
from tests.oracles import roid_cmf_reference as toolkit

CLASSES = 10
SIZE = 6  # the tiny models' images: 6 x 6
# the toolkit's device: cuda when there is one; models and batches go there on both sides
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def model_for(head: str = "linear", norm: str = "bn", sharp: float = 4.0) -> SplitModel:
    return tiny_model(CLASSES, head, sharp=sharp, norm=norm).to(DEVICE)


def xs_for(n: int, size: int = 32, seed: int = 1) -> list[torch.Tensor]:
    return [x.to(DEVICE) for x in batches(n, size=size, seed=seed)]


def oracle_for(name: str, model: nn.Module, batch_size: int = 32, **cfg):
    return toolkit.build(name, copy.deepcopy(model), SIZE, CLASSES, batch_size=batch_size, **cfg)


def compare(oracle, adapter, xs: list[torch.Tensor], seed: int = 0) -> None:
    """Equal online logits, weights and extra state after every batch."""
    for step, x in enumerate(xs, start=1):
        torch.manual_seed(seed + step)
        ours = adapter.step(x)
        torch.manual_seed(seed + step)
        theirs = oracle(x).detach()
        assert max_difference(ours, theirs) == 0.0, f"step {step}"
        theirs_state = oracle.model.state_dict()
        for name, value in adapter.model.state_dict().items():
            if name in theirs_state:  # configure_model deletes BatchNorm2d's running statistics
                assert torch.equal(value, theirs_state[name]), (step, name)
        if oracle.use_weighting:
            assert torch.equal(adapter.class_probs_ema, oracle.class_probs_ema), step
        if isinstance(adapter, CMF):
            assert adapter.hidden_var == oracle.hidden_var and adapter.beta == oracle.beta, step
            hidden = dict(oracle.hidden_model.named_parameters())
            for name, value in adapter.hidden_state().items():
                assert torch.equal(value, hidden[name]), (step, name)


CASES = [("linear", "bn", 4.0), ("cosine", "bn", 2.0), ("linear", "gn", 4.0)]


@pytest.mark.parametrize(("head", "norm", "sharp"), CASES)
def test_roid_equals_the_toolkit(head: str, norm: str, sharp: float) -> None:
    model = model_for(head, norm, sharp)
    source = copy.deepcopy(model)
    oracle = oracle_for("roid", model)
    adapter = make_adapter("roid", model)  # the defaults: conf.py's, Adam 1e-3
    compare(oracle, adapter, xs_for(5))
    assert moved(model, source) > 1e-4
    assert 0 < adapter.last_selected < 32  # the diversity mask drops some samples
    assert list(adapter.updated_parameter_names) == oracle.collect_params()[1]


@pytest.mark.parametrize(("head", "norm", "sharp"), CASES)
@pytest.mark.parametrize("q", [0.005, 50.0])
def test_cmf_equals_the_toolkit(head: str, norm: str, sharp: float, q: float) -> None:
    """q 0.005 (the default) on 48 parameters: the gain is 1, the hidden model only follows
    the source; q 50: the gain falls to 0.89 and the hidden model takes the adapted one."""
    model = model_for(head, norm, sharp)
    oracle = oracle_for("cmf", model, cmf_q=q)
    adapter = make_adapter("cmf", model, q=q)
    compare(oracle, adapter, xs_for(5))
    assert adapter.scaled_q == oracle.q
    assert (adapter.beta == 1.0) == (q == 0.005)


@pytest.mark.parametrize("name", ["roid", "cmf"])
@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ({"optimizer": "sgd", "lr": 0.00025}, {"method": "SGD", "lr": 0.00025}),  # ImageNet cfgs
        ({"steps": 2}, {"steps": 2}),
        ({"episodic": True}, {"episodic": True}),
        ({"use_prior_correction": False}, {"roid_use_prior_correction": False}),
        ({"use_consistency": False}, {"roid_use_consistency": False}),
        ({"use_weighting": False, "use_consistency": False},
         {"roid_use_weighting": False, "roid_use_consistency": False}),
        ({"temperature": 0.1, "momentum_probs": 0.5}, {"roid_temperature": 0.1,
                                                         "roid_momentum_probs": 0.5}),
    ],
)  # fmt: skip
def test_options_equal_the_toolkits(name: str, ours: dict, theirs: dict) -> None:
    model = model_for(norm="gn" if "steps" in ours else "bn")
    extra_ours, extra_theirs = ({"q": 50.0}, {"cmf_q": 50.0}) if name == "cmf" else ({}, {})
    oracle = oracle_for(name, model, **theirs, **extra_theirs)
    compare(oracle, make_adapter(name, model, **ours, **extra_ours), xs_for(4))


def test_roid_momentum_src_and_cmf_alpha_gamma_equal_the_toolkits() -> None:
    model = model_for()
    oracle = oracle_for("roid", model, roid_momentum_src=0.8)
    compare(oracle, make_adapter("roid", model, momentum_src=0.8), xs_for(3))
    model = model_for(norm="gn")
    oracle = oracle_for("cmf", model, cmf_alpha=0.9, cmf_gamma=0.7, cmf_q=20.0)
    compare(oracle, make_adapter("cmf", model, alpha=0.9, gamma=0.7, q=20.0), xs_for(3))


@pytest.mark.parametrize("name", ["roid", "cmf"])
def test_a_short_last_batch_is_divided_by_the_batch_size(name: str) -> None:
    """The toolkit divides by TEST.BATCH_SIZE: the default (largest batch seen) is that."""
    model = model_for()
    xs = xs_for(2) + xs_for(1, size=20, seed=5)
    compare(oracle_for(name, model), make_adapter(name, model), xs)
    oracle = oracle_for(name, model, batch_size=64)
    compare(oracle, make_adapter(name, model, batch_size=64), xs)


def test_roid_refuses_what_the_toolkit_fails_on_and_corrected_runs_it() -> None:
    model = model_for()
    oracle = oracle_for("roid", model, roid_use_weighting=False)
    with pytest.raises(NameError):  # UnboundLocalError: ``mask`` never defined
        oracle(xs_for(1)[0])
    for name in ("roid", "cmf"):
        with pytest.raises(ParameterError, match="variant=corrected") as info:
            make_adapter(name, model, use_weighting=False)
        assert info.value.where == "use_weighting"
    xs = xs_for(3)
    corrected = make_adapter("roid", copy.deepcopy(model), use_weighting=False, variant="corrected")
    without = make_adapter("roid", copy.deepcopy(model), use_weighting=False,
                           use_consistency=False)  # fmt: skip
    for x in xs:
        torch.manual_seed(0)
        a, b = corrected.step(x), without.step(x)
        assert corrected.last_selected == 32 and torch.isfinite(a).all()
    assert max_difference(a, b) > 0  # the consistency loss with every sample counted


def test_cmf_op_is_lp_in_the_toolkit_and_corrected_fuses_with_the_prediction() -> None:
    model = model_for()
    xs = xs_for(3)
    oracle = oracle_for("cmf", model, cmf_q=50.0, cmf_type="op")
    reference = make_adapter("cmf", copy.deepcopy(model), q=50.0, post_type="op")
    compare(oracle, reference, xs)
    lp = make_adapter("cmf", copy.deepcopy(model), q=50.0)
    compare(oracle_for("cmf", model, cmf_q=50.0), lp, xs)
    for a, b in zip(reference.model.parameters(), lp.model.parameters(), strict=True):
        assert torch.equal(a, b)  # op == lp in the released code

    # corrected op, first step: theta = gamma * theta_opt + (1 - gamma) * h_predicted, with
    # theta_opt the weights after the optimiser (a run with gamma 1 does not fuse) and
    # h_predicted = alpha * source + (1 - alpha) * source
    fused = make_adapter("cmf", copy.deepcopy(model), q=50.0, post_type="op", variant="corrected")
    plain = make_adapter("cmf", copy.deepcopy(model), q=50.0, gamma=1.0, variant="corrected")
    for adapter in (fused, plain):
        torch.manual_seed(3)
        adapter.step(xs[0])
    source = dict(model.named_parameters())
    after = dict(plain.model.named_parameters())
    lp_first = lp_after_one_step(model, xs[0])
    changed = 0
    for name, p in fused.model.named_parameters():
        if name in fused.updated_parameter_names:
            predicted = 0.99 * source[name].data + (1 - 0.99) * source[name].data
            expected = 0.99 * after[name].data + (1 - 0.99) * predicted
            assert torch.equal(p.data, expected), name
            changed += not torch.equal(p.data, lp_first[name])
    assert changed > 0  # corrected op differs from lp once beta < 1


def lp_after_one_step(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    adapter = make_adapter("cmf", copy.deepcopy(model), q=50.0, variant="corrected")
    torch.manual_seed(3)
    adapter.step(x)
    return {n: p.data for n, p in adapter.model.named_parameters()}


def test_cmf_episodic_keeps_the_variance_in_the_toolkit_and_corrected_clears_it() -> None:
    model = model_for()
    xs = xs_for(3)
    reference = make_adapter("cmf", copy.deepcopy(model), q=50.0, episodic=True)
    compare(oracle_for("cmf", model, cmf_q=50.0, episodic=True), reference, xs)
    corrected = make_adapter("cmf", copy.deepcopy(model), q=50.0, episodic=True,
                             variant="corrected")  # fmt: skip
    variances = []
    for x in xs:
        corrected.step(x)
        variances.append(corrected.hidden_var)
    assert variances == [variances[0]] * 3  # one step from 0 every batch
    assert reference.hidden_var > variances[0]  # the toolkit's grows across the resets


@pytest.mark.parametrize("name", ["roid", "cmf"])
def test_augmentations_act_on_pixels(name: str) -> None:
    """Normalised batches: the adapter goes back to pixels, as the toolkit's model that
    normalises inside sees them (equal up to the rounding of the round trip)."""
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    model = model_for()
    inside = SplitModel(
        nn.Sequential(Normalise(mean, std), copy.deepcopy(model.featurizer)),
        copy.deepcopy(model.classifier),
    ).to(DEVICE)
    oracle = toolkit.build(name, inside, SIZE, CLASSES, batch_size=32)
    adapter = make_adapter(name, model)
    adapter.input_transform = TransformSpec((SIZE, SIZE), 3, mean, std)
    pixels = [torch.rand(32, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(i))
              for i in range(3)]  # fmt: skip
    for step, p in enumerate(pixels):
        p = p.to(DEVICE)
        torch.manual_seed(step)
        theirs = oracle(p).detach()
        torch.manual_seed(step)
        ours = adapter.step(adapter.pixels.from_pixels(p))
        assert max_difference(ours, theirs) < 1e-6, step


class Normalise(nn.Module):
    def __init__(self, mean, std) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


@pytest.mark.parametrize("name", ["roid", "cmf"])
def test_snapshot_restore_and_reset(name: str) -> None:
    model = model_for()
    source = copy.deepcopy(model)
    adapter = make_adapter(name, model, **({"q": 50.0} if name == "cmf" else {}))
    xs = xs_for(4)
    adapter.step(xs[0])
    snap = adapter.snapshot()

    def run() -> list[torch.Tensor]:
        out = []
        for i, x in enumerate(xs[1:]):
            torch.manual_seed(i)
            out.append(adapter.step(x))
        return out

    after = run()
    state = {k: v.clone() for k, v in adapter.model.state_dict().items()}
    extra = copy.deepcopy(adapter._extra_state())
    adapter.restore(snap)
    again = run()
    assert all(torch.equal(a, b) for a, b in zip(after, again, strict=True))
    assert all(torch.equal(v, adapter.model.state_dict()[k]) for k, v in state.items())
    assert torch.equal(extra["class_probs_ema"], adapter.class_probs_ema)
    if name == "cmf":
        assert extra["hidden_var"] == adapter.hidden_var
        assert all(torch.equal(a, b) for a, b in zip(extra["hidden"], adapter.hidden, strict=True))
    adapter.reset()
    assert adapter.class_probs_ema is None and adapter.largest_batch == 0
    assert moved(model, source) == 0.0
    if name == "cmf":
        assert adapter.hidden_var == 0
        hidden = adapter.hidden_state()
        assert all(torch.equal(hidden[n], p) for n, p in source.named_parameters())


def test_predict_is_the_prior_corrected_current_model() -> None:
    model = model_for()
    adapter = make_adapter("roid", model)
    x = xs_for(1)[0]
    with torch.no_grad():
        plain = copy.deepcopy(model).train()(x)  # batch statistics
    prior = plain.softmax(1).mean(0)
    smooth = max(1 / 32, 1 / CLASSES) / torch.max(prior)
    expected = plain * ((prior + smooth) / (1 + smooth * CLASSES))
    assert max_difference(adapter.predict(x), expected) == 0.0
    off = make_adapter("roid", copy.deepcopy(model), use_prior_correction=False)
    assert max_difference(off.predict(x), plain) == 0.0


@pytest.mark.parametrize("name", ["roid", "cmf"])
@pytest.mark.parametrize(
    ("param", "value"),
    [("optimizer", "rmsprop"), ("lr", 0.0), ("use_weighting", "yes"), ("momentum_probs", 1.5),
     ("temperature", 0.0), ("batch_size", 0), ("steps", 0), ("episodic", 1), ("variant", "x")],
)  # fmt: skip
def test_bad_parameters_are_named(name: str, param: str, value: object) -> None:
    with pytest.raises(ParameterError) as info:
        make_adapter(name, model_for(), **{param: value})
    assert info.value.where == param


@pytest.mark.parametrize(
    ("name", "param", "value"),
    [("roid", "momentum_src", -0.1), ("cmf", "alpha", 1.01), ("cmf", "gamma", -1.0),
     ("cmf", "q", -0.5), ("cmf", "post_type", "kf"), ("roid", "alpha", 0.9)],
)  # fmt: skip
def test_bad_own_parameters_are_named(name: str, param: str, value: object) -> None:
    with pytest.raises(ParameterError) as info:
        make_adapter(name, model_for(), **{param: value})
    assert info.value.where == param


@pytest.mark.parametrize("name", ["roid", "cmf"])
def test_a_model_without_norm_layers_and_a_batch_of_one_are_refused(name: str) -> None:
    with pytest.raises(ParameterError, match="GroupNorm") as info:
        make_adapter(name, SplitModel(nn.Flatten(), nn.Linear(108, 3)))
    assert info.value.where == "method"
    adapter = make_adapter(name, model_for())
    with pytest.raises(ParameterError, match="at least 2 samples") as info:
        adapter.step(xs_for(1)[0][:1])
    assert info.value.where == "batch"


def test_classes_are_the_registered_ones() -> None:
    assert isinstance(make_adapter("roid", model_for()), ROID)
    assert isinstance(make_adapter("cmf", model_for()), CMF)


def test_cmf_with_a_gain_of_one_is_roid_up_to_rounding() -> None:
    """Few adapted parameters, the default q: beta is 1, the hidden model follows the source
    only, and the fusion is ROID's weight ensembling (momentum_src = gamma)."""
    model = model_for()
    roid, cmf = make_adapter("roid", copy.deepcopy(model)), make_adapter("cmf", model)
    for i, x in enumerate(xs_for(4)):
        torch.manual_seed(i)
        a = roid.step(x)
        torch.manual_seed(i)
        b = cmf.step(x)
        assert cmf.beta == 1.0 and max_difference(a, b) < 1e-6
