"""PolicySpaceWrapper (policy spaces over a MineRL-interface env) and make_env_fns."""

from __future__ import annotations

import functools
import pickle

import gymnasium
import numpy as np
import pytest
from doubles import fake_envs
from gymnasium.utils.env_checker import check_env

from vpt_rl.envs.actions import (
    BUTTONS_ALL,
    NULL_BUTTONS,
    NULL_CAMERA,
    env_to_policy,
    minerl_noop,
    policy_to_env,
)
from vpt_rl.envs.factory import make_env, make_env_fns
from vpt_rl.envs.obs import preprocess_frame
from vpt_rl.envs.pool import EnvPool
from vpt_rl.envs.rewards import ItemRewardWrapper
from vpt_rl.envs.wrappers import PolicySpaceWrapper

FAKE_ID = "doubles.fake_envs:FakeMineRL-v0"


@pytest.mark.filterwarnings(
    "ignore:.*different from the unwrapped version"
)  # checking the wrapper is the point
def test_spaces_and_gymnasium_env_checker():
    env = PolicySpaceWrapper(fake_envs.FakeMineRLEnv(pov_size=(36, 64)), img_size=(16, 24))
    assert env.observation_space == gymnasium.spaces.Dict(
        {"img": gymnasium.spaces.Box(0, 255, (16, 24, 3), np.uint8)}
    )
    assert env.action_space["buttons"].n == 8641 and env.action_space["camera"].n == 121
    check_env(env, skip_render_check=True)


def test_frames_are_resized_like_preprocess_frame_and_passed_through_at_size():
    inner = fake_envs.FakeMineRLEnv(pov_size=(36, 64))
    env = PolicySpaceWrapper(inner, img_size=(16, 24))
    obs, _ = env.reset(seed=0)
    raw, _ = inner.reset(seed=0)
    assert obs["img"].dtype == np.uint8 and obs["img"].shape == (16, 24, 3)
    np.testing.assert_array_equal(obs["img"], preprocess_frame(raw["pov"], (16, 24)))

    same = PolicySpaceWrapper(fake_envs.FakeMineRLEnv(pov_size=(16, 24)), img_size=(16, 24))
    obs, _ = same.reset(seed=0)
    np.testing.assert_array_equal(obs["img"], same.unwrapped._obs()["pov"])


@pytest.mark.parametrize(
    "env_action",
    [
        {},
        {"attack": 1, "camera": np.array([0.0, 0.0], np.float32)},
        {"forward": 1, "jump": 1, "hotbar.3": 1, "camera": np.array([-5.0, 10.0], np.float32)},
        {"use": 1, "sneak": 1, "left": 1, "camera": np.array([2.0, -0.5], np.float32)},
    ],
)
def test_policy_indices_become_the_minerl_dict(env_action):
    full = {**minerl_noop(), **env_action}
    buttons, camera = env_to_policy(full)
    inner = fake_envs.FakeMineRLEnv()
    env = PolicySpaceWrapper(inner)
    env.reset(seed=0)
    env.step({"buttons": np.int64(buttons), "camera": np.int64(camera)})
    sent = inner.last_action
    expected = policy_to_env(buttons, camera)
    assert set(sent) == set(BUTTONS_ALL) | {"camera"}  # 21 keys; ESC etc. are not pressed
    for key in BUTTONS_ALL:
        assert sent[key] == expected[key] == full[key], key
    np.testing.assert_allclose(sent["camera"], expected["camera"])
    assert sent["camera"].dtype == np.float32 and sent["camera"].shape == (2,)


def test_null_action_presses_nothing_and_bad_action_is_named():
    inner = fake_envs.FakeMineRLEnv()
    env = PolicySpaceWrapper(inner)
    env.reset(seed=0)
    env.step({"buttons": NULL_BUTTONS, "camera": NULL_CAMERA})
    assert not any(inner.last_action[k] for k in BUTTONS_ALL)
    np.testing.assert_array_equal(inner.last_action["camera"], [0.0, 0.0])
    with pytest.raises(ValueError, match="'buttons' and 'camera'"):
        env.step({"buttons": 0})
    with pytest.raises(ValueError, match="buttons index out of range"):
        env.step({"buttons": 9000, "camera": 0})


def test_info_passes_through_with_inventory_counts():
    env = PolicySpaceWrapper(fake_envs.FakeMineRLEnv())
    _, info = env.reset(seed=0)
    assert info["inventory"] == {}
    attack, _ = env_to_policy({**minerl_noop(), "attack": 1})
    for _ in range(3):
        _, _, _, _, info = env.step({"buttons": attack, "camera": NULL_CAMERA})
    assert info["attacks"] == 3  # the inner env's info key survives
    assert info["inventory"] == {"oak_log": 1}


def test_state_passes_through():
    env = PolicySpaceWrapper(fake_envs.FakeMineRLEnv(), img_size=(8, 8))
    assert env.supports_state
    env.reset(seed=0)
    attack, _ = env_to_policy({**minerl_noop(), "attack": 1})
    for _ in range(4):
        obs, *_ = env.step({"buttons": attack, "camera": NULL_CAMERA})
    state = pickle.loads(pickle.dumps(env.get_state()))
    env.reset(seed=1)
    env.set_state(state)
    np.testing.assert_array_equal(env.render_obs()["img"], obs["img"])
    _, _, _, _, info = env.step({"buttons": attack, "camera": NULL_CAMERA})
    assert info["attacks"] == 5

    plain = PolicySpaceWrapper(fake_envs.FakeMineRLEnv(with_state=False))
    assert not plain.supports_state
    with pytest.raises(NotImplementedError, match="get_state"):
        plain.get_state()


