"""The main job: make (or reuse) the data, train each strategy on the Avalanche stream, evaluate, report.

    python -m benchmark.run --strategy der
    python -m benchmark.run --strategy all --preset quick --seed 0
    python -m benchmark.run --strategy finetune,er --epochs 5,2,2 --batch-size 64

Every run writes ``<out>/<strategy>/seed<N>/`` (see :mod:`benchmark.continual.runner`). Exit codes:
0 success, 1 failure (e.g. a diverged loss), 2 usage error.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.cli import (
    add_data_arguments,
    add_import_argument,
    add_precision_argument,
    check_writable_folder,
    data_spec_from_args,
    fail,
    import_modules,
    load_data,
    non_negative_int,
    setup_logging,
    sigterm_as_interrupt,
)
from benchmark.common.device import DEVICE_CHOICES, configure_threads, resolve_device
from benchmark.continual.config import RunConfig, TrainConfig
from benchmark.continual.plugins import TrainingDiverged
from benchmark.continual.runner import ResumeError, run_strategy
from benchmark.data.spec import DataSpec
from benchmark.mapping.fastpath import FastPath, resolve_fast_path
from benchmark.presets import get_preset
from strategies import available_strategies

if typing.TYPE_CHECKING:
    from benchmark.rl.config import AgentConfig

log = logging.getLogger("ciim.run")


def _field_type(name: str) -> Any:
    hint = typing.get_type_hints(TrainConfig)[name]
    if typing.get_origin(hint) is tuple:

        def int_list(text: str) -> tuple[int, ...]:
            try:
                return tuple(int(part) for part in text.split(","))
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None

        return int_list
    return hint


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`TrainConfig` field (``--batch-size``, ``--der-alpha``...), default: the preset's."""
    group = parser.add_argument_group("training (defaults come from the preset)")
    defaults = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        if isinstance(default, bool):
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=f"(default: {shown})")
            continue
        group.add_argument(
            flag, type=_field_type(f.name), default=None, metavar=f.name.upper(), help=f"(default: {shown})"
        )
    group.add_argument(
        "--plain-eq1",
        action="store_true",
        help="the paper's plain Eq. 1: no foreground weighting (--arm-weight, --target-weight, --stray-weight 0)",
    )


PLAIN_EQ1 = ("arm_weight", "target_weight", "stray_weight")
"""The :class:`TrainConfig` fields that ``--plain-eq1`` sets to 0."""


def train_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The training fields the flags give (None where a flag is not given), ``--plain-eq1`` applied.

    Raises ``ValueError`` in one line when ``--plain-eq1`` meets a non-zero weight of its own.
    """
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    if getattr(args, "plain_eq1", False):
        clash = [n for n in PLAIN_EQ1 if given[n]]
        if clash:
            flags = ", ".join("--" + n.replace("_", "-") for n in clash)
            raise ValueError(f"--plain-eq1 sets the foreground weights to 0; drop {flags}")
        given.update(dict.fromkeys(PLAIN_EQ1, 0.0))
    return given


def build_parser(prog: str = "python -m benchmark.run") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="strategies: " + ", ".join(available_strategies()),
    )
    parser.add_argument("--strategy", default=None, help="a name, a comma list, or 'all' (default: der)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="training seed (default: 0)")
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto", help="where models run (default: auto)")
    parser.add_argument("--out", type=Path, default=Path("runs"), help="runs folder (default: runs)")
    parser.add_argument("--resume", action="store_true", help="continue each run from its last finished experience")
    parser.add_argument(
        "--extend",
        type=Path,
        default=None,
        metavar="RUN",
        help="continue the finished run folder RUN on a longer --tasks stream, into a new folder under --out "
        "(RUN is never modified)",
    )
    parser.add_argument(
        "--retrain",
        action="store_true",
        help="with --extend: train RUN's strategy and config from scratch on the longer stream instead (the baseline)",
    )
    parser.add_argument(
        "--rl",
        action="store_true",
        help="then evaluate the PPO agent through each trained VAE in every domain (trains or reuses the agent)",
    )
    parser.add_argument(
        "--agent",
        type=Path,
        default=None,
        metavar="DIR",
        help="with --rl: the trained agent folder to evaluate through (e.g. one of 'benchmark.rl train --mapping'), "
        "instead of the preset's; its matrix goes to <out>/rl_eval/<DIR's name>. 'task0': the preset's agent "
        "trained through this run's shared Task-0 model (trained if not cached; pair it with --freeze-decoder)",
    )
    parser.add_argument(
        "--report",
        nargs="?",
        const=Path("reports/out"),
        type=Path,
        metavar="DIR",
        help="at the end, write the report of every run under --out to DIR (default: reports/out)",
    )
    add_precision_argument(parser)
    parser.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="NHWC weights and inputs (default: on, measured faster)",
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile the VAE (default: off; README, Speed)")
    add_import_argument(parser)
    add_data_arguments(parser)
    add_train_arguments(parser)
    return parser


def parse_strategies(text: str) -> list[str]:
    """``all``, one name or a comma list; raises ``KeyError`` naming the valid strategies."""
    if text.strip() == "all":
        return available_strategies()
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in available_strategies()]
    if unknown or not names:
        raise KeyError(
            f"unknown strategy {', '.join(unknown) or repr(text)}; valid: {', '.join(available_strategies())}, all"
        )
    return list(dict.fromkeys(names))


def format_table(results: list[dict[str, Any]]) -> str:
    """Final per-task MSE (mean per pixel) as a text table."""
    tasks = results[0]["tasks"]
    head = f"{'strategy':<12}" + "".join(f"{f'task {j} ({t})':>22}" for j, t in enumerate(tasks)) + f"{'mean':>12}"
    lines = [head, "-" * len(head)]
    for r in results:
        values = r["final_mse"]
        cells = "".join(f"{v:>22.5f}" for v in values)
        lines.append(f"{r['strategy']:<12}{cells}{sum(values) / len(values):>12.5f}")
    return "\n".join(lines)


@dataclass(frozen=True)
class RunSetup:
    """What the flags of one ``benchmark.run`` command resolve to, checked before any work."""

    strategies: list[str]
    device: Any
    fast: FastPath
    train: TrainConfig
    spec: DataSpec

    def run_config(self, strategy: str, args: argparse.Namespace) -> RunConfig:
        """The resolved configuration of ``strategy``'s run (saved as its ``config.json``)."""
        return RunConfig(strategy, args.preset, args.seed, str(self.device), self.spec, self.train, self.fast)


