"""Rollouts: step all envs with one batched `policy.act` per frame, memory carried and masked by
`first`, into `[envs, T]` segments that keep the memory state at the segment start.

Why not SB3's `collect_rollouts`: it assumes a stateless (or LSTM-tuple) policy and a flat
`RolloutBuffer`; here the memory is a per-block K/V cache, the truncation bootstrap needs a
forward of the final observation from that env's memory, and the frozen prior keeps its own
memory across segments.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vpt_rl.algo.buffer import Segment
from vpt_rl.model.policy import VPTPolicy
from vpt_rl.model.state import State, state_cat, state_clone, state_select, state_to

__all__ = ["Roller", "EpisodeStats"]


class EpisodeStats:
    """Running return/length per env and a window of completed episodes (for `rollout/*` tags)."""

    def __init__(self, num_envs: int, window: int = 20) -> None:
        self.ret = np.zeros(num_envs, dtype=np.float64)
        self.len = np.zeros(num_envs, dtype=np.int64)
        self.returns: deque[float] = deque(maxlen=window)
        self.lengths: deque[int] = deque(maxlen=window)
        self.items: deque[float] = deque(maxlen=window)
        self.first_returns: list[float] = []  # the run's first `window` episodes (the summary's "start")
        self.window = window
        self.completed = 0

    def step(self, reward: np.ndarray, ended: np.ndarray, items: dict[int, float] | None = None) -> None:
        """Add one step's rewards; close the episodes that ``ended`` (``items``: env -> items held
        at the episode end, where the env reports an inventory)."""
        self.ret += reward
        self.len += 1
        for i in np.flatnonzero(ended):
            self.returns.append(float(self.ret[i]))
            if len(self.first_returns) < self.window:
                self.first_returns.append(float(self.ret[i]))
            self.lengths.append(int(self.len[i]))
            if items and i in items:
                self.items.append(items[i])
            self.completed += 1
            self.ret[i] = 0.0
            self.len[i] = 0

    def reset_envs(self, rows: np.ndarray) -> None:
        """Forget the running episodes of ``rows`` (they restart without being counted)."""
        self.ret[rows] = 0.0
        self.len[rows] = 0

    def mean_return(self) -> float:
        """Mean return over the window (nan before the first episode ends)."""
        return float(np.mean(self.returns)) if self.returns else float("nan")

    def first_mean_return(self) -> float:
        """Mean return of the run's first `window` completed episodes (nan before the first)."""
        return float(np.mean(self.first_returns)) if self.first_returns else float("nan")

    def mean_items(self) -> float:
        """Mean number of items held at episode end over the window (nan if never reported)."""
        return float(np.mean(self.items)) if self.items else float("nan")

    def mean_length(self) -> float:
        """Mean episode length over the window (nan before the first episode ends)."""
        return float(np.mean(self.lengths)) if self.lengths else float("nan")

    def state_dict(self) -> dict:
        return {
            "ret": self.ret.copy(),
            "len": self.len.copy(),
            "returns": list(self.returns),
            "lengths": list(self.lengths),
            "items": list(self.items),
            "first_returns": list(self.first_returns),
            "completed": self.completed,
        }

    def load_state_dict(self, d: dict) -> None:
        self.ret, self.len = np.array(d["ret"]), np.array(d["len"])
        self.returns.clear()
        self.returns.extend(d["returns"])
        self.lengths.clear()
        self.lengths.extend(d["lengths"])
        self.items.clear()
        self.items.extend(d["items"])
        self.first_returns = list(d.get("first_returns", []))
        self.completed = int(d["completed"])


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


def _restarted_rows(infos: dict, n: int) -> np.ndarray:
    """bool (n,): the envs whose worker was restarted in this step (EnvPool's ``_restarted`` mask)."""
    mask = infos.get("_restarted")
    return np.zeros(n, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)


