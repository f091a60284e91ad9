"""Write docs/img/voxel_world.png: one voxel-world view at 360x640 (MineRL's pov size), and the
same view rendered directly at 128x128 (the VPT policy's input) and 32x32 (the tiny policy's).

    python scripts/voxel_screenshot.py [--seed 1] [--out docs/img/voxel_world.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from vpt_rl.envs.voxel import VoxelTreechopEnv

ROOT = Path(__file__).resolve().parents[1]


def view(pov_size: tuple[int, int], seed: int, turn: tuple[float, float], back: int) -> np.ndarray:
    """The spawn view of `seed` (facing the nearest tree), turned by `turn` = (pitch, yaw) degrees
    after walking `back` ticks backwards."""
    env = VoxelTreechopEnv(pov_size=pov_size, spawn_facing_tree=True)
    env.reset(seed=seed)
    obs, *_ = env.step({"camera": np.array(turn, np.float32), "back": 1})
    for _ in range(back):
        obs, *_ = env.step({"back": 1})  # step back so the whole tree is in view
    return obs["pov"]


def label(img: np.ndarray, text: str) -> np.ndarray:
    out = np.full((img.shape[0] + 22, img.shape[1], 3), 255, np.uint8)
    out[22:] = img
    cv2.putText(out, text, (2, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pitch", type=float, default=3.0, help="camera pitch change (degrees, + = down)")
    parser.add_argument("--yaw", type=float, default=-20.0, help="camera yaw change (degrees, + = right)")
    parser.add_argument("--back", type=int, default=12, help="ticks walked backwards first")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "voxel_world.png")
    args = parser.parse_args()
    turn = (args.pitch, args.yaw)
    big = label(view((360, 640), args.seed, turn, args.back), "pov 360x640 (rendered 72x128, upscaled)")
    mid = label(
        np.kron(view((128, 128), args.seed, turn, args.back), np.ones((2, 2, 1), np.uint8)),
        "128x128 direct (2x)",
    )
    small = label(
        np.kron(view((32, 32), args.seed, turn, args.back), np.ones((4, 4, 1), np.uint8)), "32x32 direct (4x)"
    )
    height = max(big.shape[0], mid.shape[0] + 8 + small.shape[0])
    canvas = np.full((height, big.shape[1] + 8 + mid.shape[1], 3), 255, np.uint8)
    canvas[: big.shape[0], : big.shape[1]] = big
    x = big.shape[1] + 8
    canvas[: mid.shape[0], x : x + mid.shape[1]] = mid
    canvas[mid.shape[0] + 8 : mid.shape[0] + 8 + small.shape[0], x : x + small.shape[1]] = small
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    print(f"wrote {args.out} ({canvas.shape[1]}x{canvas.shape[0]})")


if __name__ == "__main__":
    main()
