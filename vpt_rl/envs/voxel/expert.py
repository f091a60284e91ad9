"""A scripted tree-chopping expert for the voxel world (demonstrations and the reference return).

It reads the env's internal state (allowed by the interface): picks the nearest reachable log,
turns toward it, walks until the log (or leaves in front of it) is under the crosshair within
reach, then holds attack; logs above eye level are taken from below once the lower ones are gone
(walking into the trunk's column and looking up), leaves in the line of sight are broken on the
way. Camera moves are snapped to the centres of VPT's 11 mu-law bins (docs/vpt_format.md §6.4), so a recorded
demonstration maps to policy indices without loss.

``sighted=True`` restricts the expert to what its camera shows: it only picks logs that are in
the field of view and in line of sight (plus the rest of the trunk it is chopping), and with none
in view it scans by turning right at the largest camera bin. Why: the default expert turns toward
the nearest log wherever it is, also behind it, and a policy that sees the frame cannot predict
that turn (its direction is in the world state, not in the pixels); measured in docs/benchmarks.md
("Why BC scores far below its demonstrator"), the camera head of BC then stays at the
always-null-camera rate. Imitation needs a demonstrator whose actions are a function of what the
learner observes (the realizability assumption behind BC; Ross & Bagnell 2010, "Efficient
Reductions for Imitation Learning", sec. 2).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np

from vpt_rl.envs.actions import bins_to_camera, camera_to_bins, minerl_noop
from vpt_rl.envs.voxel import physics
from vpt_rl.envs.voxel import world as W
from vpt_rl.envs.voxel.render import view_basis

_STUCK_TICKS = 6  # ticks without horizontal progress (while walking) before an escape manoeuvre
_GIVE_UP_TICKS = 400  # ticks on one target before it is skipped
_REACH_MARGIN = 0.6  # blocks: walk until the target is this far inside reach
_LOGS = np.array(W.LOG_BLOCKS, np.int8)
# sighted expert: a log counts as seen when its centre is inside this fraction of the frame's
# half-extents (the env's 70-degree vertical field of view, 16:9) and within this distance
_VIEW_MARGIN = 0.85
_SIGHT_DISTANCE = 16.0
_SCAN_YAW = 10.0  # degrees per tick while no log is in view: the largest camera bin (docs/vpt_format.md §6.4)


def _snap_camera(d_pitch: float, d_yaw: float) -> np.ndarray:
    """Camera delta snapped to the nearest VPT bin centre per axis (max 10 degrees a tick)."""
    return bins_to_camera(camera_to_bins(np.array([d_pitch, d_yaw]))).astype(np.float32)


class _Expert:
    """State of one expert run; `__call__(obs)` returns a MineRL action dict."""

    def __init__(self, env: Any, noise: float, seed: int | None, sighted: bool = False) -> None:
        if not 0.0 <= noise <= 1.0:
            raise ValueError(f"noise must be a probability in [0, 1], got {noise}")
        self.env = env.unwrapped
        self.noise = float(noise)
        self.sighted = bool(sighted)
        self.rng = np.random.default_rng(seed)
        self._world: W.VoxelWorld | None = None
        self._new_episode()

    def _new_episode(self) -> None:
        self.target: tuple[int, int, int] | None = None
        self.last_column: tuple[int, int] | None = None  # (x, y) of the trunk being chopped
        self.target_ticks = 0
        self.skip: set[tuple[int, int, int]] = set()
        self.last_pos: np.ndarray | None = None
        self.stuck = 0
        self.escape: list[dict[str, Any]] = []  # queued escape manoeuvre (the expert's own actions)
        self.deviation: list[dict[str, Any]] = []  # queued random deviation (noise)

    # --- target choice ---------------------------------------------------------------------------

    def _reachable_from_below(self, cell: tuple[int, int, int]) -> bool:
        """A log is worth targeting if, standing on the ground under it, its bottom is in reach."""
        x, y, z = cell
        column = self.env.world.blocks[x, y, :z]
        solid = np.flatnonzero(column != W.AIR)
        ground = solid[-1] + 1 if solid.size else 0
        return z - (ground + physics.EYE_HEIGHT) < self.env.reach - 0.05

    def _in_view(self, centre: np.ndarray) -> np.ndarray:
        """Which log centres (n, 3) lie inside the frame (with a margin) and within sight distance."""
        env, agent = self.env, self.env.agent
        renderer = env.renderer
        tan_v = math.tan(math.radians(renderer.fov_deg) / 2)
        d = centre - agent.eye
        cam = d @ view_basis(agent.yaw, agent.pitch)  # (n, 3): forward, right, up
        fwd = np.maximum(cam[:, 0], 1e-9)
        return (
            (cam[:, 0] > 0.3)
            & (np.abs(cam[:, 1]) < _VIEW_MARGIN * tan_v * renderer.aspect * fwd)
            & (np.abs(cam[:, 2]) < _VIEW_MARGIN * tan_v * fwd)
            & (np.linalg.norm(d, axis=1) < min(_SIGHT_DISTANCE, renderer.view_distance))
        )

    def _line_of_sight(self, cell: tuple[int, int, int]) -> bool:
        """The ray from the eye to the cell's centre first hits a log (this one or its trunk's)."""
        eye = self.env.agent.eye
        delta = np.array(cell, np.float64) + 0.5 - eye
        dist = float(np.linalg.norm(delta))
        hit = self.env.world.raycast(eye, delta / dist, dist + 0.5)
        return hit is not None and hit[1] in W.LOG_BLOCKS

    def _pick_target(self) -> tuple[int, int, int] | None:
        blocks = self.env.world.blocks
        cells = np.argwhere(np.isin(blocks, _LOGS))
        if cells.size == 0:
            return None
        eye = self.env.agent.eye
        centre = cells + 0.5
        # horizontal walk first, then the lowest log of a trunk (chop bottom-up)
        cost = np.hypot(centre[:, 0] - eye[0], centre[:, 1] - eye[1]) + 0.3 * np.abs(centre[:, 2] - eye[2])
        if self.sighted:
            # what the camera shows, plus the rest of the trunk being chopped (the learner has
            # just seen it: its memory covers that)
            near_column = np.zeros(len(cells), bool)
            if self.last_column is not None:
                near_column = np.max(np.abs(cells[:, :2] - np.array(self.last_column)), axis=1) <= 1
            keep = near_column | self._in_view(centre)
            cells, cost, near_column = cells[keep], cost[keep], near_column[keep]
        for i in np.argsort(cost, kind="stable"):
            x, y, z = (int(c) for c in cells[i])
            cell = (x, y, z)
            if cell in self.skip or not self._reachable_from_below(cell):
                continue
            if self.sighted and not near_column[i] and not self._line_of_sight(cell):
                continue
            self.last_column = cell[:2]
            return cell
        return None

    def _scan(self, action: dict[str, Any]) -> dict[str, Any]:
        """No log in view (sighted expert): turn right at the largest bin, levelling the pitch."""
        action["camera"] = _snap_camera(-self.env.agent.pitch, _SCAN_YAW)
        self.last_column = None
        return action

    # --- acting ----------------------------------------------------------------------------------

    def __call__(self, obs: Any = None) -> dict[str, Any]:
        return self.act(obs)[0]

    def act(self, obs: Any = None, label: bool = False) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """(action to execute, label): the label is the expert's own action in this state, which
        differs from the executed one during a noise deviation (computed only when ``label``)."""
        env = self.env
        if env.world is not self._world or env.steps == 0:
            self._world = env.world
            self._new_episode()
        if self.escape:
            action = self.escape.pop(0)
            return action, action
        if not self.deviation and self.noise > 0 and self.rng.random() < self.noise:
            self._queue_noise()
        if self.deviation:
            return self.deviation.pop(0), self._intended() if label else None
        action = self._chop()
        return action, action

    def _intended(self) -> dict[str, Any]:
        """What the expert would do now, without acting: `_chop` on a copy of its state (the
        executed deviation must not advance its target, stuck or escape bookkeeping)."""
        ghost = copy.copy(self)
        ghost.skip, ghost.escape = set(self.skip), []
        ghost.last_pos = None if self.last_pos is None else self.last_pos.copy()
        ghost.rng = np.random.default_rng(0)  # the escape side draw must not consume the real stream
        return ghost._chop()

    def _chop(self) -> dict[str, Any]:
        env, agent = self.env, self.env.agent
        action = minerl_noop()
        if self.target is not None:
            x, y, z = self.target
            self.target_ticks += 1
            if env.world.blocks[x, y, z] not in W.LOG_BLOCKS or self.target_ticks > _GIVE_UP_TICKS:
                if self.target_ticks > _GIVE_UP_TICKS:
                    self.skip.add(self.target)
                self.target = None
        if self.target is None:
            self.target, self.target_ticks = self._pick_target(), 0
            if self.target is None:
                return self._scan(action) if self.sighted else action  # else: nothing left to chop
        eye = agent.eye
        aim = np.array(self.target, np.float64) + 0.5
        delta = aim - eye
        horiz = math.hypot(delta[0], delta[1])
        want_yaw = math.degrees(math.atan2(delta[0], delta[1])) if horiz > 0.15 else agent.yaw
        want_pitch = -math.degrees(math.atan2(delta[2], horiz))
        d_yaw = (want_yaw - agent.yaw + 180.0) % 360.0 - 180.0
        d_pitch = want_pitch - agent.pitch
        action["camera"] = _snap_camera(d_pitch, d_yaw)

        # what the crosshair sees now, and what a straight look at the target would hit
        seen = env.world.raycast(eye, agent.view_dir, env.reach)
        # margin: the snapped crosshair is up to ~0.3 degrees off the exact aim, and must still reach
        aim_hit = env.world.raycast(eye, delta / np.linalg.norm(delta), env.reach - _REACH_MARGIN)
        target_in_view = aim_hit is not None and (aim_hit[0] == self.target or aim_hit[1] in W.LEAF_BLOCKS)
        on_log = seen is not None and seen[1] in W.LOG_BLOCKS
        on_blocker = seen is not None and seen[1] in W.LEAF_BLOCKS and abs(d_yaw) < 20 and abs(d_pitch) < 20
        action["attack"] = int(on_log or (on_blocker and target_in_view))
        if action["attack"]:
            action["camera"][:] = 0  # hold still while breaking: progress resets on a new block

        if not target_in_view and abs(d_yaw) < 40:
            # walk toward the target column (under it when the log is above the eyes)
            action["forward"] = 1
            if horiz < 0.4:
                action["forward"] = 0
            self._avoid_obstacles(action)
        else:
            self.stuck, self.last_pos = 0, None
        return action

    def _avoid_obstacles(self, action: dict[str, Any]) -> None:
        """Jump at steps; when walking makes no progress, back off sideways for a few ticks."""
        agent, blocks = self.env.agent, self.env.world.blocks
        ahead = agent.pos + 0.7 * np.array(
            [math.sin(math.radians(agent.yaw)), math.cos(math.radians(agent.yaw)), 0.0]
        )
        cell = np.floor(ahead).astype(int)
        if blocks[cell[0], cell[1], cell[2]] != W.AIR or self.stuck >= 2:
            action["jump"] = 1
        pos = agent.pos.copy()
        if self.last_pos is not None and np.hypot(*(pos - self.last_pos)[:2]) < 0.02:
            self.stuck += 1
        else:
            self.stuck = 0
        self.last_pos = pos
        if self.stuck >= _STUCK_TICKS:
            side = "left" if self.rng.random() < 0.5 else "right"
            for _ in range(int(self.rng.integers(4, 12))):
                step = minerl_noop()
                step[side], step["jump"], step["back"] = 1, 1, 1
                self.escape.append(step)
            self.stuck = 0

    def _queue_noise(self) -> None:
        """A short random deviation (1-8 ticks): random keys and camera, for varied demonstrations."""
        for _ in range(int(self.rng.integers(1, 9))):
            step = minerl_noop()
            for key in ("forward", "back", "left", "right", "jump", "attack", "sprint"):
                step[key] = int(self.rng.random() < 0.25)
            step["camera"] = _snap_camera(*self.rng.uniform(-10, 10, 2))
            self.deviation.append(step)


def scripted_policy(env: Any, noise: float = 0.0, seed: int | None = None, sighted: bool = False) -> _Expert:
    """An expert for `VoxelTreechopEnv` (or a wrapper of it): returns ``obs -> MineRL action dict``.

    It walks to the nearest tree, aims at the trunk and chops, log after log. `noise` is the
    probability, per tick, of starting a short random deviation (for demonstration recording);
    `seed` seeds those deviations. `sighted` limits it to logs its camera shows (it scans when
    there are none): the demonstrator to imitate from pixels. The callable follows env resets;
    its ``act(obs, label=True)`` also returns the expert's own action during a deviation (DART labels).
    """
    return _Expert(env, noise, seed, sighted)


def expert_returns(
    env_kwargs: dict[str, Any],
    episodes: int,
    seed: int,
    noise: float = 0.0,
    pov_size: tuple[int, int] = (32, 32),
    env_id: str = "vpt_rl/VoxelTreechop-v0",
    sighted: bool = False,
) -> list[float]:
    """Returns of the scripted expert over ``episodes`` episodes (episode i reset with seed + i,
    its deviations seeded the same way when ``noise`` > 0), rendered at ``pov_size`` unless the kwargs give one (the
    policy's size, as in training): what benchmarks compare learned policies with."""
    import gymnasium

    returns = []
    for ep in range(episodes):
        env = gymnasium.make(env_id, **{"pov_size": tuple(pov_size), **env_kwargs})
        obs, _ = env.reset(seed=seed + ep)
        act = scripted_policy(env, noise=noise, seed=seed + ep if noise else None, sighted=sighted)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            total, done = total + float(reward), terminated or truncated
        env.close()
        returns.append(total)
    return returns
