"""On-disk cache of generated data sets, keyed by the full generation spec.

Layout: ``<root>/<key>/`` holds one ``.npy`` file per array of
:class:`~benchmark.data.generate.StreamData` and a ``manifest.json`` (spec, counts, shapes,
SHA-256 of every array, generation time). The key is a hash of the spec and of
:data:`GENERATOR_VERSION`, so a changed spec or generator never reuses an old cache.

A generation writes into a temporary sibling directory and renames it into place only once
every file and the manifest are written, so a killed generation never leaves a directory that
looks complete. A cache that fails validation (missing files, wrong shapes, checksum
mismatch, unreadable manifest) is reported in one log line and regenerated.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmark.data.generate import StreamData, expected_shapes, generate
from benchmark.data.spec import DataSpec

GENERATOR_VERSION = 2
"""Bump when the generator's output changes for the same spec (2: segmentation masks of the targets)."""
MANIFEST = "manifest.json"
log = logging.getLogger("ciim.data")


class CacheError(Exception):
    """A cache directory is missing, incomplete or corrupted; the message says how."""


def spec_key(spec: DataSpec) -> str:
    """Readable, collision-safe directory name for ``spec``."""
    payload = json.dumps({"version": GENERATOR_VERSION, "spec": spec.to_dict()}, sort_keys=True)
    digest = hashlib.sha256(payload.encode()).hexdigest()[:16]
    return f"r{spec.scene.resolution}-n{spec.n_train}x{spec.n_test}-s{spec.seed}-{digest}"


def _checksum(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).data).hexdigest()


def load(directory: Path, spec: DataSpec) -> StreamData:
    """Load and validate a cache directory; raises :class:`CacheError` saying what is wrong."""
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise CacheError(f"no {MANIFEST} (incomplete)")
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
        stored_spec = manifest["spec"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CacheError(f"unreadable {MANIFEST} ({exc.__class__.__name__})") from None
    if stored_spec != json.loads(json.dumps(spec.to_dict())):
        raise CacheError("its manifest describes another spec")
    arrays = {}
    for name, shape in expected_shapes(spec).items():
        path = directory / f"{name}.npy"
        if name not in files or not path.is_file():
            raise CacheError(f"{path.name} is missing")
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise CacheError(f"{path.name} is unreadable ({exc})") from None
        if tuple(array.shape) != shape:
            raise CacheError(f"{path.name} has shape {tuple(array.shape)}, expected {shape}")
        if _checksum(array) != files[name].get("sha256"):
            raise CacheError(f"checksum mismatch in {path.name}")
        arrays[name] = array
    return StreamData(**arrays)


def _write(directory: Path, spec: DataSpec, data: StreamData, extra: dict) -> None:
    files = {}
    for name, array in data.arrays().items():
        np.save(directory / f"{name}.npy", array, allow_pickle=False)
        files[name] = {"sha256": _checksum(array), "shape": list(array.shape), "dtype": str(array.dtype)}
    manifest = {
        "generator_version": GENERATOR_VERSION,
        "key": directory.name,
        "spec": spec.to_dict(),
        "counts": {"tasks": len(spec.tasks), "train_per_task": spec.n_train, "test_per_task": spec.n_test},
        "files": files,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **extra,
    }
    # The manifest is written last: a directory without it is never taken as complete.
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2))


def store(root: Path, spec: DataSpec, data: StreamData, extra: dict | None = None) -> Path:
    """Write ``data`` atomically under ``root``; returns the final directory."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / spec_key(spec)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=root))
    try:
        _write(tmp, spec, data, extra or {})
        if final.exists():
            stale = Path(tempfile.mkdtemp(prefix=f".stale-{final.name}-", dir=root))
            os.replace(final, stale / "old")
            shutil.rmtree(stale, ignore_errors=True)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _clean_leftovers(root: Path, key: str) -> None:
    """Remove temporary directories of this key left by killed generations (older than a day or empty)."""
    for path in root.glob(f".tmp-{key}-*"):
        try:
            if not any(path.iterdir()) or time.time() - path.stat().st_mtime > 86400:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass


def get_or_generate(
    spec: DataSpec, root: str | os.PathLike[str], workers: int | None = None, progress: bool = True
) -> tuple[StreamData, Path]:
    """Return the cached data of ``spec`` under ``root``, generating (or regenerating) it if needed."""
    root = Path(root)
    directory = root / spec_key(spec)
    if directory.exists():
        try:
            data = load(directory, spec)
            log.info("data: reusing %s", directory)
            return data, directory
        except CacheError as exc:
            log.warning("data: cache %s is invalid (%s); regenerating", directory, exc)
    else:
        log.info("data: no cache for this spec; generating %s", directory)
    if root.exists():
        _clean_leftovers(root, directory.name)
    data, stats = generate(spec, workers=workers, progress=progress)
    store(root, spec, data, {"generation_seconds": round(stats.seconds, 3), "workers": stats.workers})
    log.info(
        "data: %d samples (%d renders) in %.1f s with %d worker(s) -> %s",
        stats.samples,
        stats.renders,
        stats.seconds,
        stats.workers,
        directory,
    )
    return data, directory
