"""``vpt-rl eval --init FILE --env ID --episodes N [--video-dir D]``: run a policy, report returns.

Loads FILE (any checkpoint: BC, RL with aux head, released) into a policy without the aux head,
plays N episodes with memory carried across steps (the first step of each episode has
``first=True``), and prints each episode's return, length and items, then the mean return and the
mean items collected. With ``--video-dir`` each episode is written as an mp4 at the env's frame size.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np

from vpt_rl.commands import CommandError


class PovTap(gymnasium.Wrapper):
    """Keeps the latest full-size ``pov`` (for videos) before PolicySpaceWrapper resizes it."""

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        self.pov = np.asarray(obs["pov"])
        return obs, info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.pov = np.asarray(obs["pov"])
        return obs, reward, terminated, truncated, info


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``eval`` with the ``vpt-rl`` subparsers."""
    parser = subparsers.add_parser(
        "eval",
        help="play episodes with a checkpoint; mean return, items collected, videos",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    parser.add_argument("--init", required=True, type=Path, help="weights file to evaluate")
    parser.add_argument(
        "--model-file", type=Path, default=None, help=".model file (default: detected from shapes)"
    )
    parser.add_argument("--env", default="vpt_rl/VoxelTreechop-v0", help="gymnasium / MineRL env id")
    parser.add_argument("--episodes", type=int, default=5, help="episodes to play (default 5)")
    parser.add_argument("--max-steps", type=int, default=None, help="end an episode after this many steps")
    parser.add_argument("--seed", type=int, default=0, help="env i is reset with seed + i; sampling seed")
    parser.add_argument("--deterministic", action="store_true", help="argmax actions instead of sampling")
    parser.add_argument(
        "--video-dir", type=Path, default=None, help="write each episode as DIR/episode_NNN.mp4"
    )
    parser.add_argument("--env-kwargs", default="{}", help="JSON dict of keyword arguments for the env")
    parser.add_argument("--reward-table", default=None, help='item reward table ("treechop", "vpt_diamond")')
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    return parser


def load_policy(init: Path, model_file: Path | None, device: str) -> tuple[Any, str]:
    """A policy without the aux head loaded from ``init`` in BC mode (aux keys ignored, reported)."""
    import torch

    from vpt_rl.algo.bc_setup import model_config_for
    from vpt_rl.algo.policy_init import build_policy
    from vpt_rl.model.weights import load_weights

    model_cfg, how = model_config_for(str(init), str(model_file) if model_file else None, "tiny")
    policy = build_policy(model_cfg, aux_value_head=False, device=torch.device(device), seed=0)
    report = load_weights(policy, str(init), mode="bc")
    return policy.eval(), f"{how}\n{report}"


def run(args: argparse.Namespace) -> int:
    """Play the episodes and print the summary."""
    import torch

    from vpt_rl.data.video import VideoWriter
    from vpt_rl.envs.factory import VOXEL_ID, make_env
    from vpt_rl.envs.wrappers import PolicySpaceWrapper

    if args.episodes < 1:
        raise CommandError(f"--episodes must be >= 1, got {args.episodes}")
    try:
        env_kwargs = json.loads(args.env_kwargs)
    except json.JSONDecodeError as e:
        raise CommandError(f"--env-kwargs is not valid JSON: {e}") from None
    if args.threads is not None:
        torch.set_num_threads(args.threads)  # the CLI owns the process
    policy, text = load_policy(args.init, args.model_file, args.device)
    print(text)
    img_size = policy.config.img_size
    if args.env == VOXEL_ID and args.video_dir is not None:
        env_kwargs.setdefault("pov_size", (360, 640))  # videos at the contractor size, not policy size
    built = make_env(args.env, img_size, env_kwargs, args.reward_table)
    assert isinstance(built, PolicySpaceWrapper)  # make_env's env in the policy's spaces
    tap = PovTap(built.env)
    env = PolicySpaceWrapper(tap, img_size)
    generator = torch.Generator(device=args.device).manual_seed(args.seed)
    results: list[dict[str, Any]] = []
    try:
        for i in range(args.episodes):
            obs, info = env.reset(seed=args.seed + i)
            state = policy.initial_state(1)
            video = None
            if args.video_dir is not None:
                video = VideoWriter(args.video_dir / f"episode_{i:03d}.mp4", size_hw=tap.pov.shape[:2])
            ep_return, steps, first, done = 0.0, 0, True, False
            items: dict[str, int] = {}
            while not done and (args.max_steps is None or steps < args.max_steps):
                if video is not None:
                    video.write(tap.pov)
                img = torch.from_numpy(obs["img"]).to(args.device)[None, None]
                first_bt = torch.tensor([[first]], device=args.device)
                action, _, _, state = policy.act(img, first_bt, state, args.deterministic, generator)
                obs, reward, terminated, truncated, info = env.step(
                    {"buttons": int(action["buttons"][0, 0]), "camera": int(action["camera"][0, 0])}
                )
                ep_return, steps, first = ep_return + float(reward), steps + 1, False
                done = terminated or truncated
                items = dict(info.get("inventory", items))
            if video is not None:
                video.close()
            results.append({"episode": i, "return": ep_return, "steps": steps, "items": items})
            where = f", video {video.path}" if video is not None else ""
            print(f"episode {i}: return {ep_return:.3g}, {steps} steps, items {items or '{}'}{where}")
    finally:
        env.close()
    returns = np.array([r["return"] for r in results])
    names = sorted({k for r in results for k in r["items"]})
    mean_items = {k: float(np.mean([r["items"].get(k, 0) for r in results])) for k in names}
    summary = {
        "init": str(args.init),
        "env": args.env,
        "episodes": len(results),
        "mean_return": float(returns.mean()),
        "std_return": float(returns.std()),
        "mean_items": mean_items,
        "results": results,
    }
    shown = ", ".join(f"{k} {v:.3g}" for k, v in mean_items.items()) or "none"
    print(f"mean return {returns.mean():.3g} +- {returns.std():.3g} over {len(results)} episodes")
    print(f"items collected (mean per episode): {shown}")
    if args.json is not None:
        from vpt_rl.atomic import atomic_write_text

        atomic_write_text(args.json, json.dumps(summary, indent=2))
    return 0
