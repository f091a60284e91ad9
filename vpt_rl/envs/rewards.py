"""Item rewards computed from inventory increments, the way VPT's RL fine-tuning rewards them.

Why this exists: MineRL 1.0's own reward handlers always return 0 (minerl issue #742), so VPT
computes rewards in Python from the inventory. The same code rewards the built-in voxel world.

A table maps an item (or item group) to ``(reward per item, cap or None)``. ``log`` groups the six
overworld logs and ``planks`` the six overworld planks (acacia, birch, dark oak, jungle, oak,
spruce: docs/environments.md "Real MineRL 1.0", and the explicit lists of MineRL 1.0's own
ObtainDiamondShovel ladder); all other names match exactly. Deliberately not in the groups:
stripped logs, which an axe makes from a log that was already counted (paying them would pay
one log twice), and the nether's crimson/warped stems and planks, which the VPT diamond recipe
never needs.

Counting rule, per group (VPT's scheme, as DreamerV3's reproduction of the VPT diamond reward
counts it; docs/environments.md "Episode and reward"): every rise of the group's count pays, one
reward per item obtained, until ``cap`` items have been paid in the episode; an uncapped group
(``cap`` None: diamond and diamond_pickaxe in VPT's table) pays every rise. Items consumed by
crafting (logs -> planks -> sticks, diamonds -> a pickaxe) therefore do not stop the pay for
items obtained afterwards, which a high-water mark would; the cap bounds what dropping and
picking up again can farm (uncapped groups can be farmed that way, as in VPT's scheme, whose
released config caps them at 10,000). Items present at ``reset`` are a baseline and pay nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import gymnasium
import numpy as np

#: item or group name -> (reward per item, cap on the number of items rewarded, or None)
RewardTable = dict[str, tuple[float, int | None]]

WOOD_TYPES = ("acacia", "birch", "dark_oak", "jungle", "oak", "spruce")
#: group name -> its member items (explicit lists; see the module docstring)
ITEM_GROUPS: dict[str, frozenset[str]] = {
    "log": frozenset(f"{w}_log" for w in WOOD_TYPES),
    "planks": frozenset(f"{w}_planks" for w in WOOD_TYPES),
}

TREECHOP_TABLE: RewardTable = {"log": (1.0, None)}

# why: the reward table of VPT's diamond-pickaxe RL fine-tuning (VPT paper, RL section)
VPT_DIAMOND_TABLE: RewardTable = {
    "log": (1 / 8, 8),
    "planks": (1 / 20, 20),
    "stick": (1 / 16, 16),
    "crafting_table": (1.0, 1),
    "wooden_pickaxe": (1.0, 1),
    "cobblestone": (1 / 11, 11),
    "stone_pickaxe": (1.0, 1),
    "furnace": (1.0, 1),
    "coal": (2 / 5, 5),
    "torch": (1 / 8, 16),
    "iron_ore": (4 / 3, 3),
    "iron_ingot": (4 / 3, 3),
    "iron_pickaxe": (4.0, 1),
    "diamond": (8 / 3, None),
    "diamond_pickaxe": (8.0, None),
}

TABLE_PRESETS: dict[str, RewardTable] = {"treechop": TREECHOP_TABLE, "vpt_diamond": VPT_DIAMOND_TABLE}


def _entry(item: Any, value: Any) -> tuple[float, int | None]:
    """Normalise one table entry: a number, ``[reward, cap]`` or ``{"reward": r, "cap": c}``."""
    if not isinstance(item, str) or not item:
        raise ValueError(f"reward table keys must be non-empty item names, got {item!r}")
    if isinstance(value, Mapping):
        unknown = set(value) - {"reward", "cap"}
        if unknown or "reward" not in value:
            raise ValueError(
                f"reward table item {item!r}: expected keys 'reward' and optional 'cap', got {sorted(value)}"
            )
        reward, cap = value["reward"], value.get("cap")
    elif isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(f"reward table item {item!r}: expected [reward, cap], got {value!r}")
        reward, cap = value
    else:
        reward, cap = value, None
    if isinstance(reward, bool) or not isinstance(reward, (int, float)) or not math.isfinite(reward):
        raise ValueError(f"reward table item {item!r}: reward must be a finite number, got {reward!r}")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, (int, np.integer)) or cap < 1):
        raise ValueError(f"reward table item {item!r}: cap must be a positive integer or None, got {cap!r}")
    return float(reward), None if cap is None else int(cap)


def reward_table(name_or_dict: str | Mapping[str, Any]) -> RewardTable:
    """Resolve a preset name ("treechop", "vpt_diamond") or validate a table dict.

    Entries may be a number (uncapped reward per item), ``[reward, cap]``, ``(reward, cap)`` or
    ``{"reward": r, "cap": c}``; errors name the offending item.
    """
    if isinstance(name_or_dict, str):
        if name_or_dict not in TABLE_PRESETS:
            raise ValueError(f"unknown reward table {name_or_dict!r}; presets: {sorted(TABLE_PRESETS)}")
        return dict(TABLE_PRESETS[name_or_dict])
    if not isinstance(name_or_dict, Mapping):
        raise TypeError(f"reward table must be a preset name or a dict, got {type(name_or_dict).__name__}")
    table = {item: _entry(item, value) for item, value in name_or_dict.items()}
    if not table:
        raise ValueError("reward table is empty")
    for group, members in ITEM_GROUPS.items():
        overlap = sorted(k for k in table if k in members)
        if group in table and overlap:
            raise ValueError(
                f"reward table has group {group!r} and its members {overlap}: an item would count twice"
            )
    return table


def _count(value: Any) -> int:
    return int(value) if isinstance(value, (int, np.integer)) else int(np.asarray(value).sum())


class InventoryReward:
    """Reward from inventory increments with per-group caps (see the module docstring)."""

    def __init__(self, table: str | Mapping[str, Any]) -> None:
        self.table = reward_table(table)
        self._group_of: dict[str, str | None] = {}  # item name -> group, cached
        self._last = dict.fromkeys(self.table, 0)  # group count at the previous call
        self._paid = dict.fromkeys(self.table, 0)  # items rewarded since reset

    def _group(self, item: str) -> str | None:
        if item not in self._group_of:
            group = item if item in self.table else None
            for name, members in ITEM_GROUPS.items():
                if group is None and name in self.table and item in members:
                    group = name
            self._group_of[item] = group
        return self._group_of[item]

    def counts(self, inventory: Mapping[str, Any]) -> dict[str, int]:
        """Group counts of an inventory dict (item -> count; numpy scalars or arrays allowed)."""
        if not isinstance(inventory, Mapping):
            raise TypeError(f"inventory must be a dict of item -> count, got {type(inventory).__name__}")
        totals = dict.fromkeys(self.table, 0)
        for item, value in inventory.items():
            group = self._group(item)
            if group is not None:
                totals[group] += _count(value)
        return totals

    def reset(self, inventory: Mapping[str, Any]) -> None:
        """Start an episode; items already held are the baseline and pay nothing."""
        self._last = self.counts(inventory)
        self._paid = dict.fromkeys(self.table, 0)

    def step(self, inventory: Mapping[str, Any]) -> float:
        """Reward for the items obtained since the previous call."""
        reward = 0.0
        for group, count in self.counts(inventory).items():
            per_item, cap = self.table[group]
            new = max(0, count - self._last[group])
            if cap is not None:
                new = min(new, cap - self._paid[group])
            self._last[group] = count
            if new:
                self._paid[group] += new
                reward += per_item * new
        return reward

    @property
    def items_rewarded(self) -> dict[str, int]:
        """Items rewarded per group since reset."""
        return dict(self._paid)

    def get_state(self) -> dict[str, dict[str, int]]:
        """Counters as plain dicts (picklable, for exact resume): the count at the previous step
        and the items paid, per group."""
        return {"last": dict(self._last), "paid": dict(self._paid)}

    def set_state(self, state: Mapping[str, Mapping[str, int]]) -> None:
        """Restore counters from ``get_state()``; the groups must match this table. (A "high"
        entry, the high-water mark that older versions kept, is ignored.)"""
        for key in ("last", "paid"):
            if key not in state or set(state[key]) != set(self.table):
                got = sorted(state[key]) if key in state else None
                raise ValueError(
                    f"reward state {key!r} must have the table's groups {sorted(self.table)}, got {got}"
                )
        self._last, self._paid = ({g: int(v) for g, v in state[k].items()} for k in ("last", "paid"))


class ItemRewardWrapper(gymnasium.Wrapper):
    """Replace an env's reward by the item reward of ``obs["inventory"]``.

    ``info["items"]`` holds the items rewarded per group since reset.
    """

    def __init__(self, env: gymnasium.Env, table: str | Mapping[str, Any]) -> None:
        super().__init__(env)
        self.item_reward = InventoryReward(table)

    def _inventory(self, obs: Any) -> Mapping[str, Any]:
        if not isinstance(obs, Mapping) or "inventory" not in obs:
            keys = sorted(obs) if isinstance(obs, Mapping) else type(obs).__name__
            raise KeyError(
                f"ItemRewardWrapper needs obs['inventory'] (a dict of item counts); obs has {keys}"
            )
        return obs["inventory"]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.item_reward.reset(self._inventory(obs))
        return obs, {**info, "items": self.item_reward.items_rewarded}

    def step(self, action: Any):
        obs, _, terminated, truncated, info = self.env.step(action)
        reward = self.item_reward.step(self._inventory(obs))
        return obs, reward, terminated, truncated, {**info, "items": self.item_reward.items_rewarded}

    def _inner(self, name: str):
        try:
            return self.env.get_wrapper_attr(name)
        except AttributeError:
            return None

    @property
    def supports_state(self) -> bool:
        """True when the wrapped env can save and restore its own state."""
        return self._inner("get_state") is not None and self._inner("set_state") is not None

    def get_state(self) -> dict[str, Any]:
        """The inner env's state plus the reward counters."""
        if not self.supports_state:
            raise NotImplementedError(
                f"{self.env} has no get_state/set_state, so it cannot be restored exactly"
            )
        return {"env": self._inner("get_state")(), "reward": self.item_reward.get_state()}

    def set_state(self, state: Mapping[str, Any]) -> Any:
        """Restore what ``get_state`` returned; returns whatever the inner ``set_state`` returns."""
        if not self.supports_state:
            raise NotImplementedError(
                f"{self.env} has no get_state/set_state, so it cannot be restored exactly"
            )
        self.item_reward.set_state(state["reward"])
        return self._inner("set_state")(state["env"])
