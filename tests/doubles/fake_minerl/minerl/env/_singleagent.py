"""The fake simulator behind every fake spec: an old-gym env with MineRL 1.0's spaces.

`attack` collects a log every 4 steps (oak and birch in turn); `forward` picks up dirt every 2
steps; `give(item)` is a test hook standing for everything else a player can obtain. The frame is
noise seeded by `seed()` (called before `reset`, as in MineRL) plus the step count in the first
row, so tests can see that seeds and steps arrive.

Real behaviours reproduced (issue 11): the seed is used by one `reset` and then cleared (the next
unseeded reset is a new world); `pov` is a read-only view with a negative stride (MineRL flips
the frame it reads from the renderer's buffer); inventory counts are int32; HumanSurvival's info
carries `isGuiOpen` and a nested `location_stats`; the raw env never ends an episode by itself
(the spec's inner wrappers do: `minerl.herobraine.env_specs.wrappers`).
"""

from __future__ import annotations

from typing import Any

import gym
import numpy as np

from minerl.herobraine.hero import mc
from minerl.herobraine.hero import spaces as hs

_BUTTONS = [
    "ESC",
    "attack",
    "back",
    "drop",
    "forward",
    *[f"hotbar.{i}" for i in range(1, 10)],
    "inventory",
    "jump",
    "left",
    "pickItem",
    "right",
    "sneak",
    "sprint",
    "swapHands",
    "use",
]


def action_space() -> hs.Dict:
    space = {k: hs.Discrete(2) for k in _BUTTONS}
    space["camera"] = hs.Box(-180.0, 180.0, (2,), np.float32)
    return hs.Dict(space)


class _SingleAgentEnv(gym.Env):
    def __init__(self, env_spec: Any) -> None:
        self.task = env_spec
        width, height = env_spec.resolution
        obs = {"pov": hs.Box(0, 255, (height, width, 3), np.uint8)}
        if env_spec.has_inventory:
            obs["inventory"] = hs.Dict({k: hs.Box(0, 2304, (), np.int32) for k in mc.ALL_ITEMS})
        if env_spec.has_survival_extras:
            obs["life_stats"] = hs.Dict({k: hs.Box(0, 1000, (), np.float32) for k in ("air", "food", "life")})
            obs["location_stats"] = hs.Dict({k: hs.Box(-1e6, 1e6, (), np.float64) for k in ("pitch", "yaw")})
        self.observation_space = hs.Dict(obs)
        self.action_space = action_space()
        self._seed: int | None = None
        self.done = True
        self.closed = False
        self.actions: list[dict] = []  # every action received, for the tests

    def seed(self, seed: int | None = None, seed_spaces: bool = True) -> None:
        assert isinstance(seed, int) or seed is None, "Seed must be an int!"
        self._seed = seed

    def _obs(self) -> dict[str, Any]:
        frame = self._frame.copy()
        frame[0, :8, 0] = np.frombuffer(np.int64(self._steps).tobytes(), np.uint8)
        # as the real env: bytes from the renderer, flipped upside down -> read-only, stride < 0
        buffer = np.frombuffer(frame[::-1].tobytes(), np.uint8).reshape(frame.shape)
        obs: dict[str, Any] = {"pov": buffer[::-1]}
        if self.task.has_inventory:
            obs["inventory"] = {k: np.array(self._inventory.get(k, 0), dtype=np.int32) for k in mc.ALL_ITEMS}
        if self.task.has_survival_extras:
            obs["life_stats"] = {"air": np.float32(300), "food": np.float32(20), "life": np.float32(20)}
            obs["location_stats"] = {"pitch": np.float64(0.0), "yaw": np.float64(0.0)}
        return obs

    def reset(self) -> dict[str, Any]:
        rng = np.random.default_rng(self._seed)
        self._seed = None  # as the real env: a seed serves one reset; the next world is random
        shape = self.observation_space["pov"].shape
        self._frame = rng.integers(0, 256, shape, dtype=np.uint8)
        self._steps, self._attacks, self._forwards = 0, 0, 0
        self._inventory: dict[str, int] = {}
        self.done = False
        return self._obs()

    def give(self, item: str, n: int = 1) -> None:
        """Test hook: put items in the inventory, as mining or crafting would in the game."""
        self._inventory[item] = self._inventory.get(item, 0) + n

    def step(self, action: dict[str, Any]) -> tuple[dict[str, Any], float, bool, dict]:
        if self.done:
            raise RuntimeError("Attempted to step an environment server with done=True")
        self.actions.append(action)
        self._steps += 1
        camera = np.asarray(action.get("camera", (0.0, 0.0)), dtype=np.float32).reshape(2)
        assert np.all(np.abs(camera) <= 180.0)
        if action.get("attack", 0):
            self._attacks += 1
            if self._attacks % 4 == 0:
                log = "oak_log" if (self._attacks // 4) % 2 else "birch_log"
                self._inventory[log] = self._inventory.get(log, 0) + 1
        if action.get("forward", 0):
            self._forwards += 1
            if self._forwards % 2 == 0:
                self._inventory["dirt"] = self._inventory.get("dirt", 0) + 1
        reward = 0.0  # MineRL 1.0's reward handlers return 0 (minerl #742)
        info: dict[str, Any] = {}
        if self.task.has_survival_extras:  # HumanSurvival's monitors (the real info has more)
            info = {
                "isGuiOpen": bool(action.get("inventory", 0)),
                "location_stats": {
                    "xpos": 0.5,
                    "ypos": 64.0,
                    "zpos": 0.5 + self._forwards,
                    "pitch": 0.0,
                    "yaw": 0.0,
                },
            }
        return self._obs(), reward, False, info

    def close(self) -> None:
        self.closed = True
