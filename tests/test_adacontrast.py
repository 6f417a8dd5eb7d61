"""AdaContrast against the authors' code (tests/oracles/adacontrast_reference.py, DianCh/AdaContrast
c3c8b88) and the toolkit's (tests/oracles/toolkit_adacontrast.py, 8b2ed63).

Given the same views and the same bank, batch by batch: the online logits (max difference
0.0), the student's and the momentum model's weights and buffers, the MoCo queue and its
pointer, the memory bank and its pointer are equal, on random BN and GN/LN models with
linear and cosine heads. The views are drawn as the toolkit's PIL pipeline draws them.
"""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest
import torch
from PIL import Image

from protoview.core.adapt import AdaptRun, make_adapter
from protoview.core.adapt._adacontrast_views import Views, strong_view, weak_view
from protoview.core.adapt.adacontrast import AdaContrast
from protoview.core.model import SplitModel
from protoview.core.preprocess import TransformSpec
from protoview.errors import ParameterError
from tests._tta_models import DIM, batches, max_difference, moved, tiny_model
from tests.oracles import adacontrast_reference as authors
from tests.oracles import toolkit_adacontrast as toolkit

CLASSES = 10


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def seeded(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)


def pure_views(adapter: AdaContrast, x: torch.Tensor):
    """The views a step draws (``views`` changes no state of the adapter)."""
    return adapter.views(x)


def assert_same_state(adapter: AdaContrast, student, momentum, step) -> None:
    for name, value in student.state_dict().items():
        assert torch.equal(adapter.model.state_dict()[name], value), (step, name)
    for name, value in momentum.state_dict().items():
        assert torch.equal(adapter.momentum_model.state_dict()[name], value), (step, name)


class Loader(list):
    """``eval_and_label_dataset``'s loader: (images, labels, indices) and ``dataset.item_list``."""

    def __init__(self, xs: list[torch.Tensor]) -> None:
        n = sum(len(x) for x in xs)
        start = 0
        for x in xs:
            idxs = torch.arange(start, start + len(x))
            self.append((x, torch.zeros(len(x), dtype=torch.long), idxs))
            start += len(x)
        self.dataset = type("D", (), {"item_list": [("p", 0, "f")] * n, "__len__": lambda s: n})()


def run_against_authors(model, fill, xs, variant="reference", **params):
    """Our steps and the authors' ``train_epoch`` batch by batch; returns the adapter."""
    queue, bank = params.pop("queue_size", 48), params.pop("bank_size", 80)
    adapter = make_adapter(
        "adacontrast", copy.deepcopy(model), queue_size=queue, bank_size=bank,
        variant=variant, **params,
    )  # fmt: skip
    student, momentum = copy.deepcopy(model), copy.deepcopy(model)
    args = authors.make_args(
        queue_size=bank, lr=params.get("lr", 2e-4), alpha=params.get("alpha", 1.0),
        eta=params.get("eta", 1.0), contrast_type=params.get("contrast_type", "class_aware"),
        ce_sup_type=params.get("ce_sup_type", "weak_strong"),
        dist_type=params.get("dist_type", "cosine"),
    )  # fmt: skip
    args.model_tta.queue_size = queue
    seeded(5)
    adapter.fill_banks(fill)
    evaluator, _ = authors.build(student, momentum, CLASSES, DIM, args)
    seeded(5)
    _, banks = authors.eval_and_label_dataset(Loader(fill), evaluator, None, args)
    assert torch.equal(adapter.banks["features"], banks["features"])
    assert torch.equal(adapter.banks["probs"], banks["probs"])
    for step, x in enumerate(xs, start=1):
        seeded(100 + step)
        ours = adapter.step(x)  # the first step draws the queue, then the views
        seeded(100 + step)
        if step == 1:  # the authors draw the queue when they build AdaMoCo
            oracle, optimizer = authors.build(student, momentum, CLASSES, DIM, args)
        views = pure_views(adapter, x)
        authors.train_epoch([(list(views), None, torch.arange(len(x)))], oracle, banks,
                            optimizer, 0, args)
        oracle.eval()
        with torch.no_grad():
            _, theirs = oracle(x, cls_only=True)
        assert max_difference(ours, theirs) == 0.0, step
        assert_same_state(adapter, student, momentum, step)
        assert torch.equal(adapter.mem_feat, oracle.mem_feat), step
        assert torch.equal(adapter.mem_labels, oracle.mem_labels), step
        assert adapter.queue_ptr == oracle.queue_ptr, step
        assert torch.equal(adapter.banks["features"], banks["features"]), step
        assert torch.equal(adapter.banks["probs"], banks["probs"]), step
        assert adapter.banks["ptr"] == banks["ptr"], step
    return adapter


