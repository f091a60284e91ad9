"""Writer for VPT-format demonstrations, and a recorder that runs the voxel world's scripted expert.

``EpisodeWriter`` pairs frame i (the observation the action was chosen on) with JSON line i (the
action taken), exactly like the contractor data (docs/vpt_format.md §8): ``NAME.mp4`` at 640x360, 20 fps,
and ``NAME.jsonl``. ``record_episodes`` drives an env with ``scripted_policy`` (with its optional
noise) and writes one such pair per episode, so the whole BC path runs on data this
project can make.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vpt_rl.atomic import atomic_write_text
from vpt_rl.data.jsonl import DemoFormatError, WriteState, minerl_to_json
from vpt_rl.data.video import VideoWriter

FPS = 20.0
FRAME_HW = (360, 640)
"""The contractor format's frame size (640x360); the reader resizes to the policy size."""


class EpisodeWriter:
    """Write one episode: ``add(pov, action)`` per step, then ``close()`` (context manager).

    The video is moved into place when closed and the JSON lines are written after it, atomically,
    so a reader never sees a half-written pair as complete. An existing episode is never overwritten.
    """

    def __init__(self, out_dir: str | os.PathLike, name: str, fps: float = FPS) -> None:
        self.out_dir = Path(out_dir)
        self.name = name
        self.video_path = self.out_dir / f"{name}.mp4"
        self.jsonl_path = self.out_dir / f"{name}.jsonl"
        for path in (self.video_path, self.jsonl_path):
            if path.exists():
                raise FileExistsError(f"{path}: already exists (choose another --out or remove it)")
        self._video = VideoWriter(self.video_path, fps=fps, size_hw=FRAME_HW)
        self._state = WriteState()
        self._lines: list[str] = []

    def add(self, pov_hwc: np.ndarray, action: Mapping[str, Any], gui_open: bool = False) -> None:
        """Record frame ``pov_hwc`` (RGB uint8 360x640x3) and the MineRL ``action`` taken on it."""
        if pov_hwc.shape != (*FRAME_HW, 3):
            raise DemoFormatError(
                f"{self.video_path}: frames must be {FRAME_HW[1]}x{FRAME_HW[0]} RGB (the contractor format); "
                f"got shape {pov_hwc.shape} (create the env with pov_size=(360, 640))"
            )
        self._video.write(pov_hwc)
        self._lines.append(json.dumps(minerl_to_json(action, self._state, gui_open=gui_open)))

    def __len__(self) -> int:
        return len(self._lines)

    def close(self) -> None:
        """Finish the video, then write the JSON lines."""
        self._video.close()
        atomic_write_text(self.jsonl_path, "".join(line + "\n" for line in self._lines))

    def abort(self) -> None:
        """Drop everything written so far."""
        self._video.abort()

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


@dataclass
class RecordedEpisode:
    """Summary of one recorded episode; ``actions`` are the policy indices of what the file records
    (the executed action, except under ``dart`` or a ``driver``: the expert's label)."""

    name: str
    steps: int
    total_reward: float
    items: dict[str, int]
    actions: list[tuple[int, int]] = field(repr=False, default_factory=list)


def record_episodes(
    env_id: str,
    n_episodes: int,
    out_dir: str | os.PathLike,
    max_steps: int | None = None,
    noise: float = 0.0,
    seed: int = 0,
    env_kwargs: Mapping[str, Any] | None = None,
    progress: Callable[[RecordedEpisode], None] | None = None,
    sighted: bool = False,
    dart: bool = False,
    driver: Callable[[Any, bool], dict[str, Any]] | None = None,
    beta: float = 0.0,
) -> list[RecordedEpisode]:
    """Record ``n_episodes`` of the scripted expert into ``out_dir`` as ``NAME.mp4`` + ``NAME.jsonl``.

    Episode i uses ``env.reset(seed=seed + i)`` and is named ``expert-s{seed+i:06d}``; it ends when
    the env ends it or after ``max_steps`` steps. ``sighted``: the expert acts only on logs its
    camera shows (`scripted_policy`), the demonstrator BC can imitate. ``dart``: during a noise
    deviation the file records the expert's own action for that frame, not the executed random
    one (DART, Laskey et al. 2017, "DART: Noise Injection for Robust Imitation Learning": the
    deviations still show states off the expert's path, labelled with how it recovers, and BC
    does not learn the noise itself). ``driver`` (DAgger, `vpt_rl.data.dagger.PolicyDriver`):
    ``driver(obs, first)`` chooses the executed action, except with probability ``beta`` where
    the expert's is executed; the file records the expert's label for every frame: with ``noise``
    the noisy expert's action (the same stochastic demonstrator as a plain recording with that
    noise, so a BC trained on both imitates one policy), with ``dart`` too its intended one.
    ``total_reward`` is the executed trajectory's. Returns one summary per episode.
    """
    import gymnasium

    import vpt_rl  # noqa: F401  (registers the voxel world)
    from vpt_rl.envs.actions import env_to_policy
    from vpt_rl.envs.voxel import scripted_policy

    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"noise must be in [0, 1], got {noise}")
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {beta}")
    mix = np.random.default_rng(seed)  # beta's draws
    kwargs = {"pov_size": FRAME_HW, **dict(env_kwargs or {})}
    env = gymnasium.make(env_id, **kwargs)
    summaries = []
    try:
        for i in range(n_episodes):
            obs, _ = env.reset(seed=seed + i)
            # the expert's own noise: short random deviations it then recovers from
            policy = scripted_policy(env, noise=noise, seed=seed + i, sighted=sighted)
            summary = RecordedEpisode(name=f"expert-s{seed + i:06d}", steps=0, total_reward=0.0, items={})
            with EpisodeWriter(out_dir, summary.name) as writer:
                done = False
                while not done and (max_steps is None or summary.steps < max_steps):
                    action, label = policy.act(obs, label=dart)
                    recorded = action
                    if dart:
                        assert label is not None  # act(..., label=True) always labels
                        recorded = label
                    if driver is not None:
                        # the driver moves first in every frame, also when beta picks the expert,
                        # so its memory follows the whole trajectory
                        driven = driver(obs, summary.steps == 0)
                        action = action if mix.random() < beta else driven
                    writer.add(obs["pov"], recorded, gui_open=bool(getattr(env.unwrapped, "gui_open", False)))
                    summary.actions.append(env_to_policy(recorded))
                    obs, reward, terminated, truncated, _ = env.step(action)
                    summary.total_reward += float(reward)
                    summary.steps += 1
                    done = terminated or truncated
            summary.items = {
                k: int(np.asarray(v).sum())
                for k, v in dict(obs.get("inventory", {})).items()
                if np.asarray(v).sum() > 0
            }
            summaries.append(summary)
            if progress is not None:
                progress(summary)
    finally:
        env.close()
    return summaries
