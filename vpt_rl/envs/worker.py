"""The process that runs one environment for `EnvPool` (vpt_rl/envs/pool.py), and the parent's
handle on it (start, send, receive with a deadline, kill with its process group and every
descendant process).

Why descendants, not only the process group: MineRL starts its Java client in a session of its
own (``setsid``), out of the worker's process group, so a group kill never reaches it; a
Minecraft client left running holds gigabytes. The descendants are listed (psutil) while the
worker is still alive, since a process whose parent died is re-parented and can no longer be
found from the worker's pid. The worker kills its own descendants on the way out (close, a
failed build, the trainer gone); the parent lists them before it kills a worker (a hang, a
failure, close).

Protocol over a duplex `multiprocessing` pipe. After building its env the worker sends one
("ok", ReadyInfo) or ("error", reason). Then it answers each request (command, payload) with
exactly one reply ("ok", result) or ("error", reason):

- ("reset", (seed, options))   -> (obs, info)
- ("step", (action, autoreset)) -> (obs, reward, terminated, truncated, info, final) where
  ``final`` is None or (final_obs, final_info): with ``autoreset`` an ended episode is reset in
  the same call (gymnasium's same-step autoreset) and the last observation travels in ``final``.
- ("get_state", None)           -> picklable env state
- ("set_state", state)          -> obs after the restore (``render_obs()``)
- ("close", None)               -> closes the env, replies, exits.

One reply per request keeps the pipe in step; the pool kills any worker whose reply did not come
in time, so a late reply can never be read as the answer to a later request.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

import gymnasium
import psutil


@dataclass(frozen=True)
class ReadyInfo:
    """What a worker reports once its env is built."""

    observation_space: gymnasium.Space
    action_space: gymnasium.Space
    supports_state: bool
    pgid: int | None  # the worker's own process group (holds any children, e.g. MineRL's Java)


def _describe(exc: BaseException) -> str:
    """One-line reason plus the traceback (the pool logs the traceback, reports the line)."""
    line = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
    return line + "\n" + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def _wrapper_attr(env: gymnasium.Env, name: str) -> Any:
    """An attribute from the outermost wrapper that has it (gymnasium 1.x no longer forwards)."""
    try:
        return env.get_wrapper_attr(name)
    except AttributeError:
        return None


def env_supports_state(env: gymnasium.Env) -> bool:
    """True when `env` can capture and restore itself (get_state, set_state and render_obs)."""
    declared = _wrapper_attr(env, "supports_state")
    if declared is not None and not callable(declared):
        return bool(declared)
    return all(callable(_wrapper_attr(env, n)) for n in ("get_state", "set_state", "render_obs"))


def _step(env: gymnasium.Env, payload: tuple[Any, bool]) -> tuple:
    action, autoreset = payload
    obs, reward, terminated, truncated, info = env.step(action)
    final = None
    if autoreset and (terminated or truncated):
        final = (obs, info)
        obs, info = env.reset()  # no seed: the env's own RNG continues (gymnasium convention)
    return obs, float(reward), bool(terminated), bool(truncated), info, final


def _set_state(env: gymnasium.Env, state: Any) -> Any:
    env.get_wrapper_attr("set_state")(state)
    return env.get_wrapper_attr("render_obs")()


def _handle(env: gymnasium.Env, command: str, payload: Any) -> Any:
    if command == "step":
        return _step(env, payload)
    if command == "reset":
        seed, options = payload
        return env.reset(seed=seed, options=options)
    if command == "get_state":
        return env.get_wrapper_attr("get_state")()
    if command == "set_state":
        return _set_state(env, payload)
    raise ValueError(f"unknown worker command {command!r}")


EXIT_WAIT_S = 1.0  # how long an exiting worker waits for the descendants it killed (reaping them)


def descendants(pid: int | None = None) -> list[psutil.Process]:
    """The live descendant processes of `pid` (default: this process), at any depth, in any
    session; [] when `pid` is gone."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def kill_processes(processes: Iterable[psutil.Process], wait_s: float = 0.0) -> None:
    """SIGKILL each process (psutil checks its start time first, so a recycled pid is never hit);
    then wait up to `wait_s` seconds for them to exit (this reaps our own children)."""
    processes = list(processes)
    for process in processes:
        try:
            process.kill()
        except psutil.Error:  # gone already, or not ours to kill
            pass
    if wait_s > 0 and processes:
        psutil.wait_procs(processes, timeout=wait_s)