class Roller:
    """Collects segments from a vector env (EnvPool API: batched ``{"img": (N,H,W,3)}`` obs,
    ``{"buttons","camera"}`` actions, same-step autoreset, ``infos["final_obs"]``).

    Carries across segments: the current observation and `first` flags, the policy's memory
    state and (when a prior is given) the prior's own memory state, reset by the same `first`
    flags (issue 4: a prior whose memory is reset every chunk sees a different history than the
    policy). Actions are sampled with ``generator`` (its state is checkpointed for exact resume).
    """

    def __init__(
        self,
        env: Any,
        policy: VPTPolicy,
        prior: VPTPolicy | None,
        segment_len: int,
        device: torch.device,
        generator: torch.Generator,
        episode_window: int = 20,
        prior_chunks: int = 1,
    ) -> None:
        self.env = env
        self.policy = policy
        self.prior = prior
        self.segment_len = segment_len
        self.device = torch.device(device)
        self.generator = generator
        self.prior_chunks = prior_chunks
        self.num_envs = env.num_envs
        self.stats = EpisodeStats(self.num_envs, episode_window)
        self.img: np.ndarray | None = None
        self.first = np.ones(self.num_envs, dtype=bool)
        self.state: State | None = None
        self.prior_state: State | None = None

    # ------------------------------------------------------------------ start / resume
    def start(self, obs: Any) -> None:
        """Begin fresh episodes from ``obs`` (after ``env.reset``): empty memories, first=True."""
        self.img = _obs_img(obs).copy()
        self.first = np.ones(self.num_envs, dtype=bool)
        self.state = self.policy.initial_state(self.num_envs, device=self.device)
        self.prior_state = (
            None if self.prior is None else self.prior.initial_state(self.num_envs, device=self.device)
        )
        self.stats.reset_envs(np.arange(self.num_envs))

    def state_dict(self) -> dict:
        """Everything needed to continue exactly (memory states on CPU)."""
        return {
            "img": self.img.copy(),
            "first": self.first.copy(),
            "state": state_to(self.state, "cpu"),
            "prior_state": None if self.prior_state is None else state_to(self.prior_state, "cpu"),
            "stats": self.stats.state_dict(),
        }

    def load_state_dict(self, d: dict, restore_envs: bool = True) -> None:
        """Continue from `state_dict` output. ``restore_envs=False`` (envs that cannot restore
        their state were reset instead): keep the statistics, start fresh episodes (`start`)."""
        self.stats.load_state_dict(d["stats"])
        if not restore_envs:
            return
        self.img = np.asarray(d["img"]).copy()
        self.first = np.asarray(d["first"]).copy()
        self.state = state_to([tuple(b) for b in d["state"]], self.device)
        if self.prior is not None:
            if d["prior_state"] is None:
                raise ValueError("Roller.load_state_dict: the checkpoint has no prior memory state")
            self.prior_state = state_to([tuple(b) for b in d["prior_state"]], self.device)

    # ------------------------------------------------------------------ helpers
    def _value(self, img_bhwc: Tensor, first_b: Tensor, state: State) -> Tensor:
        """Raw-unit value of one frame per row from ``state``, without keeping the new state."""
        out, _ = self.policy(img_bhwc[:, None], first_b[:, None], state)
        return self.policy.value_head.denormalize(out.vpred)[:, 0]

    def _final_values(self, infos: dict, rows: np.ndarray, state: State) -> Tensor:
        """V(final obs) of the truncated ``rows``, each from its env's memory just before the
        reset (DESIGN.md "Decisions": truncation bootstraps from the value of `final_obs`)."""
        imgs = np.stack([_obs_img(infos["final_obs"][i]) for i in rows])
        img = torch.from_numpy(imgs).to(self.device)
        first = torch.zeros(len(rows), dtype=torch.bool, device=self.device)
        rows_t = torch.as_tensor(rows, dtype=torch.long, device=self.device)
        return self._value(img, first, state_select(state, rows_t))

    # ------------------------------------------------------------------ collect
    @torch.no_grad()
    def collect(self) -> Segment:
        """Step every env ``segment_len`` times and return the segment (CPU tensors)."""
        if self.img is None or self.state is None:
            raise RuntimeError("Roller.collect() called before start()")
        n, t_len = self.num_envs, self.segment_len
        state0 = state_to(state_clone(self.state), "cpu")
        prior_state0 = None if self.prior_state is None else state_to(state_clone(self.prior_state), "cpu")
        imgs, firsts, buttons, cameras, logprobs, values = [], [], [], [], [], []
        rewards = np.zeros((n, t_len), dtype=np.float32)
        terminated = np.zeros((n, t_len), dtype=bool)
        truncated = np.zeros((n, t_len), dtype=bool)
        final_value = torch.zeros(n, t_len)
        state = self.state
        for t in range(t_len):
            img = torch.from_numpy(self.img).to(self.device)
            first = torch.from_numpy(self.first).to(self.device)
            action, logprob, value, state = self.policy.act(
                img[:, None], first[:, None], state, generator=self.generator
            )
            imgs.append(torch.from_numpy(self.img))
            firsts.append(torch.from_numpy(self.first.copy()))
            buttons.append(action["buttons"][:, 0].cpu())
            cameras.append(action["camera"][:, 0].cpu())
            logprobs.append(logprob[:, 0].cpu())
            values.append(value[:, 0].cpu())
            env_action = {"buttons": buttons[-1].numpy(), "camera": cameras[-1].numpy()}
            obs, reward, term, trunc, infos = self.env.step(env_action)
            term, trunc = np.asarray(term, dtype=bool), np.asarray(trunc, dtype=bool)
            rewards[:, t], terminated[:, t], truncated[:, t] = reward, term, trunc
            restarted = _restarted_rows(infos, n)
            boot = np.flatnonzero(trunc & ~term & ~restarted)
            if len(boot):
                final_value[boot, t] = self._final_values(infos, boot, state).cpu()
            # why: a restarted worker's final_obs is o_t itself, already in memory; bootstrap from
            # V(o_t), computed before the step, instead of feeding o_t twice (issue 12 item 1)
            crashed = np.flatnonzero(trunc & ~term & restarted)
            final_value[crashed, t] = values[-1][crashed]
            self.stats.step(np.asarray(reward, dtype=np.float64), term | trunc, _final_items(infos))
            self.img = _obs_img(obs).copy()
            self.first = term | trunc
        self.state = state
        next_value = self._value(
            torch.from_numpy(self.img).to(self.device), torch.from_numpy(self.first).to(self.device), state
        ).cpu()
        seg = Segment(
            img_bthwc=torch.stack(imgs, 1),
            first_bt=torch.stack(firsts, 1),
            action={"buttons": torch.stack(buttons, 1), "camera": torch.stack(cameras, 1)},
            logprob_bt=torch.stack(logprobs, 1),
            vpred_bt=torch.stack(values, 1),
            reward_bt=torch.from_numpy(rewards),
            terminated_bt=torch.from_numpy(terminated),
            truncated_bt=torch.from_numpy(truncated),
            final_value_bt=final_value,
            next_value_b=next_value,
            state0=state0,
            prior_state0=prior_state0,
        )
        if self.prior is not None:
            seg.prior_logprobs, self.prior_state = self._run_prior(seg)
        seg.check()
        return seg

    def _run_prior(self, seg: Segment) -> tuple[dict[str, Tensor], State]:
        """The prior over the whole segment from its own start state (one call per row chunk;
        chunked == stepwise since `first` is honoured at every step): its log-probs (CPU) for the
        KL term, and its memory state for the next segment."""
        logps: list[dict[str, Tensor]] = []
        states: list[State] = []
        for rows in torch.arange(seg.num_rows).tensor_split(min(self.prior_chunks, seg.num_rows)):
            out, new_state = self.prior(
                seg.img_bthwc[rows].to(self.device),
                seg.first_bt[rows].to(self.device),
                state_to(state_select(seg.prior_state0, rows), self.device),
            )
            logps.append({k: v.cpu() for k, v in out.logprobs.items()})
            states.append(new_state)
        logprobs = {k: torch.cat([lp[k] for lp in logps], 0) for k in logps[0]}
        return logprobs, state_cat(states)
