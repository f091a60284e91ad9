#!/usr/bin/env python
"""BC -> RL handoff benchmark on the voxel world with the tiny preset (issues 5 and 13).

    python bench/handoff.py                                    # learnable settings, 3 seeds, 30 min per RL arm
    python bench/handoff.py --settings full --minutes-per-arm 30
    python bench/handoff.py --summarize                        # table, plot and docs again from the runs on disk

Arms, each with ``--seeds`` seeds; every RL arm gets the same env-frame budget (``--minutes-per-arm``
of wall clock, calibrated once into frames, or ``--rl-frames``):

  bc              BC of a fresh tiny policy on scripted-expert demonstrations (`vpt-rl record`,
                  then `train_bc.py --config configs/bc_voxel.yaml`, the recipe measured in issue 13)
  rl_bc           PPG from the BC checkpoint as the package does it: KL prior (rho 0.2, x0.99 per
                  iteration), value head zeroed and warmed up (2 iterations), fresh aux head
  rl_bc_noprior   the same without the prior (ablation: ppg.kl_coef=0)
  rl_bc_nowarmup  the same without the value warm-up (ablation: ppg.value_warmup_iters=0)
  rl_scratch      PPG from a fresh policy (no prior), the package's defaults

Every final checkpoint, and the demonstrator itself (the scripted expert with the recording's
noise), is scored on the same held-out env seeds. Settings: ``learnable`` is the defaults of
`python train_ppo.py` (2-tick logs, spawn facing a tree, 200-step episodes); ``full`` is the voxel
world's own difficulty (configs/treechop_full.yaml: 8-tick logs that reset, 1-wide trunks, random
spawn direction, 500-step episodes), where a fresh policy almost never sees a reward.

Each step runs as its own process through the user-facing commands (record, train_bc.py,
train_ppo.py, eval). Results (rebuilt from OUT/runs and OUT/eval on every call, so invocations
with different --arms/--seeds add to one table): OUT/summary.md, the curves
(docs/img/handoff_SETTINGS.png: mean training return vs env frames per arm, band = min..max over
seeds) and the table written into docs/benchmarks.md between markers.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
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
    "rl_bc": ["ppg.value_warmup_iters=2"],
    "rl_bc_noprior": ["ppg.value_warmup_iters=2", "ppg.kl_coef=0"],
    "rl_bc_nowarmup": ["ppg.value_warmup_iters=0"],
    "rl_scratch": [],
}
COLORS = {
    "expert": "k",
    "bc": "C0",
    "rl_bc": "C1",
    "rl_bc_noprior": "C2",
    "rl_bc_nowarmup": "C4",
    "rl_scratch": "C3",
}
LABELS = {
    "expert": "demonstrator (scripted expert, recording noise)",
    "bc": "BC from the demonstrations",
    "rl_bc": "RL from BC (KL prior, value warm-up)",
    "rl_bc_noprior": "RL from BC, no prior",
    "rl_bc_nowarmup": "RL from BC, no value warm-up",
    "rl_scratch": "RL from scratch",
}
EVAL_SEED = 100_000  # held-out env seeds: EVAL_SEED + i, the same for every arm


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--settings", choices=sorted(SETTINGS), default="learnable")
    p.add_argument("--out", type=Path, default=None, help="default bench/out/handoff_SETTINGS")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
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
    p.add_argument("--eval-episodes", type=int, default=16)
    p.add_argument(
        "--max-episode-steps", type=int, default=None, help="override the settings' episode length"
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--docs", type=Path, default=ROOT / "docs" / "benchmarks.md")
    p.add_argument("--summarize", action="store_true", help="only rewrite summary, plot and docs")
    args = p.parse_args()
    args.out = args.out or ROOT / "bench" / "out" / f"handoff_{args.settings}"
    args.env_kwargs = dict(SETTINGS[args.settings])
    if args.max_episode_steps:
        args.env_kwargs["max_episode_steps"] = args.max_episode_steps
    return args


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
    rows = list(csv.DictReader(open(args.out / "runs" / name / "progress.csv")))
    fps = float(np.median([float(r["time/fps"]) for r in rows[2:] or rows]))
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


def curve(run_dir: Path) -> list[tuple[float, float]]:
    """(env frames, rollout/ep_return_mean) of a PPG run."""
    return series(run_dir, "rollout/ep_return_mean")


def series(run_dir: Path, tag: str) -> list[tuple[float, float]]:
    """(env frames, value) of one logged tag of a PPG run (rows without it skipped)."""
    points = []
    for path in sorted(run_dir.glob("progress*.csv")):
        for row in csv.DictReader(open(path)):
            if row.get(tag, "") not in ("", "nan"):
                points.append((float(row["time/frames"]), float(row[tag])))
    return points


def at_budget(points: list[tuple[float, float]], frames: float) -> float:
    """The last value logged at or before ``frames`` (nan if none)."""
    before = [v for f, v in points if f <= frames]
    return before[-1] if before else float("nan")


def window_mean(points: list[tuple[float, float]], lo: float, hi: float) -> float:
    vals = [v for f, v in points if lo < f <= hi]
    return float(np.mean(vals)) if vals else float("nan")


def diagnostics(args, results: dict) -> list[str]:
    """What the prior and the warm-up do, per RL arm (seed means): the return at fractions of the
    budget (with min..max), the lowest return in the first eighth (a collapse of the BC start
    shows there), the KL to the prior and the value's explained variance early and late."""
    frames = float(results.get("rl_frames") or 0)
    fracs = (0.125, 0.25, 0.5, 0.75, 1.0)
    head = " | ".join(f"{f * frames / 1000:.0f}k" for f in fracs)
    lines = [
        "",
        f"| arm (seeds) | training return at {head} frames | lowest in the first eighth | "
        "KL to the prior, first / last eighth | explained variance, first / last eighth |",
        "|---|" + "---|" * (len(fracs) + 3),
    ]
    for arm, spec in ARMS.items():
        seeds = sorted(results["arms"].get(arm, {}).get("curves", {}))
        if spec is None or not seeds:
            continue
        runs = [args.out / "runs" / f"{arm}-s{seed}" for seed in seeds]
        ret = [series(r, "rollout/ep_return_mean") for r in runs]
        cells = []
        for f in fracs:
            v = np.array([at_budget(c, f * frames) for c in ret])
            cells.append(f"{v.mean():.1f} ({v.min():.1f} .. {v.max():.1f})")
        low = np.mean([min((v for f, v in c if f <= frames / 8), default=np.nan) for c in ret])
        lines.append(
            f"| {LABELS[arm]} ({len(seeds)}) | " + " | ".join(cells) + f" | {low:.1f} | "
            f"{_early_late(runs, 'train/kl_prior', frames)} | "
            f"{_early_late(runs, 'train/explained_variance', frames)} |"
        )
    return lines


