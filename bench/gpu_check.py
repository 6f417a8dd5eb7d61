"""The GPU check (issue 24, item 3): every GPU row in one prepared command, under 8 minutes.

    python -m bench --gpu            # a CUDA machine: all rows; the table into bench/RESULTS.md
    bench/gpu_check.sh               # the same under a hard `timeout 480`
    python -m bench --gpu --tiny     # anywhere, seconds: tiny sizes (on the CPU without CUDA)

Rows, each with its own time budget (seconds; a row that would overrun what is left of
``--gpu-limit`` is skipped and says so, one that overruns its budget is stopped and says so):
the ``gpu``-marked tests; extraction throughput (ResNet-50, 224 px, AMP) against a bare loop
and against the card's published bf16 figure; AMP against float32 (agreement and speed);
TSD and Tent steps; k-means (faiss: on the GPU with faiss-gpu, else said) and Sinkhorn on the
GPU against the CPU; step -> pixels for a ResNet-50 at 224 px on 2,000 and 50,000 images
(target <= 0.5 s); torchrun with NCCL when there are two GPUs. Without CUDA every row that
needs a GPU says so, and ``--tiny`` runs the others' code paths on small inputs (the test of
this script, ``tests/test_gpu_check.py``).
"""

from __future__ import annotations

import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench._common import Row

ROOT = Path(__file__).resolve().parent.parent

#: Dense bf16 Tensor Core TFLOPS by card, from NVIDIA's product pages and datasheets, which
#: give the figure "with sparsity": dense is half of it. Longest name first (the first
#: pattern found in ``torch.cuda.get_device_name()`` wins).
PUBLISHED_BF16_TFLOPS: tuple[tuple[str, float, str], ...] = (
    ("H200 NVL", 835.5, "https://www.nvidia.com/en-us/data-center/h200/ (H200 NVL: 1,671 TFLOPS BF16 with sparsity)"),
    ("H200", 989.5, "https://www.nvidia.com/en-us/data-center/h200/ (H200 SXM: 1,979 TFLOPS BF16 with sparsity)"),
    ("H100 NVL", 835.5, "https://www.nvidia.com/en-us/data-center/h100/ (H100 NVL: 1,671 TFLOPS BF16 with sparsity)"),
    ("H100 PCIe", 756.5, "NVIDIA H100 PCIe product brief PB-11133-001 (1,513 TFLOPS BF16 with sparsity)"),
    ("H100", 989.5, "https://www.nvidia.com/en-us/data-center/h100/ (H100 SXM: 1,979 TFLOPS BF16 with sparsity)"),
    ("A100", 312.0, "https://www.nvidia.com/en-us/data-center/a100/ (BF16 Tensor Core 312 TFLOPS, 624 with sparsity)"),
    ("L40S", 366.5, "https://www.nvidia.com/en-us/data-center/l40s/ (733 TFLOPS BF16 with sparsity)"),
    ("L4", 121.0, "https://www.nvidia.com/en-us/data-center/l4/ (242 TFLOPS BF16 with sparsity)"),
    ("A10", 125.0, "https://www.nvidia.com/en-us/data-center/products/a10-gpu/ (BF16 125 TFLOPS, 250 with sparsity)"),
)
#: ResNet-50's forward pass at 224 px: 4.09 G multiply-adds (torchvision's model card),
#: 8.18 GFLOP.
RESNET50_GFLOP = 8.18
SECTION = "## GPU check (issue 24)"


def published_bf16(card: str) -> tuple[float, str] | None:
    """``(dense bf16 TFLOPS, source)`` of the card named ``card`` (None when unknown)."""
    for name, tflops, source in PUBLISHED_BF16_TFLOPS:
        if re.search(rf"\b{re.escape(name)}\b", card, re.IGNORECASE):
            return tflops, source
    return None


class RowOverrun(Exception):
    """A row ran past its budget."""


