"""ViT, Swin and ConvNeXt through timm (the real library, a test dependency): they open as
checkpoints, and the entropy methods adapt what their authors adapt on them.

Tent on a model without BatchNorm equals the toolkit's Tent (tests/oracles/toolkit_tent.py,
mariodoebler/test-time-adaptation 8b2ed63: LayerNorm / GroupNorm scale and shift, the whole
model in eval mode) batch by batch; EATA takes the same parameters; SAR takes the authors'
ViT choice (blocks 9-11 and the final norm left out).
"""

from __future__ import annotations

import copy

import pytest
import torch

from protoview.core.adapt import make_adapter
from protoview.core.adapt.sar import sar_parameters
from protoview.core.checkpoint import load_checkpoint
from protoview.errors import ParameterError
from tests import _ckpt_fixtures as fx
from tests._tta_models import max_difference, moved, tiny_model, without_norm_layers
from tests.oracles import sar_reference
from tests.oracles import toolkit_tent as toolkit

timm = pytest.importorskip("timm")

#: Small members of each family (random weights), sized for a CPU test.
BUILDS = {
    "vit": "timm.create_model('vit_tiny_patch16_224', img_size=32, patch_size=8, num_classes=5)",
    "swin": (
        "timm.create_model('swin_tiny_patch4_window7_224', img_size=32, patch_size=4, "
        "window_size=4, embed_dim=24, depths=(1, 1), num_heads=(2, 2), num_classes=5)"
    ),
    "convnext": "timm.create_model('convnext_atto', num_classes=5)",
}


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _opened(tmp_path, family: str):
    """(protoview's model opened from the saved weights, the timm model they came from)."""
    arch = fx.write_arch_file(
        tmp_path / f"{family}_arch.py", f"import timm\n\ndef build():\n    return {BUILDS[family]}\n"
    )
    torch.manual_seed(0)
    original = eval(BUILDS[family], {"timm": timm}).eval()  # noqa: S307 - the literal above
    path = fx.save(original.state_dict(), tmp_path / f"{family}.pt")
    return load_checkpoint(path, f"{arch}:build", preprocess="none"), original


def _batches(n: int, size: int = 8) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return [torch.randn(size, 3, 32, 32, generator=g) for _ in range(n)]


@pytest.mark.parametrize("family", sorted(BUILDS))
def test_timm_backbones_open_with_timms_logits(tmp_path, family: str) -> None:
    model, original = _opened(tmp_path, family)
    x = _batches(1, 2)[0]
    with torch.no_grad():
        assert max_difference(model.eval()(x), original(x)) < 1e-5
    assert "timm get_classifier" in " ".join(model.info.notes) or model.info.head.num_classes == 5


def test_a_named_timm_vit_opens_at_its_own_size(tmp_path) -> None:
    torch.manual_seed(0)
    original = timm.create_model("vit_tiny_patch16_224", num_classes=3).eval()
    path = fx.save(original.state_dict(), tmp_path / "vit.pt")
    model = load_checkpoint(path, "timm:vit_tiny_patch16_224")
    assert model.info.transform is not None and model.info.transform.input_size == (224, 224)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert max_difference(model.eval()(x), original(x)) < 1e-5


@pytest.mark.parametrize("family", sorted(BUILDS))
def test_tent_on_layernorm_backbones_equals_the_toolkits_tent(tmp_path, family: str) -> None:
    model, _ = _opened(tmp_path, family)
    source = copy.deepcopy(model)
    oracle = toolkit.Tent(copy.deepcopy(model), lr=1e-2)
    adapter = make_adapter("tent", model, lr=1e-2)
    assert len(adapter.updated_parameter_names) == len(oracle.param_names)
    assert {n.split(".", 1)[1] for n in adapter.updated_parameter_names} == {
        n.split(".", 1)[1] for n in oracle.param_names
    }  # the norm layers' scale and shift, nothing else
    for step, x in enumerate(_batches(3), start=1):
        ours = adapter.step(x)
        theirs = oracle(x).detach()
        assert max_difference(ours, theirs) == 0.0, step
        theirs_state = oracle.model.state_dict()
        for name, value in adapter.model.state_dict().items():
            assert torch.equal(value, theirs_state[name]), (step, name)
    assert moved(model, source) > 1e-5


