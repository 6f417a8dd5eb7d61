"""ImageNet-D's 164 classes (``imagenet-d:ROOT:DOMAIN``): the toolkit's image lists, its map
of 1000-way predictions to the 164 classes, and its accuracy (``get_accuracy``), with
adaptation on the whole 1000-way logits (the oracles: tests/oracles/toolkit_imagenet_d.py,
toolkit_imagenet_subsets.py, toolkit_tent.py)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from protoview.cli import main
from protoview.core.data import open_dataset
from protoview.core.data._imagenet_d import IMAGENET_D_CLASSES, IMAGENET_D_FROM_1K
from protoview.core.data._variants import IMAGENET_D109_TO_1K, IMAGENET_D_MAP
from protoview.core.heads import MappedHead, map_proxies, predicted_classes
from protoview.core.opening import open_model_and_data
from protoview.errors import DatasetError
from tests import _ckpt_fixtures as fx
from tests._benchmark_fixtures import _jpeg
from tests.oracles import toolkit_imagenet_d as toolkit
from tests.oracles import toolkit_imagenet_subsets as subsets

NET = """
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.fc = nn.Linear(4, 1000)

    def forward(self, x):
        return self.fc(self.backbone(x))


def build():
    return Net()
"""
#: ImageNet classes the tiny model favours: 403 -> aircraft_carrier (0), 404 -> airplane (1),
#: 151 and 152 -> dog (47), 24 -> owl (97), 0 -> none of the 164 (never right)
FAVOURED = (403, 404, 151, 152, 24, 0)
CLASSES = ("aircraft_carrier", "airplane", "dog", "owl")
PRE = "imagenet,size=16"


def _model(tmp_path: Path) -> tuple[str, str, torch.nn.Module]:
    """(checkpoint, arch, net): a random 1000-class classifier whose predictions fall on
    :data:`FAVOURED` (their biases 0, the others' -8), so that the map matters."""
    arch = fx.write_arch_file(tmp_path / "net.py", NET)
    from protoview.core.checkpoint.archs import load_user_builder, resolve_arch

    torch.manual_seed(0)
    net = load_user_builder(resolve_arch(f"{arch}:build", where="test"))()
    with torch.no_grad():
        net.fc.weight.mul_(4.0)
        net.fc.bias.fill_(-8.0)
        net.fc.bias[list(FAVOURED)] = 0.0
    return str(fx.save(net.state_dict(), tmp_path / "net.pt")), f"{arch}:build", net


def _layout(root: Path, domain: str = "clipart", per_class: int = 4, seed: int = 0) -> Path:
    """The toolkit's layout: ``ROOT/<domain>/<class>/<file>`` (the symlinks its
    ``create_symlinks_and_get_imagenet_visda_mapping`` makes) and
    ``ROOT/imagenet_d_lists/<domain>_list.txt`` (``<domain>/<class>/<file> <label>``, the
    label the class's index among the 164)."""
    rng = np.random.default_rng(seed)
    lines = []
    for k in range(per_class):
        for name in CLASSES:
            relative = f"{domain}/{name}/{domain}_{k:03d}.jpg"
            _jpeg(root / relative, rng)
            lines.append(f"{relative} {IMAGENET_D_CLASSES.index(name)}\n")
    (root / "imagenet_d_lists").mkdir(parents=True, exist_ok=True)
    (root / "imagenet_d_lists" / f"{domain}_list.txt").write_text("".join(lines))
    return root


def test_the_classes_and_the_map_are_the_toolkits() -> None:
    assert list(IMAGENET_D_FROM_1K) == list(subsets.IMAGENET_D_MAPPING.values())
    assert list(subsets.IMAGENET_D_MAPPING) == list(range(1000))
    # the lists' labels are the class folders in sorted order (checked on the toolkit's files)
    assert len(IMAGENET_D_CLASSES) == 164 and list(IMAGENET_D_CLASSES) == sorted(IMAGENET_D_CLASSES)
    assert IMAGENET_D_MAP.num_classes == 164 and IMAGENET_D_MAP.unmapped == 536
    # ImageNet-D109 is its one-to-one part (the toolkit's class_mapping_164_to_109)
    uniques, count = np.unique(np.array(list(subsets.IMAGENET_D_MAPPING.values())),
                               return_counts=True)
    assert [IMAGENET_D_FROM_1K[k] for k in IMAGENET_D109_TO_1K] == uniques[count == 1].tolist()


def test_the_list_is_read_as_the_toolkit_reads_it(tmp_path) -> None:
    root = _layout(tmp_path / "imagenet-d")
    data = open_dataset(f"imagenet-d:{root}:clipart")
    theirs = toolkit.build_index(str(root), str(root / "imagenet_d_lists" / "clipart_list.txt"))
    assert [(p, y) for p, y, _ in theirs] == data.samples
    assert data.labels.tolist() == [y for _, y, _ in theirs]
    assert data.class_names == list(IMAGENET_D_CLASSES)
    assert data.prediction_map is IMAGENET_D_MAP
    assert data.benchmark == {"dataset": "ImageNet-D", "domain": "clipart"}
    both = open_dataset(f"imagenet_d:{_layout(root, 'sketch', seed=1)}:clipart,sketch")
    assert both.domain_names == ("clipart", "sketch") and both.prediction_map is IMAGENET_D_MAP


def test_predicted_classes_is_the_toolkits_mapping_vector() -> None:
    logits = torch.randn(50, 1000, generator=torch.Generator().manual_seed(3))
    mapping_vector = list(subsets.IMAGENET_D_MAPPING.values())
    theirs = torch.tensor([mapping_vector[p] for p in logits.argmax(1)])
    assert torch.equal(predicted_classes(logits, IMAGENET_D_MAP), theirs)
    assert np.array_equal(predicted_classes(logits.numpy(), IMAGENET_D_MAP), theirs.numpy())
    assert np.array_equal(predicted_classes(logits.numpy()), logits.argmax(1).numpy())
    assert predicted_classes(np.zeros((3, 0))).tolist() == [-1, -1, -1]  # an encoder: no head
    with pytest.raises(ValueError, match="a map of 1000 classes for a head of 10"):
        MappedHead(torch.nn.Linear(4, 10), IMAGENET_D_MAP)


def test_opening_maps_the_predictions_and_keeps_the_1000_logits(tmp_path, capsys) -> None:
    root = _layout(tmp_path / "imagenet-d")
    checkpoint, arch, net = _model(tmp_path)
    model, data = open_model_and_data(checkpoint, f"imagenet-d:{root}:clipart", arch=arch,
                                      preprocess=PRE)
    assert isinstance(model.classifier, MappedHead)
    assert model.info.head.num_classes == 1000
    assert any("predictions mapped to the 164 classes of ImageNet-D" in n for n in model.info.notes)
    x = torch.stack([data[i][0] for i in range(len(data))])
    net.eval()
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), net(x))  # the 1000 logits, to the bit
    rows, classes = map_proxies(model.classifier)
    mapped = [k for k, c in enumerate(IMAGENET_D_FROM_1K) if c >= 0]
    assert torch.equal(rows, net.fc.weight[mapped].detach())
    assert classes.tolist() == [IMAGENET_D_FROM_1K[k] for k in mapped]
    assert main(["info", checkpoint, f"imagenet-d:{root}:clipart", "--arch", arch,
                 "--preprocess", PRE]) == 0
    out = capsys.readouterr().out
    assert "1000-way predictions mapped to 164 classes as the authors' evaluation" in out
    assert "cannot be matched" not in out


