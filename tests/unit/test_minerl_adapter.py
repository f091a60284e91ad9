"""Our MineRL 1.0 adapter (vpt_rl/envs/minerl.py) against a faithful double of the MineRL API
(tests/doubles/fake_minerl): what the adapter builds, converts, checks and refuses, MineRL 1.0.2's quirks
the adapter handles are in test_minerl_quirks.py; what the double itself reproduces of MineRL is in
test_minerl_double.py.

Real MineRL needs JDK 8, a Minecraft build and a display, so it is not exercised here.
"""

from __future__ import annotations

import sys

import minerl_helpers  # tests/unit, on sys.path under pytest's default import mode
import numpy as np
import pytest

from vpt_rl.envs.actions import MINERL_ACTION_KEYS, NULL_CAMERA, env_to_policy, minerl_noop
from vpt_rl.envs.factory import make_env
from vpt_rl.envs.minerl import (
    INSTALL_HELP,
    STEP_LIMITS,
    VPT_ENV_KWARGS,
    MineRLEnv,
    MineRLSettingsError,
    check_settings,
    make_minerl_env,
)
from vpt_rl.envs.rewards import VPT_DIAMOND_TABLE, ItemRewardWrapper

fake_minerl = minerl_helpers.fake_minerl  # the fixture, for the tests below

BASALT_IDS = [k for k in STEP_LIMITS if "Basalt" in k]
SHOVEL = "MineRLObtainDiamondShovel-v0"


def _attack() -> dict:
    return {"attack": 1, "camera": np.zeros(2, np.float32)}


def test_missing_minerl_raises_install_instructions(monkeypatch):
    monkeypatch.setitem(sys.modules, "minerl", None)  # `import minerl` now raises ImportError
    with pytest.raises(ImportError) as info:
        make_minerl_env("MineRLHumanSurvival-v0")
    message = str(info.value)
    assert "pip install git+https://github.com/minerllabs/minerl@v1.0.2" in message
    assert "JDK 8" in message and "xvfb" in message
    assert message == INSTALL_HELP


def test_unknown_id_is_named():
    with pytest.raises(ValueError, match="unsupported MineRL env id 'MineRLTreechop-v0'"):
        make_minerl_env("MineRLTreechop-v0")


def test_human_survival_reset_and_step_conversion(fake_minerl):
    env = make_minerl_env("MineRLHumanSurvival-v0")
    try:
        assert env.unwrapped.raw_env.task.fov_range == [70, 70]  # built with VPT's settings
        assert env.observation_space["pov"].shape == (360, 640, 3)
        assert env.observation_space["pov"].dtype == np.uint8
        assert len(env.observation_space["inventory"]) == 976
        assert set(env.action_space) == set(MINERL_ACTION_KEYS)
        obs, info = env.reset(seed=3)
        assert info == {}
        assert set(obs) == {"pov", "inventory"}  # life_stats, location_stats ... dropped
        assert obs in env.observation_space
        for _ in range(4):
            obs, reward, terminated, truncated, info = env.step(_attack())
        assert obs in env.observation_space
        assert obs["inventory"]["oak_log"] == 1 and obs["inventory"]["oak_log"].dtype == np.int64  # widened
        assert env.raw_env.observation_space["inventory"]["oak_log"].dtype == np.int32  # MineRL's own
        assert info["isGuiOpen"] is False and info["location_stats"]["ypos"] == 64.0  # passed through
        assert (reward, terminated, truncated) == (0.0, False, False)  # no reward, no step limit
        # keys missing from an action are sent as not pressed; MineRL gets all 24
        sent = env.raw_env.actions[-1]
        assert set(sent) == set(MINERL_ACTION_KEYS)
        assert sent["attack"] == 1 and sent["ESC"] == 0 and sent["camera"].dtype == np.float32
    finally:
        env.close()
    assert env.raw_env.closed


