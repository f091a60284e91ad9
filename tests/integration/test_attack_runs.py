"""bench/experiments/attack_runs.py (sustained attack on logs at full difficulty) at toy size: one
row for a fresh tiny policy and one for the scripted demonstrator, with consistent figures."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_attack_runs_quick(tmp_path):
    out = subprocess.run(
        [sys.executable, "bench/experiments/attack_runs.py", "--quick", "--expert", "--json", str(tmp_path / "a.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "| policy | logs/1000f |" in out.stdout
    result = json.loads((tmp_path / "a.json").read_text())
    assert result["settings"] == "full" and result["log_break_ticks"] == 8
    rows = result["rows"]
    assert [r["policy"] for r in rows] == ["fresh tiny", "expert (sighted, noise 0.1)"]
    for r in rows:
        assert r["frames"] == 96 and r["envs"] == 2
        assert r["logs_per_1000"] >= 0 and r["reward_per_1000"] >= 0
        shares = ["on_log_share", "p_attack_on_log", "p_attack_still_on_log", "camera_moved_on_log"]
        for key in shares + ["run_reach_share"]:
            assert math.isnan(r[key]) or 0.0 <= r[key] <= 1.0, (r["policy"], key, r[key])
        assert r["p_attack_still_on_log"] <= r["p_attack_on_log"] + 1e-9
        assert isinstance(r["runs"], int) and r["runs"] >= 0
        assert sum(r["run_hist"].values()) == r["runs"] == sum(r["run_ends"].values())
        if r["runs"]:
            assert 1.0 <= r["run_median"] and 1.0 <= r["run_mean"] <= 8.0
            assert r["run_reach_share"] == r["run_hist"]["8+"] / r["runs"]
        # every run reaching 8 ticks broke its log, and the env's progress agrees with the runs
        assert r["run_ends"]["broken"] == r["run_hist"]["8+"]
        assert r["progress_mismatch_frames"] == 0
