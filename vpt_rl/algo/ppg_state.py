"""`PPGTrainState`: everything a PPG checkpoint holds besides the weights, defined in one place.

A checkpoint has two parts (`vpt_rl.checkpoint`): the replicated part, the same on every rank and
written by rank 0 (counters, optimiser, non-finite guard, the global episode log), and each rank's
own part (its roller's observations and memory, its envs' states where they can be saved, its aux
buffer, its RNG streams). `state_dict` / `load_state_dict` give and take both; the trainer and the
resume path use nothing else, so the keys below are the only place a checkpoint's layout is spelt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from vpt_rl.algo.buffer import AuxBuffer
from vpt_rl.algo.episodes import EpisodeLog
from vpt_rl.algo.gae import RunningAdvStd
from vpt_rl.algo.phases import NonFiniteGuard
from vpt_rl.algo.roller import Roller
from vpt_rl.checkpoint import capture_rng, restore_rng

__all__ = ["PPGTrainState"]


@dataclass
class PPGTrainState:
    """Counters and the stateful objects of one rank's PPG training (restored in place)."""

    optimizer: torch.optim.Optimizer
    guard: NonFiniteGuard
    episodes: EpisodeLog
    aux_buffer: AuxBuffer
    shuffle_gen: torch.Generator
    adv_std: RunningAdvStd
    """The running advantage std (used with ``ppg.adv_std: running``; kept either way)."""
    frames: int = 0
    """Env frames of all ranks so far (the x-axis and every schedule's clock)."""
    iteration: int = 0
    restarts_before: int = 0
    """Env worker restarts (all ranks) in earlier invocations of this run."""
    elapsed_before: float = 0.0
    """Seconds of earlier invocations."""
    ev_undefined: int = 0
    """Iterations whose explained variance was undefined (docs/monitoring.md)."""
    pending_rank: dict[str, Any] | None = field(default=None, repr=False)
    """This rank's part of a checkpoint, kept until the envs run (`restore_rank`)."""

    # ------------------------------------------------------------------ replicated part
    def state_dict(self, extra: dict[str, Any]) -> dict[str, Any]:
        """The replicated part (rank 0 writes it); ``extra``: what the trainer adds (the
        architecture, whether there is a prior, the resolved config, the restart and time totals)."""
        return {
            "iteration": self.iteration,
            "optimizer": self.optimizer.state_dict(),
            "guard": (self.guard.streak, self.guard.total),
            "ev_undefined": self.ev_undefined,
            "episodes": self.episodes.state_dict(),
            "adv_std": self.adv_std.state_dict(),
            **extra,
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        """Continue from `state_dict` output (as saved: ``frames`` is added by the checkpoint)."""
        self.frames, self.iteration = int(d["frames"]), int(d["iteration"])
        self.restarts_before = int(d.get("restarts", 0))
        self.elapsed_before = float(d.get("elapsed", 0.0))
        self.ev_undefined = int(d.get("ev_undefined", 0))
        self.optimizer.load_state_dict(d["optimizer"])
        self.guard.streak, self.guard.total = d["guard"]
        self.episodes.load_state_dict(d["episodes"])
        if "adv_std" in d:  # checkpoints written before the running std existed start it afresh
            self.adv_std.load_state_dict(d["adv_std"])

    # ------------------------------------------------------------------ this rank's part
    def rank_state_dict(self, roller: Roller, env: Any, keep_aux_buffer: bool) -> dict[str, Any]:
        """This rank's part: roller (observations, memory, samplers, episode statistics), the
        envs' states (None where they cannot be saved, e.g. MineRL), the aux buffer (None with
        ``ckpt.aux_buffer: false``), the RNG streams."""
        return {
            "roller": roller.state_dict(),
            "env_states": env.get_state() if env.supports_state else None,
            "aux_buffer": self.aux_buffer.state_dict() if keep_aux_buffer else None,
            "rng": capture_rng({"shuffle": self.shuffle_gen}),
        }

    def restore_rank(self, roller: Roller, env: Any) -> bool:
        """Apply the pending rank part once the envs run (after their reset). Returns whether the
        envs were restored; if they cannot be (MineRL), their episodes start afresh and the
        episodes cut at the checkpoint count as truncated (their last segment was already
        bootstrapped from V(next obs), docs/design.md "Decisions")."""
        d, self.pending_rank = self.pending_rank, None
        if d is None:
            return True
        if d["aux_buffer"] is not None:
            self.aux_buffer.load_state_dict(d["aux_buffer"])
        restore_rng(d["rng"], {"shuffle": self.shuffle_gen})
        env_states = d.get("env_states")
        restorable = env_states is not None and env.supports_state and all(s is not None for s in env_states)
        if restorable:
            env.set_state(env_states)
        roller.load_state_dict(d["roller"], restore_envs=restorable)
        return restorable
