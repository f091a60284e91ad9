"""Learning benchmark: a fresh tiny policy (no prior) on the voxel world vs the scripted expert.

    python bench/experiments/learning.py                      # configs/treechop_tiny.yaml, 30-minute budget
    python bench/experiments/learning.py --minutes 5 env.num_envs=2 --run-name quick
    python bench/experiments/learning.py --quick      # configs/smoke.yaml, 64 frames (run in CI)

Measures the scripted expert's mean return over episodes of the training length (same env
kwargs), evaluates the fresh policy (built exactly as the trainer builds it), trains with
train_ppo.py's trainer for at most ``--minutes`` of wall-clock time (env start-up included), then
evaluates the trained policy on the same seeds. Prints start and end returns as fractions of the
expert's, writes the training curve (PNG, default docs/img/learning_treechop_tiny.png) and the
figures (JSON, default bench/out/learning.json). Not a test: it prints figures, nothing passes or
fails.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# --quick: the smoke config (64 frames, 12-step episodes), outputs beside the other bench outputs
# so the docs' curve is not overwritten; the code runs, the figures mean nothing
QUICK = {
    "config": str(ROOT / "configs" / "smoke.yaml"),
    "expert_episodes": 1,
    "eval_episodes": 2,
    "runs_dir": str(ROOT / "bench" / "out" / "runs"),
    "png": str(ROOT / "bench" / "out" / "learning_quick.png"),
    "json": str(ROOT / "bench" / "out" / "learning_quick.json"),
}


def evaluate(policy, env_id: str, env_kwargs: dict, episodes: int, seed: int, batch: int = 8) -> list[float]:
    """Returns of ``policy`` (stochastic, as in training) over ``episodes`` episodes, run in
    lockstep batches of ``batch`` in-process envs built like the training envs (same wrappers)."""
    import numpy as np
    import torch

    from vpt_rl.envs.factory import make_env

    returns: list[float] = []
    gen = torch.Generator().manual_seed(seed)
    for start in range(0, episodes, batch):
        envs = [
            make_env(env_id, policy.config.img_size, env_kwargs) for _ in range(min(batch, episodes - start))
        ]
        obs = [env.reset(seed=seed + start + i)[0] for i, env in enumerate(envs)]
        state = policy.initial_state(len(envs))
        first = torch.ones(len(envs), 1, dtype=torch.bool)
        total = np.zeros(len(envs))
        done = np.zeros(len(envs), dtype=bool)
        while not done.all():
            img = torch.from_numpy(np.stack([o["img"] for o in obs]))[:, None]
            action, _, _, state = policy.act(img, first, state, generator=gen)
            first = torch.zeros_like(first)
            for i, env in enumerate(envs):
                if done[i]:
                    continue
                a = {"buttons": int(action["buttons"][i, 0]), "camera": int(action["camera"][i, 0])}
                obs[i], reward, terminated, truncated, _ = env.step(a)
                total[i] += reward
                done[i] = terminated or truncated
        returns += total.tolist()
        for env in envs:
            env.close()
    return returns


def read_curve(run_dir: Path) -> list[dict[str, float]]:
    """Rows of progress*.csv (all invocations, in frame order) that have a mean return."""
    rows = []
    for path in sorted(run_dir.glob("progress*.csv")):
        with open(path) as f:
            for row in csv.DictReader(f):
                if row.get("rollout/ep_return_mean"):
                    rows.append({k: float(v) for k, v in row.items() if v not in ("", None)})
    return sorted(rows, key=lambda r: r["time/frames"])


def plot(curve: list[dict], expert: float, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [r["time/elapsed"] / 60 for r in curve]
    returns = [r["rollout/ep_return_mean"] for r in curve]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(minutes, returns, label="PPG, fresh tiny policy (mean of last 20 episodes)")
    ax.axhline(expert, color="k", ls="--", label=f"scripted expert ({expert:.2f})")
    ax.axhline(0.25 * expert, color="r", ls=":", label="25% of expert")
    ax.set_xlabel("wall-clock minutes (2-core machine)")
    ax.set_ylabel("episode return (logs)")
    if curve:
        title += f" ({int(curve[-1]['time/frames']):,} frames)"
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(ROOT / "configs" / "treechop_tiny.yaml"))
    p.add_argument("--minutes", type=float, default=30.0, help="wall-clock training budget")
    p.add_argument("--expert-episodes", type=int, default=8)
    p.add_argument(
        "--eval-episodes", type=int, default=16, help="episodes to evaluate the fresh and trained policies"
    )
    p.add_argument("--run-name", default=None)
    p.add_argument("--runs-dir", default=str(ROOT / "runs"))
    p.add_argument("--png", default=str(ROOT / "docs" / "img" / "learning_treechop_tiny.png"))
    p.add_argument("--json", default=str(ROOT / "bench" / "out" / "learning.json"))
    p.add_argument("--quick", action="store_true", help="toy run: configs/smoke.yaml; flags given still win")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    if p.parse_known_args(argv)[0].quick:
        p.set_defaults(**QUICK)
    args = p.parse_args(argv)

    import torch

    from vpt_rl.algo.ppg_setup import build_ppg_trainer
    from vpt_rl.config import load_config
    from vpt_rl.model.vpt_config import VPTConfig

    name = args.run_name or f"learning-{time.strftime('%Y%m%d-%H%M%S')}"
    config = load_config(
        [args.config], [*args.overrides, f"time_limit={args.minutes * 60}", f"run_name={name}"]
    )
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    img_size = VPTConfig.preset(config.model.preset).img_size
    from vpt_rl.envs.voxel import expert_returns

    expert = expert_returns(
        config.env.kwargs, args.expert_episodes, seed=10_000, pov_size=img_size, env_id=config.env.id
    )
    expert_mean = sum(expert) / len(expert)
    print(f"scripted expert: mean return {expert_mean:.3f} over {len(expert)} episodes {expert}", flush=True)

    # the fresh policy exactly as the trainer builds it (same seeding, same first draws)
    from stable_baselines3.common.utils import set_random_seed

    from vpt_rl.model.policy import VPTPolicy
    from vpt_rl.model.weights import load_weights

    set_random_seed(config.seed)
    fresh = VPTPolicy(VPTConfig.preset(config.model.preset))
    eval_seed = 20_000
    start_eval = evaluate(fresh, config.env.id, config.env.kwargs, args.eval_episodes, eval_seed)
    print(
        f"fresh policy: mean return {sum(start_eval) / len(start_eval):.3f} over {len(start_eval)} episodes",
        flush=True,
    )

    run_dir = Path(args.runs_dir) / name
    build_ppg_trainer(config, run_dir).train()
    trained = VPTPolicy(VPTConfig.preset(config.model.preset))
    load_weights(trained, run_dir / "checkpoints" / "latest.weights", mode="rl")
    end_eval = evaluate(trained, config.env.id, config.env.kwargs, args.eval_episodes, eval_seed)
    print(
        f"trained policy: mean return {sum(end_eval) / len(end_eval):.3f} over {len(end_eval)} episodes",
        flush=True,
    )
    curve = read_curve(run_dir)
    if not curve:
        print("no episode finished during training: no curve", file=sys.stderr)
        return 1
    start, end = curve[0], curve[-1]
    best = max(curve, key=lambda r: r["rollout/ep_return_mean"])
    figures = {
        "config": str(Path(args.config).relative_to(ROOT))
        if Path(args.config).is_relative_to(ROOT)
        else args.config,
        "overrides": args.overrides,
        "minutes_budget": args.minutes,
        "expert_mean_return": expert_mean,
        "expert_returns": expert,
        "start_return": sum(start_eval) / len(start_eval),
        "end_return": sum(end_eval) / len(end_eval),
        "start_returns": start_eval,
        "end_returns": end_eval,
        "curve_start_return": start["rollout/ep_return_mean"],
        "curve_end_return": end["rollout/ep_return_mean"],
        "curve_best_return": best["rollout/ep_return_mean"],
        "frames": int(end["time/frames"]),
        "minutes": end["time/elapsed"] / 60,
        "fps": end["time/frames"] / max(end["time/elapsed"], 1e-9),
        "first_minute_at_25pct": next(
            (r["time/elapsed"] / 60 for r in curve if r["rollout/ep_return_mean"] >= 0.25 * expert_mean), None
        ),
        "run_dir": str(run_dir),
    }
    figures["end_fraction_of_expert"] = figures["end_return"] / expert_mean if expert_mean else float("nan")
    print(
        f"start return {figures['start_return']:.3f}, end return {figures['end_return']:.3f} "
        f"({100 * figures['end_fraction_of_expert']:.0f}% of the expert's {expert_mean:.3f}; evaluation over "
        f"{args.eval_episodes} episodes); training curve {figures['curve_start_return']:.3f} -> "
        f"{figures['curve_end_return']:.3f} (best {figures['curve_best_return']:.3f}); {figures['frames']:,} frames in "
        f"{figures['minutes']:.1f} min ({figures['fps']:.0f} fps); the curve first reached 25% of the expert at "
        f"minute {figures['first_minute_at_25pct']}"
    )
    plot(curve, expert_mean, Path(args.png), f"treechop, tiny preset, {args.minutes:g}-minute budget")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    print(f"wrote {args.png} and {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
