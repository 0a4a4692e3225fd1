"""What one sweep job does, as plain functions that submitit pickles and runs in another process.

Every job takes the command line of one ``python -m benchmark.run`` (``argv``), so a job
trains exactly what that command would, with the same checks, files and exit codes:

- :func:`prepare_data`: render (or check) the data set every run of the sweep shares;
- :func:`train_task0`: train the shared Task-0 model of one seed, once, before the continual
  strategies of that seed start (they would otherwise each train it at the same time);
- :func:`train_run`: ``benchmark.run --resume`` for one (strategy, seed), so a killed run
  continues from its last finished experience;
- :func:`closed_loop`: ``benchmark.rl matrix`` over the sweep's VAEs.

A ``loop`` job (``--agent task0``, one per seed) is :func:`train_run` too: ``benchmark.run
--resume --rl --agent task0`` on that seed's finished runs.

``cores`` pins a local job to its share of the machine (the thread count follows, see
:func:`benchmark.common.device.configure_threads`); on a cluster the scheduler does that.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any


class JobFailed(RuntimeError):
    """A job's command ended with a non-zero exit code (its error line is in the job's log)."""


def _pin(cores: Sequence[int] | None) -> None:
    if cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(cores))


def _timed(work: Callable[[], int], what: str) -> dict[str, Any]:
    """Run ``work`` with SIGTERM as Ctrl-C, as the commands do: submitit's own handler ignores
    SIGTERM, and forked workers (rendering pools) that inherit it cannot be stopped."""
    from benchmark.cli import sigterm_as_interrupt

    started = time.time()
    with sigterm_as_interrupt():
        code = work()
    if code != 0:
        raise JobFailed(f"{what} exited with code {code}")
    return {"started": started, "finished": time.time()}


def train_run(argv: Sequence[str], cores: Sequence[int] | None = None) -> dict[str, Any]:
    """``python -m benchmark.run ARGV`` in this process."""
    _pin(cores)
    from benchmark.run import main

    return _timed(lambda: main(list(argv)), "benchmark.run")


def prepare_data(argv: Sequence[str], cores: Sequence[int] | None = None) -> dict[str, Any]:
    """The data set of ``benchmark.run ARGV``, from the cache or rendered into it."""
    _pin(cores)
    from benchmark.cli import load_data, setup_logging
    from benchmark.run import build_parser, resolve_setup

    def work() -> int:
        setup_logging()
        args = build_parser().parse_args(list(argv))
        load_data(resolve_setup(args).spec, args)
        return 0

    return _timed(work, "data")


def train_task0(argv: Sequence[str], cores: Sequence[int] | None = None) -> dict[str, Any]:
    """The shared Task-0 model of ``benchmark.run ARGV`` (its first strategy must be a continual one)."""
    _pin(cores)
    from benchmark.cli import load_data, setup_logging
    from benchmark.common.device import configure_threads
    from benchmark.continual.runner import shared_task0
    from benchmark.run import build_parser, resolve_setup

    def work() -> int:
        setup_logging()
        args = build_parser().parse_args(list(argv))
        setup = resolve_setup(args)
        configure_threads()
        data, _ = load_data(setup.spec, args)
        shared_task0(setup.run_config(setup.strategies[0], args), setup.device, data, args.out, progress=False)
        return 0

    return _timed(work, "Task-0 training")


def closed_loop(argv: Sequence[str], cores: Sequence[int] | None = None) -> dict[str, Any]:
    """``python -m benchmark.rl ARGV`` (the ``matrix`` subcommand) in this process."""
    _pin(cores)
    from benchmark.rl.__main__ import main

    return _timed(lambda: main(list(argv)), "benchmark.rl")
