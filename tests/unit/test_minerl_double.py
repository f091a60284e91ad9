"""The double of MineRL 1.0.2 (tests/doubles/fake_minerl) on its own: facts about real MineRL that
it reproduces, quirks and bugs included, with no vpt_rl adapter in between (see
docs/minerl_facts.md). The adapter's own behaviour against the double is in test_minerl_adapter.py and
test_minerl_quirks.py.

Real MineRL needs JDK 8, a Minecraft build and a display, so it is not exercised here.
"""

from __future__ import annotations

import minerl_helpers  # tests/unit, on sys.path under pytest's default import mode
import numpy as np
import pytest

from vpt_rl.envs.actions import minerl_noop
from vpt_rl.envs.minerl import VPT_ENV_KWARGS

fake_minerl = minerl_helpers.fake_minerl  # the fixture, for the tests below


def test_double_clears_its_seed_like_real_minerl(fake_minerl):
    from minerl.herobraine.env_specs.human_survival_specs import HumanSurvival

    raw = HumanSurvival(**VPT_ENV_KWARGS).make()
    raw.seed(5)
    first = raw.reset()["pov"].copy()
    assert not np.array_equal(raw.reset()["pov"], first)  # unseeded: a new random world
    raw.seed(5)
    np.testing.assert_array_equal(raw.reset()["pov"], first)


def test_double_never_resets_the_obtain_diamond_shovel_step_counter(fake_minerl, monkeypatch):
    """MineRL 1.0.2's ObtainDiamondShovel wrapper zeroes neither its step counter at reset: after
    an episode run to the limit, every later episode ends on its first step (no TimeLimit key)."""
    import gym
    from minerl.herobraine.env_specs import obtain_specs

    monkeypatch.setattr(obtain_specs.ObtainDiamondShovelEnvSpec, "steps", 3)
    monkeypatch.setitem(gym.registry["MineRLObtainDiamondShovel-v0"], "max_episode_steps", 3)
    raw = gym.make("MineRLObtainDiamondShovel-v0")
    raw.reset()
    dones = [raw.step(minerl_noop())[2:4] for _ in range(3)]
    assert dones == [(False, {}), (False, {}), (True, {"TimeLimit.truncated": False})]
    for _ in range(2):
        raw.reset()
        assert raw.step(minerl_noop())[2:4] == (True, {})  # a 1-step episode


def test_double_raises_after_done_like_real_minerl(fake_minerl):
    import gym
    import minerl  # noqa: F401 -- registers the ids

    raw = gym.make("MineRLBasaltFindCave-v0")
    raw.reset()
    assert raw.step({**minerl_noop(), "ESC": 1})[2]
    with pytest.raises(RuntimeError):
        raw.step(minerl_noop())


def test_gym_make_wraps_time_limit_around_order_enforcing_and_refuses_a_step_before_reset(fake_minerl):
    import gym
    import minerl  # noqa: F401 -- registers the ids

    raw = gym.make("MineRLBasaltFindCave-v0")
    assert (type(raw).__name__, type(raw.env).__name__) == ("TimeLimit", "OrderEnforcing")
    with pytest.raises(AssertionError, match=r"Cannot call env.step\(\) before calling reset\(\)"):
        raw.step(minerl_noop())
    survival = gym.make("MineRLHumanSurvival-v0")  # no step limit: no TimeLimit
    assert type(survival).__name__ == "OrderEnforcing"
    with pytest.raises(gym.error.ResetNeeded, match=r"Cannot call env.step\(\) before calling reset\(\)"):
        survival.step(minerl_noop())
