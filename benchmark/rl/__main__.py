"""The RL side of the benchmark: train the canonical agent, evaluate it through a VAE, fill the matrix.

    python -m benchmark.rl train                       # the agent on canonical images, cached under runs/rl/
    python -m benchmark.rl train --mapping runs/_shared/task0-KEY/model.pt   # ... and on a Task-0 VAE's reconstructions
    python -m benchmark.rl evaluate --vae runs/der/seed0 --domain heldout --episodes 100
    python -m benchmark.rl evaluate --pipeline oracle --domain randomized
    python -m benchmark.rl matrix --runs runs          # oracle, raw and every VAE x every domain

Without ``--agent``, the agent of ``--preset`` is reused from ``<runs>/rl/`` or trained first.
Exit codes: 0 success, 1 failure, 2 usage error (unknown domain, missing or incompatible file).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from benchmark.cli import (
    add_precision_argument,
    fail,
    non_negative_int,
    positive_int,
    resolution,
    setup_logging,
    sigterm_as_interrupt,
)
from benchmark.common.device import DEVICE_CHOICES, configure_threads, resolve_device
from benchmark.common.io import write_json
from benchmark.data.cache import get_or_generate
from benchmark.data.spec import DataSpec
from benchmark.mapping.vae import load_vae_at
from benchmark.presets import DEFAULT_PRESET, PRESETS, get_preset
from benchmark.rl.agent import AgentError, get_or_train_agent, load_agent
from benchmark.rl.config import EVAL_EPISODES, METHODS, agent_config, matrix_folder
from benchmark.rl.evaluate import format_success
from benchmark.rl.matrix import (
    DATA_TASKS,
    EVAL_SEED,
    Pipeline,
    default_domains,
    evaluate_matrix,
    find_vaes,
    format_agreement,
    format_matrix,
    slug,
    stream_of,
)
from benchmark.rl.pipelines import ORACLE, RAW
from envs.domains import available_domains

log = logging.getLogger("ciim.rl")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--preset", choices=list(PRESETS), default=DEFAULT_PRESET, help="agent size (default: %(default)s)"
    )
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="runs folder; agents live in <runs>/rl")
    parser.add_argument("--resolution", type=resolution, default=64, help="image side in pixels (default: 64)")
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto", help="where models run (default: auto)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _evaluation(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--agent", type=Path, default=None, help="a trained agent folder (default: the preset's)")
    parser.add_argument("--episodes", type=positive_int, default=None, help="episodes per cell (default: the preset's)")
    parser.add_argument("--seed", type=non_negative_int, default=EVAL_SEED, help="base seed of the episodes")
    parser.add_argument("--strips", type=non_negative_int, default=2, help="episodes per cell saved as strips")
    add_precision_argument(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmark.rl",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train (or reuse) the agent on canonical images")
    _common(train)
    train.add_argument("--seed", type=non_negative_int, default=0, help="training seed (default: 0)")
    train.add_argument("--method", choices=METHODS, default=None, help="teacher imitation or PPO (default: dagger)")
    train.add_argument("--timesteps", type=non_negative_int, default=None, help="PPO steps (after dagger imitation)")
    train.add_argument("--n-envs", type=positive_int, default=None, help="override the preset's environments")
    train.add_argument(
        "--mapping",
        type=Path,
        default=None,
        help="a Task-0 VAE whose reconstructions of the canonical frames the agent also learns from",
    )
    train.add_argument(
        "--mapping-fraction", type=float, default=None, help="share of frames seen through --mapping (default: 0.5)"
    )
    train.add_argument(
        "--dagger-rounds",
        type=non_negative_int,
        default=None,
        help="override the preset's DAgger rounds (quick: 4, or 8 with --mapping)",
    )

    evaluate = sub.add_parser("evaluate", help="success rate of the agent behind one pipeline in one domain")
    _common(evaluate)
    _evaluation(evaluate)
    evaluate.add_argument("--vae", type=Path, default=None, help="run folder or model.pt of a trained VAE")
    evaluate.add_argument("--pipeline", choices=[RAW, ORACLE], default=None, help="without --vae (default: raw)")
    evaluate.add_argument("--domain", default="canonical", help="domain the world is rendered in")
    evaluate.add_argument("--json", type=Path, default=None, help="result file (default: <runs>/rl_eval/...)")

    matrix = sub.add_parser("matrix", help="oracle, raw and every VAE under --runs, in every domain")
    _common(matrix)
    _evaluation(matrix)
    matrix.add_argument(
        "--domains", default=None, help="comma list (default: every domain of the VAEs' streams, then heldout)"
    )
    matrix.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: <runs>/rl_eval/<preset>, or <runs>/rl_eval/<agent folder's name> with --agent)",
    )
    matrix.add_argument(
        "--data-dir", type=Path, default=Path("data"), help="data cache for the agent agreement (default: data)"
    )
    matrix.add_argument("--no-agreement", action="store_true", help="skip the agent agreement on the test sets")
    return parser


def _check_domains(names: list[str]) -> None:
    unknown = [n for n in names if n not in available_domains()]
    if unknown or not names:
        raise KeyError(f"unknown domain {', '.join(unknown) or '(none)'}; valid: {', '.join(available_domains())}")


def _agent(args: argparse.Namespace, device: torch.device, vaes: Sequence[Path] = ()):
    """The agent of ``--agent`` or of the preset, after every input is checked (before any training).

    ``vaes`` are VAE files or run folders the command will use: each must load and match the
    agent's resolution, or the command stops here in one line, before the minutes an agent
    takes to train.
    """
    loaded = load_agent(args.agent, device) if args.agent is not None else None
    cfg = loaded[1] if loaded is not None else agent_config(args.preset, args.resolution)
    for path in vaes:
        load_vae_at(path, cfg.resolution)
    if loaded is not None:
        return loaded[0], loaded[1]
    model, _, _ = get_or_train_agent(cfg, args.runs / "rl", device, not args.no_progress)
    return model, cfg


def _cells(
    args: argparse.Namespace, device: torch.device, model, cfg, pipelines, out, domains, episodes, data=None, tasks=None
):
    """:func:`evaluate_matrix` with the command line's seed, strips, progress and precision."""
    return evaluate_matrix(
        model,
        cfg,
        pipelines,
        out,
        domains,
        episodes,
        args.seed,
        device,
        args.strips,
        not args.no_progress,
        args.precision,
        data,
        data_tasks=tasks or DATA_TASKS,
    )


