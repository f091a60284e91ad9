"""EnvPool: parallel stepping equals sequential envs, same-step autoreset, and recovery from a
worker that raises, hangs or dies (restarted, reported, others unaffected, no leaked process)."""

from __future__ import annotations

import functools
import gc
import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path

import gymnasium
import numpy as np
import pytest
from doubles import fake_envs
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from vpt_rl.envs.pool import EnvPool

N = 3
# Generous: these machines are shared; the hang test sets its own short timeout.
STEP_TIMEOUT = 20.0
RESET_TIMEOUT = 60.0


def _pool(fns, **kwargs) -> EnvPool:
    kwargs.setdefault("step_timeout", STEP_TIMEOUT)
    kwargs.setdefault("reset_timeout", RESET_TIMEOUT)
    return EnvPool(fns, **kwargs)


def _counting(n=N, **kwargs):
    return [functools.partial(fake_envs.make_counting, episode_len=4 + i, **kwargs) for i in range(n)]


def _actions(rng: np.random.Generator, n: int = N) -> dict[str, np.ndarray]:
    return {"buttons": rng.integers(0, 10, n), "camera": rng.integers(0, 5, n)}


def _gone(pid: int) -> bool:
    """True when no live process has this pid (a zombie left for init counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] in ("Z", "X")


def _worker_pids(pool: EnvPool) -> list[int]:
    return [w.process.pid for w in pool._workers]


def _assert_no_leak(pids: list[int]) -> None:
    for pid in pids:
        assert _gone(pid), f"worker {pid} still alive"
    assert not [p for p in mp.active_children() if p.pid in pids]


def test_pool_equals_sequential_envs_with_same_step_autoreset():
    pool = _pool(_counting())
    reference = SyncVectorEnv(_counting(), autoreset_mode=AutoresetMode.SAME_STEP)
    pids = _worker_pids(pool)
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
            actions = _actions(rng)
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
    _assert_no_leak(pids)


def test_autoreset_returns_next_first_obs_and_final_obs():
    pool = _pool([functools.partial(fake_envs.make_counting, episode_len=2)])
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


@pytest.mark.parametrize(
    ("fail_mode", "step_timeout", "reason"),
    [
        ("raise", STEP_TIMEOUT, "exception: ValueError: boom at step 3"),
        ("hang", 1.0, "timeout after 1 s"),
        ("exit", STEP_TIMEOUT, "process died (exit code 3)"),
    ],
)
def test_failing_worker_is_restarted_and_reported(fail_mode, step_timeout, reason):
    fns = _counting()
    fns[1] = functools.partial(fake_envs.make_counting, episode_len=50, fail_mode=fail_mode, fail_at=3)
    ref_fns = [fns[0], fns[2]]
    pool = _pool(fns, step_timeout=step_timeout)
    reference = SyncVectorEnv(ref_fns, autoreset_mode=AutoresetMode.SAME_STEP)
    old_pids = _worker_pids(pool)
    try:
        obs, _ = pool.reset(seed=5)
        reference.reset(seed=[5, 7])  # the seeds envs 0 and 2 get in the pool
        rng = np.random.default_rng(1)
        last_good = None
        for step in range(1, 6):
            actions = _actions(rng)
            start = time.monotonic()
            obs, reward, terminated, truncated, infos = pool.step(actions)
            took = time.monotonic() - start
            ref = reference.step({k: v[[0, 2]] for k, v in actions.items()})
            # the other envs keep their episodes, unaffected
            np.testing.assert_array_equal(obs["img"][[0, 2]], ref[0]["img"])
            np.testing.assert_array_equal(reward[[0, 2]], ref[1])
            if step == 3:
                assert truncated[1] and not terminated[1] and reward[1] == 0.0
                assert infos["_restarted"].tolist() == [False, True, False]
                assert infos["restarted"][1] == reason
                assert infos["_final_obs"][1]
                np.testing.assert_array_equal(infos["final_obs"][1]["img"], last_good)
                assert infos["t"][1] == 0  # a new episode started in the restarted worker
                assert pool.restarts == 1
                if fail_mode == "hang":
                    assert took < 30, f"a hung worker blocked step for {took:.1f} s"
            else:
                assert "_restarted" not in infos and not truncated[1]
            last_good = obs["img"][1].copy()
        new_pid = _worker_pids(pool)[1]
        assert new_pid != old_pids[1] and _gone(old_pids[1])
        assert _worker_pids(pool)[0] == old_pids[0]
    finally:
        pool.close()
        reference.close()
    _assert_no_leak(old_pids + [new_pid])


def test_restart_seed_is_fresh_and_deterministic():
    def run() -> tuple[np.ndarray, np.ndarray]:
        fns = [functools.partial(fake_envs.make_counting, episode_len=50, fail_mode="raise", fail_at=2)]
        pool = _pool(fns)
        try:
            first, _ = pool.reset(seed=21)
            actions = {"buttons": np.array([0]), "camera": np.array([0])}
            pool.step(actions)
            obs, _, _, truncated, _ = pool.step(actions)
            assert truncated[0]
            return first["img"], obs["img"]
        finally:
            pool.close()

    first, restarted = run()
    assert not np.array_equal(first, restarted)  # the restarted env is not reset with the old seed
    np.testing.assert_array_equal(restarted, run()[1])


def test_killing_a_worker_also_kills_its_children(tmp_path, monkeypatch):
    pid_file = tmp_path / "child.pid"
    monkeypatch.setenv("FAKE_ENV_CHILD_PID_FILE", str(pid_file))  # the worker gets our environment
    fns = [
        functools.partial(
            fake_envs.make_counting, episode_len=50, fail_mode="spawn_child_and_hang", fail_at=1
        )
    ]
    pool = _pool(fns, step_timeout=2.0)
    try:
        pool.reset(seed=0)
        _, _, _, truncated, infos = pool.step({"buttons": np.array([0]), "camera": np.array([0])})
        assert truncated[0] and infos["restarted"][0] == "timeout after 2 s"
        child = int(pid_file.read_text())
        deadline = time.monotonic() + 10
        while not _gone(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(child), "the env's own child process (like MineRL's Java) survived the restart"
    finally:
        pool.close()


def test_repeated_restart_failure_raises_instead_of_looping(tmp_path):
    fns = [functools.partial(fake_envs.make_broken_on_rebuild, str(tmp_path / "built"))]
    pool = _pool(fns, max_restart_attempts=2)
    pids = _worker_pids(pool)
    try:
        pool.reset(seed=0)
        actions = {"buttons": np.array([0]), "camera": np.array([0])}
        pool.step(actions)
        with pytest.raises(
            RuntimeError,
            match=r"env 0 failed 2 restarts in a row; last: restart failed: "
            r"exception: RuntimeError: cannot rebuild this env",
        ):
            pool.step(actions)
        pids += _worker_pids(pool)
    finally:
        pool.close()
    _assert_no_leak(pids)


def test_failing_constructor_raises_at_creation_and_leaks_nothing():
    before = {p.pid for p in mp.active_children()}
    with pytest.raises(RuntimeError, match=r"env 1 failed to start: exception: OSError: no display \(fake\)"):
        _pool([fake_envs.make_counting, fake_envs.make_failing_constructor])
    assert {p.pid for p in mp.active_children()} <= before


def test_close_is_idempotent_and_garbage_collection_closes():
    pool = _pool(_counting(2))
    pids = _worker_pids(pool)
    pool.reset(seed=0)
    pool.close()
    pool.close()
    assert pool.closed
    _assert_no_leak(pids)
    with pytest.raises(RuntimeError, match="closed"):
        pool.reset()

    pool = _pool(_counting(2))
    pids = _worker_pids(pool)
    del pool
    gc.collect()
    _assert_no_leak(pids)


def test_get_state_set_state_restores_exactly():
    fns = [functools.partial(fake_envs.make_stateful, episode_len=6 + i) for i in range(2)]
    pool = _pool(fns)
    try:
        assert pool.supports_state
        pool.reset(seed=9)
        rng = np.random.default_rng(2)
        for _ in range(3):
            obs, *_ = pool.step(_actions(rng, 2))
        states = pool.get_state()
        actions = [_actions(rng, 2) for _ in range(5)]
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
    pool = _pool(_counting(2))
    try:
        assert not pool.supports_state
        pool.reset(seed=0)
        assert pool.get_state() == [None, None]
        with pytest.raises(ValueError, match="env 0 has no state to restore"):
            pool.set_state([None, None])
    finally:
        pool.close()


def test_max_worker_steps_recycles_at_episode_end_only():
    pool = _pool(_counting(2), max_worker_steps=2)  # episodes of 4 and 5 steps
    try:
        pool.reset(seed=0)
        pids = _worker_pids(pool)
        zeros = {"buttons": np.zeros(2, np.int64), "camera": np.zeros(2, np.int64)}
        for _ in range(3):
            _, _, terminated, truncated, infos = pool.step(zeros)
            assert not terminated.any() and not truncated.any()  # no episode is cut
        assert _worker_pids(pool) == pids
        _, _, terminated, truncated, infos = pool.step(zeros)  # env 0's episode ends at step 4
        assert terminated.tolist() == [True, False] and not truncated.any()
        assert infos["_final_obs"].tolist() == [True, False] and infos["t"].tolist() == [0, 4]
        assert "_restarted" not in infos
        new_pids = _worker_pids(pool)
        assert new_pids[0] != pids[0] and new_pids[1] == pids[1]
        assert pool.recycles == 1 and pool.restarts == 0
        _assert_no_leak([pids[0]])
    finally:
        pool.close()


def test_is_a_gymnasium_vector_env():
    pool = _pool(_counting(2))
    try:
        assert isinstance(pool, gymnasium.vector.VectorEnv)
        assert pool.num_envs == 2
        obs, _ = pool.reset(seed=1)
        assert obs in pool.observation_space
        pool.step(pool.action_space.sample())
    finally:
        pool.close()
    fresh = _pool(_counting(1))
    try:
        with pytest.raises(RuntimeError, match="before reset"):
            fresh.step({"buttons": np.zeros(1, np.int64), "camera": np.zeros(1, np.int64)})
    finally:
        fresh.close()


_ORPHAN_SCRIPT = """
import functools, sys, numpy as np
from doubles import fake_envs
from vpt_rl.envs.pool import EnvPool
if __name__ == "__main__":
    pool = EnvPool([functools.partial(fake_envs.make_counting, fail_mode="hang", fail_at=1)], step_timeout=300)
    pool.reset(seed=0)
    print(pool._workers[0].process.pid, flush=True)
    pool.step({"buttons": np.zeros(1, np.int64), "camera": np.zeros(1, np.int64)})  # hangs
