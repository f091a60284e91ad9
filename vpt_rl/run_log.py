"""Run logging: TensorBoard + CSV (+ optional stdout table) through SB3's logger, image strips and
config text through the same TensorBoard writer, and console progress (a tqdm bar on a terminal,
plain lines elsewhere).

Every tag is defined in docs/monitoring.md. The x-axis of everything is env frames. One `write`
per logged iteration (SB3's `record` + `dump`).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

import numpy as np
import torch
from stable_baselines3.common.logger import Logger, TensorBoardOutputFormat, make_output_format
from tqdm import tqdm

__all__ = ["RunLogger", "Progress", "image_strip"]


class RunLogger:
    """SB3 `Logger` with TensorBoard (+ CSV, + stdout) outputs in ``run_dir``.

    SB3's logger does scalars and text well; images go through its TensorBoard writer directly
    because SB3's `Image` value calls `add_image` (one picture) and we want `add_images` (a strip
    of frames; `add_video` is not used: it needs moviepy's removed `editor` module).
    ``csv_suffix`` names a new CSV per invocation (SB3's CSV writer truncates an existing file, so
    a resumed run writes `progress_from_<frames>.csv` instead of overwriting `progress.csv`).
    """

    def __init__(
        self, run_dir: str | os.PathLike, csv: bool = True, stdout: bool = False, csv_suffix: str = ""
    ) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        formats = [make_output_format("tensorboard", str(self.run_dir))]
        if csv:
            formats.append(make_output_format("csv", str(self.run_dir), csv_suffix))
        if stdout:
            formats.append(make_output_format("stdout", str(self.run_dir)))
        self.logger = Logger(folder=str(self.run_dir), output_formats=formats)
        self.writer = next(f.writer for f in formats if isinstance(f, TensorBoardOutputFormat))

    def write(self, scalars: Mapping[str, float | int | torch.Tensor], frames: int) -> list[str]:
        """Record every finite scalar under its tag and dump them all at x = ``frames``.

        A non-finite value is not written (a NaN in TensorBoard reads as a bug and breaks any
        check that scalars are finite); the trainers compute their statistics so that none is
        produced (e.g. `train/explained_variance_undefined` in docs/monitoring.md), and the tags
        dropped here, if any, are returned for a warning.
        """
        dropped = []
        for tag, value in scalars.items():
            if isinstance(value, torch.Tensor):
                value = value.item()
            value = float(value)
            if not math.isfinite(value):
                dropped.append(tag)
                continue
            self.logger.record(tag, value)
        self.logger.dump(step=frames)
        return dropped

    def text(self, tag: str, text: str, frames: int = 0) -> None:
        """A text panel (e.g. the resolved config, as a fenced YAML block)."""
        self.writer.add_text(tag, text, frames)
        self.writer.flush()

    def images(self, tag: str, frames_nhwc: np.ndarray | torch.Tensor, frames: int) -> None:
        """An image strip: N uint8 frames (N,H,W,3) shown side by side by TensorBoard's slider."""
        imgs = torch.as_tensor(np.asarray(frames_nhwc))
        if imgs.dtype != torch.uint8 or imgs.dim() != 4 or imgs.shape[-1] != 3:
            raise ValueError(
                f"RunLogger.images: expected uint8 (N,H,W,3), got {imgs.dtype} {tuple(imgs.shape)}"
            )
        self.writer.add_images(tag, imgs, frames, dataformats="NHWC")
        self.writer.flush()

    def close(self) -> None:
        """Flush and close every output."""
        self.logger.close()


