"""The standard TTA benchmarks opened as they lie on disk, from small copies in the real layouts.

CIFAR-10-C / CIFAR-100-C (``<corruption>.npy`` + ``labels.npy``), ImageNet-C
(``<corruption>/<severity>/<wnid>/*.JPEG``) and DomainBed's PACS / VLCS / OfficeHome /
TerraIncognita / DomainNet folders: labels, class order, severity slicing and the ways to
get them wrong.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch
from torchvision.datasets import ImageFolder

from protoview.core.data import open_dataset
from protoview.core.data._corruptions import CIFAR10_CLASSES, CIFAR100_CLASSES
from protoview.core.data._domainbed import FAMILIES
from protoview.core.data._imagenet_wnids import IMAGENET_WNIDS
from protoview.core.model import TransformSpec
from protoview.core.warnings import ProtoviewWarning
from protoview.errors import DatasetError
from tests._benchmark_fixtures import make_cifar_c, make_domainbed, make_imagenet_c

RAW32 = TransformSpec((32, 32), 3, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


# ---------------------------------------------------------------------------- CIFAR-10/100-C
@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_cifar10c_severity_is_the_sth_fifth_of_the_rows(tmp_path, severity):
    folder, labels = make_cifar_c(tmp_path / "CIFAR-10-C", n=6)
    data = open_dataset(f"cifar10c:{folder}:fog:{severity}", RAW32)
    rows = np.arange((severity - 1) * 6, severity * 6)
    np.testing.assert_array_equal(data.labels, labels[rows])
    raw = np.load(folder / "fog.npy")
    x, _ = data.get_batch(np.arange(6))
    expected = torch.from_numpy(raw[rows].transpose(0, 3, 1, 2).astype(np.float32) / 255)
    torch.testing.assert_close(x, expected, rtol=0, atol=1e-6)
    assert data.thumbnail(0)[0, 0, 0] == 10 * severity + 1  # the marker: severity, corruption 1 (fog)
    assert data.class_names == list(CIFAR10_CLASSES) and data.suggested_preprocess == "cifar10"
    assert f"severity {severity}" in data.description and len(data) == 6


def test_cifar_c_root_may_be_the_folder_above_and_kinds_differ(tmp_path):
    make_cifar_c(tmp_path / "CIFAR-100-C", n=4, num_classes=100, seed=3)
    data = open_dataset(f"cifar100c:{tmp_path}:gaussian_noise:5", RAW32)
    assert data.class_names == list(CIFAR100_CLASSES) and data.suggested_preprocess == "cifar100"
    assert data.source.endswith("CIFAR-100-C:gaussian_noise:5")
    fog = open_dataset(f"CIFAR-100-C:{tmp_path}:fog:5", RAW32)  # the dataset's own spelling works too
    assert fog.identity() != data.identity()
    assert open_dataset(f"cifar100c:{tmp_path}:fog:4", RAW32).identity() != fog.identity()


def test_cifar_c_real_size_is_memory_mapped(tmp_path):
    """A release-sized file (50,000 rows) opens reading only the chosen severity's 10,000 rows."""
    folder = tmp_path / "CIFAR-10-C"
    folder.mkdir()
    labels = np.tile(np.arange(10), 5000).astype(np.int64)
    np.save(folder / "labels.npy", labels)
    images = np.lib.format.open_memmap(folder / "snow.npy", mode="w+", dtype=np.uint8, shape=(50000, 32, 32, 3))
    images[40000:, 0, 0, 0] = 7
    images.flush()
    del images
    data = open_dataset(f"cifar10c:{folder}:snow:5", RAW32)
    assert len(data) == 10000 and data.thumbnail(9999)[0, 0, 0] == 7
    assert open_dataset(f"cifar10c:{folder}:snow:4", RAW32).thumbnail(0)[0, 0, 0] == 0


def test_cifar_c_class_names_are_the_release_order():
    assert len(CIFAR100_CLASSES) == 100 == len(set(CIFAR100_CLASSES))
    assert list(CIFAR100_CLASSES) == sorted(CIFAR100_CLASSES)  # CIFAR-100's fine labels are alphabetical
    assert CIFAR10_CLASSES[0] == "airplane" and CIFAR10_CLASSES[9] == "truck"


