"""The toolkit's test settings (mariodoebler/test-time-adaptation 8b2ed63): gradual,
reset_each_shift, their correlated combinations and its setting names as ``--stream`` words,
checked against the toolkit's own sequence (``tests/oracles/toolkit_settings.py``) on a
generated CIFAR-10-C; corrupted data at several severities; batches of one sample."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from protoview.core.adapt.baselines import NoAdapt
from protoview.core.adapt.registry import make_adapter
from protoview.core.adapt.run import AdaptRun
from protoview.core.adapt.stream import (
    GRADUAL_SEVERITIES,
    TOOLKIT_SETTINGS,
    names_domain_order,
    parse_stream,
    stream_plan,
)
from protoview.core.data import open_dataset
from protoview.errors import DatasetError, ParameterError
from tests._benchmark_fixtures import make_cifar_c
from tests._tta_models import tiny_model
from tests.oracles import toolkit_settings as toolkit

CORRUPTIONS = ("gaussian_noise", "fog", "snow")  # the generated files' corruption indices 0, 1, 2


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cifar_c(tmp_path_factory):
    """A CIFAR-10-C folder of 3 corruptions x 5 severities x 12 images (10 classes)."""
    root = tmp_path_factory.mktemp("c10c") / "CIFAR-10-C"
    make_cifar_c(root, CORRUPTIONS, n=12)
    return root


def _small():
    """CIFAR-C images as 8 x 8 inputs (the default preprocessing would make them 224 x 224)."""
    from protoview.core.data import default_transform
    from protoview.core.preprocess import parse_preprocess

    return parse_preprocess("cifar10,size=8").apply(default_transform())


def _rows(data) -> list[tuple[int, int]]:
    """(10 * severity + corruption index, row) of each sample, from its first pixel."""
    raw = data._images.numpy() if hasattr(data, "_images") else data.stored_images
    return [(int(raw[i, 0, 0, 0]), int(raw[i, 1, 0, 0])) for i in range(len(data))]


# ------------------------------------------------------------------ the words
@pytest.mark.parametrize(("text", "canonical"), [
    ("continual", "continual"), ("mixed_domains", "online"), ("gradual", "gradual"),
    ("correlated", "continual,sorted"), ("mixed_domains_correlated", "sorted"),
    ("gradual_correlated", "gradual,sorted"),
    ("reset_each_shift", "reset_each_shift,continual"),
    ("reset_each_shift_correlated", "reset_each_shift,continual,sorted"),
    ("reset-each-shift", "reset_each_shift,continual"),
    ("reset_each_shift,gradual", "reset_each_shift,gradual"),
    ("gradual,dirichlet=0.1", "gradual,dirichlet=0.1"),
    ("gradual_correlated,dirichlet=0.5", "gradual,dirichlet=0.5"),
    ("correlated,mixed", "sorted"), ("correlated,sorted", "continual,sorted"),
    ("continual,samples=500", "continual,samples=500"), ("NUM_EX=50", "samples=50"),
])
def test_toolkit_settings_are_stream_words(text, canonical) -> None:
    spec = parse_stream(text)
    assert spec.text() == canonical
    assert parse_stream(spec.text()) == spec
    assert spec.describe()
    assert names_domain_order(text) == any(
        word in text.lower() for word in ("continual", "gradual", "mixed", "correlated", "reset"))


def test_every_toolkit_setting_is_accepted() -> None:
    valid = {"reset_each_shift", "continual", "gradual", "mixed_domains", "correlated",
             "mixed_domains_correlated", "gradual_correlated", "reset_each_shift_correlated"}
    assert set(TOOLKIT_SETTINGS) == valid  # test_time.py lines 19-26
    for name in valid:
        spec = parse_stream(name)
        assert spec.label_correlated == ("correlated" in name)
        assert spec.reset_each_shift == ("reset_each_shift" in name)
        assert spec.domains == ("mixed" if "mixed" in name else
                                "gradual" if "gradual" in name else "continual")
    assert not names_domain_order("episodic,sorted") and not names_domain_order(None)


@pytest.mark.parametrize(("text", "problem"), [
    ("reset_each_shift,mixed", "reset_each_shift resets the model where the shift changes"),
    ("mixed_domains,reset_each_shift", "reset_each_shift resets the model"),
    ("episodic,reset_each_shift", "episodic and reset_each_shift are both given"),
    ("gradual,continual", "gradual and continual are both given"),
    ("gradual_correlated,mixed", "gradual_correlated and mixed are both given"),
    ("correlated,iid", r"correlated \(sorted by class\) and iid are both given"),
    ("samples=0", "samples must be a whole number >= 1, got 0"),
    ("samples=many", "samples must be a whole number >= 1, got 'many'"),
    ("samples", "samples needs a count"),
    ("gradual=2", "gradual takes no value"),
    ("gradually", "unknown setting 'gradually'"),
])
def test_bad_stream_texts_get_one_line_naming_the_option(text, problem) -> None:
    with pytest.raises(ParameterError, match=problem) as info:
        parse_stream(text)
    assert info.value.where == "--stream"
    assert "\n" not in str(info.value) and str(info.value).startswith("--stream: ")


# ------------------------------------------------------------------ against the toolkit
def _toolkit(folder, setting, severity, num_ex=-1):
    return toolkit.evaluate(setting, "cifar10_c", list(CORRUPTIONS), [severity], NUM_EX=num_ex,
                            RNG_SEED=1, DATA_DIR=str(folder))


def _protoview(folder, setting, severity, samples=None):
    """Our plan of pass 0 for the toolkit's setting on the data a toolkit user opens."""
    severities = "1-5" if "gradual" in setting else str(severity)
    data = open_dataset(f"cifar10c:{folder}:{','.join(CORRUPTIONS)}:{severities}")
    text = setting + (f",samples={samples}" if samples else "")
    plan = stream_plan(parse_stream(text), len(data), seed=1, pass_index=0, labels=data.labels,
                       domains=data.domains, shifts=data.domain_shifts,
                       severities=data.domain_severities)
    return data, plan


