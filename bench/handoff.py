#!/usr/bin/env python
"""BC -> RL handoff benchmark on the voxel world with the tiny preset (issue 5).

Arms, each with ``--seeds`` seeds; the three RL arms get the same env-frame budget:

  (a) bc          BC of a fresh tiny policy on scripted-expert demonstrations (`vpt-rl record`;
                  ``--bc-frames`` demonstration frames, no env interaction)
  (b) rl_bc_kl    PPG from the BC checkpoint with the KL prior (ppg.kl_coef 0.2, the default)
  (c) rl_bc_nokl  PPG from the same BC checkpoint without the prior (ppg.kl_coef 0)
  (d) rl_scratch  PPG from a fresh policy (no --init, so no prior)

Every final checkpoint is scored with `vpt-rl eval` on the same held-out seeds. Each step runs as
its own process through the user-facing commands (record, train_bc.py, train_ppo.py, eval), so the
benchmark also exercises the documented path. The budget is set by ``--minutes-per-run``: a short
calibration run measures the trainer's frames/s and the RL budget is that many minutes of it.

    python bench/handoff.py --minutes-per-run 2          # ~20 runs of <= 2 min on a 2-core machine
    nohup python bench/handoff.py --minutes-per-run 8 > bench/out/handoff.log 2>&1 &

Results: OUT/results.json, OUT/summary.md (a table for docs/benchmarks.md) and a plot.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
ENV_ID = "vpt_rl/VoxelTreechop-v0"
ARMS = ("bc", "rl_bc_kl", "rl_bc_nokl", "rl_scratch")
# The voxel world's "learnable" settings (docs/environments.md, Learnability): on the defaults a
# fresh tiny policy never breaks a log, so RL from scratch would have no signal at all.
ENV_KWARGS = {
    "log_break_ticks": 4,
    "keep_break_progress": True,
    "spawn_facing_tree": True,
    "trunk_width": 2,
    "tree_density": 0.03,
    "terrain_amplitude": 1.0,
}
COLORS = {"expert": "C7", "bc": "C0", "rl_bc_kl": "C1", "rl_bc_nokl": "C2", "rl_scratch": "C3"}
LABELS = {
    "expert": "scripted expert (demonstrator)",
    "bc": "(a) BC from expert demos",
    "rl_bc_kl": "(b) RL from BC, KL prior",
    "rl_bc_nokl": "(c) RL from BC, no prior",
    "rl_scratch": "(d) RL from scratch",
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "handoff")
    p.add_argument(
        "--minutes-per-run", type=float, default=1.0, help="RL budget per run, in minutes of training"
    )
    p.add_argument(
        "--rl-frames", type=int, default=None, help="RL env frames per run (overrides the minutes)"
    )
    p.add_argument(
        "--bc-frames",
        type=int,
        default=100_000,
        help="BC demonstration frames (epochs over the demos; not env frames)",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument(
        "--ppo-config", type=Path, default=ROOT / "configs" / "treechop_tiny.yaml", help="PPG settings"
    )
    p.add_argument("--demo-episodes", type=int, default=24)
    p.add_argument("--noise", type=float, default=0.1, help="expert noise while recording")
    p.add_argument("--max-episode-steps", type=int, default=500, help="episode length (demos, RL, eval)")
    p.add_argument("--env-kwargs", default=json.dumps(ENV_KWARGS), help="JSON env kwargs (demos, RL, eval)")
    p.add_argument("--eval-episodes", type=int, default=8)
    p.add_argument("--num-envs", type=int, default=4)
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (the machine is shared)")
    p.add_argument("--plot", type=Path, default=ROOT / "docs" / "img" / "handoff_benchmark.png")
    p.add_argument(
        "--summarize", action="store_true", help="only rewrite summary and plot from OUT/results.json"
    )
    return p.parse_args()


def env_kwargs(args: argparse.Namespace) -> dict:
    """The env settings every step uses (the episode length included)."""
    return {**json.loads(args.env_kwargs), "max_episode_steps": args.max_episode_steps}


def run(cmd: list[str], log: Path) -> float:
    """Run one step, its output to ``log``; returns the wall time. Fails loudly (names the log)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"$ {' '.join(cmd)}", flush=True)
    t0 = time.monotonic()
    with open(log, "w") as f:
        status = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT).returncode
    if status != 0:
        raise SystemExit(f"step failed with status {status}; see {log}")
    return time.monotonic() - t0


