"""Training throughput: our Avalanche training vs a bare PyTorch loop, and der vs finetune.

    python bench/train.py [--n-train 1024 --epochs 2 --batch-size 32]

Prints, measured side by side in one run on the same model, data and batch size:
- images/s of a bare PyTorch loop (DataLoader, forward, Eq. 1, backward, Adam step);
- images/s of the same training through our Avalanche strategy (``finetune``: template,
  plugins, metrics and loggers), and their ratio (goal: at least 0.9);
- images/s of ``der`` vs ``finetune`` on Task 1 (after Task 0, DER's buffer filled).
Each measurement runs twice, alternating, and the faster of the two is kept.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import benchmark  # noqa: E402, F401  (silences Avalanche's import warning)
from benchmark.cache import get_or_generate  # noqa: E402
from benchmark.config import get_preset  # noqa: E402
from benchmark.device import configure_threads, resolve_device  # noqa: E402
from benchmark.loss import LossConfig, kl_weight, vae_loss  # noqa: E402
from benchmark.stream import ImageMappingDataset, build_benchmark  # noqa: E402
from benchmark.train import RunConfig, Session  # noqa: E402
from benchmark.vae import ConvVAE, VAEConfig  # noqa: E402
from strategies import get_strategy  # noqa: E402


def bare_loop(data, cfg: RunConfig, device: torch.device, epochs: int) -> float:
    torch.manual_seed(0)
    t = cfg.train
    model = ConvVAE(VAEConfig(latent_size=t.latent_size)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=t.lr)
    loss_cfg = LossConfig(t.alpha, t.beta, t.gamma, t.kl_anneal_iterations)
    loader = torch.utils.data.DataLoader(
        ImageMappingDataset(*data.task("train", 0)), batch_size=t.batch_size, shuffle=True
    )
    images, iteration = 0, 0
    start = time.perf_counter()
    for _ in range(epochs):
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

    bare, ours = [], []
    for _ in range(2):
        bare.append(bare_loop(data, cfg, device, args.epochs))
        ours.append(avalanche_run(data, cfg, device, args.epochs, "finetune", task=0))
    print(f"bare PyTorch loop:                 {max(bare):8.1f} images/s")
    print(f"our Avalanche training (finetune): {max(ours):8.1f} images/s")
    print(f"ratio ours / bare:                 {max(ours) / max(bare):8.2f}   (goal >= 0.9)")

    fine, der = [], []
    for _ in range(2):
        fine.append(avalanche_run(data, cfg, device, args.epochs, "finetune", task=1))
        der.append(avalanche_run(data, cfg, device, args.epochs, "der", task=1))
    print(f"finetune on Task 1:                {max(fine):8.1f} images/s")
    print(f"der on Task 1 (DER++, buffer full): {max(der):7.1f} images/s")
    print(f"ratio der / finetune:              {max(der) / max(fine):8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
