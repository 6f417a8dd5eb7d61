"""NoAdapt, BNAdapt, Tent and T3A: invariants, small oracles from the authors' code, the factory."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from protoview.core.adapt.baselines import T3A, BNAdapt, NoAdapt, Tent
from protoview.core.adapt.registry import make_adapter, method_names
from protoview.core.adapt.registry import method_defaults as adapter_defaults
from protoview.core.adapt.tsd import TSDAdapter
from protoview.core.heads import CosineLinear
from protoview.core.model import SplitModel
from protoview.errors import ParameterError

CLASSES, DIM = 4, 12


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models: one thread is faster, and spares the cores of a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_model(head: str = "linear", seed: int = 0) -> SplitModel:
    torch.manual_seed(seed)
    featurizer = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Conv2d(6, DIM, 3, padding=1), nn.BatchNorm2d(DIM), nn.Tanh(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )  # fmt: skip
    classifier = (
        nn.Linear(DIM, CLASSES)
        if head == "linear"
        else CosineLinear(DIM, CLASSES, 2, to_reduce=True)
    )
    model = SplitModel(featurizer, classifier)
    with torch.no_grad():  # source running statistics unlike the test batches' ones
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    return model.eval()


def batches(n: int, size: int = 20, seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(size, 3, 5, 5, generator=g) * 1.5 + 0.3 for _ in range(n)]


def softmax_entropy(x: torch.Tensor) -> torch.Tensor:
    return -(x.softmax(1) * x.log_softmax(1)).sum(1)


def tent_oracle(model: nn.Module, lr: float) -> tuple[nn.Module, torch.optim.Optimizer]:
    """Tent's configure_model + collect_params + Adam, as in its code."""
    model.train()
    model.requires_grad_(False)
    params = []
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.requires_grad_(True)
            m.track_running_stats = False
            m.running_mean = None
            m.running_var = None
            params += [m.weight, m.bias]
    return model, torch.optim.Adam(params, lr=lr)


class T3AOracle:
    """DomainBed's T3A (its intended filter_K == -1 branch), .cuda() removed."""

    def __init__(self, model: SplitModel, filter_k: int, num_classes: int) -> None:
        self.featurizer, self.classifier = model.featurizer, model.classifier
        self.filter_K, self.num_classes = filter_k, num_classes
        rows = self.classifier.weight.data
        prob = self.classifier(rows)
        self.supports = rows
        self.labels = F.one_hot(prob.argmax(1), num_classes=num_classes).float()
        self.ent = softmax_entropy(prob)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        z = self.featurizer(x)
        p = self.classifier(z)
        yhat = F.one_hot(p.argmax(1), num_classes=self.num_classes).float()
        self.supports = torch.cat([self.supports, z])
        self.labels = torch.cat([self.labels, yhat])
        self.ent = torch.cat([self.ent, softmax_entropy(p)])
        if self.filter_K != -1:
            y_hat = self.labels.argmax(dim=1).long()
            indices, every = [], torch.arange(len(self.ent))
            for i in range(self.num_classes):
                _, order = torch.sort(self.ent[y_hat == i])
                indices.append(every[y_hat == i][order][: self.filter_K])
            indices = torch.cat(indices)
            self.supports, self.labels, self.ent = (
                self.supports[indices],
                self.labels[indices],
                self.ent[indices],
            )
        weights = F.normalize(self.supports, dim=1).T @ self.labels
        return z @ F.normalize(weights, dim=0)


def state_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_states_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_no_adapt_changes_nothing_and_predicts_in_eval_mode() -> None:
    model = tiny_model()
    source = state_of(model)
    model.train()
    adapter = NoAdapt(model)
    for x in batches(3):
        torch.testing.assert_close(adapter.step(x), copy.deepcopy(model).eval()(x).detach())
    assert_states_equal(state_of(model), source)
    assert model.training  # the caller's mode is given back


def test_bn_adapt_equals_a_manual_train_mode_forward() -> None:
    model = tiny_model("cosine")
    twin = copy.deepcopy(model).train()
    source_params = {k: v.clone() for k, v in model.named_parameters()}
    adapter = BNAdapt(model)
    for x in batches(4):
        with torch.no_grad():
            expected = twin(x)
        torch.testing.assert_close(adapter.step(x), expected, rtol=0, atol=1e-6)
    assert_states_equal(state_of(model), state_of(twin))  # running stats followed the test data
    for k, v in model.named_parameters():
        assert torch.equal(v, source_params[k])
    x = batches(1, seed=9)[0]
    adapted = state_of(model)
    with torch.no_grad():
        expected = copy.deepcopy(twin).train()(x)  # batch statistics, as the online step
    torch.testing.assert_close(adapter.predict(x), expected, rtol=0, atol=1e-6)
    assert_states_equal(state_of(model), adapted)  # predicting leaves the running stats alone
    adapter.reset()
    assert_states_equal(state_of(model), state_of(tiny_model("cosine")))


