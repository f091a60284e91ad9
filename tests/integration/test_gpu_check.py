"""scripts/gpu_check.sh, the one prepared script for the first GPU machine, parses and runs its CPU
parts here (--cpu: the same steps at toy size), ending with its table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"


def test_gpu_check_parses():
    out = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_gpu_check_cpu_parts(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "OUT_DIR": str(tmp_path / "gc")}
    out = subprocess.run(
        ["bash", str(SCRIPT), "--cpu"], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    table = out.stdout[out.stdout.index("=== gpu_check") :]
    for step in ("gpu_tests", "forced_rank", "forced_resume", "bf16_run", "bf16_resume", "gpu_bench"):
        assert f"{step}" in table and "FAIL" not in table, table
    assert "process group of 1 started" in table and "ratio_dev_first" in table