@pytest.mark.parametrize("method", ["eata", "sar", "deyo"])
def test_entropy_margins_take_the_164_classes_scored(tmp_path, monkeypatch, method) -> None:
    """EATA's, SAR's and DeYO's default margins ``k ln C`` take C = 164 on ImageNet-D, as
    the toolkit hands them ``num_classes`` 164 (cfg NUM_CLASSES), not the 1000 logits."""
    import importlib

    from protoview.core import heads
    from protoview.core.adapt.registry import make_adapter

    seen: list[int] = []

    def spy(model, width):
        seen.append(heads.scored_class_count(model, width))
        return seen[-1]

    monkeypatch.setattr(importlib.import_module(f"protoview.core.adapt.{method}"),
                        "scored_class_count", spy)
    root = _layout(tmp_path / "imagenet-d")
    checkpoint, arch, net = _model(tmp_path)
    model, data = open_model_and_data(checkpoint, f"imagenet-d:{root}:clipart", arch=arch,
                                      preprocess=PRE)
    x = torch.stack([data[i][0] for i in range(4)])
    make_adapter(method, model).step(x)
    assert seen and set(seen) == {164}
    seen.clear()
    plain = copy.deepcopy(model)
    plain.classifier = plain.classifier.inner  # the same head, its predictions unmapped
    make_adapter(method, plain).step(x)
    assert seen and set(seen) == {1000}


