"""TSDAdapter against the authors' code (tests/oracles/tsd_reference.py) and its corrections."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from protoview.core.adapt.tsd import TSDAdapter, TSDConfig
from protoview.core.heads import CosineLinear
from protoview.core.model import SplitModel
from protoview.errors import ParameterError
from tests.oracles.tsd_reference import TSD as OracleTSD

CLASSES, DIM = 5, 16


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
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, DIM, 3, padding=1), nn.BatchNorm2d(DIM), nn.Tanh(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )  # fmt: skip
    if head == "linear":
        classifier = nn.Linear(DIM, CLASSES)
    else:
        classifier = CosineLinear(DIM, CLASSES, nb_proxy=3, to_reduce=True)
        classifier.sigma.data.fill_(8.0)
    return SplitModel(featurizer, classifier)


def batches(n: int, size: int = 24, seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(size, 3, 6, 6, generator=g) * 2 + 0.5 for _ in range(n)]


def make_oracle(model: SplitModel, lr: float, lam: float, filter_k: int, params=None) -> OracleTSD:
    optimizer = torch.optim.Adam(model.parameters() if params is None else params, lr=lr)
    num_classes = None if isinstance(model.classifier, nn.Linear) else CLASSES
    model.train()
    return OracleTSD(
        model,
        optimizer,
        lam=lam,
        filter_K=filter_k,
        classifier_weight=model.classifier.weight,
        num_classes=num_classes,
    )


def assert_same_memory(adapter: TSDAdapter, oracle: OracleTSD) -> None:
    torch.testing.assert_close(adapter.supports, oracle.supports, rtol=0, atol=1e-5)
    torch.testing.assert_close(adapter.support_labels, oracle.labels.argmax(1))
    torch.testing.assert_close(adapter.support_entropy, oracle.ent, rtol=0, atol=1e-5)
    torch.testing.assert_close(adapter.support_scores, oracle.scores, rtol=0, atol=1e-5)


@pytest.mark.parametrize("head", ["linear", "cosine"])
@pytest.mark.parametrize("filter_k", [1, 5, 100, -1])
@pytest.mark.parametrize("lam", [0.0, 0.5])
def test_reference_matches_the_authors_code(head: str, filter_k: int, lam: float) -> None:
    ours_model = tiny_model(head)
    source = copy.deepcopy(ours_model)
    oracle = make_oracle(copy.deepcopy(ours_model), lr=1e-3, lam=lam, filter_k=filter_k)
    adapter = TSDAdapter(ours_model, TSDConfig(lr=1e-3, filter_K=filter_k, lam=lam))
    for x in batches(6):
        ours = adapter.step(x)
        theirs = oracle(x).detach()
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
        assert_same_memory(adapter, oracle)
    for (name, p), q in zip(ours_model.named_parameters(), oracle.model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-5, msg=name)
    moved = max(
        (p - s).abs().max().item()
        for p, s in zip(ours_model.parameters(), source.parameters(), strict=True)
    )
    assert moved > 1e-4  # the comparison above is not between two untouched models


@pytest.mark.parametrize("update", ["affine", "body", "head"])
def test_reference_update_choices_match_the_authors_script(update: str) -> None:
    model = tiny_model("linear")
    twin = copy.deepcopy(model)
    if update == "affine":
        params = [
            p for m in twin.modules() if isinstance(m, nn.BatchNorm2d) for p in (m.weight, m.bias)
        ]
    else:
        params = list((twin.featurizer if update == "body" else twin.classifier).parameters())
    oracle = make_oracle(twin, lr=1e-3, lam=0.5, filter_k=5, params=params)
    adapter = TSDAdapter(model, TSDConfig(lr=1e-3, filter_K=5, lam=0.5, update=update))
    for x in batches(5):
        torch.testing.assert_close(adapter.step(x), oracle(x).detach(), rtol=0, atol=1e-5)
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-5)


def test_update_choice_changes_only_the_chosen_parameters_and_restores_flags() -> None:
    for update, prefix in [("affine", None), ("body", "featurizer."), ("head", "classifier.")]:
        model = tiny_model("linear")
        source = {k: v.clone() for k, v in model.named_parameters()}
        model.featurizer[0].weight.requires_grad_(False)  # a flag the adapter must give back
        model.eval()
        adapter = TSDAdapter(model, TSDConfig(lr=1e-2, update=update, lam=0.5))
        for x in batches(3):
            adapter.step(x)
        changed = {n for n, p in model.named_parameters() if not torch.equal(p, source[n])}
        assert changed and changed <= set(adapter.updated_parameter_names)
        if prefix:
            assert all(n.startswith(prefix) for n in adapter.updated_parameter_names)
        else:
            assert set(adapter.updated_parameter_names) == {
                f"featurizer.{i}.{w}" for i in (1, 4) for w in ("weight", "bias")
            }
        assert model.featurizer[0].weight.requires_grad is False
        assert all(
            p.requires_grad for n, p in model.named_parameters() if n != "featurizer.0.weight"
        )
        assert not any(m.training for m in model.modules())


def hand_kl_loss(adapter: TSDAdapter, x: torch.Tensor, corrected: bool) -> float:
    """The loss of the next step, computed in float64 numpy from the adapter's memory."""
    model = copy.deepcopy(adapter.model).train()
    with torch.no_grad():
        z32 = model.featurizer(x)
        p32 = model.classifier(z32)
    z, p = z32.double().numpy(), p32.double().numpy()
    supports = np.concatenate([adapter.supports.double().numpy(), z])
    ent_p = (
        -(p32.softmax(1) * p32.log_softmax(1)).sum(1)
    ).numpy()  # float32 like the memory: same order
    labels = np.concatenate([adapter.support_labels.numpy(), p.argmax(1)])
    entropy = np.concatenate([adapter.support_entropy.double().numpy(), ent_p])
    keep = []
    for c in range(p.shape[1]):
        idx = np.flatnonzero(labels == c)
        order = idx[np.argsort(entropy[idx], kind="stable")]
        keep.extend(
            order
            if adapter.config.filter_K == -1 and corrected
            else order[: adapter.config.filter_K]
        )
    s, y = supports[keep], np.eye(p.shape[1])[labels[keep]]
    proto = ((s / np.linalg.norm(s, axis=1, keepdims=True)).T @ y).T
    order = 2 if corrected else 1  # the seed's F.normalize(x, 1) is an L1 normalisation
    proto = proto / np.maximum(np.linalg.norm(proto, ord=order, axis=1, keepdims=True), 1e-12)
    dist = (z / np.linalg.norm(z, ord=order, axis=1, keepdims=True)) @ proto.T
    scores = softmax(p)
    if corrected:
        mask = y.sum(0) > 0
        t = scores[:, mask] / scores[:, mask].sum(1, keepdims=True)
        return float((t * (np.log(t) - log_softmax(dist[:, mask]))).sum(1).mean())
    q = softmax(dist)
    return float((q * (np.log(q) - log_softmax(scores))).sum(1).mean())


