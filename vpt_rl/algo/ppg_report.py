"""The end-of-run summary of `train_ppo.py`: frames, time, the return at the start and the end,
where the logs, checkpoint and plot are, and how to watch them (issue 10)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vpt_rl.algo.episodes import EpisodeLog
from vpt_rl.plot import PlotError, plot_run

__all__ = ["summary_lines"]


def summary_lines(
    episodes: EpisodeLog, frames: int, frames_now: int, seconds: float, fps: float, run_dir: Path
) -> list[str]:
    """The summary printed (and appended to train.log) when a run ends; writes the plot."""
    start, end = episodes.first_mean_return(), episodes.mean_return()
    lines = [
        f"done: {frames:,} frames ({frames_now:,} in this invocation) in {_minutes(seconds)}, {fps:.0f} frames/s"
    ]
    if np.isfinite(start):
        lines.append(
            f"episode return: {start:.2f} (first {len(episodes.first_returns)} episodes) -> "
            f"{end:.2f} (last {len(episodes.returns)}), {episodes.completed} episodes in all"
        )
    else:
        lines.append("episode return: no episode has ended yet")
    lines.append(f"logs:        {run_dir} (TensorBoard events, progress.csv, train.log)")
    lines.append(f"checkpoint:  {run_dir / 'checkpoints' / 'latest.weights'}")
    try:
        lines.append(f"plot:        {plot_run(run_dir)}")
    except PlotError as e:
        lines.append(f"plot:        none ({e})")
    lines.append(f"watch:       tensorboard --logdir {run_dir.parent}")
    return lines


def _minutes(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s:02d} s" if m else f"{s} s"
