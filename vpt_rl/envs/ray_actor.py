"""The Ray actor that hosts envs for `RayEnvPool` (vpt_rl/envs/ray_pool.py): a plain class here,
made a Ray actor there (``ray.remote``), so this module imports without Ray.

One actor is one process holding ``envs_per_actor`` envs. Each call carries requests for several
of its envs and returns one ``(ok, payload)`` per request, so one remote call steps all of an
actor's envs (the per-call overhead is paid once per actor, not once per env). Commands and
payloads are those of the local worker (vpt_rl/envs/worker.py: "reset", "step" with same-step
autoreset, "get_state", "set_state"), served by the same functions, plus "rebuild" (close the env,
build a fresh one from its factory, reset it with the given seed: recycling in place).

`kill_descendants` runs in its own concurrency group ("control"), so the pool can call it while a
step hangs in the default group, before ``ray.kill``: the env's child processes (MineRL's Java
client) die with the actor instead of being left to init.
"""

from __future__ import annotations

import os
import pickle
from typing import Any

import gymnasium

from vpt_rl.envs.worker import _describe, _handle, env_supports_state


class EnvHost:
    """Builds and serves the envs of one actor (see the module docstring)."""

    def __init__(self, env_fn_bytes: list[bytes]) -> None:
        self._fns = list(env_fn_bytes)
        self._envs: list[gymnasium.Env | None] = [None] * len(self._fns)

    def start(self) -> dict[str, Any]:
        """Build every env; returns where the actor runs and, per env, ``(True, (observation
        space, action space, supports_state))`` or ``(False, reason)``."""
        import ray

        envs: list[tuple[bool, Any]] = []
        for j in range(len(self._fns)):
            try:
                env = self._build(j)
                envs.append((True, (env.observation_space, env.action_space, env_supports_state(env))))
            except BaseException as exc:  # noqa: BLE001 -- reported to the pool, which raises
                envs.append((False, f"exception: {_describe(exc)}"))
        return {"node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid(), "envs": envs}

    def _build(self, j: int) -> gymnasium.Env:
        # Unpickled here, not by Ray, so a factory that cannot be imported is reported per env.
        env = pickle.loads(self._fns[j])()
        self._envs[j] = env
        return env

    def call(self, requests: list[tuple[int, str, Any]]) -> list[tuple[bool, Any]]:
        """Serve ``(env, command, payload)`` requests in order; one ``(ok, result or reason)`` each."""
        replies: list[tuple[bool, Any]] = []
        for j, command, payload in requests:
            try:
                replies.append((True, self._serve(j, command, payload)))
            except BaseException as exc:  # noqa: BLE001 -- SystemExit from an env is a failure too
                replies.append((False, f"exception: {_describe(exc)}"))
        return replies

    def _serve(self, j: int, command: str, payload: Any) -> Any:
        env = self._envs[j]
        if command == "rebuild":
            self._close(j)
            return self._build(j).reset(seed=payload)
        if env is None:
            raise RuntimeError(f"env {j} of this actor failed to build")
        return _handle(env, command, payload)

    def _close(self, j: int) -> None:
        env, self._envs[j] = self._envs[j], None
        if env is not None:
            try:
                env.close()
            except Exception:  # noqa: BLE001 -- closing a broken env must not hide the real error
                pass

    def close(self) -> None:
        """Close every env (MineRL stops its Java client), then kill any process left behind."""
        for j in range(len(self._envs)):
            self._close(j)
        self.kill_descendants()

    def ping(self) -> int:
        """This actor's pid: the pool's close() calls it until it fails, to know the actor is gone."""
        return os.getpid()

    def kill_descendants(self) -> int:
        """SIGKILL every descendant process of this actor; returns how many there were."""
        import psutil

        children = psutil.Process().children(recursive=True)
        for child in children:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(children, timeout=2.0)
        return len(children)
