"""``vpt-rl record --env vpt_rl/VoxelTreechop-v0 --episodes N --out DIR``: expert demonstrations.

Runs the voxel world's scripted expert (with ``--noise`` p, the expert starts a short random
deviation with probability p per step, then recovers) and writes each episode in the VPT contractor
format: ``DIR/NAME.mp4`` (640x360, 20 fps) + ``DIR/NAME.jsonl``, ready for ``train_bc.py --data DIR``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from vpt_rl.commands import CommandError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``record`` with the ``vpt-rl`` subparsers."""
    parser = subparsers.add_parser(
        "record",
        help="record scripted-expert demonstrations (mp4 + jsonl) for train_bc.py",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    parser.add_argument("--env", default="vpt_rl/VoxelTreechop-v0", help="env id with a scripted expert")
    parser.add_argument("--episodes", type=int, required=True, help="number of episodes to record")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    parser.add_argument("--max-steps", type=int, default=None, help="end an episode after this many steps")
    parser.add_argument(
        "--noise",
        type=float,
        default=None,
        help="probability per step of a short random deviation (default 0.1; 0 with --driver)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="episode i is reset with seed + i (names follow it)"
    )
    parser.add_argument("--env-kwargs", default="{}", help="JSON dict of keyword arguments for the env")
    parser.add_argument(
        "--sighted",
        action="store_true",
        help="the expert acts only on logs its camera shows (scans otherwise): demonstrations BC can imitate",
    )
    parser.add_argument(
        "--dart",
        action="store_true",
        help="label noise steps with the expert's own action, not the executed random one (DART)",
    )
    parser.add_argument(
        "--driver",
        type=Path,
        default=None,
        help="DAgger: a weights file whose policy drives; the expert (with --noise, the noisy one) labels every frame",
    )
    parser.add_argument(
        "--beta", type=float, default=0.0, help="with --driver: probability per step of executing the expert"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Record and print one line per episode and a summary."""
    from vpt_rl.data.recorder import record_episodes

    if args.env != "vpt_rl/VoxelTreechop-v0":
        raise CommandError(f"--env {args.env}: only vpt_rl/VoxelTreechop-v0 has a scripted expert")
    if args.episodes < 1:
        raise CommandError(f"--episodes must be >= 1, got {args.episodes}")
    if args.noise is None:
        args.noise = 0.0 if args.driver else 0.1
    if not 0.0 <= args.noise <= 1.0:
        raise CommandError(f"--noise must be in [0, 1], got {args.noise}")
    if not 0.0 <= args.beta <= 1.0:
        raise CommandError(f"--beta must be in [0, 1], got {args.beta}")
    if args.driver is not None and not args.driver.is_file():
        raise CommandError(f"--driver {args.driver}: no such weights file")
    driver = None
    if args.driver is not None:
        from vpt_rl.data.dagger import PolicyDriver

        driver = PolicyDriver(args.driver, seed=args.seed)
    try:
        env_kwargs = json.loads(args.env_kwargs)
    except json.JSONDecodeError as e:
        raise CommandError(f"--env-kwargs is not valid JSON: {e}") from None

    def progress(ep: Any) -> None:
        items = ", ".join(f"{k} {v}" for k, v in ep.items.items()) or "none"
        print(
            f"{args.out / ep.name}: {ep.steps} steps, return {ep.total_reward:.3g}, items {items}", flush=True
        )

    try:
        episodes = record_episodes(
            args.env,
            args.episodes,
            args.out,
            args.max_steps,
            args.noise,
            args.seed,
            env_kwargs,
            progress,
            sighted=args.sighted,
            dart=args.dart,
            driver=driver,
            beta=args.beta,
        )
    except FileExistsError as e:
        raise CommandError(str(e)) from None
    frames = sum(ep.steps for ep in episodes)
    mean_return = sum(ep.total_reward for ep in episodes) / len(episodes)
    print(f"recorded {len(episodes)} episodes, {frames} frames, mean return {mean_return:.3g} -> {args.out}")
    return 0