def test_seed_reaches_minerl_before_reset_and_every_world_is_seeded(fake_minerl):
    """Real MineRL uses a seed for one reset and then forgets it; the adapter seeds every reset
    (a plain reset() with a draw from its own RNG), so a seeded run starts from the same worlds."""
    env = make_minerl_env("MineRLHumanSurvival-v0", inventory=False)
    try:
        assert set(env.observation_space) == {"pov"}
        a, _ = env.reset(seed=5)
        assert env.raw_env._seed is None  # the double, as the real env, cleared it
        next_a, _ = env.reset()
        b, _ = env.reset(seed=6)
        c, _ = env.reset(seed=5)
        next_c, _ = env.reset()
        assert not np.array_equal(a["pov"], b["pov"])
        np.testing.assert_array_equal(a["pov"], c["pov"])
        assert not np.array_equal(next_a["pov"], a["pov"])  # a new world, not seed 5 again
        np.testing.assert_array_equal(next_a["pov"], next_c["pov"])  # ... the same new world
    finally:
        env.close()


def test_pov_writable_flipped_in_minerl_contiguous_copy_from_the_adapter(fake_minerl):
    """Real MineRL's pov is writable (an array over a copy of the renderer's bytes) and flipped:
    strides (-1920, 3, 1). The adapter hands out a C-contiguous copy, which torch.from_numpy
    takes (it refuses negative strides); OpenCV's resize takes either."""
    import torch
    from minerl.herobraine.env_specs.human_survival_specs import HumanSurvival

    raw = HumanSurvival(**VPT_ENV_KWARGS).make()
    raw.seed(0)
    pov = raw.reset()["pov"]
    assert pov.flags.writeable and pov.strides == (-1920, 3, 1)  # what real MineRL hands out
    with pytest.raises(ValueError, match="negative"):
        torch.from_numpy(pov)
    env = MineRLEnv(raw, "MineRLHumanSurvival-v0")
    obs, _ = env.reset(seed=0)
    assert obs["pov"].flags.writeable and obs["pov"].flags.c_contiguous
    np.testing.assert_array_equal(obs["pov"], pov)
    assert torch.from_numpy(obs["pov"]).shape == (360, 640, 3)
    obs["pov"][0, 0] = 1  # the copy is ours to change
    from vpt_rl.envs.obs import preprocess_frame

    frame = env.step({})[0]["pov"]
    np.testing.assert_array_equal(preprocess_frame(frame), preprocess_frame(frame[::-1].copy()[::-1]))


def test_human_survival_truncates_at_configured_limit(fake_minerl):
    env = make_minerl_env("MineRLHumanSurvival-v0", max_episode_steps=3)
    try:
        env.reset(seed=0)
        flags = [env.step({})[2:4] for _ in range(3)]
        assert flags == [(False, False), (False, False), (False, True)]
        env.reset()
        assert env.step({})[2:4] == (False, False)  # the counter restarts with the episode
    finally:
        env.close()


@pytest.mark.parametrize("esc_at_limit", [False, True])
def test_basalt_step_limit_truncates_but_esc_on_the_last_step_terminates(
    fake_minerl, monkeypatch, esc_at_limit
):
    """Real BASALT ends the episode itself at the limit (old gym's TimeLimit then writes
    TimeLimit.truncated=False): the adapter still calls it a truncation, unless ESC ended it."""
    env = minerl_helpers.short_task(monkeypatch, "MineRLBasaltFindCave-v0", 4)
    try:
        env.reset(seed=0)
        for _ in range(3):
            assert env.step({})[2:4] == (False, False)
        raw_step = env.raw_env.step
        seen = {}

        def spy(action):
            out = raw_step(action)
            seen.update(out[3])
            return out

        env.raw_env.step = spy
        _, _, terminated, truncated, info = env.step({"ESC": 1} if esc_at_limit else {})
        assert seen["TimeLimit.truncated"] is False  # the real rule: the task had ended already
        assert "TimeLimit.truncated" not in info
        assert (terminated, truncated) == ((True, False) if esc_at_limit else (False, True))
    finally:
        env.close()


