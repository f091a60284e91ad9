"""`vpt_rl/VoxelTreechop-v0`: a small block world with MineRL 1.0's interface (docs/environments.md "The voxel world").

Observation: ``pov`` uint8 (H, W, 3) plus ``inventory`` (item -> int64 count). Action: MineRL
1.0's 24-key dict; missing keys are not pressed. Each step: turn the camera, move, then attack the
block under the crosshair (within `reach`); holding attack on the same block for its break ticks
breaks it and puts its drop in the inventory. Reward: item rewards from inventory increments
(`vpt_rl.envs.rewards.InventoryReward`, 1 per log by default). ``ESC`` terminates; the step limit
truncates. The whole env can be captured and restored exactly (`get_state` / `set_state`).
Knobs and defaults: docs/environments.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from vpt_rl.envs.actions import MINERL_ACTION_KEYS, minerl_action_space
from vpt_rl.envs.rewards import InventoryReward
from vpt_rl.envs.voxel import physics
from vpt_rl.envs.voxel import world as W
from vpt_rl.envs.voxel.render import Renderer
from vpt_rl.opencv import cv2

_BUTTONS = tuple(k for k in MINERL_ACTION_KEYS if k != "camera")
_STATE_VERSION = 1
MAX_DIRECT_RENDER_HEIGHT = 128  # pov sizes up to this tall are rendered directly (no resize)
DEFAULT_UPSCALED_HEIGHT = 72  # internal render height target when the pov is larger (72x128 for 360x640)


def default_render_size(pov_size: tuple[int, int]) -> tuple[int, int]:
    """Internal render size for a pov size: the pov itself up to 128 rows; otherwise pov / k for
    the smallest integer k that gives at most 72 rows and divides both sides (else rounded)."""
    h, w = pov_size
    if h <= MAX_DIRECT_RENDER_HEIGHT:
        return h, w
    k0 = math.ceil(h / DEFAULT_UPSCALED_HEIGHT)
    for k in range(k0, k0 + 8):
        if h % k == 0 and w % k == 0:
            return h // k, w // k
    return max(1, round(h / k0)), max(1, round(w / k0))


def _pressed(value: Any) -> bool:
    if isinstance(value, (bool, int, np.bool_, np.integer)):
        return bool(value)
    return bool(np.any(value))


class VoxelTreechopEnv(gymnasium.Env):
    """Procedural tree-chopping world seen in first person, with MineRL 1.0's spaces.

    Break ticks: logs take `log_break_ticks`, leaves 2, grass/dirt 3; stone, bedrock and the
    world's edge are unbreakable (`break_ticks` overrides by block name, None = unbreakable).
    With `keep_break_progress`, releasing attack or looking away keeps the progress on the last
    block (Minecraft resets it), which makes breaking easier for an untrained policy.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        pov_size: tuple[int, int] = (360, 640),
        render_size: tuple[int, int] | None = None,
        max_episode_steps: int = 1000,
        log_break_ticks: int = 8,
        reach: float = 4.5,
        reward_table: str | Mapping[str, Any] = "treechop",
        world_size: int = 64,
        tree_density: float = 0.012,
        terrain_amplitude: float = 2.5,
        trunk_height: tuple[int, int] = (4, 6),
        trunk_width: int = 1,
        birch_fraction: float = 0.3,
        trees_near_spawn: int = 2,
        spawn_facing_tree: bool = False,
        keep_break_progress: bool = False,
        break_ticks: Mapping[str, int | None] | None = None,
        view_distance: float = 20.0,
        fov: float = 70.0,
        crosshair: bool = True,
        render_mode: str | None = None,
    ) -> None:
        self.pov_size = (int(pov_size[0]), int(pov_size[1]))
        if min(self.pov_size) < 8:
            raise ValueError(f"pov_size must be at least 8x8, got {pov_size}")
        self.render_size = (
            default_render_size(self.pov_size)
            if render_size is None
            else (int(render_size[0]), int(render_size[1]))
        )
        if not (
            1 <= self.render_size[0] <= self.pov_size[0] and 1 <= self.render_size[1] <= self.pov_size[1]
        ):
            raise ValueError(
                f"render_size {render_size} must be positive and at most pov_size {self.pov_size}"
            )
        if max_episode_steps < 1 or log_break_ticks < 1 or not 0 < reach <= 16:
            raise ValueError(
                f"need max_episode_steps >= 1, log_break_ticks >= 1, 0 < reach <= 16; got "
                f"{max_episode_steps}, {log_break_ticks}, {reach}"
            )
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self.max_episode_steps = int(max_episode_steps)
        self.reach = float(reach)
        self.keep_break_progress = bool(keep_break_progress)
        self.crosshair = bool(crosshair)
        self.params = W.WorldParams(
            world_size=int(world_size),
            terrain_amplitude=float(terrain_amplitude),
            tree_density=float(tree_density),
            birch_fraction=float(birch_fraction),
            trunk_height=(int(trunk_height[0]), int(trunk_height[1])),
            trunk_width=int(trunk_width),
            trees_near_spawn=int(trees_near_spawn),
            spawn_facing_tree=bool(spawn_facing_tree),
        )
        self.params.validate()
        self.break_ticks = self._break_table(int(log_break_ticks), break_ticks)
        self.reward_fn = InventoryReward(reward_table)
        self.renderer = Renderer(*self.render_size, fov_deg=float(fov), view_distance=float(view_distance))

        self.action_space = minerl_action_space()
        item_space = spaces.Box(0, 2304, (), np.int64)
        self.observation_space = spaces.Dict(
            {
                "pov": spaces.Box(0, 255, (*self.pov_size, 3), np.uint8),
                "inventory": spaces.Dict({item: item_space for item in W.ITEMS}),
            }
        )
        # episode state (set by reset / set_state)
        self.world: W.VoxelWorld | None = None
        self.trunks: list[W.Trunk] = []
        self.agent = physics.Agent(np.zeros(3), np.zeros(3))
        self.inventory: dict[str, int] = dict.fromkeys(W.ITEMS, 0)
        self.break_cell: tuple[int, int, int] | None = None
        self.break_progress = 0
        self.steps = 0

    @staticmethod
    def _break_table(log_ticks: int, overrides: Mapping[str, int | None] | None) -> np.ndarray:
        """Ticks to break, indexed by block id (0 = unbreakable)."""
        ticks = {**W.DEFAULT_BREAK_TICKS, "oak_log": log_ticks, "birch_log": log_ticks}
        for name, value in (overrides or {}).items():
            if name not in W.BLOCK_NAMES or name in ("air", "barrier"):
                raise ValueError(
                    f"break_ticks: unknown or unbreakable-by-design block {name!r}; blocks: {W.BLOCK_NAMES[1:-1]}"
                )
            if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
                raise ValueError(f"break_ticks[{name!r}] must be a positive int or None, got {value!r}")
            ticks[name] = value
        return np.array([ticks.get(name) or 0 for name in W.BLOCK_NAMES], np.int64)

    # --- gymnasium API ---------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        """New world from the env's RNG (seeded by `seed`); returns (obs, info)."""
        super().reset(seed=seed)
        self.world, self.trunks, spawn, yaw = W.generate(self.np_random, self.params)
        self.agent = physics.Agent(spawn.astype(np.float64), np.zeros(3), yaw=yaw, pitch=0.0, on_ground=True)
        self.inventory = dict.fromkeys(W.ITEMS, 0)
        self.break_cell, self.break_progress, self.steps = None, 0, 0
        self.reward_fn.reset(self.inventory)
        return self.render_obs(), {}

    def step(self, action: Mapping[str, Any]) -> tuple[dict, float, bool, bool, dict]:
        """Apply one MineRL action dict; returns (obs, reward, terminated, truncated, info)."""
        if self.world is None:
            raise RuntimeError("VoxelTreechopEnv.step called before reset")
        keys, camera = self._parse(action)
        physics.turn(self.agent, camera[0], camera[1])
        physics.walk(
            self.world.blocks,
            self.agent,
            keys["forward"],
            keys["back"],
            keys["left"],
            keys["right"],
            keys["jump"],
            keys["sprint"],
            keys["sneak"],
        )
        broken = self._attack(keys["attack"])
        self.steps += 1
        reward = float(self.reward_fn.step(self.inventory))
        terminated = keys["ESC"]
        truncated = self.steps >= self.max_episode_steps and not terminated
        info = {"broken": broken} if broken else {}
        return self.render_obs(), reward, terminated, truncated, info

    def render(self) -> np.ndarray | None:
        """The current pov frame when ``render_mode="rgb_array"``."""
        return self.render_obs()["pov"] if self.render_mode == "rgb_array" else None

    # --- actions ---------------------------------------------------------------------------------

    @staticmethod
    def _parse(action: Mapping[str, Any]) -> tuple[dict[str, bool], np.ndarray]:
        if not isinstance(action, Mapping):
            raise TypeError(f"action must be a dict of MineRL keys, got {type(action).__name__}")
        unknown = set(action) - set(MINERL_ACTION_KEYS)
        if unknown:
            raise ValueError(
                f"unknown action keys {sorted(unknown)}; MineRL 1.0 keys: {list(MINERL_ACTION_KEYS)}"
            )
        keys = {k: _pressed(action[k]) if k in action else False for k in _BUTTONS}
        camera = np.zeros(2)
        if "camera" in action:
            camera = np.asarray(action["camera"], np.float64).reshape(-1)
            if camera.shape != (2,) or not np.all(np.isfinite(camera)):
                raise ValueError(
                    f"action['camera'] must be 2 finite numbers [pitch, yaw], got {action['camera']!r}"
                )
        return keys, camera

    def target(self) -> tuple[tuple[int, int, int], int] | None:
        """The (cell, block) under the crosshair within reach, or None."""
        hit = self._live_world().raycast(self.agent.eye, self.agent.view_dir, self.reach)
        return None if hit is None else (hit[0], hit[1])

    def _attack(self, attack: bool) -> str | None:
        """Advance breaking; returns the name of the block broken this tick, if any."""
        target = self.target() if attack else None
        ticks = 0 if target is None else int(self.break_ticks[target[1]])
        if target is None or ticks == 0:  # not attacking, nothing in reach, or unbreakable
            if not self.keep_break_progress:
                self.break_cell, self.break_progress = None, 0
            return None
        cell, block = target
        if cell != self.break_cell:
            self.break_cell, self.break_progress = cell, 0
        self.break_progress += 1
        if self.break_progress < ticks:
            return None
        self._live_world().set_block(*cell, W.AIR)
        self.break_cell, self.break_progress = None, 0
        drop = W.DROPS.get(block)
        if drop is not None:
            self.inventory[drop] = min(2304, self.inventory[drop] + 1)
        return W.BLOCK_NAMES[block]

    # --- observations ----------------------------------------------------------------------------

    def _live_world(self) -> W.VoxelWorld:
        """The current world; an error before the first reset."""
        if self.world is None:
            raise RuntimeError("VoxelTreechopEnv has no world yet: call reset first")
        return self.world

    def render_obs(self) -> dict[str, Any]:
        """The observation of the current state (fresh arrays)."""
        if self.world is None:
            raise RuntimeError("VoxelTreechopEnv has no world yet: call reset first")
        target, progress = None, 0.0
        if self.break_cell is not None and self.break_progress > 0:
            x, y, z = self.break_cell
            block = int(self.world.blocks[x, y, z])
            ticks = int(self.break_ticks[block])
            if ticks > 0:
                target = int(np.dot(self.break_cell, self.world.strides))
                progress = self.break_progress / ticks
        img = self.renderer.render(
            self.world, self.agent.eye, self.agent.yaw, self.agent.pitch, target, progress
        )
        if self.render_size != self.pov_size:
            img = cv2.resize(img, (self.pov_size[1], self.pov_size[0]), interpolation=cv2.INTER_NEAREST)
        if self.crosshair:
            _draw_crosshair(img)
        inventory = {item: np.array(count, np.int64) for item, count in self.inventory.items()}
        return {"pov": img, "inventory": inventory}

    # --- exact capture / restore -----------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        """Everything needed to continue bit-identically (picklable; arrays are copies)."""
        if self.world is None:
            raise RuntimeError("VoxelTreechopEnv.get_state called before reset")
        return {
            "version": _STATE_VERSION,
            "blocks": self.world.blocks.copy(),
            "trunks": [t.__dict__.copy() for t in self.trunks],
            "agent": self.agent.get_state(),
            "inventory": dict(self.inventory),
            "break_cell": self.break_cell,
            "break_progress": self.break_progress,
            "steps": self.steps,
            "reward": self.reward_fn.get_state(),
            "rng": self.np_random.bit_generator.state,
        }

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restore `get_state()` output; `render_obs()` then returns the current observation."""
        if not isinstance(state, Mapping) or state.get("version") != _STATE_VERSION:
            got = state.get("version") if isinstance(state, Mapping) else type(state).__name__
            raise ValueError(f"not a VoxelTreechopEnv state (version {_STATE_VERSION} expected, got {got!r})")
        blocks = np.asarray(state["blocks"])
        n = self.params.world_size + 2
        if blocks.dtype != np.int8 or blocks.ndim != 3 or blocks.shape[:2] != (n, n):
            raise ValueError(
                f"state blocks {blocks.dtype} {blocks.shape} do not fit world_size {self.params.world_size}"
            )
        if set(state["inventory"]) != set(W.ITEMS):
            raise ValueError(f"state inventory items {sorted(state['inventory'])} != {sorted(W.ITEMS)}")
        self.world = W.VoxelWorld(blocks.copy())
        self.trunks = [W.Trunk(**t) for t in state["trunks"]]
        self.agent = physics.Agent.from_state(state["agent"])
        self.inventory = {k: int(v) for k, v in state["inventory"].items()}
        cell = state["break_cell"]
        self.break_cell = None if cell is None else (int(cell[0]), int(cell[1]), int(cell[2]))
        self.break_progress = int(state["break_progress"])
        self.steps = int(state["steps"])
        self.reward_fn.set_state(state["reward"])
        rng = np.random.default_rng()
        rng.bit_generator.state = state["rng"]
        self.np_random = rng


def _draw_crosshair(img: np.ndarray) -> None:
    """Minecraft-style '+' in inverted colours at the centre (9 px at 360 rows, 3 px at 32)."""
    h, w = img.shape[:2]
    arm = max(1, round(h / 80))
    cy, cx = h // 2, w // 2
    img[cy, cx - arm : cx + arm + 1] = 255 - img[cy, cx - arm : cx + arm + 1]
    img[cy - arm : cy, cx] = 255 - img[cy - arm : cy, cx]
    img[cy + 1 : cy + arm + 1, cx] = 255 - img[cy + 1 : cy + arm + 1, cx]
