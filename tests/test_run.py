"""``python -m benchmark.run`` end to end on the smoke preset: every strategy, resume, errors."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import shutil

import numpy as np
import pytest
import torch
from avalanche.core import SupervisedPlugin
from avalanche.training import Naive
from avalanche.training.plugins import EWCPlugin, SynapticIntelligencePlugin

from benchmark.continual import checkpoint
from benchmark.continual import runner as train_module
from benchmark.mapping.vae import load_vae
from benchmark.rl.config import agent_config, file_digest
from benchmark.run import main
from strategies import available_strategies, get_strategy, register_strategy, unregister_strategy

CONTINUAL = [n for n in available_strategies() if get_strategy(n).schedule == "continual"]


@pytest.fixture
def argv(smoke_data_dir, smoke_data, tmp_path):
    """Common flags: the session's smoke data, a fresh runs folder, no progress bars."""
    return ["--preset", "smoke", "--data-dir", str(smoke_data_dir), "--out", str(tmp_path / "runs"), "--no-progress"]


def _results(tmp_path, strategy, seed=0):
    return json.loads((tmp_path / "runs" / strategy / f"seed{seed}" / "results.json").read_text())


@pytest.fixture(scope="module")
def all_runs(smoke_data_dir, smoke_data, tmp_path_factory):
    """``--strategy all`` on smoke, once per module: its folder (holding ``runs/``), stdout and log."""
    folder = tmp_path_factory.mktemp("all")
    argv = ["--preset", "smoke", "--data-dir", str(smoke_data_dir), "--out", str(folder / "runs"), "--no-progress"]
    out, log = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(log)
    logging.getLogger("ciim").addHandler(handler)
    try:
        with contextlib.redirect_stdout(out):
            assert main(["--strategy", "all", *argv]) == 0
    finally:
        logging.getLogger("ciim").removeHandler(handler)
    return folder, out.getvalue(), log.getvalue()


def test_every_strategy_end_to_end(all_runs):
    tmp_path, out, log = all_runs
    assert {"single", "finetune", "joint", "ewc", "si", "mas", "agem", "lwf", "er", "der", "der-plain"} <= set(
        available_strategies()
    )
    for name in available_strategies():
        res = _results(tmp_path, name)
        rows = 1 if name == "joint" else 3
        assert res["strategy"] == name and res["preset"] == "smoke" and res["seed"] == 0
        for key in ("mse_matrix", "mse_sum_matrix", "aux_error_matrix"):
            assert len(res[key]) == rows and all(len(r) == 3 for r in res[key])
            assert all(math.isfinite(v) and v > 0 for r in res[key] for v in r)
        assert len(res["final_mse"]) == 3
        for key in ("target_missing_matrix", "arm_iou_matrix"):  # fractions, whatever a 1-epoch model does
            assert len(res[key]) == rows and all(0.0 <= v <= 1.0 for r in res[key] for v in r)
        for key in ("target_error_px_matrix", "target_error_m_matrix", "target_error_p90_m_matrix"):
            assert len(res[key]) == rows  # NaN where no target was found at all
            assert all(math.isnan(v) or v >= 0 for r in res[key] for v in r)
        # the sum over a 64x64x3 image is the per-pixel mean times 12288
        assert res["mse_sum_matrix"][0][0] == pytest.approx(res["mse_matrix"][0][0] * 64 * 64 * 3, rel=1e-5)
        run = tmp_path / "runs" / name / "seed0"
        config = json.loads((run / "config.json").read_text())
        assert config["strategy"] == name and config["train"]["epochs"] == [1, 1, 1]
        assert (run / "logs" / "metrics.csv").is_file() and (run / "logs" / "training_results.csv").is_file()
        assert len(list((run / "checkpoints").glob("exp*.pt"))) == rows
        assert load_vae(run).config.latent_size == 32
        assert name in out
    # continual strategies share one Task-0 model: trained once, then reused, with identical first rows
    shared = list((tmp_path / "runs" / "_shared").glob("task0-*.pt"))
    assert len(shared) == 1
    # ... and exported as a plain VAE file for `benchmark.rl train --mapping`, with the same weights
    exported = load_vae(shared[0].with_suffix("") / "model.pt")
    weights = checkpoint.load(shared[0])["state"]["model"]
    assert all(torch.equal(exported.state_dict()[k], v) for k, v in weights.items())
    assert "reusing the Task-0 model" in log
    first_rows = {_results(tmp_path, n)["mse_matrix"][0][0] for n in CONTINUAL}
    assert len(first_rows) == 1  # SI trains its own Task 0 (shares_task0=False): its plugin leaves it the same
    # single-task models are judged on their own task
    single = _results(tmp_path, "single")
    assert single["final_mse"] == [single["mse_matrix"][j][j] for j in range(3)]