SETTINGS = sorted(TOOLKIT_SETTINGS)


@pytest.mark.parametrize("setting", SETTINGS)
def test_domains_severities_and_resets_equal_the_toolkits(cifar_c, setting) -> None:
    loaders = _toolkit(cifar_c, setting, 5)
    data, plan = _protoview(cifar_c, setting, 5)
    assert len(plan.segments) == len(loaders)
    rows = _rows(data)
    for k, ((start, stop), loader) in enumerate(zip(plan.segments, loaders, strict=True)):
        d = plan.domains[k]
        if loader["domain"] == "mixed":
            assert d == -1
        else:
            assert (data.domain_shifts[d], data.domain_severities[d]) == (
                loader["domain"], loader["severity"])
        theirs = sorted((round(float(x[0, 0, 0]) * 255), round(float(x[0, 0, 1]) * 255))
                        for x, _y, _c in loader["samples"])
        ours = sorted(rows[i] for i in plan.order[start:stop])
        assert ours == theirs, (setting, k)  # the same images in each loader / segment
        labels = [int(y) for _x, y, _c in loader["samples"]]
        if "correlated" in setting:  # sorted by class: the same label sequence
            assert data.labels[plan.order[start:stop]].tolist() == labels
    resets = {k for k, loader in enumerate(loaders) if loader["reset"]}
    if "reset_each_shift" in setting:
        assert set(plan.resets) == resets
    else:  # the toolkit resets before its first domain only: the run starts at the source
        assert resets == {0} and plan.resets == ()


def test_gradual_is_each_corruption_through_1_to_5_and_back(cifar_c) -> None:
    loaders = _toolkit(cifar_c, "gradual", 5)
    assert [(lo["domain"], lo["severity"]) for lo in loaders] == [
        (c, s) for c in CORRUPTIONS for s in (1, 2, 3, 4, 5, 4, 3, 2, 1)]
    assert GRADUAL_SEVERITIES == (1, 2, 3, 4, 5, 4, 3, 2, 1)
    data, plan = _protoview(cifar_c, "gradual", 5)
    seen = [(data.domain_shifts[d], data.domain_severities[d]) for d in plan.domains]
    assert seen == [(lo["domain"], lo["severity"]) for lo in loaders]
    # a severity met twice comes in the same order both times (the toolkit reseeds alike)
    first, again = plan.segments[0], plan.segments[8]  # gaussian_noise 1, and back at 1
    assert np.array_equal(plan.order[first[0]:first[1]], plan.order[again[0]:again[1]])