def test_tent_on_a_group_norm_cnn_equals_the_toolkits_tent() -> None:
    model = tiny_model(10, sharp=4.0, norm="gn")  # GroupNorm + LayerNorm, no BatchNorm
    oracle = toolkit.Tent(copy.deepcopy(model), lr=1e-2)
    adapter = make_adapter("tent", model, lr=1e-2)
    g = torch.Generator().manual_seed(5)
    for step in range(3):
        x = torch.randn(16, 3, 6, 6, generator=g)
        assert max_difference(adapter.step(x), oracle(x).detach()) == 0.0, step


def test_on_batchnorm_models_tent_keeps_to_batchnorm() -> None:
    """The TSD repository's and the authors' Tent: BatchNorm only (unchanged)."""
    model = tiny_model(10)
    adapter = make_adapter("tent", model)
    assert adapter.updated_parameter_names
    assert all(".1." in n or ".4." in n for n in adapter.updated_parameter_names)


def test_eata_adapts_the_norm_layers_of_a_vit(tmp_path) -> None:
    model, _ = _opened(tmp_path, "vit")
    source = copy.deepcopy(model)
    adapter = make_adapter("eata", model, lr=1e-2, fisher_alpha=0.0, e_margin=10.0)
    tent = make_adapter("tent", copy.deepcopy(model))
    assert adapter.updated_parameter_names == tent.updated_parameter_names
    for x in _batches(2):
        adapter.step(x)
    assert moved(model, source) > 1e-6


def test_sar_takes_the_authors_vit_choice(tmp_path) -> None:
    torch.manual_seed(0)
    bare = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, num_classes=5)
    model, _ = _opened(tmp_path, "vit")
    ours = [n.split(".", 1)[1] for n, _ in sar_parameters(model)]
    theirs = sar_reference.collect_params(bare)[1]
    assert ours == theirs
    assert not any(n.startswith(("blocks.9.", "blocks.10.", "blocks.11.", "norm.")) for n in ours)


def test_a_model_without_norm_layers_is_refused_in_one_line() -> None:
    model = without_norm_layers(tiny_model(10))
    for method in ("tent", "eata"):
        with pytest.raises(ParameterError, match="adapts the scale and shift of BatchNorm layers"):
            make_adapter(method, copy.deepcopy(model))


def test_a_name_both_libraries_know_loads_what_the_weights_fit_and_says_so(tmp_path) -> None:
    """--arch efficientnet_b0 on timm weights loaded nothing (keys differ from torchvision's);
    --arch resnet18 on timm weights (keys identical) loads torchvision's, with a note."""
    torch.manual_seed(0)
    original = timm.create_model("efficientnet_b0", num_classes=4).eval()
    path = fx.save(original.state_dict(), tmp_path / "effnet.pt")
    model = load_checkpoint(path, "efficientnet_b0")
    assert "timm" in model.info.arch
    assert any("fit timm's efficientnet_b0, not torchvision's" in n for n in model.info.notes)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert max_difference(model.eval()(x), original(x)) < 1e-5
    resnet = timm.create_model("resnet18", num_classes=4).eval()
    path = fx.save(resnet.state_dict(), tmp_path / "r18.pt")
    model = load_checkpoint(path, "resnet18")
    assert "torchvision" in model.info.arch
    assert any("pass --arch timm:resnet18" in n for n in model.info.notes)
    quiet = load_checkpoint(path, "torchvision:resnet18")
    assert not any("timm" in n for n in quiet.info.notes)
