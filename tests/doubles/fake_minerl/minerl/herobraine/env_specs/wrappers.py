"""The inner wrappers MineRL 1.0's task specs put around the raw env (behaviour from the real
package, re-written here): episodes end *inside* the env, so the old gym `TimeLimit` around it
finds them already done at the step limit and writes ``info["TimeLimit.truncated"] = False``.

- `EndOnESC`: a BASALT episode ends when the action presses ESC; it reads ``action["ESC"]``
  (a missing key is a KeyError, as in the real wrapper).
- `TaskTimeout`: ends the episode after the task's step limit (BASALT and ObtainDiamondShovel).
- `DiamondShovelLadder`: ObtainDiamondShovel's own reward, paid the first time an item of each of
  its 13 rungs is in the inventory (items matched by explicit name lists); the episode ends when
  the diamond shovel is obtained or at the step limit (one wrapper does both); stepping after
  the end is an error.
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
    def step(self, action: dict) -> tuple[Any, float, bool, dict]:
        obs, reward, done, info = self.env.step(action)
        return obs, reward, done or bool(action["ESC"]), info


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
        self.max_steps = max_steps

    def reset(self) -> Any:
        self.paid = [False] * len(DIAMOND_SHOVEL_LADDER)
        self.over, self.steps = False, 0
        return self.env.reset()

    def step(self, action: dict) -> tuple[Any, float, bool, dict]:
        if self.over:
            raise RuntimeError("the episode has ended: reset before stepping again")
        obs, reward, done, info = self.env.step(action)
        self.steps += 1
        done = done or self.steps >= self.max_steps
        for i, (items, value) in enumerate(DIAMOND_SHOVEL_LADDER):
            if not self.paid[i] and any(obs["inventory"][k] > 0 for k in items):
                self.paid[i] = True
                reward += value
                done = done or i == len(DIAMOND_SHOVEL_LADDER) - 1
        self.over = done
        return obs, reward, done, info
