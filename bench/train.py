"""Training throughput: our training on each fast path vs a plain fp32 PyTorch loop, and each strategy vs finetune.

    python bench/train.py [--n-train 1024 --epochs 2 --batch-size 32] [--strategies-only] [--end-to-end]

Prints, measured side by side in one run on the same model, data and batch size:
- images/s of a plain fp32 PyTorch loop (float images held in memory, DataLoader, forward,
  Eq. 1, backward, Adam step): what one would write without this project;
- images/s of the same training through our Avalanche strategy (``finetune``: template,
  plugins, metrics and loggers) for fp32, fp32 + channels_last, bf16, bf16 + channels_last,
  our default (``--precision auto``) and the default with torch.compile, each with its ratio
  to the plain loop (the issue's goal for the default: at least 1.5);
- images/s of every continual strategy (``--strategies``) on Task 1, after its plugins took in
  Task 0 (buffers filled, importances computed), default path, and its time per image relative
  to ``finetune``'s: the training cost of each strategy. SI also trains its own Task 0 (see
  :mod:`strategies.si`), which this leaves out.
Every training first runs one untimed warm-up epoch (compilation happens there). Each
measurement runs twice, alternating, and the faster of the two is kept.

``--end-to-end`` then times ``python -m benchmark.run --strategy der`` and ``--strategy all`` on
quick (data already cached; a fresh runs folder, so the shared Task-0 model is trained too).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import benchmark  # noqa: E402, F401  (silences Avalanche's import warning)
from benchmark.common.device import configure_threads, resolve_device  # noqa: E402
from benchmark.continual.config import RunConfig  # noqa: E402
from benchmark.continual.session import Session  # noqa: E402
from benchmark.data.cache import get_or_generate  # noqa: E402
from benchmark.data.stream import build_benchmark  # noqa: E402
from benchmark.mapping.fastpath import FastPath, resolve_fast_path  # noqa: E402
from benchmark.mapping.loss import kl_weight, vae_loss  # noqa: E402
from benchmark.mapping.vae import ConvVAE  # noqa: E402
from benchmark.presets import get_preset  # noqa: E402
from strategies import available_strategies, get_strategy  # noqa: E402


def bare_loop(data, cfg: RunConfig, device: torch.device, epochs: int) -> float:
    torch.manual_seed(0)
    t = cfg.train
    model = ConvVAE(t.vae_config(cfg.data.scene.resolution)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=t.lr)
    loss_cfg = t.loss_config()
    inputs, targets, aux_all = data.task("train", 0)[:3]
    floats = [torch.from_numpy(a).permute(0, 3, 1, 2).float().div(255) for a in (inputs, targets)]
    dataset = torch.utils.data.TensorDataset(*floats, torch.from_numpy(aux_all))
    loader = torch.utils.data.DataLoader(dataset, batch_size=t.batch_size, shuffle=True)
    images, iteration = 0, 0
    for epoch in range(epochs + 1):  # epoch 0: warm-up, untimed
        if epoch == 1:
            images, start = 0, time.perf_counter()
        for x, y, aux in loader:
            x, y, aux = x.to(device), y.to(device), aux.to(device)
            out = model(x)
            loss = vae_loss(out, y, aux, loss_cfg, kl_weight(loss_cfg, iteration)).total
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            images += len(x)
            iteration += 1
    return images / (time.perf_counter() - start)


def avalanche_run(data, cfg: RunConfig, device: torch.device, epochs: int, strategy: str, task: int) -> float:
    torch.manual_seed(0)
    bm = build_benchmark(data)
    with tempfile.TemporaryDirectory() as tmp:
        session = Session(get_strategy(strategy), replace(cfg, strategy=strategy), device, Path(tmp), progress=False)
        for plugin in session.plugins_with("catch_up"):
            for k in range(task):
                plugin.catch_up(session.strategy, bm.train_stream[k])
        session.train(bm.train_stream[task], 1)  # warm-up, untimed
        start = time.perf_counter()
        session.train(bm.train_stream[task], epochs)
        seconds = time.perf_counter() - start
        session.close()
    return epochs * len(bm.train_stream[task].dataset) / seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-train", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile variant")
    parser.add_argument("--end-to-end", action="store_true", help="also time benchmark.run der and all on quick")
    parser.add_argument(
        "--strategies", default=None, help="comma list to compare with finetune (default: every continual one)"
    )
    parser.add_argument("--strategies-only", action="store_true", help="skip the fast-path comparison")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    threads = configure_threads()
    preset = get_preset("quick")
    spec = replace(preset.data_spec(), n_train=args.n_train, n_test=64)
    data, _ = get_or_generate(spec, args.data_dir, progress=False)
    cfg = RunConfig("finetune", "quick", 0, str(device), spec, preset.train_config(batch_size=args.batch_size))
    print(
        f"device {device}, {threads} threads, {args.n_train} images/task, batch {args.batch_size}, {args.epochs} epochs"
    )

    default = resolve_fast_path("auto", device)
    if not args.strategies_only:
        fast_paths(args, data, cfg, device, default)
    continual = [n for n in available_strategies() if get_strategy(n).schedule == "continual"]
    names = [
        "finetune",
        *(n for n in (args.strategies.split(",") if args.strategies else continual) if n != "finetune"),
    ]
    rates = {name: [] for name in names}
    default_cfg = replace(cfg, fast=default)
    for _ in range(2):
        for name in names:
            rates[name].append(avalanche_run(data, default_cfg, device, args.epochs, name, task=1))
    fine = max(rates["finetune"])
    for name in names:
        best = max(rates[name])
        print(f"{name + ' on Task 1':<40}{best:8.1f} images/s   time x{fine / best:.2f} of finetune")
    if args.end_to_end:  # the quick data set is generated into --data-dir first if it is not there
        for strategies in ("der", "all"):
            print(f"{'end to end, --strategy ' + strategies:<40}{end_to_end(strategies, args.data_dir) / 60:8.1f} min")
    return 0


def fast_paths(args: argparse.Namespace, data, cfg: RunConfig, device: torch.device, default: FastPath) -> None:
    """The fast-path part: the plain loop vs our training on each precision and memory format."""
    variants = {
        "fp32": FastPath("fp32"),
        "fp32 + channels_last": FastPath("fp32", channels_last=True),
        "bf16": FastPath("bf16"),
        "bf16 + channels_last": FastPath("bf16", channels_last=True),
        f"default (auto: {default.precision}{' + channels_last' if default.channels_last else ''})": default,
    }
    if not args.no_compile:
        variants["default + compile"] = replace(default, compile=True)
    print(f"auto precision: {default.reason}")
    rates: dict[str, list[float]] = {"plain": [], **{name: [] for name in variants}}
    for _ in range(2):
        rates["plain"].append(bare_loop(data, cfg, device, args.epochs))
        for name, fast in variants.items():
            rates[name].append(avalanche_run(data, replace(cfg, fast=fast), device, args.epochs, "finetune", task=0))
    plain = max(rates["plain"])
    print(f"{'plain fp32 PyTorch loop':<40}{plain:8.1f} images/s")
    for name in variants:
        best = max(rates[name])
        print(f"{'ours, ' + name:<40}{best:8.1f} images/s   x{best / plain:.2f} of plain")
    print("goal: the default at least x1.50 of plain")


def end_to_end(strategies: str, data_dir: str) -> float:
    """Wall seconds of ``python -m benchmark.run --strategy STRATEGIES`` on quick into a fresh runs folder."""
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "benchmark.run", "--strategy", strategies, "--out", out,
                   "--data-dir", data_dir, "--no-progress"]  # fmt: skip
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=Path(__file__).resolve().parents[1])
        return time.perf_counter() - start


if __name__ == "__main__":
    sys.exit(main())
