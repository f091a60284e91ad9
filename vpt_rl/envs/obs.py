"""Frame preprocessing: MineRL `pov` -> the policy's input image (docs/vpt_format.md §7).

agent.py resizes with ``cv2.resize(pov, (128, 128), interpolation=cv2.INTER_LINEAR)``. We call
the same OpenCV function, because torch's bilinear resize differs by up to one grey level on
6-10% of values (tests/data/vpt_reference/README.md §5) and the released policies were trained on cv2's output.
"""

from __future__ import annotations

import numpy as np

from vpt_rl.opencv import cv2

DEFAULT_SIZE: tuple[int, int] = (128, 128)


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    if len(size) != 2 or any(int(s) != s or s <= 0 for s in size):
        raise ValueError(f"size must be (height, width) positive integers, got {size!r}")
    return int(size[0]), int(size[1])


def _check_frame(pov: np.ndarray, what: str, ndim: int) -> None:
    if not isinstance(pov, np.ndarray):
        raise TypeError(f"{what} must be a numpy uint8 array, got {type(pov).__name__}")
    if pov.ndim != ndim or pov.shape[-1] != 3 or pov.dtype != np.uint8:
        layout = "HxWx3" if ndim == 3 else "NxHxWx3"
        raise ValueError(
            f"{what} must be a {layout} uint8 RGB array, got shape {pov.shape} dtype {pov.dtype}"
        )


def preprocess_frame(pov: np.ndarray, size: tuple[int, int] = DEFAULT_SIZE) -> np.ndarray:
    """Resize one RGB uint8 frame (H, W, 3) to ``size`` = (height, width) with cv2 INTER_LINEAR.

    A frame already at ``size`` is returned as is (no copy), so envs that render at the policy's
    size skip the resize.
    """
    _check_frame(pov, "pov", 3)
    height, width = _check_size(size)
    if pov.shape[:2] == (height, width):
        return pov
    # cv2's dsize is (width, height)
    return cv2.resize(np.ascontiguousarray(pov), (width, height), interpolation=cv2.INTER_LINEAR)


def preprocess_frames(povs_nhwc: np.ndarray, size: tuple[int, int] = DEFAULT_SIZE) -> np.ndarray:
    """Resize a batch of RGB uint8 frames (N, H, W, 3) to (N, height, width, 3), frame by frame.

    cv2.resize has no batch form; each frame is written straight into the preallocated output.
    """
    _check_frame(povs_nhwc, "povs_nhwc", 4)
    height, width = _check_size(size)
    if povs_nhwc.shape[1:3] == (height, width):
        return povs_nhwc
    out_nhwc = np.empty((povs_nhwc.shape[0], height, width, 3), dtype=np.uint8)
    for i, pov in enumerate(povs_nhwc):
        cv2.resize(
            np.ascontiguousarray(pov), (width, height), dst=out_nhwc[i], interpolation=cv2.INTER_LINEAR
        )
    return out_nhwc
