"""Image folders decoded once per preprocessing (issue 15, item 4): exact, shared with
DataLoader workers, kept on disk across sessions, and clear about bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from protoview.core.data import DecodedImages, ImageFolderDataset, decoded_images, open_dataset
from protoview.core.data._loading import default_num_workers, iterate_batches
from protoview.core.model import TransformSpec
from protoview.errors import ParameterError

SMALL = TransformSpec(size=(24, 20))


@pytest.fixture
def folder(tmp_path):
    """Two classes of 8-bit JPEG / PNG images of odd sizes, one 16-bit PNG, one grey."""
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(4):
            pixels = rng.integers(0, 256, (30 + i, 41, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / c / f"{i}.{'jpg' if i % 2 else 'png'}")
    Image.fromarray(rng.integers(0, 65535, (17, 19), dtype=np.uint16)).save(root / "cat" / "deep.png")
    Image.fromarray(rng.integers(0, 256, (17, 19), dtype=np.uint8)).save(root / "dog" / "grey.png")
    return root


def _reference(dataset) -> torch.Tensor:
    return torch.stack([dataset.read_item(i)[0] for i in range(len(dataset))])


@pytest.mark.parametrize("transform", [SMALL, TransformSpec(size=(8, 8), channels=1,
                                                            mean=(0.5,), std=(0.25,))])
def test_cached_inputs_equal_decoding_the_files_bit_for_bit(folder, transform) -> None:
    dataset = open_dataset(folder, transform)
    cached = DecodedImages(dataset, "memory")
    assert cached.needs_decoding and cached.decoded_count == 0
    x, y = cached.get_batch(np.arange(len(dataset)))
    reference = _reference(dataset)
    assert torch.equal(x, reference)
    np.testing.assert_array_equal(y.numpy(), dataset.labels)
    assert not cached.needs_decoding
    # the 16-bit image is not k/255: kept as float32, still exact
    assert (cached.status == 3).sum() == 1 and (cached.status == 1).sum() == len(dataset) - 1
    again, _ = cached.get_batch([5, 0, 5])
    assert torch.equal(again, reference[[5, 0, 5]])
    item, label = cached[3]
    assert torch.equal(item, reference[3]) and label == dataset.labels[3]
    # the wrapped dataset's attributes pass through
    assert cached.identity() == dataset.identity() and cached.class_names == ["cat", "dog"]
    assert cached.thumbnail(0).dtype == np.uint8 and len(cached) == len(dataset)


def test_later_reads_do_not_decode_again(folder, monkeypatch) -> None:
    dataset = open_dataset(folder, SMALL)
    cached = DecodedImages(dataset, "memory")
    cached.get_batch(slice(0, None))
    calls = []
    monkeypatch.setattr(ImageFolderDataset, "read_pixels", lambda self, i: calls.append(i))
    x, _ = cached.get_batch(np.arange(len(dataset)))
    assert calls == [] and x.shape == (len(dataset), 3, 24, 20)


def test_the_disk_cache_is_kept_for_the_next_session(folder, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PROTOVIEW_DECODED_DIR", str(tmp_path / "decoded"))
    dataset = open_dataset(folder, SMALL)
    first = DecodedImages(dataset, "disk")
    assert first.storage == "disk" and first.path.parent == tmp_path / "decoded"
    x, _ = first.get_batch(np.arange(len(dataset)))
    first.close()
    calls = []
    real = ImageFolderDataset.read_pixels
    monkeypatch.setattr(ImageFolderDataset, "read_pixels",
                        lambda self, i: calls.append(i) or real(self, i))
    second = DecodedImages(open_dataset(folder, SMALL), "disk")
    assert second.path == first.path and not second.needs_decoding
    again, _ = second.get_batch(np.arange(len(dataset)))
    assert torch.equal(again, x)
    deep = [i for i, (p, _) in enumerate(dataset.samples) if p.endswith("deep.png")]
    assert calls == deep  # only the 16-bit image, whose float pixels stay in memory
    # another preprocessing is another cache
    other = DecodedImages(open_dataset(folder, TransformSpec(size=(12, 12))), "disk")
    assert other.path != first.path and other.needs_decoding


def test_auto_storage_follows_the_memory_budget(folder, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PROTOVIEW_DECODED_DIR", str(tmp_path / "d"))
    dataset = open_dataset(folder, SMALL)
    assert DecodedImages(dataset, "auto").storage == "memory"
    monkeypatch.setenv("PROTOVIEW_DECODED_MEMORY", "100")
    assert DecodedImages(dataset, "auto").storage == "disk"
    monkeypatch.setenv("PROTOVIEW_DECODED_MEMORY", "lots")
    with pytest.raises(ParameterError) as info:
        DecodedImages(dataset, "auto")
    assert info.value.where == "PROTOVIEW_DECODED_MEMORY"


def test_a_disk_that_fails_leaves_the_cache_in_memory(folder, tmp_path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    cached = DecodedImages(open_dataset(folder, SMALL), "disk", folder=blocker / "sub")
    assert cached.storage == "memory" and "disk cache failed" in cached.notes[0]
    assert torch.equal(cached.get_batch([0])[0], _reference(cached.dataset)[:1])


def test_an_unreadable_image_reads_blank_and_is_reported_once(folder) -> None:
    path = folder / "cat" / "1.jpg"
    data = path.read_bytes()
    dataset = open_dataset(folder, SMALL)  # checked while intact
    path.write_bytes(data[: len(data) // 3])  # truncated after the open-time check
    cached = DecodedImages(dataset, "memory")
    index = [i for i, (p, _) in enumerate(dataset.samples) if p.endswith("1.jpg")][0]
    x, _ = cached.get_batch(np.arange(len(dataset)))
    assert torch.equal(x[index], torch.zeros_like(x[index]))
    problems = cached.take_problems()
    assert len(problems) == 1 and "1.jpg" in problems[0]
    cached.get_batch([index])
    assert cached.take_problems() == []


def test_a_first_pass_with_workers_fills_the_shared_cache(folder) -> None:
    import os

    dataset = open_dataset(folder, SMALL)
    cached = DecodedImages(dataset, "memory")
    workers = max(0, min(4, (os.cpu_count() or 1) - 1))
    assert default_num_workers(cached, "cuda") == workers  # a cache to fill gets workers
    batches = list(iterate_batches(cached, 4, 1, torch.device("cpu")))  # one forked worker
    x = torch.cat([b[0] for b in batches])
    assert torch.equal(x, _reference(dataset))
    # written by the worker, seen here: nothing is decoded again
    assert (cached.status == 1).sum() == len(dataset) - 1 and not cached.needs_decoding
    assert default_num_workers(cached, "cuda") == 0  # now it is in memory


def test_only_files_are_wrapped_and_bad_storage_is_named(folder) -> None:
    demo = open_dataset("demo")
    assert decoded_images(demo) is demo  # in memory already
    dataset = open_dataset(folder, SMALL)
    assert decoded_images(dataset, "off") is dataset
    assert isinstance(decoded_images(dataset), DecodedImages)
    for bad in ("ram", ""):
        with pytest.raises(ParameterError) as info:
            decoded_images(dataset, bad)
        assert info.value.where == "decoded"
