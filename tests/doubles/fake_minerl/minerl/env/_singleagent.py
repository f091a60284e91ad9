"""The fake simulator behind every fake spec: an old-gym env with MineRL 1.0's spaces.

`attack` collects a log every 4 steps (oak and birch in turn); `forward` picks up dirt every 2
steps; `give(item)` is a test hook standing for everything else a player can obtain, `die()` for
a death, `break_connection(where)` for a lost socket. The frame is noise seeded by `seed()`
(called before `reset`, as in MineRL) plus the step count in the first row, so tests can see that
seeds and steps arrive.

Real behaviours reproduced (docs/environments.md "Real MineRL 1.0"):
- building the env launches nothing; the first `reset` starts "Minecraft" (`instances`);
- `seed()` asserts a Python int (a numpy integer fails), seeds the spaces too, and the seed is
  used by one `reset` and then cleared (the next unseeded reset is a new world);
- `pov` is writable, made with ``np.frombuffer`` from a copy of the renderer's bytes and flipped
  upside down: strides ``(-3 * width, 3, 1)``;
- inventory counts are int32;
- the raw env ends an episode by itself only when the player dies (`done`, the flag it keeps
  until the next reset); stepping after that raises RuntimeError; step limits, ESC and the
  diamond shovel are the spec's inner wrappers (`minerl.herobraine.env_specs.wrappers`);
- HumanSurvival's info carries `isGuiOpen` and `location_stats` (14 keys, 0-d numpy values);
  the other tasks' info is ``{}``;
- a lost connection on the client side answers with a random observation, ``done=True`` and
  ``info["error"]``; on the server side it raises TypeError (MineRL's cleanup call is missing an
  argument) instead.
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
#: HumanSurvival's location_stats, the 14 keys of MineRL 1.0
LOCATION_KEYS = (
    "biome_id",
    "biome_rainfall",
    "biome_temperature",
    "can_see_sky",
    "is_raining",
    "light_level",
    "pitch",
    "sea_level",
    "sky_light_level",
    "sun_brightness",
    "xpos",
    "yaw",
    "ypos",
    "zpos",
)
LIFE_KEYS = ("air", "food", "is_alive", "life", "saturation", "score", "xp")


def action_space() -> hs.Dict:
    space = {k: hs.Discrete(2) for k in _BUTTONS}
    space["camera"] = hs.Box(-180.0, 180.0, (2,), np.float32)
    return hs.Dict(space)


class _FakeInstance:
    """Stands for one launched Minecraft client (a Java process in the real package)."""

    running = True


class _SingleAgentEnv(gym.Env):
    def __init__(self, env_spec: Any) -> None:
        self.task = env_spec
        width, height = env_spec.resolution
        obs = {"pov": hs.Box(0, 255, (height, width, 3), np.uint8)}
        if env_spec.has_inventory:
            obs["inventory"] = hs.Dict({k: hs.Box(0, 2304, (), np.int32) for k in mc.ALL_ITEMS})
        if env_spec.has_survival_extras:
            obs["life_stats"] = hs.Dict({k: hs.Box(0, 1000, (), np.float32) for k in LIFE_KEYS})
            obs["location_stats"] = hs.Dict({k: hs.Box(-1e6, 1e6, (), np.float64) for k in LOCATION_KEYS})
        self.observation_space = hs.Dict(obs)
        self.action_space = action_space()
        self._seed: int | None = None
        self.instances: list[_FakeInstance] = []  # nothing launched until the first reset
        # no `done` yet: as the real env, it is set by reset (a step before reset fails)
        self.closed = False
        self.actions: list[dict] = []  # every action received, for the tests
        self._dies_next = False
        self._broken: str | None = None

    def seed(self, seed: int | None = None, seed_spaces: bool = True) -> None:
        assert isinstance(seed, int) or seed is None, "Seed must be an int!"
        self._seed = seed
        if seed_spaces:
            self.observation_space.seed(seed)
            self.action_space.seed(seed)

    def _obs(self) -> dict[str, Any]:
        frame = self._frame.copy()
        frame[0, :8, 0] = np.frombuffer(np.int64(self._steps).tobytes(), np.uint8)
        # as the real env: a writable array over a copy of the renderer's bytes (bottom row first),
        # flipped upside down -> writable, row stride negative
        rendered = np.array(frame[::-1].tobytes())
        buffer = np.frombuffer(rendered, np.uint8).reshape(frame.shape)
        obs: dict[str, Any] = {"pov": buffer[::-1]}
        if self.task.has_inventory:
            obs["inventory"] = {k: np.array(self._inventory.get(k, 0), dtype=np.int32) for k in mc.ALL_ITEMS}
        if self.task.has_survival_extras:
            alive = not self.done
            obs["life_stats"] = {
                k: np.array(v, np.float32)
                for k, v in zip(LIFE_KEYS, (300, 20, alive, 20 if alive else 0, 5, 0, 0))
            }
            obs["location_stats"] = self._location()
        return obs

    def _location(self) -> dict[str, np.ndarray]:
        values = dict.fromkeys(LOCATION_KEYS, 0.0)
        values.update(xpos=0.5, ypos=64.0, zpos=0.5 + self._forwards, sea_level=63.0, light_level=15.0)
        return {k: np.array(v, dtype=np.float64) for k, v in values.items()}

    def reset(self) -> dict[str, Any]:
        if not self.instances:
            self.instances.append(_FakeInstance())  # "Minecraft" starts at the first reset
        try:
            rng = np.random.default_rng(self._seed)
            shape = self.observation_space["pov"].shape
            self._frame = rng.integers(0, 256, shape, dtype=np.uint8)
            self._steps, self._attacks, self._forwards = 0, 0, 0
            self._inventory: dict[str, int] = {}
            self.done = False
            self._dies_next, self._broken = False, None
            return self._obs()
        finally:
            self._seed = None  # as the real env: a seed serves one reset; the next world is random

    def give(self, item: str, n: int = 1) -> None:
        """Test hook: put items in the inventory, as mining or crafting would in the game."""
        self._inventory[item] = self._inventory.get(item, 0) + n

    def die(self) -> None:
        """Test hook: the player dies during the next step (the game ends the episode)."""
        self._dies_next = True

    def break_connection(self, where: str) -> None:
        """Test hook: the next step loses the connection, on the "client" or the "server" side."""
        assert where in ("client", "server")
        self._broken = where

    def step(self, action: dict[str, Any]) -> tuple[dict[str, Any], float, bool, dict]:
        if self.done:
            raise RuntimeError("Attempted to step an environment server with done=True")
        self.actions.append(action)
        if self._broken == "server":
            raise TypeError("_clean_connection() missing 1 required positional argument: 'instance'")
        if self._broken == "client":
            self.done = True
            return self._obs(), 0.0, True, {"error": "Connection timed out!"}
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
        self.done = self._dies_next
        reward = 0.0  # MineRL 1.0's reward handlers return 0 (minerl #742)
        info: dict[str, Any] = {}
        if self.task.has_survival_extras:  # HumanSurvival's monitors
            info = {"isGuiOpen": bool(action.get("inventory", 0)), "location_stats": self._location()}
        return self._obs(), reward, self.done, info

    def close(self) -> None:
        self.closed = True
        for instance in self.instances:
            instance.running = False
