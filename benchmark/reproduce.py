"""Check a sweep against the reproduction targets (``benchmark/targets.csv``).

    python -m benchmark.reproduce --preset quick
    python -m benchmark.reproduce --preset quick --no-run --runs runs
    python -m benchmark.reproduce --preset quick --write-targets benchmark/targets.csv

Runs the sweep of the targets' strategies and seeds first (``python -m benchmark.sweep``:
finished runs are only read), then prints benchmark | strategy | metric | expected |
reproduced | ok. Exit codes: 0 every target reproduced, 1 one or more outside their tolerance
(or a sweep job failed), 2 usage error. ``--write-targets`` makes a targets file from the runs
at hand instead (see :mod:`reports.targets` for the tolerance).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark.cli import fail, setup_logging
from benchmark.jobs.plan import PlanError, parse_seeds
from benchmark.presets import PRESETS
from reports.collect import collect
from reports.targets import TargetError, check, format_check, make_targets, read_targets

TARGETS = Path(__file__).with_name("targets.csv")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmark.reproduce",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--preset", choices=list(PRESETS), default="quick", help="(default: %(default)s)")
    parser.add_argument("--targets", type=Path, default=TARGETS, help="targets file (default: the shipped one)")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="runs folder (default: %(default)s)")
    parser.add_argument("--seeds", default=None, help="seeds to check (default: those the targets were made with)")
    parser.add_argument("--no-run", action="store_true", help="only read the runs folder; start no sweep")
    parser.add_argument("--data-dir", type=Path, default=Path("data"), help="data cache (default: %(default)s)")
    parser.add_argument("--write-targets", type=Path, default=None, metavar="FILE",
                        help="write targets from the runs at hand (needs --seeds) instead of checking")  # fmt: skip
    return parser


def _write(args: argparse.Namespace) -> int:
    if args.seeds is None:
        return fail("--write-targets needs --seeds (the seeds whose runs make the targets)", 2)
    seeds = parse_seeds(args.seeds)
    runs = [r for r in collect(args.runs).runs if r.preset == args.preset and r.seed in seeds]
    if not runs:
        return fail(f"no {args.preset} runs of seeds {args.seeds} under {args.runs}", 2)
    table = make_targets(runs, args.seeds)
    args.write_targets.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.write_targets, index=False, float_format="%.6g")
    print(f"{len(table)} targets of {table['strategy'].nunique()} strategies -> {args.write_targets}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    try:
        if args.write_targets is not None:
            return _write(args)
        targets = read_targets(args.targets, args.preset)
        seeds_text = args.seeds or str(targets["seeds"].iloc[0])
        seeds = parse_seeds(seeds_text)
    except (PlanError, TargetError) as exc:
        return fail(str(exc), 2)
    strategies = list(dict.fromkeys(targets["strategy"]))
    if not args.no_run:
        from benchmark.sweep import main as sweep

        code = sweep(["--strategy", ",".join(strategies), "--seeds", seeds_text, "--preset", args.preset,
                      "--out", str(args.runs), "--data-dir", str(args.data_dir)])  # fmt: skip
        if code != 0:
            return code
    result = check(targets, collect(args.runs).runs, seeds)
    print(format_check(result))
    bad = int((~result.table["ok"]).sum())
    print(f"\n{len(result.table) - bad} of {len(result.table)} targets reproduced over seeds {seeds_text}")
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
