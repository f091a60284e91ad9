"""RayEnvPool: the env pool's contract with its envs hosted by Ray actors anywhere on a Ray cluster,
so CPU nodes can feed a GPU learner (docs/scaling.md, "Env workers on a Ray cluster").

Same contract as `EnvPool` (vpt_rl/envs/vector_base.py writes the reports for both): gymnasium
``VectorEnv``, same-step autoreset with ``final_obs``/``final_info``, ``step_send``/``step_recv``,
per-call deadlines, restart of a failed env reported ``truncated`` with ``infos["restarted"]``,
``max_worker_steps`` recycling, ``get_state``/``set_state``, ``restarts``. Only Ray's machinery
is used: actors (vpt_rl/envs/ray_actor.py), ``ray.wait`` with a timeout for every deadline,
``ray.kill`` for a hung or broken actor, SPREAD scheduling with per-env resources for placement.

Granularity (``env.ray.envs_per_actor``): one actor is one process and the unit of restart: a
failure of one of its envs (exception, hang, death of the actor or of its node) replaces the
actor, so all the envs it hosts start new episodes (each reported restarted at its next step).

- MineRL: 1 per actor. Each env is a Java client of 2-4 GB behind its Python process; with one
  env per actor a crash or hang takes one env down, and recycling (``max_worker_steps``) gets a
  fresh process and JVM. A step takes ~25-50 ms, so Ray's per-call overhead (well under 1 ms)
  is noise.
- The voxel world: several per actor (e.g. 4). A step takes a few ms, the same order as one
  remote call; one call per actor steps all its envs and amortises that overhead (measured in
  docs/benchmarks.md), and its envs do not crash in practice, so sharing a restart costs nothing.

Lifetime: actors are not detached. Ray kills an actor when its owner, the process that created it
(this rank), exits, even by SIGKILL, so a killed trainer leaves no envs running on the cluster.
Each rank creates its own actors (named ``{name}-{token}-actor{a}-g{generation}`` for
``ray list actors``) on the one cluster every rank connects to.
"""

from __future__ import annotations

import logging
import uuid
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium
from gymnasium.vector.utils import batch_space, iterate

from vpt_rl.config.ppg import RayEnvConfig
from vpt_rl.envs.pool import _pickle_env_fn
from vpt_rl.envs.ray_actor import EnvHost
from vpt_rl.envs.ray_actor_base import _CLOSE_GRACE_S, RayActorBase
from vpt_rl.envs.ray_cluster import _Actor, _shutdown, connect, import_ray
from vpt_rl.envs.vector_base import StepOutcome, short_reason

__all__ = ["RayEnvPool", "connect", "import_ray"]  # connect, import_ray: re-exported (tests use them)

logger = logging.getLogger(__name__)


@dataclass
class _Sent:
    """A step in flight for one env: which call carries it (None: not sent, see step_send)."""

    ref: Any
    slot: int  # position of this env's reply in that call's reply list
    due: bool  # max_worker_steps reached: recycle at this episode end, no autoreset
    result: tuple[bool, Any] | None = None  # fetched by an earlier step_recv of a co-sent env


