"""EnvPool's recovery from a worker that raises, hangs or dies: restarted, reported, others
unaffected, no leaked process (its children and an orphaned pool's workers included). The pool's
contract is in test_pool.py."""

from __future__ import annotations

import functools
import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from doubles import fake_envs
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from pool_helpers import (
    FAILED_START,
    STEP_TIMEOUT,
    assert_gives_up_after_failed_restarts,
    assert_no_leak,
    assert_restarts_in_flight,
    broken_on_rebuild,
    counting_envs,
    dies_in_flight,
    gone,
    make_pool,
    random_actions,
    wait_gone,
    worker_pids,
)


@pytest.mark.parametrize(
    ("fail_mode", "step_timeout", "reason"),
    [
        ("raise", STEP_TIMEOUT, "exception: ValueError: boom at step 3"),
        ("hang", 1.0, "timeout after 1 s"),
        ("exit", STEP_TIMEOUT, "process died (exit code 3)"),
    ],
)
def test_failing_worker_is_restarted_and_reported(fail_mode, step_timeout, reason):
    fns = counting_envs()
    fns[1] = functools.partial(fake_envs.make_counting, episode_len=50, fail_mode=fail_mode, fail_at=3)
    ref_fns = [fns[0], fns[2]]
    pool = make_pool(fns, step_timeout=step_timeout)
    reference = SyncVectorEnv(ref_fns, autoreset_mode=AutoresetMode.SAME_STEP)
    old_pids = worker_pids(pool)
    try:
        obs, _ = pool.reset(seed=5)
        reference.reset(seed=[5, 7])  # the seeds envs 0 and 2 get in the pool
        rng = np.random.default_rng(1)
        last_good = None
        for step in range(1, 6):
            actions = random_actions(rng)
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
        new_pid = worker_pids(pool)[1]
        assert new_pid != old_pids[1] and gone(old_pids[1])
        assert worker_pids(pool)[0] == old_pids[0]
    finally:
        pool.close()
        reference.close()
    assert_no_leak(old_pids + [new_pid])


def test_restart_seed_is_fresh_and_deterministic():
    def run() -> tuple[np.ndarray, np.ndarray]:
        fns = [functools.partial(fake_envs.make_counting, episode_len=50, fail_mode="raise", fail_at=2)]
        pool = make_pool(fns)
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
    pool = make_pool(fns, step_timeout=2.0)
    try:
        pool.reset(seed=0)
        _, _, _, truncated, infos = pool.step({"buttons": np.array([0]), "camera": np.array([0])})
        assert truncated[0] and infos["restarted"][0] == "timeout after 2 s"
        child = int(pid_file.read_text())
        assert wait_gone(child, 10), "the env's own child process (like MineRL's Java) survived the restart"
    finally:
        pool.close()


def test_repeated_restart_failure_raises_instead_of_looping(tmp_path):
    pool = make_pool(broken_on_rebuild(tmp_path), max_restart_attempts=2)
    pids = worker_pids(pool)
    try:
        assert_gives_up_after_failed_restarts(pool, attempts=2)
        pids += worker_pids(pool)
    finally:
        pool.close()
    assert_no_leak(pids)


def test_failing_constructor_raises_at_creation_and_leaks_nothing():
    before = {p.pid for p in mp.active_children()}
    with pytest.raises(RuntimeError, match=FAILED_START):
        make_pool([fake_envs.make_counting, fake_envs.make_failing_constructor])
    assert {p.pid for p in mp.active_children()} <= before


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
        assert not gone(worker)
        trainer.kill()  # like the OOM killer: no close(), no atexit
        trainer.wait(10)
        assert wait_gone(worker, 15, poll=0.1), "a worker outlived its killed trainer"
    finally:
        trainer.kill()
        trainer.wait(10)


def test_a_worker_that_dies_while_its_group_is_in_flight_is_restarted():
    pool = make_pool(dies_in_flight())
    try:
        assert_restarts_in_flight(pool)
    finally:
        pool.close()