@pytest.mark.parametrize(
    ("head", "norm", "sharp"), [("linear", "bn", 4.0), ("cosine", "bn", 2.0), ("linear", "gn", 4.0)]
)
def test_steps_equal_the_authors_train_epoch(head: str, norm: str, sharp: float) -> None:
    model = tiny_model(CLASSES, head, sharp=sharp, norm=norm)
    xs = batches(6, seed=3)
    adapter = run_against_authors(model, batches(3, seed=2), xs, lr=1e-2)
    assert moved(adapter.model, model) > 1e-3
    assert moved(adapter.momentum_model, model) > 1e-6
    assert adapter.queue_ptr == (6 * 32) % 48  # the queue went round
    assert adapter.banks["ptr"] == (6 * 32) % 80 and adapter.bank_capacity == 80


@pytest.mark.parametrize(
    "params",
    [{"eta": 0.0}, {"contrast_type": "all", "dist_type": "euclidean"},
     {"ce_sup_type": "weak_weak", "alpha": 0.5}],
)  # fmt: skip
def test_options_equal_the_authors_code(params: dict) -> None:
    model = tiny_model(CLASSES, sharp=4.0)
    run_against_authors(model, batches(3, seed=2)[:2], batches(3, seed=3), lr=1e-2, **params)


def test_defaults_are_the_authors_configs() -> None:
    adapter = make_adapter("adacontrast", tiny_model(CLASSES))
    args = authors.make_args()
    assert (adapter.lr, adapter.sgd_momentum, adapter.weight_decay, adapter.nesterov) == (
        args.optim.lr, args.optim.momentum, args.optim.weight_decay, args.optim.nesterov
    )
    assert [g["lr"] for g in adapter.optimizer.param_groups] == [2e-4, 2e-4 * 10]
    assert (adapter.key_momentum, adapter.temperature, adapter.queue_size) == (
        args.model_tta.m, args.model_tta.T_moco, args.model_tta.queue_size
    )
    learn = args.learn
    assert (adapter.alpha, adapter.beta, adapter.eta, adapter.num_neighbors) == (
        learn.alpha, learn.beta, learn.eta, learn.num_neighbors
    )
    assert (adapter.dist_type, adapter.contrast_type, adapter.ce_sup_type) == (
        learn.dist_type, learn.contrast_type, learn.ce_sup_type
    )
    cfg = toolkit.make_cfg()
    assert adapter.bank_size == cfg.ADACONTRAST.QUEUE_SIZE and adapter.warmup_samples == 1024


def run_against_toolkit(model, xs, capacity=96, steps=1):
    """Our steps (toolkit settings) and the toolkit's ``forward`` batch by batch."""
    adapter = make_adapter(
        "adacontrast", copy.deepcopy(model), queue_size=capacity, bank_size=capacity,
        warmup_samples=64, head_lr_factor=1.0, key_shuffle=False, lr=1e-2, steps=steps,
    )  # fmt: skip
    split = copy.deepcopy(model)
    cfg = toolkit.make_cfg(
        ADACONTRAST__QUEUE_SIZE=capacity, OPTIM__LR=1e-2, OPTIM__STEPS=steps
    )
    for step, x in enumerate(xs, start=1):
        seeded(step)
        ours = adapter.step(x)
        seeded(step)
        if step == 1:
            theirs_method = toolkit.AdaContrast(cfg, split, CLASSES)
            theirs_method.first_X_samples = 1024 - 64  # its literal 1024: warm-up ends alike
        views = pure_views(adapter, x)
        theirs = theirs_method([x, *views])
        assert max_difference(ours, theirs) == 0.0, step
        for name, value in split.state_dict().items():
            assert torch.equal(adapter.model.state_dict()[name], value), (step, name)
        theirs_momentum = list(theirs_method.momentum_model.state_dict().values())
        for a, b in zip(adapter.momentum_model.state_dict().values(), theirs_momentum, strict=True):
            assert torch.equal(a, b), step
        mo = theirs_method.model
        assert torch.equal(adapter.mem_feat, mo.mem_feat) and adapter.queue_ptr == mo.queue_ptr
        assert torch.equal(adapter.mem_labels, mo.mem_labels), step
        banks = theirs_method.banks
        assert torch.equal(adapter.banks["features"], banks["features"]), step
        assert torch.equal(adapter.banks["probs"], banks["probs"]), step
        assert adapter.banks["ptr"] == banks["ptr"], step
    return adapter


