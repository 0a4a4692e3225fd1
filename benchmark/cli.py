"""Command-line pieces shared by ``benchmark.data`` and ``benchmark.run``: data flags, logging, errors."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmark.data.cache import get_or_generate
from benchmark.data.generate import StreamData
from benchmark.data.spec import DataSpec
from benchmark.mapping.fastpath import PRECISIONS
from benchmark.presets import DEFAULT_PRESET, PRESETS, get_preset


def _int_at_least(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected a number of at least {minimum}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type: an integer of at least 0."""
    return _int_at_least(text, 0)


def unit_fraction(text: str) -> float:
    """argparse type: a number from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {value}")
    return value


def resolution(text: str) -> int:
    """argparse type: an image side in pixels, a multiple of 16 from 16 to 512."""
    value = positive_int(text)
    if value % 16 or not 16 <= value <= 512:
        raise argparse.ArgumentTypeError(f"resolution must be a multiple of 16 between 16 and 512, got {value}")
    return value


def add_import_argument(parser: argparse.ArgumentParser) -> None:
    """``--import MODULE`` (repeatable): a user's module whose registrations the command should see."""
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import a module (a name, or a path to a .py file) first, so the domains and strategies it "
        "registers (@register_domain, @register_strategy) can be named; repeatable",
    )


def import_modules(names: list[str]) -> None:
    """Import each of ``names`` (a module name importable from here, or a ``.py`` path); ``ValueError`` in one line."""
    for name in names:
        try:
            if name.endswith(".py"):
                path = Path(name)
                if getattr(sys.modules.get(path.stem), "__file__", None) == str(path.resolve()):
                    continue  # imported already: registering twice would be an error
                spec = importlib.util.spec_from_file_location(path.stem, path.resolve())
                if spec is None or spec.loader is None or not path.is_file():
                    raise ImportError(f"no such file {path}")
                module = importlib.util.module_from_spec(spec)
                sys.modules[path.stem] = module
                spec.loader.exec_module(module)
            else:
                importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001  (a user's module: any error is theirs, in one line)
            raise ValueError(f"--import {name}: {type(exc).__name__}: {exc}") from None


def task_list(text: str) -> tuple[str, ...]:
    """argparse type: a comma list of domain names (checked against the registry when the spec is made)."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"expected a comma list of domains, got {text!r}")
    return names


def add_precision_argument(parser: argparse.ArgumentParser) -> None:
    """``--precision``, shared by every command that runs a VAE (see :mod:`benchmark.mapping.fastpath`)."""
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="the VAE's arithmetic: bf16 autocast where the hardware has it (auto), or forced (default: auto)",
    )


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags that choose and locate the data: preset, sizes, seed, cache folder, workers."""
    group = parser.add_argument_group("data")
    group.add_argument(
        "--preset", choices=list(PRESETS), default=DEFAULT_PRESET, help="benchmark size (default: %(default)s)"
    )
    group.add_argument(
        "--data-dir", type=Path, default=Path("data"), help="dataset cache folder (default: %(default)s)"
    )
    group.add_argument("--workers", type=positive_int, default=None, help="rendering processes (default: one per core)")
    group.add_argument(
        "--n-train", type=positive_int, default=None, help="override the preset's training images per task"
    )
    group.add_argument("--n-test", type=positive_int, default=None, help="override the preset's test images per task")
    group.add_argument("--resolution", type=resolution, default=None, help="image side in pixels (default: 64)")
    group.add_argument("--data-seed", type=non_negative_int, default=0, help="seed of the rendered scenes (default: 0)")
    group.add_argument(
        "--approach-fraction",
        type=unit_fraction,
        default=None,
        help="fraction of training scenes with the arm about to reach the target (default: the preset's)",
    )
    group.add_argument(
        "--tasks",
        type=task_list,
        default=None,
        help="the stream: registered domains in order, one task each (default: canonical,randomized,noisy)",
    )
    group.add_argument("--no-progress", action="store_true", help="hide progress bars")


def data_spec_from_args(args: argparse.Namespace) -> DataSpec:
    """The :class:`DataSpec` the data flags describe."""
    return get_preset(args.preset).data_spec(
        n_train=args.n_train,
        n_test=args.n_test,
        resolution=args.resolution,
        seed=args.data_seed,
        tasks=args.tasks,
        approach_fraction=args.approach_fraction,
    )


def load_data(spec: DataSpec, args: argparse.Namespace) -> tuple[StreamData, Path]:
    """Reuse or generate the data of ``spec`` where the flags say."""
    return get_or_generate(spec, args.data_dir, workers=args.workers, progress=not args.no_progress)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (tests swap it)."""

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def setup_logging(verbose: bool = False) -> None:
    """Log the benchmark's ``ciim.*`` lines to stderr, plainly; idempotent."""
    logger = logging.getLogger("ciim")
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)


def fail(message: str, code: int = 1) -> int:
    """Print a one-line error to stderr and return the exit code to use."""
    print(f"error: {message}", file=sys.stderr)
    return code


def _interrupt(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise KeyboardInterrupt(f"signal {signum}")


def _default_sigterm_in_child() -> None:
    """Forked workers (rendering pools, vectorized environments) end quietly on SIGTERM, as before."""
    if signal.getsignal(signal.SIGTERM) is _interrupt:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


_fork_hook = False


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises ``KeyboardInterrupt`` like Ctrl-C does.

    A killed job (``kill``, a scheduler's time limit) then runs the same clean-up as an
    interrupted one: temporary folders are removed and no half-written result is left. A second
    SIGTERM ends the process at once (the first can be lost if it lands in code that ignores
    exceptions, such as ``fork``'s callbacks); what that leaves is removed at the next start.
    Worker processes forked inside the block get the default handler back: pools stop their
    workers with SIGTERM, and a worker has nothing to clean up.
    """
    global _fork_hook
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if not _fork_hook:
        os.register_at_fork(after_in_child=_default_sigterm_in_child)
        _fork_hook = True
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def check_writable_folder(path: Path, what: str = "output folder") -> None:
    """Create ``path`` if needed; raise ``OSError`` in one line if it cannot be created or written to."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{threading.get_native_id()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise OSError(f"cannot use {path} as the {what}: {exc.strerror or exc}") from None
