"""The RL side on the smoke preset: agent cache, pipelines, seeded evaluation, the matrix, the CLIs."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from stable_baselines3.common.vec_env import DummyVecEnv

from benchmark.common.io import write_json
from benchmark.mapping.vae import ConvVAE, VAEConfig, save_vae
from benchmark.rl.__main__ import main as rl_main
from benchmark.rl.agent import AgentError, build_ppo, get_or_train_agent, load_agent, make_vec_env
from benchmark.rl.config import AgentConfig, agent_config
from benchmark.rl.episodes import SeededEpisodes
from benchmark.rl.evaluate import run_episodes, wilson_interval
from benchmark.rl.matrix import DOMAINS, Pipeline, evaluate_matrix, find_vaes, slug
from benchmark.rl.pipelines import ORACLE, RAW, OracleObservation, VAEObservation
from envs.reach_env import ReachEnv

SMOKE = agent_config("smoke")


@pytest.fixture(scope="session")
def agent(agent_root):
    model, _, _ = load_agent(agent_root / "rl" / SMOKE.key())
    return model


def _vae_run(runs, strategy="der", resolution=64, preset="smoke"):
    """A run folder as benchmark.run writes it, with an untrained, seeded VAE."""
    torch.manual_seed(0)
    run = runs / strategy / "seed0"
    save_vae(ConvVAE(VAEConfig(resolution=resolution)), run / "model.pt")
    write_json(run / "config.json", {"strategy": strategy, "preset": preset, "seed": 0})
    return run


def test_wilson_interval_matches_hand_computation():
    low, high = wilson_interval(90, 100)
    assert low == pytest.approx(0.8256, abs=1e-4) and high == pytest.approx(0.9448, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_agent_config_round_trip_and_key():
    again = AgentConfig.from_dict(json.loads(json.dumps(SMOKE.to_dict())))
    assert again == SMOKE and again.key() == SMOKE.key()
    assert agent_config("smoke", seed=1).key() != SMOKE.key()
    # An option added later is out of the key at its off value (cached agents stay valid), in it otherwise.
    later = {"augment_grow", "mapping", "mapping_digest", "mapping_fraction"}  # options added after agents were cached
    fields = {k: v for k, v in SMOKE.to_dict().items() if k not in later}
    old_key = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]
    assert SMOKE.augment_grow == 0 and SMOKE.key().endswith(old_key)
    assert dataclasses.replace(SMOKE, augment_grow=1).key() != SMOKE.key()
    assert agent_config("smoke", resolution=32).resolution == 32
    with pytest.raises(KeyError, match="valid presets"):
        agent_config("huge")


def test_agent_is_cached_by_config(agent_root, caplog):
    directory = agent_root / "rl" / SMOKE.key()
    summary = json.loads((directory / "agent.json").read_text())
    assert summary["canonical_episodes"] == SMOKE.final_episodes and 0 <= summary["canonical_success_rate"] <= 1
    assert "mapping_success_rate" not in summary  # no mapping, nothing played through one
    assert summary["imitation"] and all("mapping_success_rate" not in entry for entry in summary["imitation"])
    assert (directory / "tb").is_dir() and (directory / "eval" / "evaluations.npz").is_file()
    before = (directory / "model.zip").stat().st_mtime_ns
    caplog.set_level("INFO", logger="ciim")
    get_or_train_agent(SMOKE, agent_root / "rl", "cpu", progress=False)
    assert "reusing" in caplog.text and (directory / "model.zip").stat().st_mtime_ns == before


def test_incomplete_agent_folder_is_retrained(tmp_path, agent_root):
    root = tmp_path / "rl"
    shutil.copytree(agent_root / "rl", root)
    (root / SMOKE.key() / "model.zip").unlink()
    _, directory, _ = get_or_train_agent(SMOKE, root, "cpu", progress=False)
    assert (directory / "model.zip").is_file()


def test_missing_or_broken_agent_is_one_line_error(tmp_path):
    with pytest.raises(AgentError, match="no trained agent"):
        load_agent(tmp_path)
    (tmp_path / "model.zip").write_text("not a zip")
    write_json(tmp_path / "config.json", SMOKE.to_dict())
    with pytest.raises(AgentError, match="does not hold a usable agent") as info:
        load_agent(tmp_path)
    assert "\n" not in str(info.value)


def test_same_episode_id_same_start_whatever_came_before():
    env = SeededEpisodes(ReachEnv("noisy", SMOKE.env), base_seed=7, worker=1, workers=3)
    first, info = env.reset()
    assert info["episode_id"] == 1
    for _ in range(5):
        env.step(env.action_space.sample())
    second, info = env.reset()
    assert info["episode_id"] == 4
    env.set_schedule(7, 1, 3)
    again, info = env.reset()
    assert info["episode_id"] == 1 and np.array_equal(first, again)
    assert not np.array_equal(first, second)


def test_vae_wrapper_matches_the_agents_observation_space(tmp_path, agent):
    run = _vae_run(tmp_path)
    from benchmark.mapping.vae import load_vae

    vae = load_vae(run)
    venv = make_vec_env("randomized", SMOKE.env, 2, seed=3, processes=False)
    wrapped = VAEObservation(venv, vae)
    obs = wrapped.reset()
    assert obs.dtype == np.uint8 and obs.shape == (2, *venv.observation_space.shape)
    assert obs.shape[1:] == ReachEnv(config=SMOKE.env).observation_space.shape
    raw = torch.from_numpy(wrapped.last_inputs).permute(0, 3, 1, 2).float() / 255
    expected = (vae.reconstruct(raw) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(obs, expected)
    actions, _ = agent.predict(obs, deterministic=True)
    assert actions.shape == (2, 2)
    small = ConvVAE(VAEConfig(resolution=32))
    with pytest.raises(ValueError, match="32x32"):
        VAEObservation(venv, small)


def test_oracle_on_canonical_acts_like_the_bare_agent(agent):
    bare = make_vec_env("canonical", SMOKE.env, 2, seed=11, processes=False)
    oracle = OracleObservation(make_vec_env("canonical", SMOKE.env, 2, seed=11, processes=False))
    plain, seen = run_episodes(agent, bare, 3, record=3), run_episodes(agent, oracle, 3, record=3)
    assert plain.outcomes == seen.outcomes
    for eid in range(3):
        views = [f[1] for f in plain.frames[eid]], [f[1] for f in seen.frames[eid]]
        assert all(np.array_equal(a, b) for a, b in zip(*views, strict=True))
        actions = [agent.predict(np.stack(v), deterministic=True)[0] for v in views]
        assert np.array_equal(*actions)


def test_episodes_do_not_depend_on_worker_processes(agent):
    inline = run_episodes(agent, make_vec_env("noisy", SMOKE.env, 2, seed=5, processes=False), 4)
    venv = make_vec_env("noisy", SMOKE.env, 2, seed=5, processes=True)
    try:
        forked = run_episodes(agent, venv, 4)
    finally:
        venv.close()
    assert inline.outcomes == forked.outcomes
    assert [o.episode_id for o in inline.outcomes] == [0, 1, 2, 3]


def test_evaluation_matrix_rows_columns_and_reproducible(tmp_path, agent):
    runs = tmp_path / "runs"
    _vae_run(runs, "der")
    _vae_run(runs, "er", preset="quick")  # another preset: not a row
    pipelines = [Pipeline(ORACLE), Pipeline(RAW), *find_vaes(runs, "smoke")]
    assert [p.label for p in pipelines] == ["oracle", "raw", "der/seed0"]
    first = evaluate_matrix(agent, SMOKE, pipelines, tmp_path / "a", episodes=3, strips=1, progress=False)
    second = evaluate_matrix(agent, SMOKE, pipelines, tmp_path / "b", episodes=3, strips=1, progress=False)
    assert first["cells"] == second["cells"]
    assert {(c["pipeline"], c["domain"]) for c in first["cells"]} == {(p.label, d) for p in pipelines for d in DOMAINS}
    table = (tmp_path / "a" / "matrix.csv").read_text().splitlines()
    assert table[0].startswith("pipeline,domain") and len(table) == 1 + 3 * len(DOMAINS)
    strips = sorted((tmp_path / "a" / "strips").glob("*.png"))
    assert len(strips) == 3 * len(DOMAINS)
    with Image.open(strips[0]) as image:
        assert image.height > image.width / 16
    canonical = {c.pop("pipeline"): c for c in first["cells"] if c["domain"] == "canonical"}
    assert canonical["oracle"] == canonical["raw"]  # the canonical image is the oracle's view


def test_single_task_runs_give_one_row_per_task(tmp_path):
    run = _vae_run(tmp_path, "single")
    for k in range(3):
        shutil.copy(run / "model.pt", run / f"model_task{k}.pt")
    assert [p.label for p in find_vaes(tmp_path)] == [f"single/seed0/task{k}" for k in range(3)]


def test_cli_evaluate_writes_json(tmp_path, agent_root, capsys):
    run = _vae_run(tmp_path / "runs")
    target = tmp_path / "heldout.json"
    argv = ["evaluate", "--preset", "smoke", "--runs", str(agent_root), "--vae", str(run), "--domain", "heldout"]
    assert rl_main([*argv, "--episodes", "2", "--json", str(target), "--no-progress", "--device", "cpu"]) == 0
    result = json.loads(target.read_text())
    assert result["episodes"] == 2 and result["domain"] == "heldout" and len(result["success_ci95"]) == 2
    assert "success" in capsys.readouterr().out
    # The cell's episodes sit beside the agent's matrix, so a second agent on the same cell keeps its own.
    cell = f"{slug(str(run))}__heldout"
    assert (agent_root / "rl_eval" / "smoke" / "one" / cell / "matrix.json").is_file()
    (agent,) = (agent_root / "rl").iterdir()
    assert rl_main([*argv, "--agent", str(agent), "--episodes", "1", "--strips", "0", "--no-progress"]) == 0
    assert (agent_root / "rl_eval" / agent.name / "one" / cell / "result.json").is_file()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--domain", "mars"], "valid: canonical"),
        (["--vae", "nowhere"], "no VAE at"),
        (["--agent", "nowhere"], "no trained agent"),
        (["--vae", "SMALL"], "32x32"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, agent_root, capsys, extra, message):
    small = tmp_path / "small.pt"
    save_vae(ConvVAE(VAEConfig(resolution=32)), small)
    extra = [str(small) if e == "SMALL" else e for e in extra]
    argv = ["evaluate", "--preset", "smoke", "--runs", str(agent_root), "--episodes", "1", "--no-progress", *extra]
    assert rl_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error:") and message in err[-1]


def test_dummy_vec_env_is_used_without_processes():
    venv = make_vec_env("canonical", SMOKE.env, 2, seed=0, processes=False)
    assert isinstance(venv, DummyVecEnv) and venv.num_envs == 2


def test_build_ppo_uses_the_coordinate_cnn():
    venv = make_vec_env("canonical", SMOKE.env, 1, seed=0, processes=False)
    model = build_ppo(SMOKE, venv, "cpu")
    assert type(model.policy.features_extractor).__name__ == "CoordCNN"


def test_matrix_is_the_same_whatever_the_worker_count(tmp_path, agent):
    runs = tmp_path / "runs"
    _vae_run(runs, "der")
    pipelines = [Pipeline(RAW), *find_vaes(runs, "smoke")]
    cells = [
        evaluate_matrix(agent, SMOKE, pipelines, tmp_path / f"w{w}", ("noisy",), 5, strips=0, progress=False,
                        workers=w)["cells"]
        for w in (1, 3)
    ]  # fmt: skip
    assert cells[0] == cells[1]


def test_agreement_is_zero_on_identical_images_and_not_on_a_vae(tmp_path, agent, smoke_data):
    from benchmark.rl.agreement import agreement, compare_actions

    actions = np.random.default_rng(0).uniform(-1, 1, (20, 2))
    assert compare_actions(actions, actions) == {"images": 20, "action_error": 0.0, "wrong_sign": 0.0}
    assert compare_actions(actions, -actions)["wrong_sign"] > 0.9
    from benchmark.mapping.vae import load_vae

    views = {"raw": None, "der/seed0": load_vae(_vae_run(tmp_path, "der"))}
    rows = agreement(agent, views, smoke_data, ("canonical", "randomized", "noisy"), SMOKE.env.scene)
    by = {(r["pipeline"], r["domain"]): r for r in rows}
    assert len(rows) == 6 and by[("raw", "canonical")]["images"] > 0
    # the canonical task's inputs are the canonical images themselves
    assert by[("raw", "canonical")]["action_error"] == 0.0 and by[("raw", "canonical")]["wrong_sign"] == 0.0
    assert by[("der/seed0", "canonical")]["action_error"] > 0.0  # an untrained VAE's views differ


def test_cli_checks_the_vae_before_training_an_agent(tmp_path, capsys):
    runs = tmp_path / "runs"  # no agent here: a check after training would train one first
    argv = ["evaluate", "--preset", "smoke", "--runs", str(runs), "--vae", str(tmp_path / "nowhere"), "--no-progress"]
    assert rl_main(argv) == 2
    assert "no VAE at" in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (runs / "rl").exists()
    small = tmp_path / "small.pt"
    save_vae(ConvVAE(VAEConfig(resolution=32)), small)
    assert rl_main([*argv[:-2], str(small), "--no-progress"]) == 2
    assert "32x32" in capsys.readouterr().err and not (runs / "rl").exists()


def test_cli_matrix_needs_an_existing_runs_folder(tmp_path, capsys):
    argv = ["matrix", "--preset", "smoke", "--runs", str(tmp_path / "missing"), "--no-progress"]
    assert rl_main(argv) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "missing").exists()


def test_an_interrupted_agent_training_leaves_no_temporary_folder(tmp_path, monkeypatch):
    from benchmark.rl import agent as agent_module

    def interrupted(cfg, directory, device, progress=True):
        (directory / "model.zip").write_text("half")
        raise KeyboardInterrupt

    monkeypatch.setattr(agent_module, "train_agent", interrupted)
    with pytest.raises(KeyboardInterrupt):
        get_or_train_agent(SMOKE, tmp_path / "rl", "cpu", progress=False)
    assert list((tmp_path / "rl").iterdir()) == []


def test_leftovers_of_dead_trainings_are_removed_and_live_ones_kept(tmp_path):
    import os
    import subprocess
    import sys

    from benchmark.rl.agent import clean_leftovers

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for name, pid in ((".a.dead", dead.pid), (".b.live", os.getpid()), (".c.nopid", None)):
        (tmp_path / name).mkdir()
        if pid is not None:
            (tmp_path / name / "owner.pid").write_text(str(pid))
    (tmp_path / "quick-r64-s0-abc").mkdir()  # a finished agent
    assert sorted(p.name for p in clean_leftovers(tmp_path)) == [".a.dead", ".c.nopid"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".b.live", "quick-r64-s0-abc"]


def test_sigterm_during_agent_training_removes_its_temporary_folder(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    runs = tmp_path / "runs"
    # 10^6 PPO steps after imitation: minutes of training, interrupted once PPO has started
    command = [sys.executable, "-m", "benchmark.rl", "train", "--preset", "smoke", "--runs", str(runs),
               "--timesteps", "1000000", "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list((runs / "rl").glob(".*/eval")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(1.0)
    assert proc.poll() is None, f"the training ended before it could be interrupted: {proc.communicate()[1][-2000:]}"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err.strip().splitlines()[-1]
    assert list((runs / "rl").iterdir()) == []


def test_closing_after_an_interrupted_step_does_not_hang():
    venv = make_vec_env("canonical", SMOKE.env, 2, seed=0, processes=True)
    venv.reset()
    venv.step_async(np.zeros((2, 2), dtype=np.float32))
    venv.remotes[0].recv()  # what an interrupted step_wait leaves: one result read, the other not
    import threading

    closer = threading.Thread(target=venv.close, daemon=True)  # SB3's own close waits forever here
    closer.start()
    closer.join(timeout=30)
    assert not closer.is_alive() and venv.closed and not any(p.is_alive() for p in venv.processes)


def test_forked_workers_get_the_default_sigterm_back():
    import os
    import signal

    from benchmark.cli import sigterm_as_interrupt

    with sigterm_as_interrupt():
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        pid = os.fork()
        if pid == 0:  # the child: exit 0 only if SIGTERM is back to its default
            os._exit(0 if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL else 1)
        _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0


def test_mapping_agent_key_follows_the_files_digest_not_its_path(tmp_path):
    torch.manual_seed(0)
    first, moved, other = tmp_path / "a" / "model.pt", tmp_path / "b" / "model.pt", tmp_path / "c.pt"
    save_vae(ConvVAE(VAEConfig()), first)
    moved.parent.mkdir()
    shutil.copy(first, moved)
    save_vae(ConvVAE(VAEConfig()), other)  # other weights
    cfg = agent_config("smoke", mapping=first.parent)  # a run folder stands for its model.pt
    assert cfg.mapping_digest == hashlib.sha256(first.read_bytes()).hexdigest()
    assert cfg.key() != SMOKE.key()
    assert agent_config("smoke", mapping=moved).key() == cfg.key()
    assert agent_config("smoke", mapping=other).key() != cfg.key()
    assert agent_config("smoke", mapping=first, mapping_fraction=0.25).key() != cfg.key()
    assert AgentConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match=r"mapping_fraction must be in \[0, 1\]"):
        agent_config("smoke", mapping=first, mapping_fraction=1.5)
    with pytest.raises(ValueError, match="digest"):
        AgentConfig(mapping=str(first))
    with pytest.raises(FileNotFoundError, match="no VAE at"):
        agent_config("smoke", mapping=tmp_path / "nowhere.pt")
    # Through a mapping, quick's agent takes 8 DAgger rounds (4 left it at 70% through its Task-0
    # model); an explicit --dagger-rounds still wins, and the render-only agent keeps 4.
    assert agent_config("quick", mapping=first).dagger_rounds == 8
    assert agent_config("quick", mapping=first, dagger_rounds=3).dagger_rounds == 3
    assert agent_config("quick").dagger_rounds == 4


def test_load_mapping_refuses_a_changed_file_or_another_resolution(tmp_path):
    from benchmark.rl.agent import load_mapping

    path = tmp_path / "model.pt"
    save_vae(ConvVAE(VAEConfig()), path)
    cfg = agent_config("smoke", mapping=path)
    assert load_mapping(cfg).config.resolution == 64
    save_vae(ConvVAE(VAEConfig(resolution=32)), path)
    with pytest.raises(AgentError, match="changed since"):
        load_mapping(cfg)
    with pytest.raises(AgentError, match="32x32"):
        load_mapping(agent_config("smoke", mapping=path))


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--mapping", "nowhere.pt"], "no VAE at"), (["--mapping-fraction", "0.3"], "--mapping-fraction needs --mapping")],
)
def test_cli_train_checks_the_mapping_before_training(tmp_path, capsys, extra, message):
    runs = tmp_path / "runs"
    argv = ["train", "--preset", "smoke", "--runs", str(runs), "--no-progress", *extra]
    assert rl_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and not (runs / "rl").exists()


def test_cli_trains_an_agent_through_a_mapping(tmp_path, capsys):
    vae = _vae_run(tmp_path / "vaes")
    runs = tmp_path / "runs"
    argv = ["train", "--preset", "smoke", "--runs", str(runs), "--mapping", str(vae), "--dagger-rounds", "2"]
    assert rl_main([*argv, "--mapping-fraction", "1", "--no-progress"]) == 0
    (directory,) = (runs / "rl").iterdir()
    config = AgentConfig.from_dict(json.loads((directory / "config.json").read_text()))
    assert (
        config.mapping == str(vae)
        and config.mapping_digest == hashlib.sha256((vae / "model.pt").read_bytes()).hexdigest()
    )
    assert (config.dagger_rounds, config.mapping_fraction) == (2, 1.0) != (SMOKE.dagger_rounds, SMOKE.mapping_fraction)
    summary = json.loads((directory / "agent.json").read_text())
    assert [entry["round"] for entry in summary["imitation"]] == [0, 1, 2]  # behaviour cloning, then two DAgger rounds
    # Each round is also played through the mapping, whose reconstructions are what the agent is for.
    assert all(0 <= entry["mapping_success_rate"] <= 1 for entry in summary["imitation"])
    # Its final check also plays the same episodes through the mapping it learnt on, and says so.
    assert 0 <= summary["mapping_success_rate"] <= 1 and len(summary["mapping_success_ci95"]) == 2
    assert summary["mapping_mean_final_distance"] > 0
    assert directory.name == config.key() != SMOKE.key() and (directory / "model.zip").is_file()
    out = capsys.readouterr().out
    assert directory.name in out and "through its mapping" in out
