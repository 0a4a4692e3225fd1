"""Open-ended streams: any sequence of domains, extending a finished run, a user's own domain."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from benchmark.data.__main__ import main as data_main
from benchmark.presets import expand_epochs
from benchmark.rl.matrix import Pipeline, default_domains
from benchmark.run import main
from envs import domains
from reports.build import build_report
from strategies import registry

FOUR = "canonical,randomized,noisy,textured"
MATRICES = ("mse_matrix", "mse_sum_matrix", "aux_error_matrix", "target_error_px_matrix", "target_missing_matrix",
            "arm_iou_matrix")  # fmt: skip


@pytest.fixture
def base(smoke_data_dir, smoke_data):
    return ["--preset", "smoke", "--data-dir", str(smoke_data_dir), "--no-progress"]


def _results(out: Path, strategy: str) -> dict:
    return json.loads((out / strategy / "seed0" / "results.json").read_text())


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def test_epochs_per_task():
    assert expand_epochs((25, 10, 10), 4, given=False) == (25, 10, 10, 10)
    assert expand_epochs((25, 10, 10), 1, given=False) == (25,)
    assert expand_epochs((25, 10), 4) == (25, 10, 10, 10)
    assert expand_epochs((3,), 3) == (3, 3, 3)
    assert expand_epochs((1, 2, 3, 4), 4) == (1, 2, 3, 4)
    with pytest.raises(ValueError, match="one value per task"):
        expand_epochs((1, 2, 3), 4)


def test_two_and_four_task_streams_end_to_end(base, tmp_path):
    out = tmp_path / "runs"
    assert main(["--strategy", "finetune", "--tasks", "canonical,noisy", "--out", str(out), *base]) == 0
    two = _results(out, "finetune")
    assert two["tasks"] == ["canonical", "noisy"] and np.asarray(two["mse_matrix"]).shape == (2, 2)
    out4 = tmp_path / "runs4"
    assert main(["--strategy", "der,single", "--tasks", FOUR, "--out", str(out4), *base]) == 0
    four = _results(out4, "der")
    assert four["tasks"] == FOUR.split(",") and np.asarray(four["target_error_m_matrix"]).shape == (4, 4)
    assert len(list((out4 / "single" / "seed0").glob("model_task*.pt"))) == 4
    report = build_report(out4, tmp_path / "report", grid=False)
    assert "task 3 (textured)" in report.markdown.read_text()
    # the 2-task and 4-task runs start from one shared Task-0 model (keyed by the first task only)
    assert np.allclose(two["mse_matrix"][0][0], four["mse_matrix"][0][0])


@pytest.mark.parametrize("strategy", ["der", "er"])
def test_an_extension_equals_the_uninterrupted_longer_run(base, tmp_path, strategy):
    old, ext, full = tmp_path / "old", tmp_path / "ext", tmp_path / "full"
    assert main(["--strategy", strategy, "--out", str(old), *base]) == 0
    before = _digest(old / strategy / "seed0")
    assert main(["--extend", str(old / strategy / "seed0"), "--tasks", FOUR, "--out", str(ext), *base]) == 0
    assert main(["--strategy", strategy, "--tasks", FOUR, "--out", str(full), *base]) == 0
    assert _digest(old / strategy / "seed0") == before  # the original folder is untouched
    original, extended, uninterrupted = _results(old, strategy), _results(ext, strategy), _results(full, strategy)
    for key in MATRICES:
        x = np.asarray(extended[key])
        assert x.shape == (4, 4)
        assert x[:3, :3].tobytes() == np.asarray(original[key]).tobytes(), key  # the history, copied
        np.testing.assert_array_equal(x, np.asarray(uninterrupted[key]), err_msg=key)  # row for row
    info = extended["extension"]
    assert info["kind"] == "extension" and info["old_tasks"] == 3 and info["wall_time_s"] > 0
    assert len(info["forgetting_of_old_tasks"]["mse"]) == 3


def test_mismatched_extensions_are_one_line_errors(base, tmp_path, capsys):
    old = tmp_path / "old"
    assert main(["--strategy", "finetune,single", "--out", str(old), *base]) == 0
    run = str(old / "finetune" / "seed0")
    out = ["--out", str(tmp_path / "ext")]
    capsys.readouterr()
    cases = [
        ["--extend", run, *out],  # no --tasks
        ["--extend", run, "--tasks", "canonical,noisy,randomized,textured", *out],  # other earlier tasks
        ["--extend", run, "--tasks", "canonical,randomized,noisy", *out],  # nothing new
        ["--extend", run, "--tasks", FOUR, "--lr", "0.5", *out],  # another training config
        ["--extend", run, "--tasks", FOUR, "--strategy", "der", *out],  # another strategy
        ["--extend", str(tmp_path / "nowhere"), "--tasks", FOUR, *out],  # not a finished run
        ["--extend", str(old / "single" / "seed0"), "--tasks", FOUR, *out],  # cannot be extended
        ["--extend", run, "--tasks", FOUR, "--out", str(old)],  # would write over the run
    ]
    for case in cases:
        assert main([*case, *base]) == 2, case
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == len(cases) and all(line.startswith("error: ") for line in err), err
    assert "--retrain" in err[6] and not (tmp_path / "ext").exists()


def test_retrain_is_the_baseline_for_any_strategy(base, tmp_path):
    old, again = tmp_path / "old", tmp_path / "again"
    assert main(["--strategy", "single", "--out", str(old), *base]) == 0
    run = old / "single" / "seed0"
    assert main(["--extend", str(run), "--retrain", "--tasks", FOUR, "--out", str(again), *base]) == 0
    results = _results(again, "single")
    assert results["tasks"] == FOUR.split(",") and results["extension"]["kind"] == "retrain"


def test_a_users_domain_and_strategy_from_the_command_line(base, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(domains, "_DOMAINS", dict(domains._DOMAINS))
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    module = tmp_path / "my_domains.py"
    module.write_text(
        "from envs.domains import Domain, register_domain\n"
        "from envs.effects import GaussianBlur\n"
        "from strategies.baselines import finetune\n"
        "from strategies.registry import register_strategy\n\n"
        "@register_domain('test-foggy')\n"
        "def foggy() -> Domain:\n"
        "    return Domain(light_ambient=(0.8, 0.9), effects=(GaussianBlur(sigma=(0.8, 1.5)),))\n\n"
        "register_strategy('test-mine')(finetune)\n"
    )
    data_dir = ["--data-dir", str(tmp_path / "data")]
    assert data_main(["--import", str(module), "--preset", "smoke", "--tasks", "canonical,test-foggy", *data_dir]) == 0
    out = ["--out", str(tmp_path / "runs")]
    argv = ["--import", str(module), "--strategy", "test-mine", "--tasks", "canonical,test-foggy", *out, *base[:1],
            "smoke", "--no-progress", *data_dir]  # fmt: skip
    assert main(argv) == 0
    assert _results(tmp_path / "runs", "test-mine")["tasks"] == ["canonical", "test-foggy"]
    capsys.readouterr()
    assert data_main(["--preset", "smoke", "--tasks", "canonical,nope", *data_dir]) == 2
    assert main(["--import", str(tmp_path / "missing.py"), *out, *base]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "unknown domain 'nope'" in err[0] and "--import" in err[1]


def test_the_closed_loop_takes_every_domain_of_the_stream(tmp_path):
    run = tmp_path / "der" / "seed0"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"data": {"tasks": FOUR.split(",")}}))
    assert default_domains([Pipeline("der/seed0", run / "model.pt")]) == (*FOUR.split(","), "heldout")
    assert default_domains([]) == ("canonical", "randomized", "noisy", "heldout")
