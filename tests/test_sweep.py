"""The sweep command on submitit (local executor for real, SLURM with submitit's own mocks)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmark.jobs.engine import ExecutorSpec, _Runner
from benchmark.jobs.plan import PlanError, parse_seeds, plan_sweep
from benchmark.sweep import main

MATRICES = ("mse_matrix", "aux_error_matrix", "target_error_px_matrix", "target_missing_matrix", "arm_iou_matrix")


@pytest.fixture
def base(tmp_path, smoke_data, smoke_data_dir):
    return ["--preset", "smoke", "--data-dir", str(smoke_data_dir), "--out", str(tmp_path / "runs")]


def _results(out: Path, name: str) -> dict:
    return json.loads((out / name / "results.json").read_text())


def _job_logs(out: Path) -> str:
    return "\n".join(p.read_text() for p in sorted((out / "_sweep" / "logs").glob("*_log.err")))


def test_parse_seeds():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("3") == [3]
    assert parse_seeds("0-1,5,1") == [0, 1, 5]
    for bad in ("a", "3-1", "-2", ""):
        with pytest.raises(PlanError):
            parse_seeds(bad)


def test_two_seeds_two_strategies(base, tmp_path, capsys):
    """Every run folder once, the Task-0 model trained once per seed before its continual runs,
    then a rerun that skips everything, and a killed run that resumes to the same results."""
    out = tmp_path / "runs"
    argv = ["--strategy", "finetune,single", "--seeds", "0-1", "--jobs", "2", *base]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "4 runs to do, 0 finished already" in err and "0 failed" in err
    for name in ("finetune/seed0", "finetune/seed1", "single/seed0", "single/seed1"):
        assert (out / name / "results.json").is_file(), name
    logs = _job_logs(out)
    assert logs.count("training the shared Task-0 model") == 2  # once per seed, by the task0 job
    assert logs.count("reusing the Task-0 model") == 2  # each finetune run found it ready
    task0 = sorted((out / "_shared").glob("task0-*.pt"))
    assert len(task0) == 2
    for seed in (0, 1):
        started = (out / "finetune" / f"seed{seed}" / "config.json").stat().st_mtime
        assert any(p.stat().st_mtime <= started for p in task0)

    assert main(argv) == 0  # a rerun: nothing to do
    assert "0 runs to do, 4 finished already" in capsys.readouterr().err

    # What a kill after experience 1 leaves: the checkpoints of experiences 0 and 1, no results.
    reference = _results(out, "finetune/seed1")
    killed = out / "finetune" / "seed1"
    for name in ("results.json", "model.pt", "checkpoints/exp2.pt"):
        (killed / name).unlink()
    assert main(argv) == 0
    assert "1 runs to do, 3 finished already" in capsys.readouterr().err
    assert "resuming" in _job_logs(out)
    resumed = _results(out, "finetune/seed1")
    for key in MATRICES:
        np.testing.assert_allclose(resumed[key], reference[key], rtol=1e-6, err_msg=key)


def test_a_failing_job_is_named_and_the_others_finish(base, tmp_path, capsys):
    out = tmp_path / "runs"
    broken = out / "single" / "seed0"
    broken.mkdir(parents=True)
    (broken / "checkpoints").write_text("not a folder")  # checkpoints cannot be written there
    assert main(["--strategy", "single,joint", "--seeds", "0", *base]) == 1
    err = capsys.readouterr().err
    assert (out / "joint" / "seed0" / "results.json").is_file()
    failed = [line for line in err.splitlines() if line.startswith("failed: ")]
    assert len(failed) == 1 and failed[0].startswith("failed: single/seed0: ") and "(log: " in failed[0]
    log = Path(failed[0].split("(log: ")[1].rstrip(")"))
    assert log.is_file() and "checkpoints" in log.read_text()


def test_usage_errors_are_one_line_before_any_job(base, tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["--strategy", "nope", *base]) == 2
    assert main(["--seeds", "2-1", *base]) == 2
    assert main(["--seed", "1", *base]) == 2
    assert main(["--executor", "slurm", *base]) == 2 or shutil.which("sbatch")  # no sbatch here
    other = out / "finetune" / "seed0"
    other.mkdir(parents=True)
    (other / "config.json").write_text(json.dumps({"strategy": "finetune", "preset": "paper"}))
    assert main(["--agent", str(tmp_path), *base]) == 2
    assert main(["--rl", "--agent", str(tmp_path / "nothing"), *base]) == 2
    assert main(["--strategy", "single,joint", "--rl", "--agent", "task0", *base]) == 2
    assert main(["--strategy", "finetune", *base]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 8 and all(line.startswith("error: ") for line in err), err
    assert "needs --rl" in err[4] and "no trained agent" in err[5] and "another configuration" in err[-1]
    assert "none of single, joint starts from it" in err[6]
    assert not (out / "_sweep").exists()


def test_the_matrix_of_a_given_agent_has_its_own_folder(tmp_path):
    """``--rl --agent DIR``: the sweep looks for (and the matrix job writes) that agent's matrix in its
    own folder, so the preset agent's finished matrix does not make it skip the job."""
    from benchmark.jobs.plan import _rl_out
    from benchmark.run import build_parser as run_parser
    from benchmark.sweep import _rl_argv, build_parser

    out, agent = tmp_path / "runs", tmp_path / "agents" / "mine"
    run_args = run_parser().parse_args(["--out", str(out), "--preset", "smoke"])
    argv = _rl_argv(run_args, agent)
    assert argv[argv.index("--agent") + 1] == str(agent)
    assert _rl_out(argv, out, "smoke") == out / "rl_eval" / "mine"
    assert _rl_out(_rl_argv(run_args), out, "smoke") == out / "rl_eval" / "smoke"
    assert _rl_out([*argv, "--out", str(tmp_path / "x")], out, "smoke") == tmp_path / "x"
    args, rest = build_parser().parse_known_args(["--rl", "--agent", str(agent), "--preset", "smoke"])
    assert args.agent == agent and "--agent" not in rest  # the sweep's flag, not passed on to the run jobs