def ppo_cmd(
    args: argparse.Namespace, runs: Path, name: str, seed: int, frames: int, extra: list[str]
) -> list[str]:
    return [
        PY,
        "train_ppo.py",
        "--config",
        str(args.out / "ppo.yaml"),
        "--runs-dir",
        str(runs),
        "--run-name",
        name,
        f"seed={seed}",
        f"total_frames={frames}",
        f"env.num_envs={args.num_envs}",
        f"env.kwargs={json.dumps(env_kwargs(args))}",
        f"torch_threads={args.threads}",
        "log.progress=false",
        "log.image_interval=0",
        "ckpt.interval=0",
        *extra,
    ]


def calibrate(args: argparse.Namespace, runs: Path) -> int:
    """RL frames that take ``--minutes-per-run`` minutes, from a short run's measured time/fps."""
    import yaml

    segment_len = (yaml.safe_load((args.out / "ppo.yaml").read_text()).get("ppg") or {}).get(
        "segment_len", 32
    )
    frames_per_iter = args.num_envs * segment_len
    run(ppo_cmd(args, runs, "calibrate", 0, 4 * frames_per_iter, []), args.out / "logs" / "calibrate.log")
    rows = list(csv.DictReader(open(runs / "calibrate" / "progress.csv")))
    fps = float(np.median([float(r["time/fps"]) for r in rows[1:] or rows]))
    frames = int(fps * args.minutes_per_run * 60) // frames_per_iter * frames_per_iter
    print(f"calibration: {fps:.0f} frames/s -> {frames} RL frames per run", flush=True)
    return max(frames, frames_per_iter)


def evaluate(args: argparse.Namespace, weights: Path, name: str) -> dict:
    out = args.out / "eval" / f"{name}.json"
    run(
        [
            PY,
            "-m",
            "vpt_rl.cli",
            "eval",
            "--init",
            str(weights),
            "--env",
            ENV_ID,
            "--episodes",
            str(args.eval_episodes),
            "--seed",
            "100000",  # held-out env seeds, the same for every arm
            "--env-kwargs",
            json.dumps(env_kwargs(args)),
            "--json",
            str(out),
            "--threads",
            str(args.threads),
        ],
        args.out / "logs" / f"eval-{name}.log",
    )
    return json.loads(out.read_text())


def curve(run_dir: Path) -> list[tuple[float, float]]:
    """(frames, rollout/ep_return_mean) from a PPG run's progress.csv files."""
    points = []
    for path in sorted(run_dir.glob("progress*.csv")):
        for row in csv.DictReader(open(path)):
            value = row.get("rollout/ep_return_mean", "")
            if value not in ("", "nan"):
                points.append(
                    (
                        float(row["time/frames"] if "time/frames" in row else row.get("frames", 0)),
                        float(value),
                    )
                )
    return points


