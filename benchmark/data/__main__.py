"""Pre-generate (or check) the cached data sets, and draw a preview.

python -m benchmark.data --preset quick --preview preview.png
"""

from __future__ import annotations

import argparse
import sys
import warnings

from benchmark.cli import (
    add_data_arguments,
    add_import_argument,
    data_spec_from_args,
    fail,
    import_modules,
    load_data,
    positive_int,
    setup_logging,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmark.data", description=__doc__.split("\n")[0])
    add_import_argument(parser)
    add_data_arguments(parser)
    parser.add_argument("--preview", metavar="OUT.png", default=None, help="write a grid of samples per task")
    parser.add_argument("--preview-samples", type=positive_int, default=8, help="columns of the preview (default: 8)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    warnings.filterwarnings("ignore", message="no QP solver found")
    try:
        import_modules(args.imports)
        spec = data_spec_from_args(args)
    except (KeyError, ValueError) as exc:
        return fail(str(exc).strip("'\""), 2)
    try:
        data, directory = load_data(spec, args)
    except OSError as exc:
        return fail(f"cannot write the data cache: {exc}")
    print(
        f"{directory}: {len(spec.tasks)} tasks ({', '.join(spec.tasks)}), "
        f"{spec.n_train} train / {spec.n_test} test images each, {spec.scene.resolution}x{spec.scene.resolution}"
    )
    if args.preview:
        from benchmark.data.preview import save_preview

        try:
            save_preview(data, spec.tasks, args.preview, samples=args.preview_samples)
        except (OSError, ValueError) as exc:
            return fail(f"cannot write the preview {args.preview}: {exc}")
        print(f"preview written to {args.preview}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
