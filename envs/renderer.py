"""Headless top-view rendering of the KUKA reaching scene with PyBullet's TinyRenderer.

A :class:`Renderer` owns one PyBullet client in DIRECT mode (no display, no GPU) holding a
KUKA iiwa (``pybullet_data/kuka_iiwa/model.urdf``, fixed base), a floor and a visual-only
target sphere. Given a :class:`SceneState` (the two moving joint angles and the target
position) and an :class:`~envs.domains.Appearance`, it returns an RGB uint8 image.
It is used both by the gymnasium environment and by the dataset generator.
"""

from __future__ import annotations

import ctypes
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import NamedTuple

import numpy as np
import pybullet_data

from envs.domains import Appearance, Domain, SceneLook
from envs.effects import apply_effects


def _import_pybullet_quietly() -> ModuleType:
    """Import pybullet without its "pybullet build time" line, which would mix into results on stdout."""
    try:
        libc = ctypes.CDLL(None)
        saved = [os.dup(1), os.dup(2)]
    except OSError:  # no C library or no standard streams to hide from
        import pybullet

        return pybullet
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            os.dup2(null.fileno(), 2)
            import pybullet

            libc.fflush(None)  # the line may sit in C's stdout buffer until flushed
    finally:
        for fd, copy in zip((1, 2), saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)
    return pybullet


pybullet = _import_pybullet_quietly()

END_LINK = 6
"""Link index whose frame is the arm's end (the flange of joint 7)."""


@dataclass(frozen=True)
class SceneConfig:
    """Geometry of the scene and camera; part of every dataset's cache key."""

    resolution: int = 64
    """Image height and width in pixels."""
    camera_height: float = 2.4
    """Height of the top-view camera above the floor, metres."""
    fov_deg: float = 60.0
    """Vertical field of view of the camera."""
    target_radius: float = 0.07
    """Radius of the red target sphere, metres."""
    joint0_limits_deg: tuple[float, float] = (-150.0, 150.0)
    """Range of the base joint (the reference reacher's)."""
    joint1_limits_deg: tuple[float, float] = (-100.0, 100.0)
    """Range of the shoulder joint."""
    rest_pose: tuple[float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0)
    """Fixed angles (radians) of joints 2-6; straight keeps the arm's end visible from above."""

    def __post_init__(self) -> None:
        if self.resolution < 8:
            raise ValueError(f"resolution must be at least 8 pixels, got {self.resolution}")
        for name in ("joint0_limits_deg", "joint1_limits_deg"):
            low, high = getattr(self, name)
            if not low < high:
                raise ValueError(f"{name} must be (low, high) with low < high, got {(low, high)}")

    @property
    def joint_limits(self) -> np.ndarray:
        """``(2, 2)`` array of (low, high) limits in radians for joints 0 and 1."""
        return np.radians(np.array([self.joint0_limits_deg, self.joint1_limits_deg]))


class SceneState(NamedTuple):
    """What a picture shows: the two moving joint angles (rad) and the target position (m)."""

    joints: tuple[float, float]
    target: tuple[float, float, float]

    def aux_vector(self) -> np.ndarray:
        """The auxiliary regression target: target x, y, z and the two joint angles."""
        return np.array([*self.target, *self.joints], dtype=np.float32)


AUX_SIZE = 5
"""Length of :meth:`SceneState.aux_vector`."""

APPROACH_OFFSET = 0.4
"""Largest joint-space distance (rad) of :meth:`Renderer.sample_approach_state`'s arm from its
target's joints: up to about 0.35 m between the arm's end and the target."""

MASK_FLOOR, MASK_ARM, MASK_TARGET = 0, 1, 2
"""Labels of a segmentation mask (:meth:`Renderer.render_with_mask`): floor or nothing, the arm, the target."""


def _rotation(degrees: Sequence[float]) -> np.ndarray:
    rx, ry, rz = np.radians(degrees)
    cx, sx, cy, sy, cz, sz = math.cos(rx), math.sin(rx), math.cos(ry), math.sin(ry), math.cos(rz), math.sin(rz)
    mx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    my = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    mz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return mz @ my @ mx


