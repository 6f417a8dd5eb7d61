"""The GPU check (``python -m bench --gpu``, issue 24 item 3) without a GPU: its CPU
fallback runs tiny rows in seconds and says which rows need a GPU; rows keep to their
budgets; the table goes into its own section of a results file; the published figures."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from bench import gpu_check
from bench._common import Row
from bench.run import main


def test_tiny_cpu_check_runs_and_says_what_needs_a_gpu(tmp_path):
    """Every row but step -> pixels (the UMAP engine's start, ~15 s on two cores: run by
    hand) on the CPU, tiny; the rows that need a GPU say so; the section is written."""
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\nintro\n\n## Not measured here\n\n- x\n")
    out = tmp_path / "gpu.json"
    only = ",".join(name for name, _, _ in gpu_check.ROWS if name != "step_to_pixels")
    t0 = time.perf_counter()
    assert main(["--gpu", "--tiny", "--device", "cpu", "--only", only, "--markdown", str(results),
                 "--json", str(out)]) == 0
    assert time.perf_counter() - t0 < 60
    rows = {r["what"]: r for r in json.loads(out.read_text())["rows"]}
    assert rows["gpu-marked tests (7 in 6 files)"]["note"].startswith("need CUDA: skipped here")
    assert "needs CUDA" in rows["AMP (autocast bf16/fp16) against float32, ResNet-50"]["note"]
    assert rows["torchrun extract, 2 processes, NCCL"]["note"] == "needs two GPUs (this machine has 0)"
    assert rows["extraction against the card's bf16 peak"]["value"] is None
    assert rows["extraction, ResNet-18 @ 32 px, 8 images (cpu)"]["value"] > 0
    assert rows["TSD step, demo CNN, batch 64 (cpu)"]["value"] > 0
    assert "faiss-cpu: k-means on the CPU" in rows["k-means 2,000 x 32, k=10, on the CPU"]["note"]
    assert rows["Sinkhorn 2,000 x 50, 3 iterations (cpu)"]["value"] > 0
    text = results.read_text()
    section = "## GPU check (issue 24): no GPU (tiny CPU fallback)"
    assert text.index("intro") < text.index(section) < text.index("## Not measured here")
    assert "| TSD step, demo CNN, batch 64 (cpu) |" in text


def test_rows_keep_to_their_budgets_and_the_limit():
    def slow(_check):
        time.sleep(5)
        return [Row("never", 1.0, "s")]

    def broken(_check):
        raise RuntimeError("no device")

    def child(check):  # a child process gets the row's budget as its timeout, and is killed
        subprocess.run([sys.executable, "-c", "import time; time.sleep(30)"], timeout=check.left())

    said = []
    check = gpu_check.Check("cpu", True, None, False)
    t0 = time.perf_counter()
    rows = gpu_check.run_rows([("slow", 0.3, slow), ("broken", 1, broken), ("child", 2, child),
                               ("big", 100, slow)], check, limit=10, say=said.append)
    assert time.perf_counter() - t0 < 5
    assert [r.note for r in rows] == ["stopped: ran past its budget of 0.3 s",
                                      "failed: RuntimeError: no device",
                                      "stopped: ran past its budget of 2 s",
                                      rows[3].note]
    assert rows[3].note.startswith("skipped: its budget 100 s is more than the")
    assert any("big: skipped" in line for line in said)


def test_sections_are_replaced_not_repeated(tmp_path):
    path = tmp_path / "R.md"
    path.write_text("# B\n\n## A\n\nold\n\n## Not measured here\n\n- y\n")
    gpu_check.write_section(path, "## A", "new")
    gpu_check.write_section(path, "## C", "third")
    text = path.read_text()
    assert "old" not in text and text.count("## A") == 1
    assert text.index("## A") < text.index("## C") < text.index("## Not measured here")


@pytest.mark.parametrize("card, tflops", [
    ("NVIDIA H100 80GB HBM3", 989.5), ("NVIDIA H100 PCIe", 756.5), ("NVIDIA H100 NVL", 835.5),
    ("NVIDIA H200", 989.5), ("NVIDIA H200 NVL", 835.5), ("NVIDIA A100-SXM4-80GB", 312.0),
    ("NVIDIA L40S", 366.5), ("NVIDIA L4", 121.0), ("NVIDIA A10", 125.0), ("Tesla T4", None)])
def test_published_figures_by_card_name(card, tflops):
    found = gpu_check.published_bf16(card)
    assert (found[0] if found else None) == tflops
