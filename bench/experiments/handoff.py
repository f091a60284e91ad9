#!/usr/bin/env python
"""BC -> RL handoff benchmark on the voxel world with the tiny preset (docs/benchmarks.md "BC to RL handoff").

    python bench/experiments/handoff.py                # learnable settings, 3 seeds, 30 min per RL arm
    python bench/experiments/handoff.py --settings full --minutes-per-arm 30
    python bench/experiments/handoff.py --dagger-rounds 2 --arms bc rl_bc rl_scratch   # BC improved by DAgger first
    python bench/experiments/handoff.py --summarize    # table, plot and docs again from the runs on disk
    python bench/experiments/handoff.py --quick        # toy sizes, every arm, 1 seed (~2 min on 2 cores)

Arms, each with ``--seeds`` seeds; every RL arm gets the same env-frame budget (``--minutes-per-arm``
of wall clock, calibrated once into frames, or ``--rl-frames``):

  bc              BC of a fresh tiny policy on scripted-expert demonstrations (`vpt-rl record`,
                  then `train_bc.py --config configs/bc_voxel.yaml`, the recipe measured in docs/benchmarks.md)
  bc_dagger       with ``--dagger-rounds R``: R DAgger rounds on top (`vpt-rl record --driver`: the
                  previous round's BC of one seed drives, the demonstrator labels every frame;
                  BC retrained on everything so far); the RL arms then start from this BC
  rl_bc           PPG from the BC checkpoint as the package does it: KL prior (rho 0.2, x0.99 per
                  iteration), value head zeroed and warmed up (2 iterations), fresh aux head
  rl_bc_noprior   the same without the prior (ablation: ppg.kl_coef=0)
  rl_bc_nowarmup  the same without the value warm-up (ablation: ppg.value_warmup_frames=0)
  rl_scratch      PPG from a fresh policy (no prior), the package's defaults
  NAME            with ``--arm NAME OVERRIDE...`` (repeatable): RL from BC as rl_bc plus those
                  config overrides (an ablation, e.g. ``--arm kl_rev ppg.kl_direction=policy_prior``);
                  kept in OUT/arms.json so later invocations and --summarize know it

Every final checkpoint, and the demonstrator itself (the scripted expert with the recording's
noise), is scored on the same held-out env seeds. Settings: ``learnable`` is the defaults of
`python train_ppo.py` (2-tick logs, spawn facing a tree, 200-step episodes); ``full`` is the voxel
world's own difficulty (configs/treechop_full.yaml: 8-tick logs that reset, 1-wide trunks, random
spawn direction, 500-step episodes), where a fresh policy almost never sees a reward.

Each step runs as its own process through the user-facing commands (record, train_bc.py,
train_ppo.py, eval). Results (rebuilt from OUT/runs and OUT/eval on every call, so invocations
with different --arms/--seeds add to one table): OUT/summary.md, the curves
(docs/img/handoff_TAG.png: mean training return vs env frames per arm, band = min..max over
seeds) and the table written into docs/benchmarks.md between markers; TAG is the settings name,
with ``_dagger`` appended when DAgger rounds run (their own output folder and docs block).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from handoff_report import curve, series, write_summary  # noqa: E402

from vpt_rl.config import LEARNABLE_VOXEL_KWARGS  # noqa: E402

PY = sys.executable
ENV_ID = "vpt_rl/VoxelTreechop-v0"
SETTINGS = {
    "learnable": dict(LEARNABLE_VOXEL_KWARGS),
    "full": {
        "max_episode_steps": 500,
        "log_break_ticks": 8,
        "keep_break_progress": False,
        "spawn_facing_tree": False,
        "trunk_width": 1,
        "tree_density": 0.012,
        "terrain_amplitude": 2.5,
    },
}
ARMS = {
    "bc": None,
    "rl_bc": ["ppg.value_warmup_frames=1024"],
    "rl_bc_noprior": ["ppg.value_warmup_frames=1024", "ppg.kl_coef=0"],
    "rl_bc_nowarmup": ["ppg.value_warmup_frames=0"],
    "rl_scratch": [],
}
EVAL_SEED = 100_000  # held-out env seeds: EVAL_SEED + i, the same for every arm
# --quick: every step at toy size, output in its own folder and no docs block rewritten (the docs
# path does not exist there); the code runs, the figures mean nothing
QUICK = {
    "seeds": [0],
    "demo_episodes": 2,
    "rl_frames": 512,
    "eval_episodes": 1,
    "max_episode_steps": 24,
    "bc_config": ROOT / "configs" / "bc_smoke.yaml",
    "out": ROOT / "bench" / "out" / "handoff_quick",
    "docs": ROOT / "bench" / "out" / "handoff_quick" / "docs" / "benchmarks.md",
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--settings", choices=sorted(SETTINGS), default="learnable")
    p.add_argument("--out", type=Path, default=None, help="default bench/out/handoff_SETTINGS")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--arms", nargs="+", default=None, help=f"default: {' '.join(ARMS)} and every --arm")
    p.add_argument(
        "--arm",
        nargs="+",
        action="append",
        default=[],
        metavar=("NAME", "OVERRIDE"),
        help="an extra RL-from-BC arm: rl_bc's overrides plus these (repeatable)",
    )
    p.add_argument("--minutes-per-arm", type=float, default=30.0, help="RL wall clock per run (calibrated)")
    p.add_argument("--rl-frames", type=int, default=None, help="RL env frames per run (instead of minutes)")
    p.add_argument("--bc-config", type=Path, default=ROOT / "configs" / "bc_voxel.yaml")
    p.add_argument(
        "--demo-episodes", type=int, default=480, help="demonstrations (200 frames each: learnable)"
    )
    p.add_argument("--noise", type=float, default=0.1, help="expert noise while recording")
    p.add_argument(
        "--expert",
        choices=["sighted", "nearest"],
        default="sighted",
        help="demonstrator: acts on the logs its camera shows (default), or walks to the nearest log anywhere",
    )
    p.add_argument(
        "--dart",
        action="store_true",
        help="record with DART labels (noise steps labelled with the expert's own action); the "
        "demonstrator is then the noise-free expert",
    )
    p.add_argument(
        "--dagger-rounds",
        type=int,
        default=0,
        help="DAgger rounds after BC (the RL arms start from the last)",
    )
    p.add_argument("--dagger-episodes", type=int, default=240, help="episodes the BC policy drives per round")
    p.add_argument(
        "--dagger-beta", type=float, default=0.2, help="probability per step of executing the expert"
    )
    p.add_argument(
        "--dagger-driver-seed",
        type=int,
        default=None,
        help="whose BC drives the DAgger rounds (default: the first of --seeds; give it to lanes run side by side)",
    )
    p.add_argument("--eval-episodes", type=int, default=16)
    p.add_argument(
        "--max-episode-steps", type=int, default=None, help="override the settings' episode length"
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--docs", type=Path, default=ROOT / "docs" / "benchmarks.md")
    p.add_argument("--summarize", action="store_true", help="only rewrite summary, plot and docs")
    p.add_argument("--quick", action="store_true", help="toy sizes (a CI check); flags given still win")
    if p.parse_known_args()[0].quick:
        p.set_defaults(**QUICK)
    args = p.parse_args()
    if args.dagger_rounds < 0:
        p.error(f"--dagger-rounds must be >= 0, got {args.dagger_rounds}")
    for name, *_ in args.arm:
        if name in ARMS or not name.replace("_", "").isalnum():
            p.error(f"--arm {name}: the name must be new and alphanumeric (built-in arms: {', '.join(ARMS)})")
    args.tag = args.settings + ("_dagger" if args.dagger_rounds else "")
    args.out = args.out or ROOT / "bench" / "out" / f"handoff_{args.tag}"
    args.env_kwargs = dict(SETTINGS[args.settings])
    if args.max_episode_steps:
        args.env_kwargs["max_episode_steps"] = args.max_episode_steps
    return args


def load_arms(args) -> dict[str, list[str] | None]:
    """The built-in arms plus the extra ones of this and earlier invocations (OUT/arms.json; an
    extra arm given again must have the same overrides, or its runs would mix two settings)."""
    path = args.out / "arms.json"
    extra = json.loads(path.read_text()) if path.is_file() else {}
    for name, *overrides in args.arm:
        overrides = [ARMS["rl_bc"][0], *overrides]  # the value warm-up, as rl_bc
        if extra.get(name, overrides) != overrides:
            raise SystemExit(f"--arm {name}: {path} has it as {extra[name]}, not {overrides}")
        extra[name] = overrides
    if args.arm:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(extra, indent=1))
    return {**ARMS, **extra}


def run(cmd: list[str], log: Path) -> float:
    """Run one step with its output in ``log``; returns its wall time. Fails loudly (names the log)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"$ {' '.join(cmd)}", flush=True)
    t0 = time.monotonic()
    with open(log, "w") as f:
        if subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT).returncode != 0:
            raise SystemExit(f"step failed; see {log}")
    return time.monotonic() - t0


