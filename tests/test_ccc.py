"""CCC (Press et al., NeurIPS 2023) as it lies on disk: webdataset tar shards in stream order.

Generated shards in the exact layout the authors' generator writes (github.com/oripress/CCC
``generate.py``: ``wds.TarWriter`` with ``{"__key__": "sample_<i>", "info": ...,
"input.jpg": ..., "output.cls": ...}``; webdataset's ``TarWriter.write`` names each member
``key + "." + field`` in sorted field order, ``.cls`` encoded as ``str(int)``). Labels are
the ``.cls`` contents, the order is shard order then member order, the index cache is
reused and refreshed, and each way to get the layout wrong is refused in one line naming
the file.
"""

from __future__ import annotations

import io
import os
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from protoview.core.data import open_dataset
from protoview.core.data._ccc import CCCDataset, index_folder, parse_ccc_spec
from protoview.core.data._imagenet_wnids import IMAGENET_WNIDS
from protoview.errors import DatasetError

DOMAIN = "baseline_20_transition+speed_1000_seed_44"


def _jpeg_bytes(seed: int, size: int = 24) -> bytes:
    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(
        out, format="JPEG", quality=85)
    return out.getvalue()


def write_shard(path: Path, samples: list[dict[str, bytes]]) -> None:
    """A shard as webdataset's TarWriter writes it: members ``key.field`` in sorted field
    order, mode 0o444, user/group bigdata, streamed (``w|``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as stream, tarfile.open(fileobj=stream, mode="w|") as tar:
        for sample in samples:
            key = sample["__key__"].decode()
            for field in sorted(sample):
                if field == "__key__":
                    continue
                data = sample[field]
                info = tarfile.TarInfo(f"{key}.{field}")
                info.size, info.mtime, info.mode = len(data), time.time(), 0o444
                info.uname = info.gname = "bigdata"
                tar.addfile(info, io.BytesIO(data))


def ccc_sample(index: int, label: int | str, seed: int | None = None) -> dict[str, bytes]:
    return {"__key__": f"sample_{index}".encode(),
            "info": f"++dir++{IMAGENET_WNIDS[0]}++name++x.JPEG++n1++fog++s1++1.0".encode(),
            "input.jpg": _jpeg_bytes(index if seed is None else seed),
            "output.cls": str(label).encode("ascii")}


def make_ccc(root: Path, labels: list[list[int]], domain: str = DOMAIN) -> Path:
    """``root/domain/serial_<k>.tar`` holding ``labels[k]``; keys restart at sample_0 in
    every shard (the generator's ``write_dataset``), image ``j`` of the stream is
    ``_jpeg_bytes(100 + j)``."""
    folder, j = root / domain, 100
    for k, shard in enumerate(labels):
        samples = []
        for i, label in enumerate(shard):
            samples.append(ccc_sample(i, label, seed=j))
            j += 1
        write_shard(folder / f"serial_{k:05d}.tar", samples)
    return folder


SHARDS = [[5, 999, 0, 17], [3, 3], [812, 1, 44]]


@pytest.fixture
def ccc_root(tmp_path: Path) -> Path:
    make_ccc(tmp_path / "CCC", SHARDS)
    return tmp_path / "CCC"


def test_opens_with_the_cls_labels_in_stream_order(ccc_root: Path) -> None:
    data = open_dataset(f"ccc:{ccc_root}:{DOMAIN}")
    assert isinstance(data, CCCDataset)
    flat = [label for shard in SHARDS for label in shard]
    assert data.labels.dtype == np.int64 and data.labels.tolist() == flat
    assert data.class_names == list(IMAGENET_WNIDS)
    assert data.benchmark == {"dataset": "CCC", "domain": DOMAIN}
    assert data.shards == ["serial_00000.tar", "serial_00001.tar", "serial_00002.tar"]
    assert data.shard_starts.tolist() == [0, 4, 6, 9]
    assert data.suggested_preprocess == "domainbed" and data.stream_order == "file"
    assert "9 images in 3 shards" in data.description
    # every image is the one stored there, in shard order then member order
    for index in range(len(data)):
        assert data.image_bytes(index) == _jpeg_bytes(100 + index)
    x, y = data[6]
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32 and y == 812
    assert data.thumbnail(0).shape == (24, 24, 3)


def test_the_folder_path_spelling_is_the_same_dataset(ccc_root: Path) -> None:
    a = open_dataset(f"ccc:{ccc_root}:{DOMAIN}")
    b = open_dataset(f"ccc:{ccc_root / DOMAIN}")
    c = open_dataset(f"ccc:{ccc_root / DOMAIN}/")
    assert a.identity() == b.identity() == c.identity()
    assert parse_ccc_spec(f"ccc:{ccc_root / DOMAIN}") == (str(ccc_root), DOMAIN)
    assert parse_ccc_spec("cccx:/a:b") is None


def test_images_decode_as_the_toolkit_reads_them(ccc_root: Path) -> None:
    """The toolkit: PIL decode + ToTensor (pixels / 255); protoview with mean 0, std 1 and
    the images' own size gives the same pixels, to the last bit of float32 (protoview
    multiplies by 1/255, as for every image folder)."""
    from protoview.core.model import TransformSpec

    data = open_dataset(f"ccc:{ccc_root}:{DOMAIN}",
                        TransformSpec((24, 24), 3, (0.0,) * 3, (1.0,) * 3))
    with Image.open(io.BytesIO(_jpeg_bytes(101))) as img:
        expected = torch.from_numpy(np.asarray(img.convert("RGB"), np.float32) / 255.0)
    got = data[1][0]
    assert got.shape == (3, 24, 24)
    assert float((got - expected.permute(2, 0, 1)).abs().max()) <= 6e-8


def test_the_index_is_cached_and_refreshed_per_shard(ccc_root: Path, monkeypatch) -> None:
    from protoview.core.data import _ccc

    first = open_dataset(f"ccc:{ccc_root}:{DOMAIN}")
    cached = list(index_folder().glob("*.npz"))
    assert cached, "the index was not cached"
    read: list[str] = []
    real = _ccc.index_shard
    monkeypatch.setattr(_ccc, "index_shard", lambda path: read.append(path) or real(path))
    again = open_dataset(f"ccc:{ccc_root}:{DOMAIN}")
    assert read == [] and again.identity() == first.identity()
    assert again.labels.tolist() == first.labels.tolist()
    write_shard(ccc_root / DOMAIN / "serial_00001.tar", [ccc_sample(0, 7)])  # a shard changed
    os.utime(ccc_root / DOMAIN / "serial_00001.tar", ns=(1, 1))
    changed = open_dataset(f"ccc:{ccc_root}:{DOMAIN}")
    assert [os.path.basename(p) for p in read] == ["serial_00001.tar"]
    assert changed.labels.tolist() == [5, 999, 0, 17, 7, 812, 1, 44]
    assert changed.identity() != first.identity()
    # a broken cache file is never trusted: the shards are read again
    for path in index_folder().glob("*.npz"):
        path.write_bytes(b"not an npz")
    read.clear()
    assert open_dataset(f"ccc:{ccc_root}:{DOMAIN}").labels.tolist() == changed.labels.tolist()
    assert len(read) == 3


def test_the_benchmark_order_survives_a_run_without_shuffling(ccc_root: Path) -> None:
    """``--no-shuffle`` (shuffle=False) streams the shards in order; ``samples=N`` then keeps
    the first N, like the evaluations' 7.5 million cap."""
    from protoview.core.adapt.stream import parse_stream, stream_order

    data = open_dataset(f"ccc:{ccc_root}:{DOMAIN}")
    order = stream_order(parse_stream("samples=5"), len(data), seed=0, pass_index=0,
                         shuffle=False, labels=data.labels)
    assert order.tolist() == [0, 1, 2, 3, 4]
    full = stream_order(parse_stream(None), len(data), seed=0, pass_index=0, shuffle=False)
    assert data.labels[full].tolist() == [label for shard in SHARDS for label in shard]


