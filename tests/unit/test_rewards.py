"""Item rewards from inventory increments: tables, groups, caps, state, wrapper."""

from __future__ import annotations

import pickle

import gymnasium
import numpy as np
import pytest

from vpt_rl.envs.rewards import (
    TREECHOP_TABLE,
    VPT_DIAMOND_TABLE,
    InventoryReward,
    ItemRewardWrapper,
    reward_table,
)


def test_vpt_diamond_table_values():
    expected = {
        "log": (1 / 8, 8),
        "planks": (1 / 20, 20),
        "stick": (1 / 16, 16),
        "crafting_table": (1, 1),
        "wooden_pickaxe": (1, 1),
        "cobblestone": (1 / 11, 11),
        "stone_pickaxe": (1, 1),
        "furnace": (1, 1),
        "coal": (2 / 5, 5),
        "torch": (1 / 8, 16),
        "iron_ore": (4 / 3, 3),
        "iron_ingot": (4 / 3, 3),
        "iron_pickaxe": (4, 1),
        "diamond": (8 / 3, None),
        "diamond_pickaxe": (8, None),
    }
    assert VPT_DIAMOND_TABLE == expected
    assert TREECHOP_TABLE == {"log": (1.0, None)}
    assert reward_table("vpt_diamond") == expected
    assert reward_table("treechop") is not TREECHOP_TABLE  # a copy: callers cannot mutate the preset


def test_reward_table_accepts_forms_and_rejects_bad_entries():
    table = reward_table({"log": 2, "stick": [0.5, 3], "dirt": {"reward": 1.0, "cap": 2}, "sand": (1, None)})
    assert table == {"log": (2.0, None), "stick": (0.5, 3), "dirt": (1.0, 2), "sand": (1.0, None)}
    with pytest.raises(ValueError, match="unknown reward table 'diamonds'"):
        reward_table("diamonds")
    with pytest.raises(ValueError, match="'stick': cap"):
        reward_table({"stick": [1.0, 0]})
    with pytest.raises(ValueError, match="'stick': cap"):
        reward_table({"stick": [1.0, 2.5]})
    with pytest.raises(ValueError, match="'coal': reward"):
        reward_table({"coal": "a lot"})
    with pytest.raises(ValueError, match="'coal': reward"):
        reward_table({"coal": float("nan")})
    with pytest.raises(ValueError, match="'coal': expected"):
        reward_table({"coal": [1, 2, 3]})
    with pytest.raises(ValueError, match="'coal': expected keys"):
        reward_table({"coal": {"rewrd": 1}})
    with pytest.raises(ValueError, match="count twice"):
        reward_table({"log": 1, "oak_log": 1})
    with pytest.raises(ValueError, match="empty"):
        reward_table({})
    with pytest.raises(TypeError):
        reward_table(3)


def test_groups_sum_every_member():
    r = InventoryReward("vpt_diamond")
    r.reset({})
    assert r.step({"oak_log": 1, "birch_log": np.array(2), "stick": 0}) == pytest.approx(3 / 8)
    assert r.step({"oak_log": 1, "birch_log": 2, "spruce_planks": np.array([4])}) == pytest.approx(4 / 20)
    assert r.counts({"oak_log": 1, "birch_log": 2, "dirt": 9})["log"] == 3


def test_caps_count_items_rewarded_and_consumption_does_not_stop_pay():
    r = InventoryReward("vpt_diamond")
    r.reset({})
    assert r.step({"oak_log": 5}) == pytest.approx(5 / 8)
    # crafting consumes logs; new logs obtained afterwards still pay until 8 have been paid
    assert r.step({"oak_log": 1, "oak_planks": 16}) == pytest.approx(16 / 20)
    assert r.step({"oak_log": 7, "oak_planks": 16}) == pytest.approx(
        3 / 8
    )  # 6 obtained, 3 left under the cap
    assert r.step({"oak_log": 9, "oak_planks": 16}) == 0.0
    assert r.items_rewarded["log"] == 8
    assert r.step({"crafting_table": 1}) == pytest.approx(1.0)
    assert r.step({"crafting_table": 0}) == 0.0  # placed
    assert r.step({"crafting_table": 1}) == 0.0  # picked up again: capped at 1


