"""Test streams: order, reproducibility, domain boundaries, RoTTA's Dirichlet sampler as the
oracle, episodic = a fresh adapter per batch, and data of several shifts or domains."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from protoview.core.adapt.registry import make_adapter, method_names
from protoview.core.adapt.run import AdaptRun
from protoview.core.adapt.stream import (
    ONLINE,
    StreamSpec,
    dirichlet_positions,
    parse_stream,
    stream_order,
)
from protoview.core.data import open_dataset, shift_name, shift_specs
from protoview.errors import DatasetError, ParameterError
from tests._benchmark_fixtures import make_cifar_c, make_domainbed
from tests._tta_models import tiny_model
from tests.oracles.rotta_sampler import DatumBase, LabelDirichletDomainSequence


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Domains:
    """An AdaptRun dataset of several domains: x (3, 6, 6), labels, domains, domain_names."""

    def __init__(self, sizes=(30, 20, 25), classes: int = 10, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        n = sum(sizes)
        self.x = torch.randn(n, 3, 6, 6, generator=g)
        self.labels = torch.randint(0, classes, (n,), generator=g).numpy().astype(np.int64)
        self.domains = np.repeat(np.arange(len(sizes)), sizes).astype(np.int64)
        self.domain_names = tuple(f"d{k}" for k in range(len(sizes)))
        for k in range(len(sizes)):  # each domain shifted differently
            self.x[self.domains == k] = self.x[self.domains == k] * (1 + k) + k

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.x[i], int(self.labels[i])


# ------------------------------------------------------------------ the spec
@pytest.mark.parametrize(("text", "canonical"), [
    (None, "online"), ("", "online"), ("online", "online"), ("episodic", "episodic"),
    ("mixed", "online"), ("continual", "continual"), ("sorted", "sorted"),
    ("iid", "online"), ("dirichlet", "dirichlet=0.1"), ("Dirichlet=1", "dirichlet=1"),
    ("dirichlet:0.5", "dirichlet=0.5"), ("continual, dirichlet=0.1", "continual,dirichlet=0.1"),
    ("episodic,continual,sorted", "episodic,continual,sorted"), ("class-sorted", "sorted"),
])
def test_stream_text_round_trips(text, canonical) -> None:
    spec = parse_stream(text)
    assert spec.text() == canonical
    assert parse_stream(spec.text()) == spec
    assert spec.describe()


@pytest.mark.parametrize(("text", "problem"), [
    ("sideways", "unknown setting 'sideways'"),
    ("online,episodic", "online and episodic are both given"),
    ("mixed,continual", "mixed and continual are both given"),
    ("sorted,dirichlet=0.1", "sorted and dirichlet are both given"),
    ("dirichlet=-1", "must be a finite number > 0, got -1.0"),
    ("dirichlet=0", "must be a finite number > 0, got 0.0"),
    ("dirichlet=nan", "must be a finite number > 0, got nan"),
    ("dirichlet=lots", "must be a number > 0, got 'lots'"),
    ("continual=2", "continual takes no value"),
    ("online,,sorted", "has an empty entry"),
])
def test_bad_streams_get_one_line_naming_the_stream(text, problem) -> None:
    with pytest.raises(ParameterError, match=problem) as info:
        parse_stream(text)
    assert info.value.where == "--stream"
    assert "\n" not in str(info.value)


def test_a_spec_refuses_unknown_values() -> None:
    with pytest.raises(ParameterError, match="unknown domain order"):
        StreamSpec(domains="sideways")
    with pytest.raises(ParameterError, match="concentration"):
        StreamSpec(labels="dirichlet", concentration=float("inf"))


# ------------------------------------------------------------------ orders
def test_online_is_the_order_runs_had_before_streams() -> None:
    for seed, pass_index in ((0, 0), (3, 2)):
        expected = np.random.default_rng([seed, pass_index]).permutation(50)
        order = stream_order(ONLINE, 50, seed=seed, pass_index=pass_index)
        assert np.array_equal(order, expected)
    assert np.array_equal(stream_order(ONLINE, 7, seed=0, pass_index=0, shuffle=False), np.arange(7))


def test_every_stream_is_a_seeded_permutation() -> None:
    data = Domains()
    n = len(data)
    for text in ("online", "continual", "sorted", "continual,sorted", "dirichlet=0.1",
                 "continual,dirichlet=1", "episodic,continual"):
        spec = parse_stream(text)
        kwargs = dict(labels=data.labels, domains=data.domains)
        a = stream_order(spec, n, seed=1, pass_index=0, **kwargs)
        assert sorted(a.tolist()) == list(range(n)), text
        assert np.array_equal(a, stream_order(spec, n, seed=1, pass_index=0, **kwargs)), text
        assert not np.array_equal(a, stream_order(spec, n, seed=2, pass_index=0, **kwargs)), text
        assert not np.array_equal(a, stream_order(spec, n, seed=1, pass_index=1, **kwargs)), text


def test_continual_takes_the_domains_in_order_keeping_the_shuffled_order_inside() -> None:
    data = Domains(sizes=(30, 20, 25))
    base = stream_order(ONLINE, len(data), seed=4, pass_index=0)
    order = stream_order(parse_stream("continual"), len(data), seed=4, pass_index=0,
                         domains=data.domains)
    assert data.domains[order].tolist() == [0] * 30 + [1] * 20 + [2] * 25
    for k in range(3):  # inside a domain: the i.i.d. order
        assert order[data.domains[order] == k].tolist() == base[data.domains[base] == k].tolist()
    # data of one domain: continual is the online stream
    assert np.array_equal(stream_order(parse_stream("continual"), 40, seed=4, pass_index=0),
                          stream_order(ONLINE, 40, seed=4, pass_index=0))


def test_sorted_goes_class_by_class_within_each_domain_when_continual() -> None:
    data = Domains()
    n = len(data)
    order = stream_order(parse_stream("sorted"), n, seed=0, pass_index=0, labels=data.labels)
    assert np.all(np.diff(data.labels[order]) >= 0)
    order = stream_order(parse_stream("continual,sorted"), n, seed=0, pass_index=0,
                         labels=data.labels, domains=data.domains)
    keys = data.domains[order] * 100 + data.labels[order]
    assert np.all(np.diff(keys) >= 0)


def test_label_correlated_streams_need_every_label() -> None:
    labels = np.array([0, 1, -1, 2])
    for text in ("sorted", "dirichlet=0.5"):
        with pytest.raises(ParameterError, match="1 of the 4 samples have none") as info:
            stream_order(parse_stream(text), 4, seed=0, pass_index=0, labels=labels)
        assert info.value.where == "--stream"
        with pytest.raises(ParameterError, match="these data have none"):
            stream_order(parse_stream(text), 4, seed=0, pass_index=0, labels=None)


def _rotta(labels, domains, gamma, seed):
    np.random.seed(seed)
    source = [DatumBase(label=int(y), domain=int(d)) for y, d in zip(labels, domains, strict=True)]
    return np.array(list(LabelDirichletDomainSequence(source, gamma, 64)), np.int64)


@pytest.mark.parametrize("gamma", [0.01, 0.1, 1.0, 10.0])
@pytest.mark.parametrize(("classes", "sizes"), [(10, (400,)), (10, (200, 300, 150)), (7, (90, 60)),
                                                  (120, (1500, 700))])
def test_dirichlet_equals_rottas_sampler(gamma, classes, sizes) -> None:
    """Without shuffling the stream is RoTTA's sampler on the data in dataset order, with its
    NumPy draws from RandomState([seed, pass]) (the released code uses np.random)."""
    rng = np.random.default_rng(classes)
    n = sum(sizes)
    labels = rng.integers(0, classes, n)
    labels[:classes] = np.arange(classes)  # every class occurs (RoTTA counts the present ones)
    domains = np.repeat(np.arange(len(sizes)), sizes)
    for seed, pass_index in ((0, 0), (7, 3)):
        ours = stream_order(parse_stream(f"continual,dirichlet={gamma}"), n, seed=seed,
                            pass_index=pass_index, shuffle=False, labels=labels, domains=domains)
        assert np.array_equal(ours, _rotta(labels, domains, gamma, [seed, pass_index]))
    # mixed: the data form one domain for the sampler
    ours = stream_order(parse_stream(f"dirichlet={gamma}"), n, seed=2, pass_index=0,
                        shuffle=False, labels=labels, domains=domains)
    assert np.array_equal(ours, _rotta(labels, np.zeros(n), gamma, [2, 0]))


def test_dirichlet_runs_of_one_class_grow_as_the_concentration_falls() -> None:
    labels = np.random.default_rng(0).integers(0, 10, 4000)

    def mean_run(alpha: float) -> float:
        order = stream_order(parse_stream(f"dirichlet={alpha}"), 4000, seed=0, pass_index=0,
                             labels=labels)
        changes = np.count_nonzero(np.diff(labels[order]))
        return 4000 / (changes + 1)

    iid = 4000 / (np.count_nonzero(np.diff(labels[stream_order(ONLINE, 4000, seed=0, pass_index=0)])) + 1)
    runs = [mean_run(a) for a in (100.0, 1.0, 0.01)]
    assert iid < runs[0] < runs[1] < runs[2]
    assert runs[2] > 20 * iid  # at 0.01 each class comes in few long runs


def test_dirichlet_deviation_keeps_the_samples_rotta_drops() -> None:
    """Named deviation: with a class absent, RoTTA numbers the classes present 0..n-1 and so
    never reads the highest label; protoview uses the largest label + 1 classes."""
    labels = np.array([0, 0, 2, 2, 2, 0, 2, 0, 2, 2])  # class 1 absent
    domains = np.zeros(10, np.int64)
    rotta = _rotta(labels, domains, 0.5, 3)
    assert len(rotta) == 4 and set(labels[rotta]) == {0}  # the 2s are lost
    ours = dirichlet_positions(labels, domains, 0.5, np.random.RandomState(3))
    assert sorted(ours.tolist()) == list(range(10))


# ------------------------------------------------------------------ runs over streams
def test_records_know_their_domains_and_where_each_starts() -> None:
    data = Domains(sizes=(30, 20, 25))
    run = AdaptRun(make_adapter("none", tiny_model()), data, batch_size=8, seed=0,
                   stream="continual")
    assert run.domain_names == ("d0", "d1", "d2")
    records = run.run_pass()
    order = np.concatenate([r.batch_indices for r in records])
    assert np.array_equal(order, run.pass_order(0))
    for r in records:
        assert np.array_equal(r.batch_domains, data.domains[r.batch_indices])
    starts = {d: r.step for r in records for d in r.domain_starts}
    # batches are cut per domain (the toolkit's one loader per domain): 8,8,8,6 | 8,8,4 | ...
    assert starts == {0: 1, 1: 5, 2: 8}
    assert [len(r.batch_indices) for r in records] == [8, 8, 8, 6, 8, 8, 4, 8, 8, 8, 1]
    assert all(len(set(r.batch_domains.tolist())) == 1 for r in records)
    mixed = AdaptRun(make_adapter("none", tiny_model()), data, batch_size=8, seed=0)
    assert {d for r in mixed.run(2) for d in r.domain_starts} == {0, 1, 2}


def test_runs_are_reproducible_and_replayed_by_reset() -> None:
    data = Domains()
    first = AdaptRun(make_adapter("tent", tiny_model()), data, batch_size=16, seed=5,
                     stream="continual,dirichlet=0.1")
    a = first.run_pass()
    second = AdaptRun(make_adapter("tent", tiny_model()), data, batch_size=16, seed=5,
                      stream="continual,dirichlet=0.1")
    b = second.run_pass()
    for ra, rb in zip(a, b, strict=True):
        assert np.array_equal(ra.batch_indices, rb.batch_indices)
        assert np.array_equal(ra.online_logits, rb.online_logits)
    first.reset()
    again = first.run_pass()
    assert all(np.array_equal(x.online_logits, y.online_logits) for x, y in zip(a, again, strict=True))


def test_a_stream_that_cannot_be_made_fails_when_the_run_is_built() -> None:
    data = Domains()
    data.labels = data.labels.copy()
    data.labels[3] = -1
    with pytest.raises(ParameterError, match="stream: sorted by class is made from the labels"):
        AdaptRun(make_adapter("none", tiny_model()), data, stream="sorted")
    data.domains = data.domains[:-1]
    with pytest.raises(DatasetError, match="dataset.domains holds 74 entries for 75 samples"):
        AdaptRun(make_adapter("none", tiny_model()), data)


def _seed_all(seed: int) -> None:
    """torch's, numpy's and python's generators (MEMO's AugMix draws from all three)."""
    import random

    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


@pytest.mark.parametrize(
    "method", sorted(m for m in method_names() if m not in ("rmt", "santa", "gtta"))
)
def test_episodic_equals_a_fresh_adapter_per_batch_bit_for_bit(method) -> None:
    """(RMT, SANTA and GTTA need source data; their resets: tests/test_rmt.py, test_santa.py,
    test_gtta.py.)"""
    data = Domains(sizes=(24, 24), seed=1)
    data.x = torch.sigmoid(data.x)  # pixels: the augmenting methods work on images
    source = tiny_model(classes=10, sharp=4.0)
    model = copy.deepcopy(source)
    run = AdaptRun(make_adapter(method, model), data, batch_size=12, seed=2, stream="episodic")
    records = []
    for step in range(run.steps_per_pass):  # the same random draws for each batch, both sides
        _seed_all(step)
        records.append(run.step())
    for step, record in enumerate(records):
        fresh_model = copy.deepcopy(source)
        fresh = make_adapter(method, fresh_model)
        _seed_all(step)
        logits = fresh.step(data.x[torch.as_tensor(record.batch_indices)])
        assert torch.equal(torch.from_numpy(record.online_logits), logits.float()), (method, record.step)
    # after the last batch the model is the fresh adapter's after that batch alone
    for name, value in fresh_model.state_dict().items():
        assert torch.equal(value, model.state_dict()[name]), (method, name)


@pytest.mark.parametrize(("method", "params"), [
    ("tent", {}), ("pl", {}), ("plc", {}), ("shot_im", {}), ("tsd", {"variant": "corrected"}),
])
def test_the_methods_own_episodic_agrees_with_the_episodic_stream(method, params) -> None:
    """Where a method's own ``episodic`` restores everything (weights, optimiser, memory),
    it equals the stream setting, logits and weights."""
    data = Domains(sizes=(36,), seed=2)
    source = tiny_model(classes=10, sharp=4.0)
    own_model, stream_model = copy.deepcopy(source), copy.deepcopy(source)
    own = AdaptRun(make_adapter(method, own_model, episodic=True, **params), data, batch_size=12)
    by_stream = AdaptRun(make_adapter(method, stream_model, **params), data, batch_size=12,
                         stream="episodic")
    for a, b in zip(own.run_pass(), by_stream.run_pass(), strict=True):
        assert np.array_equal(a.online_logits, b.online_logits), (method, a.step)
    for name, value in own_model.state_dict().items():
        assert torch.equal(value, stream_model.state_dict()[name]), (method, name)


# ------------------------------------------------------------------ several shifts as one dataset
def test_demo_shifts_in_sequence() -> None:
    data = open_dataset("demo:noise,blur,contrast:2")
    parts = [open_dataset(f"demo:{s}:2") for s in ("noise", "blur", "contrast")]
    n = len(parts[0])
    assert len(data) == 3 * n and data.domain_names == ("noise", "blur", "contrast")
    assert data.domains.tolist() == [0] * n + [1] * n + [2] * n
    assert np.array_equal(data.labels, np.concatenate([p.labels for p in parts]))
    x, y = data.get_batch([0, n, 2 * n + 5])
    for k, (part, i) in enumerate(((parts[0], 0), (parts[1], 0), (parts[2], 5))):
        assert torch.equal(x[k], part.get_batch([i])[0][0])
    assert data.identity() != open_dataset("demo:blur,noise,contrast:2").identity()
    assert data.identity() == open_dataset("demo:noise,blur,contrast:2").identity()
    assert "3 domains, " in data.description and "noise (539) → blur (539)" in data.description


@pytest.mark.parametrize(("spec", "problem"), [
    ("demo:noise,,blur", "has an empty entry"),
    ("demo:noise,noise", "noise is listed twice"),
    ("demo:noise,fog", "unknown shift 'fog'"),
])
def test_bad_shift_lists(spec, problem) -> None:
    with pytest.raises(DatasetError, match=problem):
        open_dataset(spec)


def test_cifar_c_corruptions_in_sequence(tmp_path) -> None:
    folder, _ = make_cifar_c(tmp_path / "CIFAR-10-C", ("gaussian_noise", "fog", "snow"), n=6)
    data = open_dataset(f"cifar10c:{tmp_path}:fog,gaussian_noise:3")
    assert data.domain_names == ("fog", "gaussian_noise") and len(data) == 12
    raw = data._images.numpy()
    # the first pixel says (severity * 10 + corruption index, row, label)
    assert raw[:6, 0, 0, 0].tolist() == [31] * 6 and raw[6:, 0, 0, 0].tolist() == [30] * 6
    assert data.suggested_preprocess == "cifar10"
    assert shift_specs(f"cifar10c:{tmp_path}:fog:3", ["snow", "fog"]) == [
        f"cifar10c:{tmp_path}:snow:3", f"cifar10c:{tmp_path}:fog:3"]
    assert shift_name(f"cifar10c:{tmp_path}:fog:3") == "fog"
    with pytest.raises(DatasetError, match="has no corruption 'frost'"):
        open_dataset(f"cifar10c:{tmp_path}:fog,frost:3")


def test_domainbed_domains_in_sequence_read_from_their_folders(tmp_path) -> None:
    from protoview.core.data import ConcatFolderDataset, decoded_images, default_transform
    from protoview.core.preprocess import parse_preprocess

    make_domainbed(tmp_path, per_class=1)
    transform = parse_preprocess("domainbed,size=16").apply(default_transform())
    data = open_dataset(f"pacs:{tmp_path}:sketch,1", transform)
    assert isinstance(data, ConcatFolderDataset)
    assert data.domain_names == ("sketch", "cartoon") and len(data) == 14
    sketch, cartoon = open_dataset(f"pacs:{tmp_path}:sketch", transform), open_dataset(
        f"pacs:{tmp_path}:cartoon", transform)
    assert torch.equal(data[8][0], cartoon[1][0]) and data[8][1] == cartoon[1][1]
    assert np.array_equal(data.thumbnail(3), sketch.thumbnail(3))
    assert data.benchmark == {"dataset": "PACS", "domain": "sketch,cartoon"}
    cached = decoded_images(data, "memory")
    x, _ = cached.get_batch([8])
    assert torch.equal(x[0], cartoon[1][0]) and cached.domain_names == data.domain_names
    run = AdaptRun(make_adapter("none", tiny_model(classes=7)), cached, batch_size=4,
                   stream="continual")
    assert run.domain_names == ("sketch", "cartoon")
    assert data.domains[run.pass_order(0)].tolist() == [0] * 7 + [1] * 7


def test_shifts_replace_the_field_only_where_there_is_one(tmp_path) -> None:
    assert shift_specs("demo", ["blur", "mix"]) == ["demo:blur", "demo:mix"]
    assert shift_specs("demo:noise:4", ["blur"]) == ["demo:blur:4"]
    assert shift_specs("demo:noise,blur") == ["demo:noise", "demo:blur"]
    assert shift_specs("demo:noise") == ["demo:noise"]
    assert shift_name("demo") == "noise"
    with pytest.raises(DatasetError, match="names no shift or domain to replace"):
        shift_specs(str(tmp_path), ["blur"])