def _batches(data, size: int) -> list[tuple[torch.Tensor, torch.Tensor, list[str]]]:
    """The toolkit's loader over the list in order (DataLoader, shuffle=False)."""
    x = torch.stack([data[i][0] for i in range(len(data))])
    y = torch.as_tensor(data.labels)
    return [(x[k:k + size], y[k:k + size], ["clipart"] * len(y[k:k + size]))
            for k in range(0, len(y), size)]


@pytest.mark.parametrize("method", ["none", "tent"])
def test_adapt_scores_as_the_toolkits_get_accuracy(tmp_path, capsys, method) -> None:
    """``protoview adapt`` on ImageNet-D: the online accuracy is the toolkit's
    ``get_accuracy`` of the same model (Tent: the toolkit's, on the 1000-way logits) over
    the same batches, the online logits are its outputs, and every number after the run
    (full set, per class) is scored through the map."""
    from protoview.core.snapshot import read_snapshot
    from protoview.present.derive import per_class_and_confusion
    from tests.oracles.toolkit_tent import Tent

    root = _layout(tmp_path / "imagenet-d")
    checkpoint, arch, net = _model(tmp_path)
    out = tmp_path / "run.h5"
    assert main(["adapt", checkpoint, f"imagenet-d:{root}:clipart", "--arch", arch,
                 "--preprocess", PRE, "--method", method, "--batch-size", "4", "--order",
                 "file", "--device", "cpu", "--no-cache", "--out", str(out)]) == 0
    capsys.readouterr()
    s = read_snapshot(out)
    _, data = open_model_and_data(checkpoint, f"imagenet-d:{root}:clipart", arch=arch,
                                  preprocess=PRE)
    batches = _batches(data, 4)
    assert np.array_equal(np.concatenate(s.history["batch_indices"]), np.arange(len(data)))
    oracle = Tent(copy.deepcopy(net), lr=1e-3) if method == "tent" else copy.deepcopy(net).eval()
    if method == "tent":
        logits = [np.asarray(v).reshape(-1, 1000) for v in s.history["online_logits"]]
        replay = Tent(copy.deepcopy(net), lr=1e-3)
        for (x, _, _), ours in zip(batches, logits, strict=True):
            np.testing.assert_array_equal(ours, replay(x).detach().numpy())  # to the bit
    accuracy, _, n = toolkit.get_accuracy(oracle, batches, "imagenet_d", "clipart", "continual",
                                          {}, 0, "cpu")
    assert n == len(data) == 16
    assert s.history["online_accuracy"][-1] == accuracy
    predictions = np.concatenate(s.history["online_predictions"])
    assert set(predictions.tolist()) - {-1} <= set(range(164))
    # the state after the run, its accuracy and per-class numbers through the map
    from protoview.core.state import state_from_snapshot

    state = state_from_snapshot(s)
    mapped = predicted_classes(state.logits, IMAGENET_D_MAP)
    assert state.logits.shape == (16, 1000) and np.array_equal(state.predictions, mapped)
    overall = float((mapped == state.labels).mean())
    assert state.metrics["accuracy"] == pytest.approx(overall, abs=1e-12)
    per_class, confusion = per_class_and_confusion(state.labels, state.predictions, 164)
    counts = np.bincount(state.labels, minlength=164)
    seen = counts > 0
    assert np.isclose((per_class[seen] * counts[seen]).sum() / counts.sum(), overall)
    assert confusion.sum() == int((state.predictions >= 0).sum())
    if method == "none":  # the source model's accuracy is the toolkit's too
        assert overall == accuracy
        unmapped = float((state.logits.argmax(1) == state.labels).mean())
        assert unmapped != accuracy  # the data make the map matter (class 0 is none of 164)


