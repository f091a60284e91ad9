"""EnvPool workers kill every process their env started, even one in a session of its own
(MineRL's Java client runs under ``setsid``, out of reach of a process-group kill): on close,
on a restart after a failure or a hang, on a failed build."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pytest
from doubles import session_child_env
from pool_helpers import gone, wait_gone

from vpt_rl.envs.pool import EnvPool

ACTION = {"buttons": np.array([0]), "camera": np.array([0])}


def _children(pid_file: Path) -> list[int]:
    return [int(line) for line in pid_file.read_text().split()]


def _pool(pid_file: Path, step_timeout: float = 20.0, **env_kwargs) -> EnvPool:
    fn = functools.partial(session_child_env.make, str(pid_file), **env_kwargs)
    return EnvPool([fn], step_timeout=step_timeout, reset_timeout=60.0)


def _in_own_session(child: int, worker: int) -> bool:
    return os.getsid(child) == child != os.getsid(worker)


def test_close_kills_a_grandchild_in_its_own_session(tmp_path):
    pid_file = tmp_path / "children"
    pool = _pool(pid_file)
    try:
        pool.reset(seed=0)
        pool.step(ACTION)
        (child,) = _children(pid_file)
        assert not gone(child) and _in_own_session(child, pool._workers[0].process.pid)
    finally:
        pool.close()
    assert wait_gone(child), "the env's child in its own session (like MineRL's Java) survived close()"


@pytest.mark.parametrize(
    ("fail_mode", "step_timeout", "reason"), [("raise", 20.0, "exception"), ("hang", 1.0, "timeout")]
)
def test_restart_kills_the_old_workers_grandchild(tmp_path, fail_mode, step_timeout, reason):
    pid_file = tmp_path / "children"
    pool = _pool(pid_file, step_timeout=step_timeout, fail_mode=fail_mode, fail_at=2)
    try:
        pool.reset(seed=0)
        pool.step(ACTION)
        (first,) = _children(pid_file)
        _, _, _, truncated, infos = pool.step(ACTION)
        assert truncated[0] and infos["restarted"][0].startswith(reason)
        assert wait_gone(first), f"the grandchild survived a restart after a {fail_mode}"
        _, second = _children(pid_file)
        assert not gone(second)  # the new worker's own child runs
    finally:
        pool.close()
    assert wait_gone(second)


def test_a_failed_build_leaves_no_grandchild(tmp_path):
    pid_file = tmp_path / "children"
    with pytest.raises(RuntimeError, match="no Minecraft"):
        _pool(pid_file, fail_mode="build")
    (child,) = _children(pid_file)
    assert wait_gone(child)
