"""Same seed twice -> identical weights (CPU); another seed -> different weights."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "configs" / "smoke.yaml")


def _run(runs: Path, name: str, seed: int) -> dict[str, torch.Tensor]:
    spec = importlib.util.spec_from_file_location("train_ppo", ROOT / "train_ppo.py")
    tp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tp)
    # 2 iterations with an auxiliary phase (n_pi = 2) keep it short
    args = ["--config", SMOKE, "--runs-dir", str(runs), "--run-name", name, "total_frames=32", f"seed={seed}"]
    assert tp.main([*args, "log.progress=false"]) == 0
    return torch.load(runs / name / "checkpoints" / "latest.weights", weights_only=True)


def test_same_seed_same_weights_other_seed_differs(tmp_path):
    a = _run(tmp_path, "a", seed=7)
    b = _run(tmp_path, "b", seed=7)
    c = _run(tmp_path, "c", seed=8)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)