def test_compare_scores_through_the_map(tmp_path, capsys) -> None:
    root = _layout(tmp_path / "imagenet-d")
    _layout(root, "sketch", seed=1)
    checkpoint, arch, net = _model(tmp_path)
    csv = tmp_path / "t.csv"
    assert main(["compare", checkpoint, f"imagenet-d:{root}:clipart", "--shifts",
                 "clipart,sketch", "--methods", "none,tent", "--arch", arch, "--preprocess",
                 PRE, "--batch-size", "4", "--order", "file", "--device", "cpu",
                 "--csv", str(csv)]) == 0
    capsys.readouterr()
    rows = {line.split(",")[0]: line.split(",")[1:] for line in csv.read_text().splitlines()
            if line and not line.startswith("#")}
    _, data = open_model_and_data(checkpoint, f"imagenet-d:{root}:clipart", arch=arch,
                                  preprocess=PRE)
    from tests.oracles.toolkit_tent import Tent

    for method, oracle in (("none", copy.deepcopy(net).eval()),
                           ("tent", Tent(copy.deepcopy(net), lr=1e-3))):
        expected, _, _ = toolkit.get_accuracy(oracle, _batches(data, 4), "imagenet_d",
                                              "clipart", "continual", {}, 0, "cpu")
        assert rows[method][0] == f"{100 * expected:.2f}"


@pytest.mark.parametrize(
    ("make", "spec", "problem"),
    [
        (lambda r: (_layout(r), (r / "imagenet_d_lists" / "clipart_list.txt").write_text(
            "clipart/mouse/a.jpg 3\n")),
         "imagenet-d:{root}:clipart", "line 1: class folder 'mouse' is not one of ImageNet-D's"),
        (lambda r: (_layout(r), (r / "imagenet_d_lists" / "clipart_list.txt").write_text(
            "clipart/dog/clipart_000.jpg 46\n")),
         "imagenet-d:{root}:clipart", "label 46 for class folder 'dog', which is ImageNet-D's class 47"),
        (lambda r: _layout(r), "imagenet-d:{root}:sketch", "list of domain sketch is missing"),
        (lambda r: _layout(r), "imagenet-d:{root}:clipart,sketch", "list of domain sketch is missing"),
        (lambda r: _layout(r), "imagenet-d:{root}:photo", "unknown ImageNet-D domain 'photo'"),
        (lambda r: None, "imagenet-d:{root}:clipart", "ImageNet-D folder does not exist"),
    ],
)
def test_layouts_gone_wrong_are_refused_in_one_line(tmp_path, make, spec, problem) -> None:
    root = tmp_path / "data"
    make(root)
    with pytest.raises(DatasetError, match=problem) as info:
        open_dataset(spec.format(root=root))
    assert "\n" not in str(info.value)