def test_rejects_env_without_pov():
    with pytest.raises(ValueError, match="'pov' Box"):
        PolicySpaceWrapper(fake_envs.CountingEnv())


def test_make_env_adds_item_reward_and_policy_spaces():
    env = make_env(FAKE_ID, (8, 8), {"pov_size": (36, 64)}, reward_table={"log": (2.0, None)})
    assert isinstance(env, PolicySpaceWrapper)
    assert isinstance(env.env, ItemRewardWrapper)
    env.reset(seed=0)
    attack, _ = env_to_policy({**minerl_noop(), "attack": 1})
    rewards = [env.step({"buttons": attack, "camera": NULL_CAMERA})[1] for _ in range(6)]
    assert rewards == [0.0, 0.0, 2.0, 0.0, 0.0, 2.0]  # a log every 3rd attack, 2 per log
    env.close()
    plain = make_env(FAKE_ID, (8, 8))
    assert not isinstance(plain.env, ItemRewardWrapper)
    plain.close()


def test_make_env_fns_are_picklable_and_run_in_a_pool():
    fns = make_env_fns(FAKE_ID, 2, (8, 8), env_kwargs={"pov_size": (36, 64)}, reward_table="treechop")
    assert len(fns) == 2 and all(isinstance(fn, functools.partial) for fn in fns)
    pickle.dumps(fns)
    pool = EnvPool(fns, step_timeout=20.0, reset_timeout=60.0)
    try:
        assert pool.supports_state
        obs, infos = pool.reset(seed=0)
        assert obs["img"].shape == (2, 8, 8, 3) and obs["img"].dtype == np.uint8
        attack, _ = env_to_policy({**minerl_noop(), "attack": 1})
        actions = {"buttons": np.array([attack, NULL_BUTTONS]), "camera": np.array([NULL_CAMERA] * 2)}
        for _ in range(3):
            _, rewards, _, _, infos = pool.step(actions)
        assert rewards.tolist() == [1.0, 0.0]
        assert infos["inventory"]["oak_log"].tolist() == [1, 0]
        assert infos["inventory"]["_oak_log"].tolist() == [True, False]
    finally:
        pool.close()
    with pytest.raises(ValueError, match="num_envs"):
        make_env_fns(FAKE_ID, 0, (8, 8))


VOXEL_ID = "vpt_rl/VoxelTreechop-v0"


def test_voxel_world_renders_at_policy_size_in_the_worker():
    env = make_env(VOXEL_ID, (32, 48), {"max_episode_steps": 50})
    try:
        assert env.unwrapped.pov_size == (32, 48)  # no resize: the world renders at this size
        assert env.env.observation_space["pov"].shape == (32, 48, 3)
        obs, info = env.reset(seed=0)
        assert obs["img"].shape == (32, 48, 3) and obs["img"].dtype == np.uint8
        assert "inventory" in info
        assert env.supports_state
    finally:
        env.close()


def test_voxel_pool_is_deterministic_and_restores_state():
    fns = make_env_fns(VOXEL_ID, 2, (32, 32), env_kwargs={"max_episode_steps": 40})
    rng = np.random.default_rng(0)
    actions = [{"buttons": rng.integers(0, 8641, 2), "camera": rng.integers(0, 121, 2)} for _ in range(10)]
    pool = EnvPool(fns, step_timeout=30.0, reset_timeout=120.0)
    other = EnvPool(fns, step_timeout=30.0, reset_timeout=120.0)
    try:
        assert pool.supports_state
        obs_a, _ = pool.reset(seed=4)
        obs_b, _ = other.reset(seed=4)
        np.testing.assert_array_equal(obs_a["img"], obs_b["img"])
        assert not np.array_equal(obs_a["img"][0], obs_a["img"][1])  # env i gets seed 4 + i
        for a in actions[:5]:
            pool.step(a)
        states = pool.get_state()
        first = [pool.step(a) for a in actions[5:]]
        other.set_state(states)  # restore into another pool: exact resume
        second = [other.step(a) for a in actions[5:]]
        for x, y in zip(first, second):
            np.testing.assert_array_equal(x[0]["img"], y[0]["img"])
            np.testing.assert_array_equal(x[1], y[1])
    finally:
        pool.close()
        other.close()


def test_voxel_kwargs_reach_the_env_not_a_time_limit_wrapper():
    # Regression: gymnasium.make(id, max_episode_steps=N) kept N for its own TimeLimit wrapper
    # (whose counter is not in get_state) and left the env's own limit of 1000 in force.
    env = make_env(VOXEL_ID, (32, 32), {"max_episode_steps": 1500})
    try:
        assert env.unwrapped.max_episode_steps == 1500
        wrapper = env
        while isinstance(wrapper, gymnasium.Wrapper):
            assert not isinstance(wrapper, gymnasium.wrappers.TimeLimit)
            wrapper = wrapper.env
        env.reset(seed=0)
        for _ in range(1499):
            _, _, terminated, truncated, _ = env.step({"buttons": NULL_BUTTONS, "camera": NULL_CAMERA})
            assert not (terminated or truncated)
        _, _, _, truncated, _ = env.step({"buttons": NULL_BUTTONS, "camera": NULL_CAMERA})
        assert truncated
    finally:
        env.close()