@dataclass
class Check:
    """What the rows share: the device, whether tiny, where to write files."""

    device: str
    tiny: bool
    tmp: Path
    cuda: bool
    deadline: float = float("inf")  # perf_counter() when the current row's budget ends

    def left(self) -> float:
        """Seconds left of the current row's budget, less one (a child process's timeout:
        the row's alarm would stop this process but not the child)."""
        return max(1.0, self.deadline - time.perf_counter() - 1.0)

    @property
    def sync(self) -> Callable[[], None]:
        import torch

        return torch.cuda.synchronize if self.cuda else (lambda: None)


def _timed(fn: Callable[[], object], sync: Callable[[], None], repeats: int) -> float:
    """Median seconds of ``fn`` over ``repeats`` calls after one warm-up call."""
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _autocast(device: str, dtype):
    """Autocast to ``dtype`` on ``device``'s type, or nothing for float32 (None)."""
    import contextlib

    import torch

    return (contextlib.nullcontext() if dtype is None
            else torch.autocast(torch.device(device).type, dtype=dtype))


def _needs_gpu(what: str, why: str = "needs a CUDA GPU: not measured here") -> list[Row]:
    return [Row(what, None, "", note=why)]


# ---------------------------------------------------------------------------- the rows
def gpu_tests(c: Check) -> list[Row]:
    """The ``gpu``-marked tests (pytest -m gpu on the files that hold them)."""
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py")
                   if "mark.gpu" in p.read_text(encoding="utf-8"))
    count = sum(p.read_text(encoding="utf-8").count("mark.gpu")
                for p in (ROOT / f for f in files))
    what = f"gpu-marked tests ({count} in {len(files)} files)"
    if not c.cuda:
        return _needs_gpu(what, f"need CUDA: skipped here ({', '.join(files)})")
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-m", "gpu", *files], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "QT_QPA_PLATFORM": "offscreen"}, timeout=c.left())
    tail = ((done.stdout.strip() or done.stderr.strip()).splitlines() or ["(no output)"])[-1]
    return [Row(what, time.perf_counter() - t0, "s", target="all pass",
                passed=done.returncode == 0, note=tail)]


def _resnet50(num_classes: int = 1000, arch: str = "resnet50"):
    import torch
    import torchvision

    from protoview.core.model import SplitModel

    torch.manual_seed(0)
    net = getattr(torchvision.models, arch)(num_classes=num_classes)
    head, net.fc = net.fc, torch.nn.Identity()
    return SplitModel(net, head).eval()


