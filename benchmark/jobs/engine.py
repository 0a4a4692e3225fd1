"""Running a :class:`~benchmark.jobs.plan.Plan` on submitit: local processes or SLURM jobs.

- ``local``: submitit's ``LocalExecutor``, one process per job. At most ``jobs`` run at once,
  each pinned to its own ``threads_per_job`` cores, so the cores are never oversubscribed. A
  job starts when what it needs has finished; the data and closed-loop jobs, which use every
  core themselves, run alone.
- ``slurm``: submitit's ``SlurmExecutor``; every job is submitted at once, waiting on what it
  needs with SLURM's own ``--dependency=afterok`` (``--kill-on-invalid-dep`` cancels the
  dependents of a failed job).

Both write the same run folders. A failed job is reported with its log file; the jobs that
do not need it go on. Ctrl-C (or SIGTERM) cancels the jobs still running, which keep their
finished experiences: running the same sweep again resumes them.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit

from benchmark.common.device import available_cores
from benchmark.jobs import work
from benchmark.jobs.plan import DATA, LOOP, RL, RUN, TASK0, Job, Plan

FUNCTIONS: dict[str, Callable[..., dict[str, Any]]] = {
    DATA: work.prepare_data,
    TASK0: work.train_task0,
    RUN: work.train_run,
    RL: work.closed_loop,
    LOOP: work.train_run,
}
EXCLUSIVE = (DATA, RL, LOOP)
"""Job kinds that use every core of the machine themselves (rendering pools, vectorized envs)."""
LOCAL_TIMEOUT_MIN = 7 * 24 * 60
"""submitit's local executor kills a job after ``timeout_min`` (2 minutes unless told)."""
DONE, FAILED, NOT_RUN, RUNNING, QUEUED = "done", "failed", "not run", "running", "queued"


@dataclass(frozen=True)
class ExecutorSpec:
    """Where and how the jobs run."""

    kind: str = "local"
    """``local`` or ``slurm``."""
    folder: Path = Path("runs/_sweep/logs")
    """submitit's folder: each job's pickles and its ``.out`` and ``.err`` logs."""
    jobs: int = 1
    """local: jobs at once."""
    threads_per_job: int = 1
    """local: cores (and torch threads) of each job."""
    partition: str | None = None
    time_min: int = 240
    """slurm: time limit of each job, minutes."""
    gpus_per_job: int = 0
    cpus_per_job: int | None = None
    mem_gb: float | None = None
    poll_s: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in ("local", "slurm"):
            raise ValueError(f"unknown executor {self.kind!r}; valid: local, slurm")
        if self.jobs < 1 or self.threads_per_job < 1 or self.time_min < 1 or self.gpus_per_job < 0:
            raise ValueError("jobs, threads per job and time must be positive, GPUs per job not negative")


@dataclass
class Outcome:
    """What became of one job."""

    name: str
    state: str = QUEUED
    log: Path | None = None
    message: str = ""
    seconds: float | None = None


@dataclass
class _Live:
    job: Job
    handle: Any
    slot: int = -1
    """local: index of the job's slot of cores (-1: every core, or a cluster job)."""
    submitted: float = field(default_factory=time.time)


def default_split(cores: int) -> tuple[int, int]:
    """(jobs, threads per job) of the local executor: one single-thread job per core.

    Measured on the project's 2-core machine (``bench/sweep.py``, README "Sweeps"): one seed of
    ``--strategy all`` took 0.72 x the wall time of ``benchmark.run`` in one two-thread process,
    and two one-thread jobs at once ran at 0.99 x twice the throughput of one: the small-batch
    VAE training uses a second thread poorly, a second process well.
    """
    return max(1, cores), 1


ESCALATE_S = 5.0
"""Seconds between the signals to a cancelled local job: SIGINT, then SIGTERM (see :meth:`_Runner.cancel`)."""


