"""Rollout loop speed: lockstep vs double buffering, against the env pool alone and the policy
alone (docs/benchmarks.md "Speed: fast paths, rollouts, PPG iteration"). Prints one table of frames/s and the ratios; nothing passes or fails.

    python bench/speed/rollout_speed.py                      # the default run: tiny policy, 8 voxel envs
    python bench/speed/rollout_speed.py --envs 4 --frames 512
    python bench/speed/rollout_speed.py --quick              # toy sizes, a few seconds (run in CI)

- env pool alone: `EnvPool.step` with pre-drawn random policy actions (what a fresh policy sends);
- policy alone: `policy.act` on B = envs frames (T=1), memory carried, no env;
- rollout lockstep / overlapped: `Roller.collect()` (overlap False / True) on the same pool settings.

Goal: the overlapped loop reaches >= 90% of min(env pool alone, policy alone). Each figure is
the median of ``--repeats`` windows, measured in alternation in one process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from vpt_rl.algo.ppg_setup import sampler_seed
from vpt_rl.algo.roller import Roller
from vpt_rl.config import LEARNABLE_VOXEL_KWARGS
from vpt_rl.envs.factory import make_env_fns
from vpt_rl.envs.pool import EnvPool
from vpt_rl.model.policy import VPTPolicy
from vpt_rl.model.vpt_config import VPTConfig

OUT = Path(__file__).resolve().parents[1] / "out" / "rollout_speed.json"
QUICK = {"envs": 2, "frames": 32, "repeats": 1}  # --quick: the code runs, the figures mean nothing


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="tiny")
    p.add_argument("--envs", type=int, default=8)
    p.add_argument("--frames", type=int, default=1024, help="env frames per window")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="trainer torch threads (train_ppo.py default: 1)")
    p.add_argument(
        "--split-cores",
        action="store_true",
        help="trainer on CPU 0, env workers on the other CPUs: separate compute for policy and envs, "
        "as with a GPU policy and CPU envs (Linux)",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="figures as JSON (default: bench/out/rollout_speed*.json)"
    )
    p.add_argument("--quick", action="store_true", help=f"toy sizes ({QUICK}; flags given still win)")
    if p.parse_known_args()[0].quick:
        p.set_defaults(**QUICK)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = VPTConfig.preset(args.preset)
    policy = VPTPolicy(cfg)
    n = args.envs
    steps = max(1, args.frames // n)
    fns = make_env_fns("vpt_rl/VoxelTreechop-v0", n, cfg.img_size, LEARNABLE_VOXEL_KWARGS, None)
    pool = EnvPool(fns, step_timeout=60.0)
    if args.split_cores:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            raise SystemExit("--split-cores needs at least 2 CPUs")
        os.sched_setaffinity(0, {cpus[0]})
        for worker in pool._workers:  # bench only: pin the worker processes
            os.sched_setaffinity(worker.process.pid, set(cpus[1:]))
    rng = np.random.default_rng(0)
    results: dict[str, list[float]] = {k: [] for k in ("env", "policy", "lockstep", "overlapped")}
    try:
        obs, _ = pool.reset(seed=0)
        samplers = [torch.Generator().manual_seed(sampler_seed(0, i)) for i in range(n)]  # as the trainer
        rollers = {
            g: Roller(pool, policy, steps, torch.device("cpu"), samplers, overlap=g == 2) for g in (1, 2)
        }
        h, w = cfg.img_size
        img = torch.randint(0, 256, (n, 1, h, w, 3), dtype=torch.uint8)
        first = torch.zeros(n, 1, dtype=torch.bool)
        state = policy.initial_state(n)

        def env_alone() -> float:
            acts = [
                {"buttons": rng.integers(0, 8641, n), "camera": rng.integers(0, 121, n)} for _ in range(steps)
            ]
            t0 = time.perf_counter()
            for a in acts:
                pool.step(a)
            return n * steps / (time.perf_counter() - t0)

        def policy_alone() -> float:
            nonlocal state
            t0 = time.perf_counter()
            for _ in range(steps):
                _, _, _, state = policy.act(img, first, state)
            return n * steps / (time.perf_counter() - t0)

        def rollout(groups: int) -> float:
            roller = rollers[groups]
            roller.start(pool.reset(seed=0)[0])
            t0 = time.perf_counter()
            roller.collect()
            return n * steps / (time.perf_counter() - t0)

        for _ in range(args.repeats):  # alternate, so drifts of a shared machine hit all alike
            results["env"].append(env_alone())
            results["policy"].append(policy_alone())
            results["lockstep"].append(rollout(1))
            results["overlapped"].append(rollout(2))
    finally:
        pool.close()
    med = {k: statistics.median(v) for k, v in results.items()}
    bound = min(med["env"], med["policy"])
    figures = {
        "preset": args.preset,
        "envs": n,
        "frames_per_window": n * steps,
        "threads": args.threads,
        "split_cores": args.split_cores,
        "fps": {k: round(v, 1) for k, v in med.items()},
        "lockstep_vs_bound": round(med["lockstep"] / bound, 3),
        "overlapped_vs_bound": round(med["overlapped"] / bound, 3),
        "overlapped_vs_lockstep": round(med["overlapped"] / med["lockstep"], 3),
    }
    where = "trainer on CPU 0, envs on the rest" if args.split_cores else "shared cores"
    print(
        f"rollout speed, {args.preset} policy, {n} voxel envs, {args.threads} torch thread(s), {where}, frames/s:"
    )
    print(
        "| env pool alone | policy alone | rollout lockstep | rollout overlapped | overlapped / min(env, policy) |"
    )
    print("|---|---|---|---|---|")
    f = figures["fps"]
    print(
        f"| {f['env']:.0f} | {f['policy']:.0f} | {f['lockstep']:.0f} ({figures['lockstep_vs_bound']:.0%}) "
        f"| {f['overlapped']:.0f} | {figures['overlapped_vs_bound']:.0%} |"
    )
    out = args.out or OUT.with_name(OUT.stem + ("_split" if args.split_cores else "") + ".json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=1))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