class Renderer:
    """One PyBullet DIRECT client with the reaching scene; not shared across processes."""

    def __init__(self, scene: SceneConfig | None = None) -> None:
        self.scene = scene or SceneConfig()
        self._client = pybullet.connect(pybullet.DIRECT)
        p = self._call
        p(pybullet.setAdditionalSearchPath, pybullet_data.getDataPath())
        self._floor = p(pybullet.loadURDF, "plane.urdf")
        self._robot = p(pybullet.loadURDF, "kuka_iiwa/model.urdf", useFixedBase=True)
        sphere = p(
            pybullet.createVisualShape,
            pybullet.GEOM_SPHERE,
            radius=self.scene.target_radius,
            rgbaColor=[0.9, 0.05, 0.05, 1.0],
        )
        self._target = p(pybullet.createMultiBody, baseMass=0, baseVisualShapeIndex=sphere)
        for joint, angle in enumerate(self.scene.rest_pose, start=2):
            p(pybullet.resetJointState, self._robot, joint, angle)
        self._textures: dict[str | None, int] = {None: -1}
        self._floor_state: tuple[str | None, tuple[float, float, float]] | None = None
        fov, res = self.scene.fov_deg, self.scene.resolution
        self.projection = p(pybullet.computeProjectionMatrixFOV, fov, 1.0, 0.05, self.scene.camera_height + 1.0)
        self._view_cache: dict[tuple, list[float]] = {}
        self._size = (res, res)

    @property
    def client_id(self) -> int:
        """The PyBullet physics client id of this renderer."""
        return self._client

    def _call(self, fn, *args, **kwargs):
        return fn(*args, physicsClientId=self._client, **kwargs)

    def close(self) -> None:
        """Disconnect the PyBullet client (idempotent)."""
        if self._client >= 0:
            try:
                pybullet.disconnect(physicsClientId=self._client)
            except Exception:  # already gone, e.g. at interpreter shutdown
                pass
            self._client = -1

    def __del__(self) -> None:
        self.close()

    # ------------------------------------------------------------------ kinematics
    def set_joints(self, joints: Sequence[float] | np.ndarray) -> None:
        """Move joints 0 and 1 (radians); joints 2-6 stay at the rest pose."""
        for joint, angle in enumerate(joints[:2]):
            self._call(pybullet.resetJointState, self._robot, joint, float(angle))

    def end_position(self, joints: Sequence[float] | np.ndarray | None = None) -> np.ndarray:
        """World position of the arm's end; with ``joints``, forward kinematics for those angles."""
        if joints is not None:
            self.set_joints(joints)
        state = self._call(pybullet.getLinkState, self._robot, END_LINK, computeForwardKinematics=True)
        return np.asarray(state[4], dtype=np.float64)

    def sample_state(self, rng: np.random.Generator) -> SceneState:
        """A random arm pose and a reachable target: the end position of other random angles."""
        limits = self.scene.joint_limits
        target_joints = rng.uniform(limits[:, 0], limits[:, 1])
        arm_joints = rng.uniform(limits[:, 0], limits[:, 1])
        target = self.end_position(target_joints)
        return SceneState(
            joints=(float(arm_joints[0]), float(arm_joints[1])),
            target=(float(target[0]), float(target[1]), float(target[2])),
        )

    def sample_approach_state(self, rng: np.random.Generator, max_offset: float = APPROACH_OFFSET) -> SceneState:
        """A random target and an arm pose near reaching it: the target's joints moved by at most
        ``max_offset`` radians (a uniform distance in a uniform direction of joint space), within the limits.

        These are the poses the closed loop passes through just before success, the rarest in
        :meth:`sample_state`'s independent draws (README, "The agent and the closed loop").
        """
        limits = self.scene.joint_limits
        target_joints = rng.uniform(limits[:, 0], limits[:, 1])
        angle = rng.uniform(0.0, 2.0 * math.pi)
        offset = rng.uniform(0.0, max_offset) * np.array([math.cos(angle), math.sin(angle)])
        arm_joints = np.clip(target_joints + offset, limits[:, 0], limits[:, 1])
        target = self.end_position(target_joints)
        return SceneState(
            joints=(float(arm_joints[0]), float(arm_joints[1])),
            target=(float(target[0]), float(target[1]), float(target[2])),
        )

    # ------------------------------------------------------------------ rendering
    def view_matrix(self, look: SceneLook) -> list[float]:
        """PyBullet view matrix of the camera under ``look`` (cached per camera pose)."""
        key = (look.camera_shift, look.camera_rotation)
        view = self._view_cache.get(key)
        if view is None:
            base_eye = np.array([0.0, 0.0, self.scene.camera_height])
            rot = _rotation(look.camera_rotation)
            eye = base_eye + np.asarray(look.camera_shift)
            forward = rot @ np.array([0.0, 0.0, -1.0])
            up = rot @ np.array([0.0, 1.0, 0.0])
            view = self._call(pybullet.computeViewMatrix, eye.tolist(), (eye + forward).tolist(), up.tolist())
            if len(self._view_cache) < 4096:
                self._view_cache[key] = view
        return view

    def _set_floor(self, look: SceneLook) -> None:
        state = (look.floor_texture, look.floor_rgb)
        if state == self._floor_state:
            return
        texture = self._textures.get(look.floor_texture)
        if texture is None and look.floor_texture is not None:
            texture = self._call(pybullet.loadTexture, os.path.join(pybullet_data.getDataPath(), look.floor_texture))
            if texture < 0:
                raise FileNotFoundError(f"floor texture {look.floor_texture!r} not found in pybullet_data")
            self._textures[look.floor_texture] = texture
        self._call(
            pybullet.changeVisualShape,
            self._floor,
            -1,
            textureUniqueId=texture,
            rgbaColor=[*look.floor_rgb, 1.0],
        )
        self._floor_state = state

    def _camera(self, state: SceneState, look: SceneLook, segmentation: bool) -> tuple[np.ndarray, np.ndarray | None]:
        self.set_joints(state.joints)
        self._call(pybullet.resetBasePositionAndOrientation, self._target, list(state.target), [0, 0, 0, 1])
        self._set_floor(look)
        width, height = self._size
        _, _, rgba, _, seg = self._call(
            pybullet.getCameraImage,
            width,
            height,
            self.view_matrix(look),
            self.projection,
            lightDirection=list(look.light_direction),
            lightColor=list(look.light_rgb),
            lightAmbientCoeff=look.light_ambient,
            lightDiffuseCoeff=look.light_diffuse,
            lightSpecularCoeff=look.light_specular,
            shadow=int(look.shadow),
            renderer=pybullet.ER_TINY_RENDERER,
            flags=0 if segmentation else pybullet.ER_NO_SEGMENTATION_MASK,
        )
        image = np.asarray(rgba, dtype=np.uint8).reshape(height, width, 4)[:, :, :3].copy()
        if not segmentation:
            return image, None
        ids = np.asarray(seg, dtype=np.int64).reshape(height, width)
        mask = np.full((height, width), MASK_FLOOR, dtype=np.uint8)
        mask[ids == self._robot] = MASK_ARM
        mask[ids == self._target] = MASK_TARGET
        return image, mask

    def render_look(self, state: SceneState, look: SceneLook) -> np.ndarray:
        """Render ``state`` under ``look`` with no post-processing: uint8 ``(H, W, 3)``."""
        return self._camera(state, look, segmentation=False)[0]

    def render_with_mask(self, state: SceneState, look: SceneLook) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`render_look` and its segmentation mask, uint8 ``(H, W)`` of ``MASK_*`` labels.

        The mask comes from PyBullet's segmentation buffer of the same ``getCameraImage`` call, so
        it covers exactly the visible pixels of each object (a target hidden under the arm has none).
        """
        image, mask = self._camera(state, look, segmentation=True)
        assert mask is not None
        return image, mask

    def render(self, states: Sequence[SceneState], domain: Domain, appearances: Sequence[Appearance]) -> np.ndarray:
        """Render a batch in ``domain``: uint8 ``(N, H, W, 3)``, effects applied batched."""
        res = self.scene.resolution
        images = np.empty((len(states), res, res, 3), dtype=np.uint8)
        for i, (state, appearance) in enumerate(zip(states, appearances, strict=True)):
            images[i] = self.render_look(state, appearance.look)
        return apply_effects(
            images,
            domain.effects,
            [a.effect_params for a in appearances],
            [a.noise_seed for a in appearances],
        )
