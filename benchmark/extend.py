"""``benchmark.run --extend RUN --tasks ...`` (and ``--retrain``): a finished run taught more tasks.

    python -m benchmark.run --extend runs/der/seed0 --tasks canonical,randomized,noisy,textured --out runs-ext
    python -m benchmark.run --extend runs/der/seed0 --tasks canonical,randomized,noisy,textured --retrain \
        --out runs-retrained

The extension continues the run from its final state (model, optimizer, plugin state, RNG) and
trains only the new experiences (:mod:`benchmark.continual.extend`); ``--retrain`` trains the
same strategy and configuration from scratch on the whole longer stream, the baseline an
extension is measured against. Both print their wall time and the forgetting of the old tasks
that the new ones caused, and record them in ``results.json`` (``extension``).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from benchmark.cli import check_writable_folder, fail, import_modules, load_data, sigterm_as_interrupt
from benchmark.common.device import configure_threads, resolve_device
from benchmark.common.io import write_json
from benchmark.continual.config import run_dir
from benchmark.continual.extend import ExtendError, check_overrides, extended_config, finished_config, prepare_extension
from benchmark.continual.runner import ResumeError, run_strategy
from benchmark.mapping.fastpath import resolve_fast_path
from benchmark.presets import expand_epochs

REPORTED = ("mse", "target_error_m")


def _given(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """The data and training flags the user set (None for those left at their defaults)."""
    from benchmark.run import train_overrides

    given = train_overrides(args)
    given.pop("epochs")
    given.update(n_train=args.n_train, n_test=args.n_test, resolution=args.resolution)
    given["seed"] = args.data_seed if args.data_seed != parser.get_default("data_seed") else None
    given["preset"] = args.preset if args.preset != parser.get_default("preset") else None
    given["strategy"] = args.strategy
    return given


def _forgetting(results: dict[str, Any], old_tasks: int) -> dict[str, list[float]]:
    """Per old task: final value minus its value when the old run ended (positive = the new tasks made it worse)."""
    out = {}
    for key in REPORTED:
        matrix = np.asarray(results["mse_matrix" if key == "mse" else f"{key}_matrix"], dtype=float)
        out[key] = (matrix[-1, :old_tasks] - matrix[old_tasks - 1, :old_tasks]).tolist()
    return out


def extend(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """The ``--extend`` / ``--retrain`` branch of ``benchmark.run``; every input checked before any work."""
    try:
        if args.extend is None:
            raise ExtendError("--retrain needs --extend RUN (the run whose configuration to retrain)")
        if args.tasks is None:
            raise ExtendError("--extend needs --tasks: the run's tasks, then the new ones")
        import_modules(args.imports)
        old = finished_config(args.extend)
        check_overrides(old, _given(args, parser))
        device = resolve_device(args.device)
        fast = resolve_fast_path(args.precision, device, args.channels_last, args.compile)
        epochs = expand_epochs(args.epochs, len(args.tasks)) if args.epochs is not None else None
        cfg = extended_config(old, args.tasks, epochs, fast, str(device), retrain=args.retrain)
        check_writable_folder(args.out, "runs folder (--out)")
        target = run_dir(args.out, cfg.strategy, cfg.seed)
        if target.resolve() == args.extend.resolve():
            raise ExtendError("--out must differ from the extended run's runs folder (the original is never modified)")
        if (target / "results.json").exists():
            raise ExtendError(f"{target} holds a finished run; choose another --out")
    except (KeyError, ValueError) as exc:
        return fail(str(exc).strip("'\""), 2)
    except OSError as exc:
        return fail(str(exc), 2)
    old_tasks = len(old["data"]["tasks"])
    with sigterm_as_interrupt():
        try:
            configure_threads()
            data, _ = load_data(cfg.data, args)
            started = time.perf_counter()
            if not args.retrain:
                prepare_extension(args.extend, cfg, data, args.out, device)
            results = run_strategy(cfg, data, args.out, resume=not args.retrain, progress=not args.no_progress)
            wall = time.perf_counter() - started
        except (ExtendError, ResumeError) as exc:
            return fail(str(exc), 2)
        except KeyboardInterrupt:
            return fail("interrupted; nothing of the original run was changed", 130)
    results["extension"] = {
        "from": str(args.extend.resolve()),
        "kind": "retrain" if args.retrain else "extension",
        "old_tasks": old_tasks,
        "wall_time_s": round(wall, 2),
        "forgetting_of_old_tasks": _forgetting(results, old_tasks),
    }
    write_json(target / "results.json", results)
    what = "retrained from scratch" if args.retrain else f"extended by {len(cfg.data.tasks) - old_tasks} task(s)"
    print(f"{cfg.strategy} seed {cfg.seed} {what} in {wall:.1f} s -> {target}")
    for key, values in results["extension"]["forgetting_of_old_tasks"].items():
        cells = ", ".join(f"{t} {v:+.5f}" for t, v in zip(cfg.data.tasks[:old_tasks], values, strict=True))
        print(f"  change of final {key} on the old tasks: {cells}")
    cells = ", ".join(f"{t} {v:.5f}" for t, v in zip(cfg.data.tasks, results["final_mse"], strict=True))
    print(f"  final MSE per test task: {cells}")
    return 0