def _early_late(runs: list[Path], tag: str, frames: float) -> str:
    """Seed mean of a tag over the first and the last eighth of the budget."""
    s = [series(r, tag) for r in runs]
    early = np.nanmean([window_mean(x, 0, frames / 8) for x in s])
    late = np.nanmean([window_mean(x, frames * 7 / 8, frames) for x in s])
    return f"{early:.3f} / {late:.3f}"


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
    for arm in ARMS:
        entry = {"eval": {}, "curves": {}}
        for path in sorted((args.out / "eval").glob(f"{arm}-s*.json")):
            seed = path.stem.rsplit("-s", 1)[1]
            entry["eval"][seed] = float(json.loads(path.read_text())["mean_return"])
            if ARMS[arm] is not None:
                entry["curves"][seed] = curve(args.out / "runs" / path.stem)
        if entry["eval"]:
            results["arms"][arm] = entry
    return results


def main() -> int:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
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
    for seed in args.seeds:
        bc_name = f"bc-s{seed}"
        bc_weights = args.out / "runs" / bc_name / "checkpoints" / "latest.weights"
        if needs_demos:
            cmd = [PY, "train_bc.py", "--data", str(demos), "--config", str(args.bc_config), "--runs-dir"]
            cmd += [str(args.out / "runs"), "--run-name", bc_name, f"seed={seed}", "device=cpu"]
            cmd += [f"torch_threads={args.threads}", "log.progress=false"]
            run_once(args.out, bc_name, cmd)
        for arm in args.arms:
            name = f"{arm}-s{seed}"
            weights = bc_weights
            if ARMS[arm] is not None:
                weights = args.out / "runs" / name / "checkpoints" / "latest.weights"
                init = [] if arm == "rl_scratch" else ["--init", str(bc_weights)]
                run_once(args.out, name, ppo_cmd(args, name, seed, frames, init + ARMS[arm]))
            evaluate(args, weights, name)
    write_summary(args, collect(args))
    return 0


