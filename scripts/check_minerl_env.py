#!/usr/bin/env python
"""Check an environment made by the MineRL 1.0.2 install recipe (CI's second leg):

    python3 -m venv .venv-minerl && .venv-minerl/bin/pip install torch==2.13.0
    .venv-minerl/bin/pip install -e . -r requirements/minerl-1.0.2.txt pytest
    .venv-minerl/bin/python scripts/check_minerl_env.py

pip resolved vpt_rl together with MineRL 1.0.2's requirement list (numpy < 1.24, old gym,
opencv-python); this asserts what came out, then that vpt_rl works on it: cv2 from MineRL's
opencv-python alone, the frame preprocessing bit-identical to the official golden frames, a voxel
world step. (Minecraft itself is not built here: MineRL's git install needs network and JDK 8,
installed before it, since the install builds Minecraft with gradle; the adapter tests run
against the double, in this env, right after this script.)
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    import numpy as np

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    found = {
        n: version(n)
        for n in ("numpy", "gym", "gymnasium", "opencv-python", "opencv-python-headless", "vpt-rl")
    }
    print("resolved:", ", ".join(f"{k} {v}" for k, v in found.items()))
    major, minor = (int(x) for x in np.__version__.split(".")[:2])
    assert (major, minor) < (1, 24), f"numpy {np.__version__}: MineRL 1.0.2 needs < 1.24"
    assert found["gym"] is not None and found["gym"] <= "0.23.1", found["gym"]
    assert found["opencv-python"] and not found["opencv-python-headless"], "one OpenCV only: MineRL's"

    import gymnasium

    import vpt_rl
    from vpt_rl.envs.obs import preprocess_frame

    golden = np.load(ROOT / "tests" / "data" / "vpt_reference" / "preprocess_golden.npz")
    for key in golden.files:
        if key.startswith("frame_"):
            out = preprocess_frame(golden[key])
            assert np.array_equal(out, golden[key.replace("frame_", "resized_")]), key
    env = gymnasium.make("vpt_rl/VoxelTreechop-v0", pov_size=(32, 32))
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(env.action_space.sample())
    assert obs["pov"].shape == (32, 32, 3) and obs["inventory"]["oak_log"].dtype == np.int64
    print(
        f"ok: vpt_rl {vpt_rl.__name__} on numpy {np.__version__} with MineRL's OpenCV {found['opencv-python']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
