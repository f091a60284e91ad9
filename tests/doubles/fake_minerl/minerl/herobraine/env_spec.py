"""EnvSpec: a task description whose `make()` builds the env (here the fake simulator).

As the real one, it silently drops keyword arguments it does not know (a misspelt setting, or
``frameskip``, which MineRL's Python never reads, is not an error)."""

from __future__ import annotations

from typing import Any


class EnvSpec:
    def __init__(self, name: str, max_episode_steps: int | None = None, **kwargs: Any) -> None:
        del kwargs  # dropped without a word, as in MineRL 1.0.2
        self.name = name
        self.max_episode_steps = max_episode_steps

    # what the fake simulator reads
    has_inventory = False
    has_survival_extras = False
    esc_ends_episode = False
    diamond_shovel_ladder = False

    def make(self, **kwargs: Any):
        """The raw env inside the task's own wrappers (`env_specs.wrappers`). Building it launches
        nothing: Minecraft starts at the first `reset`."""
        from minerl.env._singleagent import _SingleAgentEnv
        from minerl.herobraine.env_specs import wrappers

        env = _SingleAgentEnv(env_spec=self, **kwargs)
        if self.diamond_shovel_ladder:
            return wrappers.DiamondShovelLadder(env, self.max_episode_steps)
        if self.max_episode_steps is not None:
            env = wrappers.TaskTimeout(env, self.max_episode_steps)
        if self.esc_ends_episode:
            env = wrappers.EndOnESC(env)  # outermost: it refuses a step after any end
        return env