def test_uncapped_pays_every_rise():
    """VPT's scheme (as DreamerV3 reproduces it): every increase of an uncapped item's count pays."""
    r = InventoryReward("vpt_diamond")
    r.reset({})
    assert r.step({"diamond": 2}) == pytest.approx(16 / 3)
    assert r.step({"diamond": 1}) == 0.0  # dropped one
    assert r.step({"diamond": 2}) == pytest.approx(8 / 3)  # picked it up again: a rise pays
    assert r.step({"diamond": 5}) == pytest.approx(8.0)
    assert r.step({"diamond_pickaxe": 1, "diamond": 2}) == pytest.approx(8.0)
    assert r.items_rewarded["diamond"] == 6 and r.items_rewarded["diamond_pickaxe"] == 1
    tree = InventoryReward(TREECHOP_TABLE)
    tree.reset({})
    assert sum(tree.step({"log": n}) for n in range(1, 101)) == pytest.approx(100.0)


def test_diamonds_mined_after_three_went_into_a_pickaxe_are_paid():
    """Regression: paying only above the highest count seen missed these diamonds."""
    r = InventoryReward("vpt_diamond")
    r.reset({})
    assert r.step({"diamond": 3}) == pytest.approx(3 * 8 / 3)
    assert r.step({"diamond": 0, "diamond_pickaxe": 1}) == pytest.approx(8.0)  # crafted
    assert r.step({"diamond": 1, "diamond_pickaxe": 1}) == pytest.approx(8 / 3)
    assert r.step({"diamond": 2, "diamond_pickaxe": 1}) == pytest.approx(8 / 3)
    assert r.items_rewarded["diamond"] == 5


def test_a_capped_item_stops_paying_at_its_cap_of_paid_increases():
    """Caps count paid increases, not the count held: iron ore (cap 3) smelted away and mined
    again pays until three ores have been paid, then never again in the episode."""
    r = InventoryReward("vpt_diamond")
    r.reset({})
    assert r.step({"iron_ore": 2}) == pytest.approx(2 * 4 / 3)
    assert r.step({"iron_ore": 0, "iron_ingot": 2}) == pytest.approx(2 * 4 / 3)  # smelted
    assert r.step({"iron_ore": 2, "iron_ingot": 2}) == pytest.approx(4 / 3)  # one left under the cap
    assert r.step({"iron_ore": 0, "iron_ingot": 4}) == pytest.approx(4 / 3)  # ingots: 3 paid, cap 3
    assert r.step({"iron_ore": 1, "iron_ingot": 4}) == 0.0
    assert r.items_rewarded["iron_ore"] == 3 and r.items_rewarded["iron_ingot"] == 3
    r.reset({"iron_ore": 1})  # a new episode: caps start again
    assert r.step({"iron_ore": 2}) == pytest.approx(4 / 3)


def test_reset_baseline_and_missing_items():
    r = InventoryReward("treechop")
    r.reset({"oak_log": 3})
    assert r.step({"oak_log": 3}) == 0.0
    assert r.step({"oak_log": 4}) == 1.0
    assert r.step({}) == 0.0
    r.reset({})
    assert r.step({"oak_log": 1}) == 1.0
    with pytest.raises(TypeError, match="inventory"):
        r.step([1, 2])


