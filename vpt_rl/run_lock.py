"""One owner per run folder: `train_ppo.py` and `train_bc.py` (rank 0 under torchrun) hold an OS
file lock on `runs/NAME/.run.lock` for their whole life.

Why: two invocations on one folder (two `--resume runs/c` started together, or a fresh run given a
`--run-name` that is still training) would both train to the end, each writing its own event
file, CSV and checkpoints into the same folder: the run silently forks and `latest` is whichever
wrote last. A second invocation must instead stop at once, say who holds the folder, and change
nothing in it.

Why an OS lock (``fcntl.flock``) and not a pid file: the kernel releases it when the holding
process dies, however it dies (SIGKILL, OOM, power loss of a node mounting the folder over NFS),
so a crashed run never leaves its folder stuck. Why not the `filelock` package: its Unix lock opens
the file with ``O_TRUNC``, so a refused second invocation would erase the holder's details (and
change the folder). The holder's pid, host, start time and command line are written into the lock
file after the lock is taken, and read back for the refusal message.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import IO, Any

from vpt_rl.errors import VPTRLError

__all__ = ["LOCK_NAME", "RunLock", "RunLockedError", "lock_run_dir"]

LOCK_NAME = ".run.lock"


class RunLockedError(VPTRLError, RuntimeError):
    """Another live process owns the run folder; the message names it (pid, host, start time)."""


class RunLock:
    """An acquired lock on a run folder; `release` (or process exit) frees it."""

    def __init__(self, path: Path, handle: IO[str]) -> None:
        self.path = path
        self._handle: IO[str] | None = handle

    def release(self) -> None:
        """Free the lock (idempotent). The file stays: deleting it would race with a new holder."""
        if self._handle is not None:
            import fcntl

            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def lock_run_dir(run_dir: str | os.PathLike) -> RunLock:
    """Take the run folder's lock (creating the folder and its lock file if new), or raise
    `RunLockedError` naming the holder without writing anything into the folder."""
    import fcntl  # POSIX only: the trainers run on Linux (and macOS)

    run_dir = Path(run_dir)
    path = run_dir / LOCK_NAME
    run_dir.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 -- held for the life of the lock
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = _describe(handle.read())
        handle.close()
        raise RunLockedError(
            f"{run_dir} is in use by another run ({holder}); wait for it to finish, stop it, or "
            "choose another --run-name"
        ) from None
    handle.seek(0)
    handle.truncate()
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "argv": sys.argv,
    }
    handle.write(json.dumps(info) + "\n")
    handle.flush()
    return RunLock(path, handle)


def _describe(text: str) -> str:
    try:
        info = json.loads(text)
        return f"pid {info['pid']} on {info['host']}, started {info['started']}"
    except (ValueError, KeyError, TypeError):
        return "a process that has not written its details yet"