@pytest.mark.parametrize("norm", ["bn", "gn"])
def test_steps_equal_the_toolkits_with_its_settings(norm: str) -> None:
    model = tiny_model(CLASSES, sharp=4.0, norm=norm)
    adapter = run_against_toolkit(model, batches(6, seed=4))
    assert adapter.samples_seen == 64  # two batches by argmax, then the neighbours
    # the toolkit's growing bank: 32, 64, 96 rows, then its pointer (one batch behind)
    # overwrote the newest batch first, then the oldest
    assert adapter.banks["features"].shape == (96, DIM) and adapter.banks["ptr"] == 64


def test_steps_two_equal_the_toolkits() -> None:
    run_against_toolkit(tiny_model(CLASSES, sharp=4.0), batches(3, seed=4), steps=2)


def test_corrected_masks_with_the_labels_of_the_features_compared(monkeypatch) -> None:
    """``corrected`` = the authors' code with ``instance_loss`` given the queue's labels from
    before the batch entered it (the labels of the features its logits were computed with)."""
    before: list[torch.Tensor] = []
    update_memory = authors.AdaMoCo.update_memory
    instance_loss = authors.instance_loss

    def remember(self, keys, pseudo_labels):
        before.append(self.mem_labels.clone())
        update_memory(self, keys, pseudo_labels)

    monkeypatch.setattr(authors.AdaMoCo, "update_memory", remember)
    monkeypatch.setattr(
        authors, "instance_loss",
        lambda logits_ins, pseudo_labels, mem_labels, contrast_type: instance_loss(
            logits_ins, pseudo_labels, before[-1], contrast_type),
    )  # fmt: skip
    model = tiny_model(CLASSES, sharp=4.0)
    fill, xs = batches(3, seed=2)[:2], batches(3, seed=3)
    corrected = run_against_authors(model, fill, xs, variant="corrected", lr=1e-2)
    monkeypatch.undo()
    reference = run_against_authors(model, fill, xs, lr=1e-2)
    assert moved(corrected.model, reference.model) > 0  # the mask made a difference


def test_corrected_fills_the_bank_as_a_ring() -> None:
    def fill(variant: str) -> torch.Tensor:
        adapter = make_adapter("adacontrast", tiny_model(CLASSES), bank_size=96, variant=variant)
        for step in range(5):  # batches of 32 marked 0..4
            features = torch.full((32, DIM), float(step))
            adapter._update_banks(features, torch.zeros(32, CLASSES))
        return adapter.banks["features"][:, 0]

    reference, corrected = fill("reference"), fill("corrected")
    # the toolkit's pointer: the fourth batch replaced the third (the newest), the fifth the first
    assert reference.view(3, 32)[:, 0].tolist() == [4.0, 1.0, 3.0]
    # a ring: the fourth replaced the first (the oldest), the fifth the second
    assert corrected.view(3, 32)[:, 0].tolist() == [3.0, 4.0, 2.0]


def test_uneven_batches_fill_a_corrected_ring_to_its_capacity() -> None:
    adapter = make_adapter("adacontrast", tiny_model(CLASSES), bank_size=50, variant="corrected")
    for step in range(3):
        adapter._update_banks(torch.full((32, DIM), float(step)), torch.zeros(32, CLASSES))
    bank = adapter.banks["features"][:, 0]
    assert len(bank) == 50 and adapter.banks["ptr"] == 46
    # the second batch's last 14 went round to rows 0-13; the third replaced the oldest next
    assert bank.tolist() == [1.0] * 14 + [2.0] * 32 + [1.0] * 4


def test_episodic_starts_every_batch_afresh() -> None:
    model = tiny_model(CLASSES, sharp=4.0)
    xs = batches(3, seed=4)
    episodic = make_adapter("adacontrast", copy.deepcopy(model), episodic=True, lr=1e-2)
    for step, x in enumerate(xs):
        seeded(step)
        ours = episodic.step(x)
        seeded(step)
        fresh = make_adapter("adacontrast", copy.deepcopy(model), lr=1e-2).step(x)
        assert torch.equal(ours, fresh)
        assert len(episodic.banks["features"]) == 32 and episodic.samples_seen == 32