def extraction(c: Check) -> list[Row]:
    """ResNet-50 at 224 px: protoview's extraction (AMP, channels-last, its batch size)
    against a bare loop with the same precision, and the card's published bf16 figure."""
    import copy

    import torch

    from protoview.core.accel import channels_last_input, use_channels_last
    from protoview.core.data import open_dataset
    from protoview.core.features import extract_features
    from protoview.core.model import TransformSpec

    n, side, batch = (8, 32, 4) if c.tiny else (2048, 224, 256)
    arch = "resnet18" if c.tiny else "resnet50"  # tiny: the code path, not the figure
    model = _resnet50(arch=arch)
    pixels = np.random.default_rng(0).integers(0, 256, (n, 3, side, side), dtype=np.uint8)
    np.savez(c.tmp / "extract.npz", x=pixels, y=np.arange(n) % 10)
    data = open_dataset(c.tmp / "extract.npz", TransformSpec((side, side)))
    inputs, _ = data.get_batch(np.arange(n))
    result = extract_features(model, data, batch_size=batch, device=c.device)
    notes = "; ".join(getattr(result, "notes", []) or [])
    dtype = None  # the precision extract_features chose (its note: "autocast bfloat16: ...")
    if c.cuda and "autocast bfloat16" in notes:
        dtype = torch.bfloat16
    elif c.cuda and "autocast float16" in notes:
        dtype = torch.float16
    bare_model = copy.deepcopy(model).to(c.device)
    cl = use_channels_last(bare_model, c.device)
    batches = [channels_last_input(inputs[i:i + batch].to(c.device), cl)
               for i in range(0, n, batch)]

    def bare() -> None:
        with torch.inference_mode(), _autocast(c.device, dtype):
            for x in batches:
                bare_model(x).float().cpu()

    def ours() -> None:
        extract_features(model, data, batch_size=batch, device=c.device)

    t_bare = _timed(bare, c.sync, 2 if c.tiny else 3)
    t_ours = _timed(ours, c.sync, 2 if c.tiny else 3)
    label = "ResNet-50" if arch == "resnet50" else "ResNet-18"
    rows = [Row(f"extraction, {label} @ {side} px, {n:,} images ({c.device})", n / t_ours,
                "img/s", n / t_bare, f"bare inference_mode loop, {dtype or 'float32'}"
                + (", channels-last" if cl else ""), t_bare / t_ours, ">= 0.9 x throughput",
                None if c.tiny else t_bare / t_ours >= 0.9,
                note=(notes or "float32 (CPU)") + ("; tiny: the code path, not a figure"
                                                   if c.tiny else ""))]
    card = torch.cuda.get_device_name(0) if c.cuda else ""
    peak = published_bf16(card) if c.cuda else None
    if c.cuda and peak and side == 224:
        achieved = n / t_ours * RESNET50_GFLOP / 1e3
        rows.append(Row(f"extraction against the card's bf16 peak ({card})", achieved,
                        "TFLOPS", peak[0], f"published dense bf16, {peak[1]}", achieved / peak[0],
                        note=f"{n / t_ours:,.0f} img/s x {RESNET50_GFLOP} GFLOP an image "
                             "(data loading included)"))
    elif c.cuda:
        rows += _needs_gpu(f"extraction against the card's bf16 peak ({card})",
                           "no published figure for this card in bench/gpu_check.py")
    else:
        rows += _needs_gpu("extraction against the card's bf16 peak")
    return rows


def amp(c: Check) -> list[Row]:
    """AMP against float32 on ResNet-50: the prediction agreement of
    :func:`~protoview.core.accel.choose_precision` on a probe, and forward speed."""
    import torch

    from protoview.core.accel import choose_precision

    if not c.cuda:
        return _needs_gpu("AMP (autocast bf16/fp16) against float32, ResNet-50",
                          "needs CUDA: the CPU stays float32 (choose_precision returns float32)")
    model = _resnet50().to(c.device)
    x = torch.randn(128, 3, 224, 224, device=c.device, generator=torch.Generator(c.device).manual_seed(0))
    chosen = choose_precision(model, x, c.device)

    def run(dtype) -> Callable[[], None]:
        def go() -> None:
            with torch.inference_mode(), _autocast(c.device, dtype):
                model(x)
        return go

    t32 = _timed(run(None), c.sync, 5)
    tamp = _timed(run(chosen.dtype), c.sync, 5)
    return [Row("AMP forward, ResNet-50 @ 224 px, batch 128", tamp, "s", t32, "float32 forward",
                tamp / t32, "agreement >= 0.99", chosen.agreement >= 0.99,
                note=f"{chosen.note}; agreement {chosen.agreement:.4f}")]


def tta_steps(c: Check) -> list[Row]:
    """A TSD and a Tent step on ResNet-50 (224 px, batch 64; tiny: the demo CNN)."""
    import copy

    import torch

    from protoview.core.adapt import make_adapter

    if c.tiny:
        from protoview.core.checkpoint import load_checkpoint
        from protoview.core.demo import demo_checkpoint_path

        base, x, label = (load_checkpoint(demo_checkpoint_path("linear")),
                          torch.rand(64, 1, 8, 8), "demo CNN, batch 64")
    else:
        base, x, label = _resnet50(10), torch.rand(64, 3, 224, 224), "ResNet-50 @ 224 px, batch 64"
    x = x.to(c.device)
    rows = []
    for method, name in (("tsd", "TSD"), ("tent", "Tent")):
        adapter = make_adapter(method, copy.deepcopy(base).to(c.device), lr=1e-4)
        t = _timed(lambda a=adapter: a.step(x), c.sync, 3 if c.tiny else 10)
        rows.append(Row(f"{name} step, {label} ({c.device})", t, "s",
                        note="median of the steps after one warm-up"))
    return rows


