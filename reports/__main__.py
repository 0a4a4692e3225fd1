"""``python -m reports --runs runs/ --out reports/out``: the report of every run under a folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark.cli import fail, setup_logging
from reports.build import ReportError, build_report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reports", description="Tables, figures, report.md and report.html from run folders."
    )
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="runs folder (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("reports/out"), help="output folder (default: %(default)s)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("data"),
        help="dataset cache for the reconstruction grid (default: %(default)s)",
    )
    parser.add_argument("--no-grid", action="store_true", help="skip the reconstruction grid (needs the data)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    try:
        report = build_report(args.runs, args.out, args.data_dir, grid=not args.no_grid)
    except ReportError as exc:
        return fail(str(exc))
    except OSError as exc:
        return fail(f"cannot write the report to {args.out}: {exc.strerror or exc}")
    print(f"report of preset(s) {', '.join(report.presets)}: {report.markdown} and {report.html}")
    if report.problems:
        print(f"{len(report.problems)} file(s) left out, listed in the report")
    return 0


if __name__ == "__main__":
    sys.exit(main())
