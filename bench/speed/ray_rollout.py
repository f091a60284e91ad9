"""Env stepping speed of the local EnvPool and the Ray backend on this machine, side by side:
frames/s, the Ray/local ratio and the transport cost per frame. Prints one table; nothing passes or
fails (docs/benchmarks.md, "Env workers on Ray").

    python bench/speed/ray_rollout.py                       # 8 voxel envs, envs_per_actor 1, 2, 4, 8
    python bench/speed/ray_rollout.py --envs 4 --per-actor 1 4
    python bench/speed/ray_rollout.py --quick               # toy sizes, seconds (run in CI)

What is measured: ``pool.step`` with pre-drawn random policy actions (what a fresh policy sends) on
the voxel world at the policy's 128x128, frames resized in the workers; no policy, so the figure is
the env side of a rollout alone, where the backends differ. Rounds alternate between the local pool
and each Ray setting in one process (drifts of a shared machine hit all alike); each figure is the
median over ``--repeats`` rounds. Transport cost per frame = 1/ray_fps - 1/local_fps.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

from vpt_rl.config import LEARNABLE_VOXEL_KWARGS
from vpt_rl.config.ppg import RayEnvConfig
from vpt_rl.envs.factory import make_env_fns
from vpt_rl.envs.pool import EnvPool

OUT = Path(__file__).resolve().parents[1] / "out" / "ray_rollout.json"
QUICK = {"envs": 2, "frames": 32, "repeats": 1, "per_actor": [1, 2]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--envs", type=int, default=8)
    p.add_argument("--frames", type=int, default=1024, help="env frames per round and setting")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--per-actor", type=int, nargs="+", default=[1, 2, 4, 8], help="envs_per_actor settings")
    p.add_argument("--size", type=int, default=128, help="policy frame size")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--quick", action="store_true", help=f"toy sizes ({QUICK}; flags given still win)")
    if p.parse_known_args()[0].quick:
        p.set_defaults(**QUICK)
    args = p.parse_args()
    import ray

    from vpt_rl.envs.ray_pool import RayEnvPool

    n, cores = args.envs, os.cpu_count() or 1
    steps = max(1, args.frames // n)
    fns = make_env_fns("vpt_rl/VoxelTreechop-v0", n, (args.size, args.size), LEARNABLE_VOXEL_KWARGS, None)
    settings = [k for k in args.per_actor if k <= n]
    # logical CPUs for every setting's pool at once (all stay up, to alternate rounds); the
    # processes share the machine's real cores as the local workers do
    ray.init(
        address="local", num_cpus=cores * len(settings), include_dashboard=False, logging_level="WARNING"
    )
    pools: dict[str, object] = {}
    try:
        pools["local"] = EnvPool(fns, step_timeout=60.0)
        for k in settings:
            cfg = RayEnvConfig(num_cpus=cores / n, envs_per_actor=k)
            pools[f"ray x{k}"] = RayEnvPool(fns, cfg, step_timeout=60.0, reset_timeout=180.0)
        rng = np.random.default_rng(0)
        fps: dict[str, list[float]] = {name: [] for name in pools}
        for pool in pools.values():
            pool.reset(seed=0)  # type: ignore[attr-defined]
        for _ in range(args.repeats):
            for name, pool in pools.items():
                acts = [
                    {"buttons": rng.integers(0, 8641, n), "camera": rng.integers(0, 121, n)}
                    for _ in range(steps)
                ]
                t0 = time.perf_counter()
                for a in acts:
                    pool.step(a)  # type: ignore[attr-defined]
                fps[name].append(n * steps / (time.perf_counter() - t0))
    finally:
        for pool in pools.values():
            pool.close()  # type: ignore[attr-defined]
        ray.shutdown()
    med = {name: statistics.median(v) for name, v in fps.items()}
    local = med["local"]
    rows = [
        {
            "backend": name,
            "fps": round(v, 1),
            "vs_local": round(v / local, 3),
            "transport_ms_per_frame": None if name == "local" else round(1000 * (1 / v - 1 / local), 3),
        }
        for name, v in med.items()
    ]
    figures = {"envs": n, "cores": cores, "frames_per_round": n * steps, "size": args.size, "rows": rows}
    print(
        f"env stepping, {n} voxel envs at {args.size}x{args.size}, {cores} cores, frames/s (median of {args.repeats}):"
    )
    print("| backend | frames/s | vs local | transport ms/frame |")
    print("|---|---|---|---|")
    for r in rows:
        cost = "" if r["transport_ms_per_frame"] is None else f"{r['transport_ms_per_frame']:+.3f}"
        print(f"| {r['backend']} | {r['fps']:.0f} | {r['vs_local']:.2f} | {cost} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=1))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
