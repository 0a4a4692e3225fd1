"""Data generation and the on-disk cache: determinism, hits, misses, corruption, the CLI."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import numpy as np
import pytest

from benchmark.data import cache
from benchmark.data.__main__ import main as data_main
from benchmark.data.cache import get_or_generate, spec_key
from benchmark.data.generate import expected_shapes, generate


def test_shapes_and_dtypes(smoke_data, smoke_spec):
    for name, shape in expected_shapes(smoke_spec).items():
        array = getattr(smoke_data, name)
        assert array.shape == shape
        assert array.dtype == (np.float32 if name.endswith("aux") else np.uint8)


def test_worker_count_does_not_change_the_bytes(smoke_spec, smoke_data):
    small = replace(smoke_spec, n_train=40, n_test=8)
    one, _ = generate(small, workers=1, progress=False)
    two, _ = generate(small, workers=2, progress=False)
    for name, array in one.arrays().items():
        assert array.tobytes() == getattr(two, name).tobytes(), name
    # A prefix of a larger run is the same data: samples are seeded one by one.
    assert one.train_inputs[:, :40].tobytes() == smoke_data.train_inputs[:, :40].tobytes()


def test_task_structure(smoke_data):
    # Task 0 is canonical: input and target are the same picture.
    assert np.array_equal(smoke_data.train_inputs[0], smoke_data.train_targets[0])
    assert np.array_equal(smoke_data.test_inputs[0], smoke_data.test_targets)
    # Tasks 1 and 2 map a different picture onto a canonical target.
    for t in (1, 2):
        assert np.abs(smoke_data.train_inputs[t].astype(int) - smoke_data.train_targets[t]).mean() > 2
    # Training tasks use different scene states; the test split shares one set of states.
    assert not np.array_equal(smoke_data.train_aux[0], smoke_data.train_aux[1])
    assert smoke_data.test_aux.shape == (smoke_data.test_inputs.shape[1], 5)


def test_targets_are_canonical_renders(smoke_data):
    # Every canonical target of task 1 and 2 has the canonical floor grey in its corner.
    corner = smoke_data.train_targets[:, :, 0, 0]
    assert np.ptp(corner.reshape(-1, 3), axis=0).max() <= 2


def test_cache_hit_miss_and_changed_spec(smoke_spec, smoke_data_dir, smoke_data, caplog):
    caplog.set_level(logging.INFO, logger="ciim.data")
    data, directory = get_or_generate(smoke_spec, smoke_data_dir, progress=False)
    assert "reusing" in caplog.text
    assert data.train_inputs.tobytes() == smoke_data.train_inputs.tobytes()
    changed = replace(smoke_spec, seed=1, n_train=8, n_test=4)
    assert spec_key(changed) != spec_key(smoke_spec)
    caplog.clear()
    other, other_dir = get_or_generate(changed, smoke_data_dir, workers=1, progress=False)
    assert "generating" in caplog.text and other_dir != directory
    assert other.train_inputs.shape[1] == 8
    manifest = json.loads((other_dir / "manifest.json").read_text())
    assert manifest["spec"]["seed"] == 1 and manifest["counts"]["train_per_task"] == 8


@pytest.mark.parametrize("damage", ["flip_byte", "drop_file", "drop_manifest", "bad_manifest"])
def test_corrupted_cache_is_reported_and_regenerated(smoke_spec, tmp_path, caplog, damage):
    spec = replace(smoke_spec, n_train=4, n_test=4)
    data, directory = get_or_generate(spec, tmp_path, workers=1, progress=False)
    target = directory / "train_inputs.npy"
    if damage == "flip_byte":
        raw = bytearray(target.read_bytes())
        raw[-1] ^= 0xFF
        target.write_bytes(bytes(raw))
    elif damage == "drop_file":
        target.unlink()
    elif damage == "drop_manifest":
        (directory / "manifest.json").unlink()
    else:
        (directory / "manifest.json").write_text("{not json")
    caplog.set_level(logging.INFO, logger="ciim.data")
    again, again_dir = get_or_generate(spec, tmp_path, workers=1, progress=False)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "regenerating" in warnings[0].getMessage()
    assert "\n" not in warnings[0].getMessage()
    assert again_dir == directory and again.train_inputs.tobytes() == data.train_inputs.tobytes()
    cache.load(directory, spec)  # valid again


def test_killed_generation_leaves_nothing_that_looks_complete(smoke_spec, tmp_path, monkeypatch):
    spec = replace(smoke_spec, n_train=4, n_test=4)

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cache.np, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        get_or_generate(spec, tmp_path, workers=1, progress=False)
    assert not (tmp_path / spec_key(spec)).exists()
    assert list(tmp_path.iterdir()) == []


def test_data_cli_preview_and_errors(tmp_path, capsys):
    preview = tmp_path / "preview.png"
    argv = ["--preset", "smoke", "--n-train", "4", "--n-test", "4", "--data-dir", str(tmp_path / "d"), "--no-progress"]
    assert data_main([*argv, "--workers", "1", "--preview", str(preview)]) == 0
    assert preview.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = capsys.readouterr().out
    assert "3 tasks" in out and "preview written" in out
    for bad in (
        ["--preset", "huge"], ["--n-train", "0"], ["--resolution", "50"], ["--workers", "x"],
        ["--approach-fraction", "1.5"], ["--approach-fraction", "half"],
    ):  # fmt: skip
        with pytest.raises(SystemExit) as exc:
            data_main(bad)
        assert exc.value.code == 2


def _end_to_target(aux: np.ndarray, renderer) -> np.ndarray:
    return np.array([np.linalg.norm(renderer.end_position(a[3:5]) - a[:3]) for a in aux])


def test_approach_states_put_the_arm_near_its_target():
    from envs.renderer import APPROACH_OFFSET, Renderer

    renderer = Renderer()
    rng = np.random.default_rng(0)
    states = [renderer.sample_approach_state(rng) for _ in range(200)]
    limits = renderer.scene.joint_limits
    joints = np.array([s.joints for s in states])
    assert np.all((joints >= limits[:, 0]) & (joints <= limits[:, 1]))
    aux = np.array([s.aux_vector() for s in states])
    near = _end_to_target(aux, renderer)
    assert near.max() <= 0.9 * APPROACH_OFFSET + 1e-6  # the arm is 0.9 m long
    independent = _end_to_target(np.array([renderer.sample_state(rng).aux_vector() for _ in range(200)]), renderer)
    assert np.median(near) < 0.2 < np.median(independent)
    renderer.close()


def test_approach_fraction_changes_training_scenes_only(smoke_spec, smoke_data):
    from envs.renderer import Renderer

    assert "approach_fraction" not in smoke_spec.to_dict()  # keys of older data sets still hold
    spec = replace(smoke_spec, approach_fraction=1.0)
    assert type(spec).from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert spec_key(spec) != spec_key(smoke_spec)
    data, _ = generate(spec, workers=1, progress=False)
    assert data.test_inputs.tobytes() == smoke_data.test_inputs.tobytes()
    renderer = Renderer(spec.scene)
    for t in range(len(spec.tasks)):
        assert _end_to_target(data.train_aux[t], renderer).max() < 0.37
        assert np.median(_end_to_target(smoke_data.train_aux[t], renderer)) > 0.4
    renderer.close()
    with pytest.raises(ValueError, match="approach_fraction"):
        replace(smoke_spec, approach_fraction=-0.1)
