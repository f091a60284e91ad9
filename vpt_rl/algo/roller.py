"""Rollouts: step all envs with one batched `policy.act` per frame, memory carried and masked by
`first`, into `[envs, T]` segments that keep the memory state at the segment start.

Why not SB3's `collect_rollouts`: it assumes a stateless (or LSTM-tuple) policy and a flat
`RolloutBuffer`; here the memory is a per-block K/V cache, the truncation bootstrap needs a
forward of the final observation from that env's memory, and the frozen prior keeps its own
memory across segments.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vpt_rl.algo.buffer import Segment
from vpt_rl.algo.episodes import EpisodeStats
from vpt_rl.algo.prior_kl import PriorKL
from vpt_rl.model import action_heads
from vpt_rl.model.policy import VPTPolicy
from vpt_rl.model.state import State, state_cat, state_clone, state_select, state_to

__all__ = ["Roller", "EpisodeStats"]  # EpisodeStats re-exported from episodes.py


def _obs_img(obs: Any) -> np.ndarray:
    img = obs["img"] if isinstance(obs, dict) else obs
    return np.asarray(img)


def _final_items(infos: dict) -> dict[int, float]:
    """env -> total item count in the final info's inventory (PolicySpaceWrapper puts the
    non-zero counts in ``info["inventory"]``), for the envs whose episode just ended."""
    out: dict[int, float] = {}
    final_info = infos.get("final_info")
    if final_info is None:
        return out
    for i in np.flatnonzero(infos.get("_final_info", [])):
        info = final_info[i]
        if isinstance(info, dict) and isinstance(info.get("inventory"), dict):
            out[int(i)] = float(sum(info["inventory"].values()))
    return out


def _joined(states: list[State]) -> State:
    """The memory state of all envs from the per-group states (rows in env order)."""
    return states[0] if len(states) == 1 else state_cat(states)


def _restarted_rows(infos: dict, n: int) -> np.ndarray:
    """bool (n,): the envs whose worker was restarted in this step (EnvPool's ``_restarted`` mask)."""
    mask = infos.get("_restarted")
    return np.zeros(n, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)


class Roller:
    """Collects segments from a vector env (EnvPool API: batched ``{"img": (N,H,W,3)}`` obs,
    ``{"buttons","camera"}`` actions, same-step autoreset, ``infos["final_obs"]``).

    Carries across segments: the current observation and `first` flags, the policy's memory
    state and (with ``prior_kl``) the prior's own memory state, reset by the same `first` flags
    (docs/implementation_details.md item 7: a prior whose memory is reset every chunk sees a
    different history than the policy). ``prior_kl`` runs the prior over each segment and stores
    in it what its storage mode keeps (`PriorKL.run_segment`); None: no prior, no KL term.

    ``samplers``: one `torch.Generator` per env (on ``device``), seeded from (seed, global env
    index) by the trainer (`vpt_rl.algo.ppg_setup.sampler_seed`) and checkpointed: env i's actions
    depend only on its own stream, whatever the grouping or the number of ranks the envs are
    spread over, so a 2-rank run reproduces a 1-rank run with all the envs
    (docs/implementation_details.md items 6 and 32).

    ``overlap=True`` (double buffering; the env needs `step_send`/`step_recv`, as EnvPool has):
    the envs are split into two halves and one half steps while the policy acts for the other, so
    env time and policy time overlap instead of adding up (docs/implementation_details.md item
    6b). With per-env streams the actions equal lockstep's, up to the float rounding of a
    half-size batch in the forward pass (identical in the tests). ``overlap=False`` is lockstep:
    one batched act, then every env steps.

    ``env_offset``: the global index of env 0 (data-parallel ranks own consecutive envs).
    """

    def __init__(
        self,
        env: Any,
        policy: VPTPolicy,
        segment_len: int,
        device: torch.device,
        samplers: Sequence[torch.Generator],
        *,
        prior_kl: PriorKL | None = None,
        overlap: bool = False,
        episode_window: int = 20,
        env_offset: int = 0,
    ) -> None:
        self.env = env
        self.policy = policy
        self.prior_kl = prior_kl
        self.segment_len = segment_len
        self.device = torch.device(device)
        self.num_envs = env.num_envs
        if isinstance(samplers, torch.Generator) or len(samplers) != self.num_envs:
            got = "one shared generator" if isinstance(samplers, torch.Generator) else f"{len(samplers)}"
            raise ValueError(f"Roller: samplers must be one generator per env ({self.num_envs}), got {got}")
        self.samplers = list(samplers)
        if overlap and not (hasattr(env, "step_send") and hasattr(env, "step_recv")):
            raise ValueError("Roller: double buffering needs an env with step_send/step_recv (EnvPool)")
        self.overlap = overlap
        groups = min(2 if overlap else 1, self.num_envs)
        self.rows = [np.asarray(r) for r in np.array_split(np.arange(self.num_envs), groups)]
        self.stats = EpisodeStats(self.num_envs, episode_window, env_offset=env_offset)
        self.steps_done = 0  # env steps per env since the run started (episode records' clock)
        self.img: np.ndarray | None = None
        self.first = np.ones(self.num_envs, dtype=bool)
        self.states: list[State] | None = None  # one memory state per group of envs
        self.prior_state: State | None = None

    @property
    def groups(self) -> int:
        """The row groups that take turns: 1 = lockstep, 2 = double buffering."""
        return len(self.rows)

    @property
    def state(self) -> State | None:
        """The policy's memory state of all envs (rows in env order)."""
        return None if self.states is None else _joined(self.states)

    def _split(self, state: State) -> list[State]:
        if len(self.rows) == 1:
            return [state]
        return [state_select(state, torch.as_tensor(r, device=self.device)) for r in self.rows]

    def _started(self) -> tuple[np.ndarray, list[State]]:
        if self.img is None or self.states is None:
            raise RuntimeError("Roller: call start() first")
        return self.img, self.states

    # ------------------------------------------------------------------ start / resume
    def start(self, obs: Any) -> None:
        """Begin fresh episodes from ``obs`` (after ``env.reset``): empty memories, first=True."""
        self.img = _obs_img(obs).copy()
        self.first = np.ones(self.num_envs, dtype=bool)
        self.states = [self.policy.initial_state(len(r), device=self.device) for r in self.rows]
        self.prior_state = (
            None if self.prior_kl is None else self.prior_kl.initial_state(self.num_envs, self.device)
        )
        self.stats.reset_envs(np.arange(self.num_envs))

    def state_dict(self) -> dict:
        """Everything needed to continue exactly (memory states on CPU)."""
        img, states = self._started()
        return {
            "img": img.copy(),
            "first": self.first.copy(),
            "state": state_to(_joined(states), "cpu"),
            "prior_state": None if self.prior_state is None else state_to(self.prior_state, "cpu"),
            "stats": self.stats.state_dict(),
            "steps_done": self.steps_done,
            "samplers": [g.get_state() for g in self.samplers],
        }

    def load_state_dict(self, d: dict, restore_envs: bool = True) -> None:
        """Continue from `state_dict` output. ``restore_envs=False`` (envs that cannot restore
        their state were reset instead): keep the completed-episode statistics, start fresh
        episodes (`start`), and forget the running return and length of the episodes the resume
        cut, so the first episodes logged after it are the new ones, not the old ones' sums."""
        self.stats.load_state_dict(d["stats"])
        if not restore_envs:
            self.stats.reset_envs(np.arange(self.num_envs))
        self.steps_done = int(d.get("steps_done", 0))
        if len(d["samplers"]) != self.num_envs:
            raise ValueError(
                f"Roller.load_state_dict: {len(d['samplers'])} sampler states for {self.num_envs} envs"
            )
        for g, sampler_state in zip(self.samplers, d["samplers"]):
            g.set_state(sampler_state)
        if not restore_envs:
            return
        self.img = np.asarray(d["img"]).copy()
        self.first = np.asarray(d["first"]).copy()
        self.states = self._split(state_to([tuple(b) for b in d["state"]], self.device))
        if self.prior_kl is not None:
            if d["prior_state"] is None:
                raise ValueError("Roller.load_state_dict: the checkpoint has no prior memory state")
            self.prior_state = state_to([tuple(b) for b in d["prior_state"]], self.device)

    # ------------------------------------------------------------------ helpers
    def _value(self, img_bhwc: Tensor, first_b: Tensor, state: State) -> Tensor:
        """Raw-unit value of one frame per row from ``state``, without keeping the new state."""
        out, _ = self.policy(img_bhwc[:, None], first_b[:, None], state)
        return self.policy.value_head.denormalize(out.vpred)[:, 0]

    def _final_values(self, infos: dict, rows: np.ndarray, state: State) -> Tensor:
        """V(final obs) of the truncated ``rows`` (positions in ``infos`` and ``state``), each from
        its env's memory just before the reset (docs/design.md "Decisions": truncation bootstraps
        from the value of `final_obs`)."""
        imgs = np.stack([_obs_img(infos["final_obs"][i]) for i in rows])
        img = torch.from_numpy(imgs).to(self.device)
        first = torch.zeros(len(rows), dtype=torch.bool, device=self.device)
        rows_t = torch.as_tensor(rows, dtype=torch.long, device=self.device)
        return self._value(img, first, state_select(state, rows_t))

    # ------------------------------------------------------------------ collect
    @torch.no_grad()
    def collect(self) -> Segment:
        """Step every env ``segment_len`` times and return the segment (CPU tensors)."""
        img, states = self._started()
        n, t_len = self.num_envs, self.segment_len
        state0 = state_to(state_clone(_joined(states)), "cpu")
        prior_state0 = None if self.prior_state is None else state_to(state_clone(self.prior_state), "cpu")
        buf = _SegmentBuffer(n, t_len, img.shape[1:])
        # the pipeline: act for group g at step t, send; while its envs step, the other group's
        # results come back and it acts. With one group this is plain lockstep.
        for g in range(self.groups):
            self._act(g, 0, buf)
        for t in range(t_len):
            for g in range(self.groups):
                self._receive(g, t, buf)
                if t + 1 < t_len:
                    self._act(g, t + 1, buf)
        next_value = torch.cat(
            [
                self._value(
                    torch.from_numpy(img[r]).to(self.device),
                    torch.from_numpy(self.first[r]).to(self.device),
                    state,
                ).cpu()
                for r, state in zip(self.rows, states)
            ]
        )
        self.steps_done += t_len
        seg = buf.segment(next_value, state0)
        if self.prior_kl is not None and prior_state0 is not None:
            self.prior_state = self.prior_kl.run_segment(seg, prior_state0, self.device)
        seg.check()
        return seg

    def _act(self, g: int, t: int, buf: _SegmentBuffer) -> None:
        """Sample group g's actions for step t, record them, send them to its envs."""
        img_all, states = self._started()
        rows = self.rows[g]
        img = torch.from_numpy(img_all[rows]).to(self.device)
        first = torch.from_numpy(self.first[rows]).to(self.device)
        # one stream per env: its actions do not depend on how envs are grouped or spread
        draws = [action_heads.draw_noise((1, 1), self.device, self.samplers[i]) for i in rows]
        noise = {k: torch.cat([d[k] for d in draws]) for k in ("buttons", "camera")}
        action, logprob, value, states[g] = self.policy.act(
            img[:, None], first[:, None], states[g], noise=noise
        )
        buf.record_act(rows, t, img_all[rows], self.first[rows], action, logprob, value)
        env_action = {
            "buttons": action["buttons"][:, 0].cpu().numpy(),
            "camera": action["camera"][:, 0].cpu().numpy(),
        }
        if self.groups == 1:
            buf.pending = env_action  # lockstep: `_receive` steps every env at once
        else:
            self.env.step_send(env_action, rows)

    def _receive(self, g: int, t: int, buf: _SegmentBuffer) -> None:
        """Group g's step t results: rewards, end flags, truncation bootstrap, statistics."""
        img_all, states = self._started()
        rows = self.rows[g]
        if self.groups == 1:
            obs, reward, term, trunc, infos = self.env.step(buf.pending)
        else:
            obs, reward, term, trunc, infos = self.env.step_recv(rows)
        term, trunc = np.asarray(term, dtype=bool), np.asarray(trunc, dtype=bool)
        final_value = torch.zeros(len(rows))
        restarted = _restarted_rows(infos, len(rows))
        boot = np.flatnonzero(trunc & ~term & ~restarted)
        if len(boot):
            final_value[boot] = self._final_values(infos, boot, states[g]).cpu()
        # why: a restarted worker's final_obs is o_t itself, already in memory; bootstrap from
        # V(o_t), computed before the step, instead of feeding o_t twice
        # (docs/implementation_details.md item 4)
        crashed = np.flatnonzero(trunc & ~term & restarted)
        final_value[crashed] = buf.values[rows[crashed], t]
        buf.record_step(rows, t, reward, term, trunc, final_value)
        self.stats.step(
            np.asarray(reward, dtype=np.float64),
            term | trunc,
            _final_items(infos),
            rows=rows,
            step_index=self.steps_done + t,
        )
        img_all[rows] = _obs_img(obs)
        self.first[rows] = term | trunc


class _SegmentBuffer:
    """The arrays of one segment, filled row group by row group and step by step."""

    def __init__(self, n: int, t_len: int, frame_shape: tuple[int, ...]) -> None:
        self.img = torch.empty((n, t_len, *frame_shape), dtype=torch.uint8)
        self.first = torch.zeros(n, t_len, dtype=torch.bool)
        self.buttons = torch.zeros(n, t_len, dtype=torch.int64)
        self.camera = torch.zeros(n, t_len, dtype=torch.int64)
        self.logprobs = torch.zeros(n, t_len)
        self.values = torch.zeros(n, t_len)
        self.rewards = np.zeros((n, t_len), dtype=np.float32)
        self.terminated = np.zeros((n, t_len), dtype=bool)
        self.truncated = np.zeros((n, t_len), dtype=bool)
        self.final_value = torch.zeros(n, t_len)
        self.pending: dict[str, np.ndarray] | None = None

    def record_act(self, rows, t, img, first, action, logprob, value) -> None:
        r = torch.as_tensor(rows)
        self.img[r, t] = torch.from_numpy(img)
        self.first[r, t] = torch.from_numpy(first.copy())
        self.buttons[r, t] = action["buttons"][:, 0].cpu()
        self.camera[r, t] = action["camera"][:, 0].cpu()
        self.logprobs[r, t] = logprob[:, 0].cpu()
        self.values[r, t] = value[:, 0].cpu()

    def record_step(self, rows, t, reward, term, trunc, final_value) -> None:
        self.rewards[rows, t], self.terminated[rows, t], self.truncated[rows, t] = reward, term, trunc
        self.final_value[torch.as_tensor(rows), t] = final_value

    def segment(self, next_value: Tensor, state0: State) -> Segment:
        return Segment(
            img_bthwc=self.img,
            first_bt=self.first,
            action={"buttons": self.buttons, "camera": self.camera},
            logprob_bt=self.logprobs,
            vpred_bt=self.values,
            reward_bt=torch.from_numpy(self.rewards),
            terminated_bt=torch.from_numpy(self.terminated),
            truncated_bt=torch.from_numpy(self.truncated),
            final_value_bt=self.final_value,
            next_value_b=next_value,
            state0=state0,
        )
