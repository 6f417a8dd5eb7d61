"""Self-supervised checkpoints (SwAV, DeepCluster-v2, MoCo/PCL, SimSiam, DINO, plain backbones)
written by their authors' own classes and saving code (tests/_ssl_fixtures.py) open as
encoders, with their prototypes on the map and SwAV's codes equal to main_swav.py's."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from protoview.core.checkpoint import load_checkpoint
from protoview.core.heads import NoHead
from protoview.errors import CheckpointError, ParameterError
from tests import _ssl_fixtures as sf
from tests.oracles.swav_sinkhorn import distributed_sinkhorn

X = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
X224 = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(2))


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # DINO's nn.utils.weight_norm
        yield


@pytest.fixture(scope="module")
def swav(tmp_path_factory):
    model = sf.swav_model()
    return model, sf.write_swav(tmp_path_factory.mktemp("swav") / "checkpoint.pth.tar", model)


def _npz(path, n=24, labels=True, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {"x": rng.integers(0, 255, (n, 32, 32, 3), dtype=np.uint8)}
    if labels:
        arrays["y"] = rng.integers(0, 3, n)
    np.savez(path, **arrays)
    return str(path)


# ---------------------------------------------------------------------------- SwAV
@torch.no_grad()
def test_swav_opens_as_its_authors_model_computes(swav):
    authors, path = swav
    backbone = load_checkpoint(path, "resnet18")
    projected = load_checkpoint(path, "resnet18", features="projection")
    h = authors.forward_backbone(X)
    z, scores = authors.forward_head(h)
    assert isinstance(backbone.classifier, NoHead) and not backbone.has_head
    assert torch.equal(backbone.featurizer(X), h)  # SwAV's padding layer + conv1 pad 2 = torchvision's pad 3
    assert torch.equal(projected.featurizer(X), z)
    assert torch.equal(projected.projection.scores(projected.featurizer(X)), scores)
    assert torch.equal(backbone.projection.scores(backbone.project(backbone.featurizer(X))), scores)
    assert backbone(X).shape == (3, 0)
    info = backbone.info
    assert info.encoder.summary() == ("SwAV: resnet18 (torchvision) backbone (512-d), projection "
                                      "head 512→16, 10 prototypes")
    assert info.head.kind == "none" and info.format.startswith("SwAV checkpoint")
    assert any("not placed on the map of backbone features" in n for n in info.notes)
    assert "encoder:     features: projection" in projected.info.describe()


def test_swav_resnet50_says_what_the_issue_says(tmp_path):
    from tests.oracles.swav_resnet import resnet50

    torch.manual_seed(0)
    model = resnet50(normalize=True, hidden_mlp=2048, output_dim=128, nmb_prototypes=3000)
    path = sf.write_swav(tmp_path / "swav_rn50.pth.tar", model)
    info = load_checkpoint(path, "resnet50").info
    assert info.encoder.summary() == ("SwAV: resnet50 (torchvision) backbone (2048-d), "
                                      "projection head 2048→128, 3000 prototypes")


@torch.no_grad()
def test_deepcluster_v2_multiprototypes(tmp_path):
    authors = sf.swav_model(nmb_prototypes=[7, 5, 6])
    path = sf.write_swav(tmp_path / "dc.pth.tar", authors)
    model = load_checkpoint(path, "resnet18", features="projection")
    z, outs = authors.forward_head(authors.forward_backbone(X))
    assert model.info.encoder.method == "DeepCluster-v2"
    assert model.info.encoder.prototypes == (7, 5, 6)
    for i, out in enumerate(outs):
        assert torch.equal(model.projection.scores(model.featurizer(X), i), out)


# ---------------------------------------------------------------------------- MoCo / PCL, SimSiam
@torch.no_grad()
def test_pcl_uses_encoder_q_and_its_arch_entry(tmp_path):
    authors = sf.pcl_model()
    path = sf.write_pcl(tmp_path / "checkpoint.pth.tar", authors)
    model = load_checkpoint(path)  # main_pcl.py saves 'arch': no --arch needed
    projected = load_checkpoint(path, features="projection")
    encoder_q = authors.encoder_q
    fc, encoder_q.fc = encoder_q.fc, torch.nn.Identity()
    h = encoder_q(X224)
    assert torch.equal(model.featurizer(X224), h)
    assert torch.equal(projected.featurizer(X224), F.normalize(fc(h), dim=1))
    encoder = model.info.encoder
    assert encoder.method == "MoCo/PCL" and encoder.projection == (512, 16) and not encoder.prototypes
    assert "encoder_q used" in encoder.used
    assert any(i.startswith("encoder_k") for i in encoder.ignored) and "queue" in encoder.ignored
    assert any("from the checkpoint's 'arch' entry" in n for n in model.info.notes)


@torch.no_grad()
def test_simsiam_projector_and_ignored_predictor(tmp_path):
    authors = sf.simsiam_model()
    path = sf.write_simsiam(tmp_path / "checkpoint_0009.pth.tar", authors)
    projected = load_checkpoint(path, features="projection")
    assert torch.equal(projected.featurizer(X224), authors.encoder(X224))  # z, not normalised
    encoder = projected.info.encoder
    assert encoder.method == "SimSiam" and encoder.projection == (512, 32)
    assert encoder.ignored == ("predictor (8 tensors)",)


@torch.no_grad()
def test_plain_backbone_without_fc(tmp_path):
    path, net = sf.write_plain_backbone(tmp_path / "encoder_only.pt")
    model = load_checkpoint(path, "resnet18")
    assert torch.equal(model.featurizer(X), net(X))
    assert model.info.encoder.method == "backbone" and model.projection is None
    with pytest.raises(ParameterError) as err:
        load_checkpoint(path, "resnet18", features="projection")
    assert err.value.where == "--features" and "no projection head" in str(err.value)


# ---------------------------------------------------------------------------- DINO
@pytest.fixture(scope="module")
def dino(tmp_path_factory):
    student, teacher = sf.dino_pair(norm_last_layer=False)
    return student, teacher, sf.write_dino(tmp_path_factory.mktemp("dino") / "checkpoint.pth",
                                           student, teacher)


@torch.no_grad()
@pytest.mark.parametrize("choice", [None, "student"])
def test_dino_vit_teacher_or_student_through_timm_names(dino, choice):
    student, teacher, path = dino
    net = student if choice == "student" else teacher
    model = load_checkpoint(path, dino_weights=choice, features="projection")
    assert model.info.arch == "vit_tiny_patch16_224 (timm)"  # from args: vit_tiny, patch 16
    h = net.backbone(X224)
    z = F.normalize(net.head.mlp(h), dim=-1)
    # timm's fused attention vs DINO's explicit softmax(q k^T * scale): equal up to rounding
    torch.testing.assert_close(model.featurizer(X224), z, atol=1e-5, rtol=0)
    v, g = net.head.last_layer.weight_v, net.head.last_layer.weight_g
    assert torch.equal(model.projection.prototypes(0), torch._weight_norm(v, g, 0))
    torch.testing.assert_close(model.projection.scores(model.featurizer(X224)),
                               net.head(h), atol=1e-5, rtol=0)
    used = model.info.encoder.used
    assert used.startswith(f"DINO: {choice or 'teacher'} weights used")
    assert f"{'teacher' if choice else 'student'} weights" in model.info.encoder.ignored


@torch.no_grad()
def test_dino_resnet_backbone_ddp_teacher(tmp_path):
    student, teacher = sf.dino_pair("resnet18")
    path = sf.write_dino(tmp_path / "checkpoint.pth", student, teacher, arch="resnet18")
    model = load_checkpoint(path)
    assert torch.equal(model.featurizer(X), teacher.backbone(X))
    assert model.info.encoder.summary().startswith("DINO: resnet18 (torchvision) backbone (512-d)")


def test_dino_without_teacher_or_student_is_refused(tmp_path):
    student, teacher = sf.dino_pair()
    path = sf.write_dino(tmp_path / "checkpoint.pth", student, teacher, drop=("student", "teacher"))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert str(path) in str(err.value) and "without 'teacher' or 'student'" in str(err.value)
    only = sf.write_dino(tmp_path / "student_only.pth", student, teacher, drop=("teacher",))
    assert load_checkpoint(only).info.encoder.used.startswith("DINO: student weights used")
    with pytest.raises(CheckpointError, match="pass --dino-weights student"):
        load_checkpoint(only, dino_weights="teacher")
    with pytest.raises(ParameterError, match="teacher or student"):
        load_checkpoint(only, dino_weights="ema")


# ---------------------------------------------------------------------------- bad inputs
def test_swav_prototypes_that_do_not_fit_the_projection(tmp_path):
    model = sf.swav_model()
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    state["module.prototypes.weight"] = torch.randn(10, 8)
    torch.save({"epoch": 1, "state_dict": state}, tmp_path / "bad.pth.tar")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "bad.pth.tar", "resnet18")
    message = str(err.value)
    assert "bad.pth.tar" in message and "(10 x 8) do not fit its projection head" in message
    assert "\n" not in message


def test_features_option_is_checked(swav, tmp_path):
    _, path = swav
    with pytest.raises(ParameterError, match="backbone or projection"):
        load_checkpoint(path, "resnet18", features="logits")
    from tests._ckpt_fixtures import FeaturizerClassifierNet

    classifier = tmp_path / "classifier.pt"
    torch.save(FeaturizerClassifierNet().state_dict(), classifier)
    from tests._ckpt_fixtures import write_arch_file

    arch = write_arch_file(tmp_path / "arch.py", "from tests._ckpt_fixtures import FeaturizerClassifierNet\n"
                                                  "def build(**kw):\n    return FeaturizerClassifierNet()\n")
    with pytest.raises(ParameterError, match="is a classifier"):
        load_checkpoint(classifier, f"{arch}:build", features="projection")


def test_wrong_arch_for_an_encoder_is_one_line(swav):
    _, path = swav
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path, "resnet34")
    assert "SwAV backbone's weights do not fit architecture resnet34" in str(err.value)


# ---------------------------------------------------------------------------- sessions
def _session(path, data, features="projection", preview=True):
    from protoview.core.requests import OpenRequest
    from protoview.core.session import Session

    request = OpenRequest(checkpoint=str(path), data=data, arch="resnet18", features=features,
                          preprocess="size=32", device="cpu")
    return Session.open(request, preview=preview)


def test_swav_codes_equal_main_swav_sinkhorn_on_the_models_outputs(swav, tmp_path):
    from protoview.core.requests import SinkhornRequest

    authors, path = swav
    session = _session(path, _npz(tmp_path / "d.npz"))
    state = session.state
    assert np.array_equal(state.prototypes, session.model.projection.prototypes(0).numpy())
    assert state.proxies.shape == (0, 16) and (state.predictions == -1).all()
    assert "accuracy" not in state.metrics
    state = session.sinkhorn(SinkhornRequest("prototypes"))
    x = torch.stack([session.dataset[i][0] for i in range(len(session.dataset))])
    with torch.no_grad():
        _, out = authors.forward_head(authors.forward_backbone(x))  # SwAV's own outputs
    expected = distributed_sinkhorn(out.clone(), 0.05, 3).numpy()
    q = session.map.sinkhorn[1].Q
    # protoview's sinkhorn_knopp scales by dual potentials (overflow-free) instead of the
    # repeated divisions: equal to rounding, the same codes
    np.testing.assert_allclose(q, expected, atol=1e-5, rtol=0)
    assert np.array_equal(state.assignment, expected.argmax(1))


def test_unlabelled_data_open_with_prototypes_and_codes(swav, tmp_path):
    _, path = swav
    session = _session(path, _npz(tmp_path / "u.npz", labels=False), preview=True)
    session.refresh(fresh_map=False, preview=True)
    assert session.state.labels_known == "none" and len(session.state.prototypes) == 10
    assert len(session.state.centers) == 0


def test_backbone_features_do_not_place_the_prototypes(swav, tmp_path):
    from protoview.core.requests import SinkhornRequest

    _, path = swav
    session = _session(path, _npz(tmp_path / "d.npz"), features="backbone")
    assert session.state.features.shape[1] == 512 and len(session.state.prototypes) == 0
    assert len(session.state.centers) == 3  # labels: class centers as for any model
    with pytest.raises(ParameterError, match="no classifier head, so no proxies"):
        session.sinkhorn(SinkhornRequest("proxies"))


def test_adapt_on_an_encoder_names_the_fix(swav, tmp_path):
    from protoview.core.requests import OpenRequest
    from protoview.core.session import Session

    _, path = swav
    request = OpenRequest(checkpoint=str(path), data=_npz(tmp_path / "d.npz"), arch="resnet18",
                          preprocess="size=32", adapt=True, device="cpu")
    with pytest.raises(ParameterError) as err:
        Session.open(request)
    assert err.value.where == str(path) and "linear probe" in str(err.value)
    assert "SwAV encoder without a classifier head" in str(err.value)


# ---------------------------------------------------------------------------- command line
def test_cli_info_export_and_assign(swav, tmp_path, capsys):
    from protoview.cli import main
    from protoview.core.snapshot import read_snapshot

    _, path = swav
    data = _npz(tmp_path / "d.npz", labels=False)
    common = ["--arch", "resnet18", "--preprocess", "size=32", "--device", "cpu"]
    assert main(["info", str(path), data, "--arch", "resnet18", "--features", "projection"]) == 0
    out = capsys.readouterr().out
    assert "encoder:     SwAV: resnet18 (torchvision) backbone (512-d), projection head 512→16, 10 prototypes" in out
    assert "no classes to match" in out
    snap = tmp_path / "e.h5"
    assert main(["export", str(path), data, *common, "--features", "projection", "--no-map",
                 "--no-cache", "--out", str(snap)]) == 0
    read = read_snapshot(snap)
    assert read.prototypes["vectors"].shape == (10, 16)
    assert main(["assign", str(path), data, *common, "--features", "projection", "--no-cache",
                 "--target", "prototypes"]) == 0
    assert "to the model's 10 SwAV prototypes (SwAV's codes)" in capsys.readouterr().out


def test_compare_on_an_encoder_is_refused(swav, tmp_path, capsys):
    from protoview.cli import main

    _, path = swav
    code = main(["compare", str(path), _npz(tmp_path / "d.npz"), "--arch", "resnet18",
                 "--preprocess", "size=32", "--methods", "none", "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and str(path) in err and "without a classifier head" in err


def test_feature_cache_keys_tell_teacher_student_and_spaces(dino, tmp_path):
    from protoview.core.features import feature_cache_key

    class Data:
        transform = None

        def identity(self):
            return "same data"

    _, _, path = dino
    keys = {feature_cache_key(load_checkpoint(path, dino_weights=w, features=f), Data())
            for w in ("teacher", "student") for f in ("backbone", "projection")}
    assert len(keys) == 4


@torch.no_grad()
def test_dino_released_backbone_with_a_timm_name(tmp_path):
    from tests.oracles.dino_vit import vit_tiny

    torch.manual_seed(0)
    vit = vit_tiny(patch_size=16).eval()
    torch.save(vit.state_dict(), tmp_path / "dino_deittiny16_pretrain.pth")
    model = load_checkpoint(tmp_path / "dino_deittiny16_pretrain.pth", "vit_tiny_patch16_224")
    assert model.info.encoder.method == "backbone"
    torch.testing.assert_close(model.featurizer(X224), vit(X224), atol=1e-5, rtol=0)
