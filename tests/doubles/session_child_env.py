"""An env that starts a child process in a session of its own, as MineRL starts its Java client
(``setsid``): out of the worker's process group, so only a kill of the worker's descendants
reaches it. For tests/unit/test_worker_descendants.py; importable as ``doubles.session_child_env``
because EnvPool's workers unpickle their factories by name.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from doubles.fake_envs import CountingEnv


class SessionChildEnv(CountingEnv):
    """CountingEnv whose constructor starts ``sleep`` in a new session and appends its pid to
    `pid_file` (one line per env built); its ``close`` leaves the child running, like a MineRL
    close that did not stop Java. `fail_mode` "raise" or "hang" fails at step `fail_at` (as
    CountingEnv); "build" raises in the constructor once the child is started."""

    def __init__(self, pid_file: str, fail_mode: str | None = None, fail_at: int = 1) -> None:
        child = subprocess.Popen(["sleep", "300"], start_new_session=True)
        with Path(pid_file).open("a") as f:
            f.write(f"{child.pid}\n")
        if fail_mode == "build":
            raise RuntimeError("no Minecraft (fake)")
        super().__init__(episode_len=50, fail_mode=fail_mode, fail_at=fail_at)


def make(pid_file: str, fail_mode: str | None = None, fail_at: int = 1) -> SessionChildEnv:
    return SessionChildEnv(pid_file, fail_mode, fail_at)