def test_basalt_esc_wrapper_indexes_the_key_like_real_minerl(fake_minerl):
    import gym
    import minerl  # noqa: F401 -- registers the ids

    raw = gym.make("MineRLBasaltFindCave-v0")
    raw.seed(0)
    raw.reset()
    with pytest.raises(KeyError):
        raw.step({"forward": 1})  # no "ESC": real MineRL's wrapper fails the same way
    env = make_minerl_env("MineRLBasaltFindCave-v0")
    try:
        env.reset(seed=0)
        env.step({"forward": 1})  # the adapter always sends all 24 keys
    finally:
        env.close()


@pytest.mark.parametrize("env_id", BASALT_IDS)
def test_basalt_pov_only_esc_terminates(fake_minerl, env_id):
    env = make_minerl_env(env_id)
    try:
        assert set(env.observation_space) == {"pov"}
        assert env.max_episode_steps == STEP_LIMITS[env_id]
        env.reset(seed=1)
        obs, reward, terminated, truncated, _ = env.step({"forward": 1})
        assert (terminated, truncated) == (False, False)
        obs, reward, terminated, truncated, _ = env.step({"ESC": 1})
        assert (reward, terminated, truncated) == (0.0, True, False)
    finally:
        env.close()


@pytest.mark.parametrize("own_limit", [None, 10**6])
def test_basalt_time_limit_is_truncation_not_termination(fake_minerl, own_limit):
    # own_limit 10**6: the adapter does not count; the task's own timeout ends the episode and old
    # gym's TimeLimit marks it (info["TimeLimit.truncated"] present, False)
    env = make_minerl_env("MineRLBasaltFindCave-v0", max_episode_steps=own_limit)
    try:
        env.reset(seed=0)
        for _ in range(STEP_LIMITS["MineRLBasaltFindCave-v0"] - 1):
            _, _, terminated, truncated, info = env.step({})
            assert not terminated and not truncated
        _, _, terminated, truncated, info = env.step({})
        assert (terminated, truncated) == (False, True)
        assert "TimeLimit.truncated" not in info
    finally:
        env.close()


def test_obtain_diamond_shovel_keeps_its_own_reward(fake_minerl):
    env = make_minerl_env("MineRLObtainDiamondShovel-v0")
    try:
        assert "inventory" in env.observation_space.spaces
        env.reset(seed=0)
        rewards = [env.step(_attack())[1] for _ in range(8)]
        assert rewards == [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]  # first log only
        raw = env.raw_env
        raw.give("crimson_planks")  # not on the ladder's explicit planks list
        assert env.step({})[1] == 0.0
        raw.give("jungle_planks")
        raw.give("stick")
        assert env.step({})[1] == 2.0 + 4.0  # planks and stick, first time each
        raw.give("furnace")
        raw.give("iron_pickaxe")
        assert env.step({})[1:4] == (32.0 + 256.0, False, False)
        raw.give("diamond_shovel")
        _, reward, terminated, truncated, _ = env.step({})
        assert (reward, terminated, truncated) == (2048.0, True, False)  # the shovel ends it
    finally:
        env.close()


