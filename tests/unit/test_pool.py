"""EnvPool's contract: parallel stepping equals sequential envs, same-step autoreset, state,
recycling, the gymnasium vector-env API, stepping in groups, close. Recovery from a worker that
raises, hangs or dies is in test_pool_faults.py."""

from __future__ import annotations

import functools
import gc

import gymnasium
import numpy as np
import pytest
from doubles import fake_envs
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from pool_helpers import (
    assert_no_leak,
    counting_envs,
    make_pool,
    random_actions,
    worker_pids,
)


def test_pool_equals_sequential_envs_with_same_step_autoreset():
    pool = make_pool(counting_envs())
    reference = SyncVectorEnv(counting_envs(), autoreset_mode=AutoresetMode.SAME_STEP)
    pids = worker_pids(pool)
    try:
        assert pool.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
        assert pool.single_observation_space == reference.single_observation_space
        assert pool.observation_space == reference.observation_space
        assert pool.action_space == reference.action_space
        obs, infos = pool.reset(seed=11)
        ref_obs, ref_infos = reference.reset(seed=11)
        np.testing.assert_array_equal(obs["img"], ref_obs["img"])
        np.testing.assert_array_equal(infos["t"], ref_infos["t"])
        rng = np.random.default_rng(0)
        ended = 0
        for _ in range(12):
            actions = random_actions(rng)
            got = pool.step(actions)
            want = reference.step(actions)
            for g, w in zip(got[:4], want[:4]):
                np.testing.assert_array_equal(
                    g["img"] if isinstance(g, dict) else g, w["img"] if isinstance(w, dict) else w
                )
            infos, ref_infos = got[4], want[4]
            assert ("_final_obs" in infos) == ("_final_obs" in ref_infos)
            if "_final_obs" in infos:
                ended += int(infos["_final_obs"].sum())
                np.testing.assert_array_equal(infos["_final_obs"], ref_infos["_final_obs"])
                for i in np.flatnonzero(infos["_final_obs"]):
                    np.testing.assert_array_equal(
                        infos["final_obs"][i]["img"], ref_infos["final_obs"][i]["img"]
                    )
                    assert infos["final_info"][i]["t"] == ref_infos["final_info"]["t"][i]
                assert all(infos["final_obs"][i] is None for i in np.flatnonzero(~infos["_final_obs"]))
            assert "_restarted" not in infos
        assert ended >= 5  # every env finished at least one episode
        assert pool.restarts == 0
    finally:
        pool.close()
        reference.close()
    assert_no_leak(pids)


def test_autoreset_returns_next_first_obs_and_final_obs():
    pool = make_pool([functools.partial(fake_envs.make_counting, episode_len=2)])
    try:
        pool.reset(seed=3)
        actions = {"buttons": np.array([1]), "camera": np.array([0])}
        obs1, *_ = pool.step(actions)
        obs2, reward, terminated, truncated, infos = pool.step(actions)
        assert terminated.tolist() == [True] and truncated.tolist() == [False]
        assert reward.tolist() == [1.0]  # the reward of the last step is kept
        assert infos["t"].tolist() == [0]  # info of the new episode's first obs
        assert infos["final_info"][0]["t"] == 2
        assert infos["final_obs"][0]["img"].shape == fake_envs.IMG_SHAPE
        assert not np.array_equal(infos["final_obs"][0]["img"], obs2["img"][0])
        obs3, _, terminated, _, infos = pool.step(actions)
        assert not terminated[0] and infos["t"].tolist() == [1] and "_final_obs" not in infos
    finally:
        pool.close()


def test_close_is_idempotent_and_garbage_collection_closes():
    pool = make_pool(counting_envs(2))
    pids = worker_pids(pool)
    pool.reset(seed=0)
    pool.close()
    pool.close()
    assert pool.closed
    assert_no_leak(pids)
    with pytest.raises(RuntimeError, match="closed"):
        pool.reset()

    pool = make_pool(counting_envs(2))
    pids = worker_pids(pool)
    del pool
    gc.collect()
    assert_no_leak(pids)


def test_get_state_set_state_restores_exactly():
    fns = [functools.partial(fake_envs.make_stateful, episode_len=6 + i) for i in range(2)]
    pool = make_pool(fns)
    try:
        assert pool.supports_state
        pool.reset(seed=9)
        rng = np.random.default_rng(2)
        for _ in range(3):
            obs, *_ = pool.step(random_actions(rng, 2))
        states = pool.get_state()
        actions = [random_actions(rng, 2) for _ in range(5)]
        first = [pool.step(a) for a in actions]
        restored = pool.set_state(states)
        np.testing.assert_array_equal(restored["img"], obs["img"])
        second = [pool.step(a) for a in actions]
        for a, b in zip(first, second):
            np.testing.assert_array_equal(a[0]["img"], b[0]["img"])
            np.testing.assert_array_equal(a[1], b[1])
            np.testing.assert_array_equal(a[2], b[2])
    finally:
        pool.close()


