"""The vector-env contract both env pools honour, written once: `EnvPool` (worker processes of
this rank, vpt_rl/envs/pool.py) and `RayEnvPool` (actors on a Ray cluster, vpt_rl/envs/ray_pool.py)
differ only in how they reach their envs; what a step *reports* is built here.

The contract (docs/design.md "Public names", `EnvPool`): a gymnasium ``VectorEnv`` with same-step
autoreset (the next episode's first observation is returned, the last one travels in
``infos["final_obs"]``/``infos["final_info"]``); a failed env is restarted and its step reported
``truncated`` with reward 0, ``final_obs`` its last good observation and ``infos["restarted"]``
the reason; ``restarts`` / ``recycles`` count replacements; ``step_send`` / ``step_recv`` step
groups of envs while the caller works (vpt_rl/algo/roller.py's double buffering).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array


@dataclass
class StepOutcome:
    """What one env's step reports (a row of the batched step)."""

    obs: Any
    reward: float
    terminated: bool
    truncated: bool
    info: dict
    final: tuple[Any, dict] | None = None  # (final_obs, final_info) when an episode ended
    restarted: str | None = None  # the failure reason when the env was restarted

    @classmethod
    def after_restart(cls, last_obs: Any, obs: Any, info: dict, reason: str) -> StepOutcome:
        """A failed step: the episode is cut (truncated, so the learner bootstraps from the last
        good observation, docs/design.md "Decisions"), reward 0, the restarted env's first observation."""
        return cls(obs, 0.0, False, True, info, final=(last_obs, {}), restarted=reason)


