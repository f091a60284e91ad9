"""Reader for VPT-format demonstrations: ``NAME.mp4`` + ``NAME.jsonl`` per episode (docs/vpt_format.md §8).

``read_episode`` returns the frames preprocessed to the policy's image size (uint8, RGB) and the
demonstrated actions as policy indices (``env_to_policy``), with the released loader's rules:
null actions dropped (option, as in the VPT paper), the stuck-attack start fixed, hotbar changes
turned into ``hotbar.k`` presses, and a cursor drawn when a GUI is open. Nothing is skipped
silently: a missing or corrupt video, a frame count that differs from the line count, and a line
that does not parse or lacks a field are errors naming the file (and line).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vpt_rl.data.jsonl import (
    RECORDING_HEIGHT,
    DemoFormatError,
    ReadState,
    json_to_minerl,
    parse_line,
)
from vpt_rl.data.video import VideoError, iter_frames
from vpt_rl.opencv import cv2

CURSOR_SIZE = 16
"""Cursor sprite size at 720 pixels of height (docs/vpt_format.md §8), scaled by frame height / 720."""


@dataclass
class Episode:
    """One demonstration, ready for training.

    ``frames_thwc`` uint8 (T, H, W, 3) RGB at the policy size; ``buttons_t`` / ``camera_t`` int64
    (T,) policy indices; ``kept_t`` the line numbers (0-based) kept after null filtering.
    """

    name: str
    frames_thwc: np.ndarray
    buttons_t: np.ndarray
    camera_t: np.ndarray
    kept_t: np.ndarray
    n_lines: int

    def __len__(self) -> int:
        return int(self.buttons_t.shape[0])


def list_episodes(data_dir: str | os.PathLike) -> list[Path]:
    """Sorted episode stems (``DIR/NAME`` without suffix) of a demonstration folder.

    Every ``.jsonl`` needs its ``.mp4`` and vice versa; an unpaired file is an error.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DemoFormatError(f"{data_dir}: demonstration folder not found")
    jsonl = {p.stem for p in data_dir.glob("*.jsonl")}
    videos = {p.stem for p in data_dir.glob("*.mp4") if not p.name.startswith(".")}
    for stem in sorted(jsonl - videos):
        raise DemoFormatError(f"{data_dir / stem}.mp4: video file not found (its .jsonl exists)")
    for stem in sorted(videos - jsonl):
        raise DemoFormatError(f"{data_dir / stem}.jsonl: action file not found (its .mp4 exists)")
    if not jsonl:
        raise DemoFormatError(f"{data_dir}: no episodes (NAME.mp4 + NAME.jsonl) found")
    return [data_dir / stem for stem in sorted(jsonl)]


def read_actions(
    jsonl_path: str | os.PathLike, fix_stuck_attack: bool = True
) -> list[tuple[dict[str, Any], bool, dict[str, Any]]]:
    """Parse a ``.jsonl`` file into ``[(MineRL action, is_null, raw line), ...]`` (one per line)."""
    jsonl_path = Path(jsonl_path)
    if not jsonl_path.is_file():
        raise DemoFormatError(f"{jsonl_path}: action file not found")
    state = ReadState(fix_stuck_attack=fix_stuck_attack)
    out = []
    with open(jsonl_path, encoding="utf-8") as f:
        for lineno, text in enumerate(f, start=1):
            if not text.strip():
                raise DemoFormatError(
                    f"{jsonl_path}:{lineno}: empty line (one JSON object per frame expected)"
                )
            step = parse_line(text, f"{jsonl_path}:{lineno}")
            action, is_null = json_to_minerl(step, state)
            out.append((action, is_null, step))
    if not out:
        raise DemoFormatError(f"{jsonl_path}: no lines")
    return out


def draw_cursor(frame_hwc: np.ndarray, x: float, y: float) -> np.ndarray:
    """Draw a mouse cursor with its tip at recording coordinates (x, y) (1280x720 space).

    The official 16x16 cursor sprite is not available here (docs/vpt_format.md §8), so this draws a plain
    white arrow with a black outline of the same size, scaled by frame height / 720 like the
    released loader scales its sprite.
    """
    scale = frame_hwc.shape[0] / RECORDING_HEIGHT
    tip = np.array([x * scale, y * scale])
    # arrow outline in sprite pixels (16x16 box, tip at the origin)
    outline = np.array([[0, 0], [0, 14], [4, 11], [7, 16], [9, 15], [6, 10], [11, 10]], dtype=np.float64)
    pts = np.round(tip + outline * (CURSOR_SIZE / 16.0) * scale).astype(np.int32)
    out = frame_hwc.copy()
    cv2.fillPoly(out, [pts], (255, 255, 255))
    if CURSOR_SIZE * scale >= 16:  # on smaller frames an outline would cover most of the arrow
        cv2.polylines(out, [pts], isClosed=True, color=(0, 0, 0), thickness=1)
    return out


def read_episode(
    stem: str | os.PathLike,
    img_size: tuple[int, int] = (128, 128),
    drop_null: bool = True,
    fix_stuck_attack: bool = True,
) -> Episode:
    """Read ``STEM.mp4`` + ``STEM.jsonl`` into an ``Episode`` (see the module docstring).

    ``img_size`` is the policy's (H, W); ``drop_null`` drops null-action frames as the VPT paper
    did for BC.
    """
    from vpt_rl.envs.actions import env_to_policy
    from vpt_rl.envs.obs import preprocess_frame

    stem = Path(stem)
    if stem.suffix in (".mp4", ".jsonl"):
        stem = stem.with_suffix("")
    video_path, jsonl_path = stem.with_suffix(".mp4"), stem.with_suffix(".jsonl")
    if not video_path.is_file():
        raise DemoFormatError(f"{video_path}: video file not found")
    actions = read_actions(jsonl_path, fix_stuck_attack=fix_stuck_attack)

    frames, buttons, cameras, kept = [], [], [], []
    n_frames = 0
    try:
        for i, frame in enumerate(iter_frames(video_path, rgb=True)):
            n_frames += 1
            if i >= len(actions):
                continue  # count the extra frames for the error below
            action, is_null, step = actions[i]
            if drop_null and is_null:
                continue
            if step["isGuiOpen"]:
                frame = draw_cursor(frame, step["mouse"]["x"], step["mouse"]["y"])
            frames.append(preprocess_frame(frame, size=(int(img_size[0]), int(img_size[1]))))
            b, c = env_to_policy(action)
            buttons.append(int(b))
            cameras.append(int(c))
            kept.append(i)
    except VideoError as e:
        raise DemoFormatError(str(e)) from None
    if n_frames == 0:
        raise DemoFormatError(f"{video_path}: the video has no readable frames (corrupt or empty)")
    if n_frames != len(actions):
        raise DemoFormatError(
            f"{video_path}: {n_frames} video frames but {jsonl_path.name} has {len(actions)} lines "
            "(one line per frame expected)"
        )
    height, width = img_size
    return Episode(
        name=stem.name,
        frames_thwc=np.stack(frames) if frames else np.zeros((0, height, width, 3), np.uint8),
        buttons_t=np.asarray(buttons, dtype=np.int64),
        camera_t=np.asarray(cameras, dtype=np.int64),
        kept_t=np.asarray(kept, dtype=np.int64),
        n_lines=len(actions),
    )
