"""What a PPG iteration measures besides the losses: phase timings, the episodes of every rank in
one order, and the `rollout/*`, `time/*`, `env/*` and schedule tags (docs/monitoring.md), reduced
over ranks; and the head of the end-of-run summary. Kept out of the trainer so its loop reads as
the algorithm."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np

from vpt_rl.algo.buffer import Segment
from vpt_rl.algo.episodes import EpisodeLog
from vpt_rl.algo.roller import Roller
from vpt_rl.distributed import Dist
from vpt_rl.run_dir import minutes

if TYPE_CHECKING:
    from vpt_rl.algo.ppg_trainer import PPGTrainer

__all__ = ["SUMMED_TAGS", "IterationStats"]

# tags that are sums over ranks (counts), not means
SUMMED_TAGS = ("env/restarts",)


class IterationStats:
    """Timings and logged statistics of one rank's iterations (``t0``: when the loop started,
    for the invocation's fps)."""

    def __init__(self, dist: Dist, t0: float) -> None:
        self.dist = dist
        self.t0 = t0
        self.seconds: dict[str, float] = {}
        self.t_begin = t0

    def begin(self) -> None:
        """A new iteration: its clock starts, its phase timings are cleared."""
        self.t_begin = time.monotonic()
        self.seconds = {}

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Add the block's wall time to phase ``name``."""
        t = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.monotonic() - t

    def gather_episodes(self, roller: Roller, episodes: EpisodeLog, seg: Segment) -> int:
        """Add every rank's finished episodes to ``episodes`` in (env step, global env) order, as
        one process stepping all the envs would see them; returns the segment's frames over all
        ranks."""
        gathered = self.dist.all_gather(roller.stats.drain())
        for record in sorted(r for rank in gathered for r in rank):
            episodes.add(record)
        return seg.num_frames * self.dist.world_size

    def scalars(
        self,
        scalars: dict[str, float],
        seg: Segment,
        trainer: PPGTrainer,
        rho: float,
        lr: float,
        warmup: bool,
    ) -> dict[str, float]:
        """The iteration's logged scalars: the phases' tags plus rollout, time, env and schedule
        tags, reduced over ranks (means; counts summed)."""
        state = trainer.state
        if "train/explained_variance" not in scalars:  # computed over all ranks: same everywhere
            state.ev_undefined += 1
        now = time.monotonic()
        t_rollout = self.seconds.get("rollout", 0.0)
        # env/restarts is summed over ranks: the count from before a resume is added once, on rank 0
        restarts_before = state.restarts_before if self.dist.is_main else 0.0
        out = {
            **scalars,
            "train/kl_coef": rho,
            "train/lr": lr,
            "train/ent_coef": float(trainer.ppg.ent_coef),
            "train/value_warmup": float(warmup),
            "train/skipped_updates": float(state.guard.total),
            "train/explained_variance_undefined": float(state.ev_undefined),
            "rollout/reward_mean": float(seg.reward_bt.mean()),
            "rollout/value_mean": float(seg.vpred_bt.mean()),
            "rollout/episodes": float(state.episodes.completed),
            # why: frames (all ranks) per wall-clock second of the whole invocation, so an
            # iteration that runs the aux phase or a checkpoint does not show a misleading
            # collapse (docs/monitoring.md)
            "time/fps": (state.frames - trainer.start_frames) / max(now - self.t0, 1e-9),
            "time/rollout_fps": seg.num_frames * self.dist.world_size / max(t_rollout, 1e-9),
            "time/iteration_s": now - self.t_begin,
            "time/aux_phase_s": self.seconds.get("aux", 0.0),
            "time/iteration": float(state.iteration),
            "time/frames": float(state.frames),
            "time/elapsed": trainer._elapsed(),
            "env/restarts": float(trainer.env.restarts) + restarts_before,
        }
        out.update(state.episodes.scalars())
        return self.dist.mean_scalars(out, summed=SUMMED_TAGS)

    def summary_head(self, episodes: EpisodeLog, frames: int, start_frames: int, seconds: float) -> list[str]:
        """The summary's first lines: frames and time, then the return at the start and the end."""
        fps = (frames - start_frames) / max(time.monotonic() - self.t0, 1e-9)
        lines = [
            f"done: {frames:,} frames ({frames - start_frames:,} in this invocation) in {minutes(seconds)}, "
            f"{fps:.0f} frames/s"
        ]
        start, end = episodes.first_mean_return(), episodes.mean_return()
        if np.isfinite(start):
            lines.append(
                f"episode return: {start:.2f} (first {len(episodes.first_returns)} episodes) -> "
                f"{end:.2f} (last {len(episodes.returns)}), {episodes.completed} episodes in all"
            )
        else:
            lines.append("episode return: no episode has ended yet")
        return lines