@pytest.mark.parametrize("head", ["linear", "cosine"])
def test_tent_matches_its_code_and_changes_only_bn_affine(head: str) -> None:
    model = tiny_model(head)
    source = state_of(model)
    oracle, optimizer = tent_oracle(copy.deepcopy(model), lr=1e-2)
    adapter = Tent(model, lr=1e-2)
    for x in batches(5):
        outputs = oracle(x)
        loss = softmax_entropy(outputs).mean(0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        torch.testing.assert_close(adapter.step(x), outputs.detach(), rtol=0, atol=1e-5)
        assert adapter.last_loss == pytest.approx(loss.item(), rel=1e-5)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, source[k])}
    assert changed == set(adapter.updated_parameter_names)  # running stats untouched too
    assert changed == {f"featurizer.{i}.{w}" for i in (1, 4) for w in ("weight", "bias")}
    x = batches(1, seed=7)[0]
    oracle.eval()  # Tent's BN keeps batch statistics in eval mode
    torch.testing.assert_close(adapter.predict(x), oracle(x).detach(), rtol=0, atol=1e-5)
    assert all(m.track_running_stats for m in model.modules() if isinstance(m, nn.BatchNorm2d))


def test_tent_episodic_and_steps() -> None:
    xs = batches(3)
    episodic = Tent(tiny_model(), lr=1e-2, episodic=True)
    for x in xs:
        torch.testing.assert_close(
            episodic.step(x), Tent(tiny_model(), lr=1e-2).step(x), rtol=0, atol=0
        )
    two = Tent(tiny_model(), lr=1e-2, steps=2)
    one = Tent(tiny_model(), lr=1e-2)
    one.step(xs[0])
    torch.testing.assert_close(
        two.step(xs[0]), one.step(xs[0]), rtol=0, atol=0
    )  # last forward's logits


@pytest.mark.parametrize("filter_k", [1, 3, -1])
@pytest.mark.parametrize("head", ["linear", "cosine"])
def test_t3a_matches_domainbed_and_bounds_its_supports(filter_k: int, head: str) -> None:
    model = tiny_model(head)
    source = state_of(model)
    oracle = T3AOracle(copy.deepcopy(model), filter_k, CLASSES)
    adapter = T3A(model, filter_K=filter_k, variant="corrected")  # DomainBed's -1 keeps all
    assert len(adapter.memory) == CLASSES * (1 if head == "linear" else 2)
    for step, x in enumerate(batches(5), start=1):
        torch.testing.assert_close(adapter.step(x), oracle(x), rtol=0, atol=1e-5)
        torch.testing.assert_close(adapter.memory.supports, oracle.supports, rtol=0, atol=1e-6)
        bound = filter_k * CLASSES if filter_k > 0 else CLASSES * 2 + step * 20
        assert len(adapter.memory) <= bound
    assert_states_equal(state_of(model), source)
    x = batches(1, seed=5)[0]
    before = len(adapter.memory)
    logits = adapter.predict(x)
    assert len(adapter.memory) == before and logits.shape == (20, CLASSES)
    adapter.reset()
    assert len(adapter.memory) == CLASSES * (1 if head == "linear" else 2)


