#!/usr/bin/env python
"""Why does BC score far below its demonstrator? Measurements for issue 13 (tiny preset, voxel world).

    python bench/bc_probe.py                         # every probe below (~40 min on 2 cores)
    python bench/bc_probe.py --probes base eval      # a subset

Records scripted-expert demonstrations once (the handoff benchmark's learnable settings), trains BC
variants with train_bc.py and scores every checkpoint with `vpt-rl eval` on the same held-out
seeds. Probes (each a BC run or an evaluation of one):

- base:      the earlier handoff benchmark's recipe (bc.lr 1e-3, chunk 64, 100k demonstration frames)
- eval:      the base checkpoint evaluated (a) sampled at 32x32 rendered directly (what RL sees),
             (b) greedy (argmax), (c) sampled on frames rendered as the demonstrations were
             (360x640, then resized like MineRL frames): the train/eval image mismatch
- data:      4x the demonstrations
- clean:     demonstrations without the expert's noise
- epochs:    3x the training frames (over- or under-fitting?)
- nonull:    keep the null-action frames (the sequence the policy sees at test time)

Writes OUT/probe.json and a markdown table (OUT/probe.md) of mean return and the fraction of
the demonstrator's return. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
ENV_ID = "vpt_rl/VoxelTreechop-v0"
sys.path.insert(0, str(ROOT))
from vpt_rl.config import LEARNABLE_VOXEL_KWARGS  # noqa: E402

ENV_KWARGS = dict(LEARNABLE_VOXEL_KWARGS)  # the handoff benchmark's "learnable" settings (200-step episodes)
PROBES = ("base", "eval", "data", "clean", "epochs", "nonull")


def run(cmd: list[str], log: Path) -> float:
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with open(log, "w") as f:
        if subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT).returncode != 0:
            raise SystemExit(f"failed: {' '.join(cmd)}; see {log}")
    return time.monotonic() - t0


def record(out: Path, episodes: int, noise: float, seed: int, logs: Path) -> list[float]:
    if not out.is_dir():
        cmd = [
            PY,
            "-m",
            "vpt_rl.cli",
            "record",
            "--env",
            ENV_ID,
            "--episodes",
            str(episodes),
            "--out",
            str(out),
        ]
        cmd += ["--noise", str(noise), "--seed", str(seed), "--env-kwargs", json.dumps(ENV_KWARGS)]
        run(cmd, logs / f"record-{out.name}.log")
    returns = []
    for line in open(logs / f"record-{out.name}.log"):
        if " return " in line and ": " in line:
            returns.append(float(line.split("return ")[1].split(",")[0]))
    return returns


def train_bc(data: Path, name: str, runs: Path, logs: Path, extra: list[str], threads: int) -> Path:
    weights = runs / name / "checkpoints" / "latest.weights"
    if not weights.is_file():
        cmd = [PY, "train_bc.py", "--data", str(data), "--config", "configs/bc.yaml", "--runs-dir", str(runs)]
        cmd += ["--run-name", name, "device=cpu", f"torch_threads={threads}", "log.progress=false"]
        cmd += ["bc.lr=0.001", "bc.chunk_len=64", "total_frames=100000", *extra]
        run(cmd, logs / f"{name}.log")
    return weights


def evaluate(weights: Path, name: str, out: Path, episodes: int, extra: list[str], env_kwargs: dict) -> float:
    path = out / "eval" / f"{name}.json"
    if not path.is_file():
        cmd = [
            PY,
            "-m",
            "vpt_rl.cli",
            "eval",
            "--init",
            str(weights),
            "--env",
            ENV_ID,
            "--episodes",
            str(episodes),
        ]
        cmd += [
            "--seed",
            "100000",
            "--env-kwargs",
            json.dumps(env_kwargs),
            "--json",
            str(path),
            "--threads",
            "1",
        ]
        run(cmd + extra, out / "logs" / f"eval-{name}.log")
    return float(json.loads(path.read_text())["mean_return"])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "bc_probe")
    p.add_argument("--probes", nargs="+", default=list(PROBES), choices=PROBES)
    p.add_argument("--demo-episodes", type=int, default=48)
    p.add_argument("--eval-episodes", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    out, runs, logs = args.out, args.out / "runs", args.out / "logs"
    results: dict = json.loads((out / "probe.json").read_text()) if (out / "probe.json").is_file() else {}
    expert = record(out / "demos", args.demo_episodes, 0.1, 0, logs)
    results["expert"] = float(np.mean(expert))

    def score(
        key: str, weights: Path, extra: list[str] | None = None, env_kwargs: dict | None = None
    ) -> None:
        results[key] = evaluate(weights, key, out, args.eval_episodes, extra or [], env_kwargs or ENV_KWARGS)
        (out / "probe.json").write_text(json.dumps(results, indent=1))
        print(
            f"{key}: {results[key]:.2f} ({results[key] / results['expert']:.0%} of the demonstrator)",
            flush=True,
        )

    base = train_bc(out / "demos", "base", runs, logs, [], args.threads)
    if "base" in args.probes:
        score("base", base)
    if "eval" in args.probes:
        score("base_greedy", base, ["--deterministic"])
        score("base_demo_frames", base, env_kwargs={**ENV_KWARGS, "pov_size": [360, 640]})
    if "data" in args.probes:
        record(out / "demos_x4", 4 * args.demo_episodes, 0.1, 1000, logs)
        score("data_x4", train_bc(out / "demos_x4", "data_x4", runs, logs, [], args.threads))
    if "clean" in args.probes:
        results["expert_clean"] = float(
            np.mean(record(out / "demos_clean", args.demo_episodes, 0.0, 0, logs))
        )
        score("clean", train_bc(out / "demos_clean", "clean", runs, logs, [], args.threads))
    if "epochs" in args.probes:
        score(
            "epochs_x3",
            train_bc(out / "demos", "epochs_x3", runs, logs, ["total_frames=300000"], args.threads),
        )
    if "nonull" in args.probes:
        score("nonull", train_bc(out / "demos", "nonull", runs, logs, ["data.drop_null=false"], args.threads))
    lines = ["| probe | mean return | of the demonstrator |", "|---|---|---|"]
    for key, value in results.items():
        lines.append(f"| {key} | {value:.2f} | {value / results['expert']:.0%} |")
    (out / "probe.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
