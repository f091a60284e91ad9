"""The actor-management half of `RayEnvPool` (vpt_rl/envs/ray_pool.py): `RayActorBase` creates an
actor for a group of envs (placement from ``env.ray``), waits for it to start, kills it (its env's
child processes first), replaces failed or recycled actors with fresh seeds (up to
``max_restart_attempts`` in a row), and waits for remote calls under a deadline. `RayEnvPool`
builds on it with the gymnasium ``VectorEnv`` API, state for exact resume and closing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from vpt_rl.config.ppg import RayEnvConfig
from vpt_rl.envs.ray_cluster import _DEATH_WAIT_S, _Actor, _await_gone, _first_line
from vpt_rl.envs.vector_base import VectorPoolBase, short_reason

# The pool's logger: its restart warnings keep the name they are configured by (e.g.
# bench/speed/ray_soak.py silences "vpt_rl.envs.ray_pool").
logger = logging.getLogger("vpt_rl.envs.ray_pool")

_CLOSE_GRACE_S = 10.0  # how long close() lets envs close themselves before killing their actors
_KILL_GRACE_S = 2.0  # how long a broken actor gets to kill its env's children before ray.kill


class RayActorBase(VectorPoolBase):
    """Creating, starting, killing and replacing `RayEnvPool`'s actors; `RayEnvPool.__init__` sets
    the attributes declared here."""

    _ray: Any
    config: RayEnvConfig
    name: str
    _runtime_env: dict[str, Any] | None
    _fn_bytes: list[bytes]
    _members: list[list[int]]  # actor -> its envs
    _home: list[tuple[int, int]]  # env -> (actor, position in that actor)
    _steps: list[int]
    _supports: list[bool]
    _spaces: list[Any]
    _actor_cls: Any
    _actors: list[_Actor | None]

    # --- actors ----------------------------------------------------------------------------------

    @property
    def node_ids(self) -> list[str | None]:
        """The Ray node of each env's actor (where it runs)."""
        return [self._actor(self._home[i][0]).node_id for i in range(self.num_envs)]

    def _actor(self, a: int) -> _Actor:
        actor = self._actors[a]
        assert actor is not None, f"RayEnvPool: actor {a} was not started"
        return actor

    def _spawn(self, a: int) -> None:
        n, cfg = len(self._members[a]), self.config
        options: dict[str, Any] = {
            "num_cpus": cfg.num_cpus * n,
            "resources": {key: value * n for key, value in cfg.resources.items()},
            "scheduling_strategy": "SPREAD",  # envs over all nodes that have the resources
            "max_restarts": 0,  # the pool restarts (fresh seed, reported), never Ray silently
            "name": f"{self.name}-actor{a}-g{self._generation[self._members[a][0]]}",
        }
        if cfg.memory is not None:
            options["memory"] = int(cfg.memory * n)
        if self._runtime_env is not None:
            options["runtime_env"] = self._runtime_env
        handle = self._actor_cls.options(**options).remote([self._fn_bytes[i] for i in self._members[a]])
        self._actors[a] = _Actor(handle)

    def _await_start(self, actors: Sequence[int] | range) -> dict[int, tuple[bool, Any]]:
        """Wait for `start` of the given actors; records spaces, state support, node and pid.
        A failure is (False, reason), or (False, (env, reason)) when one env failed to build."""
        refs = {a: self._actor(a).handle.start.remote() for a in actors}
        replies = self._wait(list(refs.values()), self.reset_timeout, what="start")
        out = {}
        for a, ref in refs.items():
            ok, info = replies[ref]
            if ok:
                failed = [(i, r) for i, (good, r) in zip(self._members[a], info["envs"]) if not good]
                if failed:
                    ok, info = False, failed[0]
                else:
                    self._actor(a).node_id, self._actor(a).pid = info["node_id"], info["pid"]
                    for i, (_, (obs_space, act_space, supports)) in zip(self._members[a], info["envs"]):
                        self._spaces[i], self._supports[i], self._steps[i] = (
                            (obs_space, act_space),
                            supports,
                            0,
                        )
                    info = ""
            out[a] = (ok, info)
        return out

    def _kill(self, a: int) -> None:
        """Kill actor a: first its env's child processes (its "control" thread answers even while a
        step hangs), then the actor itself; returns once it is gone, so its CPUs are free for the
        actor that replaces it."""
        actor = self._actors[a]
        if actor is None:
            return
        ray = self._ray
        try:
            ref = actor.handle.kill_descendants.options(concurrency_group="control").remote()
            ray.wait([ref], timeout=_KILL_GRACE_S)
        except Exception:  # noqa: BLE001 -- a dead actor cannot answer; ray.kill below is enough
            pass
        ray.kill(actor.handle, no_restart=True)
        _await_gone(ray, [actor.handle], _DEATH_WAIT_S)

    def _replace(self, actors: dict[int, str], recycle: bool = False) -> dict[int, tuple[Any, dict]]:
        """Kill and restart actors, reset their envs with fresh seeds; returns {env: (obs, info)}
        for every env of those actors. Raises RuntimeError after `max_restart_attempts` failed
        restarts of one actor in a row."""
        pending, results = dict(actors), {}
        for _attempt in range(self.max_restart_attempts):
            if recycle:  # healthy actors: let their envs close themselves (MineRL stops its JVM)
                self._wait([self._actor(a).handle.close.remote() for a in pending], _CLOSE_GRACE_S, "close")
            for a, reason in pending.items():
                if not recycle:
                    logger.warning(
                        "RayEnvPool: restarting actor %d (envs %s): %s", a, self._members[a], reason
                    )
                self._kill(a)
                for i in self._members[a]:
                    self._generation[i] += 1
                self._spawn(a)
            started = self._await_start(list(pending))
            failed = {a: r[1] if isinstance(r, tuple) else r for a, (ok, r) in started.items() if not ok}
            refs = {}
            for a in pending:
                if a not in failed:
                    requests = [
                        (j, "reset", (self._restart_seed(i), None)) for j, i in enumerate(self._members[a])
                    ]
                    refs[a] = self._actor(a).handle.call.remote(requests)
            replies = self._wait(list(refs.values()), self.reset_timeout, "reset")
            for a, ref in refs.items():
                ok, payload = replies[ref]
                bad = payload if not ok else next((r for good, r in payload if not good), None)
                if bad is not None:
                    failed[a] = bad
                else:
                    results.update({i: r for i, (_, r) in zip(self._members[a], payload)})
            n_ok = sum(len(self._members[a]) for a in pending if a not in failed)
            n_failed = sum(len(self._members[a]) for a in failed)
            if recycle:
                self.recycles += n_ok
                self.restarts += n_failed
            else:
                self.restarts += n_ok + n_failed
            recycle = False
            for a, r in failed.items():
                logger.warning("RayEnvPool: actor %d did not come back: %s", a, r)
            pending = {a: f"restart failed: {short_reason(r)}" for a, r in failed.items()}
            if not pending:
                return results
        a = min(pending)
        raise RuntimeError(
            f"RayEnvPool: env {self._members[a][0]} failed {self.max_restart_attempts} restarts in a row; "
            f"last: {pending[a]}"
        )

    def _wait(self, refs: list[Any], timeout: float, what: str = "step") -> dict[Any, tuple[bool, Any]]:
        """Each ref's value within `timeout` seconds in all: {ref: (True, value)} or (False, reason)
        with reason "exception: ...", "timeout after N s" or "actor died (...)"."""
        ray = self._ray
        if not refs:
            return {}
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout)
        out: dict[Any, tuple[bool, Any]] = {r: (False, f"timeout after {timeout:g} s") for r in refs}
        if what == "start":
            hint = "; no node may have the resources an actor asks (env.ray), see `ray status`"
            out = {r: (False, out[r][1] + hint) for r in refs}
        for r in ready:
            try:
                out[r] = (True, ray.get(r))
            except ray.exceptions.RayActorError as exc:
                out[r] = (False, f"actor died ({_first_line(exc)})")
            except ray.exceptions.RayError as exc:
                out[r] = (False, f"exception: {_first_line(exc)}")
        return out