def run_once(out: Path, name: str, cmd: list[str]) -> None:
    """Run a training step unless it completed before (a marker written after it succeeded: a
    periodic checkpoint of a run still going, or of a crashed one, does not count)."""
    marker = out / "done" / name
    if not marker.is_file():
        run(cmd, out / "logs" / f"{name}.log")
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(time.strftime("%Y-%m-%d %H:%M:%S\n"))


def ppo_cmd(args, name: str, seed: int, frames: int, extra: list[str]) -> list[str]:
    return [
        PY, "train_ppo.py", "--runs-dir", str(args.out / "runs"), "--run-name", name, f"seed={seed}",
        f"total_frames={frames}", f"env.kwargs={json.dumps(args.env_kwargs)}", f"torch_threads={args.threads}",
        "log.progress=false", "log.image_interval=0", "ckpt.interval=0", *extra,
    ]  # fmt: skip


def calibrate(args) -> int:
    """RL frames that take ``--minutes-per-arm`` minutes: a short run's measured time/fps."""
    name = "calibrate"
    if not (args.out / "runs" / name / "progress.csv").is_file():
        run(ppo_cmd(args, name, 0, 8 * 512, []), args.out / "logs" / f"{name}.log")
    fps_all = [v for _, v in series(args.out / "runs" / name, "time/fps")]
    fps = float(np.median(fps_all[2:] or fps_all))
    frames = int(fps * args.minutes_per_arm * 60) // 512 * 512
    print(f"calibration: {fps:.0f} frames/s -> {frames} RL frames per run", flush=True)
    return max(frames, 512)


