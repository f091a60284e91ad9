"""Small gymnasium envs for the pool and wrapper tests.

They live in an importable module (``doubles.fake_envs``; ``tests/`` is on sys.path through
tests/conftest.py) because EnvPool's worker processes unpickle their factories by name.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

IMG_SHAPE = (4, 4, 3)


class CountingEnv(gymnasium.Env):
    """Deterministic for a seed: the frame is filled with a value that depends on the RNG and the
    actions; the episode terminates after `episode_len` steps.

    `fail_mode` ("raise", "hang", "exit", "spawn_child_and_hang") makes the env fail at its
    `fail_at`-th step since construction, i.e. again in every new process after that many steps.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        episode_len: int = 5,
        fail_mode: str | None = None,
        fail_at: int = 0,
        img_shape: tuple[int, int, int] = IMG_SHAPE,
    ) -> None:
        self.img_shape = tuple(img_shape)
        self.observation_space = spaces.Dict({"img": spaces.Box(0, 255, self.img_shape, np.uint8)})
        self.action_space = spaces.Dict({"buttons": spaces.Discrete(10), "camera": spaces.Discrete(5)})
        self.episode_len = episode_len
        self.fail_mode = fail_mode
        self.fail_at = fail_at
        self.steps_since_built = 0
        self.t = 0
        self.value = 0

    def _obs(self) -> dict[str, np.ndarray]:
        return {"img": np.full(self.img_shape, self.value, dtype=np.uint8)}

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        self.t = 0
        self.value = int(self.np_random.integers(0, 200))
        return self._obs(), {"t": self.t, "pid": os.getpid()}

    def step(self, action: dict) -> tuple[dict, float, bool, bool, dict]:
        self.steps_since_built += 1
        if self.fail_mode is not None and self.steps_since_built == self.fail_at:
            self._fail()
        self.t += 1
        buttons, camera = int(action["buttons"]), int(action["camera"])
        self.value = (self.value + buttons + 10 * camera + int(self.np_random.integers(0, 7))) % 256
        reward = float(buttons) + 0.5 * camera
        terminated = self.t >= self.episode_len
        return self._obs(), reward, terminated, False, {"t": self.t, "pid": os.getpid()}

    def _fail(self) -> None:
        if self.fail_mode == "raise":
            raise ValueError(f"boom at step {self.steps_since_built}")
        if self.fail_mode == "hang":
            time.sleep(120)
        if self.fail_mode == "exit":
            os._exit(3)
        if self.fail_mode == "spawn_child_and_hang":
            # Like MineRL: a worker with its own child process (Minecraft's Java client).
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
            Path(os.environ["FAKE_ENV_CHILD_PID_FILE"]).write_text(str(child.pid))
            time.sleep(120)


class StatefulEnv(CountingEnv):
    """CountingEnv that can capture and restore itself (like the voxel world)."""

    def get_state(self) -> dict[str, Any]:
        return {"t": self.t, "value": self.value, "rng": self.np_random.bit_generator.state}

    def set_state(self, state: dict[str, Any]) -> None:
        self.t, self.value = state["t"], state["value"]
        self.np_random.bit_generator.state = state["rng"]

    def render_obs(self) -> dict[str, np.ndarray]:
        return self._obs()


class BrokenOnRebuildEnv(CountingEnv):
    """Raises at step `fail_at`, and in every construction after the first (marker file), so a
    restart can never succeed."""

    def __init__(self, marker: str, fail_at: int = 2) -> None:
        if Path(marker).exists():
            raise RuntimeError("cannot rebuild this env")
        Path(marker).write_text("built")
        super().__init__(episode_len=100, fail_mode="raise", fail_at=fail_at)


def make_counting(**kwargs: Any) -> CountingEnv:
    return CountingEnv(**kwargs)


def make_stateful(**kwargs: Any) -> StatefulEnv:
    return StatefulEnv(**kwargs)


def make_broken_on_rebuild(marker: str) -> BrokenOnRebuildEnv:
    return BrokenOnRebuildEnv(marker)


def make_failing_constructor() -> gymnasium.Env:
    raise OSError("no display (fake)")


class FakeMineRLEnv(gymnasium.Env):
    """A tiny stand-in for a MineRL-interface env (the voxel world's contract): ``pov`` +
    ``inventory`` observations, the 24-key action space; attacking adds a log every 3 steps."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, pov_size: tuple[int, int] = (36, 64), with_state: bool = True) -> None:
        from vpt_rl.envs.actions import minerl_action_space

        self.pov_size = tuple(pov_size)
        self.items = ("oak_log", "dirt")
        self.observation_space = spaces.Dict(
            {
                "pov": spaces.Box(0, 255, (*self.pov_size, 3), np.uint8),
                "inventory": spaces.Dict({k: spaces.Box(0, 2304, (), np.int64) for k in self.items}),
            }
        )
        self.action_space = minerl_action_space()
        self.last_action: dict | None = None
        self.inventory = dict.fromkeys(self.items, 0)
        self.attacks = 0
        if not with_state:
            self.get_state = None  # type: ignore[assignment]

    def _obs(self) -> dict[str, Any]:
        h, w = self.pov_size
        pov = (np.arange(h * w * 3, dtype=np.int64).reshape(h, w, 3) * 7 + self.attacks) % 256
        inv = {k: np.array(v, dtype=np.int64) for k, v in self.inventory.items()}
        return {"pov": pov.astype(np.uint8), "inventory": inv}

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        self.inventory = dict.fromkeys(self.items, 0)
        self.attacks = 0
        return self._obs(), {}

    def step(self, action: dict) -> tuple[dict, float, bool, bool, dict]:
        self.last_action = action
        if action.get("attack", 0):
            self.attacks += 1
            if self.attacks % 3 == 0:
                self.inventory["oak_log"] += 1
        return self._obs(), 0.0, bool(action.get("ESC", 0)), False, {"attacks": self.attacks}

    def get_state(self) -> dict[str, Any]:
        return {"inventory": dict(self.inventory), "attacks": self.attacks}

    def set_state(self, state: dict[str, Any]) -> None:
        self.inventory, self.attacks = dict(state["inventory"]), state["attacks"]

    def render_obs(self) -> dict[str, Any]:
        return self._obs()


FAKE_MINERL_ID = "FakeMineRL-v0"
if FAKE_MINERL_ID not in gymnasium.registry:
    # used as "doubles.fake_envs:FakeMineRL-v0", so gymnasium imports this module in each worker
    gymnasium.register(FAKE_MINERL_ID, entry_point="doubles.fake_envs:FakeMineRLEnv")
