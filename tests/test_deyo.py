"""DeYO against the authors' code (tests/oracles/deyo_reference.py, Jhyun17/DeYO 3d7d289).

Online logits batch by batch and the weights after: max difference 0.0, on random BN and
GN/LN models, with torch's global generator seeded alike before each side's step (the
patch shuffle's permutations). Also: the toolkit's port (tests/oracles/toolkit_deyo_memo.py)
equals it with the authors' optimiser and differs with its own (Nesterov).
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from protoview.core.adapt import make_adapter
from protoview.core.adapt.deyo import DeYO, patches_to_rows, rows_to_patches
from protoview.core.model import SplitModel
from protoview.errors import ParameterError
from tests._tta_models import max_difference, moved, tiny_model
from tests.oracles import deyo_reference as authors
from tests.oracles import toolkit_deyo_memo as toolkit

CLASSES = 10

# The authors' softmax_entropy is TorchScript; spend its profiling run (see test_tsd_repo_methods).
authors.softmax_entropy(torch.ones(2, 3, requires_grad=True)).sum().backward()


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def images(n: int, size: int | tuple[int, int] = 8, count: int = 32, seed: int = 1):
    height, width = (size, size) if isinstance(size, int) else size
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(count, 3, height, width, generator=g) * 2 + 0.5 for _ in range(n)]


def compare(oracle, adapter: DeYO, xs: list[torch.Tensor]) -> list[int]:
    """Equal online logits, counts and weights at every batch; returns the updates' sizes."""
    kept = []
    for step, x in enumerate(xs, start=1):
        torch.manual_seed(1000 + step)
        ours = adapter.step(x)
        torch.manual_seed(1000 + step)
        theirs, backward, final_backward = oracle(x, step - 1)
        assert max_difference(ours, theirs.detach()) == 0.0, f"step {step}"
        assert (adapter.last_reliable, adapter.last_selected) == (backward, final_backward)
        kept.append(final_backward)
        theirs_state = oracle.model.state_dict()
        for name, value in adapter.model.state_dict().items():
            if name in theirs_state:  # configure_model deletes the BN running statistics
                assert torch.equal(value, theirs_state[name]), (step, name)
    return kept


@pytest.mark.parametrize(
    ("head", "norm", "sharp", "size"),
    [("linear", "bn", 60.0, 8), ("linear", "bn", 60.0, 6), ("cosine", "bn", 6.0, 8),
     ("linear", "gn", 20.0, 8)],
)  # fmt: skip
def test_deyo_equals_the_authors_code(head: str, norm: str, sharp: float, size: int) -> None:
    # size 6 is no multiple of patch_len 4: the shuffle resizes to 4 x 4 and back
    model = tiny_model(CLASSES, head, sharp=sharp, norm=norm)
    source = copy.deepcopy(model)
    oracle = authors.build(copy.deepcopy(model), CLASSES, lr=1e-2)
    adapter = make_adapter("deyo", model, lr=1e-2)
    kept = compare(oracle, adapter, images(5, size))
    assert 0 < sum(kept) < 5 * 32  # both filters kept some samples, not all
    assert moved(model, source) > 1e-4
    assert list(adapter.updated_parameter_names) == authors.collect_params(oracle.model)[1]


@pytest.mark.parametrize(
    "changes",
    [{"aug_type": "pixel"},
     {"aug_type": "occ", "occlusion_size": 4, "row_start": 2, "column_start": 3},
     {"patch_len": 2, "plpd_threshold": 0.1},
     {"filter_ent": False, "reweight_plpd": False},
     {"filter_plpd": False, "reweight_ent": False, "margin": 0.3, "margin_e0": 0.2}],
)  # fmt: skip
def test_every_option_equals_the_authors_code(changes: dict) -> None:
    model = tiny_model(CLASSES, sharp=60.0)
    args = {k: v for k, v in changes.items() if k not in ("margin", "margin_e0")}
    if "margin" in changes:  # the authors' options are fractions of ln C
        args["deyo_margin"] = changes["margin"] / math.log(CLASSES)
        args["deyo_margin_e0"] = changes["margin_e0"] / math.log(CLASSES)
    oracle = authors.build(copy.deepcopy(model), CLASSES, lr=1e-2, **args)
    compare(oracle, make_adapter("deyo", model, lr=1e-2, **changes), images(3))


@pytest.mark.parametrize("extra", [{"steps": 2}, {"episodic": True}])
def test_steps_and_episodic_equal_the_authors_code(extra: dict) -> None:
    model = tiny_model(CLASSES, sharp=60.0)
    oracle = authors.build(copy.deepcopy(model), CLASSES, lr=1e-2, **extra)
    compare(oracle, make_adapter("deyo", model, lr=1e-2, **extra), images(3))


def test_defaults_are_the_authors_config() -> None:
    model = tiny_model(CLASSES, sharp=60.0)
    oracle = authors.build(copy.deepcopy(model), CLASSES)  # lr 0.00025 for ResNets, bs >= 32
    adapter = make_adapter("deyo", model)
    compare(oracle, adapter, images(2))
    args = authors.default_args(CLASSES)
    assert (adapter.patch_len, adapter.plpd_threshold, adapter.aug_type) == (
        args.patch_len, args.plpd_threshold, args.aug_type
    )