def evaluate(args, weights: Path, name: str) -> float:
    out = args.out / "eval" / f"{name}.json"
    if not out.is_file():
        cmd = [PY, "-m", "vpt_rl.cli", "eval", "--init", str(weights), "--env", ENV_ID]
        cmd += ["--episodes", str(args.eval_episodes), "--seed", str(EVAL_SEED)]
        cmd += [
            "--env-kwargs",
            json.dumps(args.env_kwargs),
            "--json",
            str(out),
            "--threads",
            str(args.threads),
        ]
        run(cmd, args.out / "logs" / f"eval-{name}.log")
    return float(json.loads(out.read_text())["mean_return"])


def demonstrator(args) -> float:
    """The policy the demonstrations' labels come from, on the held-out seeds at the policy's size:
    the scripted expert with the recording's noise, or without it for DART labels."""
    from vpt_rl.envs.voxel import expert_returns

    noise = 0.0 if args.dart else args.noise
    returns = expert_returns(
        args.env_kwargs, args.eval_episodes, EVAL_SEED, noise=noise, sighted=args.expert == "sighted"
    )
    return float(np.mean(returns))


def cached(path: Path, compute) -> float:
    """A number computed once per output folder (concurrent invocations share it)."""
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(compute()))
        tmp.replace(path)
    return json.loads(path.read_text())


def collect(args) -> dict:
    """Results rebuilt from the run folders and eval files, so several invocations (different arms
    or seeds, one after another or side by side) add to one table without a shared file to race on."""
    results = {"settings": args.settings, "env_kwargs": args.env_kwargs, "arms": {}}
    for key in ("expert", "rl_frames"):
        if (args.out / f"{key}.json").is_file():
            results[key] = json.loads((args.out / f"{key}.json").read_text())
    arms = args.arm_table  # load_arms', read once by main
    results["extra_arms"] = {k: v for k, v in arms.items() if k not in ARMS}
    for arm in [*arms, "bc_dagger"]:
        entry = {"eval": {}, "curves": {}}
        for path in sorted((args.out / "eval").glob(f"{arm}-s*.json")):
            seed = path.stem.rsplit("-s", 1)[1]
            entry["eval"][seed] = float(json.loads(path.read_text())["mean_return"])
            if arms.get(arm) is not None:
                entry["curves"][seed] = curve(args.out / "runs" / path.stem)
        if entry["eval"]:
            results["arms"][arm] = entry
    rounds = results["dagger_rounds"] = {}  # the driver's BC after each intermediate round
    for path in sorted((args.out / "eval").glob("bc_dagger[0-9]*-s*.json")):
        name, seed = path.stem.rsplit("-s", 1)
        rounds.setdefault(seed, {})[int(name[len("bc_dagger") :])] = json.loads(path.read_text())[
            "mean_return"
        ]
    return results


def weights_of(args, name: str) -> Path:
    """The final weights of run ``name`` (BC or RL)."""
    return args.out / "runs" / name / "checkpoints" / "latest.weights"


def train_bc(args, data: list[Path], name: str, seed: int) -> Path:
    """BC of a fresh policy on the episodes of ``data`` (folders joined by links in OUT/data/NAME,
    since train_bc.py reads one folder); returns its weights."""
    folder = data[0]
    if len(data) > 1:
        folder = args.out / "data" / name
        folder.mkdir(parents=True, exist_ok=True)
        for src in data:
            for f in sorted(src.glob("*.mp4")) + sorted(src.glob("*.jsonl")):
                link = folder / f.name
                if not link.is_symlink():
                    link.symlink_to(f.resolve())
    cmd = [PY, "train_bc.py", "--data", str(folder), "--config", str(args.bc_config), "--runs-dir"]
    cmd += [str(args.out / "runs"), "--run-name", name, f"seed={seed}", "device=cpu"]
    cmd += [f"torch_threads={args.threads}", "log.progress=false"]
    run_once(args.out, name, cmd)
    return weights_of(args, name)