@pytest.mark.parametrize(
    "spec, where, problem",
    [
        ("cifar10c:{root}:gaussian_nosie:5", "gaussian_nosie.npy", "no corruption 'gaussian_nosie'.*did you mean gaussian_noise"),
        ("cifar10c:{root}:fog:6", "cifar10c:", "severity 6 does not exist.*1 to 5"),
        ("cifar10c:{root}:fog:0", "cifar10c:", "severity 0 does not exist"),
        ("cifar10c:{root}:fog:five", "cifar10c:", "severity must be a whole number"),
        ("cifar10c:{root}:fog", "cifar10c:", "expected cifar10c:ROOT:CORRUPTION:SEVERITY"),
        ("cifar10c:{root}:labels:1", "cifar10c:", "'labels' is not a corruption name"),
        ("cifar10c:{root}/missing:fog:1", "missing", "folder does not exist"),
    ],
)
def test_cifar_c_bad_specs(tmp_path, spec, where, problem):
    make_cifar_c(tmp_path / "CIFAR-10-C")
    with pytest.raises(DatasetError, match=problem) as info:
        open_dataset(spec.format(root=tmp_path), RAW32)
    assert where in info.value.where and "\n" not in str(info.value)


def test_cifar_c_bad_files(tmp_path):
    folder, labels = make_cifar_c(tmp_path / "c", corruptions=("fog",), n=4)
    np.save(folder / "labels.npy", labels[:-1])
    with pytest.raises(DatasetError, match="holds 19 labels but fog.npy holds 20 images") as info:
        open_dataset(f"cifar10c:{folder}:fog:1", RAW32)
    assert info.value.where.endswith("labels.npy")
    np.save(folder / "labels.npy", labels)
    np.save(folder / "short.npy", np.zeros((19, 32, 32, 3), np.uint8))
    with pytest.raises(DatasetError, match="holds 19 images, not a positive multiple of 5") as info:
        open_dataset(f"cifar10c:{folder}:short:1", RAW32)
    assert info.value.where.endswith("short.npy")
    np.save(folder / "floaty.npy", np.zeros((20, 32, 32, 3), np.float32))
    with pytest.raises(DatasetError, match="uint8 images.*float32"):
        open_dataset(f"cifar10c:{folder}:floaty:1", RAW32)
    (folder / "broken.npy").write_bytes(b"not numpy")
    with pytest.raises(DatasetError, match="broken.npy: is not a readable .npy file"):
        open_dataset(f"cifar10c:{folder}:broken:1", RAW32)
    np.save(folder / "labels.npy", np.full(20, 10))
    with pytest.raises(DatasetError, match="out of range.*10"):
        open_dataset(f"cifar10c:{folder}:fog:1", RAW32)
    os.remove(folder / "labels.npy")
    with pytest.raises(DatasetError, match="labels.npy: does not exist"):
        open_dataset(f"cifar10c:{folder}:fog:1", RAW32)


def test_cifar_c_labels_checked_against_the_model(tmp_path):
    folder, _ = make_cifar_c(tmp_path / "c", n=5, num_classes=10)
    with pytest.raises(DatasetError, match="out of range"):
        open_dataset(f"cifar10c:{folder}:fog:1", RAW32, num_classes=2)


# ---------------------------------------------------------------------------- ImageNet-C
def test_imagenet_c_keeps_imagenet_class_indices(tmp_path):
    """Three of the 1000 class folders: labels are their ImageNet indices, not 0, 1, 2."""
    make_imagenet_c(tmp_path / "ImageNet-C", wnids=("n01440764", "n02123045", "n15075141"))
    data = open_dataset(f"imagenetc:{tmp_path}:gaussian_noise:5")
    assert sorted(set(data.labels.tolist())) == [0, IMAGENET_WNIDS.index("n02123045"), 999]
    assert len(data.class_names) == 1000 and data.class_names[0] == "tench"
    assert data.suggested_preprocess == "imagenet" and "3 of the 1000" in data.description
    assert all(path.endswith(".JPEG") for path, _ in data.samples)


