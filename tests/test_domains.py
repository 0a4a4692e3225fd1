"""Rendering in every domain: shapes, determinism, and what differs from canonical."""

from __future__ import annotations

import numpy as np
import pytest

from envs import Renderer, available_domains, domains, get_domain
from envs.domains import Domain, register_domain
from envs.effects import apply_effects


@pytest.fixture(scope="module")
def renderer():
    r = Renderer()
    yield r
    r.close()


@pytest.fixture(scope="module")
def states(renderer):
    rng = np.random.default_rng(0)
    return [renderer.sample_state(rng) for _ in range(4)]


def render(renderer, states, name, seed):
    domain = get_domain(name)
    rng = np.random.default_rng(seed)
    return renderer.render(states, domain, [domain.sample(rng) for _ in states])


@pytest.mark.parametrize("name", available_domains())
def test_shape_dtype_and_range(renderer, states, name):
    images = render(renderer, states, name, seed=0)
    assert images.shape == (4, 64, 64, 3) and images.dtype == np.uint8
    assert images.std() > 5  # not a blank frame


def test_canonical_is_identical_for_the_same_state(renderer, states):
    a = render(renderer, states, "canonical", seed=0)
    b = render(renderer, states, "canonical", seed=123)
    assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("name", ["randomized", "noisy", "heldout"])
def test_other_domains_differ_from_canonical_and_between_draws(renderer, states, name):
    canonical = render(renderer, states, "canonical", seed=0).astype(int)
    first = render(renderer, states, name, seed=1).astype(int)
    second = render(renderer, states, name, seed=2).astype(int)
    for i in range(len(states)):
        assert np.abs(first[i] - canonical[i]).mean() > 2.0, f"{name} image {i} looks canonical"
    assert np.abs(first - second).mean() > 1.0
    assert render(renderer, states, name, seed=1).tobytes() == first.astype(np.uint8).tobytes()


def test_noisy_keeps_the_canonical_scene(renderer, states):
    """Task 2 is post-processing only: the noisy image stays close to canonical on average."""
    canonical = render(renderer, states, "canonical", seed=0).astype(float)
    noisy = render(renderer, states, "noisy", seed=1).astype(float)
    randomized = render(renderer, states, "randomized", seed=1).astype(float)
    assert (
        np.abs(noisy.mean((1, 2)) - canonical.mean((1, 2))).mean()
        < np.abs(randomized.mean((1, 2)) - canonical.mean((1, 2))).mean()
    )


def test_effects_do_not_depend_on_the_batch(renderer, states):
    domain = get_domain("noisy")
    rng = np.random.default_rng(5)
    apps = [domain.sample(rng) for _ in states]
    raw = np.stack([renderer.render_look(s, a.look) for s, a in zip(states, apps, strict=True)])
    params, seeds = [a.effect_params for a in apps], [a.noise_seed for a in apps]
    whole = apply_effects(raw, domain.effects, params, seeds)
    one = apply_effects(raw[2:3], domain.effects, params[2:3], seeds[2:3])
    assert whole[2].tobytes() == one[0].tobytes()


def test_register_a_new_domain_in_one_function(renderer, states, monkeypatch):
    monkeypatch.setattr(domains, "_DOMAINS", dict(domains._DOMAINS))  # keep the registry clean

    @register_domain("test-dusk")
    def dusk() -> Domain:
        return Domain(light_rgb=((0.9, 1.0), (0.4, 0.5), (0.2, 0.3)))

    assert "test-dusk" in available_domains()
    images = render(renderer, states, "test-dusk", seed=0)
    canonical = render(renderer, states, "canonical", seed=0)
    assert images.shape == canonical.shape and images.tobytes() != canonical.tobytes()
    with pytest.raises(ValueError, match="already registered"):
        register_domain("test-dusk")(dusk)
