"""protoview's benchmark suite, measured side by side against the anchor tools.

    python -m bench                 # everything, full sizes (about 15 min on 2 cores)
    python -m bench --quick         # small sizes, under 3 minutes
    python -m bench --only sinkhorn,kmeans --json out.json
    python -m bench --gpu           # the GPU check (bench/gpu_check.py): < 8 min on one GPU

Each benchmark runs protoview and its anchor (plain umap-learn, scikit-learn, POT, the
seed's naive code, a bare torch loop, naive pyqtgraph) in the same process on the same
data, warms both up, and reports the median of >= 3 repeats (``--repeats``). It prints
one table (what, protoview, anchor, ratio, target, pass/fail) and writes it as JSON
(``bench/results.json`` unless ``--json`` says otherwise). Compile / first-use costs
(numba, faiss/OpenMP start) are reported in their own rows, never mixed into steady
state. Not a test: CI never runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import Context, Row  # noqa: E402
from bench.cases import CASES  # noqa: E402


def machine() -> dict:
    import torch

    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        info["cpu"] = names[0] if names else platform.processor()
    except OSError:
        info["cpu"] = platform.processor()
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
        info["memory_gib"] = round(kb / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return info


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "s":
        return f"{value * 1e3:.1f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "img/s":
        return f"{value:,.0f} img/s"
    if unit == "%":
        return f"{value:.1f}%"
    return f"{value:.3g} {unit}".strip()


def table(rows: list[Row]) -> str:
    head = ("what", "protoview", "anchor", "ratio", "target", "result")
    body = []
    for r in rows:
        anchor = "—" if r.anchor is None else f"{_fmt(r.anchor, r.unit)} ({r.anchor_name})"
        ratio = "—" if r.ratio is None else f"{r.ratio:.2f}"
        result = {True: "pass", False: "FAIL", None: "info"}[r.passed]
        body.append((r.what, _fmt(r.value, r.unit), anchor, ratio, r.target or "—", result))
    widths = [max(len(str(x[i])) for x in (head, *body)) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(head, widths, strict=True)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in body]
    notes = [f"- {r.what}: {r.note}" for r in rows if r.note]
    return "\n".join(lines + ([""] + notes if notes else []))


def markdown(rows: list[Row], info: dict, quick: bool, seconds: float) -> str:
    """The table as Markdown, with the machine named (for bench/RESULTS.md)."""
    gpu = info.get("cuda") or "no GPU"
    out = [f"Machine: {info.get('cpu')}, {info['cpu_count']} cores, "
           f"{info.get('memory_gib', '?')} GiB, {gpu}; Python {info['python']}, torch "
           f"{info['torch']} ({info['torch_threads']} threads). "
           f"{'Quick' if quick else 'Full'} run, {seconds:.0f} s.", "",
           "| what | protoview | anchor (same run) | ratio | target | result |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        anchor = "—" if r.anchor is None else f"{_fmt(r.anchor, r.unit)} ({r.anchor_name})"
        ratio = "—" if r.ratio is None else f"{r.ratio:.2f}"
        result = {True: "pass", False: "**miss**", None: "info"}[r.passed]
        out.append(f"| {r.what} | {_fmt(r.value, r.unit)} | {anchor} | {ratio} | "
                   f"{r.target or '—'} | {result} |")
    notes = [f"- {r.what}: {r.note}" for r in rows if r.note]
    return "\n".join(out + ([""] + notes if notes else [])) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (under 3 minutes)")
    parser.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(CASES)}")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per measurement (>= 3)")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results.json")
    parser.add_argument("--markdown", type=Path, default=None,
                        help="also write the table as Markdown to this file")
    parser.add_argument("--n-map", type=int, default=None, help="points of the map benchmarks")
    parser.add_argument("--n-kmeans", type=int, default=None, help="points of the k-means benchmark")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    parser.add_argument("--gpu", action="store_true",
                        help="the GPU check (bench/gpu_check.py): every GPU row, each under its "
                             "own budget; the table into bench/RESULTS.md on a CUDA machine")
    parser.add_argument("--tiny", action="store_true",
                        help="with --gpu: tiny sizes, seconds (the CPU fallback)")
    parser.add_argument("--gpu-limit", type=float, default=450.0,
                        help="with --gpu: seconds for all rows (default 450: under 8 minutes)")
    args = parser.parse_args(argv)
    if args.gpu:
        from bench.gpu_check import ROWS, main_gpu

        names = [c.strip() for c in args.only.split(",") if c.strip()]
        unknown = sorted(set(names) - {name for name, _, _ in ROWS})
        if unknown:
            parser.error(f"unknown GPU row(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(name for name, _, _ in ROWS)}")
        return main_gpu(args.device, args.tiny, args.gpu_limit, args.markdown,
                        args.json if "--json" in (argv or sys.argv) else None, only=names)
    if args.repeats < 3:
        parser.error("--repeats must be at least 3 (a median of fewer says little)")
    chosen = [c.strip() for c in args.only.split(",") if c.strip()] or list(CASES)
    unknown = sorted(set(chosen) - set(CASES))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")

    ctx = Context(quick=args.quick, repeats=args.repeats, n_map=args.n_map,
                  n_kmeans=args.n_kmeans, device=args.device)
    info = machine()
    print(f"protoview bench ({'quick' if args.quick else 'full'}) on {info.get('cpu')}, "
          f"{info['cpu_count']} cores, torch {info['torch']} ({info['torch_threads']} threads), "
          f"GPU: {info['cuda'] or 'none'}", flush=True)
    rows: list[Row] = []
    started = time.perf_counter()
    for name in chosen:
        t0 = time.perf_counter()
        print(f"[{name}] ...", flush=True)
        new = CASES[name](ctx)
        for r in new:
            r.case = name
        rows += new
        print(table(new), flush=True)
        print(f"[{name}] {time.perf_counter() - t0:.0f} s\n", flush=True)
    total = time.perf_counter() - started
    print("=" * 30, f"all benchmarks ({total:.0f} s)", "=" * 30)
    print(table(rows))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(
        {"machine": info, "quick": args.quick, "repeats": args.repeats, "seconds": total,
         "date": time.strftime("%Y-%m-%d %H:%M:%S"), "rows": [r.as_dict() for r in rows]},
        indent=2, default=lambda o: o.item() if hasattr(o, "item") else str(o)))
    print(f"\nJSON: {args.json}")
    if args.markdown:
        args.markdown.write_text(markdown(rows, info, args.quick, total))
        print(f"Markdown: {args.markdown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
