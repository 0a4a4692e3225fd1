"""Extending a finished run with new tasks, without retraining (the paper's motivation: a new
randomization parameter or simulator change should not mean training from scratch).

:func:`prepare_extension` makes a new run folder from a finished one: the same configuration
on a stream whose first tasks are the old run's, the old checkpoints copied (model, optimizer,
plugin states such as DER's buffer, the RNG states), and each old results row widened by the
new test tasks, measured on the model saved after that step. The old columns are copied as
they are. :func:`~benchmark.continual.runner.run_strategy` then resumes it after its last old
step and trains only the new experiences, exactly as an uninterrupted run on the longer stream
would have continued. The original folder is only read.

Strategies whose state cannot be extended (``single``, ``joint``: no sequence of experiences to
continue) are refused; for them the honest baseline is a retrain (``benchmark.run --extend RUN
--retrain``).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from benchmark.common.io import write_json
from benchmark.continual import checkpoint
from benchmark.continual.config import RunConfig, TrainConfig, run_dir
from benchmark.continual.session import Session
from benchmark.data.generate import StreamData
from benchmark.data.spec import DataSpec
from benchmark.data.stream import build_benchmark
from benchmark.mapping.fastpath import FastPath
from benchmark.mapping.metrics import EVAL_KEYS
from strategies.registry import get_strategy


class ExtendError(ValueError):
    """An extension that does not match the finished run; one line."""


def finished_config(run: Path) -> dict[str, Any]:
    """The ``config.json`` of a finished run folder; ``ExtendError`` when it is not one."""
    if not (run / "config.json").is_file() or not (run / "results.json").is_file():
        raise ExtendError(f"--extend {run}: not a finished run folder (no config.json and results.json)")
    try:
        return json.loads((run / "config.json").read_text())
    except ValueError:
        raise ExtendError(f"--extend {run}: its config.json is not valid JSON") from None


def extended_config(
    old: dict[str, Any],
    tasks: tuple[str, ...],
    epochs: tuple[int, ...] | None,
    fast: FastPath,
    device: str,
    retrain: bool = False,
) -> RunConfig:
    """The old run's configuration on the stream ``tasks`` (which must start with the old tasks).

    ``epochs``, when given, covers the whole new stream and must repeat the old epochs; else the
    new tasks get the old run's last task's epochs. ``retrain``: the configuration of training it
    from scratch on the longer stream, which every strategy allows.
    """
    strategy = old["strategy"]
    entry = get_strategy(strategy)
    if entry.schedule != "continual" and not retrain:
        raise ExtendError(
            f"{strategy} runs cannot be extended (a {entry.schedule} model has no sequence of experiences to "
            "continue); retrain it on the longer stream instead: add --retrain"
        )
    spec = DataSpec.from_dict(old["data"])
    if tuple(tasks[: len(spec.tasks)]) != spec.tasks or len(tasks) <= len(spec.tasks):
        raise ExtendError(
            f"--tasks must start with the run's tasks ({','.join(spec.tasks)}) and add at least one, "
            f"got {','.join(tasks)}"
        )
    train = dict(old["train"])
    old_epochs = tuple(train["epochs"])
    new = tuple(epochs) if epochs is not None else old_epochs + (old_epochs[-1],) * (len(tasks) - len(old_epochs))
    if new[: len(old_epochs)] != old_epochs:
        raise ExtendError(f"--epochs must repeat the run's epochs {','.join(map(str, old_epochs))} for its tasks")
    train["epochs"] = new
    return RunConfig(
        strategy, old["preset"], int(old["seed"]), device, dataclasses.replace(spec, tasks=tuple(tasks)),
        TrainConfig(**train), fast,
    )  # fmt: skip


def check_overrides(old: dict[str, Any], given: dict[str, Any]) -> None:
    """``given`` (flag name -> value the user set, None when not set) must agree with the run's config."""
    sections = {**{k: v for k, v in old["data"].items() if k != "scene"}, **old["data"]["scene"], **old["train"],
                "preset": old["preset"], "strategy": old["strategy"]}  # fmt: skip
    for name, value in given.items():
        if value is None or name not in sections:
            continue
        theirs = sections[name]
        if (list(value) if isinstance(value, tuple) else value) != theirs:
            flag = "--" + name.replace("_", "-")
            raise ExtendError(f"{flag} {value} differs from the run's {theirs}: an extension keeps the run's config")


def prepare_extension(run: Path, cfg: RunConfig, data: StreamData, out: Path, device: torch.device) -> Path:
    """Write ``<out>/<strategy>/seed<N>/`` as a copy of ``run`` resumable on ``cfg``'s longer stream."""
    old_steps = len(finished_config(run)["data"]["tasks"])
    target = run_dir(out, cfg.strategy, cfg.seed)
    if target.resolve() == run.resolve():
        raise ExtendError("--out must differ from the extended run's folder (the original is never modified)")
    if target.exists() and any(target.iterdir()):
        raise ExtendError(f"{target} exists and is not empty; choose another --out")
    bm = build_benchmark(data)
    new_tasks = list(range(old_steps, data.num_tasks))
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        shutil.copytree(run / "logs", staging / "logs")
        with tempfile.TemporaryDirectory(prefix="ciim-eval-") as logs:
            session = Session(get_strategy(cfg.strategy), cfg, device, Path(logs), progress=False)
            try:
                added: list[dict[str, list[float]]] = []  # the new columns of row i, from the model after step i
                for step in range(old_steps):
                    saved = checkpoint.load(run / "checkpoints" / f"exp{step}.pt")
                    session.load_state(saved["session"], plugins=False)
                    added.append(session.evaluate(bm.test_stream, data.num_tasks, only=new_tasks))
                    for key in EVAL_KEYS:  # a checkpoint holds every row so far
                        saved["rows"][key] = [list(r) + added[i][key] for i, r in enumerate(saved["rows"][key])]
                    checkpoint.save(staging / "checkpoints" / f"exp{step}.pt", saved)
            finally:
                session.close()
        write_json(staging / "config.json", cfg.to_dict())
        write_json(staging / "extended_from.json", {"run": str(run.resolve()), "tasks": old_steps})
        if target.exists():
            target.rmdir()
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
