# SPDX-License-Identifier: MIT
"""A small procedural franka-layout dataset with real dynamics: a gripper pushing cubes on a table.

The scene is top-down. Action columns 0-2 are end-effector velocity commands: the next ee
position is ee + STEP * a[0:3] (clipped to the workspace, which the controller rarely reaches).
A gripper lower than CONTACT_Z pushes any cube it touches out of its way. Fingers follow the
finger targets a[7:9] with a first-order lag. Joint positions are a fake IK: a fixed smooth
function of the ee pose (the real columns' meaning is kept, not their kinematics); action
columns 3-6 are that fake IK of the commanded next pose. Frames show the cubes as coloured
squares, the gripper as a dot whose size is its opening and whose brightness and shadow offset
are its height. Everything follows from the seed.
"""

from __future__ import annotations

import os
import pickle
import secrets
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dinowm.config import data_path
from dinowm.errors import DataError
from dinowm.schema import RunConfig

TABLE = 0.3  # the image covers [-TABLE, TABLE]^2 metres
REACH = 0.27  # workspace limit of the ee in x and y
Z_MIN, Z_MAX = 0.02, 0.20
STEP = 0.01  # metres per frame at a full velocity command
CONTACT_Z = 0.06  # below this height the gripper pushes cubes
CUBE_HALF, GRIP_RADIUS, FINGER_MAX = 0.025, 0.02, 0.04
CUBE_COLOURS = ((215, 50, 45), (45, 165, 70), (55, 85, 215))
FPS = 30.0
_IK = np.random.default_rng(1234).normal(0.0, 1.5, size=(7, 4))  # fixed fake-IK weights
_IK_BIAS = np.linspace(-1.0, 1.0, 7)


