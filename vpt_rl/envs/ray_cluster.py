"""The Ray cluster side of `RayEnvPool` (vpt_rl/envs/ray_pool.py): importing Ray with a message that
says how to install it, joining the cluster at ``env.ray.address`` (or starting a local Ray), failing
fast on an address nobody listens on, and the pool's finaliser, which kills its actors and stops the
local Ray it started.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

_DEATH_WAIT_S = 10.0  # how long close() waits for killed actors to be gone (ray.kill does not wait)

# Set for a local Ray this pool starts: the raylet then kills what a crashed actor leaves behind
# (docs/scaling.md: set it on `ray start` of every env node too).
_SUBREAPER = "RAY_kill_child_processes_on_worker_exit_with_raylet_subreaper"


def import_ray() -> Any:
    """Ray, or an ImportError that says how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError(
            'env.backend=ray needs Ray: pip install -e ".[ray]" (or pip install "ray>=2.9"); '
            "env.backend=local runs the envs as local processes without it"
        ) from exc
    return ray


def connect(ray: Any, address: str | None) -> bool:
    """Join the cluster at `address` (None: start a local Ray); True when this call started Ray.
    An already initialised Ray (e.g. a test's, or the trainer's) is used as it is."""
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
    if address is None:
        before = os.environ.get(_SUBREAPER)
        os.environ[_SUBREAPER] = "true"
        try:
            ray.init(address="local", **kwargs)
        finally:
            if before is None:
                os.environ.pop(_SUBREAPER, None)
            else:
                os.environ[_SUBREAPER] = before
        return True
    try:
        _probe(address)
        ray.init(address=address, **kwargs)
    except Exception as exc:  # ConnectionError, or whatever this Ray version raises
        raise ConnectionError(
            f"RayEnvPool: cannot reach the Ray cluster at env.ray.address={address!r} "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). Start it first "
            "(`ray start --head --port 6379` on the head node, `ray start --address HEAD:6379` on "
            "each env node), or set env.ray.address to its address, or to null for a local Ray"
        ) from exc
    return True


def _probe(address: str, timeout: float = 10.0) -> None:
    """Fail fast on a "host:port" nobody listens on: ray.init retries such an address for minutes."""
    host, sep, port = address.rpartition(":")
    if address == "auto" or "://" in address or not sep or not port.isdigit():
        return
    with socket.create_connection((host, int(port)), timeout=timeout):
        pass


@dataclass
class _Actor:
    handle: Any
    node_id: str | None = None
    pid: int | None = None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def _shutdown(ray: Any, actors: list[_Actor | None], started_ray: bool) -> None:
    """Kill every actor, and stop the local Ray this pool started (the pool's finaliser). Returns
    once the actors are gone (or after `_DEATH_WAIT_S`), so their CPUs are free for the next pool."""
    if not ray.is_initialized():
        return
    handles = [actor.handle for actor in actors if actor is not None]
    for handle in handles:
        try:
            ray.kill(handle, no_restart=True)
        except Exception:  # noqa: BLE001 -- already dead
            pass
    if started_ray:
        ray.shutdown()  # takes the actors with it
    else:
        _await_gone(ray, handles, _DEATH_WAIT_S)


def _await_gone(ray: Any, handles: list[Any], timeout: float) -> None:
    """Wait until every actor refuses a call: ray.kill only asks, and a call sent right after it can
    still be served."""
    deadline = time.monotonic() + timeout
    pending = list(handles)
    while pending and time.monotonic() < deadline:
        alive = []
        for handle in pending:
            try:
                ray.get(handle.ping.options(concurrency_group="control").remote(), timeout=1.0)
                alive.append(handle)
            except ray.exceptions.GetTimeoutError:
                alive.append(handle)
            except Exception:  # noqa: BLE001 -- RayActorError and kin: the actor is gone
                pass
        pending = alive
        if pending:
            time.sleep(0.05)
    if pending:
        logger.warning("RayEnvPool: %d actor(s) still answered %.0f s after ray.kill", len(pending), timeout)
