"""The agent's body: camera turns, walking, gravity, jumping and collision against blocks.

Units are blocks and ticks (MineRL runs 20 ticks per second). Constants follow Minecraft's
player: 0.6 x 0.6 x 1.8 box, eyes 1.62 above the feet, walking 4.317 blocks/s, sprinting x1.3,
sneaking x0.3, jump impulse 0.42 with gravity 0.08 and drag 0.98 per tick (a ~1.25 block jump, so
one-block steps need a jump). Simplifications, documented in docs/environments.md: horizontal
velocity follows the keys at once (no inertia), sneaking only slows (it does not stop you at edges).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

EYE_HEIGHT = 1.62
HALF_WIDTH = 0.3
BODY_HEIGHT = 1.8
WALK_SPEED = 4.317 / 20  # blocks per tick
SPRINT_FACTOR = 1.3
SNEAK_FACTOR = 0.3
JUMP_VELOCITY = 0.42
GRAVITY = 0.08
DRAG = 0.98
_GAP = 1e-6  # kept between the body and a block it touches
_MAX_SUBSTEP = 0.45  # longest move checked at once (less than a block: no tunnelling when falling)


@dataclass
class Agent:
    """Pose and motion. ``pos`` is the centre of the feet; yaw 0 looks along +y and grows turning
    right (toward +x); pitch > 0 looks down (MineRL's camera convention), clamped to +-90."""

    pos: np.ndarray
    vel: np.ndarray
    yaw: float = 0.0
    pitch: float = 0.0
    on_ground: bool = False

    @property
    def eye(self) -> np.ndarray:
        """Eye position (3,)."""
        return self.pos + np.array([0.0, 0.0, EYE_HEIGHT])

    @property
    def view_dir(self) -> np.ndarray:
        """Unit vector the crosshair points along."""
        y, p = math.radians(self.yaw), math.radians(self.pitch)
        return np.array([math.sin(y) * math.cos(p), math.cos(y) * math.cos(p), -math.sin(p)])

    def get_state(self) -> dict:
        """Plain-python copy (picklable, exact)."""
        return {
            "pos": [float(v) for v in self.pos],
            "vel": [float(v) for v in self.vel],
            "yaw": float(self.yaw),
            "pitch": float(self.pitch),
            "on_ground": bool(self.on_ground),
        }

    @classmethod
    def from_state(cls, state: dict) -> Agent:
        """Inverse of `get_state`."""
        return cls(
            np.array(state["pos"], np.float64),
            np.array(state["vel"], np.float64),
            float(state["yaw"]),
            float(state["pitch"]),
            bool(state["on_ground"]),
        )


def turn(agent: Agent, d_pitch: float, d_yaw: float) -> None:
    """Apply a MineRL camera action [pitch, yaw] in degrees; pitch clamped to +-90, yaw wrapped."""
    agent.pitch = min(90.0, max(-90.0, agent.pitch + float(d_pitch)))
    agent.yaw = (agent.yaw + float(d_yaw) + 180.0) % 360.0 - 180.0


def _blocked(blocks: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> bool:
    """Whether any non-air cell overlaps the open box (lo, hi)."""
    i0, j0, k0 = (math.floor(v) for v in lo)
    i1, j1, k1 = (math.ceil(v) for v in hi)
    return bool(blocks[i0:i1, j0:j1, k0:k1].any())


def _move_axis(blocks: np.ndarray, agent: Agent, axis: int, delta: float) -> bool:
    """Move along one axis, stopping at the first block face in the way; True if stopped."""
    size = np.array([HALF_WIDTH, HALF_WIDTH, 0.0])
    top = np.array([HALF_WIDTH, HALF_WIDTH, BODY_HEIGHT])
    remaining = delta
    while remaining != 0.0:
        step = max(-_MAX_SUBSTEP, min(_MAX_SUBSTEP, remaining))
        lo, hi = agent.pos - size, agent.pos + top
        if step > 0:
            lead = hi[axis] + step
            lo_new, hi_new = lo.copy(), hi.copy()
            lo_new[axis], hi_new[axis] = hi[axis], lead
            if _blocked(blocks, lo_new, hi_new):
                face = math.ceil(hi[axis] - 1e-9)  # the block face just beyond the body
                agent.pos[axis] = (
                    face - top[axis] - _GAP if face - hi[axis] < step else agent.pos[axis] + step
                )
                return True
        else:
            lead = lo[axis] + step
            lo_new, hi_new = lo.copy(), hi.copy()
            lo_new[axis], hi_new[axis] = lead, lo[axis]
            if _blocked(blocks, lo_new, hi_new):
                face = math.floor(lo[axis] + 1e-9)
                agent.pos[axis] = (
                    face + size[axis] + _GAP if lo[axis] - face < -step else agent.pos[axis] + step
                )
                return True
        agent.pos[axis] += step
        remaining -= step
    return False


def walk(
    blocks: np.ndarray,
    agent: Agent,
    forward: bool,
    back: bool,
    left: bool,
    right: bool,
    jump: bool,
    sprint: bool,
    sneak: bool,
) -> None:
    """One tick of movement: keys set the horizontal velocity, jump starts a jump from the ground,
    gravity pulls; each axis moves until it meets a block (vertical first, as Minecraft)."""
    fwd, side = float(forward) - float(back), float(right) - float(left)
    speed = WALK_SPEED
    if sprint and fwd > 0 and not sneak:
        speed *= SPRINT_FACTOR
    if sneak:
        speed *= SNEAK_FACTOR
    norm = math.hypot(fwd, side)
    if norm > 0:
        fwd, side = fwd / norm * speed, side / norm * speed  # diagonal is not faster
    y = math.radians(agent.yaw)
    agent.vel[0] = fwd * math.sin(y) + side * math.cos(y)
    agent.vel[1] = fwd * math.cos(y) - side * math.sin(y)
    if jump and agent.on_ground:
        agent.vel[2] = JUMP_VELOCITY
    stopped_z = _move_axis(blocks, agent, 2, agent.vel[2])
    agent.on_ground = stopped_z and agent.vel[2] < 0
    if stopped_z:
        agent.vel[2] = 0.0
    for axis in (0, 1):
        if agent.vel[axis] != 0.0:
            _move_axis(blocks, agent, axis, agent.vel[axis])
    agent.vel[2] = (agent.vel[2] - GRAVITY) * DRAG


def body_overlaps(blocks: np.ndarray, pos: np.ndarray) -> bool:
    """Whether a body with feet at `pos` would overlap a non-air block (spawn checks, tests)."""
    lo = pos - np.array([HALF_WIDTH, HALF_WIDTH, 0.0])
    hi = pos + np.array([HALF_WIDTH, HALF_WIDTH, BODY_HEIGHT])
    return _blocked(blocks, lo + 1e-9, hi - 1e-9)