def fake_ik(ee: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """(T, 3), (T,) -> (T, 7) joint positions: a smooth, fixed function of the ee pose."""
    pose = np.concatenate([ee, yaw[:, None]], axis=1)  # (T, 4)
    return np.tanh(pose @ _IK.T + _IK_BIAS) * 2.0


def _yaw(ee: np.ndarray) -> np.ndarray:
    return 0.5 * ee[..., 0] / TABLE


def _simulate(rng: np.random.Generator, length: int, n_cubes: int) -> dict[str, np.ndarray]:
    """Roll out the waypoint controller; states/actions are float64 (T, ·), cubes (T, n, 2)."""
    ee = np.array([*rng.uniform(-0.2, 0.2, 2), rng.uniform(0.05, 0.15)])
    cubes = rng.uniform(-0.22, 0.22, size=(n_cubes, 2))
    grip, cmd, waypoint, target, until = FINGER_MAX, np.zeros(3), ee, FINGER_MAX, 0
    ees, grips, cube_xy, cmds, targets = [], [], [], [], []
    for t in range(length):
        ees.append(ee.copy())
        grips.append(grip)
        cube_xy.append(cubes.copy())
        if t >= until:  # a new waypoint: mostly through a cube (pushes), sometimes anywhere
            if rng.random() < 0.6:
                c = cubes[rng.integers(n_cubes)]
                d = c - ee[:2]
                d = d / (np.linalg.norm(d) + 1e-9)
                waypoint = np.array([*np.clip(c + 0.08 * d, -0.22, 0.22), 0.03])
            else:
                waypoint = np.array([*rng.uniform(-0.22, 0.22, 2), rng.uniform(0.03, 0.17)])
            target = FINGER_MAX if rng.random() < 0.7 else 0.0
            until = t + int(rng.integers(15, 30))
        cmd = 0.7 * cmd + 0.3 * np.clip((waypoint - ee) / (STEP * 6), -1.0, 1.0)  # smooth
        cmds.append(cmd.copy())
        targets.append(target)
        ee = np.clip(ee + STEP * cmd, [-REACH, -REACH, Z_MIN], [REACH, REACH, Z_MAX])
        grip = grip + 0.5 * (target - grip)
        if ee[2] < CONTACT_Z:  # contact: a touched cube is pushed out of the gripper's way
            d = cubes - ee[:2]
            dist = np.linalg.norm(d, axis=1)
            hit = dist < CUBE_HALF + GRIP_RADIUS
            away = np.where(
                dist[:, None] > 1e-9,
                d / np.maximum(dist, 1e-9)[:, None],
                cmd[:2] / (np.linalg.norm(cmd[:2]) + 1e-9),
            )
            pushed = ee[:2] + away * (CUBE_HALF + GRIP_RADIUS)
            cubes = np.clip(np.where(hit[:, None], pushed, cubes), -REACH, REACH)
    ee_t, cmd_t = np.array(ees), np.array(cmds)
    nxt = np.clip(ee_t + STEP * cmd_t, [-REACH, -REACH, Z_MIN], [REACH, REACH, Z_MAX])
    joints = fake_ik(ee_t, _yaw(ee_t))
    vel = np.diff(joints, axis=0, prepend=joints[:1]) * FPS
    half = _yaw(ee_t) / 2  # gripper pointing down, rotated by yaw: quat wxyz
    quat = np.stack([np.zeros(length), np.cos(half), np.sin(half), np.zeros(length)], axis=1)
    grip_t, target_t = np.array(grips), np.array(targets)
    states = np.concatenate([ee_t, quat, 2 * grip_t[:, None], joints, vel], axis=1)  # (T, 22)
    actions = np.concatenate(
        [cmd_t, fake_ik(nxt, _yaw(nxt))[:, 3:], target_t[:, None], target_t[:, None]], axis=1
    )  # (T, 9)
    return {"states": states, "actions": actions, "cubes": np.array(cube_xy), "grip": grip_t}


def _background(size: int) -> np.ndarray:
    img = np.empty((size, size, 3), np.uint8)
    img[:] = (196, 176, 146)
    step = max(size // 8, 2)
    img[::step, :] = img[:, ::step] = (184, 163, 133)  # faint grid, a fixed spatial reference
    return img


def _box(
    img: np.ndarray, cu: float, cv: float, r: float, colour: tuple[int, int, int], disk: bool
) -> None:
    size = img.shape[0]
    u0, u1 = max(int(cu - r), 0), min(int(cu + r) + 2, size)
    v0, v1 = max(int(cv - r), 0), min(int(cv + r) + 2, size)
    if u0 >= u1 or v0 >= v1:
        return
    if not disk:
        img[v0 : v1 - 1, u0 : u1 - 1] = colour
        return
    vv, uu = np.mgrid[v0:v1, u0:u1]
    mask = (uu + 0.5 - cu) ** 2 + (vv + 0.5 - cv) ** 2 <= r * r
    img[v0:v1, u0:u1][mask] = colour


def render(sim: dict[str, np.ndarray], size: int) -> np.ndarray:
    """(T, size, size, 3) uint8 top-down frames of a simulated episode."""
    px = size / (2 * TABLE)
    bg = _background(size)
    frames = np.empty((len(sim["states"]), size, size, 3), np.uint8)
    for t, (state, cubes, grip) in enumerate(zip(sim["states"], sim["cubes"], sim["grip"])):
        img = frames[t]
        img[:] = bg
        for (x, y), colour in zip(cubes, CUBE_COLOURS):
            _box(img, (x + TABLE) * px, (y + TABLE) * px, CUBE_HALF * px, colour, disk=False)
        x, y, z = state[:3]
        height = (z - Z_MIN) / (Z_MAX - Z_MIN)
        r = (0.6 + 0.8 * grip / FINGER_MAX) * GRIP_RADIUS * px
        shadow = 0.08 * height * px  # higher gripper, farther shadow
        _box(img, (x + TABLE) * px + shadow, (y + TABLE) * px + shadow, r, (90, 80, 70), True)
        level = int(90 + 165 * height)
        _box(img, (x + TABLE) * px, (y + TABLE) * px, r, (level, level, 40), True)
    return frames


def write_synthetic_dataset(
    path: str | Path,
    *,
    episodes: int = 16,
    length: int = 80,
    image_size: int = 64,
    seed: int = 0,
    nan_at: tuple[int, int, int] | None = None,
    vary: float = 0.05,
) -> dict[str, Any]:
    """Write a franka-layout dataset at `path` (atomically: built in a temp folder, renamed)."""
    path = Path(path)
    if path.exists():
        raise DataError(f"{path} already exists; delete it or choose another data.path")
    lengths = []
    sims = []
    for ep in range(episodes):
        rng = np.random.default_rng([seed, ep])
        n = length - int(rng.integers(0, int(vary * length) + 1))
        sims.append(_simulate(rng, n, len(CUBE_COLOURS)))
        lengths.append(n)
    t_max = max(lengths)
    states = np.zeros((episodes, t_max, 22), np.float32)  # zero padding past each length
    actions = np.zeros((episodes, t_max, 9), np.float32)
    for ep, sim in enumerate(sims):
        states[ep, : lengths[ep]] = sim["states"]
        actions[ep, : lengths[ep]] = sim["actions"]
    if nan_at is not None:
        ep, t, col = nan_at
        if not (0 <= ep < episodes and 0 <= t < lengths[ep] and 0 <= col < 9):
            raise ValueError(f"nan_at {nan_at} is outside the episodes/lengths/9 action columns")
        actions[ep, t, col] = np.nan
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        tmp.mkdir()
        torch.save(torch.from_numpy(states), tmp / "states.pth")
        torch.save(torch.from_numpy(actions), tmp / "actions.pth")
        with open(tmp / "metadata.pkl", "wb") as f:
            pickle.dump({"episode_lengths": lengths}, f, protocol=4)
        for ep, sim in enumerate(sims):
            (tmp / f"{ep:06d}").mkdir()
            torch.save(torch.from_numpy(render(sim, image_size)), tmp / f"{ep:06d}" / "obses.pth")
        tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {
        "path": str(path),
        "episodes": episodes,
        "lengths": lengths,
        "image_size": image_size,
        "seed": seed,
        "state_dim": 22,
        "action_dim": 9,
    }


def ensure_dataset(cfg: RunConfig) -> None:
    """Generate the built-in synthetic dataset at data.path on first use (demo preset)."""
    path = data_path(cfg)
    if cfg.data.synthetic and not path.exists():
        try:
            write_synthetic_dataset(
                path,
                episodes=cfg.data.synth_episodes,
                length=cfg.data.synth_length,
                image_size=cfg.data.synth_image_size,
                seed=cfg.seed,
            )
        except (OSError, DataError):
            if not path.exists():  # another run generated it at the same moment: use theirs
                raise