def test_kl_ramp_is_in_the_logs(argv, tmp_path):
    flags = ["--kl-anneal-iterations", "6", "--gamma", "0.5", "--batch-size", "24", "--epochs", "4,1,1"]
    assert main(["--strategy", "finetune", *flags, *argv]) == 0
    rows = (tmp_path / "runs" / "finetune" / "seed0" / "logs" / "metrics.csv").read_text().splitlines()
    gammas = [float(r.split(",")[2]) for r in rows if r.startswith("train/gamma,")]
    # 48 samples in batches of 24: epoch means of the ramp 0, 1/6, ... then the full weight
    assert gammas[:3] == pytest.approx([0.5 * 0.5 / 6, 0.5 * 2.5 / 6, 0.5 * 4.5 / 6])
    assert gammas[3:] == [0.5] * 3


def _die_after_step(monkeypatch, stop):
    """Make the runner stop as Ctrl-C does right after it saved step ``stop``; returns the undo."""
    original = train_module._save_step

    def save_then_die(directory, step, *args):
        original(directory, step, *args)
        if step == stop:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "_save_step", save_then_die)
    return lambda: monkeypatch.setattr(train_module, "_save_step", original)


@pytest.mark.parametrize("name", CONTINUAL)
def test_resume_equals_an_uninterrupted_run(argv, tmp_path, monkeypatch, name, all_runs):
    reference = _results(all_runs[0], name)
    killed_out = tmp_path / "killed"
    argv = [*argv[:-3], "--out", str(killed_out), "--no-progress"]
    undo = _die_after_step(monkeypatch, 1)
    assert main(["--strategy", name, *argv]) == 130  # Ctrl-C (or SIGTERM): one line, exit 130
    assert not (killed_out / name / "seed0" / "results.json").exists()
    undo()
    assert main(["--strategy", name, "--resume", *argv]) == 0
    resumed = json.loads((killed_out / name / "seed0" / "results.json").read_text())
    for key in ("mse_matrix", "mse_sum_matrix", "aux_error_matrix", "final_mse", "target_missing_matrix",
                "arm_iou_matrix", "final_target_error_m"):  # fmt: skip
        np.testing.assert_allclose(resumed[key], reference[key], rtol=1e-6, err_msg=f"{name} {key}")
    metrics = (killed_out / name / "seed0" / "logs" / "metrics.csv").read_text().splitlines()
    assert sum(r.startswith("eval/exp0/mse,") for r in metrics) == 3  # no duplicated rows


def test_resume_of_a_run_never_started_starts_it(argv, tmp_path):
    assert main(["--strategy", "finetune", "--resume", *argv]) == 0
    assert (tmp_path / "runs" / "finetune" / "seed0" / "results.json").is_file()


def test_resume_with_another_config_is_refused(argv, tmp_path, capsys):
    assert main(["--strategy", "finetune", *argv]) == 0
    assert main(["--strategy", "finetune", "--resume", "--lr", "0.01", *argv]) == 2
    assert "config differs in train" in capsys.readouterr().err


def test_a_flag_only_another_strategy_reads_leaves_a_finished_run_valid(argv, tmp_path, capsys):
    """Changing ``--agem-sample-size`` must not make every finished ER run "another configuration"."""
    assert main(["--strategy", "er", *argv]) == 0
    folder = tmp_path / "runs" / "er" / "seed0"
    files = ("config.json", "results.json", "model.pt")
    before = {name: ((folder / name).read_bytes(), (folder / name).stat().st_mtime_ns) for name in files}
    assert main(["--strategy", "er", "--resume", "--agem-sample-size", "7", *argv]) == 0
    # A finished run resumed is kept as it is: its record, results and model, bytes and dates.
    assert {name: ((folder / name).read_bytes(), (folder / name).stat().st_mtime_ns) for name in files} == before
    assert main(["--strategy", "er", "--resume", "--mem-size", "7", *argv]) == 2  # a field ER reads
    assert "config differs in train" in capsys.readouterr().err


def test_a_strategy_reading_an_unknown_field_is_refused_at_registration():
    with pytest.raises(ValueError, match="not among the strategy fields"):
        register_strategy("typo", reads=("mem_sise",))(lambda ctx: None)
    assert "typo" not in available_strategies()