@pytest.mark.parametrize("setting", ["continual", "gradual", "reset_each_shift", "mixed_domains"])
def test_samples_per_loader_as_num_ex(cifar_c, setting) -> None:
    """NUM_EX: each loader keeps that many samples; loaders of one size keep the same rows
    (the toolkit reseeds Python's random before each: the same test images at every
    corruption and severity), and so do ours."""
    loaders = _toolkit(cifar_c, setting, 5, num_ex=7)
    data, plan = _protoview(cifar_c, setting, 5, samples=7)
    assert [stop - start for start, stop in plan.segments] == [len(lo["samples"]) for lo in loaders]
    rows = _rows(data)

    def row_sets(groups):  # the row within its severity's block of 12
        return {frozenset(r % 256 % 12 for r in group) for group in groups}

    theirs = row_sets([round(float(x[0, 0, 1]) * 255) for x, _y, _c in lo["samples"]]
                      for lo in loaders)
    ours = row_sets([rows[i][1] for i in plan.order[a:b]] for a, b in plan.segments)
    if setting != "mixed_domains":  # one row set for all: the same images everywhere
        assert len(theirs) == 1 and len(ours) == 1
    assert all(len(s) <= 7 for s in ours)


# ------------------------------------------------------------------ runs
class CountingResets(NoAdapt):
    """The source model; counts the resets and the step each came before."""

    def __init__(self, model) -> None:
        super().__init__(model)
        self.reset_before_step: list[int] = []

    def reset(self) -> None:
        super().reset()
        self.reset_before_step.append(self.steps_total + 1)

    steps_total = 0

    def _adapt(self, x):
        type(self).steps_total  # noqa: B018 - the class default until the first step
        self.steps_total += 1
        return super()._adapt(x)


def test_reset_each_shift_resets_exactly_where_the_corruption_changes(cifar_c) -> None:
    data = open_dataset(f"cifar10c:{cifar_c}:fog,snow:4-5", _small())  # fog 4, 5, snow 4, 5
    adapter = CountingResets(tiny_model())
    run = AdaptRun(adapter, data, batch_size=5, seed=3, stream="reset_each_shift")
    records = run.run(2 * run.steps_per_pass)  # two passes
    # 12 images per domain in batches of 5, 5, 2: fog 4 | fog 5 | snow 4 | snow 5
    assert [len(r.batch_indices) for r in records[:12]] == [5, 5, 2] * 4
    starts = [r.step for r in records if r.reset_before]
    assert starts == [1, 7, 13, 19]  # each shift's first batch (severities are one shift)
    assert adapter.reset_before_step == starts
    for r in records:
        assert len(set(r.batch_domains.tolist())) == 1
        assert r.reset_before == (r.batch_domains[0] in (0, 2) and (r.step - 1) % 6 == 0)
    plain = AdaptRun(CountingResets(tiny_model()), data, batch_size=5, seed=3, stream="continual")
    assert not any(r.reset_before for r in plain.run_pass())
    assert plain.adapter.reset_before_step == []


def test_reset_each_shift_on_domains_without_severities_resets_at_every_domain() -> None:
    from tests.test_streams import Domains

    data = Domains(sizes=(30, 20, 25))  # no domain_shifts: each domain is a shift
    run = AdaptRun(CountingResets(tiny_model(classes=10)), data, batch_size=12, seed=0,
                   stream="reset_each_shift_correlated")
    resets = [r.step for r in run.run_pass() if r.reset_before]
    assert resets == [1, 4, 6]  # 12, 12, 6 | 12, 8 | 12, 12, 1
    assert all(np.all(np.diff(data.labels[r.batch_indices]) >= 0) for r in run.history)


def test_a_gradual_run_follows_the_severities(cifar_c) -> None:
    data = open_dataset(f"cifar10c:{cifar_c}:fog,snow:1-5", _small())
    run = AdaptRun(make_adapter("tent", tiny_model()), data, batch_size=6, seed=0,
                   stream="gradual")
    records = run.run_pass()
    assert run.steps_per_pass == 2 * 9 * 2 and len(run.pass_order(0)) == 2 * 9 * 12
    names = [data.domain_names[r.batch_domains[0]] for r in records[::2]]
    assert names == [f"{c}:{s}" for c in ("fog", "snow") for s in GRADUAL_SEVERITIES]
    assert [data.domain_names[d] for r in records for d in r.domain_starts] == names
    assert not any(r.reset_before for r in records)
    assert records[-1].cumulative_accuracy == pytest.approx(np.mean(np.concatenate(
        [r.online_predictions == data.labels[r.batch_indices] for r in records])))


