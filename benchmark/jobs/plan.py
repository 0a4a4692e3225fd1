"""The jobs of a sweep and what each waits for, with the finished runs left out.

A sweep of strategies x seeds is a small graph of jobs (see :mod:`benchmark.jobs.work`)::

    data ──> single/seedN, joint/seedN
      └───> task0/seedN ──> finetune/seedN, er/seedN, der/seedN   (the continual strategies)
    every run ──> rl (with --rl)
    the runs of seed N ──> loop/seedN (with --rl --agent task0)

The Task-0 job trains the model that the continual strategies of its seed start from, so two
jobs never train the same cached model at once. A run whose ``results.json`` exists with the
same configuration (device and arithmetic aside: the same experiment run elsewhere) is
finished and gets no job; a run folder with another configuration is refused before anything
starts, since resuming it would mix two experiments.

With ``--agent task0`` each seed has its own agent (trained through that seed's Task-0 model), so
instead of one ``rl`` job over every VAE each seed gets a ``loop`` job: ``benchmark.run --resume
--rl --agent task0`` on that seed's strategies, whose runs are finished by then and kept as they
are, so it only trains (or reuses) the seed's agent and plays its matrix.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmark.continual.config import run_dir
from benchmark.continual.runner import config_differences
from benchmark.rl.config import matrix_folder
from benchmark.run import build_parser, resolve_setup
from strategies.registry import get_strategy

DATA, TASK0, RUN, RL, LOOP = "data", "task0", "run", "rl", "loop"
"""Job kinds, named after what they make."""


class PlanError(ValueError):
    """A sweep that cannot start (bad seeds, a run folder of another configuration); one line."""


@dataclass(frozen=True)
class Job:
    """One unit of work: a kind, the command line it runs, and the jobs it waits for."""

    name: str
    """``data``, ``task0/seed1``, ``der/seed1``, ``rl``: unique within a plan."""
    kind: str
    argv: tuple[str, ...]
    needs: tuple[str, ...] = ()
    run_dir: Path | None = None
    """The run folder a ``run`` job writes."""


@dataclass(frozen=True)
class Plan:
    jobs: tuple[Job, ...]
    """In an order where every job comes after what it needs."""
    finished: tuple[str, ...]
    """Runs (``der/seed1``) that are already finished and get no job."""
    out: Path
    preset: str


def parse_seeds(text: str) -> list[int]:
    """``0-4``, ``0,2,7`` or ``3`` (ranges and lists may mix: ``0-2,5``); raises ``PlanError``."""
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        try:
            low, _, high = part.partition("-")
            first, last = int(low), int(high or low)
        except ValueError:
            raise PlanError(f"--seeds expects numbers and ranges such as 0-4 or 0,2,5, got {text!r}") from None
        if first < 0 or last < first:
            raise PlanError(f"--seeds range {part!r} must be non-negative and increasing")
        seeds += [s for s in range(first, last + 1) if s not in seeds]
    return seeds


def _run_argv(base: Sequence[str], strategy: str, seed: int) -> tuple[str, ...]:
    return (*base, "--strategy", strategy, "--seed", str(seed), "--resume", "--no-progress")


def _is_finished(directory: Path, cfg: object) -> bool:
    """True for a finished run of ``cfg``; ``PlanError`` for a folder of another configuration."""
    if not (directory / "config.json").is_file():
        return False
    try:
        diff = config_differences(directory, cfg, ignore=("device", "fast"))  # type: ignore[arg-type]
    except (OSError, ValueError):
        raise PlanError(f"{directory}/config.json is unreadable; remove the folder or choose another --out") from None
    if diff:
        raise PlanError(
            f"{directory} holds a run of another configuration (differs in {', '.join(diff)}); "
            "choose another --out or remove that folder"
        )
    return (directory / "results.json").is_file()


def plan_sweep(
    strategies: Sequence[str],
    seeds: Sequence[int],
    base_argv: Sequence[str],
    rl_argv: Sequence[str] | None = None,
    task0_agent: bool = False,
) -> Plan:
    """The jobs of ``strategies`` x ``seeds``, each ``benchmark.run BASE_ARGV --strategy S --seed N``.

    ``base_argv`` holds every other flag of ``benchmark.run`` (data, training, ``--out``...);
    it is parsed and checked here, so a mistake is one line before any job starts. With
    ``rl_argv`` (a ``benchmark.rl`` command line) a closed-loop job follows the runs; with
    ``task0_agent`` a ``loop`` job per seed follows that seed's runs (see the module's docstring).
    Either is left out when the runs it follows were finished already and its matrix exists.
    """
    parser = build_parser()
    jobs: list[Job] = []
    finished: list[str] = []
    args: argparse.Namespace | None = None
    for seed in seeds:
        task0_needed_by: list[str] = []
        seed_jobs: list[Job] = []
        for strategy in strategies:
            argv = _run_argv(base_argv, strategy, seed)
            args = parser.parse_args(list(argv))
            setup = resolve_setup(args)
            directory = run_dir(args.out, strategy, seed)
            if _is_finished(directory, setup.run_config(strategy, args)):
                finished.append(f"{strategy}/seed{seed}")
                continue
            continual = get_strategy(strategy).schedule == "continual"
            needs = (f"{TASK0}/seed{seed}",) if continual else (DATA,)
            seed_jobs.append(Job(f"{strategy}/seed{seed}", RUN, argv, needs, directory))
            if continual:
                task0_needed_by.append(strategy)
        if task0_needed_by:
            argv = _run_argv(base_argv, task0_needed_by[0], seed)
            jobs.append(Job(f"{TASK0}/seed{seed}", TASK0, argv, (DATA,)))
        jobs += seed_jobs
        if task0_agent:
            runs = tuple(j.name for j in seed_jobs)
            matrix = _loop_matrix(strategies, seed, base_argv)
            if runs or matrix is None or not matrix.is_file():
                jobs.append(Job(f"{LOOP}/seed{seed}", LOOP, _loop_argv(base_argv, strategies, seed), runs))
    if args is None:
        raise PlanError("a sweep needs at least one strategy and one seed")
    if jobs:
        data_argv = _run_argv(base_argv, strategies[0], seeds[0])
        jobs.insert(0, Job(DATA, DATA, data_argv))
    if rl_argv is not None:
        runs = tuple(j.name for j in jobs if j.kind == RUN)
        matrix = _rl_out(rl_argv, args.out, args.preset) / "matrix.json"
        if runs or not matrix.is_file():
            jobs.append(Job(RL, RL, tuple(rl_argv), runs))
    return Plan(tuple(jobs), tuple(finished), args.out, args.preset)


def _loop_argv(base: Sequence[str], strategies: Sequence[str], seed: int) -> tuple[str, ...]:
    return (*_run_argv(base, ",".join(strategies), seed), "--rl", "--agent", "task0")


def _loop_matrix(strategies: Sequence[str], seed: int, base_argv: Sequence[str]) -> Path | None:
    """Where the ``loop`` job of ``seed`` writes its matrix: beside the agent trained through that
    seed's Task-0 model, so known once that model is (None before)."""
    from benchmark.rl.agent import AgentError
    from benchmark.run import task0_agent

    args = build_parser().parse_args(list(_loop_argv(base_argv, strategies, seed)))
    try:
        key = task0_agent(args, resolve_setup(args)).key()
    except AgentError:  # the Task-0 model is not trained yet
        return None
    return matrix_folder(args.out, args.preset, Path(key)) / "matrix.json"


def _rl_out(rl_argv: Sequence[str], out: Path, preset: str) -> Path:
    """The folder ``benchmark.rl matrix`` writes to (its ``--out``, else :func:`matrix_folder`)."""
    argv = list(rl_argv)
    if "--out" in argv:
        return Path(argv[argv.index("--out") + 1])
    return matrix_folder(out, preset, Path(argv[argv.index("--agent") + 1]) if "--agent" in argv else None)
