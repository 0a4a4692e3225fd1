"""Statistics over seeds on hand-made numbers with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from reports.collect import RLMatrix
from reports.stats import HIGHER, LOWER, UNCLEAR, equivalent, paired, t_interval, wilson
from reports.tables import display, pooled_success_table


def test_t_interval_by_hand():
    low, high = t_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    half = 2.776445 * np.std([1, 2, 3, 4, 5], ddof=1) / math.sqrt(5)  # t(0.975, 4)
    assert low == pytest.approx(3 - half, rel=1e-5) and high == pytest.approx(3 + half, rel=1e-5)
    assert all(math.isnan(v) for v in t_interval([2.0]))


def test_paired_significant_and_inconclusive():
    a = {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0, 4: 5.0}
    shifted = {s: v + 0.5 + 0.01 * s for s, v in a.items()}  # b above a in every seed
    p = paired(a, shifted)
    assert p.outcome == LOWER and p.p_value < 1e-4 and p.seeds == 5
    assert paired(shifted, a).outcome == HIGHER
    noisy = {0: 1.5, 1: 1.6, 2: 3.4, 3: 3.6, 4: 5.1}  # above, below: no consistent sign
    assert paired(a, noisy).outcome == UNCLEAR
    assert paired({0: 1.0}, {0: 2.0}).outcome == UNCLEAR  # one seed never decides
    assert paired(a, {7: 1.0}).seeds == 0  # no shared seed
    # seeds pair by number, not by position
    assert paired({0: 1.0, 1: 5.0}, {1: 5.5, 0: 1.5}).outcome == LOWER


def test_equivalence_within_a_margin():
    b = {s: 10.0 + s for s in range(5)}
    near = {s: v * 1.01 + 0.001 * (-1) ** s for s, v in b.items()}
    far = {s: v * 1.3 for s, v in b.items()}
    assert equivalent(near, b, 0.10) and not equivalent(far, b, 0.10)
    assert not equivalent({0: 10.0}, {0: 10.0}, 0.10)  # one seed cannot show it


def test_wilson_and_pooled_success():
    assert wilson(90, 100) == pytest.approx((0.8256, 0.9448), abs=1e-4)
    cells = tuple(
        {"pipeline": p, "domain": d, "episodes": 100, "success_rate": r}
        for p, d, r in [("der/seed0", "canonical", 0.3), ("der/seed1", "canonical", 0.5), ("raw", "canonical", 0.9),
                        ("single/seed0/task0", "canonical", 0.2), ("single/seed1/task0", "canonical", 0.4)]
    )  # fmt: skip
    matrix = RLMatrix(None, "quick", "agent", 100, ("canonical",), tuple(c["pipeline"] for c in cells), cells)  # type: ignore[arg-type]
    table = pooled_success_table(matrix).set_index("pipeline")
    assert table.loc["der", "successes"] == 80 and table.loc["der", "episodes"] == 200
    assert (table.loc["der", "ci low"], table.loc["der", "ci high"]) == pytest.approx(wilson(80, 200))
    assert table.loc["der", "per seed"] == "s0 30%, s1 50%" and table.loc["der", "seeds"] == 2
    assert table.loc["single/task0", "success"] == pytest.approx(0.3)
    assert table.loc["raw", "seeds"] == 0 and table.loc["raw", "episodes"] == 100


def test_tables_show_the_interval_with_several_seeds():
    frame = pd.DataFrame({"preset": ["q"], "strategy": ["er"], "seeds": [3], "mean": [1.0], "mean std": [0.1],
                          "mean ci low": [0.75], "mean ci high": [1.25]})  # fmt: skip
    assert display(frame, 2)["mean"][0] == "1.00 ± 0.10 [0.75, 1.25]"
    one = frame.assign(seeds=[1], **{"mean ci low": [np.nan], "mean ci high": [np.nan]})
    assert display(one, 2)["mean"][0] == "1.00"