def test_state_unsupported_reports_none():
    pool = make_pool(counting_envs(2))
    try:
        assert not pool.supports_state
        pool.reset(seed=0)
        assert pool.get_state() == [None, None]
        with pytest.raises(ValueError, match="env 0 has no state to restore"):
            pool.set_state([None, None])
    finally:
        pool.close()


def test_max_worker_steps_recycles_at_episode_end_only():
    pool = make_pool(counting_envs(2), max_worker_steps=2)  # episodes of 4 and 5 steps
    try:
        pool.reset(seed=0)
        pids = worker_pids(pool)
        zeros = {"buttons": np.zeros(2, np.int64), "camera": np.zeros(2, np.int64)}
        for _ in range(3):
            _, _, terminated, truncated, infos = pool.step(zeros)
            assert not terminated.any() and not truncated.any()  # no episode is cut
        assert worker_pids(pool) == pids
        _, _, terminated, truncated, infos = pool.step(zeros)  # env 0's episode ends at step 4
        assert terminated.tolist() == [True, False] and not truncated.any()
        assert infos["_final_obs"].tolist() == [True, False] and infos["t"].tolist() == [0, 4]
        assert "_restarted" not in infos
        new_pids = worker_pids(pool)
        assert new_pids[0] != pids[0] and new_pids[1] == pids[1]
        assert pool.recycles == 1 and pool.restarts == 0
        assert_no_leak([pids[0]])
    finally:
        pool.close()


def test_is_a_gymnasium_vector_env():
    pool = make_pool(counting_envs(2))
    try:
        assert isinstance(pool, gymnasium.vector.VectorEnv)
        assert pool.num_envs == 2
        obs, _ = pool.reset(seed=1)
        assert obs in pool.observation_space
        pool.step(pool.action_space.sample())
    finally:
        pool.close()
    fresh = make_pool(counting_envs(1))
    try:
        with pytest.raises(RuntimeError, match="before reset"):
            fresh.step({"buttons": np.zeros(1, np.int64), "camera": np.zeros(1, np.int64)})
    finally:
        fresh.close()


def test_stepping_groups_with_step_send_and_recv_equals_stepping_all():
    """Double buffering's API: half the envs step while the caller works; the results, infos
    (final_obs, masks) included, are the rows of one full step."""
    rng_a, rng_b = np.random.default_rng(0), np.random.default_rng(0)
    full, split = make_pool(counting_envs(4)), make_pool(counting_envs(4))
    try:
        full.reset(seed=3)
        split.reset(seed=3)
        groups = [[0, 1], [2, 3]]
        for _ in range(12):  # episodes of 4..7 steps end inside
            actions = random_actions(rng_a, 4)
            assert random_actions(rng_b, 4)["buttons"].tolist() == actions["buttons"].tolist()
            obs, rew, term, trunc, infos = full.step(actions)
            for rows in groups:
                split.step_send({k: v[rows] for k, v in actions.items()}, rows)
            parts = [split.step_recv(rows) for rows in reversed(groups)]  # any order back
            for rows, (g_obs, g_rew, g_term, g_trunc, g_infos) in zip(reversed(groups), parts):
                assert np.array_equal(g_obs["img"], obs["img"][rows])
                assert np.array_equal(g_rew, rew[rows]) and np.array_equal(g_term, term[rows])
                assert np.array_equal(g_trunc, trunc[rows])
                assert np.array_equal(g_infos["t"], infos["t"][rows])
                if "_final_obs" in infos and infos["_final_obs"][rows].any():
                    assert np.array_equal(g_infos["_final_obs"], infos["_final_obs"][rows])
                    for k, i in enumerate(rows):
                        if infos["_final_obs"][i]:
                            assert np.array_equal(
                                g_infos["final_obs"][k]["img"], infos["final_obs"][i]["img"]
                            )
    finally:
        full.close()
        split.close()


def test_step_send_and_recv_misuse_is_an_error():
    pool = make_pool(counting_envs(2))
    try:
        pool.reset(seed=0)
        with pytest.raises(RuntimeError, match="no step was sent to envs \\[1\\]"):
            pool.step_recv([1])
        pool.step_send({"buttons": np.array([1]), "camera": np.array([0])}, [0])
        with pytest.raises(RuntimeError, match="envs \\[0\\] still have a step in flight"):
            pool.step_send({"buttons": np.array([1]), "camera": np.array([0])}, [0])
        with pytest.raises(RuntimeError, match="reset: envs \\[0\\] have a step in flight"):
            pool.reset(seed=0)
        pool.step_recv([0])
        pool.step(random_actions(np.random.default_rng(0), 2))  # idle again: everything works
    finally:
        pool.close()
