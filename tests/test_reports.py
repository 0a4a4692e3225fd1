"""``python -m reports`` on small synthetic run folders with known numbers."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from benchmark.rl.config import AgentConfig
from reports.__main__ import main
from reports.build import build_report
from reports.claims import FAILS, HOLDS, UNCLEAR, UNKNOWN, check_claims
from reports.collect import collect
from reports.metrics import avg_final_mse, backward_transfer, cl_metrics, forgetting, zero_shot_error
from reports.tables import cl_metrics_table, final_mse_table, pool_mapped_agents, pooled_success_table

TASKS = ["canonical", "randomized", "noisy"]


def write_run(root, strategy, r, seed=0, preset="quick", schedule="continual", wall=60.0):
    run = root / strategy / f"seed{seed}"
    (run / "logs").mkdir(parents=True)
    r = np.asarray(r, dtype=float)
    final = np.diag(r) if schedule == "single" else r[-1]
    results = {
        "strategy": strategy, "preset": preset, "seed": seed, "schedule": schedule, "tasks": TASKS,
        "device": "cpu", "wall_time_s": wall, "mse_matrix": r.tolist(), "mse_sum_matrix": (r * 12288).tolist(),
        "aux_error_matrix": (r * 10).tolist(), "final_mse": final.tolist(),
        "target_error_m_matrix": (r / 100).tolist(), "target_error_p90_m_matrix": (r / 50).tolist(),
        "target_missing_matrix": (r / 20).tolist(), "arm_iou_matrix": (1 - r / 20).tolist(),
    }  # fmt: skip
    (run / "results.json").write_text(json.dumps(results))
    steps = np.arange(1, 31) * 10
    rows = [("train/loss", s, 100.0 / (1 + k)) for k, s in enumerate(steps)]
    rows += [("train/gamma", s, min(1.0, s / 100) * 0.01) for s in steps]
    pd.DataFrame(rows, columns=["name", "step", "value"]).to_csv(run / "logs" / "metrics.csv", index=False)
    return run


def write_matrix(root, preset="quick", pipelines=("oracle", "raw", "single/seed0/task0", "er/seed0", "der/seed0"),
                 agent="quick-r64-s0-abc", folder=None, shift=0, **extra):  # fmt: skip
    domains = ["canonical", "randomized", "noisy", "heldout"]
    out = root / "rl_eval" / (folder or preset)
    (out / "strips").mkdir(parents=True)
    cells = []
    for i, p in enumerate(pipelines):
        for j, d in enumerate(domains):
            rate = round(0.1 * ((i + j + shift) % 10), 2)
            cells.append({"pipeline": p, "domain": d, "episodes": 10, "success_rate": rate,
                          "success_ci95": [max(0.0, rate - 0.2), min(1.0, rate + 0.2)],
                          "mean_final_distance": 0.1, "mean_return": -5.0, "mean_length": 50.0})  # fmt: skip
            name = p.replace("/", "-")
            Image.fromarray(np.full((66, 264, 3), 40 * i, np.uint8)).save(out / "strips" / f"{name}__{d}__ep0.png")
    agreement = [{"pipeline": p, "task": t, "domain": d, "images": 9, "action_error": 0.1 * t, "wrong_sign": 0.05 * t}
                 for p in pipelines if p != "oracle" for t, d in enumerate(TASKS)]  # fmt: skip
    matrix = {"agent": agent, "preset": preset, "episodes": 10, "seed": 0, "domains": domains,
              "pipelines": list(pipelines), "cells": cells, "agreement": agreement, **extra}  # fmt: skip
    (out / "matrix.json").write_text(json.dumps(matrix))
    return matrix


R = [[1.0, 5.0, 9.0], [2.0, 3.0, 8.0], [4.0, 6.0, 7.0]]


def test_metrics_on_a_hand_computed_case():
    assert forgetting(R).tolist() == [3.0, 3.0]  # 4 - min(1, 2); 6 - 3
    assert backward_transfer(R) == -3.0  # mean(1 - 4, 3 - 6)
    assert zero_shot_error(R) == 6.5  # mean(R[0][1], R[1][2])
    assert avg_final_mse(R) == pytest.approx(17 / 3)
    assert cl_metrics([[2.0]])["bwt"] != cl_metrics([[2.0]])["bwt"]  # NaN with one task
    with pytest.raises(ValueError, match="square"):
        forgetting([[1.0, 2.0]])


def test_tables_have_the_runs_numbers(tmp_path):
    write_run(tmp_path, "finetune", R)
    write_run(tmp_path, "single", [[1.0, 9.0, 9.0], [9.0, 2.0, 9.0], [9.0, 9.0, 3.0]], schedule="single")
    write_run(tmp_path, "joint", [[5.0, 6.0, 7.0]], schedule="joint")
    runs = collect(tmp_path).runs
    table = final_mse_table(runs).set_index("strategy")
    assert list(table.index) == ["single", "finetune", "joint"]  # the paper's order
    assert table.loc["finetune", ["task 0 (canonical)", "task 1 (randomized)", "task 2 (noisy)"]].tolist() == [4, 6, 7]
    assert table.loc["single", "task 1 (randomized)"] == 2.0  # the task's own model
    assert table.loc["joint", "mean"] == 6.0
    metrics = cl_metrics_table(runs).set_index("strategy")
    assert metrics.loc["finetune", "forgetting task 0"] == 3.0 and metrics.loc["finetune", "BWT"] == -3.0
    assert metrics.loc["finetune", "zero-shot MSE"] == 6.5
    assert np.isnan(metrics.loc["joint", "BWT"]) and metrics.loc["joint", "avg final MSE"] == 6.0


def test_several_seeds_are_averaged_with_their_count(tmp_path):
    write_run(tmp_path, "er", R, seed=0)
    write_run(tmp_path, "er", np.asarray(R) + 2, seed=1)
    row = final_mse_table(collect(tmp_path).runs).iloc[0]
    assert row["seeds"] == 2
    assert row["task 0 (canonical)"] == 5.0  # mean(4, 6)
    assert row["task 0 (canonical) std"] == pytest.approx(np.std([4, 6], ddof=1))
    report = build_report(tmp_path, tmp_path / "out", grid=False)
    assert "5.00000 ± 1.41421" in report.markdown.read_text()


def test_presets_are_never_mixed(tmp_path):
    write_run(tmp_path / "a", "er", R, preset="quick")
    write_run(tmp_path / "b", "er", np.asarray(R) * 10, preset="smoke")
    report = build_report(tmp_path, tmp_path / "out", grid=False)
    assert report.presets == ["quick", "smoke"]
    quick = pd.read_csv(tmp_path / "out" / "quick" / "final_mse.csv")
    smoke = pd.read_csv(tmp_path / "out" / "smoke" / "final_mse.csv")
    assert quick["task 0 (canonical)"].tolist() == [4.0] and smoke["task 0 (canonical)"].tolist() == [40.0]
    text = report.markdown.read_text()
    assert "## Preset `quick`" in text and "## Preset `smoke`" in text


def test_broken_and_foreign_files_are_reported_and_skipped(tmp_path, capsys):
    write_run(tmp_path, "er", R)
    broken = tmp_path / "der" / "seed0"
    broken.mkdir(parents=True)
    (broken / "results.json").write_text('{"strategy": "der", "mse_mat')  # half-written
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "results.json").write_text('["not", "a", "run"]')
    (tmp_path / ".tmp-run").mkdir()
    (tmp_path / ".tmp-run" / "results.json").write_text("{")  # work in progress: not even looked at
    assert main(["--runs", str(tmp_path), "--out", str(tmp_path / "out"), "--no-grid"]) == 0
    captured = capsys.readouterr()
    assert "2 file(s) left out" in captured.out
    warnings = [line for line in captured.err.splitlines() if "skipped" in line]
    assert len(warnings) == 2 and "half-written" in warnings[0] + warnings[1]
    text = (tmp_path / "out" / "report.md").read_text()
    assert "## Files left out" in text and "| quick | er | 1 |" in text


def test_an_empty_runs_folder_is_an_error(tmp_path, capsys):
    (tmp_path / "runs").mkdir()
    assert main(["--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 1
    assert "nothing to report" in capsys.readouterr().err
    assert main(["--runs", str(tmp_path / "missing"), "--out", str(tmp_path / "out")]) == 1
    assert not (tmp_path / "out" / "report.md").exists()


def test_an_unwritable_output_is_one_line(tmp_path, capsys):
    write_run(tmp_path / "runs", "er", R)
    (tmp_path / "file").write_text("not a folder")
    assert main(["--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "file" / "out"), "--no-grid"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot write the report to")


def test_every_promised_file_is_written_and_opens(tmp_path):
    write_run(tmp_path, "single", [[1.0, 9.0, 9.0], [9.0, 2.0, 9.0], [9.0, 9.0, 3.0]], schedule="single")
    for name, shift in (("finetune", 0.0), ("er", -0.5), ("der", -0.2)):
        write_run(tmp_path, name, np.asarray(R) + shift)
    write_matrix(tmp_path)
    report = build_report(tmp_path, tmp_path / "out", grid=False)
    figures = tmp_path / "out" / "quick" / "figures"
    stems = ["final_mse", "final_target_error", "mse_after_experience", "training_curves", "success_matrix",
             "strategy_intervals", *(f"strips_{d}" for d in ("canonical", "randomized", "noisy",
                                                             "heldout"))]  # fmt: skip
    for stem in stems:
        with Image.open(figures / f"{stem}.png") as image:
            assert image.size[0] > 100 and image.size[1] > 100
        assert (figures / f"{stem}.pdf").read_bytes().startswith(b"%PDF")
    tables = (
        "final_mse.csv",
        "final_mse.md",
        "cl_metrics.csv",
        "cl_metrics.md",
        "success.csv",
        "success_pooled.csv",
        "final_target_error_m.csv",
        "final_target_missing.md",
        "final_arm_iou.csv",
        "cl_metrics_target.csv",
    )
    for table in tables:
        assert (tmp_path / "out" / "quick" / table).is_file()
    markdown = report.markdown.read_text()
    for link in [line.split("](")[1].rstrip(")") for line in markdown.splitlines() if line.startswith("![")]:
        assert (tmp_path / "out" / link).is_file()
    html = report.html.read_text()
    assert html.count("data:image/png;base64,") == len(stems) and "<table" in html
    assert "torch" in markdown and "wall time" in markdown  # versions and times for the reader


def test_two_agents_matrices_are_reported_apart(tmp_path):
    """The preset agent's matrix and another agent's (``--agent``) each get their own tables and
    figures; the paper claims use the preset agent's."""
    for name, shift in (("finetune", 0.0), ("er", -0.5), ("der", -0.2)):
        write_run(tmp_path, name, np.asarray(R) + shift)
    write_matrix(tmp_path)
    write_matrix(tmp_path, agent="quick-r64-s0-mine", folder="quick-r64-s0-mine", shift=3)
    report = build_report(tmp_path, tmp_path / "out", grid=False)
    own, other = tmp_path / "out" / "quick", tmp_path / "out" / "quick" / "quick-r64-s0-mine"
    first, second = pd.read_csv(own / "success.csv"), pd.read_csv(other / "success.csv")
    assert first["success"].iloc[0].startswith("0%") and second["success"].iloc[0].startswith("30%")
    for folder in (own, other):
        assert (folder / "figures" / "success_matrix.png").is_file()
    markdown = report.markdown.read_text()
    assert "Agent `quick-r64-s0-abc`" in markdown and "Agent `quick-r64-s0-mine`" in markdown
    links = [line.split("](")[1].rstrip(")") for line in markdown.splitlines() if line.startswith("![")]
    assert len(links) == len(set(links)) and all((tmp_path / "out" / link).is_file() for link in links)


