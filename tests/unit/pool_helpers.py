"""What the env-pool tests share (test_pool.py, test_pool_faults.py, test_ray_pool.py,
test_worker_descendants.py): the counting-env factories and random actions they step, the
timeouts, and whether a process is gone.

A plain module, imported by name (pytest puts tests/unit on sys.path), as minerl_helpers.py.
"""

from __future__ import annotations

import functools
import multiprocessing as mp
import time

import numpy as np
import psutil
import pytest
from doubles import fake_envs

from vpt_rl.envs.pool import EnvPool

N = 3
# Generous: these machines are shared; the hang tests set their own short timeout.
STEP_TIMEOUT = 20.0
RESET_TIMEOUT = 60.0


def counting_envs(n=N, **kwargs):
    """n counting envs with episodes of 4, 5, ... steps (``kwargs``: fake_envs.make_counting's faults)."""
    return [functools.partial(fake_envs.make_counting, episode_len=4 + i, **kwargs) for i in range(n)]


def random_actions(rng: np.random.Generator, n: int = N) -> dict[str, np.ndarray]:
    return {"buttons": rng.integers(0, 10, n), "camera": rng.integers(0, 5, n)}


def gone(pid: int) -> bool:
    """No live process has this pid (a zombie waiting for init to reap it counts as gone)."""
    try:
        return psutil.Process(pid).status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.NoSuchProcess:
        return True


def wait_gone(pid: int, timeout: float = 10.0, poll: float = 0.05) -> bool:
    """Wait up to ``timeout`` seconds for the process to be gone; whether it is."""
    deadline = time.monotonic() + timeout
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(poll)
    return gone(pid)


# What a pool says when an env's constructor raises: both backends, the same words.
FAILED_START = r"env 1 failed to start: exception: OSError: no display \(fake\)"


def broken_on_rebuild(tmp_path) -> list:
    """One env that works until it is rebuilt (fake_envs.make_broken_on_rebuild), then never again."""
    return [functools.partial(fake_envs.make_broken_on_rebuild, str(tmp_path / "built"))]


def assert_gives_up_after_failed_restarts(pool, attempts: int) -> None:
    """The pool contract for an env that cannot be rebuilt (``broken_on_rebuild``): the first
    failure is a restart, and after ``attempts`` failed restarts in a row step raises, naming the
    env and the last reason, instead of restarting forever. Both backends must keep it."""
    pool.reset(seed=0)
    actions = {"buttons": np.array([0]), "camera": np.array([0])}
    pool.step(actions)
    with pytest.raises(
        RuntimeError,
        match=rf"env 0 failed {attempts} restarts in a row; last: restart failed: "
        r"exception: RuntimeError: cannot rebuild this env",
    ):
        pool.step(actions)


def dies_in_flight() -> list:
    """Three envs; env 2's process exits at its second step (``assert_restarts_in_flight``)."""
    return [functools.partial(fake_envs.make_counting, episode_len=100)] * 2 + [
        functools.partial(fake_envs.make_counting, episode_len=100, fail_mode="exit", fail_at=2)
    ]


def assert_restarts_in_flight(pool) -> None:
    """The pool contract for a death while two groups are in flight (``dies_in_flight``): env 0
    and envs [1, 2] are sent apart and received in the other order; the group whose env 2 died
    gets it truncated and restarted, the other group is unaffected. Both backends must keep it."""
    pool.reset(seed=0)
    rng = np.random.default_rng(0)
    for step in range(3):
        pool.step_send({k: v[:1] for k, v in random_actions(rng, 3).items()}, [0])
        pool.step_send({k: v[1:] for k, v in random_actions(rng, 3).items()}, [1, 2])
        _, _, _, trunc, infos = pool.step_recv([1, 2])
        pool.step_recv([0])
        if step == 1:  # env 2's second step: its process exits
            assert trunc.tolist() == [False, True] and infos["_restarted"].tolist() == [False, True]
    assert pool.restarts == 1


def make_pool(fns, **kwargs) -> EnvPool:
    """An EnvPool with the generous timeouts unless the test sets its own."""
    kwargs.setdefault("step_timeout", STEP_TIMEOUT)
    kwargs.setdefault("reset_timeout", RESET_TIMEOUT)
    return EnvPool(fns, **kwargs)


def worker_pids(pool: EnvPool) -> list[int]:
    return [w.process.pid for w in pool._workers]


def assert_no_leak(pids: list[int]) -> None:
    for pid in pids:
        assert gone(pid), f"worker {pid} still alive"
    assert not [p for p in mp.active_children() if p.pid in pids]
