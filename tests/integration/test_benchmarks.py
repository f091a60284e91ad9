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


def test_handoff_bench_dagger_rounds_feed_the_rl_arm(tmp_path):
    """--dagger-rounds 2 at toy size: each round records episodes driven by the previous round's BC,
    the last BC trains on demonstrations + both rounds, RL from BC starts from it, and the table goes
    to its own docs block (learnable_dagger) with the DAgger BC row."""
    docs = tmp_path / "docs" / "benchmarks.md"
    docs.parent.mkdir()
    docs.write_text("<!-- handoff:learnable_dagger:start -->\n<!-- handoff:learnable_dagger:end -->\n")
    out_dir = tmp_path / "out"
    cmd = [
        "bench/handoff.py",
        "--out",
        str(out_dir),
        "--docs",
        str(docs),
        "--seeds",
        "0",
        "--arms",
        "bc",
        "rl_bc",
    ]
    cmd += ["--demo-episodes", "2", "--rl-frames", "512", "--eval-episodes", "1", "--max-episode-steps", "24"]
    cmd += ["--bc-config", "configs/bc_smoke.yaml", "--dagger-rounds", "2", "--dagger-episodes", "1"]
    out = run(cmd, timeout=900)
    r2 = next(line for line in out.splitlines() if line.startswith("$") and "dagger/r2" in line)
    assert "--driver" in r2 and "bc_dagger1-s0" in r2 and "--noise 0.1" in r2
    linked = sorted(p.name for p in (out_dir / "data" / "bc_dagger2-s0").glob("*.jsonl"))
    assert linked == [
        "expert-s000000.jsonl",
        "expert-s000001.jsonl",
        "expert-s010000.jsonl",
        "expert-s020000.jsonl",
    ]
    rl = next(line for line in out.splitlines() if line.startswith("$") and "rl_bc-s0" in line)
    assert "--init" in rl and "bc_dagger2-s0" in rl
    text = docs.read_text()
    assert "BC after DAgger rounds" in text and "BC after DAgger rounds" in out
    assert "DAgger driver (BC seed 0) after each round: round 0: " in text and "round 2: " in text
    assert (tmp_path / "docs" / "img" / "handoff_learnable_dagger.png").is_file()