class RayEnvPool(RayActorBase):
    """`EnvPool`'s contract over Ray actors (see the module docstring for granularity and lifetime).

    Args:
        env_fns: picklable factories (``make_env_fns``), one per env, same spaces; the factories
            wrap with PolicySpaceWrapper, so frames are resized in the actor and only policy-sized
            frames travel.
        ray_config: placement (``env.ray``: address, num_cpus / memory / resources per env,
            envs_per_actor); an actor reserves its envs' sum, scheduled SPREAD over the nodes.
        step_timeout, reset_timeout, max_worker_steps, max_restart_attempts: as `EnvPool`.
        name: prefix of the actors' names (the trainer passes ``{run}-rank{r}``).
        runtime_env: Ray runtime environment for the actors (e.g. ``{"env_vars": {...}}``).
    """

    def __init__(
        self,
        env_fns: Sequence[Callable[[], gymnasium.Env]],
        ray_config: RayEnvConfig | None = None,
        step_timeout: float = 60.0,
        reset_timeout: float | None = None,
        max_worker_steps: int | None = None,
        name: str | None = None,
        max_restart_attempts: int = 3,
        runtime_env: dict[str, Any] | None = None,
    ) -> None:
        self._init_common(len(env_fns), step_timeout, reset_timeout, max_worker_steps, max_restart_attempts)
        self._ray = import_ray()
        self.config = ray_config or RayEnvConfig()
        self.name = f"{name or 'envpool'}-{uuid.uuid4().hex[:6]}"
        self._runtime_env = runtime_env
        self._fn_bytes = [_pickle_env_fn(i, fn) for i, fn in enumerate(env_fns)]
        k = self.config.envs_per_actor
        self._members = [list(range(s, min(s + k, self.num_envs))) for s in range(0, self.num_envs, k)]
        self._home = [(a, j) for a, envs in enumerate(self._members) for j in range(len(envs))]
        self._steps = [0] * self.num_envs  # steps since env i was built (max_worker_steps)
        self._supports = [False] * self.num_envs
        self._spaces: list[Any] = [None] * self.num_envs  # (observation, action) space per env
        self._broken: dict[int, str] = {}  # actor -> why it was killed; replaced at the next step
        self._carry: dict[int, tuple[str, Any, dict]] = {}  # env -> restart to report at its next step
        self._actor_cls = self._ray.remote(concurrency_groups={"control": 1})(EnvHost)
        # The finaliser holds this list (not self), so it sees replaced actors too.
        self._actors: list[_Actor | None] = [None] * len(self._members)
        self._started_ray = connect(self._ray, self.config.address)
        self._finalizer = weakref.finalize(self, _shutdown, self._ray, self._actors, self._started_ray)
        try:
            for a in range(len(self._members)):
                self._spawn(a)
            for a, (ok, reason) in self._await_start(range(len(self._members))).items():
                if not ok:
                    i, reason = reason if isinstance(reason, tuple) else (self._members[a][0], reason)
                    raise RuntimeError(f"RayEnvPool: env {i} failed to start: {reason}")
            self._set_spaces([self._spaces[i] for i in range(self.num_envs)])
        except BaseException:
            self._finalizer()
            raise

    # --- gymnasium VectorEnv API -----------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """Reset every env (env i gets ``seed + i``); returns batched obs and vector infos."""
        self._check_idle("reset")
        super().reset(seed=seed)
        self._base_seed = seed
        self._carry.clear()
        refs = {}
        for a, envs in enumerate(self._members):
            if a not in self._broken:
                requests = [
                    (j, "reset", (None if seed is None else seed + i, options)) for j, i in enumerate(envs)
                ]
                refs[a] = self._actor(a).handle.call.remote(requests)
        replies = self._wait(list(refs.values()), self.reset_timeout, "reset")
        failed, results = dict(self._broken), {}
        for a, ref in refs.items():
            ok, payload = replies[ref]
            bad = payload if not ok else next((r for good, r in payload if not good), None)
            if bad is not None:
                failed[a] = short_reason(bad)
            else:
                results.update({i: r for i, (_, r) in zip(self._members[a], payload)})
        self._broken.clear()
        results.update(self._replace(failed))
        reasons = {i: failed[a] for a in failed for i in self._members[a]}
        return self._report_reset(results, reasons)

    def step_send(self, actions: Any, indices: Sequence[int] | None = None) -> None:
        """Send one step to the envs ``indices`` (default all), one remote call per actor, without
        waiting; ``actions`` is batched over ``indices``. Collect with `step_recv` (as `EnvPool`)."""
        idx = self._indices_to_send(indices)
        space = batch_space(self.single_action_space, len(idx))
        calls: dict[int, list[tuple[int, Any, bool]]] = {}
        for i, action in zip(idx, iterate(space, actions)):
            a = self._home[i][0]
            due = self.max_worker_steps is not None and self._steps[i] + 1 >= self.max_worker_steps
            if i in self._carry or a in self._broken:
                self._pending[i] = _Sent(None, -1, due)  # nothing to step: reported in step_recv
            else:
                calls.setdefault(a, []).append((i, action, due))
        for a, sends in calls.items():
            requests = [(self._home[i][1], "step", (action, not due)) for i, action, due in sends]
            ref = self._actor(a).handle.call.remote(requests)
            for slot, (i, _, due) in enumerate(sends):
                self._pending[i] = _Sent(ref, slot, due)

    def step_recv(self, indices: Sequence[int] | None = None) -> Any:
        """Wait for the steps sent to ``indices`` and return them batched over ``indices`` (as
        `EnvPool.step_recv`): one deadline of ``step_timeout`` for all their calls."""
        idx = self._indices_to_recv(indices)
        sent: dict[int, _Sent] = {i: self._pending[i] for i in idx}
        for i in idx:
            self._pending[i] = None
        outcomes: dict[int, StepOutcome] = {}
        failures: dict[int, str] = {}
        for i in idx:
            if i in self._carry:
                reason, obs, info = self._carry.pop(i)
                outcomes[i] = StepOutcome.after_restart(self._last_obs[i], obs, info, reason)
            elif sent[i].ref is None:
                failures[i] = self._broken[self._home[i][0]]
        waiting = [i for i in idx if i not in outcomes and i not in failures and sent[i].result is None]
        replies = self._wait(
            list({id(sent[i].ref): sent[i].ref for i in waiting}.values()), self.step_timeout
        )
        self._share_fetched(replies)
        to_recycle = []
        for i in idx:
            if i in outcomes or i in failures:
                continue
            ok, payload = sent[i].result or replies[sent[i].ref]
            if ok:
                ok, payload = payload[sent[i].slot]
            if not ok:
                failures[i] = payload
                continue
            obs, reward, terminated, truncated, info, final = payload
            self._steps[i] += 1
            if final is None and sent[i].due and (terminated or truncated):
                final = (obs, info)  # not reset in the actor: the env is rebuilt below
                to_recycle.append(i)
            outcomes[i] = StepOutcome(obs, reward, terminated, truncated, info, final)
        if to_recycle:
            self._recycle(to_recycle, outcomes)
        if failures:
            self._restart(failures, idx, outcomes)
        return self._report_step(idx, outcomes)

    def _share_fetched(self, replies: dict[Any, tuple[bool, Any]]) -> None:
        """Keep fetched replies for envs sent in the same call but received later."""
        for p in self._pending:
            if isinstance(p, _Sent) and p.ref is not None and p.ref in replies and p.result is None:
                if replies[p.ref][0]:
                    p.result = replies[p.ref]

    def _recycle(self, envs: list[int], outcomes: dict[int, StepOutcome]) -> None:
        """Fresh envs for those past ``max_worker_steps`` at their episode end: a fresh actor when it
        hosts one env (a fresh process, and JVM for MineRL), else rebuilt inside its actor so that
        its neighbours keep their episodes."""
        for i in envs:
            logger.info("RayEnvPool: recycling env %d after %d steps", i, self._steps[i])
        whole = {self._home[i][0]: "recycled" for i in envs if len(self._members[self._home[i][0]]) == 1}
        for i, (obs, info) in self._replace(whole, recycle=True).items():
            outcomes[i].obs, outcomes[i].info = obs, info
        inside = [i for i in envs if self._home[i][0] not in whole]
        refs = {}
        for i in inside:
            self._generation[i] += 1
            a, j = self._home[i]
            refs[i] = self._actor(a).handle.call.remote([(j, "rebuild", self._restart_seed(i))])
        replies = self._wait(list(refs.values()), self.reset_timeout, "rebuild")
        broken: dict[int, str] = {}
        for i, ref in refs.items():
            ok, payload = replies[ref]
            if ok and payload[0][0]:
                outcomes[i].obs, outcomes[i].info = payload[0][1]
                self._steps[i] = 0
                self.recycles += 1
            else:
                broken[i] = payload if not ok else payload[0][1]
        if broken:  # the rebuild failed: the whole actor is replaced (the episode had ended anyway)
            actors = {self._home[i][0]: f"recycling failed: {short_reason(r)}" for i, r in broken.items()}
            restarted = self._restart_actors(actors, set(broken), outcomes)
            for i in broken:
                outcomes[i].obs, outcomes[i].info = restarted[i]

    def _restart(self, failures: dict[int, str], idx: list[int], outcomes: dict[int, StepOutcome]) -> None:
        """Replace the actors of failed envs; the failed envs report the restart now, their actors'
        other envs at their next step (their step, if reported now, was a good one)."""
        for i, reason in failures.items():
            logger.warning("RayEnvPool: env %d failed: %s", i, reason)
        actors: dict[int, str] = {}
        for i in sorted(failures):
            actors.setdefault(self._home[i][0], short_reason(failures[i]))
        restarted = self._restart_actors(actors, set(failures), outcomes)
        for i, reason in failures.items():
            obs, info = restarted[i]
            outcomes[i] = StepOutcome.after_restart(self._last_obs[i], obs, info, short_reason(reason))

    def _restart_actors(
        self, actors: dict[int, str], reported: set[int], outcomes: dict[int, StepOutcome]
    ) -> dict[int, tuple[Any, dict]]:
        """Replace `actors`; envs not in `reported` get their restart carried to their next step."""
        restarted = self._replace(actors)
        for a, reason in actors.items():
            self._broken.pop(a, None)
            for i in self._members[a]:
                if i not in reported:
                    obs, info = restarted[i]
                    self._carry[i] = (f"{reason} (another env of its actor)", obs, info)
                    if isinstance(self._pending[i], _Sent):
                        self._pending[i] = _Sent(None, -1, self._pending[i].due)
        return restarted

    # --- state for exact resume ------------------------------------------------------------------

    @property
    def supports_state(self) -> bool:
        """True when every env can capture and restore its whole state (e.g. the voxel world)."""
        return all(self._supports)

    def get_state(self) -> list[Any]:
        """Each env's state (None for envs that cannot capture one); see `set_state`."""
        self._check_idle("get_state")
        payloads = {i: None for i in range(self.num_envs) if self._supports[i]}
        replies = self._call("get_state", payloads)
        return [replies.get(i) for i in range(self.num_envs)]

    def set_state(self, states: Sequence[Any]) -> Any:
        """Restore every env from `get_state` output; returns the batched current observations."""
        self._check_idle("set_state")
        self._check_states(states, self._supports)
        replies = self._call("set_state", dict(enumerate(states)))
        self._carry.clear()  # the restored envs are what the caller continues from
        for i, obs in replies.items():
            self._last_obs[i] = obs
        return self._batch_obs()

    def _call(self, command: str, payloads: dict[int, Any]) -> dict[int, Any]:
        """Run a command on some envs; a failure kills the actor (the next step restarts it) and
        raises, since a state that was not captured or restored must not pass silently."""
        refs = {}
        for a, envs in enumerate(self._members):
            requests = [(j, command, payloads[i]) for j, i in enumerate(envs) if i in payloads]
            if requests and a not in self._broken:
                refs[a] = self._actor(a).handle.call.remote(requests)
        replies = self._wait(list(refs.values()), self.reset_timeout, command)
        failures, out = {}, {}
        for a, envs in enumerate(self._members):
            if a in self._broken:
                failures[a] = (envs[0], self._broken[a])
            if a not in refs:
                continue
            ok, payload = replies[refs[a]]
            chosen = [i for i in envs if i in payloads]
            if not ok:
                failures[a] = (chosen[0], payload)
                continue
            for i, (good, r) in zip(chosen, payload):
                if good:
                    out[i] = r
                else:
                    failures.setdefault(a, (i, r))
        if failures:
            for a, (_, reason) in failures.items():
                self._kill(a)
                self._broken[a] = f"{command} failed: {short_reason(reason)}"
            i, reason = failures[min(failures)]
            raise RuntimeError(f"RayEnvPool.{command}: env {i} failed: {reason}")
        return out

    # --- closing ---------------------------------------------------------------------------------

    def close_extras(self, **kwargs: Any) -> None:
        """Ask every actor to close its envs, wait a little, then kill the actors (and stop the
        local Ray this pool started); idempotent."""
        live = [a for a, actor in enumerate(self._actors) if actor is not None and a not in self._broken]
        try:
            self._wait([self._actor(a).handle.close.remote() for a in live], _CLOSE_GRACE_S, "close")
        except Exception:  # noqa: BLE001 -- Ray already shut down (interpreter exit): nothing to ask
            pass
        self._finalizer()