def softmax(a: np.ndarray) -> np.ndarray:
    e = np.exp(a - a.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def log_softmax(a: np.ndarray) -> np.ndarray:
    return np.log(softmax(a))


@pytest.mark.parametrize("variant", ["reference", "corrected"])
def test_kl_loss_equals_a_hand_computation(variant: str) -> None:
    adapter = TSDAdapter(tiny_model("cosine"), TSDConfig(lr=1e-3, filter_K=4, variant=variant))
    for x in batches(4, seed=3):
        expected = hand_kl_loss(adapter, x, corrected=variant == "corrected")
        adapter.step(x)
        assert adapter.last_loss == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_corrected_loss_leaves_out_classes_without_support() -> None:
    model = tiny_model("linear")
    with torch.no_grad():
        model.classifier.bias[0] = -1e3  # class 0 is never predicted, not even by its own row
    adapter = TSDAdapter(model, TSDConfig(lr=1e-3, variant="corrected", filter_K=-1))
    assert torch.all(adapter.prototypes()[0] == 0)
    for x in batches(3, seed=4):
        expected = hand_kl_loss(adapter, x, corrected=True)
        adapter.step(x)
        assert np.isfinite(adapter.last_loss)
        assert adapter.last_loss == pytest.approx(expected, rel=1e-4, abs=1e-6)
    assert 0 not in adapter.support_labels.tolist()


def test_filter_k_minus_one_keeps_all_when_corrected_and_drops_one_per_class_in_reference() -> None:
    xs = batches(3, size=20, seed=5)
    corrected = TSDAdapter(tiny_model("cosine"), TSDConfig(filter_K=-1, variant="corrected"))
    start = len(corrected.supports)
    assert start == CLASSES * 3  # warm-up supports are all C*P rows
    for x in xs:
        corrected.step(x)
    assert len(corrected.supports) == start + 3 * 20
    reference = TSDAdapter(tiny_model("cosine"), TSDConfig(filter_K=-1, variant="reference"))
    for x in xs:
        before = len(reference.supports)
        oracle_counts = np.bincount(
            np.concatenate([reference.support_labels.numpy(), predict_train(reference, x)]),
            minlength=CLASSES,
        )
        reference.step(x)
        assert len(reference.supports) == before + 20 - int((oracle_counts > 0).sum())


def predict_train(adapter: TSDAdapter, x: torch.Tensor) -> np.ndarray:
    model = copy.deepcopy(adapter.model).train()
    with torch.no_grad():
        return model(x).argmax(1).numpy()


def test_prototypes_are_normalised_supports_summed_per_class() -> None:
    adapter = TSDAdapter(tiny_model("linear"), TSDConfig(filter_K=3))
    for x in batches(2):
        adapter.step(x)
    s = F.normalize(adapter.supports, dim=1)
    expected = torch.stack([s[adapter.support_labels == c].sum(0) for c in range(CLASSES)])
    torch.testing.assert_close(adapter.prototypes(), expected)
    assert adapter.prototypes().shape == (CLASSES, DIM)


def test_corrected_steps_update_several_times_and_return_first_logits() -> None:
    x = batches(1)[0]
    model = tiny_model("linear")
    expected = copy.deepcopy(model).train()(x).detach()
    adapter = TSDAdapter(model, TSDConfig(lr=1e-3, variant="corrected", steps=3))
    torch.testing.assert_close(adapter.step(x), expected)
    state = adapter.optimizer.state[adapter.optimizer.param_groups[0]["params"][0]]
    assert int(state["step"]) == 3
    assert len(adapter.supports) == CLASSES + 24  # the batch entered the memory once


def test_reference_ignores_steps_and_episodic() -> None:
    a = TSDAdapter(tiny_model(), TSDConfig(lr=1e-3, steps=3, episodic=True))
    b = TSDAdapter(tiny_model(), TSDConfig(lr=1e-3))
    for x in batches(3):
        torch.testing.assert_close(a.step(x), b.step(x), rtol=0, atol=0)


def test_corrected_episodic_resets_before_each_batch() -> None:
    xs = batches(3)
    episodic = TSDAdapter(tiny_model(), TSDConfig(lr=1e-2, variant="corrected", episodic=True))
    for x in xs:
        fresh = TSDAdapter(tiny_model(), TSDConfig(lr=1e-2, variant="corrected"))
        torch.testing.assert_close(episodic.step(x), fresh.step(x), rtol=0, atol=0)
        torch.testing.assert_close(episodic.supports, fresh.supports)


def test_predict_uses_batch_statistics_and_changes_nothing() -> None:
    model = tiny_model("cosine")
    adapter = TSDAdapter(model, TSDConfig(lr=1e-2))
    adapter.step(batches(1)[0])
    x = batches(1, seed=8)[0]
    state, memory = copy.deepcopy(model.state_dict()), adapter.supports
    with torch.no_grad():
        expected = copy.deepcopy(model).train()(x)
    z, logits = adapter.features(x)
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-6)
    assert z.shape == (24, DIM)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, state[k], rtol=0, atol=0)
    torch.testing.assert_close(adapter.supports, memory)