def test_a_bad_image_reads_as_a_blank_with_its_shard_named(tmp_path: Path) -> None:
    folder = tmp_path / DOMAIN
    bad = ccc_sample(0, 4)
    bad["input.jpg"] = b"not a jpeg"
    write_shard(folder / "serial_00000.tar", [bad, ccc_sample(1, 2)])
    data = open_dataset(f"ccc:{tmp_path}:{DOMAIN}")
    x, y, problem = data.read_item(0)
    assert y == 4 and torch.count_nonzero(x) == 0
    assert "serial_00000.tar" in problem and "sample 0" in problem


# ---------------------------------------------------------------------------- bad input
def _refused(spec: str, *words: str) -> str:
    with pytest.raises(DatasetError) as caught:
        open_dataset(spec)
    line = str(caught.value)
    assert "\n" not in line, line
    for word in words:
        assert word in line, line
    return line


def test_a_missing_domain_folder_is_named(ccc_root: Path) -> None:
    other = "baseline_0_transition+speed_5000_seed_43"
    _refused(f"ccc:{ccc_root}:{other}", other, "does not exist", DOMAIN)


def test_a_spec_without_a_domain_is_refused(ccc_root: Path) -> None:
    _refused(f"ccc:{ccc_root}", "ccc:ROOT:DOMAIN")
    _refused(f"ccc:{ccc_root}:fog", "'fog' is not a CCC domain")


