"""Map real camera images (a folder of pictures or a video) to canonical images with a trained VAE.

    python -m benchmark.translate --vae runs/der/seed0 --input photos/ --out translated/
    python -m benchmark.translate --vae runs/der/seed0 --input camera.mp4 --out translated/ --every 5

Each image is centre-cropped to a square and resized to the VAE's input; the reconstructions
go to ``<out>/recon/<name>.png``, the first pairs side by side to ``<out>/sheet.png``, and the
counts and speed to ``<out>/translate.json``. Files that cannot be read are skipped with a
one-line warning each. Exit codes: 0 success, 1 nothing readable, 2 usage error.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from benchmark.cli import add_precision_argument, fail, positive_int, setup_logging
from benchmark.common.device import DEVICE_CHOICES, configure_threads, resolve_device
from benchmark.common.io import atomic_path, write_json
from benchmark.mapping.fastpath import resolve_fast_path
from benchmark.mapping.vae import ConvVAE, load_vae

log = logging.getLogger("ciim.translate")
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}


def fit(image: Image.Image, resolution: int) -> np.ndarray:
    """Centre-crop ``image`` to a square and resize it to ``resolution``; returns RGB uint8 ``(H, W, 3)``."""
    square = ImageOps.fit(image.convert("RGB"), (resolution, resolution), Image.Resampling.BILINEAR)
    return np.array(square, dtype=np.uint8)


def _video_frames(path: Path, every: int) -> Iterator[tuple[str, Image.Image]]:
    import av  # only needed for videos

    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index % every == 0:
                yield f"{path.stem}_frame{index:06d}", frame.to_image()


def read_inputs(source: Path, every: int = 1) -> Iterator[tuple[str, Image.Image | None, str]]:
    """Yield ``(name, image, "")`` for every readable picture or video frame under ``source``,
    and ``(name, None, reason)`` for each file that cannot be read."""
    files = (
        sorted(p for p in source.iterdir() if p.is_file() and not p.name.startswith("."))
        if source.is_dir()
        else [source]
    )
    seen: set[str] = set()
    for path in files:
        try:
            if path.suffix.lower() in VIDEO_SUFFIXES:
                yield from ((n, im, "") for n, im in _video_frames(path, every))
                continue
            with Image.open(path) as image:
                image.load()
                name = path.stem if path.stem not in seen else f"{path.stem}-{path.suffix.lstrip('.')}"
                seen.add(name)
                yield name, image.copy(), ""
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            yield path.name, None, str(exc).split("\n")[0][:100] or exc.__class__.__name__
        except Exception as exc:  # av raises its own error classes for broken videos
            yield path.name, None, f"{exc.__class__.__name__}: {str(exc).split(chr(10))[0][:100]}"


def _sheet(pairs: list[tuple[np.ndarray, np.ndarray]], columns: int = 4) -> Image.Image:
    """Input|reconstruction pairs in a grid, ``columns`` pairs per row, 2 px white gaps."""
    res = pairs[0][0].shape[0]
    rows = (len(pairs) + columns - 1) // columns
    cell = 2 * res + 2
    sheet = np.full((rows * (res + 2), columns * (cell + 4), 3), 255, dtype=np.uint8)
    for i, (image, recon) in enumerate(pairs):
        r, c = divmod(i, columns)
        y, x = r * (res + 2), c * (cell + 4)
        sheet[y : y + res, x : x + res] = image
        sheet[y : y + res, x + res + 2 : x + cell] = recon
    return Image.fromarray(sheet)


def translate(
    vae: ConvVAE, source: Path, out: Path, device: torch.device, batch_size: int = 64, every: int = 1, sheet: int = 16
) -> dict:
    """Translate everything readable under ``source`` into ``out``; returns the counts and timings."""
    res = vae.config.resolution
    started = time.perf_counter()
    model_time, done = 0.0, 0
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    skipped: list[str] = []
    names: list[str] = []
    batch: list[np.ndarray] = []

    def flush() -> None:
        nonlocal model_time, done
        t0 = time.perf_counter()
        recon = vae.map_images(np.stack(batch))
        model_time += time.perf_counter() - t0
        for name, image, rec in zip(names, batch, recon, strict=True):
            with atomic_path(out / "recon" / f"{name}.png") as tmp:
                Image.fromarray(rec).save(tmp, format="PNG")
            if len(pairs) < sheet:
                pairs.append((image, rec))
        done += len(batch)
        names.clear()
        batch.clear()

    for name, image, reason in read_inputs(source, every):
        if image is None:
            log.warning("translate: skipping %s (%s)", name, reason)
            skipped.append(name)
            continue
        names.append(name)
        batch.append(fit(image, res))
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    if pairs:
        with atomic_path(out / "sheet.png") as tmp:
            _sheet(pairs).save(tmp, format="PNG")
    wall = time.perf_counter() - started
    summary = {
        "input": str(source),
        "translated": done,
        "skipped": skipped,
        "resolution": res,
        "wall_time_s": wall,
        "images_per_s": done / wall if wall > 0 else 0.0,
        "vae_images_per_s": done / model_time if model_time > 0 else 0.0,
    }
    write_json(out / "translate.json", summary)
    return summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmark.translate",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--vae", type=Path, required=True, help="run folder or model.pt of a trained VAE")
    parser.add_argument("--input", type=Path, required=True, help="a folder of images, one image, or a video")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto", help="where the VAE runs (default: auto)")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="images per VAE batch (default: 64)")
    parser.add_argument("--every", type=positive_int, default=1, help="keep every N-th video frame (default: 1)")
    parser.add_argument("--sheet", type=positive_int, default=16, help="pairs on the side-by-side sheet (default: 16)")
    add_precision_argument(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    if not args.input.exists():
        return fail(f"no such input: {args.input}", 2)
    try:
        device = resolve_device(args.device)
        vae = load_vae(args.vae, device, resolve_fast_path(args.precision, device))
    except (FileNotFoundError, ValueError) as exc:
        return fail(str(exc), 2)
    configure_threads()
    summary = translate(vae, args.input, args.out, device, args.batch_size, args.every, args.sheet)
    if summary["translated"] == 0:
        return fail(f"no readable image in {args.input} ({len(summary['skipped'])} skipped)")
    print(
        f"translated {summary['translated']} images ({len(summary['skipped'])} skipped) in "
        f"{summary['wall_time_s']:.1f} s: {summary['images_per_s']:.0f} images/s end to end, "
        f"{summary['vae_images_per_s']:.0f} images/s in the VAE -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