def test_step_adapts_even_inside_no_grad() -> None:
    model = tiny_model()
    before = copy.deepcopy(model.state_dict())
    adapter = TSDAdapter(model, TSDConfig(lr=1e-2))
    with torch.no_grad():
        adapter.step(batches(1)[0])
    assert not torch.equal(model.featurizer[0].weight, before["featurizer.0.weight"])


def test_reset_restores_weights_optimizer_and_memory() -> None:
    model = tiny_model("cosine")
    source = copy.deepcopy(model.state_dict())
    adapter = TSDAdapter(model, TSDConfig(lr=1e-2, lam=0.5))
    warm = adapter.supports
    xs = batches(3)
    first = [adapter.step(x) for x in xs]
    adapter.reset()
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, source[k], msg=k)
    torch.testing.assert_close(adapter.supports, warm)
    again = [adapter.step(x) for x in xs]
    for a, b in zip(first, again, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("field", "value"),
    [("lr", 0.0), ("lr", -1.0), ("lr", float("nan")), ("filter_K", 0), ("filter_K", -2), ("lam", -0.1),
     ("update", "bias"), ("variant", "fixed"), ("steps", 0), ("topk", 0), ("steps", True),
     ("episodic", 1)],
)  # fmt: skip
def test_bad_config_names_the_parameter(field: str, value: object) -> None:
    with pytest.raises(ParameterError) as info:
        TSDConfig(**{field: value})
    assert info.value.where == field


