"""Avalanche loggers of a run: progress bars, Avalanche's CSV files, TensorBoard, and a long CSV of every metric.

Avalanche's ``CSVLogger`` only knows accuracy and loss names, so :class:`MetricsCSVLogger`
(an Avalanche ``BaseLogger`` too) writes every metric as ``name,step,value`` rows to
``metrics.csv``; the reports read the training curves and the KL ramp from it.

On ``--resume`` the CSV files are restored from the last checkpoint's snapshot, so the rows
of an interrupted experience never appear twice.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from avalanche.logging import BaseLogger, CSVLogger, InteractiveLogger, TensorboardLogger, TextLogger

METRICS_CSV = "metrics.csv"


class MetricsCSVLogger(BaseLogger):
    """Every scalar metric value as a ``name,step,value`` row."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.path, "w", newline="")  # noqa: SIM115 (closed by close())
        self._writer = csv.writer(self.file)
        self._writer.writerow(["name", "step", "value"])
        self.file.flush()

    def log_single_metric(self, name: str, value: Any, x_plot: int) -> None:
        if isinstance(value, int | float):
            self._writer.writerow([name, x_plot, repr(float(value))])
            self.file.flush()

    def close(self) -> None:
        self.file.close()


class RunLoggers:
    """The loggers of one run folder, with snapshot and restore of their CSV files."""

    def __init__(self, log_dir: str | os.PathLike[str], progress: bool = True) -> None:
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.csv = CSVLogger(log_folder=str(self.log_dir))
        self.metrics = MetricsCSVLogger(self.log_dir / METRICS_CSV)
        self.tensorboard = TensorboardLogger(tb_log_dir=str(self.log_dir / "tb"))
        self.console = InteractiveLogger() if progress else TextLogger(open(os.devnull, "w"))  # noqa: SIM115

    @property
    def all(self) -> list[BaseLogger]:
        return [self.console, self.csv, self.metrics, self.tensorboard]

    def _files(self) -> dict[str, Any]:
        return {
            "training_results.csv": self.csv.training_file,
            "eval_results.csv": self.csv.eval_file,
            METRICS_CSV: self.metrics.file,
        }

    def snapshot(self) -> dict[str, str]:
        """The CSV files' contents now (they are small), for a checkpoint."""
        out = {}
        for name, handle in self._files().items():
            handle.flush()
            out[name] = (self.log_dir / name).read_text()
        return out

    def restore(self, snapshot: dict[str, str]) -> None:
        """Put back the rows of a snapshot below the headers the fresh loggers wrote."""
        for name, handle in self._files().items():
            content = snapshot.get(name, "")
            rows = content.split("\n", 1)[1] if "\n" in content else ""
            handle.write(rows)
            handle.flush()

    def close(self) -> None:
        self.csv.close()
        self.metrics.close()
        self.tensorboard.writer.close()
