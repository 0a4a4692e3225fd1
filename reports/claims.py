"""The paper's qualitative findings, checked on the data at hand.

Each check returns a :class:`Claim`: the finding, a verdict (``holds``, ``does not hold`` or
``cannot be checked``) and the numbers behind it. "Matches" means within
:data:`MATCH_TOLERANCE` (relative); "clearly worse" means more than that much higher. The
checks use the final MSE table of one preset (means over seeds) and, for the closed loop, the
mean success rate over the non-canonical domains of one evaluation matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from reports.collect import RLMatrix

MATCH_TOLERANCE = 0.10
"""Relative difference under which two MSEs count as matching."""
HOLDS, FAILS, UNKNOWN = "holds", "does not hold", "cannot be checked"


@dataclass(frozen=True)
class Claim:
    finding: str
    verdict: str
    evidence: str


def _mse(table: pd.DataFrame, strategy: str, task: int) -> float | None:
    rows = table[table["strategy"] == strategy]
    columns = [c for c in table.columns if c.startswith(f"task {task} (") and not c.endswith(" std")]
    if rows.empty or not columns:
        return None
    return float(rows.iloc[0][columns[0]])


def _known(table: pd.DataFrame, task: int) -> dict[str, float]:
    """Strategy -> final MSE on ``task``, for the strategies that have one."""
    values = {str(s): _mse(table, s, task) for s in table["strategy"]}
    return {s: v for s, v in values.items() if v is not None and not np.isnan(v)}


def _missing(table: pd.DataFrame, names: tuple[str, ...]) -> str:
    absent = [n for n in names if n not in set(table["strategy"])]
    return f"no {', '.join(absent)} runs" if absent else ""


def single_best(table: pd.DataFrame) -> Claim:
    finding = "Single-task models are best on Tasks 0 and 1."
    if missing := _missing(table, ("single",)):
        return Claim(finding, UNKNOWN, missing)
    if len(set(table["strategy"])) < 2:
        return Claim(finding, UNKNOWN, "no other strategy to compare with")
    parts, ok = [], True
    for task in (0, 1):
        values = _known(table, task)
        if "single" not in values:
            return Claim(finding, UNKNOWN, f"no Task {task} result of single")
        best = min(values, key=values.__getitem__)
        ok &= best == "single"
        parts.append(f"Task {task}: single {values['single']:.5f}, best {best} {values[best]:.5f}")
    return Claim(finding, HOLDS if ok else FAILS, "; ".join(parts))


def finetune_forgets(table: pd.DataFrame) -> Claim:
    finding = "Fine-tuning matches ER and DER on Task 0 but is clearly worse on Task 1 (forgetting)."
    if missing := _missing(table, ("finetune", "er", "der")):
        return Claim(finding, UNKNOWN, missing)
    ft0, ft1 = _mse(table, "finetune", 0), _mse(table, "finetune", 1)
    others = {s: (_mse(table, s, 0), _mse(table, s, 1)) for s in ("er", "der")}
    assert ft0 is not None and ft1 is not None
    matches = all(abs(ft0 - v[0]) <= MATCH_TOLERANCE * v[0] for v in others.values() if v[0] is not None)
    worse = all(ft1 > (1 + MATCH_TOLERANCE) * v[1] for v in others.values() if v[1] is not None)
    evidence = (
        f"Task 0: finetune {ft0:.5f}, ER {others['er'][0]:.5f}, DER {others['der'][0]:.5f} "
        f"({'match' if matches else 'no match'} within {MATCH_TOLERANCE:.0%}); "
        f"Task 1: finetune {ft1:.5f}, ER {others['er'][1]:.5f}, DER {others['der'][1]:.5f} "
        f"({'clearly worse' if worse else 'not clearly worse'})"
    )
    return Claim(finding, HOLDS if matches and worse else FAILS, evidence)


def der_best_last(table: pd.DataFrame) -> Claim:
    finding = "DER is best on Task 2."
    if missing := _missing(table, ("der",)):
        return Claim(finding, UNKNOWN, missing)
    known = _known(table, 2)
    if len(known) < 2 or "der" not in known:
        return Claim(finding, UNKNOWN, "no Task 2 results to compare")
    best = min(known, key=known.__getitem__)
    return Claim(finding, HOLDS if best == "der" else FAILS, f"DER {known['der']:.5f}, best {best} {known[best]:.5f}")


def _success(matrix: RLMatrix, prefix: str) -> float | None:
    def ours(pipeline: str) -> bool:
        return pipeline == prefix or pipeline.startswith(prefix + "/")

    rates = [c["success_rate"] for c in matrix.cells if ours(c["pipeline"]) and c["domain"] != "canonical"]
    return float(np.mean(rates)) if rates else None


def replay_agents_reach(matrix: RLMatrix | None) -> Claim:
    finding = "With the VAE in the loop, ER and DER agents reach the target more often than with the Task-0-only VAE."
    if matrix is None:
        return Claim(finding, UNKNOWN, "no closed-loop evaluation (run `python -m benchmark.rl matrix`)")
    task0 = [p for p in matrix.pipelines if p.startswith("single/") and p.endswith("/task0")]
    er, der = _success(matrix, "er"), _success(matrix, "der")
    base = _success(matrix, task0[0]) if task0 else None
    if er is None or der is None or base is None:
        return Claim(finding, UNKNOWN, "the matrix needs er, der and single (task0) rows")
    evidence = f"mean success over the non-canonical domains: ER {er:.0%}, DER {der:.0%}, Task-0-only VAE {base:.0%}"
    return Claim(finding, HOLDS if er > base and der > base else FAILS, evidence)


def check_claims(table: pd.DataFrame, matrix: RLMatrix | None) -> list[Claim]:
    """All four findings for one preset's final MSE table and (optionally) its evaluation matrix."""
    return [single_best(table), finetune_forgets(table), der_best_last(table), replay_agents_reach(matrix)]