def kmeans_sinkhorn(c: Check) -> list[Row]:
    """k-means (faiss) and Sinkhorn on the device against the CPU."""
    import faiss
    import torch

    from protoview.core.cluster import kmeans_prototypes
    from protoview.core.sinkhorn import sinkhorn_knopp

    rows = []
    n, d, k = (2_000, 32, 10) if c.tiny else (200_000, 256, 100)
    x = np.random.default_rng(0).normal(size=(n, d)).astype(np.float32)
    has_gpu_faiss = hasattr(faiss, "StandardGpuResources") and c.cuda
    t_cpu = _timed(lambda: kmeans_prototypes(x, k, nredo=1, use_gpu=False), lambda: None, 1)
    if has_gpu_faiss:
        t_gpu = _timed(lambda: kmeans_prototypes(x, k, nredo=1, use_gpu=True), c.sync, 3)
        rows.append(Row(f"k-means {n:,} x {d}, k={k}, faiss GPU index", t_gpu, "s", t_cpu,
                        "the same on the CPU", t_gpu / t_cpu))
    else:
        why = ("faiss-cpu: k-means on the CPU (for the GPU: pip uninstall faiss-cpu && pip "
               "install faiss-gpu-cu12, which may replace torch's CUDA libraries)")
        rows.append(Row(f"k-means {n:,} x {d}, k={k}, on the CPU", t_cpu, "s", note=why))
    n, k = (2_000, 50) if c.tiny else (200_000, 1_000)
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(n, k, generator=g) / 10
    t_cpu = _timed(lambda: sinkhorn_knopp(scores, epsilon=0.05, n_iters=3), lambda: None, 1)
    if c.cuda:
        on = scores.to(c.device)
        t_gpu = _timed(lambda: sinkhorn_knopp(on, epsilon=0.05, n_iters=3), c.sync, 5)
        rows.append(Row(f"Sinkhorn {n:,} x {k}, 3 iterations ({c.device})", t_gpu, "s", t_cpu,
                        "the same on the CPU", t_gpu / t_cpu))
    else:
        rows.append(Row(f"Sinkhorn {n:,} x {k}, 3 iterations (cpu)", t_cpu, "s",
                        note="the GPU row needs CUDA"))
    return rows


def step_to_pixels(c: Check, n: int = 2_000) -> list[Row]:
    """A live step until its map is drawn: ResNet-50 at 224 px on ``n`` synthetic images
    (stored at 32 px, resized by the ImageNet preprocessing); tiny: the demo. Target
    <= 0.5 s."""
    import torch

    from bench.drawing import _app
    from bench.end_to_end import _draw, _view
    from protoview.core.projection import warm_up
    from protoview.core.session import OpenRequest, Session, StepRequest

    app = _app()
    warm_up()
    rows = []
    if c.tiny:
        cases = [("demo (539 images)", OpenRequest(device=c.device))]
    else:
        ckpt = c.tmp / "resnet50.pth"
        torch.manual_seed(0)
        import torchvision

        torch.save(torchvision.models.resnet50(num_classes=10).state_dict(), ckpt)
        rng = np.random.default_rng(0)
        path = c.tmp / f"images{n}.npz"
        labels = np.arange(n) % 10
        images = rng.integers(0, 200, (n, 3, 32, 32), dtype=np.uint8)
        images += (labels * 5).astype(np.uint8)[:, None, None, None]  # a tint per class
        np.savez(path, x=images, y=labels)
        cases = [(f"ResNet-50 @ 224 px, {n:,} images", OpenRequest(
            checkpoint=str(ckpt), arch="resnet50", data=str(path), device=c.device))]
    for name, req in cases:
        t0 = time.perf_counter()
        session = Session.open(req)
        opened = time.perf_counter() - t0
        view = _view()
        _draw(app, view, session.state)
        live = StepRequest(n_steps=1, batch_size=64, live=True, probe_size=0)
        t = _timed(lambda s=session, v=view, r=live: _draw(app, v, s.step(r)), c.sync, 3)
        view.close()
        rows.append(Row(f"step -> pixels, {name} ({c.device})", t, "s", target="<= 0.5 s",
                        passed=t <= 0.5 if c.cuda else None,
                        note=f"live TSD step + map update + redraw, median of 3; open "
                             f"(extraction + first map) {opened:.1f} s"))
        del session
    return rows


