"""MP4 video read/write for VPT-format demonstrations, through OpenCV.

Why OpenCV: it is already a dependency (frame preprocessing) and its bundled FFmpeg reads the
contractor mp4 files. ``opencv-python-headless`` ships without an H.264 *encoder* (``avc1``
fails to open), so we write MPEG-4 Part 2 (fourcc ``mp4v``), which every player and OpenCV read.
Compression is lossy: frames come back within a few grey levels, not bit-exact.

Frames cross this module's boundary as RGB uint8 ``(H, W, 3)`` (the MineRL ``pov`` convention);
the BGR order OpenCV uses on disk is handled here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vpt_rl.errors import VPTRLError
from vpt_rl.opencv import cv2

FOURCC = "mp4v"
"""The codec we write: the one that opens in opencv-python-headless (checked in tests)."""


class VideoError(VPTRLError, ValueError):
    """A video file is missing, unreadable or not what was expected; the message names the file."""


class VideoWriter:
    """Write RGB uint8 frames of one fixed size to an mp4 file (context manager).

    The file is written under a temporary name and moved into place on a clean ``close()``, so a
    crash never leaves a truncated video where a reader would pick it up.
    """

    def __init__(self, path: str | os.PathLike, fps: float = 20.0, size_hw: tuple[int, int] = (360, 640)):
        self.path = Path(path)
        self.size_hw = (int(size_hw[0]), int(size_hw[1]))
        self.frames_written = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name("." + self.path.stem + ".partial" + self.path.suffix)
        height, width = self.size_hw
        self._writer: cv2.VideoWriter | None = cv2.VideoWriter(
            str(self._tmp), cv2.VideoWriter.fourcc(*FOURCC), fps, (width, height)
        )
        if not self._writer.isOpened():
            raise VideoError(f"{self.path}: OpenCV could not open a {FOURCC!r} video writer")

    def write(self, frame_hwc: np.ndarray) -> None:
        """Append one RGB uint8 frame of shape ``(H, W, 3)`` = ``size_hw``."""
        if frame_hwc.dtype != np.uint8 or frame_hwc.shape != (*self.size_hw, 3):
            raise VideoError(
                f"{self.path}: frame must be uint8 {(*self.size_hw, 3)}, got {frame_hwc.dtype} {frame_hwc.shape}"
            )
        if self._writer is None:
            raise VideoError(f"{self.path}: the writer is closed")
        self._writer.write(cv2.cvtColor(frame_hwc, cv2.COLOR_RGB2BGR))
        self.frames_written += 1

    def close(self) -> Path:
        """Finish the file and move it into place; returns the final path."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the partial file (used when recording fails)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self._tmp.exists():
            self._tmp.unlink()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def iter_frames(path: str | os.PathLike, rgb: bool = True) -> Iterator[np.ndarray]:
    """Yield the frames of a video, RGB (default) or BGR uint8 ``(H, W, 3)``.

    Raises ``VideoError`` naming the file when it is missing or cannot be decoded at all.
    """
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: video file not found")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise VideoError(f"{path}: cannot open the video (corrupt, truncated or not a video file)")
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if rgb else frame
    finally:
        cap.release()


def read_video(path: str | os.PathLike, rgb: bool = True) -> np.ndarray:
    """All frames of a video as one uint8 array ``(T, H, W, 3)`` (RGB by default)."""
    frames = list(iter_frames(path, rgb=rgb))
    if not frames:
        raise VideoError(f"{path}: the video has no readable frames")
    return np.stack(frames)


def write_video(path: str | os.PathLike, frames_thwc: np.ndarray, fps: float = 20.0) -> Path:
    """Write RGB uint8 frames ``(T, H, W, 3)`` to an mp4 file."""
    frames_thwc = np.asarray(frames_thwc)
    if frames_thwc.ndim != 4 or frames_thwc.shape[-1] != 3:
        raise VideoError(f"{path}: frames must be (T, H, W, 3), got {frames_thwc.shape}")
    with VideoWriter(path, fps=fps, size_hw=frames_thwc.shape[1:3]) as writer:
        for frame in frames_thwc:
            writer.write(frame)
    return Path(path)
