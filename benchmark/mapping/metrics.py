"""Regression metrics as Avalanche ``PluginMetric`` s (avalanche-lib 0.6.0 has none).

- :class:`MappingMetrics`: after each test experience, the reconstruction MSE against the
  canonical target as a mean per pixel (``eval/exp{k}/mse``) and as the paper's per-image sum
  over every pixel (``eval/exp{k}/mse_sum``), and the auxiliary error: the mean Euclidean
  distance in metres between predicted and true target positions (``eval/exp{k}/aux_error``);
  and what the agent needs of the reconstruction (:mod:`benchmark.mapping.task_metrics`): where the
  target lands, as the median and 90th percentile of its distance from the truth in pixels
  and metres over the images whose target was found (``target_error_px``, ``target_error_m``,
  ``target_error_p90_px``, ``target_error_p90_m``), the fraction of images whose visible
  target is missing from the reconstruction (``target_missing``), and the mean IoU of the
  reconstructed arm with the true one (``arm_iou``).
  Evaluated after every training experience, these give the matrices ``R[i][j]``.
- :class:`LossTermsMetric`: per training epoch, the mean of Eq. 1 and of each of its terms,
  the KL weight (so the ramp shows in the logs) and the total loss including any plugin's
  regularisers (``train/loss``, ``train/recon``, ``train/aux``, ``train/kl``, ``train/gamma``,
  ``train/total``).
"""

from __future__ import annotations

from typing import Any

import torch
from avalanche.evaluation import PluginMetric
from avalanche.evaluation.metric_results import MetricValue

from benchmark.mapping.fastpath import to_float_images
from benchmark.mapping.loss import VAELoss
from benchmark.mapping.task_metrics import task_errors
from envs.renderer import SceneConfig

EVAL_KEYS = (
    "mse", "mse_sum", "aux_error", "target_error_px", "target_error_m", "target_error_p90_px", "target_error_p90_m",
    "target_missing", "arm_iou",
)  # fmt: skip
"""Every key of :class:`MappingMetrics`, in the order of ``results.json``."""


def eval_name(experience: int, key: str) -> str:
    """Name of an evaluation metric, e.g. ``eval/exp1/mse``."""
    return f"eval/exp{experience}/{key}"


def _percentile(values: list[torch.Tensor], q: float) -> float:
    """``q``-quantile of the concatenated values; NaN when there are none."""
    joined = torch.cat(values) if values else torch.empty(0)
    return float(torch.quantile(joined, q)) if joined.numel() else float("nan")


class MappingMetrics(PluginMetric[dict[str, float]]):
    """Reconstruction, auxiliary and task errors on each evaluated experience.

    Args:
        scene: the data's scene (camera and resolution), to turn pixels into metres.
    """

    def __init__(self, scene: SceneConfig | None = None) -> None:
        super().__init__()
        self.scene = scene or SceneConfig()
        self.reset()

    def reset(self) -> None:
        self._sse = 0.0
        self._pixels = 0
        self._images = 0
        self._aux = 0.0
        self._error_px: list[torch.Tensor] = []
        self._error_m: list[torch.Tensor] = []
        self._visible = 0
        self._missing = 0
        self._iou = 0.0

    def result(self) -> dict[str, float]:
        images = max(self._images, 1)
        return {
            "mse": self._sse / max(self._pixels, 1),
            "mse_sum": self._sse / images,
            "aux_error": self._aux / images,
            "target_error_px": _percentile(self._error_px, 0.5),
            "target_error_m": _percentile(self._error_m, 0.5),
            "target_error_p90_px": _percentile(self._error_px, 0.9),
            "target_error_p90_m": _percentile(self._error_m, 0.9),
            "target_missing": self._missing / max(self._visible, 1),
            "arm_iou": self._iou / images,
        }

    def before_eval_exp(self, strategy: Any) -> None:
        self.reset()

    @torch.no_grad()
    def after_eval_iteration(self, strategy: Any) -> None:
        recon = strategy.mb_output.recon.float()
        target = to_float_images(strategy.mb_y)
        self._sse += float((recon - target).pow(2).sum())
        self._pixels += target.numel()
        self._images += target.shape[0]
        aux_pred, aux = strategy.mb_output.aux.float(), strategy.mbatch[2].float()
        self._aux += float((aux_pred[:, :3] - aux[:, :3]).norm(dim=1).sum())
        task = task_errors(recon, target, strategy.mbatch[3], aux[:, 2], self.scene)
        kept = task.visible & task.found
        self._error_px.append(task.error_px[kept].cpu())
        self._error_m.append(task.error_m[kept].cpu())
        self._visible += int(task.visible.sum())
        self._missing += int((task.visible & ~task.found).sum())
        self._iou += float(task.arm_iou.sum())

    def after_eval_exp(self, strategy: Any) -> list[MetricValue]:
        k = strategy.experience.current_experience
        step = strategy.clock.train_iterations
        return [MetricValue(self, eval_name(k, key), value, step) for key, value in self.result().items()]

    def __str__(self) -> str:
        return "MappingMetrics"


class LossTermsMetric(PluginMetric[dict[str, float]]):
    """Epoch means of the loss terms, read from the :class:`VAELoss` criterion."""

    def __init__(self, criterion: VAELoss) -> None:
        super().__init__()
        self.criterion = criterion
        self.reset()

    def reset(self) -> None:
        self._sums: dict[str, float] = {}
        self._count = 0

    def result(self) -> dict[str, float]:
        return {k: v / max(self._count, 1) for k, v in self._sums.items()}

    def before_training_epoch(self, strategy: Any) -> None:
        self.reset()

    def after_training_iteration(self, strategy: Any) -> None:
        terms = self.criterion.last
        if terms is None:
            return
        values = {
            "loss": terms.total.item(),
            "recon": terms.recon.item(),
            "aux": terms.aux.item(),
            "kl": terms.kl.item(),
            "gamma": terms.gamma,
            "total": strategy.loss.item(),
        }
        for key, value in values.items():
            self._sums[key] = self._sums.get(key, 0.0) + value
        self._count += 1

    def after_training_epoch(self, strategy: Any) -> list[MetricValue]:
        step = strategy.clock.train_iterations
        return [MetricValue(self, f"train/{key}", value, step) for key, value in self.result().items()]

    def __str__(self) -> str:
        return "LossTerms"
