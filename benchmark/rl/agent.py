"""Training, caching and loading the agent that acts on canonical images.

The agent (a stable-baselines3 PPO model with :class:`~benchmark.rl.policy.CoordCNN`) is trained
in the ``canonical`` domain only, with ``Monitor``-wrapped vectorized environments, TensorBoard
logs and tqdm progress bars: by imitation of a scripted teacher (:mod:`benchmark.rl.imitation`)
and/or by PPO with SB3's ``EvalCallback``. Trained agents are cached like the
data sets: ``<root>/<config key>/`` holds ``model.zip``, ``config.json`` and ``agent.json``
(the canonical success rate over fixed episodes and the training time). Training writes to a
temporary sibling folder renamed into place at the end, so a killed training never leaves a
folder that looks complete.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.logger import configure as configure_logger
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecTransposeImage
from tqdm.auto import tqdm

from benchmark.common.device import available_cores
from benchmark.common.io import write_json
from benchmark.mapping.vae import ConvVAE, load_vae_at
from benchmark.rl.config import AgentConfig, agent_folder, file_digest
from benchmark.rl.episodes import SeededEpisodes
from benchmark.rl.imitation import ImitationTrainer
from benchmark.rl.policy import CoordCNN
from benchmark.rl.pretrain import pretrain_encoder
from envs.reach_env import ReachConfig, ReachEnv

if TYPE_CHECKING:
    from benchmark.rl.evaluate import EvalResult

log = logging.getLogger("ciim.rl")
MODEL, CONFIG, SUMMARY = "model.zip", "config.json", "agent.json"
FINAL_EVAL_SEED = 1_000_000
"""Base seed of the canonical episodes stored in ``agent.json`` (apart from training seeds)."""


class AgentError(Exception):
    """A missing or unusable agent; the message says what was expected."""


def _worker_env(
    domain: str, config: ReachConfig, seed: int, worker: int, workers: int, monitor: bool
) -> Callable[[], gym.Env]:
    def make() -> gym.Env:
        torch.set_num_threads(1)  # noise effects run in torch; one thread per worker process
        env: gym.Env = ReachEnv(domain, config)
        if monitor:
            env = Monitor(env, info_keywords=("is_success",))
        return SeededEpisodes(env, seed, worker, workers)

    return make


class _SubprocVecEnv(SubprocVecEnv):
    """SB3's ``SubprocVecEnv`` whose ``close`` does not hang after an interrupted step.

    SB3's ``close`` first reads every worker's pending result when a step is in flight; after a
    ``KeyboardInterrupt`` (Ctrl-C, or SIGTERM under :func:`benchmark.cli.sigterm_as_interrupt`)
    in the middle of ``step_wait`` some results were already read, and it waits forever for them.
    Here an in-flight step means the loop was abandoned, so the workers are terminated instead.
    """

    def close(self) -> None:
        if self.closed:
            return
        if not self.waiting:
            super().close()
            return
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.join()
        for remote in self.remotes:
            remote.close()
        self.closed = True


def make_vec_env(
    domain: str, config: ReachConfig, n_envs: int, seed: int, monitor: bool = False, processes: bool | None = None
) -> VecEnv:
    """``n_envs`` environments rendering ``domain``, episode ``k`` seeded ``seed + k`` (see :mod:`.episodes`).

    They run in worker processes when there is more than one core (``processes=None``) and
    in this process otherwise.
    """
    fns = [_worker_env(domain, config, seed, w, n_envs, monitor) for w in range(n_envs)]
    if processes is None:
        processes = n_envs > 1 and available_cores() > 1
    if processes:
        # fork starts in milliseconds; the workers set one torch thread before any torch work
        return _SubprocVecEnv(fns, start_method="fork" if sys.platform.startswith("linux") else "spawn")
    return DummyVecEnv(fns)


class TqdmCallback(BaseCallback):
    """A tqdm bar over environment steps (SB3's own needs ``rich``, which we do not install)."""

    def __init__(self, total: int, enabled: bool = True) -> None:
        super().__init__()
        self.total, self.enabled = total, enabled
        self.bar: Any = None

    def _on_training_start(self) -> None:
        self.bar = tqdm(total=self.total, desc="ppo", unit="step", disable=not self.enabled, dynamic_ncols=True)

    def _on_step(self) -> bool:
        self.bar.update(self.training_env.num_envs)
        return True

    def _on_training_end(self) -> None:
        self.bar.close()


def build_ppo(cfg: AgentConfig, venv: VecEnv, device: str | torch.device, tensorboard: Path | None = None) -> PPO:
    """An untrained PPO of ``cfg`` on ``venv``."""
    return PPO(
        "CnnPolicy",
        venv,
        n_steps=cfg.n_steps,
        batch_size=cfg.batch_size,
        n_epochs=cfg.n_epochs,
        learning_rate=cfg.learning_rate,
        gamma=cfg.gamma,
        gae_lambda=cfg.gae_lambda,
        clip_range=cfg.clip_range,
        ent_coef=cfg.ent_coef,
        policy_kwargs=dict(
            features_extractor_class=CoordCNN,
            features_extractor_kwargs=dict(features_dim=cfg.features_dim),
            net_arch=dict(pi=[128], vf=[128]),
            log_std_init=cfg.log_std_init,
        ),
        tensorboard_log=None if tensorboard is None else str(tensorboard),
        seed=cfg.seed,
        device=device,
        verbose=0,
    )


def check_env(cfg: AgentConfig) -> VecEnv:
    """The one in-process canonical environment of the training's per-round checks (its own episode seeds)."""
    return make_vec_env("canonical", cfg.env, 1, cfg.seed + 500_000, True, processes=False)


def imitate(
    model: PPO, cfg: AgentConfig, eval_env: VecEnv, progress: bool = True, mapping: ConvVAE | None = None
) -> list[dict[str, Any]]:
    """Behaviour cloning, then ``cfg.dagger_rounds`` DAgger rounds; returns one record per round.

    After each round the policy plays ``cfg.eval_episodes`` canonical episodes; loss and success
    rate go to the log, to TensorBoard (``imitation/*``) and to the returned records. An agent
    that learns through ``mapping`` also plays the same episodes through it
    (``mapping_success_rate``): the renders alone do not say whether it can act on the mapping's
    reconstructions, which is what it is trained for.
    """
    from benchmark.rl.evaluate import run_episodes  # evaluation imports this module
    from benchmark.rl.pipelines import VAEObservation

    venv = make_vec_env("canonical", cfg.env, cfg.n_envs, cfg.seed + 250_000)
    mapped_env: VecEnv | None = None
    if mapping is not None:
        mapped_env = VAEObservation(check_env(cfg), mapping, model.device)
    trainer = ImitationTrainer(model, venv, cfg, progress, mapping)
    records: list[dict[str, Any]] = []
    try:
        with tqdm(total=cfg.dagger_rounds + 1, desc="imitation", unit="round", disable=not progress) as bar:
            for round_ in range(cfg.dagger_rounds + 1):
                if round_ == 0:
                    trainer.collect(cfg.teacher_frames, learner=False, noise=cfg.teacher_noise)
                else:
                    trainer.collect(cfg.dagger_frames, learner=True, noise=cfg.dagger_noise)
                epochs = cfg.bc_epochs if round_ == 0 else cfg.dagger_epochs
                losses = trainer.fit(epochs)
                result = run_episodes(model, eval_env, cfg.eval_episodes)
                record = {"round": round_, "frames": trainer.frames, "loss": losses[-1],
                          "success_rate": result.success_rate}  # fmt: skip
                through = ""
                if mapped_env is not None:
                    record["mapping_success_rate"] = run_episodes(model, mapped_env, cfg.eval_episodes).success_rate
                    through = f", {100 * record['mapping_success_rate']:.0f}% through its mapping"
                records.append(record)
                for key in ("loss", "success_rate", "frames", "mapping_success_rate"):
                    if key in record:
                        model.logger.record(f"imitation/{key}", record[key])
                model.logger.dump(step=trainer.frames)
                log.info("rl: imitation round %d, %d frames, action MSE %.4f, success %.0f%% over %d episodes%s",
                         round_, trainer.frames, losses[-1], 100 * result.success_rate, cfg.eval_episodes,
                         through)  # fmt: skip
                bar.update(1)
                bar.set_postfix(mse=f"{losses[-1]:.4f}", success=f"{result.success_rate:.0%}")
    finally:
        venv.close()
        if mapped_env is not None:
            mapped_env.close()
    return records


def load_mapping(cfg: AgentConfig, device: str | torch.device = "cpu") -> ConvVAE:
    """The VAE of ``cfg.mapping``, checked against its digest and the agent's resolution (one-line errors)."""
    if file_digest(cfg.mapping) != cfg.mapping_digest:
        raise AgentError(f"{cfg.mapping} changed since the agent's config was made (its SHA-256 differs)")
    try:
        return load_vae_at(cfg.mapping, cfg.resolution, device)
    except ValueError as exc:
        raise AgentError(str(exc)) from None


def train_agent(cfg: AgentConfig, directory: Path, device: str | torch.device, progress: bool = True) -> dict[str, Any]:
    """Train an agent of ``cfg`` into ``directory`` (model, config, summary); returns the summary."""
    directory.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    venv = make_vec_env("canonical", cfg.env, cfg.n_envs, cfg.seed, monitor=True)
    eval_env = VecTransposeImage(check_env(cfg))
    try:
        model = build_ppo(cfg, venv, device, directory / "tb")
        model.set_logger(configure_logger(str(directory / "tb" / cfg.method), ["tensorboard", "csv"]))
        pretrain, imitation = [], []
        # Loaded once (digest and resolution checked), for the imitation and the final check.
        mapping = load_mapping(cfg, model.device) if cfg.mapping else None
        if cfg.method == "dagger":
            imitation = imitate(model, cfg, eval_env, progress, mapping)
        elif cfg.pretrain_images and cfg.pretrain_epochs:
            pretrain = pretrain_encoder(model.policy.features_extractor, cfg, torch.device(device), progress)
        if cfg.total_timesteps:
            _learn_ppo(model, cfg, eval_env, directory, progress)
        train_time = time.perf_counter() - started
        model.save(directory / MODEL)
    finally:
        venv.close()
        eval_env.close()
    result = _final_check(model, cfg)
    # An agent that learnt through a Task-0 model is meant to act on its reconstructions: its
    # success through that model (same episodes) is the figure that says whether it is usable.
    through = _final_check(model, cfg, mapping) if mapping is not None else None
    summary = {
        "key": cfg.key(),
        "method": cfg.method,
        "train_time_s": train_time,
        "timesteps": cfg.total_timesteps,
        "pretrain_losses": pretrain,
        "imitation": imitation,
        "canonical_success_rate": result.success_rate,
        "canonical_success_ci95": list(result.success_ci),
        "canonical_episodes": result.episodes,
        "mean_final_distance": result.mean_final_distance,
        "device": str(device),
        "torch": torch.__version__,
    }
    if through is not None:
        summary["mapping_success_rate"] = through.success_rate
        summary["mapping_success_ci95"] = list(through.success_ci)
        summary["mapping_mean_final_distance"] = through.mean_final_distance
    write_json(directory / CONFIG, cfg.to_dict())
    write_json(directory / SUMMARY, summary)
    return summary


def _final_check(model: PPO, cfg: AgentConfig, mapping: ConvVAE | None = None) -> EvalResult:
    """The ``cfg.final_episodes`` canonical episodes of ``agent.json`` (seeds from
    :data:`FINAL_EVAL_SEED`), on the renders or, with ``mapping``, on its reconstructions."""
    from benchmark.rl.evaluate import run_episodes  # evaluation imports this module
    from benchmark.rl.pipelines import VAEObservation

    venv: VecEnv = make_vec_env("canonical", cfg.env, min(cfg.n_envs, available_cores()), FINAL_EVAL_SEED)
    if mapping is not None:
        venv = VAEObservation(venv, mapping, model.device)
    try:
        return run_episodes(model, venv, cfg.final_episodes)
    finally:
        venv.close()


def _learn_ppo(model: PPO, cfg: AgentConfig, eval_env: VecEnv, directory: Path, progress: bool) -> None:
    callbacks = [
        EvalCallback(
            eval_env,
            n_eval_episodes=cfg.eval_episodes,
            eval_freq=max(cfg.eval_freq // cfg.n_envs, 1),
            log_path=str(directory / "eval"),
            deterministic=True,
            verbose=0,
        ),
        TqdmCallback(cfg.total_timesteps, progress),
    ]
    model.learn(cfg.total_timesteps, callback=callbacks, tb_log_name="ppo")


def _complete(directory: Path) -> bool:
    return all((directory / name).is_file() for name in (MODEL, CONFIG, SUMMARY))


_OWNER = "owner.pid"
"""File in a training's temporary folder naming the process that trains into it."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def clean_leftovers(root: Path) -> list[Path]:
    """Remove temporary training folders under ``root`` whose process is gone (killed by a signal it could not catch).

    A training that is interrupted (Ctrl-C, SIGTERM under :func:`benchmark.cli.sigterm_as_interrupt`)
    removes its own folder; this catches the rest (SIGKILL, a power cut) on the next start.
    Returns the folders removed.
    """
    removed = []
    for path in root.glob(".*.*"):
        if not path.is_dir():
            continue
        try:
            pid = int((path / _OWNER).read_text())
        except (OSError, ValueError):
            pid = -1
        if pid > 0 and _pid_alive(pid):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def get_or_train_agent(
    cfg: AgentConfig, root: Path, device: str | torch.device, progress: bool = True
) -> tuple[PPO, Path, dict[str, Any]]:
    """Reuse the agent of ``cfg`` cached under ``root`` or train it; returns (model, folder, summary)."""
    directory = root / cfg.key()
    if directory.exists() and not _complete(directory):
        log.info("rl: %s is incomplete; training it again", directory)
        shutil.rmtree(directory)
    if not directory.exists():
        log.info("rl: training the %s agent (%s) -> %s", cfg.preset, cfg.method, directory)
        root.mkdir(parents=True, exist_ok=True)
        for path in clean_leftovers(root):
            log.info("rl: removed %s, left by a killed training", path)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=root))
        try:
            (tmp / _OWNER).write_text(str(os.getpid()))
            summary = train_agent(cfg, tmp, device, progress)
            (tmp / _OWNER).unlink()
            os.replace(tmp, directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        through = f" ({100 * summary['mapping_success_rate']:.0f}% through its mapping)" if cfg.mapping else ""
        log.info(
            "rl: trained in %.0f s; canonical success %.0f%%%s over %d episodes",
            summary["train_time_s"], 100 * summary["canonical_success_rate"], through, summary["canonical_episodes"],
        )  # fmt: skip
    else:
        log.info("rl: reusing the agent in %s", directory)
    model, _, summary = load_agent(directory, device)
    return model, directory, summary


def check_agent(path: str | os.PathLike[str], resolution: int) -> AgentConfig:
    """The config of the trained agent folder ``path`` once it loads and sees ``resolution``-pixel
    images: what ``--rl --agent`` checks before any training starts (raises :class:`AgentError`)."""
    _, cfg, _ = load_agent(path)
    if cfg.resolution != resolution:
        side = cfg.resolution
        raise AgentError(f"{path}: the agent sees {side}x{side} images, the runs {resolution}x{resolution}")
    return cfg


def load_agent(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> tuple[PPO, AgentConfig, dict]:
    """Load a trained agent from its folder (or its ``model.zip``); raises :class:`AgentError` in one line."""
    directory = agent_folder(path)
    if not (directory / MODEL).is_file() or not (directory / CONFIG).is_file():
        raise AgentError(f"no trained agent in {directory} (expected {MODEL} and {CONFIG})")
    try:
        cfg = AgentConfig.from_dict(json.loads((directory / CONFIG).read_text()))
        summary = json.loads((directory / SUMMARY).read_text()) if (directory / SUMMARY).is_file() else {}
        model = PPO.load(directory / MODEL, device=device)
    except Exception as exc:  # a foreign or damaged file is a one-line error for the user
        reason = str(exc).split("\n")[0][:120]
        raise AgentError(f"{directory} does not hold a usable agent ({exc.__class__.__name__}: {reason})") from None
    shape = model.observation_space.shape  # SB3 keeps image spaces channel-first
    res = cfg.resolution
    if shape not in ((3, res, res), (res, res, 3)):
        raise AgentError(f"{directory}: the agent expects {cfg.resolution}x{cfg.resolution} RGB, its model has {shape}")
    return model, cfg, summary