def test_imagenet_c_full_copy_equals_torchvision_imagefolder(tmp_path):
    """With every class folder present, labels are torchvision ImageFolder's (RobustBench's)."""
    wnids = IMAGENET_WNIDS[::100]  # stands for the full set: sorted, so the orders coincide
    root = make_imagenet_c(tmp_path, wnids=wnids, severities=(2,), per_class=1)
    data = open_dataset(f"imagenetc:{root}:gaussian_noise:2")
    reference = ImageFolder(str(root / "gaussian_noise" / "2"))
    index = {w: IMAGENET_WNIDS.index(w) for w in reference.classes}
    assert [p for p, _ in data.samples] == [p for p, _ in reference.samples]
    assert data.labels.tolist() == [index[reference.classes[y]] for _, y in reference.samples]
    assert IMAGENET_WNIDS == tuple(sorted(IMAGENET_WNIDS)) and len(set(IMAGENET_WNIDS)) == 1000


def test_imagenet_c_errors(tmp_path):
    root = make_imagenet_c(tmp_path / "ImageNet-C")
    with pytest.raises(DatasetError, match="no corruption 'gausian_noise'.*did you mean gaussian_noise"):
        open_dataset(f"imagenetc:{root}:gausian_noise:5")
    with pytest.raises(DatasetError, match="severity folders found: 1, 5") as info:
        open_dataset(f"imagenetc:{root}:gaussian_noise:3")
    assert info.value.where.endswith(os.path.join("gaussian_noise", "3"))
    with pytest.raises(DatasetError, match="severity 6 does not exist"):
        open_dataset(f"imagenetc:{root}:gaussian_noise:6")
    (root / "gaussian_noise" / "5" / "cats").mkdir()
    with pytest.raises(DatasetError, match="cats: is not a class folder of this benchmark"):
        open_dataset(f"imagenetc:{root}:gaussian_noise:5")


# ---------------------------------------------------------------------------- DomainBed
def test_pacs_domain_equals_domainbed_imagefolder(tmp_path):
    """Labels and file order are those of torchvision's ImageFolder on the domain folder,
    which DomainBed's MultipleEnvironmentImageFolder (and TSD's ImageDataset) use."""
    folder = make_domainbed(tmp_path)
    data = open_dataset(f"pacs:{tmp_path}:cartoon")
    reference = ImageFolder(str(folder / "cartoon"))
    assert data.class_names == reference.classes == list(FAMILIES["pacs"].classes)
    assert [(p, y) for p, y in data.samples] == [(p, y) for p, y in reference.samples]
    assert data.suggested_preprocess == "domainbed"
    assert data.benchmark == {"dataset": "PACS", "domain": "cartoon", "environment": 1}
    assert data.source == f"pacs:{folder}:cartoon"


@pytest.mark.parametrize("domain", ["sketch", "3", "SKETCH", "Sketch"])
def test_domain_spellings(tmp_path, domain):
    make_domainbed(tmp_path)
    data = open_dataset(f"pacs:{tmp_path}:{domain}")
    assert data.benchmark["domain"] == "sketch" and data.benchmark["environment"] == 3


def test_root_may_be_the_dataset_folder_as_tsd_passes_it(tmp_path):
    folder = make_domainbed(tmp_path, folder="office-home", domains=("Art", "Clipart", "Product", "RealWorld"),
                            classes=FAMILIES["officehome"].classes[:3], per_class=1)
    with pytest.warns(ProtoviewWarning, match="no folder for 62 of OfficeHome's 65 classes"):
        data = open_dataset(f"officehome:{folder}:real world")  # DomainBed's "Real World", TSD's "RealWorld"
    assert data.benchmark == {"dataset": "OfficeHome", "domain": "RealWorld", "environment": 3}
    assert len(data.class_names) == 65  # the 62 absent classes keep their DomainBed indices
    assert data.labels.tolist() == [0, 1, 2]


def test_officehome_and_domainnet_class_order_is_pythons(tmp_path):
    """Python's sorted (ImageFolder's) order: 'TV' < 'Table', 'The_Eiffel_Tower' < 'aircraft_carrier'."""
    office = FAMILIES["officehome"].classes
    assert list(office) == sorted(office) and office.index("TV") < office.index("Table") and len(office) == 65
    net = FAMILIES["domainnet"].classes
    assert list(net) == sorted(net) and net[0] == "The_Eiffel_Tower" and len(set(net)) == 345
    for family in FAMILIES.values():
        assert list(family.domains) == sorted(family.domains) and list(family.classes) == sorted(family.classes)
    make_domainbed(tmp_path, folder="domain_net", domains=("real",), classes=("aircraft_carrier", "The_Mona_Lisa"))
    with pytest.warns(ProtoviewWarning, match="no folder for 343 of DomainNet's 345 classes"):
        data = open_dataset(f"domainnet:{tmp_path}:real")
    assert data.labels.tolist() == [2, 2, 3, 3]  # The_Mona_Lisa is class 2, aircraft_carrier class 3