def first_map_1m(c: Check) -> list[Row]:
    return _needs_gpu("first map, 1,000,000 x 512 (issue 24 item 2)",
                      "not in this check's 450 s: the GPU layout (core/projection/"
                      "_torch_layout.py) is chosen by itself when CUDA is there; measure it "
                      "with python -m bench --only bigmap_first (about a minute on 2 CPU "
                      "cores)")


def nccl(c: Check) -> list[Row]:
    """``protoview extract`` under torchrun with NCCL on two GPUs, against one process."""
    import torch

    count = torch.cuda.device_count() if c.cuda else 0
    what = "torchrun extract, 2 processes, NCCL"
    if count < 2:
        return _needs_gpu(what, f"needs two GPUs (this machine has {count})")
    n = 4096
    pixels = np.random.default_rng(0).integers(0, 256, (n, 3, 64, 64), dtype=np.uint8)
    data = c.tmp / "ddp.npz"
    np.savez(data, x=pixels, y=np.arange(n) % 10)
    import torchvision

    ckpt = c.tmp / "resnet18.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), ckpt)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    times = {}
    for label, prefix in (("one", [sys.executable, "-m", "protoview"]),
                          ("two", [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                   "--nproc_per_node=2", "-m", "protoview"])):
        t0 = time.perf_counter()
        done = subprocess.run([*prefix, "extract", str(ckpt), str(data), "--arch", "resnet18",
                               "--no-cache", "--out", str(c.tmp / f"{label}.h5")], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=c.left())
        times[label] = time.perf_counter() - t0
        if done.returncode:
            return [Row(what, None, "", passed=False,
                        note=f"{label} process(es) failed: {done.stderr.strip()[-300:]}")]
    import h5py

    with h5py.File(c.tmp / "one.h5") as a, h5py.File(c.tmp / "two.h5") as b:
        same = float(np.abs(a["features"][:] - b["features"][:]).max())
    return [Row(what, times["two"], "s", times["one"], "one process", times["two"] / times["one"],
                "features equal (max diff <= 1e-3)", same <= 1e-3,
                note=f"{n:,} images, resnet18; max difference {same:.2e}")]


def step_to_pixels_50k(c: Check) -> list[Row]:
    if c.tiny:
        return _needs_gpu("step -> pixels, ResNet-50 @ 224 px, 50,000 images",
                          "a GPU row: the tiny run has the demo's above")
    return step_to_pixels(c, 50_000)


#: (name, budget in seconds on a GPU, row function). The budgets add to 446 s, under the
#: 450 s default limit (and 480 s of bench/gpu_check.sh): a rerun fits in 15 minutes.
ROWS: tuple[tuple[str, float, Callable[[Check], list[Row]]], ...] = (
    ("gpu_tests", 80, gpu_tests),
    ("extraction", 40, extraction),
    ("amp", 20, amp),
    ("tta_steps", 25, tta_steps),
    ("kmeans_sinkhorn", 40, kmeans_sinkhorn),
    ("step_to_pixels", 60, step_to_pixels),
    ("step_to_pixels_50k", 140, step_to_pixels_50k),
    ("first_map_1m", 1, first_map_1m),
    ("nccl", 40, nccl),
)


def _alarm(_signum, _frame) -> None:
    raise RowOverrun