def test_views_are_the_toolkits_pil_pipeline_draw_for_draw() -> None:
    """The toolkit's ``twss`` PIL transforms on uint8 images and ours on their float pixels
    draw the same random numbers (torch's and python's); the weak view (a flip) is equal,
    the strong ones differ by PIL's uint8 rounding and its box blur only."""
    g = torch.Generator().manual_seed(0)
    images = (torch.rand(6, 3, 16, 16, generator=g) * 255).round() / 255
    pil = [Image.fromarray((im.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
           for im in images]  # fmt: skip
    for augmentation, aug_type in (("light", "moco-v2-light"), ("moco-v2", "moco-v2")):
        theirs_tf = toolkit.get_augmentation_versions(
            "twss", aug_type, res_size=(16, 16), crop_size=16
        )
        adapter = make_adapter("adacontrast", tiny_model(CLASSES), augmentation=augmentation)
        seeded(3)
        w, q, k = adapter.views(images)
        ours_state = (torch.get_rng_state(), random.getstate())
        seeded(3)
        theirs = [theirs_tf(im) for im in pil]
        assert torch.equal(torch.get_rng_state(), ours_state[0])
        assert random.getstate() == ours_state[1]
        for i, (t, tw, tq, tk) in enumerate(theirs):
            assert torch.equal(t, images[i])
            if augmentation == "light":
                assert torch.equal(tw, w[i])  # the flip alone
            assert (tq - q[i]).abs().mean() < 0.03 and (tk - k[i]).abs().mean() < 0.03
        assert not torch.equal(q, k)


def test_views_are_made_in_pixel_space() -> None:
    spec = TransformSpec((6, 6), 3, (0.5, 0.4, 0.3), (0.2, 0.25, 0.3))
    pixels = torch.rand(4, 3, 6, 6)
    normalised = (pixels - torch.tensor(spec.mean).view(1, 3, 1, 1)) / torch.tensor(
        spec.std
    ).view(1, 3, 1, 1)
    plain = make_adapter("adacontrast", tiny_model(CLASSES))
    adapter = make_adapter("adacontrast", tiny_model(CLASSES))
    adapter.input_transform = spec
    seeded(1)
    ours = adapter.views(normalised)
    seeded(1)
    expected = plain.views(pixels)
    for a, b in zip(ours, expected, strict=True):
        assert (adapter.pixels.to_pixels(a) - b).abs().max() < 1e-5


def test_snapshot_restore_and_reset() -> None:
    adapter = make_adapter("adacontrast", tiny_model(CLASSES, sharp=4.0), lr=1e-2,
                           warmup_samples=32, queue_size=48, bank_size=48)  # fmt: skip
    xs = batches(4, seed=4)
    seeded(0)
    adapter.step(xs[0])
    snap = adapter.snapshot()
    state = copy.deepcopy(adapter._extra_state())
    seeded(1)
    after = [adapter.step(x) for x in xs[1:]]
    queue, bank = adapter.mem_feat.clone(), adapter.banks["features"].clone()
    adapter.restore(snap)
    assert torch.equal(adapter.mem_feat, state["mem_feat"]) and adapter.samples_seen == 32
    seeded(1)
    again = [adapter.step(x) for x in xs[1:]]
    assert all(torch.equal(a, b) for a, b in zip(after, again, strict=True))
    assert torch.equal(queue, adapter.mem_feat) and torch.equal(bank, adapter.banks["features"])
    adapter.reset()
    assert adapter.mem_feat is None and len(adapter.banks["features"]) == 0
    assert adapter.samples_seen == 0 and adapter.steps_done == 0
    source = tiny_model(CLASSES, sharp=4.0)
    assert moved(adapter.momentum_model, source) == 0.0 and moved(adapter.model, source) == 0.0


def test_a_run_adapts_through_adapt_run() -> None:
    class Data:
        labels = np.zeros(40, np.int64)

        def __len__(self) -> int:
            return 40

        def __getitem__(self, i: int):
            return torch.rand(3, 6, 6, generator=torch.Generator().manual_seed(i)), 0

    adapter = make_adapter("adacontrast", tiny_model(CLASSES), warmup_samples=10)
    records = AdaptRun(adapter, Data(), batch_size=10).run(3)
    assert len(records) == 3 and all(np.isfinite(r.loss) for r in records)
    assert adapter.last_features is not None and adapter.last_features.shape == (10, DIM)


def test_a_batch_of_one_adapts() -> None:
    adapter = make_adapter("adacontrast", tiny_model(CLASSES))
    assert adapter.step(batches(1)[0][:1]).shape == (1, CLASSES)


@pytest.mark.parametrize(
    ("name", "value"),
    [("lr", 0.0), ("head_lr_factor", -1.0), ("sgd_momentum", 1.0), ("weight_decay", -0.1),
     ("nesterov", 1), ("key_momentum", 1.5), ("temperature", 0.0), ("queue_size", 0),
     ("bank_size", 0), ("num_neighbors", 0), ("dist_type", "l1"), ("alpha", -1.0),
     ("beta", float("nan")), ("eta", -0.5), ("contrast_type", "nearest"),
     ("ce_sup_type", "self_all"), ("warmup_samples", -1), ("augmentation", "moco-v1"),
     ("key_shuffle", "yes"), ("steps", 0), ("episodic", 1), ("variant", "fixed")],
)  # fmt: skip
def test_bad_parameters_are_named(name: str, value: object) -> None:
    with pytest.raises(ParameterError) as info:
        make_adapter("adacontrast", tiny_model(CLASSES), **{name: value})
    assert info.value.where == name


def test_a_bank_smaller_than_the_neighbours_is_refused() -> None:
    with pytest.raises(ParameterError, match="cannot give num_neighbors=10") as info:
        make_adapter("adacontrast", tiny_model(CLASSES), bank_size=5)
    assert info.value.where == "bank_size"


def test_neighbours_before_the_bank_holds_them_are_refused() -> None:
    adapter = make_adapter("adacontrast", tiny_model(CLASSES), warmup_samples=0)
    with pytest.raises(ParameterError, match="holds 0 features, fewer than num_neighbors=10"):
        adapter.step(batches(1)[0])
    adapter = make_adapter("adacontrast", tiny_model(CLASSES), warmup_samples=4)
    adapter.step(batches(1)[0][:4])  # 4 samples by argmax: the bank holds 4
    with pytest.raises(ParameterError, match="raise warmup_samples") as info:
        adapter.step(batches(1)[0][:4])
    assert info.value.where == "num_neighbors"


def test_a_batch_larger_than_the_queue_is_refused() -> None:
    adapter = make_adapter("adacontrast", tiny_model(CLASSES), queue_size=16)
    with pytest.raises(ParameterError, match="larger than the MoCo queue") as info:
        adapter.step(batches(1)[0])
    assert info.value.where == "batch"


def test_inputs_that_are_not_images_are_refused() -> None:
    model = SplitModel(torch.nn.Linear(12, DIM), torch.nn.Linear(DIM, CLASSES))
    with pytest.raises(ParameterError, match=r"images \(N, C, H, W\) with 1 or 3 channels"):
        make_adapter("adacontrast", model).step(torch.randn(8, 12))


def test_filling_the_bank_needs_batches() -> None:
    adapter = make_adapter("adacontrast", tiny_model(CLASSES))
    with pytest.raises(ParameterError, match="no batches"):
        adapter.fill_banks([])


def test_strong_and_weak_views_are_random() -> None:
    image = torch.rand(3, 8, 8)
    seeded(0)
    a = [strong_view((8, 8))(image) for _ in range(4)]
    assert any(not torch.equal(a[0], b) for b in a[1:])
    flips = {bool(torch.equal(weak_view()(image), image.flip(-1))) for _ in range(20)}
    assert flips == {True, False}


@pytest.mark.parametrize(("augmentation", "channels"), [("light", 3), ("moco-v2", 3), ("light", 1)])
def test_batched_views_equal_the_transforms_image_by_image(augmentation, channels) -> None:
    pixels = torch.rand(12, channels, 10, 10)
    seeded(4)
    ours = Views(augmentation)(pixels)
    state = torch.get_rng_state(), random.getstate()
    seeded(4)
    weak, strong = weak_view(), strong_view((10, 10), augmentation)
    theirs = [[], [], []]
    for image in pixels:
        for view, transform in zip(theirs, (weak, strong, strong), strict=True):
            view.append(transform(image))
    assert torch.get_rng_state().equal(state[0]) and random.getstate() == state[1]
    for a, b in zip(ours, theirs, strict=True):
        assert (a - torch.stack(b)).abs().max() == 0.0