def test_non_square_images_reference_and_corrected() -> None:
    model = tiny_model(CLASSES, sharp=60.0)
    xs = images(2, (8, 12))
    oracle = authors.build(copy.deepcopy(model), CLASSES, lr=1e-2)
    reference = make_adapter("deyo", copy.deepcopy(model), lr=1e-2)
    compare(oracle, reference, xs)  # the authors' shuffle returns 12 x 12 images

    seen = []
    corrected = make_adapter("deyo", copy.deepcopy(model), lr=1e-2, variant="corrected")
    corrected.model.featurizer.register_forward_pre_hook(lambda _m, a: seen.append(a[0].shape))
    torch.manual_seed(0)
    corrected.step(xs[0])
    assert [tuple(s[-2:]) for s in seen] == [(8, 12), (8, 12)]

    pixel = make_adapter("deyo", copy.deepcopy(model), aug_type="pixel")
    with pytest.raises(ParameterError, match="square") as info:
        pixel.step(xs[0])
    assert info.value.where == "variant"
    make_adapter("deyo", model, aug_type="pixel", variant="corrected").step(xs[0])


def test_the_patch_shuffle_equals_einops() -> None:
    einops = pytest.importorskip("einops")
    x = torch.randn(5, 3, 12, 8)
    rows = patches_to_rows(x, 4)
    assert torch.equal(rows, einops.rearrange(x, "b c (ps1 h) (ps2 w) -> b (ps1 ps2) c h w",
                                              ps1=4, ps2=4))
    back = einops.rearrange(rows, "b (ps1 ps2) c h w -> b c (ps1 h) (ps2 w)", ps1=4, ps2=4)
    assert torch.equal(rows_to_patches(rows, 4), back) and torch.equal(back, x)
    for pattern in ("b c (ps1 h) (ps2 w) -> b (ps1 ps2) c h w",):
        assert torch.equal(authors.rearrange(x, pattern, ps1=4, ps2=4),
                           einops.rearrange(x, pattern, ps1=4, ps2=4))


def test_the_toolkit_equals_the_authors_with_their_sgd_not_with_its_own() -> None:
    model = tiny_model(CLASSES, sharp=60.0)
    xs = images(3)

    def run_toolkit(nesterov: bool) -> tuple[list[torch.Tensor], nn.Module]:
        cfg = toolkit.make_cfg(**{"OPTIM.METHOD": "SGD", "OPTIM.LR": 1e-2,
                                  "OPTIM.NESTEROV": nesterov})  # fmt: skip
        method = toolkit.DeYO(cfg, copy.deepcopy(model), CLASSES)
        outs = []
        for step, x in enumerate(xs, start=1):
            torch.manual_seed(1000 + step)
            outs.append(method(x).detach())
        return outs, method.model

    adapter = make_adapter("deyo", copy.deepcopy(model), lr=1e-2)
    ours = []
    for step, x in enumerate(xs, start=1):
        torch.manual_seed(1000 + step)
        ours.append(adapter.step(x))
    same, same_model = run_toolkit(nesterov=False)
    assert all(max_difference(a, b) == 0.0 for a, b in zip(ours, same, strict=True))
    assert all(torch.equal(p, q) for p, q in
               zip(adapter.model.parameters(), same_model.parameters(), strict=True))
    other, _ = run_toolkit(nesterov=True)  # the toolkit's default SGD
    assert max_difference(ours[-1], other[-1]) > 0.0


def test_no_sample_left_takes_no_step() -> None:
    model = tiny_model(CLASSES, sharp=0.1)  # entropies near ln C: the entropy filter keeps none
    source = copy.deepcopy(model)
    adapter = make_adapter("deyo", model)
    adapter.step(images(1)[0])
    assert adapter.last_reliable == 0 and adapter.last_selected == 0
    assert math.isnan(adapter.last_loss) and moved(model, source) == 0.0


def test_snapshot_restore_and_reset() -> None:
    adapter = make_adapter("deyo", tiny_model(CLASSES, sharp=60.0), lr=1e-2)
    xs = images(4)
    adapter.step(xs[0])
    snap = adapter.snapshot()
    after = []
    for i, x in enumerate(xs[1:]):
        torch.manual_seed(i)
        after.append(adapter.step(x))
    adapter.restore(snap)
    for i, x in enumerate(xs[1:]):
        torch.manual_seed(i)
        assert torch.equal(after[i], adapter.step(x))
    adapter.reset()
    assert adapter.steps_done == 0 and len(adapter.optimizer.state) == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [("lr", 0.0), ("margin", 0.0), ("margin_e0", -1.0), ("plpd_threshold", float("nan")),
     ("aug_type", "rotate"), ("patch_len", 0), ("occlusion_size", 0), ("row_start", -1),
     ("column_start", 1.5), ("filter_ent", 1), ("reweight_plpd", "yes"), ("steps", 0),
     ("episodic", None), ("variant", "fixed")],
)  # fmt: skip
def test_bad_parameters_are_named(name: str, value: object) -> None:
    with pytest.raises(ParameterError) as info:
        make_adapter("deyo", tiny_model(CLASSES), **{name: value})
    assert info.value.where == name


def test_a_model_without_norm_layers_is_refused() -> None:
    with pytest.raises(ParameterError, match="BatchNorm2d, LayerNorm or GroupNorm") as info:
        make_adapter("deyo", SplitModel(nn.Flatten(), nn.Linear(108, 3)))
    assert info.value.where == "method"


@pytest.mark.parametrize(
    ("x", "changes", "where", "words"),
    [(torch.randn(4, 3, 6), {}, "batch", "(N, C, H, W)"),
     (torch.randn(4, 3, 3, 8), {}, "patch_len", "3 x 8"),
     (torch.randn(4, 3, 8, 8), {"aug_type": "occ"}, "occlusion_size", "does not fit")],
)  # fmt: skip
def test_batches_it_cannot_shuffle_are_refused(x, changes, where: str, words: str) -> None:
    adapter = make_adapter("deyo", tiny_model(CLASSES, sharp=60.0), **changes)
    with pytest.raises(ParameterError, match=words.replace("(", r"\(").replace(")", r"\)")) as info:
        adapter.step(x)
    assert info.value.where == where