def _terminate(handle: Any) -> None:
    """SIGTERM to a local submitit job's controller process, if it still runs."""
    process = getattr(handle, "_process", None)  # submitit's LocalJob keeps its Popen there
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGTERM)


def _error_line(handle: Any, exc: BaseException) -> str:
    """The job's own ``error: ...`` line when it printed one, else the exception's last line."""
    try:
        text = handle.stderr() or ""
    except Exception:  # noqa: BLE001  (a log that is not there yet)
        text = ""
    errors = [line for line in text.splitlines() if line.startswith("error: ")]
    if errors:
        return errors[-1].removeprefix("error: ")
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(exc).__name__


class _Runner:
    def __init__(self, plan: Plan, spec: ExecutorSpec, report: Callable[[dict[str, Outcome]], None]) -> None:
        self.plan, self.spec, self.report = plan, spec, report
        self.outcomes = {job.name: Outcome(job.name) for job in plan.jobs}
        self.live: dict[str, _Live] = {}
        self.pending = list(plan.jobs)
        self.started = time.time()

    def _finish(self, live: _Live) -> None:
        outcome = self.outcomes[live.job.name]
        outcome.log = Path(live.handle.paths.stderr)
        try:
            result = live.handle.result()
            outcome.state = DONE
            outcome.seconds = result["finished"] - result["started"]
        except Exception as exc:  # noqa: BLE001  (submitit wraps the job's own exception)
            outcome.state, outcome.message = FAILED, _error_line(live.handle, exc)
        del self.live[live.job.name]

    def _blocked(self, job: Job) -> bool:
        """True (and marked ``not run``) when something ``job`` needs failed or was not run."""
        bad = [n for n in job.needs if n in self.outcomes and self.outcomes[n].state in (FAILED, NOT_RUN)]
        if bad:
            self.outcomes[job.name].state = NOT_RUN
            self.outcomes[job.name].message = f"needs {bad[0]}, which did not finish"
        return bool(bad)

    def _ready(self, job: Job) -> bool:
        return all(self.outcomes[n].state == DONE for n in job.needs if n in self.outcomes)

    def _poll(self) -> None:
        for live in list(self.live.values()):
            if live.handle.done():
                self._finish(live)
        self.report(self.outcomes)

    def cancel(self, wait_s: float = 60.0, escalate_s: float = ESCALATE_S) -> None:
        """Stop the running jobs (each keeps its finished experiences) and wait for them to end.

        Locally, submitit's cancel sends SIGINT to each job's controller process; a sweep started
        in the background (``nohup``, ``&``, a batch script) passes on an *ignored* SIGINT, so
        the jobs went on after the sweep had said they were stopped. Jobs still running after
        ``escalate_s`` get SIGTERM, which submitit's controller forwards and our jobs take as an
        interrupt (:func:`benchmark.cli.sigterm_as_interrupt`), every ``escalate_s`` until they end
        (submitit's own handler lets SIGTERM pass while a job is still starting).
        """
        for live in self.live.values():
            try:
                live.handle.cancel(check=False)
            except Exception:  # noqa: BLE001  (a job that ended meanwhile)
                pass
        start = time.time()
        signalled = start
        while self.spec.kind == "local" and time.time() < start + wait_s:
            if all(live.handle.done() for live in self.live.values()):
                break
            if time.time() >= signalled + escalate_s:  # again, later: a job still starting lets it pass
                for live in self.live.values():
                    _terminate(live.handle)
                signalled = time.time() + escalate_s
            time.sleep(0.2)

    def run_local(self) -> None:
        executor = submitit.LocalExecutor(folder=self.spec.folder)
        executor.update_parameters(timeout_min=LOCAL_TIMEOUT_MIN, gpus_per_node=self.spec.gpus_per_job)
        cores = tuple(sorted(_cores()))
        width = self.spec.threads_per_job
        slots = [cores[i * width : (i + 1) * width] or cores for i in range(self.spec.jobs)]
        while self.pending or self.live:
            for job in list(self.pending):
                if self._blocked(job):
                    self.pending.remove(job)
                elif self._ready(job):
                    slot = self._slot(job, len(slots))
                    if slot is None:
                        if job.kind in EXCLUSIVE:
                            break  # it waits for the machine to empty, and nothing starts before it
                        continue
                    chosen = cores if slot < 0 else slots[slot]
                    self.live[job.name] = _Live(job, executor.submit(FUNCTIONS[job.kind], job.argv, chosen), slot)
                    self.outcomes[job.name].state = RUNNING
                    self.pending.remove(job)
            time.sleep(self.spec.poll_s)
            self._poll()

    def _slot(self, job: Job, count: int) -> int | None:
        """The slot ``job`` gets now (-1: every core, for an exclusive job on an idle machine), or None."""
        if job.kind in EXCLUSIVE:
            return None if self.live else -1
        if any(live.job.kind in EXCLUSIVE for live in self.live.values()):
            return None
        taken = {live.slot for live in self.live.values()}
        free = [i for i in range(count) if i not in taken]
        return free[0] if free else None

    def submit_slurm(self) -> dict[str, str]:
        """Submit every pending job, each with ``--dependency=afterok`` on the jobs it needs; name -> job id."""
        executor = submitit.SlurmExecutor(folder=self.spec.folder)
        params: dict[str, Any] = {"time": self.spec.time_min, "additional_parameters": {"kill-on-invalid-dep": "yes"}}
        if self.spec.partition:
            params["partition"] = self.spec.partition
        if self.spec.gpus_per_job:
            params["gpus_per_node"] = self.spec.gpus_per_job
        if self.spec.cpus_per_job:
            params["cpus_per_task"] = self.spec.cpus_per_job
        if self.spec.mem_gb:
            params["mem"] = f"{self.spec.mem_gb:g}G"
        ids: dict[str, str] = {}
        for job in self.pending:
            needs = [ids[n] for n in job.needs if n in ids]
            executor.update_parameters(
                **params, job_name=f"ciim-{job.name}", dependency="afterok:" + ":".join(needs) if needs else None
            )
            handle = executor.submit(FUNCTIONS[job.kind], job.argv, None)
            ids[job.name] = str(handle.job_id)
            self.live[job.name] = _Live(job, handle)
        self.pending = []
        return ids

    def run_slurm(self) -> None:
        self.submit_slurm()
        while self.live:
            time.sleep(self.spec.poll_s)
            for live in list(self.live.values()):
                if self._blocked(live.job):
                    live.handle.cancel(check=False)
                    del self.live[live.job.name]
                elif live.handle.state == "RUNNING":
                    self.outcomes[live.job.name].state = RUNNING
            self._poll()


def _cores() -> set[int]:
    import os

    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux: no pinning
        return set(range(available_cores()))


def execute(
    plan: Plan, spec: ExecutorSpec, report: Callable[[dict[str, Outcome]], None] = lambda outcomes: None
) -> dict[str, Outcome]:
    """Run every job of ``plan``; ``report`` sees the outcomes after every change. Ctrl-C cancels the running jobs."""
    runner = _Runner(plan, spec, report)
    try:
        runner.run_slurm() if spec.kind == "slurm" else runner.run_local()
    except KeyboardInterrupt:
        runner.cancel()
        raise
    return runner.outcomes


def counts(outcomes: dict[str, Outcome]) -> dict[str, int]:
    """Jobs per state, in display order."""
    states = (DONE, RUNNING, FAILED, NOT_RUN, QUEUED)
    return {state: sum(o.state == state for o in outcomes.values()) for state in states}


def failed(outcomes: dict[str, Outcome]) -> Sequence[Outcome]:
    return [o for o in outcomes.values() if o.state in (FAILED, NOT_RUN)]
