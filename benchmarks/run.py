"""Run every benchmark (`benchmarks/bench_*.py`) and write results/latest.json and results/latest.md.

    python -m benchmarks.run            # all benchmarks
    python -m benchmarks.run extract    # only bench_extract.py

Each module exposes `run() -> list[dict]`; a row is {"benchmark", "metric", "value", "unit", "note"}
and may add "ratio" (to the baseline named in "note"). Slowness never fails the session: a benchmark
that raises is reported as an error row and the others still run.
"""

from __future__ import annotations

import importlib
import json
import platform
import sys
import time
import traceback
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def machine() -> dict:
    import os

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def to_markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        "# Benchmarks",
        "",
        f"Machine: {m['cpus']} CPUs, {m['platform']}, Python {m['python']}, torch {m['torch']}, "
        f"CUDA {m['cuda']}; run {m['date']}.",
        "",
        "| benchmark | metric | value | unit | ratio | note |",
        "|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        value = r.get("value")
        v = f"{value:.4g}" if isinstance(value, float) else str(value)
        ratio = r.get("ratio")
        rt = f"{ratio:.2f}x" if isinstance(ratio, (int, float)) else ""
        lines.append(
            f"| {r['benchmark']} | {r['metric']} | {v} | {r.get('unit', '')} | {rt} | {r.get('note', '')} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    names = argv or sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    rows: list[dict] = []
    for name in names:
        mod_name = f"benchmarks.bench_{name}"
        print(f"== {mod_name}", flush=True)
        t0 = time.perf_counter()
        try:
            mod = importlib.import_module(mod_name)
            got = mod.run()
        except Exception as e:  # a broken benchmark is reported, the others still run
            traceback.print_exc()
            got = [{"benchmark": name, "metric": "error", "value": f"{type(e).__name__}: {e}", "unit": ""}]
        for r in got:
            r.setdefault("benchmark", name)
            print("  ", r, flush=True)
        rows.extend(got)
        print(f"   ({time.perf_counter() - t0:.1f} s)", flush=True)
    results = {"machine": machine(), "rows": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    md = to_markdown(results)
    (RESULTS / "latest.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