def _watch_owner(owner_pid: int, pgid: int | None) -> None:
    """Exit (with the env's children) once the pool's process is gone, even mid-step: a trainer
    killed by SIGKILL or the OOM killer cannot close its pool, and a Minecraft client left behind
    holds gigabytes. The parent pid changes when our parent (the pool, or the forkserver, which
    exits with the pool) dies."""
    parent = os.getppid()
    while True:
        time.sleep(1.0)
        try:
            os.kill(owner_pid, 0)
            alive = os.getppid() == parent
        except ProcessLookupError:
            alive = False
        except PermissionError:
            alive = True
        if not alive:
            kill_processes(descendants())  # those in sessions of their own (MineRL's Java)
            if pgid is not None:
                os.killpg(pgid, signal.SIGKILL)  # includes this process
            os._exit(1)


def worker_main(
    conn: Connection, env_fn_bytes: bytes, sys_path: list[str], environ: dict[str, str], owner_pid: int
) -> None:
    """Entry point of a worker process: build the env, then serve requests until told to close.

    `env_fn_bytes` is the pickled env factory, unpickled here (not by multiprocessing) so that a
    factory that fails to import is reported through the pipe, and after `sys_path` and
    `environ` (the parent's, when the worker is started) are in place: a forkserver's own path
    and environment are frozen when it starts (e.g. before the user set DISPLAY for xvfb).
    """
    os.environ.clear()
    os.environ.update(environ)
    # Ctrl-C goes to the parent, which closes the pool; workers must not die half-way first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pgid = None
    if hasattr(os, "setsid"):
        try:
            # Own process group, so a kill also reaches the env's children (MineRL's Java client).
            os.setsid()
            pgid = os.getpgid(0)
        except OSError:
            pgid = None
    threading.Thread(target=_watch_owner, args=(owner_pid, pgid), daemon=True).start()
    for entry in sys_path:
        if entry not in sys.path:
            sys.path.append(entry)

    try:
        env = pickle.loads(env_fn_bytes)()
        ready = ReadyInfo(env.observation_space, env.action_space, env_supports_state(env), pgid)
    except BaseException as exc:  # noqa: BLE001 -- anything here is reported, then we exit
        kill_processes(descendants(), EXIT_WAIT_S)  # whatever a half-built env started
        _send(conn, ("error", _describe(exc)))
        return
    _send(conn, ("ok", ready))
    try:
        _serve(conn, env)
    finally:
        try:
            env.close()  # a second close (after "close") must be harmless, as gymnasium asks
        except Exception:  # noqa: BLE001 -- closing a broken env must not hide the real error
            pass
        kill_processes(descendants(), EXIT_WAIT_S)  # whatever the env's close left running


def _serve(conn: Connection, env: gymnasium.Env) -> None:
    while True:
        try:
            command, payload = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if command == "close":
            try:
                env.close()
                _send(conn, ("ok", None))
            except Exception as exc:  # noqa: BLE001
                _send(conn, ("error", _describe(exc)))
            return
        try:
            reply = ("ok", _handle(env, command, payload))
        except BaseException as exc:  # noqa: BLE001 -- SystemExit from an env is a failure too
            reply = ("error", _describe(exc))
        if not _send(conn, reply):
            return


def _send(conn: Connection, message: tuple[str, Any]) -> bool:
    try:
        conn.send(message)
    except (BrokenPipeError, EOFError, OSError):
        return False
    except Exception as exc:  # noqa: BLE001 -- e.g. an unpicklable observation or info value
        try:
            conn.send(("error", _describe(exc)))
        except Exception:  # noqa: BLE001
            return False
    return True


# --- parent side ---------------------------------------------------------------------------------

KILL_GRACE_S = 2.0  # SIGTERM -> SIGKILL delay (MineRL's Java client needs a moment to exit)