def test_task0_agent_plans_one_closed_loop_per_seed(base):
    """``--rl --agent task0``: each seed's closed loop (its own agent) waits for that seed's runs only."""
    plan = plan_sweep(["finetune", "single"], [0, 1], base, task0_agent=True)
    names = [j.name for j in plan.jobs]
    assert names == ["data", "task0/seed0", "finetune/seed0", "single/seed0", "loop/seed0",
                     "task0/seed1", "finetune/seed1", "single/seed1", "loop/seed1"]  # fmt: skip
    loop = plan.jobs[names.index("loop/seed1")]
    assert loop.kind == "loop" and loop.needs == ("finetune/seed1", "single/seed1")
    argv = list(loop.argv)
    assert argv[argv.index("--strategy") + 1] == "finetune,single" and argv[argv.index("--seed") + 1] == "1"
    assert argv[-3:] == ["--rl", "--agent", "task0"] and "--resume" in argv


def test_task0_agent_sweep_end_to_end(base, tmp_path, capsys):
    """The seed's agent is trained through that seed's Task-0 model and plays its runs' matrix; a
    rerun finds the runs and the matrix finished and does nothing."""
    from benchmark.rl.config import agent_config, file_digest

    out = tmp_path / "runs"
    argv = ["--strategy", "finetune", "--seeds", "0", "--rl", "--agent", "task0", *base]
    assert main(argv) == 0
    (exported,) = out.glob("_shared/task0-*/model.pt")
    (agent,) = (out / "rl").iterdir()
    assert agent.name == agent_config("smoke", mapping=exported).key()
    assert json.loads((agent / "config.json").read_text())["mapping_digest"] == file_digest(exported)
    matrix = out / "rl_eval" / agent.name / "matrix.json"
    written = json.loads(matrix.read_text())
    assert written["pipelines"] == ["oracle", "raw", "finetune/seed0"]
    # what the report needs to pool the seeds' agents (reports.tables.pool_mapped_agents)
    assert written["agent_mapping"] == str(exported)
    assert written["agent_family"] == agent_config("smoke").key()
    stamps = {p: p.stat().st_mtime_ns for p in (matrix, out / "finetune" / "seed0" / "results.json")}
    capsys.readouterr()
    assert main(argv) == 0
    assert "0 runs to do, 1 finished already" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_slurm_submission_with_dependencies(base, tmp_path):
    """Submitted through submitit's mocked SLURM: one sbatch per job, each waiting on what it needs."""
    slurm = pytest.importorskip("submitit.slurm.test_slurm")
    plan = plan_sweep(["single", "der"], [0], base)
    assert [j.name for j in plan.jobs] == ["data", "task0/seed0", "single/seed0", "der/seed0"]
    spec = ExecutorSpec("slurm", tmp_path / "logs", partition="gpu", time_min=30, gpus_per_job=1,
                        cpus_per_job=4, mem_gb=16)  # fmt: skip
    with slurm.mocked_slurm():
        runner = _Runner(plan, spec, lambda outcomes: None)
        ids = runner.submit_slurm()
        scripts = {name: Path(runner.live[name].handle.paths.submission_file).read_text() for name in ids}
    assert list(ids) == ["data", "task0/seed0", "single/seed0", "der/seed0"]
    for text in scripts.values():
        for line in ("--partition=gpu", "--time=30", "--gpus-per-node=1", "--cpus-per-task=4", "--mem=16G",
                     "--kill-on-invalid-dep=yes"):  # fmt: skip
            assert f"#SBATCH {line}" in text
    assert "--dependency" not in scripts["data"]
    assert f"#SBATCH --dependency=afterok:{ids['data']}\n" in scripts["task0/seed0"]
    assert f"#SBATCH --dependency=afterok:{ids['data']}\n" in scripts["single/seed0"]
    assert f"#SBATCH --dependency=afterok:{ids['task0/seed0']}\n" in scripts["der/seed0"]


