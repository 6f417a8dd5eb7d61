"""GTTA's style-transfer variant (``style_transfer=True``, the toolkit's
``USE_STYLE_TRANSFER``) against the code its authors released it in
(tests/oracles/gtta_reference.py with tests/oracles/toolkit_style_transfer.py, the toolkit
8b2ed63): online logits, every weight of the model, the decoder's weights and the AdaIN
moment buffers equal batch by batch (max difference 0.0), with the decoder pre-trained on the
source data (its random style draws in the same order) or loaded from its file; the variants,
snapshots, and every way to get the files wrong, each refused in one line."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from protoview.core.adapt import _style_transfer as st
from protoview.core.adapt import make_adapter
from protoview.errors import ParameterError
from tests._tta_models import max_difference, moved, tiny_model
from tests.oracles import gtta_reference as authors
from tests.oracles import toolkit_style_transfer as authors_st

CLASSES = 4
SIDE = 16  # the encoder reaches relu4_1 at 2 x 2
BATCH = 4


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    """A random ``vgg_normalised.pth`` in the layout the toolkit loads (He-scaled weights, so
    the features neither vanish nor explode over ten layers)."""
    g = torch.Generator().manual_seed(7)
    state = {}
    for name, value in st.build_vgg().state_dict().items():
        if name.endswith("weight"):
            fan_in = value[0].numel()
            state[name] = torch.randn(value.shape, generator=g) * (2.0 / fan_in) ** 0.5
        else:
            state[name] = torch.randn(value.shape, generator=g) * 0.01
    path = tmp_path_factory.mktemp("adain") / "vgg_normalised.pth"
    torch.save(state, path)
    return str(path)


def _source(n: int = 20, seed: int = 5) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.rand(n, 3, SIDE, SIDE, generator=g), torch.arange(n) % CLASSES)


def _test_batches(n: int, size: int = BATCH) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.rand(size, 3, SIDE, SIDE, generator=g) * 1.5 - 0.2 for _ in range(n)]


def _pair(model, vgg, decoder, **params):
    """The oracle and protoview's adapter, their random draws in the same order: the oracle's
    decoder (a module-level object drawn at import) starts as protoview's; 10 source samples
    in batches of 4, so the loader restarts mid-run with a short batch."""
    params = {"lr": 1e-3, "pretrain_steps": 3, "steps_adain": 2, **params}
    torch.manual_seed(11)
    ours = make_adapter("gtta", copy.deepcopy(model), style_transfer=True, vgg_weights=vgg,
                        decoder=str(decoder), **params)
    authors_st.decoder.load_state_dict(ours.transfer.decoder.state_dict())
    rng = torch.get_rng_state()
    oracle = authors.GTTA(
        model, CLASSES, DataLoader(_source(10), BATCH, shuffle=True), lr=params["lr"],
        steps=params.get("steps", 1), episodic=params.get("episodic", False),
        steps_adain=params["steps_adain"], use_style_transfer=True, ckpt_path_vgg=vgg,
        ckpt_path_dec=str(decoder) + ".oracle" if not decoder.exists() else str(decoder),
        pretrain_steps_adain=params["pretrain_steps"])
    torch.set_rng_state(rng)
    ours.use_source(DataLoader(_source(10), BATCH, shuffle=True))
    return oracle, ours


def _compare(oracle, ours, xs) -> None:
    for step, x in enumerate(xs, start=1):
        state = torch.get_rng_state()
        theirs = oracle(x).detach()
        torch.set_rng_state(state)
        mine = ours.step(x)
        assert max_difference(mine, theirs) == 0.0, step
        theirs_model = oracle.model.state_dict()
        for name, value in ours.model.state_dict().items():
            if name in theirs_model:
                assert torch.equal(value, theirs_model[name]), (step, name)
        for name, value in ours.transfer.decoder.state_dict().items():
            assert torch.equal(value, oracle.adain_model.decoder.state_dict()[name]), (step, name)
        for layer in range(2):
            for k in range(2):
                assert torch.equal(ours.moments[layer][k], oracle.moments_list[layer][k]), step
        assert torch.equal(ours.avg_conf, oracle.avg_conf), step
        assert torch.equal(ours.filtered_pseudos, oracle.filtered_pseudos), step


def _decoders_equal(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


def test_pretrained_decoder_and_adaptation_equal_the_released_code(vgg_file, tmp_path) -> None:
    model = tiny_model(CLASSES, sharp=30.0)
    source = copy.deepcopy(model)
    decoder = tmp_path / "decoder.pth"
    oracle, ours = _pair(model, vgg_file, decoder)
    assert decoder.is_file()  # pre-trained on the source data, saved, loaded back
    mine, theirs = torch.load(decoder)["decoder"], torch.load(str(decoder) + ".oracle")["decoder"]
    assert all(torch.equal(v, theirs[k]) for k, v in mine.items())
    assert _decoders_equal(ours.transfer.decoder, oracle.adain_model.decoder)
    assert not _decoders_equal(ours.transfer.decoder, st.build_decoder())
    _compare(oracle, ours, _test_batches(4))
    assert moved(ours.model, source) > 1e-4
    assert len(ours.moments[1][0]) == 4 * BATCH and ours.moments[1][0].shape[1] == 512


def test_a_decoder_file_is_loaded_and_episodic_steps_equal_the_released_code(
    vgg_file, tmp_path
) -> None:
    decoder = tmp_path / "decoder.pth"
    torch.manual_seed(3)
    st.save_decoder(st.build_decoder(), str(decoder))
    saved = decoder.stat().st_mtime_ns
    oracle, ours = _pair(tiny_model(CLASSES, sharp=30.0), vgg_file, decoder, steps=2,
                         episodic=True, steps_adain=1)
    assert decoder.stat().st_mtime_ns == saved  # loaded, not trained again
    _compare(oracle, ours, _test_batches(3))
    # the released episodic reset keeps the decoder's Adam: one step per batch, three batches
    steps = [float(s["step"]) for s in ours.transfer_optimizer.state.values()]
    assert steps and max(steps) == 3.0
    assert max(float(s["step"]) for s in oracle.adain_model.opt_adain_dec.state.values()) == 3.0


def test_corrected_resets_the_decoders_adam_and_cuts_source_batches(vgg_file, tmp_path) -> None:
    decoder = tmp_path / "decoder.pth"
    torch.manual_seed(3)
    st.save_decoder(st.build_decoder(), str(decoder))
    kw = {"style_transfer": True, "vgg_weights": vgg_file, "decoder": str(decoder),
          "episodic": True, "lr": 1e-3}
    ours = make_adapter("gtta", tiny_model(CLASSES, sharp=30.0), variant="corrected", **kw)
    ours.use_source(DataLoader(_source(), 8, shuffle=True))
    for x in _test_batches(3):
        ours.step(x)
    assert max(float(s["step"]) for s in ours.transfer_optimizer.state.values()) == 1.0
    # a first test batch shorter than the source batch: the released index runs out of styles
    short = _test_batches(1, size=4)[0]
    reference = make_adapter("gtta", tiny_model(CLASSES, sharp=30.0), **kw)
    reference.use_source(DataLoader(_source(), 8, shuffle=False))
    with pytest.raises(ParameterError) as info:
        reference.step(short)
    assert info.value.where == "variant" and "\n" not in str(info.value)
    assert "variant=corrected" in str(info.value)
    corrected = make_adapter("gtta", tiny_model(CLASSES, sharp=30.0), variant="corrected", **kw)
    corrected.use_source(DataLoader(_source(), 8, shuffle=False))
    assert corrected.step(short).shape == (4, CLASSES)


def test_snapshot_restore_and_reset_with_style_transfer(vgg_file, tmp_path) -> None:
    decoder = tmp_path / "decoder.pth"
    torch.manual_seed(3)
    st.save_decoder(st.build_decoder(), str(decoder))
    ours = make_adapter("gtta", tiny_model(CLASSES, sharp=30.0), style_transfer=True,
                        vgg_weights=vgg_file, decoder=str(decoder), lr=1e-3)
    loaded = copy.deepcopy(ours.transfer.decoder.state_dict())
    ours.use_source(DataLoader(_source(), BATCH, shuffle=False))
    xs = _test_batches(4)
    ours.step(xs[0])
    snap = ours.snapshot()
    assert ours.state_bytes() > sum(v.numel() * 4 for v in ours.model.state_dict().values())
    first = [ours.step(x) for x in xs[1:3]]
    moments = [m.clone() for m in ours.moments[1]]
    ours.restore(snap)
    assert len(ours.moments[0][0]) == BATCH
    ours.use_source(DataLoader(_source(), BATCH, shuffle=False))  # the source batches again
    twin = make_adapter("gtta", tiny_model(CLASSES, sharp=30.0), style_transfer=True,
                        vgg_weights=vgg_file, decoder=str(decoder), lr=1e-3)
    twin.use_source(DataLoader(_source(), BATCH, shuffle=False))
    twin.step(xs[0])
    twin.use_source(DataLoader(_source(), BATCH, shuffle=False))
    again, expected = [ours.step(x) for x in xs[1:3]], [twin.step(x) for x in xs[1:3]]
    for a, b, c in zip(first, again, expected, strict=True):
        assert torch.equal(b, c) and a.shape == b.shape
    assert all(torch.equal(a, b) for a, b in zip(moments, twin.moments[1], strict=True))
    ours.reset()
    assert len(ours.moments[0][0]) == 0 and not ours.transfer_optimizer.state
    assert _decoders_equal(ours.transfer.decoder, _as_module(loaded))


def _as_module(state) -> nn.Module:
    decoder = st.build_decoder()
    decoder.load_state_dict(state)
    return decoder


def test_the_files_it_needs_are_refused_in_one_line(vgg_file, tmp_path) -> None:
    model = tiny_model(CLASSES)
    decoder = str(tmp_path / "decoder.pth")
    cases = [
        ({"decoder": decoder}, "vgg_weights", "vgg_weights=PATH"),
        ({"vgg_weights": vgg_file}, "decoder", "decoder=PATH"),
        ({"vgg_weights": str(tmp_path / "nothing.pth"), "decoder": decoder}, "vgg_weights",
         "nothing.pth: no such file"),
        ({"vgg_weights": vgg_file, "decoder": str(tmp_path / "no" / "d.pth")}, "decoder",
         "does not exist"),
    ]
    wrong = tmp_path / "wrong.pth"
    state = torch.load(vgg_file)
    torch.save({k: v for k, v in state.items() if k != "35.bias"}, wrong)
    cases.append(({"vgg_weights": str(wrong), "decoder": decoder}, "vgg_weights",
                  "1 keys missing (35.bias...)"))
    shape = tmp_path / "shape.pth"
    torch.save({**state, "0.weight": torch.zeros(3, 3, 3, 3)}, shape)
    cases.append(({"vgg_weights": str(shape), "decoder": decoder}, "vgg_weights",
                  "0.weight has shape (3, 3, 3, 3), expected (3, 3, 1, 1)"))
    (tmp_path / "text.pth").write_text("not a checkpoint")
    cases.append(({"vgg_weights": str(tmp_path / "text.pth"), "decoder": decoder},
                  "vgg_weights", "cannot be read"))
    cases.append(({"vgg_weights": vgg_file, "decoder": vgg_file}, "decoder",
                  "is not a decoder saved by GTTA"))
    for params, where, said in cases:
        with pytest.raises(ParameterError) as info:
            make_adapter("gtta", model, style_transfer=True, **params)
        assert info.value.where == where, params
        assert said in str(info.value) and "\n" not in str(info.value), str(info.value)
    assert make_adapter("gtta", model, vgg_weights="unused.pth").transfer is None  # off


def test_images_it_cannot_take_are_refused_in_one_line(vgg_file, tmp_path) -> None:
    ours = make_adapter("gtta", tiny_model(CLASSES), style_transfer=True, vgg_weights=vgg_file,
                        decoder=str(tmp_path / "decoder.pth"), pretrain_steps=1)
    odd = TensorDataset(torch.rand(8, 3, 12, 12), torch.arange(8) % CLASSES)
    with pytest.raises(ParameterError) as info:
        ours.use_source(DataLoader(odd, 4))
    assert info.value.where == "style_transfer" and "multiples of 8" in str(info.value)
    ours.use_source(DataLoader(_source(), 8))
    with pytest.raises(ParameterError) as info:
        ours.step(torch.rand(8, 3, 12, 12))
    assert info.value.where == "style_transfer" and "\n" not in str(info.value)


def test_the_command_line_runs_the_style_transfer(vgg_file, tmp_path, capsys) -> None:
    import importlib.util

    from protoview.cli import main
    from tests._benchmark_fixtures import make_cifar_c
    from tests._ckpt_fixtures import write_arch_file
    from tests.test_run_order import ARCH

    arch = write_arch_file(tmp_path / "net.py", ARCH)
    spec = importlib.util.spec_from_file_location("net_for_gtta_style", arch)
    net = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(net)
    torch.manual_seed(0)
    torch.save(net.build().state_dict(), tmp_path / "c10.pt")
    make_cifar_c(tmp_path / "CIFAR-10-C", ("gaussian_noise", "fog"), n=8)
    decoder = tmp_path / "decoder.pth"
    argv = ["adapt", str(tmp_path / "c10.pt"), f"cifar10c:{tmp_path}:fog:5", "--arch",
            f"{arch}:build", "--split", "5", "--preprocess", "size=16,mean=0,std=1",
            "--method", "gtta", "--batch-size", "4", "--device", "cpu", "--steps", "2",
            "--source-data", f"cifar10c:{tmp_path}:gaussian_noise:1",
            "--param", "style_transfer=true", "--param", f"vgg_weights={vgg_file}",
            "--param", f"decoder={decoder}", "--param", "pretrain_steps=2"]
    assert main(argv) == 0
    assert "after 2 steps of gtta" in capsys.readouterr().out
    assert decoder.is_file()
    assert main(argv[:-6]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "error: vgg_weights: " in errors[0]
    assert main(argv[:-5] + [f"vgg_weights={tmp_path / 'none.pth'}", "--param",
                             f"decoder={decoder}"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "none.pth: no such file" in errors[0]