def test_a_folder_without_shards_is_named(tmp_path: Path) -> None:
    (tmp_path / DOMAIN).mkdir()
    _refused(f"ccc:{tmp_path}:{DOMAIN}", DOMAIN, "holds no shards")


def test_a_shard_missing_in_the_sequence_is_named(ccc_root: Path) -> None:
    (ccc_root / DOMAIN / "serial_00001.tar").unlink()
    _refused(f"ccc:{ccc_root}:{DOMAIN}", "serial_00001.tar", "is missing")


def test_a_shard_that_is_not_a_tar_is_named(ccc_root: Path) -> None:
    (ccc_root / DOMAIN / "serial_00002.tar").write_bytes(b"\x89PNG not a tar at all" * 50)
    _refused(f"ccc:{ccc_root}:{DOMAIN}", "serial_00002.tar", "not a readable tar shard")


@pytest.mark.parametrize("field", ["output.cls", "input.jpg"])
def test_a_sample_missing_a_member_is_named(tmp_path: Path, field: str) -> None:
    broken = ccc_sample(1, 3)
    del broken[field]
    write_shard(tmp_path / DOMAIN / "serial_00000.tar", [ccc_sample(0, 1), broken])
    _refused(f"ccc:{tmp_path}:{DOMAIN}", "serial_00000.tar", f"sample_1.{field}")


@pytest.mark.parametrize("text", ["1000", "-1", "cat", "3.5", ""])
def test_a_cls_that_is_no_imagenet_class_is_named(tmp_path: Path, text: str) -> None:
    write_shard(tmp_path / DOMAIN / "serial_00000.tar", [ccc_sample(0, text)])
    _refused(f"ccc:{tmp_path}:{DOMAIN}", "serial_00000.tar", "sample_0.output.cls",
             "0..999")


def test_a_run_keeps_the_benchmark_order_by_default(ccc_root: Path) -> None:
    """CCC declares its order (the stream is the benchmark): AdaptRun does not shuffle it."""
    from protoview.core.adapt import AdaptRun, make_adapter
    from protoview.core.model import SplitModel, TransformSpec

    data = open_dataset(f"ccc:{ccc_root}:{DOMAIN}", TransformSpec((8, 8), 3))
    model = SplitModel(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 4)),
                       torch.nn.Linear(4, 1000))
    asked = AdaptRun(make_adapter("none", model), data, batch_size=4, shuffle=True)
    assert not asked.shuffle and any("file order" in n for n in asked.notes)  # said when asked
    run = AdaptRun(make_adapter("none", model), data, batch_size=4)
    assert not run.shuffle and run.order == "file order, the benchmark's own stream"
    indices = [i for _ in range(run.steps_per_pass) for i in run.step().batch_indices.tolist()]
    assert indices == list(range(len(data)))