def test_bad_models_and_batches() -> None:
    mlp_head = SplitModel(
        tiny_model().featurizer, nn.Sequential(nn.Linear(DIM, 8), nn.ReLU(), nn.Linear(8, 3))
    )
    with pytest.raises(ParameterError, match="nn.Linear, CosineLinear") as info:
        TSDAdapter(mlp_head, TSDConfig())
    assert info.value.where == "classifier"
    with pytest.raises(ParameterError) as info:
        TSDAdapter(nn.Linear(3, 3), TSDConfig())
    assert info.value.where == "model"
    no_bn = SplitModel(nn.Flatten(), nn.Linear(12, 3))
    with pytest.raises(ParameterError, match="BatchNorm") as info:
        TSDAdapter(no_bn, TSDConfig(update="affine"))
    assert info.value.where == "update"
    with pytest.raises(ParameterError, match="lam"):
        TSDAdapter(tiny_model(), TSDConfig(update="head"))
    adapter = TSDAdapter(tiny_model(), TSDConfig())
    with pytest.raises(ParameterError) as info:
        adapter.step(torch.zeros(0, 3, 6, 6))
    assert info.value.where == "batch"
    with pytest.raises(ParameterError, match="cannot process"):
        adapter.step(torch.zeros(4, 5, 6, 6))  # wrong channel count
    assert adapter.steps_done == 0


def test_one_class_model_and_nan_batch() -> None:
    torch.manual_seed(0)
    one = SplitModel(tiny_model().featurizer, nn.Linear(DIM, 1))
    adapter = TSDAdapter(one, TSDConfig(lr=1e-3))
    logits = adapter.step(batches(1)[0])
    assert logits.shape == (24, 1) and adapter.last_loss == pytest.approx(0.0, abs=1e-6)
    adapter = TSDAdapter(tiny_model(), TSDConfig(lr=1e-3))
    before = copy.deepcopy(adapter.model.state_dict())
    bad = batches(1)[0]
    bad[0, 0, 0, 0] = float("nan")
    adapter.step(bad)
    assert not np.isfinite(adapter.last_loss)  # the update is skipped, parameters stay finite
    for k, v in adapter.model.named_parameters():
        torch.testing.assert_close(v, before[k])


@pytest.mark.gpu
def test_reference_matches_the_authors_code_on_cuda() -> None:
    device = torch.device("cuda")
    model = tiny_model("cosine").to(device)
    oracle = make_oracle(copy.deepcopy(model), lr=1e-3, lam=0.5, filter_k=5)
    adapter = TSDAdapter(model, TSDConfig(lr=1e-3, filter_K=5, lam=0.5))
    for x in batches(5):
        ours = adapter.step(x)  # a CPU batch: the adapter moves it to the model's device
        theirs = oracle(x.to(device)).detach()
        assert ours.device.type == "cuda"
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-4)
        assert_same_memory(adapter, oracle)