def mean_curve(curves: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Frames logged by every seed, and the mean, min and max return there."""
    if not curves:
        return (np.array([]),) * 4
    common = sorted(set.intersection(*(set(f for f, _ in pts) for pts in curves.values())))
    values = np.array([[dict(pts)[f] for f in common] for pts in curves.values()])
    return np.array(common), values.mean(0), values.min(0), values.max(0)


def seeds_of(results: dict) -> list[int]:
    return sorted({int(seed) for entry in results["arms"].values() for seed in entry["eval"]})


def write_summary(args, results: dict) -> None:
    expert = results.get("expert", float("nan"))
    lines = [
        f"Settings `{args.settings}` ({json.dumps(results.get('env_kwargs', args.env_kwargs))}); "
        f"RL budget {results.get('rl_frames')} env frames per run; seeds {seeds_of(results)}; eval "
        f"{args.eval_episodes} held-out episodes per checkpoint.",
        "",
        "| arm | eval return, mean | min .. max over seeds | of the demonstrator |",
        "|---|---|---|---|",
        f"| {LABELS['expert']} | {expert:.2f} | | 100% |",
    ]
    for arm in ARMS:
        evals = list(results["arms"].get(arm, {}).get("eval", {}).values())
        if evals:
            r = np.array(evals)
            lines.append(
                f"| {LABELS[arm]} | {r.mean():.2f} | {r.min():.2f} .. {r.max():.2f} | {r.mean() / expert:.0%} |"
            )
    bc, scratch = (mean_curve(results["arms"].get(a, {}).get("curves", {})) for a in ("rl_bc", "rl_scratch"))
    if len(bc[0]) and len(scratch[0]):
        shared = sorted(set(bc[0]) & set(scratch[0]))
        above = [dict(zip(bc[0], bc[1]))[f] > dict(zip(scratch[0], scratch[1]))[f] for f in shared]
        first = next((f for f, m in zip(bc[0], bc[1]) if m > expert), None)
        lines += [
            "",
            f"RL from BC above RL from scratch (seed means) at {sum(above)} of {len(above)} logged budgets; "
            + (
                f"its mean training return first exceeds the demonstrator at {first:,.0f} frames."
                if first
                else "its mean training return does not reach the demonstrator in this budget."
            ),
        ]
    lines += diagnostics(args, results)
    text = "\n".join(lines) + "\n"
    (args.out / "summary.md").write_text(text)
    print(text)
    png = args.docs.parent / "img" / f"handoff_{args.settings}.png"
    plot(results, expert, png, args.settings)
    if args.docs.is_file():
        start, end = f"<!-- handoff:{args.settings}:start -->", f"<!-- handoff:{args.settings}:end -->"
        doc = args.docs.read_text()
        block = f"{start}\n{text}\n![handoff curves, {args.settings}](img/{png.name})\n{end}"
        if start in doc and end in doc:
            doc = doc[: doc.index(start)] + block + doc[doc.index(end) + len(end) :]
            args.docs.write_text(doc)


def plot(results: dict, expert: float, png: Path, settings: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for arm in ARMS:
        frames, mean, lo, hi = mean_curve(results["arms"].get(arm, {}).get("curves", {}))
        if len(frames):
            ax.plot(frames, mean, color=COLORS[arm], label=LABELS[arm])
            ax.fill_between(frames, lo, hi, color=COLORS[arm], alpha=0.15)
    bc = list(results["arms"].get("bc", {}).get("eval", {}).values())
    if bc:
        ax.axhline(np.mean(bc), color=COLORS["bc"], ls=":", label=f"{LABELS['bc']} (eval)")
    ax.axhline(expert, color="k", ls="--", label=LABELS["expert"])
    ax.set_xlabel("env frames")
    ax.set_ylabel("training return (mean of last 20 episodes)")
    ax.set_title(f"BC -> RL handoff, {settings} settings (lines: seed mean; bands: min..max)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)
    plt.close(fig)
    print(f"plot: {png}")


if __name__ == "__main__":
    sys.exit(main())
