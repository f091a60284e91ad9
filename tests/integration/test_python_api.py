"""The Python API a user trains with: `import vpt_rl` exports the trainers, their configs and the
env factory (lazily), and README.md's "Training from Python" script is examples/train_from_python.py
and trains."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "train_from_python.py"
TRAINING_NAMES = {
    "PPGTrainer",
    "BCTrainer",
    "TrainConfig",
    "BCConfig",
    "load_config",
    "load_bc_config",
    "make_env_fns",
    "make_pool",
}


def test_readme_shows_the_example_file_verbatim():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Training from Python", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block is not None, "README.md's 'Training from Python' has no python block"
    assert block.group(1) == EXAMPLE.read_text()


def test_import_is_lazy_and_every_export_resolves():
    code = (
        "import sys, vpt_rl, gymnasium\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('vpt_rl') or m == 'torch')\n"
        "assert loaded == ['vpt_rl'], loaded  # the trainers are not imported by `import vpt_rl`\n"
        "assert 'vpt_rl/VoxelTreechop-v0' in gymnasium.registry\n"
        "missing = [n for n in vpt_rl.__all__ if getattr(vpt_rl, n, None) is None]\n"
        "assert not missing, missing\n"
        "print(' '.join(vpt_rl.__all__))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert TRAINING_NAMES <= set(out.stdout.split())


def test_example_trains_a_fresh_policy(tmp_path):
    """The example as a user runs it (from a folder holding configs/), at a 64-frame budget: one
    iteration of 2 envs x 32 frames."""
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    overrides = ["total_frames=64", "env.num_envs=2", "ppg.segment_len=32", "ppg.n_minibatches=2"]
    overrides += ["log.progress=false"]
    out = subprocess.run(
        [sys.executable, str(EXAMPLE), *overrides], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    run = tmp_path / "runs" / "from_python"
    assert "trained weights: runs/from_python/checkpoints/latest.weights" in out.stdout
    assert (run / "checkpoints" / "latest.weights").is_file() and (run / "config.yaml").is_file()
    with open(run / "progress.csv") as f:
        assert float(list(csv.DictReader(f))[-1]["time/frames"]) == 64
