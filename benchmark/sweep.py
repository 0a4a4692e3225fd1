"""Every (strategy, seed) as a job on submitit, on this machine or on a SLURM cluster.

    python -m benchmark.sweep --strategy all --seeds 0-4 --preset quick
    python -m benchmark.sweep --strategy er,der --seeds 0-2 --rl --report
    python -m benchmark.sweep --strategy er,der --seeds 0-2 --freeze-decoder --rl --agent task0
    python -m benchmark.sweep --strategy all --seeds 0-4 --executor slurm --partition gpu --gpus-per-job 1

Any other flag of ``python -m benchmark.run`` (data, training, ``--out``, ``--device``...) is
passed to every job. Running the same sweep again skips the finished runs and resumes the
killed ones from their last finished experience. Exit codes: 0 every job succeeded, 1 some
failed (each named with its log), 2 usage error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from benchmark.cli import (
    check_writable_folder,
    fail,
    import_modules,
    positive_int,
    setup_logging,
    sigterm_as_interrupt,
)
from benchmark.common.device import available_cores
from benchmark.jobs.engine import ExecutorSpec, Outcome, counts, default_split, execute, failed
from benchmark.jobs.plan import parse_seeds, plan_sweep
from benchmark.run import build_parser as build_run_parser
from benchmark.run import check_rl_flags, is_task0_agent, parse_strategies

PROG = "python -m benchmark.sweep"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Every other flag is one of 'python -m benchmark.run --help' and reaches every job.",
        allow_abbrev=False,  # --seed must not silently become --seeds
    )
    parser.add_argument("--strategy", default="all", help="a name, a comma list, or 'all' (default: all)")
    parser.add_argument("--seeds", default="0", help="seeds, as 0-4, 0,2,5 or 3 (default: 0)")
    parser.add_argument("--executor", choices=("local", "slurm"), default="local", help="(default: local)")
    parser.add_argument("--rl", action="store_true", help="then the closed-loop matrix over every VAE under --out")
    parser.add_argument("--agent", type=Path, default=None, metavar="DIR",
                        help="with --rl: the trained agent folder of the matrix (default: the preset's), "
                             "or 'task0': per seed, the agent trained through that seed's Task-0 model")  # fmt: skip
    parser.add_argument("--report", nargs="?", const=Path("reports/out"), type=Path, metavar="DIR",
                        help="at the end, the report of every run under --out (default DIR: reports/out)")  # fmt: skip
    local = parser.add_argument_group("local executor (default: one single-thread job per core)")
    local.add_argument("--jobs", type=positive_int, default=None, help="jobs at once")
    local.add_argument("--threads-per-job", type=positive_int, default=None, help="cores of each job")
    slurm = parser.add_argument_group("slurm executor")
    slurm.add_argument("--partition", default=None, help="SLURM partition")
    slurm.add_argument("--time", type=positive_int, default=240, help="time limit per job, minutes (default: 240)")
    slurm.add_argument("--gpus-per-job", type=int, default=0, help="GPUs per job (default: 0)")
    slurm.add_argument("--cpus-per-job", type=positive_int, default=None, help="CPUs per job")
    slurm.add_argument("--mem", type=float, default=None, help="memory per job, GB")
    return parser


def _executor_spec(args: argparse.Namespace, out: Path) -> ExecutorSpec:
    cores = available_cores()
    jobs, threads = default_split(cores)
    if args.threads_per_job is not None:
        threads = min(args.threads_per_job, cores)
        jobs = max(1, cores // threads)
    if args.jobs is not None:
        jobs = args.jobs
        threads = args.threads_per_job or max(1, cores // jobs)
    if args.gpus_per_job < 0:
        raise ValueError(f"--gpus-per-job must not be negative, got {args.gpus_per_job}")
    return ExecutorSpec(
        kind=args.executor,
        folder=out / "_sweep" / "logs",
        jobs=jobs,
        threads_per_job=threads,
        partition=args.partition,
        time_min=args.time,
        gpus_per_job=args.gpus_per_job,
        cpus_per_job=args.cpus_per_job,
        mem_gb=args.mem,
    )


def _rl_argv(run_args: argparse.Namespace, agent: Path | None = None) -> list[str]:
    argv = ["matrix", "--runs", str(run_args.out), "--preset", run_args.preset, "--device", run_args.device,
            "--precision", run_args.precision, "--data-dir", str(run_args.data_dir), "--no-progress"]  # fmt: skip
    if run_args.resolution is not None:
        argv += ["--resolution", str(run_args.resolution)]
    if agent is not None:
        argv += ["--agent", str(agent)]
    return argv


class ProgressLine:
    """``sweep: 3 done, 2 running, 0 failed, 7 queued, 0:05:12``: rewritten in place on a terminal,
    a new line at each change elsewhere (logs, CI)."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.started = time.time()
        self.last = ""
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def line(self, outcomes: dict[str, Outcome]) -> str:
        c = counts(outcomes)
        wall = time.strftime("%H:%M:%S", time.gmtime(time.time() - self.started))
        not_run = f", {c['not run']} not run" if c["not run"] else ""
        return f"sweep: {c['done']} done, {c['running']} running, {c['failed']} failed{not_run}, {c['queued']} queued"\
            f" | {wall}"  # fmt: skip

    def __call__(self, outcomes: dict[str, Outcome]) -> None:
        text = self.line(outcomes)
        if self.tty:
            print("\r" + text, end="", file=self.stream, flush=True)
        elif text.split(" | ")[0] != self.last.split(" | ")[0]:
            print(text, file=self.stream, flush=True)
        self.last = text

    def close(self) -> None:
        if self.tty and self.last:
            print(file=self.stream)