def _train(args: argparse.Namespace, device: torch.device) -> int:
    if args.mapping_fraction is not None and args.mapping is None:
        raise ValueError("--mapping-fraction needs --mapping")
    if args.mapping is not None:
        load_vae_at(args.mapping, args.resolution)
    cfg = agent_config(
        args.preset,
        args.resolution,
        args.seed,
        method=args.method,
        total_timesteps=args.timesteps,
        n_envs=args.n_envs,
        mapping=args.mapping,
        mapping_fraction=args.mapping_fraction,
        dagger_rounds=args.dagger_rounds,
    )
    _, directory, summary = get_or_train_agent(cfg, args.runs / "rl", device, not args.no_progress)
    success = format_success(
        summary["canonical_success_rate"], summary["canonical_success_ci95"], summary["canonical_episodes"]
    )
    parts = [f"{len(summary['imitation'])} imitation rounds"] if summary.get("imitation") else []
    parts += [f"{summary['timesteps']} PPO steps"] if summary["timesteps"] else []
    trained = f"trained ({' + '.join(parts)}) in {summary['train_time_s']:.0f} s"
    if "mapping_success_rate" in summary:  # an agent trained through a Task-0 model, and acting on it
        through = format_success(
            summary["mapping_success_rate"], summary["mapping_success_ci95"], summary["canonical_episodes"]
        )
        success += f"; through its mapping {through}"
    print(f"agent {directory}: canonical {success}; {trained}")
    return 0


def _evaluate(args: argparse.Namespace, device: torch.device) -> int:
    _check_domains([args.domain])
    if args.vae is not None and args.pipeline is not None:
        raise ValueError("give either --vae or --pipeline, not both")
    pipeline = Pipeline(str(args.vae), args.vae) if args.vae is not None else Pipeline(args.pipeline or RAW)
    model, cfg = _agent(args, device, [args.vae] if args.vae is not None else [])
    episodes = args.episodes or EVAL_EPISODES[cfg.preset if cfg.preset in EVAL_EPISODES else DEFAULT_PRESET]
    # Beside the agent's matrix: two agents evaluated on the same cell must not share (and overwrite) a folder.
    out = matrix_folder(args.runs, args.preset, args.agent) / "one" / f"{slug(pipeline.label)}__{args.domain}"
    result = _cells(args, device, model, cfg, [pipeline], out, (args.domain,), episodes)
    cell = result["cells"][0]
    payload = {**{k: result[k] for k in ("agent", "preset", "seed")}, "pipeline": pipeline.label, **cell}
    target = args.json or out / "result.json"
    write_json(target, payload)
    print(
        f"{pipeline.label} in {args.domain}: {format_success(cell['success_rate'], cell['success_ci95'], episodes)}, "
        f"mean final distance {cell['mean_final_distance']:.3f} m, mean return {cell['mean_return']:.2f} -> {target}"
    )
    return 0


def _matrix(args: argparse.Namespace, device: torch.device) -> int:
    if args.domains is not None:
        _check_domains([d.strip() for d in args.domains.split(",") if d.strip()])
    if not args.runs.is_dir():
        raise FileNotFoundError(f"runs folder {args.runs} does not exist")
    vaes = find_vaes(args.runs, args.preset)
    domains = [d.strip() for d in args.domains.split(",") if d.strip()] if args.domains else list(default_domains(vaes))
    _check_domains(domains)
    tasks, stream_spec = stream_of(vaes)
    if not vaes:
        log.warning("rl: no trained VAE of preset %s under %s; only oracle and raw rows", args.preset, args.runs)
    model, cfg = _agent(args, device, [p.vae for p in vaes if p.vae is not None])
    episodes = args.episodes or EVAL_EPISODES[args.preset]
    out = args.out or matrix_folder(args.runs, args.preset, args.agent)
    pipelines = [Pipeline(ORACLE), Pipeline(RAW), *vaes]
    data = None
    if not args.no_agreement:
        spec = (
            DataSpec.from_dict(stream_spec)
            if stream_spec
            else get_preset(args.preset).data_spec(resolution=cfg.resolution)
        )
        data, _ = get_or_generate(spec, args.data_dir, progress=not args.no_progress)
    result = _cells(args, device, model, cfg, pipelines, out, tuple(domains), episodes, data, tasks or None)
    print(f"\nsuccess rate over {episodes} episodes per cell (95% Wilson interval), agent {result['agent']}")
    print(format_matrix(result))
    if result["agreement"]:
        print(format_agreement(result))
    print(f"-> {out}/matrix.csv, matrix.json, strips/")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        return fail(str(exc), 2)
    configure_threads()
    command = {"train": _train, "evaluate": _evaluate, "matrix": _matrix}[args.command]
    try:
        with sigterm_as_interrupt():
            return command(args, device)
    except (KeyError, ValueError, FileNotFoundError, AgentError) as exc:
        return fail(str(exc).strip("'\""), 2)
    except KeyboardInterrupt:
        return fail("interrupted; temporary files removed, finished results kept", 130)


if __name__ == "__main__":
    sys.exit(main())
