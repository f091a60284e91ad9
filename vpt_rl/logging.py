"""Run logging: TensorBoard + CSV (+ optional stdout table) through SB3's logger, image strips and
config text through the same TensorBoard writer, and a console progress bar (tqdm).

Every tag is defined in docs/monitoring.md. The x-axis of everything is env frames. One `write`
per logged iteration (SB3's `record` + `dump`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

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

    def write(self, scalars: Mapping[str, float | int | torch.Tensor], frames: int) -> None:
        """Record every scalar under its tag and dump them all at x = ``frames``."""
        for tag, value in scalars.items():
            if isinstance(value, torch.Tensor):
                value = value.item()
            self.logger.record(tag, float(value))
        self.logger.dump(step=frames)

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
    """Console progress: a tqdm bar over env frames with fps, mean return and ETA (tqdm computes
    the ETA from its own rate). Disabled -> prints nothing."""

    def __init__(
        self, total_frames: int, initial_frames: int, enabled: bool = True, desc: str = "train"
    ) -> None:
        self.bar = tqdm(
            total=total_frames,
            initial=initial_frames,
            unit="frame",
            unit_scale=True,
            dynamic_ncols=True,
            disable=not enabled,
            desc=desc,
        )
        self.frames = initial_frames
        self.t0 = time.monotonic()

    def update(self, frames: int, fps: float, ep_return: float | None) -> None:
        """Advance to ``frames`` and show fps and the mean return."""
        self.bar.update(frames - self.frames)
        self.frames = frames
        ret = "n/a" if ep_return is None or not np.isfinite(ep_return) else f"{ep_return:.3g}"
        self.bar.set_postfix_str(f"fps={fps:.0f} return={ret}", refresh=False)

    def write(self, msg: str) -> None:
        """Print a line above the bar (or plainly when the bar is disabled)."""
        tqdm.write(msg)

    def close(self) -> None:
        """Finish the bar."""
        self.bar.close()
