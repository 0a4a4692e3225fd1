"""Shared fixtures: the smoke data set is rendered, and the smoke agent trained, once per test session."""

from __future__ import annotations

import warnings

import pytest

warnings.filterwarnings("ignore", message="no QP solver found")

from benchmark.data.cache import get_or_generate  # noqa: E402
from benchmark.presets import get_preset  # noqa: E402
from benchmark.rl.agent import get_or_train_agent  # noqa: E402
from benchmark.rl.config import agent_config  # noqa: E402


@pytest.fixture(scope="session")
def smoke_spec():
    return get_preset("smoke").data_spec()


@pytest.fixture(scope="session")
def smoke_data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def smoke_data(smoke_spec, smoke_data_dir):
    data, _ = get_or_generate(smoke_spec, smoke_data_dir, workers=2, progress=False)
    return data


@pytest.fixture(scope="session")
def agent_root(tmp_path_factory):
    """A runs folder whose rl/ holds the trained smoke agent (trained once per session)."""
    runs = tmp_path_factory.mktemp("rlruns")
    get_or_train_agent(agent_config("smoke"), runs / "rl", "cpu", progress=False)
    return runs