def test_state_round_trip():
    r = InventoryReward("vpt_diamond")
    r.reset({})
    r.step({"oak_log": 6, "diamond": 3})
    r.step({"oak_log": 2, "diamond": 1})
    state = pickle.loads(pickle.dumps(r.get_state()))
    assert set(state) == {"last", "paid"}
    later = [{"oak_log": 5, "diamond": 4}, {"oak_log": 9, "diamond": 6}]
    expected = [r.step(inv) for inv in later]
    fresh = InventoryReward("vpt_diamond")
    fresh.set_state(state)
    assert [fresh.step(inv) for inv in later] == expected
    assert expected[0] == pytest.approx(2 / 8 + 3 * 8 / 3)  # 2 logs under the cap, 3 diamonds
    # a state saved by the old high-water-mark counting still loads (its "high" is ignored)
    old = {**state, "high": dict.fromkeys(state["last"], 0)}
    InventoryReward("vpt_diamond").set_state(old)
    with pytest.raises(ValueError, match="'paid'"):
        InventoryReward("treechop").set_state({"last": {"log": 0}, "paid": {}})


class FakeInventoryEnv(gymnasium.Env):
    """Each step adds `action` oak logs; reward from the env itself is a constant 5 (ignored)."""

    observation_space = gymnasium.spaces.Dict(
        {"inventory": gymnasium.spaces.Dict({"oak_log": gymnasium.spaces.Box(0, 2304, (), np.float32)})}
    )
    action_space = gymnasium.spaces.Discrete(3)

    def __init__(self, with_state: bool = True):
        self.logs = 0
        if with_state:
            self.get_state = lambda: self.logs
            self.set_state = self._set_state

    def _set_state(self, logs):
        self.logs = logs
        return self._obs()

    def _obs(self):
        return {"inventory": {"oak_log": np.array(self.logs, dtype=np.float32)}}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.logs = 0
        return self._obs(), {}

    def step(self, action):
        self.logs += int(action)
        return self._obs(), 5.0, False, False, {"x": 1}


def test_wrapper_replaces_reward_and_reports_items():
    env = ItemRewardWrapper(FakeInventoryEnv(), "treechop")
    obs, info = env.reset(seed=0)
    assert info["items"] == {"log": 0}
    rewards = []
    for action in (2, 0, 1):
        obs, reward, terminated, truncated, info = env.step(action)
        rewards.append(reward)
    assert rewards == [2.0, 0.0, 1.0]
    assert info == {"x": 1, "items": {"log": 3}}


def test_wrapper_state_and_unsupported_env():
    env = ItemRewardWrapper(FakeInventoryEnv(), "treechop")
    env.reset()
    env.step(2)
    assert env.supports_state
    state = env.get_state()
    other = ItemRewardWrapper(FakeInventoryEnv(), "treechop")
    other.reset()
    other.set_state(state)
    assert other.step(1)[1] == env.step(1)[1] == 1.0
    bare = ItemRewardWrapper(FakeInventoryEnv(with_state=False), "treechop")
    assert not bare.supports_state
    with pytest.raises(NotImplementedError, match="get_state"):
        bare.get_state()


def test_wrapper_needs_inventory():
    class PovOnly(FakeInventoryEnv):
        def _obs(self):
            return {"pov": np.zeros((2, 2, 3), np.uint8)}

    with pytest.raises(KeyError, match=r"obs\['inventory'\].*\['pov'\]"):
        ItemRewardWrapper(PovOnly(), "treechop").reset()


def test_log_and_planks_groups_are_the_six_overworld_woods_only():
    """Explicit lists, as MineRL's own ladder: stripped logs (made from an already
    counted log) and nether planks do not pay; every overworld wood does."""
    from vpt_rl.envs.rewards import ITEM_GROUPS, InventoryReward

    assert ITEM_GROUPS["log"] == {
        f"{w}_log" for w in ("acacia", "birch", "dark_oak", "jungle", "oak", "spruce")
    }
    r = InventoryReward({"log": 1.0, "planks": 10.0})
    r.reset({})
    inv = {"stripped_oak_log": 1, "crimson_planks": 4, "warped_planks": 4, "crimson_stem": 1}
    assert r.step(inv) == 0.0
    inv.update({"dark_oak_log": 1, "jungle_planks": 2})
    assert r.step(inv) == 1.0 + 20.0