def main() -> int:
    args = parse_args()
    if args.summarize:
        write_summary(args, json.loads((args.out / "results.json").read_text()))
        return 0
    runs = args.out / "runs"
    demos = args.out / "demos"
    args.out.mkdir(parents=True, exist_ok=True)
    # one snapshot of the PPG settings for every arm, whatever happens to the repo's file meanwhile
    if not (args.out / "ppo.yaml").is_file():
        shutil.copy(args.ppo_config, args.out / "ppo.yaml")
    results: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "arms": {}, "time_s": {}}
    if not demos.is_dir():
        record = [PY, "-m", "vpt_rl.cli", "record", "--env", ENV_ID, "--episodes", str(args.demo_episodes)]
        record += ["--out", str(demos), "--noise", str(args.noise), "--seed", "0"]
        record += ["--env-kwargs", json.dumps(env_kwargs(args))]
        results["time_s"]["record"] = run(record, args.out / "logs" / "record.log")
    expert = [
        float(line.split("return ")[1].split(",")[0])
        for line in open(args.out / "logs" / "record.log")
        if ": " in line and " return " in line
    ]
    results["arms"]["expert"] = {"returns": expert}
    rl_frames = args.rl_frames or calibrate(args, runs)
    bc_frames = args.bc_frames
    results["rl_frames"], results["bc_frames"] = rl_frames, bc_frames

    for seed in args.seeds:
        bc_name = f"bc-s{seed}"
        bc = [PY, "train_bc.py", "--data", str(demos), "--config", "configs/bc.yaml", "--runs-dir", str(runs)]
        bc += ["--run-name", bc_name, f"seed={seed}", f"total_frames={bc_frames}", "device=cpu"]
        bc += [f"torch_threads={args.threads}", "bc.lr=0.001", "bc.chunk_len=64", "log.progress=false"]
        results["time_s"][bc_name] = run(bc, args.out / "logs" / f"{bc_name}.log")
        bc_weights = runs / bc_name / "checkpoints" / "latest.weights"
        arms = {
            "bc": None,
            "rl_bc_kl": ["--init", str(bc_weights), "ppg.value_warmup_iters=2"],
            "rl_bc_nokl": ["--init", str(bc_weights), "ppg.value_warmup_iters=2", "ppg.kl_coef=0"],
            "rl_scratch": [],
        }
        for arm, extra in arms.items():
            name = f"{arm}-s{seed}"
            weights = bc_weights
            if extra is not None:
                results["time_s"][name] = run(
                    ppo_cmd(args, runs, name, seed, rl_frames, extra), args.out / "logs" / f"{name}.log"
                )
                weights = runs / name / "checkpoints" / "latest.weights"
            score = evaluate(args, weights, name)
            entry = results["arms"].setdefault(arm, {"returns": [], "per_seed": {}, "curves": {}})
            entry["per_seed"][seed] = score["mean_return"]
            entry["returns"].append(score["mean_return"])
            if extra is not None:
                entry["curves"][seed] = curve(runs / name)
            (args.out / "results.json").write_text(json.dumps(results, indent=2))

    write_summary(args, results)
    return 0


def write_summary(args: argparse.Namespace, results: dict) -> None:
    lines = [
        f"RL budget {results['rl_frames']} env frames per run, BC {results['bc_frames']} demonstration frames; "
        f"seeds {args.seeds}; eval {args.eval_episodes} episodes of {args.max_episode_steps} steps on held-out seeds; "
        f"env kwargs {json.dumps(env_kwargs(args))}.",
        "",
        "| arm | mean return (eval) | spread over seeds | per seed |",
        "|---|---|---|---|",
    ]
    for arm in ("expert", *ARMS):
        entry = results["arms"].get(arm)
        if not entry:
            continue
        r = np.array(entry["returns"], dtype=float)
        per_seed = (
            ", ".join(f"{v:.2f}" for v in entry.get("per_seed", {}).values()) or f"{len(r)} demo episodes"
        )
        lines.append(f"| {LABELS[arm]} | {r.mean():.2f} | {r.min():.2f} .. {r.max():.2f} | {per_seed} |")
    text = "\n".join(lines) + "\n"
    (args.out / "summary.md").write_text(text)
    print(text)
    plot(args, results)


def plot(args: argparse.Namespace, results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_curve, ax_bar) = plt.subplots(1, 2, figsize=(11, 4))
    for arm in ARMS[1:]:
        for seed, points in results["arms"].get(arm, {}).get("curves", {}).items():
            if points:
                x, y = zip(*points)
                ax_curve.plot(
                    x,
                    y,
                    color=COLORS[arm],
                    alpha=0.8,
                    label=LABELS[arm] if str(seed) == str(args.seeds[0]) else None,
                )
    ax_curve.set_xlabel("env frames")
    ax_curve.set_ylabel("training return (rollout/ep_return_mean)")
    ax_curve.legend(fontsize=8)
    names = [a for a in ("expert", *ARMS) if a in results["arms"]]
    means = [np.mean(results["arms"][a]["returns"]) for a in names]
    lows = [m - np.min(results["arms"][a]["returns"]) for a, m in zip(names, means)]
    highs = [np.max(results["arms"][a]["returns"]) - m for a, m in zip(names, means)]
    ax_bar.bar(range(len(names)), means, yerr=[lows, highs], color=[COLORS[a] for a in names], capsize=4)
    ax_bar.set_xticks(
        range(len(names)), [LABELS[a].split(" ", 1)[0] if a != "expert" else "expert" for a in names]
    )
    ax_bar.set_ylabel("eval return (mean; bars: min..max over seeds;\nexpert: over its demo episodes)")
    fig.tight_layout()
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.plot, dpi=100)
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    sys.exit(main())