def test_unknown_strategy_lists_valid_names(argv, capsys):
    assert main(["--strategy", "nope", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown strategy nope" in err
    for name in ("single", "finetune", "joint", "er", "der"):
        assert name in err


@pytest.mark.parametrize("flags", [["--epochs", "1,x"], ["--batch-size", "two"], ["--device", "tpu"], ["--seed", "-1"]])
def test_bad_flags_are_argparse_errors(argv, flags):
    with pytest.raises(SystemExit) as exc:
        main([*flags, *argv])
    assert exc.value.code == 2


def test_invalid_values_are_one_line_errors(argv, capsys):
    assert main(["--strategy", "finetune", "--epochs", "1,1,1,1", *argv]) == 2
    assert main(["--strategy", "finetune", "--lr", "0", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err)
    assert "one value per task" in err[0] and "lr must be positive" in err[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu_is_a_usage_error(argv, capsys):
    assert main(["--device", "cuda", *argv]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_nan_loss_stops_with_one_line_and_keeps_files(argv, tmp_path, capsys):
    class NaNAfterTask0(SupervisedPlugin):
        def before_backward(self, strategy, **kwargs):
            if strategy.experience.current_experience == 1 and strategy.clock.train_exp_iterations == 0:
                strategy.loss = strategy.loss * float("nan")

    @register_strategy("test-nan")
    def nan_strategy(ctx):
        """Poisons the loss on Task 1."""
        return Naive(**ctx.template_kwargs(NaNAfterTask0()))

    try:
        assert main(["--strategy", "test-nan", *argv]) == 1
    finally:
        unregister_strategy("test-nan")
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        "error: test-nan: loss became nan in experience 1 at iteration 1; "
        "stopped, the finished experiences' files are kept"
    )
    run = tmp_path / "runs" / "test-nan" / "seed0"
    assert (run / "checkpoints" / "exp0.pt").is_file() and (run / "config.json").is_file()
    assert not (run / "results.json").exists()


@pytest.mark.parametrize(
    "plugin",
    [lambda: EWCPlugin(ewc_lambda=100.0), lambda: SynapticIntelligencePlugin(si_lambda=0.1)],
    ids=["ewc", "si"],
)
def test_a_strategy_registered_from_outside_the_package(argv, tmp_path, plugin):
    @register_strategy("test-ext")
    def external(ctx):
        """An Avalanche regularisation plugin that works with any loss."""
        return Naive(**ctx.template_kwargs(plugin()))

    try:
        assert main(["--strategy", "test-ext", *argv]) == 0
    finally:
        unregister_strategy("test-ext")
    res = _results(tmp_path, "test-ext")
    assert res["schedule"] == "continual" and len(res["mse_matrix"]) == 3


def test_rl_flag_evaluates_the_trained_vaes(argv, tmp_path, capsys):
    report = tmp_path / "report"
    assert main(["--strategy", "der", "--rl", "--report", str(report), *argv]) == 0
    out = capsys.readouterr().out
    assert "agent success rate" in out and f"report: {report / 'report.md'}" in out
    # the report of that run: its table, the reconstruction grid from the real data, the closed loop
    text = (report / "report.md").read_text()
    assert "## Preset `smoke`" in text and "| smoke | der | 1 |" in text
    for stem in ("reconstructions", "success_matrix", "strips_heldout"):
        assert (report / "smoke" / "figures" / f"{stem}.png").is_file()
    matrix = json.loads((tmp_path / "runs" / "rl_eval" / "smoke" / "matrix.json").read_text())
    assert matrix["pipelines"] == ["oracle", "raw", "der/seed0"]
    assert matrix["domains"] == ["canonical", "randomized", "noisy", "heldout"]
    assert len(list((tmp_path / "runs" / "rl").glob("smoke-*/model.zip"))) == 1


def test_rl_through_a_given_agent(argv, tmp_path, agent_root, capsys):
    """``--rl --agent DIR`` plays the loop through that agent: none is trained, and its matrix sits
    in its own folder, beside (not over) the preset agent's."""
    mine = tmp_path / "mine"
    shutil.copytree(agent_root / "rl" / agent_config("smoke").key(), mine)
    assert main(["--strategy", "finetune", "--rl", "--agent", str(mine), "--epochs", "1,1,1", *argv]) == 0
    assert "agent success rate" in capsys.readouterr().out
    runs = tmp_path / "runs"
    matrix = json.loads((runs / "rl_eval" / "mine" / "matrix.json").read_text())
    assert matrix["agent"] == agent_config("smoke").key() and matrix["pipelines"] == ["oracle", "raw", "finetune/seed0"]
    assert not (runs / "rl").exists() and not (runs / "rl_eval" / "smoke").exists()


def test_rl_through_the_agent_trained_through_task0(argv, tmp_path, capsys):
    """``--rl --agent task0``: after the VAEs, the preset's agent is trained through the run's own
    shared Task-0 model (its key holds that file's digest) and plays the matrix in its own folder."""
    assert main(["--strategy", "finetune", "--rl", "--agent", "task0", "--freeze-decoder", *argv]) == 0
    assert "agent success rate" in capsys.readouterr().out
    runs = tmp_path / "runs"
    (exported,) = runs.glob("_shared/task0-*/model.pt")
    (folder,) = (runs / "rl").iterdir()
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["mapping"] == str(exported) and cfg["mapping_digest"] == file_digest(exported)
    assert folder.name == agent_config("smoke", mapping=exported).key() != agent_config("smoke").key()
    matrix = json.loads((runs / "rl_eval" / folder.name / "matrix.json").read_text())
    assert matrix["agent"] == folder.name and matrix["pipelines"] == ["oracle", "raw", "finetune/seed0"]
    assert not (runs / "rl_eval" / "smoke").exists()


def test_agent_flag_errors_come_before_any_work(argv, tmp_path, capsys):
    assert main(["--strategy", "finetune", "--agent", str(tmp_path), *argv]) == 2
    assert main(["--strategy", "finetune", "--rl", "--agent", str(tmp_path / "nothing"), *argv]) == 2
    assert main(["--strategy", "finetune", "--agent", "task0", *argv]) == 2
    assert main(["--strategy", "joint,single", "--rl", "--agent", "task0", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("error: ") for line in err), err
    assert "needs --rl" in err[0] and "no trained agent in" in err[1] and "needs --rl" in err[2]
    assert "none of joint, single starts from it" in err[3]
    assert not (tmp_path / "runs").exists()


class _RecordGradNorms(SupervisedPlugin):
    """A test strategy's plugin: the global gradient norm of every step, as the optimizer saw it."""

    def __init__(self):
        super().__init__()
        self.norms = []

    def after_update(self, strategy, **kwargs):
        grads = [p.grad.norm() for p in strategy.model.parameters() if p.grad is not None]
        self.norms.append(float(torch.stack(grads).norm()))


@pytest.mark.parametrize("clip", [0.5, 0.0])
def test_grad_clip_bounds_every_step_and_zero_disables_it(argv, tmp_path, caplog, clip):
    recorder = _RecordGradNorms()

    @register_strategy("test-clip")
    def clip_strategy(ctx):
        """Records gradient norms."""
        return Naive(**ctx.template_kwargs(recorder))

    try:
        assert main(["--strategy", "test-clip", "--grad-clip", str(clip), "--epochs", "2,1,1", *argv]) == 0
    finally:
        unregister_strategy("test-clip")
    config = json.loads((tmp_path / "runs" / "test-clip" / "seed0" / "config.json").read_text())
    assert config["train"]["grad_clip"] == clip
    assert len(recorder.norms) == 4  # Task 1 and 2: 48 samples in batches of 32, two steps each
    if clip:
        assert max(recorder.norms) <= clip * (1 + 1e-4)
        assert "gradient norm clipped at 0.5 in 2 of 2 steps" in caplog.text
    else:
        assert max(recorder.norms) > 0.5  # what clipping at 0.5 would have cut
        assert "gradient norm clipped" not in caplog.text


class _RecordRates(SupervisedPlugin):
    """A test strategy's plugin: the learning rate of every step."""

    def __init__(self):
        super().__init__()
        self.rates = []

    def before_update(self, strategy, **kwargs):
        self.rates.append(strategy.optimizer.param_groups[0]["lr"])


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_cosine_schedule_decays_within_each_experience_and_restarts(argv, tmp_path, schedule):
    recorder = _RecordRates()

    @register_strategy("test-lr")
    def lr_strategy(ctx):
        """Records learning rates."""
        return Naive(**ctx.template_kwargs(recorder))

    try:
        flags = ["--lr-schedule", schedule, "--lr-floor", "0.1", "--lr", "0.002", "--epochs", "2,2,1"]
        assert main(["--strategy", "test-lr", *flags, *argv]) == 0
    finally:
        unregister_strategy("test-lr")
    config = json.loads((tmp_path / "runs" / "test-lr" / "seed0" / "config.json").read_text())
    assert config["train"]["lr_schedule"] == schedule
    # Task 1 (2 epochs of 2 batches) then Task 2 (1 epoch of 2): the shared Task-0 model is trained elsewhere.
    if schedule == "constant":
        assert recorder.rates == [0.002] * 6
    else:
        expected = [0.002 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * k / n))) for n in (4, 2) for k in range(n)]
        assert recorder.rates == pytest.approx(expected)
        assert recorder.rates[0] == recorder.rates[4] == pytest.approx(0.002)  # each task restarts at the peak


def test_bad_schedule_is_one_line(argv, capsys):
    assert main(["--strategy", "finetune", "--lr-schedule", "step", *argv]) == 2
    assert "lr_schedule must be one of constant, cosine" in capsys.readouterr().err


def test_grad_clip_must_not_be_negative(argv, capsys):
    assert main(["--strategy", "finetune", "--grad-clip", "-1", *argv]) == 2
    assert "grad_clip must not be negative" in capsys.readouterr().err


def test_out_folder_that_cannot_be_created_is_one_line_and_exit_2(argv, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    argv = [*argv[:-3], "--out", str(blocker / "runs"), "--no-progress"]
    assert main(["--strategy", "finetune", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot use") and "--out" in err[0]


def test_plain_eq1_is_one_flag_and_clashes_are_one_line(argv, tmp_path, capsys):
    assert main(["--strategy", "finetune", "--plain-eq1", "--target-weight", "5", *argv]) == 2
    assert "--plain-eq1 sets the foreground weights to 0; drop --target-weight" in capsys.readouterr().err
    assert main(["--strategy", "finetune", "--plain-eq1", *argv]) == 0
    train = json.loads((tmp_path / "runs" / "finetune" / "seed0" / "config.json").read_text())["train"]
    assert train["arm_weight"] == train["target_weight"] == train["stray_weight"] == 0.0


DECODER = ("from_latent.", "decoder.")


def _weights(state, frozen):
    return {k: v for k, v in state.items() if k.startswith(DECODER) == frozen}


@pytest.mark.parametrize("name", CONTINUAL)
def test_freeze_decoder_keeps_the_task0_decoder_and_trains_the_encoder(argv, tmp_path, name):
    assert main(["--strategy", name, "--freeze-decoder", *argv]) == 0
    directory = tmp_path / "runs" / name / "seed0"
    after_task0 = checkpoint.load(directory / "checkpoints" / "exp0.pt")["session"]["model"]
    final = load_vae(directory).state_dict()
    for key, value in _weights(after_task0, frozen=True).items():
        assert torch.equal(final[key], value), f"{name}: {key} moved"
    assert any(not torch.equal(final[k], v) for k, v in _weights(after_task0, frozen=False).items())
    assert json.loads((directory / "config.json").read_text())["train"]["freeze_decoder"] is True


def test_freeze_decoder_shares_the_task0_model_and_without_it_the_decoder_learns(argv, tmp_path):
    assert main(["--strategy", "finetune", *argv]) == 0
    directory = tmp_path / "runs" / "finetune" / "seed0"
    after_task0 = checkpoint.load(directory / "checkpoints" / "exp0.pt")["session"]["model"]
    final = load_vae(directory).state_dict()
    assert all(not torch.equal(final[k], v) for k, v in _weights(after_task0, frozen=True).items() if "weight" in k)
    assert main(["--strategy", "finetune", "--freeze-decoder", "--resume", *argv]) == 2  # another config
    assert main(["--strategy", "er", "--freeze-decoder", *argv]) == 0
    assert len(list((tmp_path / "runs" / "_shared").glob("task0-*.pt"))) == 1


def test_freeze_decoder_resumes_to_the_uninterrupted_run(argv, tmp_path, monkeypatch):
    assert main(["--strategy", "der", "--freeze-decoder", *argv]) == 0
    reference = _results(tmp_path, "der")
    killed = [*argv[:-3], "--out", str(tmp_path / "killed"), "--no-progress"]
    undo = _die_after_step(monkeypatch, 1)
    assert main(["--strategy", "der", "--freeze-decoder", *killed]) == 130
    undo()
    assert main(["--strategy", "der", "--freeze-decoder", "--resume", *killed]) == 0
    resumed = json.loads((tmp_path / "killed" / "der" / "seed0" / "results.json").read_text())
    np.testing.assert_allclose(resumed["mse_matrix"], reference["mse_matrix"], rtol=1e-6)
    np.testing.assert_allclose(resumed["final_target_error_m"], reference["final_target_error_m"], rtol=1e-6)