def run_rows(rows, check: Check, limit: float, say: Callable[[str], None] = print) -> list[Row]:
    """Each row under its own budget (a SIGALRM stops it), skipped when its budget is more
    than what is left of ``limit`` seconds."""
    out: list[Row] = []
    started = time.perf_counter()
    for name, budget, fn in rows:
        left = limit - (time.perf_counter() - started)
        if budget > left:
            out.append(Row(f"{name}", None, "", note=f"skipped: its budget {budget:g} s is more "
                                                       f"than the {max(left, 0):.0f} s left"))
            say(f"[gpu] {name}: skipped ({budget:g} s budget, {left:.0f} s left)")
            continue
        say(f"[gpu] {name} (budget {budget:g} s) ...")
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, budget)
        t0 = time.perf_counter()
        check.deadline = t0 + budget
        try:
            new = fn(check)
        except (RowOverrun, subprocess.TimeoutExpired):
            new = [Row(name, None, "", passed=False,
                       note=f"stopped: ran past its budget of {budget:g} s")]
        except Exception as exc:  # one row's failure is a row, not the end of the check
            new = [Row(name, None, "", passed=False, note=f"failed: {type(exc).__name__}: {exc}")]
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        for r in new:
            r.case = name
        say(f"[gpu] {name}: {time.perf_counter() - t0:.1f} s")
        out += new
    return out


def write_section(path: Path, title: str, body: str) -> None:
    """Put ``title`` + ``body`` into the Markdown file ``path``: in place of the section of
    that title (up to the next ``## ``), or before "## Not measured here", or at the end."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    block = f"{title}\n\n{body.rstrip()}\n\n"
    start = text.find(title + "\n")
    if start >= 0:
        end = text.find("\n## ", start + len(title))
        text = text[:start] + block + (text[end + 1:] if end >= 0 else "")
    elif "\n## Not measured here" in text:
        at = text.index("\n## Not measured here") + 1
        text = text[:at] + block + text[at:]
    else:
        text = text.rstrip() + "\n\n" + block
    path.write_text(text.rstrip() + "\n", encoding="utf-8")


def main_gpu(device: str | None, tiny: bool, limit: float, markdown: Path | None,
             json_path: Path | None, only: list[str] | None = None,
             say: Callable[[str], None] = print) -> int:
    """``python -m bench --gpu``: the rows, the table printed, and written into
    ``markdown`` (default bench/RESULTS.md on a CUDA machine, nowhere without one)."""
    import json

    import torch

    from bench.run import machine, table
    from bench.run import markdown as as_markdown

    cuda = torch.cuda.is_available() and device != "cpu"
    dev = device or ("cuda" if cuda else "cpu")
    info = machine()
    card = torch.cuda.get_device_name(0) if cuda else "no GPU"
    say(f"protoview GPU check on {card} ({'tiny' if tiny else 'full'}, limit {limit:.0f} s)")
    rows = tuple(r for r in ROWS if not only or r[0] in only)
    if not cuda and not tiny:
        say("no CUDA here: every row needs a GPU or runs tiny (--tiny); running the tiny rows")
        tiny = True
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        got = run_rows(rows, Check(dev, tiny, Path(tmp), cuda), limit, say)
    total = time.perf_counter() - started
    say(table(got))
    head = (f"Card: **{card}**. `python -m bench --gpu` ({'tiny' if tiny else 'full'}), "
            f"{total:.0f} s of a {limit:.0f} s limit; each row ran under its own budget.\n")
    body = head + "\n" + as_markdown(got, info, tiny, total)
    target = markdown if markdown is not None else (ROOT / "bench" / "RESULTS.md" if cuda and not tiny else None)
    if target is not None:
        write_section(target, SECTION + (f": {card}" if cuda else ": no GPU (tiny CPU fallback)"), body)
        say(f"Markdown: {target}")
    if json_path is not None:
        json_path.write_text(json.dumps(
            {"machine": info, "gpu": card, "tiny": tiny, "seconds": total,
             "rows": [r.as_dict() for r in got]}, indent=2, default=str))
    return 0
