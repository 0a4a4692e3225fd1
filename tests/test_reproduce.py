"""``python -m benchmark.reproduce`` on hand-made targets and runs; the quick reproduction is ``slow``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_reports import R, write_run

from benchmark.reproduce import TARGETS, main


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    for seed, shift in ((0, 0.0), (1, 0.1), (2, -0.1)):
        write_run(root, "er", np.asarray(R) + shift, seed=seed)
        write_run(root, "der", np.asarray(R) + 2 * shift, seed=seed)
    return root


def test_targets_made_from_runs_are_reproduced(runs, tmp_path, capsys):
    targets = tmp_path / "targets.csv"
    assert main(["--runs", str(runs), "--seeds", "0-2", "--write-targets", str(targets)]) == 0
    table = pd.read_csv(targets)
    assert set(table["strategy"]) == {"er", "der"} and (table["tolerance"] > 0).all()
    mse_mean = table[(table["strategy"] == "er") & (table["metric"] == "final_mse/mean")].iloc[0]
    assert mse_mean["expected"] == pytest.approx(np.mean(R[-1]))  # the shifts cancel over the three seeds
    capsys.readouterr()
    assert main(["--runs", str(runs), "--targets", str(targets), "--no-run"]) == 0
    out = capsys.readouterr().out
    assert "| benchmark | strategy | metric | expected | reproduced | seeds | ok |" in out
    assert "FAIL" not in out and f"{len(table)} of {len(table)} targets reproduced" in out


def test_a_value_outside_its_tolerance_fails(runs, tmp_path, capsys):
    targets = tmp_path / "targets.csv"
    assert main(["--runs", str(runs), "--seeds", "0-2", "--write-targets", str(targets)]) == 0
    table = pd.read_csv(targets)
    row = (table["strategy"] == "der") & (table["metric"] == "final_mse/canonical")
    table.loc[row, "expected"] += 3 * table.loc[row, "tolerance"]
    table.to_csv(targets, index=False)
    capsys.readouterr()
    assert main(["--runs", str(runs), "--targets", str(targets), "--no-run"]) == 1
    failing = [line for line in capsys.readouterr().out.splitlines() if "FAIL" in line]
    assert len(failing) == 1 and "| der | final_mse/canonical |" in failing[0]
    # a seed whose runs are missing fails every target rather than passing on fewer seeds
    assert main(["--runs", str(runs), "--targets", str(targets), "--no-run", "--seeds", "0-3"]) == 1


def test_usage_errors(runs, tmp_path, capsys):
    assert main(["--runs", str(runs), "--targets", str(tmp_path / "none.csv"), "--no-run"]) == 2
    assert main(["--runs", str(runs), "--write-targets", str(tmp_path / "t.csv")]) == 2  # no --seeds
    assert main(["--runs", str(runs), "--seeds", "0", "--write-targets", str(tmp_path / "t.csv")]) == 2  # 1 seed
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)


@pytest.mark.slow
def test_quick_reproduces_the_shipped_targets():
    """Runs (or reads) the 5-seed quick sweep the shipped targets come from: hours on a laptop CPU."""
    assert TARGETS.is_file()
    assert main(["--preset", "quick"]) == 0