@pytest.mark.parametrize("shovel_at_limit", [False, True])
def test_shovel_on_the_last_step_terminates_else_the_limit_truncates(
    fake_minerl, monkeypatch, shovel_at_limit
):
    env = minerl_helpers.short_task(monkeypatch, "MineRLObtainDiamondShovel-v0", 3)
    try:
        env.reset(seed=0)
        env.step({})
        env.step({})
        if shovel_at_limit:
            env.raw_env.give("diamond_shovel")
        _, reward, terminated, truncated, _ = env.step({})
        assert (terminated, truncated) == ((True, False) if shovel_at_limit else (False, True))
        assert reward == (2048.0 if shovel_at_limit else 0.0)
        with pytest.raises(RuntimeError, match="reset before stepping"):  # as the real wrapper
            env.step({})
    finally:
        env.close()
    with pytest.raises(ValueError, match="takes no env settings"):
        make_minerl_env("MineRLObtainDiamondShovel-v0", fov_range=[70, 70])
    with pytest.raises(ValueError, match="does not observe the inventory"):
        make_minerl_env("MineRLBasaltFindCave-v0", inventory=True)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("fov_range", [90, 90]),
        ("gamma_range", [0, 0]),
        ("guiscale_range", [2, 2]),
        ("resolution", [1280, 720]),
        ("cursor_size_range", [0, 0]),
    ],
)
def test_settings_check_names_the_wrong_setting(fake_minerl, setting, value):
    with pytest.raises(MineRLSettingsError, match=f"MineRL env setting {setting} is"):
        make_minerl_env("MineRLHumanSurvival-v0", **{setting: value})
    make_minerl_env("MineRLHumanSurvival-v0", check_settings=False, **{setting: value}).close()


def test_settings_check_requires_exactly_24_action_keys(fake_minerl):
    from minerl.herobraine.env_specs.human_survival_specs import HumanSurvival

    raw = HumanSurvival(**VPT_ENV_KWARGS).make()
    check_settings(raw)  # the VPT settings pass
    del raw.action_space.spaces["swapHands"]
    with pytest.raises(MineRLSettingsError, match=r"missing \['swapHands'\]"):
        MineRLEnv(raw, "MineRLHumanSurvival-v0")
    raw.action_space.spaces["swapHands"] = raw.action_space.spaces["ESC"]
    raw.action_space.spaces["camera"] = raw.action_space.spaces["ESC"]
    with pytest.raises(MineRLSettingsError, match=r"'camera' must be Box\(-180, 180, \(2,\)\)"):
        check_settings(raw)


def test_minerl_connection_error_raises_so_the_pool_restarts(fake_minerl):
    env = make_minerl_env("MineRLHumanSurvival-v0")
    try:
        env.reset(seed=0)
        raw_step = env.raw_env.step
        env.raw_env.step = lambda a: (raw_step(a)[0], 0.0, True, {"error": "Connection timed out!"})
        with pytest.raises(RuntimeError, match="MineRL step failed: Connection timed out!"):
            env.step({})
    finally:
        env.close()


def test_factory_rewards_inventory_increments_with_vpt_diamond_table(fake_minerl):
    env = make_env("MineRLHumanSurvival-v0", (128, 128), {"max_episode_steps": 100})
    try:
        assert isinstance(env.env, ItemRewardWrapper)
        assert env.env.item_reward.table == VPT_DIAMOND_TABLE
        obs, _ = env.reset(seed=0)
        assert obs["img"].shape == (128, 128, 3) and obs["img"].dtype == np.uint8
        attack, _ = env_to_policy({**minerl_noop(), "attack": 1})
        total = 0.0
        for _ in range(40):  # a log every 4 attacks (oak and birch in turn): 10 logs, 8 paid
            _, reward, _, _, info = env.step({"buttons": attack, "camera": NULL_CAMERA})
            total += reward
        logs = info["inventory"]["oak_log"] + info["inventory"]["birch_log"]
        assert logs == 10
        assert total == pytest.approx(8 * VPT_DIAMOND_TABLE["log"][0])  # capped at 8 logs
        assert info["items"]["log"] == 8
    finally:
        env.close()


@pytest.mark.filterwarnings("ignore:.*symmetric and normalized space")  # MineRL's camera is in degrees
def test_adapter_passes_gymnasium_env_checker(fake_minerl):
    from gymnasium.utils.env_checker import check_env

    env = make_minerl_env("MineRLHumanSurvival-v0")
    try:
        check_env(env, skip_render_check=True)
    finally:
        env.close()
