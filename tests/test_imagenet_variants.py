"""ImageNet-A / -R / -Sketch / V2 / D109 and DomainNet-126 in their released layouts.

Generated copies in the exact layouts (a few classes, tiny JPEGs); the class subsets and the
head restriction against the toolkit's (tests/oracles/toolkit_imagenet_subsets.py,
mariodoebler/test-time-adaptation 8b2ed63), and the ways to get a layout wrong, each refused
with one line naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from protoview.core.data import open_dataset
from protoview.core.data._imagenet_wnids import IMAGENET_WNIDS
from protoview.core.data._variants import IMAGENET_A_WNIDS, IMAGENET_R_WNIDS, VARIANTS
from protoview.core.heads import ClassSubset, head_proxies
from protoview.core.opening import open_model_and_data
from protoview.errors import DatasetError
from tests import _ckpt_fixtures as fx
from tests._benchmark_fixtures import _jpeg
from tests.oracles import toolkit_imagenet_subsets as toolkit

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


def _folders(root: Path, names: list[str], per_class: int = 2, suffix: str = "jpg") -> Path:
    rng = np.random.default_rng(0)
    for name in names:
        for k in range(per_class):
            _jpeg(root / name / f"img_{k}.{suffix}", rng)
    return root


def _imagenet_model(tmp_path: Path) -> tuple[str, str]:
    """(checkpoint path, arch) of a random 1000-class ImageNet classifier."""
    arch = fx.write_arch_file(tmp_path / "net.py", NET)
    from protoview.core.checkpoint.archs import load_user_builder, resolve_arch

    torch.manual_seed(0)
    net = load_user_builder(resolve_arch(f"{arch}:build", where="test"))()
    return str(fx.save(net.state_dict(), tmp_path / "net.pt")), f"{arch}:build"


def test_the_class_subsets_equal_the_toolkits() -> None:
    assert list(IMAGENET_A_WNIDS) == toolkit.IMAGENET_A_WNIDS
    assert list(IMAGENET_R_WNIDS) == toolkit.IMAGENET_R_WNIDS
    assert list(VARIANTS["imagenet-a"].head_classes) == toolkit.IMAGENET_A_MASK
    r_mask = [k for k, keep in enumerate(toolkit.IMAGENET_R_MASK) if keep]
    assert list(VARIANTS["imagenet-r"].head_classes) == r_mask
    assert list(VARIANTS["imagenet-d109"].head_classes) == toolkit.IMAGENET_D109_MASK
    assert list(IMAGENET_WNIDS) == toolkit.ALL_WNIDS


@pytest.mark.parametrize("kind", ["imagenet-r", "imagenet-a"])
def test_a_200_class_variant_restricts_a_1000_class_head_as_the_toolkit(tmp_path, kind) -> None:
    wnids = list(VARIANTS[kind].folders)
    present = [wnids[0], wnids[7], wnids[199]]  # some folders only: labels keep their place
    root = _folders(tmp_path / kind, present)
    checkpoint, arch = _imagenet_model(tmp_path)
    model, data = open_model_and_data(checkpoint, f"{kind}:{root}", arch=arch,
                                      preprocess="imagenet,size=16")
    assert sorted(set(data.labels.tolist())) == [0, 7, 199]
    assert len(data.class_names) == 200 and data.class_names[7] == wnids[7]
    assert isinstance(model.classifier, ClassSubset)
    assert model.info.head.num_classes == 200
    assert any("head restricted to the 200 classes" in n for n in model.info.notes)
    x = torch.stack([data[i][0] for i in range(len(data))])
    mask = toolkit.IMAGENET_A_MASK if kind == "imagenet-a" else toolkit.IMAGENET_R_MASK
    with torch.no_grad():
        full = model.classifier.inner(model.featurizer(x))
        theirs = toolkit.ImageNetXMaskingLayer(mask)(full)
        assert torch.equal(model(x), theirs)  # sliced, bit for bit
    rows, classes = head_proxies(model.classifier)
    assert rows.shape == (200, 4) and torch.equal(rows[7], model.classifier.inner.weight[mask_index(mask, 7)])
    assert classes.tolist() == list(range(200))


def mask_index(mask: list, k: int) -> int:
    """The 1k index of subset class ``k`` for a boolean or an index mask."""
    if isinstance(mask[0], bool):
        return [i for i, keep in enumerate(mask) if keep][k]
    return mask[k]


def test_a_run_adapts_on_the_restricted_logits(tmp_path) -> None:
    from protoview.core.adapt import AdaptRun, make_adapter

    root = _folders(tmp_path / "r", list(IMAGENET_R_WNIDS[:3]), per_class=3)
    checkpoint, arch = _imagenet_model(tmp_path)
    model, data = open_model_and_data(checkpoint, f"imagenet-r:{root}", arch=arch,
                                      preprocess="imagenet,size=16")
    run = AdaptRun(make_adapter("tent", model), data, batch_size=4)
    record = run.step()
    assert record.online_logits.shape[1] == 200 and np.isfinite(record.online_accuracy)


def test_imagenet_v2_folders_are_class_indices(tmp_path) -> None:
    root = _folders(tmp_path / "v2", ["0", "2", "10", "999"], per_class=1, suffix="jpeg")
    data = open_dataset(f"imagenetv2:{root}")
    assert data.labels.tolist() == [0, 10, 2, 999]  # sorted folder names, labels by number
    assert getattr(data, "head_classes", None) is None
    # the toolkit: ImageFolder ranks (text order) with logits reordered by IMAGENET_V2_MASK
    ranks = {name: rank for rank, name in enumerate(sorted(str(k) for k in range(1000)))}
    logits = torch.randn(4, 1000, generator=torch.Generator().manual_seed(0))
    logits[:, [0, 10, 2, 999]] += 100 * torch.eye(4)  # each sample predicts its own class
    theirs = logits[:, toolkit.IMAGENET_V2_MASK].argmax(1)
    their_labels = torch.tensor([ranks[n] for n in ["0", "10", "2", "999"]])
    ours = logits.argmax(1)
    assert torch.equal(ours == torch.as_tensor(data.labels), theirs == their_labels)


def test_imagenet_sketch_keeps_every_class(tmp_path) -> None:
    root = _folders(tmp_path / "sketch", [IMAGENET_WNIDS[5], IMAGENET_WNIDS[900]], 1, "JPEG")
    data = open_dataset(f"imagenet-sketch:{root}")
    assert data.labels.tolist() == [5, 900] and len(data.class_names) == 1000


def _lists(root: Path, domain: str, rows: list[tuple[str, int]], folder: str | None = None) -> Path:
    rng = np.random.default_rng(1)
    for relative, _ in rows:
        _jpeg(root / relative, rng)
    where = root / folder if folder else root
    where.mkdir(parents=True, exist_ok=True)
    (where / f"{domain}_list.txt").write_text("".join(f"{p} {k}\n" for p, k in rows))
    return root


def test_domainnet126_reads_its_list(tmp_path) -> None:
    rows = [("clipart/bird/a.jpg", 2), ("clipart/apple/b.jpg", 0), ("clipart/bird/c.jpg", 2)]
    root = _lists(tmp_path / "dn", "clipart", rows)
    data = open_dataset(f"domainnet126:{root}:clipart")
    assert data.labels.tolist() == [2, 0, 2]
    assert data.class_names[:3] == ["apple", "class 1", "bird"]
    assert data.benchmark == {"dataset": "DomainNet-126", "domain": "clipart"}


def test_several_domainnet126_domains_one_after_another(tmp_path) -> None:
    _lists(tmp_path / "dn", "clipart", [("clipart/apple/a.jpg", 0), ("clipart/bird/b.jpg", 1)])
    root = _lists(tmp_path / "dn", "sketch", [("sketch/apple/a.jpg", 0), ("sketch/bird/b.jpg", 1)],
                  folder="domainnet126_lists")
    data = open_dataset(f"domainnet126:{root}:clipart,sketch")
    assert data.domain_names == ("clipart", "sketch") and data.domains.tolist() == [0, 0, 1, 1]


def test_imagenet_d109_restricts_the_head_to_its_109_classes(tmp_path) -> None:
    rows = [("real/rabbit/a.jpg", 91), ("real/aircraft_carrier/b.jpg", 0)]
    root = _lists(tmp_path / "dn", "real", rows, folder="imagenet_d109_lists")
    checkpoint, arch = _imagenet_model(tmp_path)
    model, data = open_model_and_data(checkpoint, f"imagenet-d109:{root}:real", arch=arch,
                                      preprocess="imagenet,size=16")
    assert data.labels.tolist() == [91, 0] and model.info.head.num_classes == 109
    x = torch.stack([data[i][0] for i in range(2)])
    with torch.no_grad():
        full = model.classifier.inner(model.featurizer(x))
        assert torch.equal(model(x), toolkit.ImageNetXMaskingLayer(toolkit.IMAGENET_D109_MASK)(full))


def test_info_says_how_the_classes_match(tmp_path, capsys) -> None:
    from protoview.cli import main

    root = _folders(tmp_path / "r", list(IMAGENET_R_WNIDS[:2]), per_class=1)
    checkpoint, arch = _imagenet_model(tmp_path)
    assert main(["info", checkpoint, f"imagenet-r:{root}", "--arch", arch,
                 "--preprocess", "imagenet,size=16"]) == 0
    out = capsys.readouterr().out
    assert "matched through ImageNet's class index" in out and "cannot be matched" not in out


@pytest.mark.parametrize(
    ("make", "spec", "problem"),
    [
        (lambda r: _folders(r, ["cat"]), "imagenet-r:{root}", "is not a class folder"),
        (lambda r: _folders(r, [IMAGENET_WNIDS[0]]), "imagenet-r:{root}", "is not a class folder"),
        (lambda r: _folders(r, ["n1234"]), "imagenetv2:{root}", "is not a class folder"),
        (lambda r: r.mkdir(), "domainnet126:{root}:clipart", "list of domain clipart is missing"),
        (lambda r: _lists(r, "real", [("real/x/a.jpg", 0)]), "domainnet126:{root}:real,clipart",
         "list of domain clipart is missing"),
        (lambda r: (_lists(r, "real", [("real/x/a.jpg", 0)]),
                    (r / "real_list.txt").write_text("real/x/a.jpg 0\nreal/x/gone.jpg 1\n")),
         "domainnet126:{root}:real", r"names 1 image\(s\) absent"),
        (lambda r: (_lists(r, "real", [("real/x/a.jpg", 0)]),
                    (r / "real_list.txt").write_text("real/x/a.jpg zero\n")),
         "domainnet126:{root}:real", "line 1 is not '<image path> <label>'"),
        (lambda r: r.mkdir(), "domainnet126:{root}:quickdraw", "unknown DomainNet-126 domain"),
        (lambda r: r.mkdir(), "imagenet-d:{root}:clipart", "list of domain clipart is missing"),
        (lambda r: None, "imagenet-a:{root}", "ImageNet-A folder does not exist"),
    ],
)
def test_layouts_gone_wrong_are_refused_in_one_line(tmp_path, make, spec, problem) -> None:
    root = tmp_path / "data"
    make(root)
    with pytest.raises(DatasetError, match=problem) as info:
        open_dataset(spec.format(root=root))
    assert "\n" not in str(info.value)
