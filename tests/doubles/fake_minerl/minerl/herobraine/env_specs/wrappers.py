"""The inner wrappers MineRL 1.0's task specs put around the raw env (behaviour from the real
package, re-written here): episodes end *inside* the env, so the old gym `TimeLimit` around it
finds them already done at the step limit and writes ``info["TimeLimit.truncated"] = False``.

- `TaskTimeout`: ends a BASALT episode after the task's step limit.
- `EndOnESC`: a BASALT episode ends when the action presses ESC; it reads ``action["ESC"]``
  (a missing key is a KeyError, as in the real wrapper). It is the outer one and refuses a step
  after any end (ESC, the timeout, a death) with a RuntimeError.
- `DiamondShovelLadder`: ObtainDiamondShovel's own reward, paid the first time an item of each of
  its 13 rungs is in the inventory (items matched by explicit name lists); the episode ends when
  the diamond shovel is obtained or at the step limit (one wrapper does both); stepping after
  the end is an error. **Its `reset` does not zero `num_steps`**, the counter it compares with the
  limit (MineRL 1.0.2's bug, reproduced): after an episode that ran to the limit, every later
  episode on the same env object ends on its first step.
"""

from __future__ import annotations

from typing import Any

import gym

WOOD = ("acacia", "birch", "dark_oak", "jungle", "oak", "spruce")
#: (item names, reward) per rung, in order; the last rung ends the episode
DIAMOND_SHOVEL_LADDER: list[tuple[tuple[str, ...], float]] = [
    (tuple(f"{w}_log" for w in WOOD), 1.0),
    (tuple(f"{w}_planks" for w in WOOD), 2.0),
    (("stick",), 4.0),
    (("crafting_table",), 4.0),
    (("wooden_pickaxe",), 8.0),
    (("cobblestone",), 16.0),
    (("furnace",), 32.0),
    (("stone_pickaxe",), 32.0),
    (("iron_ore",), 64.0),
    (("iron_ingot",), 128.0),
    (("iron_pickaxe",), 256.0),
    (("diamond",), 1024.0),
    (("diamond_shovel",), 2048.0),
]


class EndOnESC(gym.Wrapper):
    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.episode_over = False

    def reset(self) -> Any:
        self.episode_over = False
        return self.env.reset()

    def step(self, action: dict) -> tuple[Any, float, bool, dict]:
        if self.episode_over:
            raise RuntimeError("the episode has ended: reset before stepping again")
        obs, reward, done, info = self.env.step(action)
        done = done or bool(action["ESC"])
        self.episode_over = done
        return obs, reward, done, info


class TaskTimeout(gym.Wrapper):
    def __init__(self, env: gym.Env, max_steps: int) -> None:
        super().__init__(env)
        self.max_steps, self.steps = max_steps, 0

    def reset(self) -> Any:
        self.steps = 0
        return self.env.reset()

    def step(self, action: dict) -> tuple[Any, float, bool, dict]:
        obs, reward, done, info = self.env.step(action)
        self.steps += 1
        return obs, reward, done or self.steps >= self.max_steps, info


class DiamondShovelLadder(gym.Wrapper):
    def __init__(self, env: gym.Env, max_steps: int) -> None:
        super().__init__(env)
        self.timeout = max_steps
        self.num_steps = 0
        self.paid = [False] * len(DIAMOND_SHOVEL_LADDER)
        self.episode_over = False

    def reset(self) -> Any:
        self.paid = [False] * len(DIAMOND_SHOVEL_LADDER)
        self.episode_over = False  # ... but not `num_steps`: the real wrapper's bug
        return self.env.reset()

    def step(self, action: dict) -> tuple[Any, float, bool, dict]:
        if self.episode_over:
            raise RuntimeError("the episode has ended: reset before stepping again")
        obs, reward, done, info = self.env.step(action)
        for i, (items, value) in enumerate(DIAMOND_SHOVEL_LADDER):
            if not self.paid[i] and any(obs["inventory"][k] > 0 for k in items):
                self.paid[i] = True
                reward += value
                done = done or i == len(DIAMOND_SHOVEL_LADDER) - 1
        self.num_steps += 1
        done = done or self.num_steps >= self.timeout
        self.episode_over = done
        return obs, reward, done, info