def test_snapshot_and_restore_round_trip() -> None:
    adapter = Tent(tiny_model(), lr=1e-2)
    xs = batches(4)
    adapter.step(xs[0])
    snap = adapter.snapshot()
    after = [adapter.step(x) for x in xs[1:]]
    adapter.restore(snap)
    again = [adapter.step(x) for x in xs[1:]]
    for a, b in zip(after, again, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_make_adapter_builds_each_method() -> None:
    kinds = {"none": NoAdapt, "bn": BNAdapt, "tent": Tent, "t3a": T3A, "tsd": TSDAdapter}
    for method, kind in kinds.items():
        adapter = make_adapter(method, tiny_model())
        assert type(adapter) is kind and adapter.method == method
    assert (
        make_adapter("tsd", tiny_model(), lr=1e-3, variant="corrected").config.variant
        == "corrected"
    )
    assert make_adapter("t3a", tiny_model(), filter_K=7).filter_K == 7
    assert adapter_defaults("tent") == {"lr": 1e-3, "steps": 1, "episodic": False}
    assert adapter_defaults("none") == {}


def test_bad_input_is_reported_with_the_parameter() -> None:
    with pytest.raises(ParameterError) as info:
        make_adapter("no_such_method", tiny_model())
    assert info.value.where == "method"
    with pytest.raises(ParameterError) as info:
        make_adapter("tent", tiny_model(), filter_K=5)
    assert info.value.where == "filter_K"
    no_bn = SplitModel(nn.Flatten(), nn.Linear(75, 3))
    for method in ("bn", "tent"):
        with pytest.raises(ParameterError, match="BatchNorm") as info:
            make_adapter(method, no_bn)
        assert info.value.where == "method"
    for value in (0, -3):
        with pytest.raises(ParameterError) as info:
            T3A(tiny_model(), filter_K=value)
        assert info.value.where == "filter_K"
    for lr in (0.0, -1.0, float("inf")):
        with pytest.raises(ParameterError) as info:
            Tent(tiny_model(), lr=lr)
        assert info.value.where == "lr"
    with pytest.raises(ParameterError) as info:
        Tent(tiny_model(), steps=0)
    assert info.value.where == "steps"
    mlp = SplitModel(
        tiny_model().featurizer, nn.Sequential(nn.Linear(DIM, 5), nn.ReLU(), nn.Linear(5, 3))
    )
    with pytest.raises(ParameterError, match="nn.Linear"):
        T3A(mlp)
    assert make_adapter("tent", mlp).step(batches(1)[0]).shape == (20, 3)  # Tent needs no proxies
    for method in ("none", "bn", "tent", "t3a"):
        with pytest.raises(ParameterError) as info:
            make_adapter(method, tiny_model()).step(torch.zeros(0, 3, 5, 5))
        assert info.value.where == "batch"
    with pytest.raises(ParameterError, match="expected a torch tensor"):
        NoAdapt(tiny_model()).step([[1.0]])


def test_one_sample_batch() -> None:
    x = batches(1)[0][:1]
    assert NoAdapt(tiny_model()).step(x).shape == (1, CLASSES)
    assert T3A(tiny_model()).step(x).shape == (1, CLASSES)
    one_d = SplitModel(
        nn.Sequential(nn.Flatten(), nn.Linear(75, DIM), nn.BatchNorm1d(DIM)), nn.Linear(DIM, 3)
    )
    with pytest.raises(ParameterError, match="cannot process a batch of shape") as info:
        BNAdapt(one_d).step(x)
    assert info.value.where == "batch"


def test_every_registered_method_builds_with_its_defaults_and_names_unknown_parameters() -> None:
    from torch.utils.data import DataLoader, TensorDataset

    x = batches(1)[0].clamp(0, 1)  # pixels: the augmenting methods (memo) refuse others
    labels = torch.arange(20) % CLASSES
    for method in method_names():
        defaults = adapter_defaults(method)
        if method == "rmt":  # its 50,000-sample warm-up, shortened
            defaults["warmup_samples"] = 40
        if adapter_defaults(method).get("projection_dim"):
            defaults["projection_dim"] = 8
        adapter = make_adapter(method, tiny_model(), **defaults)
        assert adapter.method == method
        if adapter.needs_source:
            adapter.use_source(DataLoader(TensorDataset(x, labels), 10, shuffle=True))
        assert adapter.step(x).shape == (20, CLASSES)
        assert adapter.predict(x).shape == (20, CLASSES)
        with pytest.raises(ParameterError) as info:
            make_adapter(method, tiny_model(), not_a_parameter=1)
        assert info.value.where == "not_a_parameter"
    assert adapter_defaults("pl") == {
        "lr": 1e-4, "beta": 0.9, "steps": 1, "episodic": False, "variant": "reference"
    }  # fmt: skip
    assert adapter_defaults("t3a") == {"filter_K": 100, "variant": "reference"}


def test_a_fixed_parameter_group_that_is_empty_names_the_method() -> None:
    frozen_bn = SplitModel(
        nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, affine=False), nn.Flatten()),
        nn.Linear(36, 3),
    )
    no_body = SplitModel(nn.Flatten(), nn.Linear(75, 3))
    for method, model in (("eata", frozen_bn), ("shot_im", no_body)):
        with pytest.raises(ParameterError, match=method) as info:
            make_adapter(method, model)
        assert info.value.where == "method"
