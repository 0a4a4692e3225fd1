"""Sweep overhead and scaling: one seed sequentially vs through the local executor, and job throughput.

    python bench/sweep.py [--preset quick] [--rounds 1] [-- EXTRA RUN FLAGS, e.g. --epochs 5,2,2]

Prints, measured side by side in one run (A and B alternate ``--rounds`` times, the median kept):
- wall time of one seed of ``--strategy all`` run as today, ``python -m benchmark.run`` in one
  process (A), and through ``python -m benchmark.sweep`` with the local executor's default
  job/thread split (B), each into a fresh runs folder; their ratio (goal: B at most 1.05 x A);
- job throughput (jobs per hour) of ``k`` one-thread ``finetune`` jobs run at once, ``k`` from
  1 to the cores, and its ratio to ``k`` times the throughput of one job (goal on a machine with
  more cores: at least 0.8).

Extra flags after ``--`` go to every run (shorter epochs give a quick, pessimistic reading:
the fixed cost of each job weighs more). The data set is rendered once, before any timing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("extra", nargs="*", help="flags for every run, after --")
    args = parser.parse_args(argv)
    py = sys.executable
    common = ["--preset", args.preset, "--data-dir", args.data_dir, "--no-progress", *args.extra]
    subprocess.run([py, "-m", "benchmark.data", "--preset", args.preset, "--data-dir", args.data_dir], cwd=ROOT,
                   check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    cores = len(os.sched_getaffinity(0))
    work = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    try:
        seq, par = [], []
        for r in range(args.rounds):
            a, b = work / f"seq{r}", work / f"sweep{r}"
            seq.append(_timed([py, "-m", "benchmark.run", "--strategy", "all", "--seed", str(args.seed),
                               "--out", str(a), *common]))  # fmt: skip
            par.append(_timed([py, "-m", "benchmark.sweep", "--strategy", "all", "--seeds", str(args.seed),
                               "--out", str(b), *common]))  # fmt: skip
            print(f"round {r}: sequential {seq[-1]:.1f} s, sweep {par[-1]:.1f} s", flush=True)
        a_med, b_med = statistics.median(seq), statistics.median(par)
        print(f"\none seed of --strategy all ({args.preset} {' '.join(args.extra)}), {cores} cores:")
        print(f"  A benchmark.run, one process        {a_med:8.1f} s")
        print(f"  B benchmark.sweep, default split    {b_med:8.1f} s")
        print(f"  B / A                               {b_med / a_med:8.3f}   (goal <= 1.05)")

        print("\njob throughput, k one-thread finetune jobs at once (different seeds):")
        base_rate = None
        for k in range(1, cores + 1):
            out = work / f"k{k}"
            seeds = f"{100}-{100 + k - 1}"
            wall = _timed([py, "-m", "benchmark.sweep", "--strategy", "finetune", "--seeds", seeds, "--jobs", str(k),
                           "--threads-per-job", "1", "--out", str(out), *common])  # fmt: skip
            rate = k / wall * 3600
            base_rate = base_rate or rate
            print(f"  k={k}: {wall:7.1f} s, {rate:7.1f} jobs/h, {rate / (k * base_rate):.2f} x linear")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
