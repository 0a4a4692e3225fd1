"""The paper's qualitative findings (Xie et al., Sec. IV), judged with the seeds at hand.

Each check returns a :class:`Claim`: the finding, a verdict and the numbers behind it. A
verdict is ``holds`` only when every comparison the finding makes is significant at 95% in
its direction, ``does not hold`` when one of them is significant the other way, and
``inconclusive`` otherwise (always so with one seed: ``inconclusive (1 seed)``). Comparisons
are paired over seeds (:func:`reports.stats.paired`, a paired t-test), since the seeds of a
sweep share data and Task-0 models; "matches" is a paired equivalence test within
:data:`MATCH_TOLERANCE` (:func:`reports.stats.equivalent`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from reports.collect import RLMatrix, RunResult
from reports.stats import HIGHER, LOWER, Paired, equivalent, paired
from reports.stats import UNCLEAR as _UNCLEAR_OUTCOME

MATCH_TOLERANCE = 0.10
"""Relative difference within which two errors count as matching."""
HOLDS, FAILS, UNCLEAR, UNKNOWN = "holds", "does not hold", _UNCLEAR_OUTCOME, "cannot be checked"

Finals = dict[str, dict[int, np.ndarray]]
"""strategy -> seed -> final value of a metric on each test task."""


@dataclass(frozen=True)
class Claim:
    finding: str
    verdict: str
    evidence: str


def finals(runs: list[RunResult], key: str = "mse") -> Finals:
    """The final ``key`` of every run, by strategy and seed."""
    out: Finals = {}
    for run in runs:
        out.setdefault(run.strategy, {})[run.seed] = run.final(key)
    return out


def _task(values: Finals, strategy: str, task: int) -> dict[int, float]:
    return {seed: float(v[task]) for seed, v in values.get(strategy, {}).items() if task < len(v)}


def _verdict(wanted: list[tuple[Paired, str]], fails: bool = False, unproven: bool = False) -> str:
    """HOLDS when every comparison went the wanted way (and nothing else is ``unproven``), FAILS when
    one went the other way significantly (or ``fails``), else inconclusive."""
    if fails or any(p.outcome not in (o, UNCLEAR) for p, o in wanted):
        return FAILS
    if all(p.outcome == o for p, o in wanted) and not unproven:
        return HOLDS
    return f"{UNCLEAR} (1 seed)" if max((p.seeds for p, _ in wanted), default=0) < 2 else UNCLEAR


def _missing(values: Finals, names: tuple[str, ...]) -> str:
    absent = [n for n in names if n not in values]
    return f"no {', '.join(absent)} runs" if absent else ""


def single_best(values: Finals) -> Claim:
    finding = "Single-task models are best on Tasks 0 and 1."
    if missing := _missing(values, ("single",)):
        return Claim(finding, UNKNOWN, missing)
    others = [s for s in values if s != "single"]
    if not others:
        return Claim(finding, UNKNOWN, "no other strategy to compare with")
    wanted, parts = [], []
    for task in (0, 1):
        for other in others:
            p = paired(_task(values, "single", task), _task(values, other, task))
            wanted.append((p, LOWER))
            parts.append(f"Task {task}: {p.describe('single', other)}")
    return Claim(finding, _verdict(wanted), "; ".join(parts))


def finetune_forgets(values: Finals) -> Claim:
    finding = "Fine-tuning matches ER and DER on Task 0 but is clearly worse on Task 1 (forgetting)."
    if missing := _missing(values, ("finetune", "er", "der")):
        return Claim(finding, UNKNOWN, missing)
    wanted, parts, mismatch, unmatched = [], [], False, False
    for other in ("er", "der"):
        ft0, o0 = _task(values, "finetune", 0), _task(values, other, 0)
        match = equivalent(ft0, o0, MATCH_TOLERANCE)
        p0 = paired(ft0, o0)
        mismatch |= p0.outcome != UNCLEAR and abs(p0.mean_a - p0.mean_b) > MATCH_TOLERANCE * abs(p0.mean_b)
        parts.append(f"Task 0: {p0.describe('finetune', other)}, {'equivalent' if match else 'not shown equivalent'}"
                     f" within {MATCH_TOLERANCE:.0%}")  # fmt: skip
        p1 = paired(_task(values, "finetune", 1), _task(values, other, 1))
        wanted.append((p1, HIGHER))
        parts.append(f"Task 1: {p1.describe('finetune', other)}")
        unmatched |= not match
    return Claim(finding, _verdict(wanted, mismatch, unmatched), "; ".join(parts))


def der_best_last(values: Finals) -> Claim:
    finding = "DER is best on Task 2."
    if missing := _missing(values, ("der",)):
        return Claim(finding, UNKNOWN, missing)
    others = [s for s in values if s != "der"]
    if not others:
        return Claim(finding, UNKNOWN, "no Task 2 results to compare")
    pairs = [(paired(_task(values, "der", 2), _task(values, o, 2)), o) for o in others]
    evidence = "; ".join(p.describe("DER", o) for p, o in pairs)
    return Claim(finding, _verdict([(p, LOWER) for p, _ in pairs]), evidence)


def _success_by_seed(matrix: RLMatrix, strategy: str, suffix: str = "") -> dict[int, float]:
    """seed -> mean success over the non-canonical domains of ``<strategy>/seed<N><suffix>``."""
    rates: dict[int, list[float]] = {}
    pattern = re.compile(rf"^{re.escape(strategy)}/seed(\d+){re.escape(suffix)}$")
    for cell in matrix.cells:
        if (m := pattern.match(cell["pipeline"])) and cell["domain"] != "canonical":
            rates.setdefault(int(m.group(1)), []).append(cell["success_rate"])
    return {seed: float(np.mean(r)) for seed, r in rates.items()}


def replay_agents_reach(matrix: RLMatrix | None) -> Claim:
    finding = "With the VAE in the loop, ER and DER agents reach the target more often than with the Task-0-only VAE."
    if matrix is None:
        return Claim(finding, UNKNOWN, "no closed-loop evaluation (run `python -m benchmark.rl matrix`)")
    base = _success_by_seed(matrix, "single", "/task0")
    er, der = _success_by_seed(matrix, "er"), _success_by_seed(matrix, "der")
    if not (base and er and der):
        return Claim(finding, UNKNOWN, "the matrix needs er, der and single (task0) rows")
    pairs = [(paired(er, base), "ER"), (paired(der, base), "DER")]
    evidence = "mean success over the non-canonical domains: " + "; ".join(
        p.describe(name, "Task-0-only VAE", 2) for p, name in pairs
    )
    return Claim(finding, _verdict([(p, HIGHER) for p, _ in pairs]), evidence)


def check_claims(values: Finals, matrix: RLMatrix | None) -> list[Claim]:
    """All four findings for one preset's final errors by strategy and seed and (optionally) its matrix."""
    return [single_best(values), finetune_forgets(values), der_best_last(values), replay_agents_reach(matrix)]
