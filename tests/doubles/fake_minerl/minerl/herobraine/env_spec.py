"""EnvSpec: a task description whose `make()` builds the env (here the fake simulator)."""

from __future__ import annotations

from typing import Any


class EnvSpec:
    def __init__(self, name: str, max_episode_steps: int | None = None, **kwargs: Any) -> None:
        if kwargs:
            raise TypeError(f"unexpected EnvSpec kwargs: {sorted(kwargs)}")
        self.name = name
        self.max_episode_steps = max_episode_steps

    # what the fake simulator reads
    has_inventory = False
    has_survival_extras = False
    esc_ends_episode = False
    reward_ladder: dict[str, float] = {}

    def make(self, **kwargs: Any):
        from minerl.env._singleagent import _SingleAgentEnv

        return _SingleAgentEnv(env_spec=self, **kwargs)
