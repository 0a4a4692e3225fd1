"""Finding and reading what runs wrote: ``results.json`` of each VAE run, ``matrix.json`` of each RL evaluation.

Everything under a runs folder is read leniently: a file that is half-written, foreign or of
an unknown shape is named in one warning line (kept in :attr:`Collection.problems`) and the
rest is read on. Nothing here computes a figure; see :mod:`reports.metrics` and
:mod:`reports.tables`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

RESULTS, MATRIX = "results.json", "matrix.json"
TASK_KEYS = ("target_error_m", "target_error_p90_m", "target_missing", "arm_iou")
"""Task-level matrices of ``results.json`` (:mod:`benchmark.mapping.task_metrics`), shown beside the MSE."""


@dataclass(frozen=True)
class RunResult:
    """One ``<strategy>/seed<N>/results.json``."""

    path: Path
    """The run folder."""
    strategy: str
    preset: str
    seed: int
    schedule: str
    """``continual``, ``single`` or ``joint`` (how the rows of the matrices were produced)."""
    tasks: tuple[str, ...]
    mse: np.ndarray
    """``R[i][j]``: mean-per-pixel MSE on test task ``j`` after experience ``i``."""
    mse_sum: np.ndarray
    aux_error: np.ndarray
    wall_time_s: float | None
    device: str | None
    task: dict[str, np.ndarray] = field(default_factory=dict)
    """The matrices of :data:`TASK_KEYS` (NaN where the run predates them)."""

    def matrix(self, key: str) -> np.ndarray:
        """``R[i][j]`` of ``key``: ``mse`` or one of :data:`TASK_KEYS`."""
        return self.mse if key == "mse" else self.task[key]

    def final(self, key: str = "mse") -> np.ndarray:
        """``key`` of the final model on each test task; a single-task run's task-``j`` model on task ``j``."""
        matrix = self.matrix(key)
        if self.schedule == "single":
            return np.diag(matrix).copy()
        return matrix[-1].copy()

    @property
    def final_mse(self) -> np.ndarray:
        """MSE of the final model on each test task; a single-task run's task-``j`` model on task ``j``."""
        return self.final("mse")


@dataclass(frozen=True)
class RLMatrix:
    """One ``matrix.json`` written by ``python -m benchmark.rl matrix``."""

    path: Path
    preset: str
    agent: str
    episodes: int
    domains: tuple[str, ...]
    pipelines: tuple[str, ...]
    cells: tuple[dict[str, Any], ...]
    agreement: tuple[dict[str, Any], ...] = ()
    """Agent agreement rows (:mod:`benchmark.rl.agreement`): pipeline, test task, action error, wrong sign."""
    agent_mapping: str = ""
    """The VAE the agent was trained through (``rl train --mapping``; "": none, or a matrix written before)."""
    agent_family: str = ""
    """The agent's key without its mapping (:meth:`benchmark.rl.config.AgentConfig.family`): the same for
    the per-seed agents of ``sweep --agent task0``."""


@dataclass
class Collection:
    """All that was read under one runs folder."""

    runs: list[RunResult] = field(default_factory=list)
    rl: list[RLMatrix] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """One line per file that could not be used, saying which and why."""

    @property
    def presets(self) -> list[str]:
        return sorted({r.preset for r in self.runs} | {m.preset for m in self.rl})


class FormatError(ValueError):
    """A file that is not what its name promises."""


def _matrix(data: dict[str, Any], key: str, tasks: int) -> np.ndarray:
    try:
        array = np.asarray(data[key], dtype=np.float64)
    except KeyError:
        raise FormatError(f"no {key!r}") from None
    except (TypeError, ValueError):
        raise FormatError(f"{key!r} is not a matrix of numbers") from None
    if array.ndim != 2 or array.shape[1] != tasks or array.shape[0] < 1:
        raise FormatError(f"{key!r} has shape {array.shape}, expected (experiences, {tasks})")
    return array