@pytest.mark.parametrize(
    "kind, folder, domain, classes",
    [
        ("vlcs", "VLCS", "VOC2007", ("bird", "car", "chair", "dog", "person")),
        ("terraincognita", "terra_incognita", "location_38", ("bird", "bobcat", "empty")),
        ("terra_incognita", "terra_incognita", "location_100", ("squirrel",)),
    ],
)
def test_other_domainbed_datasets(tmp_path, kind, folder, domain, classes):
    make_domainbed(tmp_path, folder=folder, domains=(domain,), classes=classes, per_class=1)
    family = FAMILIES[kind.replace("_", "")]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = open_dataset(f"{kind}:{tmp_path}:{domain}")
    assert len(caught) == (len(classes) < len(family.classes))
    assert data.labels.tolist() == [family.classes.index(c) for c in classes]


def test_missing_class_folder_keeps_indices_with_a_warning(tmp_path):
    make_domainbed(tmp_path, skip={"photo": ("elephant", "giraffe")})
    with pytest.warns(ProtoviewWarning, match="no folder for 2 of PACS's 7 classes \\(elephant, giraffe\\)"):
        data = open_dataset(f"pacs:{tmp_path}:photo")
    assert sorted(set(data.labels.tolist())) == [0, 3, 4, 5, 6] and len(data.class_names) == 7
    assert len(data.notes) == 1


def test_foreign_class_folders_follow_the_sorted_folders(tmp_path):
    make_domainbed(tmp_path, domains=("art_painting", "sketch"), classes=("cat", "dog", "zebra"), per_class=1)
    with pytest.warns(ProtoviewWarning, match="not DomainBed's PACS classes \\(cat, zebra not among them\\)"):
        data = open_dataset(f"pacs:{tmp_path}:sketch")
    assert data.class_names == ["cat", "dog", "zebra"] and data.labels.tolist() == [0, 1, 2]


def test_domainbed_errors(tmp_path):
    folder = make_domainbed(tmp_path, per_class=1)
    with pytest.raises(DatasetError, match="no PACS domain 'art'.*0 art_painting, 1 cartoon") as info:
        open_dataset(f"pacs:{tmp_path}:art")
    assert info.value.where == str(folder / "art")
    with pytest.raises(DatasetError, match="environment 4 does not exist: PACS has environments 0..3"):
        open_dataset(f"pacs:{tmp_path}:4")
    with pytest.raises(DatasetError, match="expected pacs:ROOT:DOMAIN"):
        open_dataset(f"pacs:{tmp_path}")
    with pytest.raises(DatasetError, match="folder does not exist"):
        open_dataset(f"vlcs:{tmp_path}/nowhere:VOC2007")
    with pytest.raises(DatasetError, match="no VLCS domain 'VOC2007' here \\(found: PACS\\)"):
        open_dataset(f"vlcs:{tmp_path}:VOC2007")  # a PACS copy is no VLCS
    (folder / "empty_domain").mkdir()
    with pytest.raises(DatasetError, match="empty_domain: holds no class folders"):
        open_dataset(f"pacs:{folder}:empty_domain")


# ---------------------------------------------------------------------------- info CKPT DATA
def _info(num_classes: int, class_names=None, trained_on=None):
    from protoview.core.heads import HeadInfo
    from protoview.core.model import ModelInfo

    head = HeadInfo(kind="linear", num_classes=num_classes, nb_proxy=1, feature_dim=8, has_bias=True)
    return ModelInfo(path="m.pt", format="state_dict", arch="x", head=head, param_count=1, sha256="0",
                     class_names=class_names, trained_on=dict(trained_on or {}))