def summary(out: Path, preset: str, strategies: list[str], seeds: list[int]) -> str:
    """The final MSE per test task of the sweep's runs, over its seeds, as a Markdown table."""
    from reports.collect import collect
    from reports.tables import display, final_mse_table, to_markdown

    runs = [r for r in collect(out).runs if r.preset == preset and r.strategy in strategies and r.seed in seeds]
    if not runs:
        return "no finished run to summarise"
    table = display(final_mse_table(runs)).drop(columns="preset")
    return f"\nfinal MSE per test task (mean per pixel) over seeds, preset {preset}\n" + to_markdown(table)


def main(argv: list[str] | None = None) -> int:
    args, rest = build_parser().parse_known_args(argv)
    setup_logging()
    if "--seed" in rest or any(a.startswith("--seed=") for a in rest):
        return fail("a sweep takes --seeds (e.g. 0-4), not --seed", 2)
    run_parser = build_run_parser(PROG)
    try:
        run_args = run_parser.parse_args([*rest, "--strategy", "finetune"])
        import_modules(run_args.imports)
        strategies = parse_strategies(args.strategy)
        seeds = parse_seeds(args.seeds)
        task0 = is_task0_agent(args.agent)
        check_rl_flags(args.rl, args.agent, run_args.preset, run_args.resolution or 64, strategies)
        check_writable_folder(run_args.out, "runs folder (--out)")
        if args.report is not None:
            check_writable_folder(args.report, "report folder (--report)")
        spec = _executor_spec(args, run_args.out)
        if spec.kind == "slurm" and shutil.which("sbatch") is None:
            raise ValueError("--executor slurm needs SLURM's sbatch, which this machine does not have")
        rl_argv = _rl_argv(run_args, args.agent) if args.rl and not task0 else None
        plan = plan_sweep(strategies, seeds, rest, rl_argv, task0_agent=task0)
    except (KeyError, ValueError) as exc:
        return fail(str(exc).strip("'\""), 2)
    except OSError as exc:
        return fail(str(exc), 2)
    runs = sum(job.kind == "run" for job in plan.jobs)
    print(
        f"sweep: {len(strategies)} strategies x {len(seeds)} seeds on {spec.kind}"
        + (f" ({spec.jobs} jobs x {spec.threads_per_job} threads)" if spec.kind == "local" else "")
        + f": {runs} runs to do, {len(plan.finished)} finished already; logs in {spec.folder}",
        file=sys.stderr,
    )
    progress = ProgressLine()
    with sigterm_as_interrupt():
        try:
            outcomes = execute(plan, spec, progress)
        except KeyboardInterrupt:
            progress.close()
            return fail("interrupted; the running jobs were stopped (rerun the same command to resume them)", 130)
    progress.close()
    for outcome in failed(outcomes):
        where = f" (log: {outcome.log})" if outcome.log else ""
        print(f"{outcome.state}: {outcome.name}: {outcome.message}{where}", file=sys.stderr)
    code = 1 if failed(outcomes) else 0
    print(summary(run_args.out, run_args.preset, strategies, seeds))
    if code == 0 and args.report is not None:
        from benchmark.run import write_report

        code = write_report(run_args.out, args.report, run_args.data_dir)
    return code


if __name__ == "__main__":
    sys.exit(main())