"""


def test_workers_exit_when_the_trainer_is_killed_mid_step(tmp_path):
    script = tmp_path / "trainer.py"
    script.write_text(_ORPHAN_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), *sys.path])}
    trainer = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, env=env, text=True)
    try:
        worker = int(trainer.stdout.readline())
        time.sleep(0.5)  # the worker is now asleep inside env.step
        assert not _gone(worker)
        trainer.kill()  # like the OOM killer: no close(), no atexit
        trainer.wait(10)
        deadline = time.monotonic() + 15
        while not _gone(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _gone(worker), "a worker outlived its killed trainer"
    finally:
        trainer.kill()
        trainer.wait(10)


def test_stepping_groups_with_step_send_and_recv_equals_stepping_all():
    """Double buffering's API: half the envs step while the caller works; the results, infos
    (final_obs, masks) included, are the rows of one full step."""
    rng_a, rng_b = np.random.default_rng(0), np.random.default_rng(0)
    full, split = _pool(_counting(4)), _pool(_counting(4))
    try:
        full.reset(seed=3)
        split.reset(seed=3)
        groups = [[0, 1], [2, 3]]
        for _ in range(12):  # episodes of 4..7 steps end inside
            actions = _actions(rng_a, 4)
            assert _actions(rng_b, 4)["buttons"].tolist() == actions["buttons"].tolist()
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
    pool = _pool(_counting(2))
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
        pool.step(_actions(np.random.default_rng(0), 2))  # idle again: everything works
    finally:
        pool.close()


def test_a_worker_that_dies_while_its_group_is_in_flight_is_restarted():
    fns = [functools.partial(fake_envs.make_counting, episode_len=100)] * 2 + [
        functools.partial(fake_envs.make_counting, episode_len=100, fail_mode="exit", fail_at=2)
    ]
    pool = _pool(fns)
    try:
        pool.reset(seed=0)
        rng = np.random.default_rng(0)
        for step in range(3):
            pool.step_send({k: v[:1] for k, v in _actions(rng, 3).items()}, [0])
            pool.step_send({k: v[1:] for k, v in _actions(rng, 3).items()}, [1, 2])
            _, _, _, trunc, infos = pool.step_recv([1, 2])
            pool.step_recv([0])
            if step == 1:  # env 2's second step: its process exits
                assert trunc.tolist() == [False, True] and infos["_restarted"].tolist() == [False, True]
        assert pool.restarts == 1
    finally:
        pool.close()
