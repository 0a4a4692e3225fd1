"""RL throughput: environment steps/s bare, through the VAE wrapper, and raw rendering; PPO steps/s.

    python bench/rl.py [--steps 600 --ppo-steps 2048 --device auto]

Prints, measured side by side in one run (each measurement twice, alternating, the faster kept):
- renders/s of the bare renderer (canonical state, no environment around it);
- steps/s of one environment (canonical domain, random actions) and the ratio to raw rendering;
- steps/s of the same environment behind the VAE wrapper (``VAEObservation``, untrained VAE of
  the default size) and its ratio to the bare environment;
- PPO training steps/s (rollouts in ``--n-envs`` environments plus updates) with the quick
  preset's hyperparameters;
- the evaluation matrix's loop: environment steps/s of ``--matrix-envs`` randomized environments
  in worker processes behind the VAE wrapper with the agent acting in padded batches (as
  ``benchmark.rl matrix`` runs a cell), beside raw render frames/s times the cores (the
  ceiling of rendering in parallel) and their ratio;
- the default agent training's two halves: teacher-labelled frames collected per second
  (``--n-envs`` environments, the policy driving as in a DAgger round) and behaviour-cloning
  images per second (one epoch over those frames).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmark.common.device import available_cores, configure_threads, resolve_device  # noqa: E402
from benchmark.mapping.vae import ConvVAE  # noqa: E402
from benchmark.rl.agent import build_ppo, make_vec_env  # noqa: E402
from benchmark.rl.config import agent_config  # noqa: E402
from benchmark.rl.evaluate import predict  # noqa: E402
from benchmark.rl.imitation import ImitationTrainer  # noqa: E402
from benchmark.rl.pipelines import VAEObservation  # noqa: E402
from envs.domains import get_domain  # noqa: E402
from envs.renderer import Renderer  # noqa: E402


def raw_rendering(steps: int) -> float:
    renderer, domain = Renderer(), get_domain("canonical")
    rng = np.random.default_rng(0)
    state, look = renderer.sample_state(rng), domain.sample(rng)
    start = time.perf_counter()
    for _ in range(steps):
        renderer.render([state], domain, [look])
    rate = steps / (time.perf_counter() - start)
    renderer.close()
    return rate


def env_steps(steps: int, vae: ConvVAE | None, device: torch.device) -> float:
    cfg = agent_config("quick")
    venv = make_vec_env("canonical", cfg.env, 1, seed=0, processes=False)
    if vae is not None:
        venv = VAEObservation(venv, vae, device)
    venv.reset()
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (steps, 1, 2)).astype(np.float32)
    start = time.perf_counter()
    for a in actions:
        venv.step(a)
    rate = steps / (time.perf_counter() - start)
    venv.close()
    return rate


def matrix_steps(steps: int, n_envs: int, vae: ConvVAE, device: torch.device) -> float:
    """Environment steps/s of one matrix cell's loop: ``n_envs`` randomized environments, the VAE, the agent."""
    cfg = agent_config("quick")
    venv = VAEObservation(make_vec_env("randomized", cfg.env, n_envs, seed=0), vae, device)
    agent = build_ppo(cfg, make_vec_env("canonical", cfg.env, 1, seed=0, processes=False), device)
    obs = venv.reset()
    rounds = max(steps // n_envs, 1)
    start = time.perf_counter()
    for _ in range(rounds):
        obs, _, _, _ = venv.step(predict(agent, obs))
    rate = rounds * n_envs / (time.perf_counter() - start)
    venv.close()
    return rate


def ppo_steps(steps: int, n_envs: int, device: torch.device) -> float:
    cfg = replace(agent_config("quick"), n_envs=n_envs)
    venv = make_vec_env("canonical", cfg.env, n_envs, seed=0)
    model = build_ppo(cfg, venv, device)
    start = time.perf_counter()
    model.learn(steps)
    rate = model.num_timesteps / (time.perf_counter() - start)
    venv.close()
    return rate


def imitation_rates(frames: int, n_envs: int, device: torch.device) -> tuple[float, float]:
    cfg = replace(agent_config("quick"), n_envs=n_envs)
    venv = make_vec_env("canonical", cfg.env, n_envs, seed=0)
    trainer = ImitationTrainer(build_ppo(cfg, venv, device), venv, cfg, progress=False)
    start = time.perf_counter()
    trainer.collect(frames, learner=True, noise=cfg.dagger_noise)
    collect = trainer.frames / (time.perf_counter() - start)
    start = time.perf_counter()
    trainer.fit(1)
    fit = trainer.frames / (time.perf_counter() - start)
    venv.close()
    return collect, fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=600, help="steps per environment measurement")
    parser.add_argument("--ppo-steps", type=int, default=2048, help="PPO training steps to time")
    parser.add_argument("--n-envs", type=int, default=agent_config("quick").n_envs)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--matrix-envs", default="", help="comma list of environment counts (default: cores, 8)")
    args = parser.parse_args()
    threads = configure_threads()
    device = resolve_device(args.device)
    torch.manual_seed(0)
    vae = ConvVAE().to(device).eval()
    best = {"raw": 0.0, "env": 0.0, "vae": 0.0}
    for _ in range(2):
        best["raw"] = max(best["raw"], raw_rendering(args.steps))
        best["env"] = max(best["env"], env_steps(args.steps, None, device))
        best["vae"] = max(best["vae"], env_steps(args.steps, vae, device))
    cores = available_cores()
    counts = [int(c) for c in args.matrix_envs.split(",") if c] or sorted({cores, 8})
    matrix = {n: max(matrix_steps(args.steps, n, vae, device) for _ in range(2)) for n in counts}
    ppo = ppo_steps(args.ppo_steps, args.n_envs, device)
    collect, fit = imitation_rates(args.ppo_steps, args.n_envs, device)
    print(f"device {device}, {threads} threads, {args.steps} steps per measurement")
    print(f"raw rendering (canonical)        {best['raw']:8.0f} renders/s")
    print(f"bare environment                 {best['env']:8.0f} steps/s   env / raw = {best['env'] / best['raw']:.2f}")
    print(f"environment + VAE wrapper        {best['vae']:8.0f} steps/s   vae / env = {best['vae'] / best['env']:.2f}")
    ceiling = best["raw"] * cores
    for n, rate in matrix.items():
        print(f"matrix loop, {n:2d} envs (randomized)  {rate:8.0f} steps/s   "
              f"vs raw x {cores} cores = {ceiling:.0f}: {rate / ceiling:.2f}")  # fmt: skip
    print(f"PPO training ({args.n_envs} envs)             {ppo:8.0f} steps/s (rollouts + updates)")
    print(f"DAgger collection ({args.n_envs} envs)        {collect:8.0f} frames/s (policy drives, teacher labels)")
    print(f"behaviour cloning                {fit:8.0f} images/s (one epoch over those frames)")


if __name__ == "__main__":
    main()