def resolve_setup(args: argparse.Namespace) -> RunSetup:
    """Strategies, device, precision, training config and data spec of parsed flags.

    Raises ``KeyError`` or ``ValueError`` in one line for a user mistake (an unknown strategy,
    a missing GPU, epochs that do not match the tasks).
    """
    import_modules(args.imports)
    names = parse_strategies(args.strategy or "der")
    device = resolve_device(args.device)
    fast = resolve_fast_path(args.precision, device, args.channels_last, args.compile)
    overrides = train_overrides(args)
    spec = data_spec_from_args(args)
    train_cfg = get_preset(args.preset).train_config(len(spec.tasks), **overrides)
    return RunSetup(names, device, fast, train_cfg, spec)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging()
    if args.extend is not None or args.retrain:
        from benchmark.extend import extend

        return extend(args, parser)
    try:
        setup = resolve_setup(args)
        check_rl_flags(args.rl, args.agent, args.preset, setup.spec.scene.resolution, setup.strategies)
        check_writable_folder(args.out, "runs folder (--out)")
        if args.report is not None:
            check_writable_folder(args.report, "report folder (--report)")
    except (KeyError, ValueError) as exc:
        return fail(str(exc).strip("'\""), 2)
    except OSError as exc:
        return fail(str(exc), 2)
    with sigterm_as_interrupt():
        try:
            return _run(args, setup)
        except KeyboardInterrupt:
            return fail("interrupted; finished experiences are kept (continue with --resume)", 130)


def is_task0_agent(agent: Path | None) -> bool:
    """Whether ``--agent`` names the agent trained through the run's Task-0 model (``--agent task0``)."""
    from benchmark.rl.config import TASK0_AGENT

    return agent is not None and str(agent) == TASK0_AGENT


def task0_strategy(strategies: list[str]) -> str | None:
    """The first of ``strategies`` that starts from the shared Task-0 model (None if none does)."""
    from strategies import get_strategy

    return next((n for n in strategies if get_strategy(n).starts_from_task0), None)


def check_rl_flags(rl: bool, agent: Path | None, preset: str, resolution: int, strategies: list[str]) -> None:
    """``--rl`` has an agent for ``preset`` at ``resolution``, and ``--agent`` comes with ``--rl``
    and is a trained agent of that resolution, or ``task0`` with a strategy that trains the shared
    Task-0 model; raises in one line before any work starts."""
    from benchmark.rl.agent import AgentError, check_agent
    from benchmark.rl.config import agent_config

    if agent is not None and not rl:
        raise ValueError("--agent is the agent of the closed loop: it needs --rl")
    if is_task0_agent(agent):
        if task0_strategy(strategies) is None:
            raise ValueError(
                f"--agent task0 learns through the shared Task-0 model, and none of {', '.join(strategies)} "
                "starts from it (the continual strategies do: finetune, er, der...)"
            )
        agent_config(preset, resolution)
    elif agent is not None:
        try:
            check_agent(agent, resolution)
        except AgentError as exc:
            raise ValueError(str(exc)) from None
    elif rl:
        agent_config(preset, resolution)  # the preset has an agent at this resolution