def test_local_split_never_oversubscribes(base, tmp_path):
    from benchmark.sweep import _executor_spec, build_parser

    def spec(*flags: str) -> ExecutorSpec:
        args, _ = build_parser().parse_known_args([*flags, *base])
        return _executor_spec(args, tmp_path)

    cores = len(__import__("os").sched_getaffinity(0))
    default = spec()
    assert default.jobs * default.threads_per_job <= cores
    assert spec("--threads-per-job", str(cores)).jobs == 1
    two = spec("--jobs", "2")
    assert two.jobs == 2 and two.threads_per_job == max(1, cores // 2)


def test_report_after_the_sweep(base, tmp_path, capsys):
    shutil.rmtree(tmp_path / "runs", ignore_errors=True)
    report = tmp_path / "report"
    assert main(["--strategy", "finetune", "--seeds", "0-1", "--report", str(report), *base]) == 0
    assert (report / "report.md").is_file()
    assert "| finetune | 2 |" in capsys.readouterr().out


def test_cancel_stops_a_job_whose_sigint_is_ignored(tmp_path, smoke_data, smoke_data_dir):
    """A sweep started in the background (nohup, '&') passes on an ignored SIGINT: cancel must still stop its jobs."""
    import signal
    import time

    import submitit

    from benchmark.jobs import work
    from benchmark.jobs.engine import _Live
    from benchmark.jobs.plan import Job

    executor = submitit.LocalExecutor(folder=tmp_path / "logs")
    executor.update_parameters(timeout_min=5)
    argv = ["--strategy", "finetune", "--preset", "smoke", "--epochs", "400", "--data-dir", str(smoke_data_dir),
            "--out", str(tmp_path / "runs"), "--no-progress"]  # fmt: skip
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # what a background job inherits
    try:
        handle = executor.submit(work.train_run, argv)
    finally:
        signal.signal(signal.SIGINT, previous)
    deadline = time.time() + 180.0
    while "train: training" not in (handle.stderr() or "") and time.time() < deadline:
        time.sleep(0.5)  # until the job is training (before that, submitit itself lets SIGTERM pass)
    assert not handle.done()
    runner = _Runner.__new__(_Runner)
    runner.spec = ExecutorSpec(kind="local", folder=tmp_path / "logs")
    runner.live = {"job": _Live(Job("job", "run", ()), handle)}
    start = time.time()
    runner.cancel(wait_s=40.0, escalate_s=1.0)
    assert handle.done() and time.time() - start < 30.0
    assert not (tmp_path / "runs" / "finetune" / "seed0" / "results.json").exists()
