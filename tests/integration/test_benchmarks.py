"""Every benchmark script under bench/speed and bench/experiments runs at toy size (`--quick`)
and prints its table: they are documentation that must not rot (bench/README.md lists them). No
timing is asserted here; the figures live in docs/benchmarks.md and docs/scaling.md."""

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


def test_every_bench_script_has_a_smoke_test():
    """A script added to bench/speed or bench/experiments gets a toy-size run in some test (here,
    or beside the code it measures), found by its path in quotes."""
    scripts = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "bench").glob("*/*.py"))
    tests = "".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py"))
    library = {"bench/experiments/handoff_report.py"}  # imported by handoff.py, run through it
    untested = [s for s in scripts if s not in library and f'"{s}"' not in tests]
    assert not untested, f"bench scripts without a smoke test: {untested}"


def test_gpu_bench_runs_on_cpu_quick(tmp_path):
    out = run(["bench/speed/gpu.py", "--device", "cpu", "--quick", "--out", str(tmp_path / "gpu.json")])
    assert "| preset | variant | train frames/s |" in out
    rows = json.loads((tmp_path / "gpu.json").read_text())["rows"]
    assert [r["variant"] for r in rows] == ["fp32 plain", "fp32 fused", "bf16 fused"]
    assert all(r["train_frames_per_s"] > 0 and r["act_frames_per_s"] > 0 for r in rows)
    assert all(r["train_mfu"] is None for r in rows)  # no peak known for a CPU without --peak-tflops


def test_ppg_iteration_bench_runs(tmp_path):
    out = run(["bench/speed/ppg_iteration.py", "--quick", "--out", str(tmp_path / "ppg.json")])
    assert "policy phase, prior_logprobs=recompute" in out and "segment MB per env row" in out
    assert json.loads((tmp_path / "ppg.json").read_text())["envs"] == 2


def test_rollout_bench_runs(tmp_path):
    out = run(["bench/speed/rollout_speed.py", "--quick", "--out", str(tmp_path / "rollout.json")])
    assert "| env pool alone | policy alone | rollout lockstep | rollout overlapped |" in out
    assert json.loads((tmp_path / "rollout.json").read_text())["frames_per_window"] == 32


def test_env_speed_bench_runs(tmp_path):
    out = run(["bench/speed/env_speed.py", "--quick", "--out", str(tmp_path / "env.json")])
    figures = json.loads((tmp_path / "env.json").read_text())
    assert len(figures["raw"]) == 3 and "N=2:" in out
    assert figures["pool"]["2"]["pool_env_steps_per_s"] > 0


def test_model_speed_bench_runs(tmp_path):
    out = run(["bench/speed/model_speed.py", "--quick", "--out", str(tmp_path / "model.json")])
    assert "| variant | ms | frames/s | vs plain |" in out and "| +bf16 |" in out
    results = json.loads((tmp_path / "model.json").read_text())["results"]
    assert set(results) == {"tiny"} and set(results["tiny"]) == {"act", "train"}


def test_learning_bench_runs(tmp_path):
    out = run(
        ["bench/experiments/learning.py", "--quick", "--runs-dir", str(tmp_path / "runs")]
        + ["--png", str(tmp_path / "curve.png"), "--json", str(tmp_path / "learning.json")]
    )
    assert "scripted expert: mean return" in out and "trained policy: mean return" in out
    assert (tmp_path / "curve.png").is_file()
    assert json.loads((tmp_path / "learning.json").read_text())["frames"] == 64


def test_handoff_bench_runs_and_writes_its_table(tmp_path):
    """bench/experiments/handoff.py end to end at toy size: record, BC, RL from BC and from scratch,
    eval, and the table and plot written between the docs markers; a second call with another arm
    and an extra one (``--arm``: rl_bc plus overrides) adds to it; the extra arm cannot be
    redefined with other overrides in the same output folder."""
    docs = tmp_path / "docs" / "benchmarks.md"
    docs.parent.mkdir()
    docs.write_text("x\n<!-- handoff:learnable:start -->\nold\n<!-- handoff:learnable:end -->\ny\n")
    common = ["bench/experiments/handoff.py", "--quick", "--out", str(tmp_path / "out"), "--docs", str(docs)]
    run([*common, "--arms", "bc", "rl_bc"], timeout=600)
    extra = ["--arm", "kl_rev", "ppg.kl_direction=policy_prior"]
    out = run([*common, "--arms", "rl_scratch", "kl_rev", *extra], timeout=600)
    text = docs.read_text()
    assert "old" not in text and text.startswith("x\n") and text.endswith("y\n")
    for label in ("BC from the demonstrations", "RL from BC (KL prior", "RL from scratch", "demonstrator"):
        assert label in text and label in out
    assert "RL from BC, `ppg.kl_direction=policy_prior` (kl_rev)" in text
    cmd = next(line for line in out.splitlines() if line.startswith("$") and "kl_rev-s0" in line)
    assert (
        "ppg.kl_direction=policy_prior" in cmd and "--init" in cmd and "ppg.value_warmup_frames=1024" in cmd
    )
    clash = subprocess.run(
        [sys.executable, *common, "--arms", "kl_rev", "--arm", "kl_rev", "ppg.kl_direction=prior_policy"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert clash.returncode != 0 and "kl_rev" in clash.stderr and "arms.json" in clash.stderr
    assert (tmp_path / "docs" / "img" / "handoff_learnable.png").is_file()


def test_handoff_bench_dagger_rounds_feed_the_rl_arm(tmp_path):
    """--dagger-rounds 2 at toy size: each round records episodes driven by the previous round's BC,
    the last BC trains on demonstrations + both rounds, RL from BC starts from it, and the table goes
    to its own docs block (learnable_dagger) with the DAgger BC row."""
    docs = tmp_path / "docs" / "benchmarks.md"
    docs.parent.mkdir()
    docs.write_text("<!-- handoff:learnable_dagger:start -->\n<!-- handoff:learnable_dagger:end -->\n")
    out_dir = tmp_path / "out"
    cmd = ["bench/experiments/handoff.py", "--quick", "--out", str(out_dir), "--docs", str(docs)]
    cmd += ["--arms", "bc", "rl_bc", "--dagger-rounds", "2", "--dagger-episodes", "1"]
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


def test_value_probe_runs(tmp_path):
    """bench/experiments/value_probe.py (the full-difficulty value diagnosis) at toy size: one row
    of value-target statistics per gamma, and its JSON."""
    out = run(["bench/experiments/value_probe.py", "--quick", "--json", str(tmp_path / "vp.json")])
    assert "| gamma | nonzero_target |" in out
    result = json.loads((tmp_path / "vp.json").read_text())
    assert {"settings", "rollout", "targets"} <= set(result) and result["rollout"]["frames"] > 0
