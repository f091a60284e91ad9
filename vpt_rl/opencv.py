"""OpenCV's ``cv2``, from whichever OpenCV distribution the environment has.

Why a module: ``opencv-python-headless`` (what ``pip install 'vpt-rl[opencv]'`` and ``[dev]``
bring) and ``opencv-python`` (what MineRL 1.0.2 requires) both install the same ``cv2`` package,
and two distributions owning the same files break each other on uninstall. So vpt_rl does not
require either one: it uses whichever is there (it needs only resize and video I/O, which both
have) and says what to install when neither is.
"""

from __future__ import annotations

try:
    import cv2
except ImportError as exc:  # pragma: no cover -- exercised where OpenCV is absent
    raise ImportError(
        "vpt_rl needs OpenCV (the cv2 module): pip install 'vpt-rl[opencv]' (opencv-python-headless), "
        "or use the opencv-python that MineRL 1.0 installs"
    ) from exc

__all__ = ["cv2"]
