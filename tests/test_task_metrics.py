"""Segmentation masks, the target detector, arm IoU and the foreground-weighted Eq. 1."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.mapping.loss import LossConfig, vae_loss
from benchmark.mapping.task_metrics import arm_iou, detect_targets, mask_centroids, metres_per_pixel, task_errors
from benchmark.mapping.vae import VAEOutput
from envs.domains import get_domain
from envs.renderer import MASK_ARM, MASK_FLOOR, MASK_TARGET, Renderer, SceneConfig, SceneState

CANONICAL = get_domain("canonical").sample(np.random.default_rng(0)).look


@pytest.fixture(scope="module")
def renderer():
    r = Renderer()
    yield r
    r.close()


def _states(renderer, n, seed=0):
    return [renderer.sample_state(np.random.default_rng([seed, k])) for k in range(n)]


def test_masks_cover_exactly_the_target_and_the_arm(renderer):
    floor = None
    for state in _states(renderer, 6):
        image, mask = renderer.render_with_mask(state, CANONICAL)
        assert np.array_equal(image, renderer.render_look(state, CANONICAL))
        # The target's pixels are exactly those that change when the target is moved out of view.
        away = SceneState(state.joints, (30.0, 30.0, 0.0))
        without = renderer.render_look(away, CANONICAL)
        changed = np.any(image != without, axis=2)
        assert np.array_equal(changed, mask == MASK_TARGET) and changed.any()
        # The floor is one flat colour in the canonical look, and every other pixel differs from it.
        floor = image[mask == MASK_FLOOR][0] if floor is None else floor
        assert np.all(image[mask == MASK_FLOOR] == floor)
        assert np.all(np.any(image[mask == MASK_ARM] != floor, axis=1))
        assert (mask == MASK_ARM).sum() > 20


def test_cached_data_holds_the_masks_of_its_targets(smoke_data):
    masks = smoke_data.test_masks
    assert masks.shape == smoke_data.test_targets.shape[:3] and masks.dtype == np.uint8
    assert set(np.unique(masks)) <= {MASK_FLOOR, MASK_ARM, MASK_TARGET}
    assert smoke_data.train_masks.shape == smoke_data.train_targets.shape[:4]
    # the canonical task's inputs are their own targets, so they share the mask
    targets = torch.from_numpy(smoke_data.test_targets).permute(0, 3, 1, 2)
    found, ok = detect_targets(targets)
    truth, visible = mask_centroids(torch.from_numpy(masks))
    assert bool(ok[visible].all())
    assert float((found - truth)[visible].norm(dim=1).max()) < 0.5


def _disc_image(centre, size=64, radius=2.5):
    """A grey floor with a red disc centred at ``centre`` (row, col), and its mask."""
    rows, cols = np.mgrid[0:size, 0:size]
    inside = (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2
    image = np.full((size, size, 3), 118, np.uint8)
    image[inside] = (220, 10, 10)
    mask = np.where(inside, MASK_TARGET, MASK_FLOOR).astype(np.uint8)
    return torch.from_numpy(image).permute(2, 0, 1), torch.from_numpy(mask)


@pytest.mark.parametrize("shift", [(0, 0), (1, 0), (0, 3), (4, 3), (-6, 8)])
def test_target_error_of_a_target_moved_by_known_pixels(shift):
    truth_img, truth_mask = _disc_image((30, 30))
    moved, _ = _disc_image((30 + shift[0], 30 + shift[1]))
    scene = SceneConfig()
    errors = task_errors(moved[None], truth_img[None], truth_mask[None], torch.tensor([0.5]), scene)
    assert bool(errors.visible[0]) and bool(errors.found[0])
    assert float(errors.error_px[0]) == pytest.approx(np.hypot(*shift), abs=1e-4)
    assert float(errors.error_m[0]) == pytest.approx(
        np.hypot(*shift) * float(metres_per_pixel(scene, torch.tensor(0.5)))
    )


def test_an_erased_target_is_missing_and_a_hidden_one_is_not_counted():
    truth_img, truth_mask = _disc_image((20, 40))
    erased = torch.full_like(truth_img, 118)
    errors = task_errors(erased[None], truth_img[None], truth_mask[None], torch.tensor([0.5]), SceneConfig())
    assert bool(errors.visible[0]) and not bool(errors.found[0])
    hidden = torch.zeros_like(truth_mask)  # the canonical image shows no target
    errors = task_errors(truth_img[None], truth_img[None], hidden[None], torch.tensor([0.5]), SceneConfig())
    assert not bool(errors.visible[0])


def test_a_smear_far_away_does_not_drag_the_detected_target():
    image, _ = _disc_image((20, 20))
    image[:, 50:, 50:] = torch.tensor([150, 20, 20], dtype=torch.uint8).view(3, 1, 1)  # fainter red elsewhere
    found, ok = detect_targets(image[None])
    assert bool(ok[0]) and float((found[0] - torch.tensor([20.0, 20.0])).norm()) < 1e-4


def test_metres_per_pixel_at_the_floor():
    scene = SceneConfig()
    assert float(metres_per_pixel(scene, torch.tensor(0.0))) == pytest.approx(2 * 2.4 * np.tan(np.pi / 6) / 64)


def test_arm_iou_is_one_on_the_canonical_image_and_drops_when_the_arm_moves(renderer):
    state = _states(renderer, 1, seed=3)[0]
    image, mask = renderer.render_with_mask(state, CANONICAL)
    moved = renderer.render_look(SceneState((state.joints[0] + 0.6, state.joints[1]), state.target), CANONICAL)
    as_tensor = [torch.from_numpy(a).permute(2, 0, 1)[None] for a in (image, moved)]
    masks = torch.from_numpy(mask)[None]
    assert float(arm_iou(as_tensor[0], as_tensor[0], masks)[0]) == 1.0
    assert float(arm_iou(as_tensor[1], as_tensor[0], masks)[0]) < 0.6


def _output(recon):
    n = recon.shape[0]
    return VAEOutput(recon, torch.zeros(n, 4), torch.zeros(n, 4), torch.zeros(n, 5))


def test_weighted_term_equals_plain_eq1_when_its_weights_are_zero():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(3, 3, 16, 16, generator=g)
    recon = torch.rand(3, 3, 16, 16, generator=g)
    masks = torch.randint(0, 3, (3, 16, 16), generator=g, dtype=torch.uint8)
    plain = vae_loss(_output(recon), target, torch.zeros(3, 5), LossConfig(), 0.0)
    zero = vae_loss(_output(recon), target, torch.zeros(3, 5), LossConfig(arm_weight=0, target_weight=0), 0.0, masks)
    assert torch.equal(plain.total, zero.total)
    weighted = LossConfig(arm_weight=19.0, target_weight=99.0)
    terms = vae_loss(_output(recon), target, torch.zeros(3, 5), weighted, 0.0, masks)
    error = (recon - target).pow(2)
    weights = 1 + 19.0 * (masks == MASK_ARM) + 99.0 * (masks == MASK_TARGET)
    assert float(terms.recon) == pytest.approx(float((error * weights[:, None]).sum() / 3), rel=1e-6)
    # an error on a target pixel costs 100 times one on a floor pixel
    one = torch.zeros(1, 3, 16, 16)
    mask = torch.zeros(1, 16, 16, dtype=torch.uint8)
    mask[0, 5, 5] = MASK_TARGET
    on_target = one.clone()
    on_target[0, 0, 5, 5] = 1.0
    on_floor = one.clone()
    on_floor[0, 0, 9, 9] = 1.0
    cost = [
        float(vae_loss(_output(r), one, torch.zeros(1, 5), weighted, 0.0, mask).recon) for r in (on_target, on_floor)
    ]
    assert cost == pytest.approx([100.0, 1.0])


def test_dilation_weights_a_band_of_floor_around_the_objects():
    from benchmark.mapping.loss import pixel_weights

    mask = torch.zeros(1, 9, 9, dtype=torch.uint8)
    mask[0, 4, 4] = MASK_TARGET
    mask[0, 0, :] = MASK_ARM
    weights = pixel_weights(mask, LossConfig(arm_weight=9.0, target_weight=99.0, weight_dilation=1))[0, 0]
    assert torch.all(weights[3:6, 3:6] == 100.0) and weights[4, 6] == 1.0
    assert torch.all(weights[:2] == 10.0) and torch.all(weights[2, :] == 1.0)
    assert torch.equal(pixel_weights(mask, LossConfig(arm_weight=9.0))[0, 0, 1:], torch.ones(8, 9))


def test_stray_pixels_make_a_false_positive_on_the_floor_as_dear_as_a_miss():
    from benchmark.mapping.loss import stray_pixels

    mask = torch.zeros(1, 4, 4, dtype=torch.uint8)
    mask[0, 0, 0] = MASK_TARGET
    canonical = torch.full((1, 3, 4, 4), 0.5)
    canonical[0, :, 0, 0] = torch.tensor([1.0, 0.0, 0.0])
    painted = canonical.clone()
    painted[0, :, 0, 1] = torch.tensor([1.0, 0.0, 0.0])  # the target painted one pixel too wide
    painted[0, :, 3, 3] = 0.55  # a faint error under the threshold: not stray
    stray = stray_pixels(painted, canonical, mask)[0, 0]
    assert stray.sum() == 1 and stray[0, 1] == 1
    assert stray_pixels(canonical, canonical, mask).sum() == 0
    plain = LossConfig(target_weight=99.0)
    strict = LossConfig(target_weight=99.0, stray_weight=99.0)
    aux = torch.zeros(1, 5)
    cost = [float(vae_loss(_output(painted), canonical, aux, c, 0.0, mask).recon) for c in (plain, strict)]
    wide = 0.5**2 + 0.5**2 + 0.5**2  # the false positive's squared error, summed over channels
    assert cost[0] == pytest.approx(wide + 3 * 0.05**2)
    assert cost[1] == pytest.approx(100 * wide + 3 * 0.05**2)


def test_agent_augmentation_grows_the_target_and_arm_exactly_into_the_floor(renderer):
    from benchmark.mapping.task_metrics import REDNESS_THRESHOLD, redness
    from benchmark.rl.imitation import grow_objects

    pairs = [renderer.render_with_mask(s, CANONICAL) for s in _states(renderer, 6, seed=3)]
    images = torch.from_numpy(np.stack([p[0] for p in pairs])).permute(0, 3, 1, 2).float()
    masks = torch.from_numpy(np.stack([p[1] for p in pairs])).long()
    assert torch.equal(grow_objects(images, 0, torch.Generator().manual_seed(0)), images)
    grown = grow_objects(images, 2, torch.Generator().manual_seed(0))
    changed = (grown != images).any(dim=1)
    assert changed.any() and bool((masks[changed] == MASK_FLOOR).all())  # objects are never repainted
    # Every new pixel lies within 2 pixels (Chebyshev) of the object it grew from.
    near = torch.nn.functional.max_pool2d((masks != MASK_FLOOR).float().unsqueeze(1), 5, 1, 2)[:, 0] > 0
    assert bool(near[changed].all())
    # A target grown by one pixel covers exactly its mask dilated by one pixel (where that is floor).
    for seed in range(20):
        g = torch.Generator().manual_seed(seed)
        draws = torch.randint(0, 2, (2, len(images)), generator=g)
        one = grow_objects(images, 1, torch.Generator().manual_seed(seed))
        red = redness(one / 255) > REDNESS_THRESHOLD
        ring = torch.nn.functional.max_pool2d((masks == MASK_TARGET).float().unsqueeze(1), 3, 1, 1)[:, 0] > 0
        expected = torch.where(draws[0].view(-1, 1, 1) > 0, ring & (masks != MASK_ARM), masks == MASK_TARGET)
        assert torch.equal(red, expected)