def _run(args: argparse.Namespace, setup: RunSetup) -> int:
    """Data, training, then ``--rl`` and ``--report``: everything after the inputs were checked."""
    names, device, spec = setup.strategies, setup.device, setup.spec
    threads = configure_threads()
    try:
        data, directory = load_data(spec, args)
    except OSError as exc:
        return fail(f"cannot prepare the data: {exc}")
    log.info("run: %s on %s (%d threads), data %s", ", ".join(names), device, threads, directory)
    log.info(
        "run: precision %s (%s), channels_last %s, compile %s",
        setup.fast.precision,
        setup.fast.reason,
        setup.fast.channels_last,
        setup.fast.compile,
    )
    results = []
    for name in names:
        cfg = setup.run_config(name, args)
        try:
            results.append(run_strategy(cfg, data, args.out, resume=args.resume, progress=not args.no_progress))
        except TrainingDiverged as exc:
            return fail(f"{name}: {exc}; stopped, the finished experiences' files are kept")
        except ResumeError as exc:
            return fail(str(exc), 2)
        except ValueError as exc:
            return fail(f"{name}: {exc}", 2)
        log.info("run: %s finished in %.1f s -> %s", name, results[-1]["wall_time_s"], args.out / name)
    print(f"\nfinal MSE per test task (mean per pixel), preset {args.preset}, seed {args.seed}")
    print(format_table(results))
    code = _closed_loop(args, setup, data) if args.rl else 0
    if code == 0 and args.report is not None:
        code = write_report(args.out, args.report, args.data_dir)
    return code


def write_report(out: Path, report_dir: Path, data_dir: Path) -> int:
    """``--report``: tables, figures and the report of everything under ``out`` (see :mod:`reports`)."""
    from reports.build import ReportError, build_report

    try:
        report = build_report(out, report_dir, data_dir)
    except ReportError as exc:
        return fail(str(exc))
    except OSError as exc:
        return fail(f"cannot write the report to {report_dir}: {exc.strerror or exc}")
    print(f"\nreport: {report.markdown} and {report.html}")
    return 0


def task0_agent(args: argparse.Namespace, setup: RunSetup) -> AgentConfig:
    """``--agent task0``: the config of the preset's agent trained through this run's shared Task-0
    model (``benchmark.rl train --mapping``), which the closed loop trains or reuses under ``<out>/rl``."""
    from benchmark.continual.runner import task0_path, task0_vae_file
    from benchmark.rl.agent import AgentError
    from benchmark.rl.config import agent_config

    name = task0_strategy(setup.strategies)
    assert name is not None  # checked by check_rl_flags
    mapping = task0_vae_file(task0_path(setup.run_config(name, args), args.out))
    if not mapping.is_file():
        raise AgentError(f"--agent task0: the Task-0 model {mapping} is missing (it is written when Task 0 trains)")
    return agent_config(args.preset, setup.spec.scene.resolution, mapping=mapping)


def _closed_loop(args: argparse.Namespace, setup: RunSetup, data: Any) -> int:
    """``--rl``: the evaluation matrix of the VAEs just trained (see :mod:`benchmark.rl.matrix`)."""
    from benchmark.rl.agent import AgentError
    from benchmark.rl.matrix import closed_loop, find_vaes, format_agreement, format_matrix

    trained = {f"{name}/seed{args.seed}" for name in setup.strategies}
    vaes = [p for p in find_vaes(args.out, args.preset) if "/".join(p.label.split("/")[:2]) in trained]
    try:
        train = task0_agent(args, setup) if is_task0_agent(args.agent) else None
        if train is not None:
            log.info("rl: the agent through the Task-0 model %s", train.mapping)
        matrix, out = closed_loop(
            args.out,
            args.preset,
            vaes,
            setup.spec.scene.resolution,
            setup.device,
            progress=not args.no_progress,
            precision=args.precision,
            data=data,
            agent=None if train is not None else args.agent,
            train=train,
        )
    except AgentError as exc:
        return fail(str(exc), 2)
    print(f"\nagent success rate over {matrix['episodes']} episodes per cell (95% Wilson interval)")
    print(format_matrix(matrix))
    if matrix["agreement"]:
        print(format_agreement(matrix))
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
