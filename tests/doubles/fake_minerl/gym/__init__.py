"""Fake of the old `gym` (0.23.1) API that MineRL 1.0 runs on: `Env`, `Wrapper`, `register`,
`make`, 4-tuple `step`, no seed in `reset`.

As gym 0.23.1's `make`: the env is wrapped in `OrderEnforcing` and then, where the id has
`max_episode_steps`, in `TimeLimit` (so `TimeLimit(OrderEnforcing(env))`); both refuse a step
before the first reset with "Cannot call env.step() before calling reset()" (the outer
`TimeLimit` asserts first). `TimeLimit` writes ``info["TimeLimit.truncated"] = not done`` on the
limit step only.
"""

from __future__ import annotations

import importlib
from typing import Any

from gym import spaces  # noqa: F401 -- `gym.spaces` as in the real package

__version__ = "0.23.1"


class error:  # noqa: N801 -- `gym.error.*` as in the real package
    class Error(Exception):
        pass

    class UnregisteredEnv(Error):
        pass

    class ResetNeeded(Error):
        pass


class Env:
    """Old gym env: reset() -> obs; step(a) -> (obs, reward, done, info); seed() separately."""

    observation_space: Any = None
    action_space: Any = None

    def reset(self) -> Any:
        raise NotImplementedError

    def step(self, action: Any) -> tuple[Any, float, bool, dict]:
        raise NotImplementedError

    def seed(self, seed: int | None = None) -> list:
        return []

    def close(self) -> None:
        pass

    @property
    def unwrapped(self) -> Env:
        return self


class Wrapper(Env):
    def __init__(self, env: Env) -> None:
        self.env = env
        self.observation_space = env.observation_space
        self.action_space = env.action_space

    def reset(self) -> Any:
        return self.env.reset()

    def step(self, action: Any) -> tuple[Any, float, bool, dict]:
        return self.env.step(action)

    def seed(self, seed: int | None = None) -> list:
        return self.env.seed(seed)

    def close(self) -> None:
        self.env.close()

    @property
    def unwrapped(self) -> Env:
        return self.env.unwrapped

    def __getattr__(self, name: str) -> Any:  # old gym forwards attributes
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.env, name)


class OrderEnforcing(Wrapper):
    def __init__(self, env: Env) -> None:
        super().__init__(env)
        self._has_reset = False

    def reset(self) -> Any:
        self._has_reset = True
        return self.env.reset()

    def step(self, action: Any) -> tuple[Any, float, bool, dict]:
        if not self._has_reset:
            raise error.ResetNeeded("Cannot call env.step() before calling reset()")
        return self.env.step(action)


class TimeLimit(Wrapper):
    def __init__(self, env: Env, max_episode_steps: int) -> None:
        super().__init__(env)
        self._max_episode_steps = max_episode_steps
        self._elapsed_steps: int | None = None

    def reset(self) -> Any:
        self._elapsed_steps = 0
        return self.env.reset()

    def step(self, action: Any) -> tuple[Any, float, bool, dict]:
        assert self._elapsed_steps is not None, "Cannot call env.step() before calling reset()"
        obs, reward, done, info = self.env.step(action)
        self._elapsed_steps += 1
        if self._elapsed_steps >= self._max_episode_steps:
            info["TimeLimit.truncated"] = not done
            done = True
        return obs, reward, done, info


registry: dict[str, dict[str, Any]] = {}


def register(
    id: str, entry_point: str, kwargs: dict | None = None, max_episode_steps: int | None = None
) -> None:  # noqa: A002
    registry[id] = {
        "entry_point": entry_point,
        "kwargs": kwargs or {},
        "max_episode_steps": max_episode_steps,
    }


def make(id: str, **kwargs: Any) -> Env:  # noqa: A002
    if id not in registry:
        raise error.UnregisteredEnv(f"No registered env with id: {id}")
    spec = registry[id]
    module, name = spec["entry_point"].split(":")
    env = getattr(importlib.import_module(module), name)(**{**spec["kwargs"], **kwargs})
    env = OrderEnforcing(env)
    if spec["max_episode_steps"] is not None:
        env = TimeLimit(env, spec["max_episode_steps"])
    return env