@dataclass
class WorkerHandle:
    """The parent's handle on one worker process."""

    process: Any  # multiprocessing.Process of the pool's start method
    conn: Connection
    pgid: int | None = None
    steps: int = 0  # steps since this process started (for max_worker_steps)
    supports_state: bool = False
    broken: str | None = None  # set when a failed get/set_state left the worker killed
    ready: ReadyInfo | None = field(default=None, repr=False)

    @classmethod
    def start(cls, ctx: Any, env_fn_bytes: bytes, name: str) -> WorkerHandle:
        """Start a worker process; it builds its env and then sends its `ReadyInfo`."""
        parent_conn, child_conn = ctx.Pipe(duplex=True)
        process = ctx.Process(
            target=worker_main,
            args=(child_conn, env_fn_bytes, list(sys.path), dict(os.environ), os.getpid()),
            name=name,
            daemon=True,  # a backstop: multiprocessing kills daemons at interpreter exit
        )
        process.start()
        child_conn.close()  # so that the worker's death reads as EOF here
        return cls(process=process, conn=parent_conn)

    def set_ready(self, ready: ReadyInfo) -> None:
        self.ready, self.pgid, self.supports_state = ready, ready.pgid, ready.supports_state

    def send(self, message: tuple[str, Any]) -> str | None:
        """Send a request; returns a failure reason instead of raising when the worker is gone."""
        if self.broken is not None:
            return self.broken
        try:
            self.conn.send(message)
        except (BrokenPipeError, EOFError, OSError):
            return self.death_reason()
        return None

    def receive(self) -> tuple[bool, Any]:
        """The reply waiting in the pipe: (True, result) or (False, reason)."""
        try:
            if not self.conn.poll(0):
                return False, self.death_reason()
            status, payload = self.conn.recv()
        except (EOFError, OSError):
            return False, self.death_reason()
        if status == "ok":
            return True, payload
        return False, f"exception: {payload}"

    def death_reason(self) -> str:
        self.process.join(1.0)
        return f"process died (exit code {self.process.exitcode})"

    def _signal_group(self, sig: int) -> None:
        if self.pgid is None or not hasattr(os, "killpg"):
            return
        try:
            os.killpg(self.pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def kill(self) -> None:
        """Terminate, then kill, the worker and its process group; join it; kill every process
        descended from it (listed first, while they can still be found); close its pipe."""
        left = descendants(self.process.pid) if self.process.is_alive() else []
        if self.process.is_alive():
            self._signal_group(signal.SIGTERM)
            self.process.terminate()
            self.process.join(KILL_GRACE_S)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(KILL_GRACE_S)
        self._signal_group(signal.SIGKILL)  # children left behind in its group
        kill_processes(left)  # ... and those in sessions of their own (MineRL's Java)
        self.conn.close()


def gather(handles: dict[int, WorkerHandle], timeout: float) -> dict[int, tuple[bool, Any]]:
    """One reply from each handle, all within `timeout` seconds (never blocks longer).

    Returns {i: (True, result)} or {i: (False, reason)} with reason "exception: ...",
    "timeout after N s" or "process died (exit code C)".
    """
    deadline = time.monotonic() + timeout
    by_conn = {h.conn: i for i, h in handles.items()}
    by_sentinel = {h.process.sentinel: i for i, h in handles.items()}
    results: dict[int, tuple[bool, Any]] = {}
    while by_conn:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        # Sentinels too: a dead worker whose pipe is still held open elsewhere is caught.
        alive_sentinels = [s for s, i in by_sentinel.items() if i not in results]
        for obj in wait([*by_conn, *alive_sentinels], remaining):
            i = by_conn.get(obj) if isinstance(obj, Connection) else by_sentinel.get(obj)
            if i is None or i in results:
                continue
            by_conn.pop(handles[i].conn, None)
            results[i] = handles[i].receive()
    for i in by_conn.values():
        results[i] = (False, f"timeout after {timeout:g} s")
    return results


def shutdown(handles: Iterable[WorkerHandle | None]) -> None:
    """Kill every worker (the pool's finaliser: close(), garbage collection, interpreter exit)."""
    for handle in handles:
        if handle is not None:
            handle.kill()