@pytest.mark.parametrize(("spec", "problem"), [
    ("fog,snow:5", "fog is open at severity 5 only; open the five severities"),
    ("fog,snow:3-5", "fog is open at severities 3, 4, 5 only"),
    ("fog:5", "these data hold one domain"),
])
def test_gradual_needs_the_five_severities(cifar_c, spec, problem) -> None:
    data = open_dataset(f"cifar10c:{cifar_c}:{spec}")
    with pytest.raises(ParameterError, match=problem) as info:
        AdaptRun(make_adapter("none", tiny_model()), data, stream="gradual")
    assert info.value.where == "--stream" and "1-5" in info.value.problem


def test_gradual_refuses_domains_without_severities(tmp_path) -> None:
    from tests._benchmark_fixtures import make_domainbed

    make_domainbed(tmp_path, per_class=1)
    data = open_dataset(f"pacs:{tmp_path}:photo,sketch")
    with pytest.raises(ParameterError, match="domains have no severity"):
        stream_plan(parse_stream("gradual"), len(data), seed=0, pass_index=0,
                    domains=data.domains, shifts=getattr(data, "domain_shifts", None),
                    severities=getattr(data, "domain_severities", None))


# ------------------------------------------------------------------ batches of one
class Ones:
    """9 samples (3, 6, 6) of 10 classes."""

    def __init__(self, n: int = 9) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 3, 6, 6, generator=g)
        self.labels = np.arange(n) % 10

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return self.x[i], int(self.labels[i])


@pytest.mark.parametrize(("method", "params"), [
    ("none", {}), ("t3a", {}), ("lame", {"variant": "corrected"}), ("lame", {"affinity": "knn"}),
])
def test_methods_that_can_take_one_sample_at_a_time(method, params) -> None:
    run = AdaptRun(make_adapter(method, tiny_model(), **params), Ones(), batch_size=1)
    records = run.run_pass()
    assert [len(r.batch_indices) for r in records] == [1] * 9
    assert all(np.isfinite(r.online_logits).all() for r in records)


@pytest.mark.parametrize("method", ["bn", "tent", "pl", "plc", "shot_im", "tsd", "eata", "sar"])
def test_methods_on_batch_statistics_refuse_one_sample(method) -> None:
    adapter = make_adapter(method, tiny_model())
    assert type(adapter).batch_statistics
    with pytest.raises(ParameterError, match="normalises BatchNorm with the statistics of each "
                                             "batch") as info:
        AdaptRun(adapter, Ones(), batch_size=1)
    assert info.value.where == "--batch-size" and "\n" not in str(info.value)
    assert "none, t3a, lame" in info.value.problem
    # a batch of one at the end of a pass goes into the batch before (noted)
    run = AdaptRun(make_adapter(method, tiny_model()), Ones(9), batch_size=4)
    assert [len(r.batch_indices) for r in run.run_pass()] == [4, 5]
    assert any("a batch of 1 sample merged" in note for note in run.notes)


def test_lame_rbf_reference_refuses_one_sample() -> None:
    with pytest.raises(ParameterError, match="sigma from the sample itself"):
        AdaptRun(make_adapter("lame", tiny_model()), Ones(), batch_size=1)


def test_a_last_sample_alone_stays_alone_where_the_method_allows_it() -> None:
    run = AdaptRun(make_adapter("t3a", tiny_model()), Ones(9), batch_size=4)
    assert [len(r.batch_indices) for r in run.run_pass()] == [4, 4, 1]  # the toolkit's loaders
    assert not run.notes


@pytest.mark.parametrize("method", ["sar", "pl", "shot_im", "tsd"])
def test_normalisation_without_batchnorm_takes_one_sample(method) -> None:
    """SAR (and the toolkit) adapt GroupNorm / LayerNorm models on batches of one."""
    run = AdaptRun(make_adapter(method, tiny_model(norm="gn")), Ones(), batch_size=1)
    assert len(run.run(3)) == 3