class VectorPoolBase(VectorEnv):
    """Bookkeeping shared by the env pools: argument checks, spaces, restart seeds, step and reset
    reports, misuse errors. Subclasses set ``_pending[i]`` (anything not None) while env i has a
    step in flight and implement `step_send` / `step_recv`."""

    def _init_common(
        self,
        num_envs: int,
        step_timeout: float,
        reset_timeout: float | None,
        max_worker_steps: int | None,
        max_restart_attempts: int,
    ) -> None:
        name = type(self).__name__
        if num_envs == 0:
            raise ValueError(f"{name} needs at least one env_fn")
        if step_timeout <= 0:
            raise ValueError(f"step_timeout must be > 0 seconds, got {step_timeout}")
        if max_worker_steps is not None and max_worker_steps < 1:
            raise ValueError(f"max_worker_steps must be >= 1 or None, got {max_worker_steps}")
        self.num_envs = num_envs
        self.step_timeout = float(step_timeout)
        # MineRL launches Minecraft on reset: a reset may take far longer than a step
        self.reset_timeout = float(reset_timeout) if reset_timeout else max(10 * self.step_timeout, 60.0)
        self.max_worker_steps = max_worker_steps
        self.max_restart_attempts = max_restart_attempts
        self.metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}
        self.restarts = 0  # envs replaced after a failure
        self.recycles = 0  # envs replaced because of max_worker_steps
        self._generation = [0] * num_envs  # replacements per env after the first start
        self._base_seed: int | None = None
        self._last_obs: list[Any] = [None] * num_envs
        self._pending: list[Any] = [None] * num_envs

    def _set_spaces(self, spaces: Sequence[tuple[gymnasium.Space, gymnasium.Space]]) -> None:
        """Check that every env has env 0's (observation, action) spaces, then batch them."""
        first = spaces[0]
        for i, pair in enumerate(spaces[1:], start=1):
            if pair != first:
                raise ValueError(
                    f"{type(self).__name__}: env {i} has spaces {pair[0]}, {pair[1]}; "
                    f"env 0 has {first[0]}, {first[1]}"
                )
        self.single_observation_space, self.single_action_space = first
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

    def _restart_seed(self, i: int) -> int | None:
        """A fresh seed for replacement number `generation` of env i, deterministic given the
        reset seed (a restarted env must not replay the episode it started with)."""
        if self._base_seed is None:
            return None
        entropy = [self._base_seed % 2**32, i, self._generation[i]]
        return int(np.random.SeedSequence(entropy).generate_state(1)[0])

    # --- misuse checks ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError(f"{type(self).__name__} is closed")

    def _check_idle(self, what: str) -> None:
        self._check_open()
        busy = [i for i, p in enumerate(self._pending) if p is not None]
        if busy:
            raise RuntimeError(
                f"{type(self).__name__}.{what}: envs {busy} have a step in flight (step_recv first)"
            )

    def _indices_to_send(self, indices: Sequence[int] | None) -> list[int]:
        self._check_open()
        idx = list(range(self.num_envs)) if indices is None else [int(i) for i in indices]
        if any(self._last_obs[i] is None for i in idx):
            raise RuntimeError(f"{type(self).__name__}.step() called before reset()")
        busy = [i for i in idx if self._pending[i] is not None]
        if busy:
            raise RuntimeError(
                f"{type(self).__name__}.step_send: envs {busy} still have a step in flight (step_recv first)"
            )
        return idx

    def _indices_to_recv(self, indices: Sequence[int] | None) -> list[int]:
        self._check_open()
        idx = list(range(self.num_envs)) if indices is None else [int(i) for i in indices]
        missing = [i for i in idx if self._pending[i] is None]
        if missing:
            raise RuntimeError(f"{type(self).__name__}.step_recv: no step was sent to envs {missing}")
        return idx

    def _check_states(self, states: Sequence[Any], supports: Sequence[bool]) -> None:
        name = type(self).__name__
        if len(states) != self.num_envs:
            raise ValueError(f"{name}.set_state: got {len(states)} states for {self.num_envs} envs")
        for i, state in enumerate(states):
            if state is None or not supports[i]:
                raise ValueError(
                    f"{name}.set_state: env {i} has no state to restore (state is None "
                    f"or the env does not support get_state/set_state)"
                )

    # --- reports ---------------------------------------------------------------------------------

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict]:
        """Step every env in parallel (send all, then collect)."""
        self.step_send(actions)
        return self.step_recv()

    def step_send(self, actions: Any, indices: Sequence[int] | None = None) -> None:
        raise NotImplementedError

    def step_recv(
        self, indices: Sequence[int] | None = None
    ) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict]:
        raise NotImplementedError

    def _report_step(
        self, idx: list[int], outcomes: dict[int, StepOutcome]
    ) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict]:
        """The batched step over ``idx`` (in that order); remembers each env's new observation."""
        n = len(idx)
        rewards = np.zeros(n, dtype=np.float64)
        terminated = np.zeros(n, dtype=np.bool_)
        truncated = np.zeros(n, dtype=np.bool_)
        infos: dict[str, Any] = {}
        for k, i in enumerate(idx):
            o = outcomes[i]
            rewards[k], terminated[k], truncated[k] = o.reward, o.terminated, o.truncated
            if o.restarted is not None:
                self._add_object(infos, "restarted", i, o.restarted)
        for i in idx:  # infos are built over all envs by gymnasium's helper, then cut to idx
            o = outcomes[i]
            if o.final is not None:
                self._add_object(infos, "final_obs", i, o.final[0])
                self._add_object(infos, "final_info", i, o.final[1])
            infos = self._add_info(infos, o.info, i)
            self._last_obs[i] = o.obs
        if idx != list(range(self.num_envs)):
            infos = select_infos(infos, idx)
        return self._batch_obs(idx), rewards, terminated, truncated, infos

    def _report_reset(
        self, results: dict[int, tuple[Any, dict]], restarted: dict[int, str]
    ) -> tuple[Any, dict]:
        """The batched reset of every env: ``results[i] = (obs, info)``; ``restarted[i]`` the
        reason where env i had to be replaced to get there."""
        infos: dict[str, Any] = {}
        for i in range(self.num_envs):
            self._last_obs[i], info = results[i]
            if i in restarted:
                self._add_object(infos, "restarted", i, restarted[i])
            infos = self._add_info(infos, info, i)
        return self._batch_obs(), infos

    def _add_object(self, infos: dict[str, Any], key: str, i: int, value: Any) -> None:
        """Object-array info with its ``_key`` mask (gymnasium's vector info convention)."""
        if key not in infos:
            infos[key] = np.full(self.num_envs, None, dtype=object)
            infos[f"_{key}"] = np.zeros(self.num_envs, dtype=np.bool_)
        infos[key][i] = value
        infos[f"_{key}"][i] = True

    def _batch_obs(self, indices: Sequence[int] | None = None) -> Any:
        # A fresh array each call: callers may keep the batch (the roller stores it).
        obs = self._last_obs if indices is None else [self._last_obs[i] for i in indices]
        out: Any = create_empty_array(self.single_observation_space, len(obs))
        return concatenate(self.single_observation_space, obs, out)


def select_infos(infos: dict[str, Any], idx: list[int]) -> dict[str, Any]:
    """Vector infos (arrays over all envs, nested dicts) cut to the envs ``idx``, in that order."""
    return {
        key: select_infos(value, idx) if isinstance(value, dict) else np.asarray(value)[idx]
        for key, value in infos.items()
    }


def short_reason(reason: str) -> str:
    """The first line of a failure reason (the rest is its traceback)."""
    return reason.splitlines()[0] if reason else reason