def image_strip(img_thwc: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` frames evenly spaced over a row's T frames (fewer if T < n)."""
    t = img_thwc.shape[0]
    idx = torch.linspace(0, t - 1, steps=min(n, t)).round().long()
    return img_thwc[idx]


class Progress:
    """Console progress over env (or demonstration) frames: frames, fps, the mean return, the
    current phase and the ETA.

    On a terminal it is a tqdm bar redrawn in place. Anywhere else (CI, nohup, a log file) it
    prints a plain line at most every ``plain_interval`` seconds instead: tqdm's carriage-return
    redraws would fill the log with dozens of partial frames.

    ``fps`` is frames of this invocation per second of wall time since `Progress` was made, so it
    includes everything (rollouts, both PPG phases, checkpoints) and does not collapse in the
    iteration that runs an auxiliary phase. `phase` names what runs now ("aux phase",
    "checkpoint") and shows it at once, so a long pause is never silent.
    """

    def __init__(
        self,
        total_frames: int,
        initial_frames: int,
        enabled: bool = True,
        desc: str = "train",
        plain: bool | None = None,
        plain_interval: float = 5.0,
        stream: TextIO | None = None,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.plain = (not _is_tty(self.stream)) if plain is None else plain
        self.plain_interval = plain_interval
        self.total, self.initial, self.frames, self.desc = total_frames, initial_frames, initial_frames, desc
        self.t0 = time.monotonic()
        self.last_line = self.t0
        self.ep_return: float | None = None
        self.current = ""
        self.bar = None
        if enabled and not self.plain:
            self.bar = tqdm(
                total=total_frames,
                initial=initial_frames,
                unit="frame",
                unit_scale=True,
                dynamic_ncols=True,
                desc=desc,
                file=self.stream,
            )

    @property
    def fps(self) -> float:
        """Frames of this invocation per wall-clock second since start (everything included)."""
        return (self.frames - self.initial) / max(time.monotonic() - self.t0, 1e-9)

    def _postfix(self) -> str:
        ret = "n/a" if self.ep_return is None or not np.isfinite(self.ep_return) else f"{self.ep_return:.3g}"
        text = f"fps={self.fps:.0f} return={ret}"
        return f"{text} [{self.current}]" if self.current else text

    def _plain_line(self) -> str:
        elapsed = time.monotonic() - self.t0
        done = self.frames - self.initial
        left = max(self.total - self.frames, 0)
        eta = left / (done / elapsed) if done > 0 and elapsed > 0 else float("nan")
        pct = 100.0 * self.frames / max(self.total, 1)
        return (
            f"{self.desc}: {self.frames:,}/{self.total:,} frames ({pct:.0f}%) {self._postfix()} "
            f"elapsed {_hms(elapsed)} eta {_hms(eta)}"
        )

    def _show(self, force: bool = False) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix_str(self._postfix(), refresh=True)
            return
        now = time.monotonic()
        if force or now - self.last_line >= self.plain_interval:
            self.last_line = now
            print(self._plain_line(), file=self.stream, flush=True)

    def update(self, frames: int, ep_return: float | None = None) -> None:
        """Advance to ``frames`` (and show the mean return, when there is one)."""
        if self.bar is not None:
            self.bar.update(frames - self.frames)
        self.frames = frames
        if ep_return is not None and np.isfinite(ep_return):
            self.ep_return = ep_return
        self._show()

    @contextlib.contextmanager
    def phase(self, name: str, announce: bool = False):
        """Show ``name`` on the progress line while the block runs. ``announce`` (for the long,
        rare phases: auxiliary phase, checkpoint) prints a plain line at once when it starts."""
        previous, self.current = self.current, name
        self._show(force=announce)
        try:
            yield
        finally:
            self.current = previous
            if self.bar is not None:
                self._show()

    def write(self, msg: str) -> None:
        """Print a message line on stdout (above the bar, which tqdm redraws below it)."""
        if self.bar is not None:
            self.bar.write(msg, file=sys.stdout)
        else:
            print(msg, flush=True)

    def close(self) -> None:
        """Finish the bar (or print the last plain line)."""
        if self.bar is not None:
            self.bar.set_postfix_str(self._postfix(), refresh=False)
            self.bar.close()
            self.bar = None
        elif self.enabled and self.plain:
            print(self._plain_line(), file=self.stream, flush=True)
            self.enabled = False


def _is_tty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _hms(seconds: float) -> str:
    """``1:02:03`` / ``2:03`` (``?`` when unknown)."""
    if not np.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