def test_per_seed_agents_through_their_task0_model_are_pooled(tmp_path):
    """``sweep --agent task0`` leaves one matrix per seed, each of that seed's own agent: the report
    pools them (oracle and raw per seed's agent too) with Wilson intervals, uses the pool for the
    summary when there is no preset agent, and leaves out another family and a matrix without a mapping."""
    for seed in (0, 1):
        write_run(tmp_path, "er", np.asarray(R), seed=seed)
        write_matrix(tmp_path, pipelines=("oracle", "raw", f"er/seed{seed}"), agent=f"quick-r64-s0-m{seed}",
                     folder=f"quick-r64-s0-m{seed}", shift=seed, agent_mapping=f"_shared/task0-{seed}/model.pt",
                     agent_family="quick-r64-s0-fam")  # fmt: skip
    write_matrix(tmp_path, pipelines=("oracle", "er/seed1"), agent="quick-r64-s0-o", folder="quick-r64-s0-o",
                 agent_mapping="x/model.pt", agent_family="quick-r64-s0-other")  # fmt: skip
    matrices = collect(tmp_path).rl
    (pooled,) = pool_mapped_agents(matrices)
    assert pooled.agent_family == "quick-r64-s0-fam" and len(pooled.cells) == 2 * 3 * 4
    table = pooled_success_table(pooled).set_index(["pipeline", "domain"])
    # write_matrix: rate 0.1 * ((i + j + shift) % 10) over 10 episodes; er is pipeline 2, canonical domain 0
    assert table.loc[("er", "canonical"), "successes"] == 2 + 3 and table.loc[("er", "canonical"), "seeds"] == 2
    assert table.loc[("oracle", "noisy"), "per seed"] == "s0 20%, s1 30%"
    report = build_report(tmp_path, tmp_path / "out", grid=False)
    csv = pd.read_csv(tmp_path / "out" / "quick" / "quick-r64-s0-fam-pooled" / "success_pooled.csv")
    assert set(csv["pipeline"]) == {"oracle", "raw", "er"} and (csv["seeds"] == 2).all()
    assert "family `quick-r64-s0-fam`" in report.markdown.read_text()
    # the same seed twice in one family is ambiguous: not pooled
    write_matrix(tmp_path, pipelines=("oracle", "er/seed1"), agent="quick-r64-s0-m9", folder="quick-r64-s0-m9",
                 agent_mapping="y/model.pt", agent_family="quick-r64-s0-fam")  # fmt: skip
    assert pool_mapped_agents(collect(tmp_path).rl) == []