def dagger(args, demos: Path) -> dict[int, Path]:
    """DAgger (Ross et al. 2011; vpt_rl/data/dagger.py): in round r the round r-1 BC of one seed
    (``--dagger-driver-seed``) drives ``--dagger-episodes`` episodes (the expert acts with
    probability ``--dagger-beta``), the demonstrator labels every frame (with the recording's
    noise: the same stochastic policy as the demonstrations, so the BC is still measured against
    it), and BC is retrained from scratch on the demonstrations plus every round so far; the last
    round trains every seed (its scores are the ``bc_dagger`` arm). Why one driver for all seeds:
    the recordings are the costly part on 2 cores, and the seeds then differ only in the BC
    training, as the round-0 seeds do."""
    driver_seed = args.seeds[0] if args.dagger_driver_seed is None else args.dagger_driver_seed
    data = [demos]
    driver = train_bc(args, data, f"bc-s{driver_seed}", driver_seed)
    for r in range(1, args.dagger_rounds + 1):
        rec = args.out / "dagger" / f"r{r}"
        if not (rec / "done").is_file():
            cmd = [PY, "-m", "vpt_rl.cli", "record", "--env", ENV_ID, "--episodes", str(args.dagger_episodes)]
            cmd += ["--out", str(rec), "--noise", str(args.noise), "--seed", str(10_000 * r)]
            cmd += ["--env-kwargs", json.dumps(args.env_kwargs)]
            cmd += ["--sighted"] if args.expert == "sighted" else []
            cmd += ["--driver", str(driver), "--beta", str(args.dagger_beta)]
            run(cmd, args.out / "logs" / f"dagger-r{r}.log")
            (rec / "done").write_text("")
        data.append(rec)
        if r < args.dagger_rounds:
            driver = train_bc(args, data, f"bc_dagger{r}-s{driver_seed}", driver_seed)
            evaluate(args, driver, f"bc_dagger{r}-s{driver_seed}")
    return {seed: train_bc(args, data, f"bc_dagger{args.dagger_rounds}-s{seed}", seed) for seed in args.seeds}


def main() -> int:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    arms = args.arm_table = load_arms(args)
    if args.arms is None:
        args.arms = list(arms)
    unknown = [a for a in args.arms if a not in arms]
    if unknown:
        raise SystemExit(f"--arms {' '.join(unknown)}: not an arm here (known: {', '.join(arms)})")
    if args.dagger_rounds and args.dart:
        raise SystemExit("--dagger-rounds with --dart: a driven recording has no noise steps to relabel")
    if args.summarize:
        write_summary(args, collect(args))
        return 0
    demos = args.out / "demos"
    needs_demos = any(arm != "rl_scratch" for arm in args.arms)
    if needs_demos and not (demos / "done").is_file():
        cmd = [PY, "-m", "vpt_rl.cli", "record", "--env", ENV_ID, "--episodes", str(args.demo_episodes)]
        cmd += ["--out", str(demos), "--noise", str(args.noise), "--seed", "0"]
        cmd += ["--env-kwargs", json.dumps(args.env_kwargs)]
        cmd += (["--sighted"] if args.expert == "sighted" else []) + (["--dart"] if args.dart else [])
        run(cmd, args.out / "logs" / "record.log")
        (demos / "done").write_text("")
    if needs_demos:
        cached(args.out / "expert.json", lambda: demonstrator(args))
    frames = cached(args.out / "rl_frames.json", lambda: args.rl_frames or calibrate(args))
    if args.rl_frames and args.rl_frames != frames:
        raise SystemExit(f"--rl-frames {args.rl_frames}: {args.out} already uses {frames} frames per RL run")
    final_bc = {seed: train_bc(args, [demos], f"bc-s{seed}", seed) for seed in args.seeds if needs_demos}
    if needs_demos and args.dagger_rounds:
        final_bc = dagger(args, demos)
    for seed in args.seeds:
        for arm in args.arms:
            name = f"{arm}-s{seed}"
            weights = weights_of(args, f"bc-s{seed}")
            overrides = arms[arm]
            if overrides is not None:
                weights = weights_of(args, name)
                init = [] if arm == "rl_scratch" else ["--init", str(final_bc[seed])]
                run_once(args.out, name, ppo_cmd(args, name, seed, frames, init + overrides))
            evaluate(args, weights, name)
        if needs_demos and args.dagger_rounds:
            evaluate(args, final_bc[seed], f"bc_dagger-s{seed}")
    write_summary(args, collect(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
