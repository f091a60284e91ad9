"""The Ray benchmarks run at toy size (--quick) and print their tables: bench/speed/ray_rollout.py
(local vs Ray stepping) and bench/speed/ray_soak.py (injected faults, every step accounted for;
it exits non-zero on a miscount). No timing is asserted; the figures live in docs/benchmarks.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="ray is not installed: the Ray backend is the optional extra vpt-rl[ray]")

ROOT = Path(__file__).resolve().parents[2]


def run(args: list[str], timeout: float = 240) -> str:
    out = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return out.stdout


def test_ray_rollout_bench_runs_quick(tmp_path):
    out = run(["bench/speed/ray_rollout.py", "--quick", "--out", str(tmp_path / "r.json")])
    assert "| backend | frames/s | vs local | transport ms/frame |" in out
    rows = json.loads((tmp_path / "r.json").read_text())["rows"]
    assert [r["backend"] for r in rows] == ["local", "ray x1", "ray x2"] and all(r["fps"] > 0 for r in rows)


def test_ray_soak_bench_runs_quick(tmp_path):
    out = run(["bench/speed/ray_soak.py", "--quick", "--out", str(tmp_path / "s.json")])
    assert "no step lost or doubled" in out
    figures = json.loads((tmp_path / "s.json").read_text())
    assert figures["faults"] == figures["restarts"] == 6
    assert figures["reward_sum"] == figures["good_env_steps"] == figures["env_steps_sent"] - 6
