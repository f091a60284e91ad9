"""The benchmark scripts run and print their tables (CPU, toy sizes): they are documentation
that must not rot. No timing is asserted here; the figures live in docs/benchmarks.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(args: list[str], timeout: float = 300) -> str:
    out = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return out.stdout


def test_gpu_bench_runs_on_cpu_quick(tmp_path):
    out = run(["bench/gpu.py", "--device", "cpu", "--quick", "--out", str(tmp_path / "gpu.json")])
    assert "| preset | variant | train frames/s |" in out
    rows = json.loads((tmp_path / "gpu.json").read_text())["rows"]
    assert [r["variant"] for r in rows] == ["fp32 plain", "fp32 fused", "bf16 fused"]
    assert all(r["train_frames_per_s"] > 0 and r["act_frames_per_s"] > 0 for r in rows)
    assert all(r["train_mfu"] is None for r in rows)  # no peak known for a CPU without --peak-tflops


def test_ppg_iteration_bench_runs(tmp_path):
    out = run(["bench/ppg_iteration.py", "--envs", "2", "--segment-len", "8", "--repeats", "1"])
    assert "policy phase, prior_logprobs=recompute" in out and "segment MB per env row" in out


def test_rollout_bench_runs():
    out = run(["bench/rollout_speed.py", "--envs", "2", "--frames", "32", "--repeats", "1"])
    assert "| env pool alone | policy alone | rollout lockstep | rollout overlapped |" in out


def test_handoff_bench_runs_and_writes_its_table(tmp_path):
    """bench/handoff.py end to end at toy size: record, BC, RL from BC and from scratch, eval, and
    the table and plot written between the docs markers; a second call with another arm adds to it."""
    docs = tmp_path / "docs" / "benchmarks.md"
    docs.parent.mkdir()
    docs.write_text("x\n<!-- handoff:learnable:start -->\nold\n<!-- handoff:learnable:end -->\ny\n")
    common = ["bench/handoff.py", "--out", str(tmp_path / "out"), "--docs", str(docs), "--seeds", "0"]
    common += ["--demo-episodes", "2", "--rl-frames", "512", "--eval-episodes", "1"]
    common += ["--max-episode-steps", "24", "--bc-config", "configs/bc_smoke.yaml"]
    run([*common, "--arms", "bc", "rl_bc"], timeout=600)
    out = run([*common, "--arms", "rl_scratch"], timeout=600)
    text = docs.read_text()
    assert "old" not in text and text.startswith("x\n") and text.endswith("y\n")
    for label in ("BC from the demonstrations", "RL from BC (KL prior", "RL from scratch", "demonstrator"):
        assert label in text and label in out
    assert (tmp_path / "docs" / "img" / "handoff_learnable.png").is_file()