def parse_results(path: Path, data: Any) -> RunResult:
    """A :class:`RunResult` from the parsed ``results.json`` at ``path``; :class:`FormatError` if it is not one."""
    if not isinstance(data, dict):
        raise FormatError("not a JSON object")
    missing = [k for k in ("strategy", "preset", "seed", "mse_matrix") if k not in data]
    if missing:
        raise FormatError(f"missing {', '.join(missing)}")
    first_row = data["mse_matrix"][0] if isinstance(data["mse_matrix"], list) and data["mse_matrix"] else None
    if not isinstance(first_row, list):
        raise FormatError("'mse_matrix' is not a matrix")
    tasks = tuple(data.get("tasks") or [f"task{j}" for j in range(len(first_row))])
    mse = _matrix(data, "mse_matrix", len(tasks))  # also checks that there is a column per task name
    schedule = str(data.get("schedule", "continual"))
    if schedule in ("continual", "single") and mse.shape[0] != len(tasks):
        raise FormatError(f"a {schedule} run needs {len(tasks)} rows in 'mse_matrix', got {mse.shape[0]}")
    nan = np.full_like(mse, np.nan)
    return RunResult(
        path=path.parent,
        strategy=str(data["strategy"]),
        preset=str(data["preset"]),
        seed=int(data["seed"]),
        schedule=schedule,
        tasks=tasks,
        mse=mse,
        mse_sum=_matrix(data, "mse_sum_matrix", len(tasks)) if "mse_sum_matrix" in data else nan,
        aux_error=_matrix(data, "aux_error_matrix", len(tasks)) if "aux_error_matrix" in data else nan,
        wall_time_s=float(data["wall_time_s"]) if data.get("wall_time_s") is not None else None,
        device=data.get("device"),
        task={k: _matrix(data, f"{k}_matrix", len(tasks)) if f"{k}_matrix" in data else nan for k in TASK_KEYS},
    )


def parse_matrix(path: Path, data: Any) -> RLMatrix:
    """An :class:`RLMatrix` from the parsed ``matrix.json`` at ``path``; :class:`FormatError` if it is not one."""
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise FormatError("no list of 'cells'")
    cells = []
    for cell in data["cells"]:
        if not isinstance(cell, dict) or not {"pipeline", "domain", "success_rate"} <= cell.keys():
            raise FormatError("a cell without pipeline, domain and success_rate")
        cells.append(cell)
    return RLMatrix(
        path=path.parent,
        preset=str(data.get("preset", "unknown")),
        agent=str(data.get("agent", "")),
        episodes=int(data.get("episodes", 0)),
        domains=tuple(data.get("domains") or dict.fromkeys(c["domain"] for c in cells)),
        pipelines=tuple(data.get("pipelines") or dict.fromkeys(c["pipeline"] for c in cells)),
        cells=tuple(cells),
        agreement=tuple(r for r in data.get("agreement") or [] if isinstance(r, dict) and "pipeline" in r),
        agent_mapping=str(data.get("agent_mapping") or ""),
        agent_family=str(data.get("agent_family") or ""),
    )


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise FormatError(f"unreadable ({exc.strerror or exc})") from None
    except ValueError:
        raise FormatError("not valid JSON (half-written?)") from None


def collect(runs: str | Path) -> Collection:
    """Every ``results.json`` and ``matrix.json`` below ``runs``; hidden folders (work in progress) are skipped."""
    root = Path(runs)
    found = Collection()
    for path in sorted(root.rglob("*.json")):
        relative = path.relative_to(root)
        if path.name not in (RESULTS, MATRIX) or any(part.startswith(".") for part in relative.parts):
            continue
        try:
            data = _read(path)
            if path.name == RESULTS:
                found.runs.append(parse_results(path, data))
            else:
                found.rl.append(parse_matrix(path, data))
        except (FormatError, TypeError, ValueError) as exc:
            found.problems.append(f"{path}: skipped, {exc}")
    return found