def test_an_agent_family_ignores_only_the_mapping():
    base = AgentConfig(preset="quick", method="dagger")
    one = dataclasses.replace(base, mapping="a/model.pt", mapping_digest="a" * 64)
    two = dataclasses.replace(base, mapping="b/model.pt", mapping_digest="b" * 64)
    assert one.key() != two.key() and one.family() == two.family() == base.key()
    assert dataclasses.replace(one, mapping_fraction=1.0).family() != one.family()


def _finals(values, seeds=5, noise=0.01):
    """strategy -> seed -> final per task: the given means plus a small, seed-specific wobble."""
    rng = np.random.default_rng(0)
    wobble = {s: rng.normal(0, noise, 3) for s in range(seeds)}
    return {k: {s: np.asarray(v, float) + wobble[s] * (1 + 0.5 * i) for s in range(seeds)}
            for i, (k, v) in enumerate(values.items())}  # fmt: skip


def test_paper_claims_are_judged_with_paired_tests(tmp_path):
    paper_like = {"single": [1.0, 2.0, 3.0], "finetune": [1.5, 5.0, 2.5], "er": [1.49, 3.0, 2.4],
                  "der": [1.51, 3.1, 2.0]}  # fmt: skip
    verdicts = [c.verdict for c in check_claims(_finals(paper_like), None)]
    assert verdicts == [HOLDS, HOLDS, HOLDS, UNKNOWN]
    reversed_ = {"single": [3.0, 4.0, 3.0], "finetune": [1.0, 2.0, 2.5], "er": [2.0, 3.0, 2.4],
                 "der": [1.5, 3.1, 2.6]}  # fmt: skip
    claims = check_claims(_finals(reversed_), None)
    assert [c.verdict for c in claims] == [FAILS, FAILS, FAILS, UNKNOWN]
    assert "vs er 2.39" in claims[2].evidence and "paired t-test p = 0.000, 5 seeds" in claims[2].evidence
    # one seed: the same numbers can only be inconclusive
    assert [c.verdict for c in check_claims(_finals(paper_like, seeds=1), None)][:3] == [f"{UNCLEAR} (1 seed)"] * 3
    # differences far inside the seeds' noise: inconclusive, not a verdict either way
    close = {"single": [1.0, 2.0, 3.0], "finetune": [1.0, 2.0, 3.0], "er": [1.0, 2.0, 3.0], "der": [1.0, 2.0, 3.0]}
    assert [c.verdict for c in check_claims(_finals(close, noise=0.5), None)][:3] == [UNCLEAR] * 3
    assert check_claims({"er": {0: np.ones(3)}}, None)[1].verdict == UNKNOWN
    # closed loop: er and der beat the Task-0-only VAE in every seed
    write_matrix(tmp_path, pipelines=("oracle", "raw", "single/seed0/task0", "er/seed0", "der/seed0"))
    one_seed = collect(tmp_path).rl[0]
    assert check_claims(_finals(paper_like), one_seed)[3].verdict == f"{UNCLEAR} (1 seed)"