# ------------------------------------------------------------------ several severities on disk
def test_cifar_c_at_several_severities(cifar_c) -> None:
    data = open_dataset(f"cifar10c:{cifar_c.parent}:fog,gaussian_noise:1-5")
    assert len(data) == 10 * 12
    assert data.domain_names == tuple(f"{c}:{s}" for c in ("fog", "gaussian_noise")
                                      for s in range(1, 6))
    assert data.domain_shifts == ("fog",) * 5 + ("gaussian_noise",) * 5
    assert data.domain_severities == (1, 2, 3, 4, 5) * 2
    rows = _rows(data)
    for d in range(10):  # each domain: its corruption's rows at its severity
        c = CORRUPTIONS.index(data.domain_shifts[d])
        s = data.domain_severities[d]
        assert [rows[i] for i in np.flatnonzero(data.domains == d)] == [
            (10 * s + c, (s - 1) * 12 + r) for r in range(12)]
    down = open_dataset(f"cifar10c:{cifar_c}:snow:5-3")
    assert down.domain_names == ("snow:5", "snow:4", "snow:3")
    one = open_dataset(f"cifar10c:{cifar_c}:snow:4-4")
    assert len(one) == 12 and not hasattr(one, "domains")
    same = open_dataset(f"cifar10c:{cifar_c}:fog,snow:5")  # one severity: names as before
    assert same.domain_names == ("fog", "snow") and same.domain_severities == (5, 5)


@pytest.mark.parametrize(("severities", "problem"), [
    ("0-5", "severity 0 does not exist"), ("1-6", "severity 6 does not exist"),
])
def test_bad_severity_ranges(cifar_c, severities, problem) -> None:
    with pytest.raises(DatasetError, match=problem):
        open_dataset(f"cifar10c:{cifar_c}:fog:{severities}")


def test_imagenet_c_severity_range_names_the_missing_folder(tmp_path) -> None:
    from tests._benchmark_fixtures import make_imagenet_c

    make_imagenet_c(tmp_path / "ImageNet-C")
    with pytest.raises(DatasetError, match=r"gaussian_noise.2: does not exist \(severity "
                                           r"folders found: 1, 5\)"):
        open_dataset(f"imagenetc:{tmp_path}:gaussian_noise:1-2")


def test_a_run_on_single_samples_refreshes_its_map_in_larger_batches() -> None:
    """none and t3a predict a sample alike in any batch: their map is refreshed 64 at a
    time; LAME's prediction depends on the batch, so its refresh keeps the run's size."""
    data = Ones(70)
    t3a = AdaptRun(make_adapter("t3a", tiny_model()), data, batch_size=1)
    assert [len(b) for b in t3a.refresh_batches()] == [64, 6]
    t3a.run(3)
    _z, logits, _y = t3a.features_all()
    one = torch.cat([t3a.adapter.predict(data.x[i:i + 1]) for i in range(70)]).numpy()
    np.testing.assert_allclose(logits, one, rtol=1e-5, atol=1e-6)
    lame = AdaptRun(make_adapter("lame", tiny_model(), affinity="knn"), data, batch_size=1)
    assert {len(b) for b in lame.refresh_batches()} == {1}


# ------------------------------------------------------------------ the command line
@pytest.mark.slow
def test_a_gradual_run_from_the_command_line_is_recorded(capsys, tmp_path) -> None:
    from protoview.cli import main
    from protoview.core.snapshot import read_snapshot

    snap = tmp_path / "gradual.h5"
    assert main(["adapt", "demo", "demo:noise:1-5", "--method", "bn", "--batch-size", "100",
                 "--steps", "7", "--probe-size", "0", "--stream", "gradual_correlated",
                 "--out", str(snap)]) == 0
    out = capsys.readouterr().out
    assert "(gradual,sorted stream)" in out
    assert "online accuracy per domain: noise:1 " in out
    s = read_snapshot(snap)
    assert s.attrs["params"]["stream"] == "gradual,sorted"
    from protoview.core.runs import run_from_snapshot

    (entry,) = s.runs
    run = run_from_snapshot(entry)
    assert run.stream == "gradual,sorted"
    assert run.domain_names == tuple(f"noise:{k}" for k in range(1, 6))
    # noise:1 holds 539 samples: batches of 100 x 5 and 39, the 7th batch is noise:2
    assert run.shift_marks() == [(1, "noise:1"), (7, "noise:2")]
    assert main(["info", str(snap)]) == 0
    assert "stream gradual,sorted" in capsys.readouterr().out
    # one sample at a time: refused for bn in one line naming --batch-size (once the model
    # is open: a model without BatchNorm would take it)
    assert main(["adapt", "demo", "demo:noise:3", "--method", "bn", "--batch-size", "1",
                 "--steps", "1", "--probe-size", "0"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1 and err[0].startswith("protoview: error: --batch-size: bn normalises")
    assert main(["adapt", "demo", "demo:noise:3", "--stream", "reset_each_shift,mixed"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("protoview: error: --stream: reset_each_shift")
