"""EnvPool: one worker process per env, stepped in parallel, restarted when it fails.

Why not gymnasium's ``AsyncVectorEnv`` or SB3's ``SubprocVecEnv`` as they are: both drive their
workers in lockstep over pipes, with no way to replace a worker. A worker that raises makes the
whole vector env raise (AsyncVectorEnv) or leaves it unusable (SubprocVecEnv); a worker that hangs
blocks ``step`` forever (SubprocVecEnv has no timeout; AsyncVectorEnv's ``step_wait(timeout)``
raises and leaves the pool in a waiting state with the stuck process alive); a worker whose
process dies raises EOFError. Real MineRL does all three over long runs (minerl #682, #725,
#743), and one bad instance must not end a multi-day run, so this pool owns its processes: every
receive has a deadline, and a failed worker is killed, restarted with the same factory, and its
step reported as a truncation (which the learner bootstraps, docs/design.md "Decisions").

Start method: ``forkserver`` where the OS has it, else ``spawn``; never plain ``fork``. Forking a
parent that already runs torch's (or a BLAS's) thread pools copies locks held by threads that do
not exist in the child, which can deadlock it (a known PyTorch/OpenMP hazard). A forkserver is a
fresh single-threaded interpreter that forks the workers, so restarts are cheap; ``spawn`` starts
a whole interpreter per worker (slower, but portable). Both pickle the env factories, so use
module-level functions or ``functools.partial`` (``make_env_fns`` does).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import pickle
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium
import numpy as np
from gymnasium.vector.utils import batch_space, iterate

from vpt_rl.envs.vector_base import StepOutcome, VectorPoolBase, short_reason
from vpt_rl.envs.worker import WorkerHandle, gather, shutdown

logger = logging.getLogger(__name__)

_CLOSE_GRACE_S = 10.0  # how long close() lets envs close themselves before killing them


def _default_context() -> str:
    return "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"


class EnvPool(VectorPoolBase):
    """A gymnasium ``VectorEnv`` with one process per env, per-call timeouts and restarts.

    Same-step autoreset: when an episode ends, ``step`` returns the next episode's first
    observation; the last one is in ``infos["final_obs"]`` (object array, None elsewhere, mask
    ``"_final_obs"``) and its info dict in ``infos["final_info"]`` (likewise). A worker that
    raises, does not answer within ``step_timeout`` or whose process dies is killed and
    restarted; that env's step is reported ``truncated`` with reward 0, ``final_obs`` its last
    good observation and ``infos["restarted"]`` the reason (mask ``"_restarted"``).

    Args:
        env_fns: picklable factories, one per env, all giving the same spaces.
        step_timeout: seconds one ``step`` may take for all envs together.
        reset_timeout: seconds for building an env plus a reset, ``get_state``/``set_state``;
            None means ``max(10 * step_timeout, 60)`` (MineRL launches Minecraft on reset).
        max_worker_steps: restart a worker at the first episode end after this many steps in
            one process (MineRL leaks memory over hours); None never recycles.
        context: multiprocessing start method; default ``forkserver`` else ``spawn`` (see top).
        max_restart_attempts: consecutive failed restarts of one env before raising.
    """

    def __init__(
        self,
        env_fns: Sequence[Callable[[], gymnasium.Env]],
        step_timeout: float = 60.0,
        reset_timeout: float | None = None,
        max_worker_steps: int | None = None,
        context: str | None = None,
        max_restart_attempts: int = 3,
    ) -> None:
        self._init_common(len(env_fns), step_timeout, reset_timeout, max_worker_steps, max_restart_attempts)
        self._ctx = mp.get_context(context or _default_context())
        self._env_fn_bytes = [_pickle_env_fn(i, fn) for i, fn in enumerate(env_fns)]
        # _pending[i]: (recycle due, send failure or None) of a step in flight (step_send), else None
        # The finaliser holds this list (not self), so it sees restarted workers too.
        self._workers: list[WorkerHandle | None] = [None] * self.num_envs
        self._finalizer = weakref.finalize(self, shutdown, self._workers)
        try:
            self._start_all()
        except BaseException:
            self._finalizer()
            raise

    # --- process management ----------------------------------------------------------------------

    def _spawn(self, i: int) -> None:
        self._workers[i] = WorkerHandle.start(self._ctx, self._env_fn_bytes[i], f"EnvPool-worker-{i}")

    def _w(self, i: int) -> WorkerHandle:
        worker = self._workers[i]
        assert worker is not None, f"EnvPool: env {i} has no worker"
        return worker

    def _start_all(self) -> None:
        for i in range(self.num_envs):
            self._spawn(i)
        replies = self._gather(range(self.num_envs), self.reset_timeout)
        for i, (ok, payload) in replies.items():
            if not ok:
                hint = ""
                if str(payload).startswith("process died"):
                    hint = (
                        " (its traceback is on stderr; a script that creates an EnvPool needs an "
                        '`if __name__ == "__main__":` guard with the spawn/forkserver start methods)'
                    )
                raise RuntimeError(f"EnvPool: env {i} failed to start: {_full(payload)}{hint}")
            self._w(i).set_ready(payload)
        ready = [self._w(i).ready for i in range(self.num_envs)]
        self._set_spaces([(r.observation_space, r.action_space) for r in ready if r is not None])

    def _replace(self, indices: Sequence[int], reasons: dict[int, str], recycle: bool = False) -> dict:
        """Kill and restart workers, reset their envs; returns {i: (obs, info)}.

        Raises RuntimeError when an env fails `max_restart_attempts` restarts in a row.
        """
        pending, results = list(indices), {}
        for _attempt in range(self.max_restart_attempts):
            if recycle:  # a healthy worker: let its env close itself (MineRL stops its Java client)
                self._gather([i for i in pending if self._send(i, ("close", None)) is None], _CLOSE_GRACE_S)
            for i in pending:
                if not recycle:
                    logger.warning("EnvPool: restarting env %d: %s", i, reasons[i])
                self._w(i).kill()
                self._generation[i] += 1
                self._spawn(i)
            started = self._gather(pending, self.reset_timeout)
            for i, (ok, payload) in started.items():
                if ok:
                    self._w(i).set_ready(payload)
                    self._send(i, ("reset", (self._restart_seed(i), None)))
            reset = self._gather([i for i, (ok, _) in started.items() if ok], self.reset_timeout)
            failed = {i: payload for i, (ok, payload) in {**started, **reset}.items() if not ok}
            for i, (ok, payload) in reset.items():
                if ok:
                    results[i] = payload
            if recycle:
                self.recycles += len(pending) - len(failed)
                self.restarts += len(failed)
            else:
                self.restarts += len(pending)
            recycle = False
            reasons = {i: f"restart failed: {short_reason(r)}" for i, r in failed.items()}
            for i, r in failed.items():
                logger.warning("EnvPool: env %d did not come back: %s", i, _full(r))
            pending = sorted(failed)
            if not pending:
                return results
        raise RuntimeError(
            f"EnvPool: env {pending[0]} failed {self.max_restart_attempts} restarts in a row; "
            f"last: {reasons[pending[0]]}"
        )

    # --- messaging -------------------------------------------------------------------------------

    def _send(self, i: int, message: tuple[str, Any]) -> str | None:
        return self._w(i).send(message)

    def _gather(self, indices: Sequence[int] | range, timeout: float) -> dict[int, tuple[bool, Any]]:
        return gather({i: self._w(i) for i in indices}, timeout)

    # --- gymnasium VectorEnv API -----------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """Reset every env (env i gets ``seed + i``); returns batched obs and vector infos."""
        self._check_idle("reset")
        super().reset(seed=seed)
        self._base_seed = seed
        failures = {}
        for i in range(self.num_envs):
            env_seed = None if seed is None else seed + i
            reason = self._send(i, ("reset", (env_seed, options)))
            if reason is not None:
                failures[i] = reason
        sent = [i for i in range(self.num_envs) if i not in failures]
        env_infos: dict[int, dict] = {}
        for i, (ok, payload) in self._gather(sent, self.reset_timeout).items():
            if ok:
                self._last_obs[i], env_infos[i] = payload
            else:
                failures[i] = payload
        reasons = {i: short_reason(r) for i, r in failures.items()}
        env_results = {i: (self._last_obs[i], env_infos[i]) for i in env_infos}
        env_results.update(self._replace(sorted(failures), reasons))
        return self._report_reset(env_results, reasons)

    def step_send(self, actions: Any, indices: Sequence[int] | None = None) -> None:
        """Send one step to the envs ``indices`` (default all), without waiting for them.

        ``actions`` is batched over ``indices`` (in that order). Collect the results with
        `step_recv` on the same indices; in between the caller may work (e.g. act for other envs:
        the roller's double buffering) or send to other envs. Each env takes one step at a time.
        """
        idx = self._indices_to_send(indices)
        space = batch_space(self.single_action_space, len(idx))
        for i, action in zip(idx, iterate(space, actions)):
            due = self._recycle_due(i)
            self._pending[i] = (due, self._send(i, ("step", (action, not due))))

    def step_recv(
        self, indices: Sequence[int] | None = None
    ) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict]:
        """Wait for the steps sent to ``indices`` (default all) and return them batched over
        ``indices`` in that order, with the same failure, restart and autoreset handling as `step`."""
        idx = self._indices_to_recv(indices)
        due = {i: self._pending[i][0] for i in idx}
        failures: dict[int, str] = {i: self._pending[i][1] for i in idx if self._pending[i][1] is not None}
        for i in idx:
            self._pending[i] = None
        sent = [i for i in idx if i not in failures]
        replies = self._gather(sent, self.step_timeout)
        failures.update({i: payload for i, (ok, payload) in replies.items() if not ok})

        outcomes: dict[int, StepOutcome] = {}
        to_recycle = []
        for i, (ok, payload) in replies.items():
            if not ok:
                continue
            obs, reward, terminated, truncated, info, final = payload
            self._w(i).steps += 1
            if final is None and due[i] and (terminated or truncated):
                final = (obs, info)  # not reset in the worker: the worker is replaced below
                to_recycle.append(i)
            outcomes[i] = StepOutcome(obs, reward, terminated, truncated, info, final)
        if to_recycle:
            reasons = {i: f"recycled after {self._w(i).steps} steps" for i in to_recycle}
            for i, (obs, info) in self._replace(to_recycle, reasons, recycle=True).items():
                outcomes[i].obs, outcomes[i].info = obs, info
        if failures:
            restarted = self._replace(sorted(failures), {i: short_reason(r) for i, r in failures.items()})
            for i, reason in failures.items():
                logger.warning("EnvPool: env %d failed: %s", i, _full(reason))
                obs, info = restarted[i]
                outcomes[i] = StepOutcome.after_restart(self._last_obs[i], obs, info, short_reason(reason))
        return self._report_step(idx, outcomes)

    def _recycle_due(self, i: int) -> bool:
        return self.max_worker_steps is not None and self._w(i).steps + 1 >= self.max_worker_steps

    # --- state for exact resume ------------------------------------------------------------------

    @property
    def supports_state(self) -> bool:
        """True when every env can capture and restore its whole state (e.g. the voxel world)."""
        return all(w is not None and w.supports_state for w in self._workers)

    def get_state(self) -> list[Any]:
        """Each env's state (None for envs that cannot capture one); see `set_state`."""
        self._check_idle("get_state")
        indices = [i for i in range(self.num_envs) if self._w(i).supports_state]
        replies = self._call(indices, "get_state", [None] * self.num_envs)
        return [replies.get(i) for i in range(self.num_envs)]

    def set_state(self, states: Sequence[Any]) -> Any:
        """Restore every env from `get_state` output; returns the batched current observations."""
        self._check_idle("set_state")
        self._check_states(states, [self._w(i).supports_state for i in range(self.num_envs)])
        replies = self._call(range(self.num_envs), "set_state", list(states))
        for i, obs in replies.items():
            self._last_obs[i] = obs
        return self._batch_obs()

    def _call(self, indices: Sequence[int] | range, command: str, payloads: list[Any]) -> dict[int, Any]:
        """Run a command on some workers; a failure kills the worker (the next step restarts it)
        and raises, since a state that was not captured or restored must not pass silently."""
        failures = {}
        for i in indices:
            reason = self._send(i, (command, payloads[i]))
            if reason is not None:
                failures[i] = reason
        replies = self._gather([i for i in indices if i not in failures], self.reset_timeout)
        failures.update({i: payload for i, (ok, payload) in replies.items() if not ok})
        if failures:
            for i, reason in failures.items():
                self._w(i).kill()
                self._w(i).broken = f"{command} failed: {short_reason(reason)}"
            i = min(failures)
            raise RuntimeError(f"EnvPool.{command}: env {i} failed: {_full(failures[i])}")
        return {i: payload for i, (_, payload) in replies.items()}

    # --- closing ---------------------------------------------------------------------------------

    def close_extras(self, **kwargs: Any) -> None:
        """Ask every env to close, wait a little, then kill whatever is left; idempotent."""
        live = [i for i, w in enumerate(self._workers) if w is not None and w.process.is_alive()]
        sent = [i for i in live if self._send(i, ("close", None)) is None]
        if sent:
            self._gather(sent, min(_CLOSE_GRACE_S, self.reset_timeout))
        self._finalizer()


def _pickle_env_fn(i: int, env_fn: Callable[[], gymnasium.Env]) -> bytes:
    try:
        return pickle.dumps(env_fn)
    except Exception as exc:
        raise TypeError(
            f"EnvPool: env_fns[{i}] cannot be pickled for its worker process ({exc}); use a "
            "module-level function or functools.partial of one, not a lambda or local function"
        ) from exc


def _full(reason: Any) -> str:
    return str(reason)