def test_match_classes_verdicts(tmp_path):
    from protoview.core.data import match_classes

    make_domainbed(tmp_path, per_class=1)
    pacs = open_dataset(f"pacs:{tmp_path}:sketch")
    names = list(FAMILIES["pacs"].classes)
    assert match_classes(_info(7), pacs).matched is True
    assert "PACS's order" in match_classes(_info(7), pacs).lines[0]
    wrong_count = match_classes(_info(10), pacs)
    assert wrong_count.matched is False and "the head has 10 classes, the dataset 7" in wrong_count.lines[0]
    assert match_classes(_info(7, names), pacs).lines[0].startswith("matched by name")
    shuffled = match_classes(_info(7, names[1:] + names[:1]), pacs)
    assert shuffled.matched is False and "another order (head class 0 is 'elephant', dataset class 0 is 'dog')" in shuffled.lines[0]
    other = match_classes(_info(7, [*names[:6], "zebra"]), pacs)
    assert other.matched is False and "checkpoint only: zebra; dataset only: person" in other.lines[0]
    vlcs = match_classes(_info(7, trained_on={"dataset": "VLCS", "test_envs": [0]}), pacs)
    assert vlcs.matched is False and "trained on VLCS" in vlcs.lines[0]
    tsd = match_classes(_info(7, trained_on={"dataset": "PACS", "test_envs": [0]}), pacs)
    assert tsd.matched is True and "sketch (environment 3) was a training domain" in tsd.remarks[0]
    held_out = match_classes(_info(7, trained_on={"dataset": "PACS", "test_envs": [3]}), pacs)
    assert held_out.matched is True and not held_out.remarks
    office = match_classes(_info(65, trained_on={"dataset": "office-home"}), pacs)  # TSD's spelling
    assert office.matched is False


def test_info_with_data_on_a_tsd_checkpoint(tmp_path, capsys):
    """``protoview info CKPT DATA`` on a TSD checkpoint (ResNet-18, 7 classes) and PACS."""
    import torchvision
    from torch import nn

    from protoview.cli import main
    from tests import _ckpt_fixtures as fx

    make_domainbed(tmp_path, per_class=1)
    resnet = torchvision.models.resnet18()
    resnet.fc = nn.Identity()
    state = {f"featurizer.{k}": v for k, v in resnet.state_dict().items()}
    state |= {f"classifier.fc.{k}": v for k, v in nn.Linear(512, 7).state_dict().items()}
    path = fx.save({"args": {"dataset": "PACS", "test_envs": [0], "net": "resnet18"}, "model_dict": state},
                   tmp_path / "tsd.pkl")
    assert main(["info", str(path), f"pacs:{tmp_path}:art_painting"]) == 0
    out = capsys.readouterr().out
    assert "data:        PACS domain art_painting (environment 0" in out
    assert "match:       matched by position: head class k = dataset class k (PACS's order), 7 classes" in out
    assert main(["info", str(path), f"pacs:{tmp_path}:photo"]) == 0
    assert "photo (environment 2) was a training domain" in capsys.readouterr().out
    assert main(["info", str(path), f"cifar10c:{tmp_path}:fog:6"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("protoview: error: cifar10c:") and "severity 6" in err and "\n" not in err


@pytest.mark.parametrize(("preprocess", "says"), [
    ("imagenet", "resized to 256 and centre-cropped to 224, as RobustBench's"),
    ("domainbed", "the stored 224 px images as they are, as Hendrycks'"),
    ("imagenet,size=300", "neither RobustBench's 256 + crop 224 nor the stored 224 px"),
])
def test_info_names_the_imagenet_c_convention(tmp_path, capsys, preprocess, says):
    """RobustBench / tent resize ImageNet-C's 224 px images to 256 and crop; Hendrycks and the
    toolkit take them as they are (45 points apart on one model): info says which."""
    import torchvision

    from protoview.cli import main
    from tests import _ckpt_fixtures as fx

    make_imagenet_c(tmp_path / "ImageNet-C", severities=(3,))
    path = fx.save(torchvision.models.resnet18().state_dict(), tmp_path / "r18.pt")
    assert main(["info", str(path), f"imagenetc:{tmp_path}:gaussian_noise:3", "--arch",
                 "torchvision:resnet18", "--preprocess", preprocess]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("note:        ImageNet-C preprocessing:"))
    assert says in line and "45 points" in line
