"""Voxel world speed on one core, and EnvPool throughput as a ratio to N x one env (docs/environments.md).

    python bench/speed/env_speed.py                 # about 2 minutes
    python bench/speed/env_speed.py --seconds 2     # quicker, noisier
    python bench/speed/env_speed.py --quick         # toy run, a few seconds (run in CI)

Raw env: ``VoxelTreechopEnv.step`` alone in this single-threaded process (numpy/BLAS/OpenCV on
one thread; ``--pin CPU`` also pins it to one CPU, which hurts when other jobs share that CPU), actions drawn uniformly over the policy's 8641 x 121 classes (what a fresh policy does:
the camera wanders, often to the sky or the ground) and, second column, the scripted expert's
actions (mostly looking at trunks). Sizes: the default pov 360x640 (rendered at 72x128 and
upscaled), 128x128 and 32x32 rendered directly. Figures are the median over several windows
(wall clock); the CPU-time figure excludes time stolen by other processes on a shared machine.

Pool: ``vpt_rl.EnvPool`` over ``make_env_fns`` at 128x128 (what training runs), N = 1, 2 workers,
env steps per second as a ratio to N x the same wrapped env stepped in this process. Needs more
free cores than N to approach 1. Prints figures only; nothing passes or fails.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy: one BLAS thread, here and in pool workers

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

import vpt_rl  # noqa: E402, F401 -- registers the voxel world
from vpt_rl.envs.actions import policy_to_env  # noqa: E402
from vpt_rl.envs.voxel import VoxelTreechopEnv, scripted_policy  # noqa: E402

VOXEL_ID = "vpt_rl/VoxelTreechop-v0"
OUT = Path(__file__).resolve().parents[1] / "out" / "env_speed.json"
QUICK = {"seconds": 0.25, "pool_sizes": [2]}  # --quick: the code runs, the figures mean nothing
RAW_CASES = {
    "pov 360x640 (render 72x128, upscaled)": dict(pov_size=(360, 640)),
    "pov 128x128 (rendered directly)": dict(pov_size=(128, 128)),
    "pov 32x32 (rendered directly)": dict(pov_size=(32, 32)),
}


def _rates(step, seconds: float, windows: int = 5) -> tuple[float, float]:
    """Median (wall, CPU-time) steps/s over `windows` windows; `step()` returns the (wall, cpu)
    seconds of the part being measured."""
    wall, cpu = [], []
    for _ in range(windows):
        n, spent, spent_cpu, t0 = 0, 0.0, 0.0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / windows:
            dt, dc = step()
            n, spent, spent_cpu = n + 1, spent + dt, spent_cpu + dc
        wall.append(n / spent)
        cpu.append(n / max(spent_cpu, 1e-9))
    return statistics.median(wall), statistics.median(cpu)


def _timed(fn, *args):
    """(result, wall seconds, CPU seconds) of one call."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, time.perf_counter() - t0, time.process_time() - c0


def _raw_env(kwargs: dict, seconds: float, expert: bool) -> tuple[float, float]:
    """Steps/s of ``env.step`` alone (the expert decides outside the timed call)."""
    env = VoxelTreechopEnv(**kwargs)
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    draws = zip(rng.integers(0, 8641, 997), rng.integers(0, 121, 997))
    random_actions = [policy_to_env(int(b), int(c)) for b, c in draws]
    policy = scripted_policy(env) if expert else None
    state = {"i": 0, "obs": obs}

    def step() -> tuple[float, float]:
        i = state["i"] = state["i"] + 1
        action = policy(state["obs"]) if policy else random_actions[i % len(random_actions)]
        (obs, _, terminated, truncated, _), dt, dc = _timed(env.step, action)
        state["obs"] = env.reset()[0] if terminated or truncated else obs
        return dt, dc

    for _ in range(20):
        step()
    return _rates(step, seconds)


def _pool(num_envs: int, seconds: float) -> tuple[float, float] | str:
    """(pool env steps/s, in-process wrapped env steps/s) at 128x128, or why it could not run."""
    try:
        from vpt_rl import EnvPool
        from vpt_rl.envs.factory import make_env, make_env_fns
    except ImportError as exc:  # the pool is another helper's module; say so instead of failing
        return f"EnvPool not available ({exc}); pool figures skipped"
    rng = np.random.default_rng(1)
    single = make_env(VOXEL_ID, (128, 128))
    single.reset(seed=0)
    actions = [
        {"buttons": int(b), "camera": int(c)}
        for b, c in zip(rng.integers(0, 8641, 500), rng.integers(0, 121, 500))
    ]
    count = {"i": 0}

    def one() -> tuple[float, float]:
        (_, _, terminated, truncated, _), dt, dc = _timed(single.step, actions[count["i"] % 500])
        count["i"] += 1
        if terminated or truncated:
            single.reset()
        return dt, dc

    single_rate, _ = _rates(one, seconds)
    single.close()
    pool = EnvPool(make_env_fns(VOXEL_ID, num_envs, (128, 128)), step_timeout=60.0)
    try:
        pool.reset(seed=0)
        batched = [
            {"buttons": rng.integers(0, 8641, num_envs), "camera": rng.integers(0, 121, num_envs)}
            for _ in range(200)
        ]

        def many() -> tuple[float, float]:
            _, dt, dc = _timed(pool.step, batched[count["i"] % 200])
            count["i"] += 1
            return dt, dc

        for _ in range(10):
            many()
        calls, _ = _rates(many, seconds)
    finally:
        pool.close()
    return calls * num_envs, single_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="measuring time per figure")
    parser.add_argument("--pool-sizes", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--pin", type=int, default=None, help="pin the raw-env figures to this CPU")
    parser.add_argument("--out", type=Path, default=OUT, help="figures as JSON")
    parser.add_argument("--quick", action="store_true", help=f"toy run ({QUICK}; flags given still win)")
    if parser.parse_known_args()[0].quick:
        parser.set_defaults(**QUICK)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    results: dict[str, dict] = {"raw": {}, "pool": {}}
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    if args.pin is not None and allowed:
        os.sched_setaffinity(0, {args.pin})
    where = f"pinned to cpu {args.pin}" if args.pin is not None else "one thread"
    print(f"voxel world, {where}, load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cpus")
    print(f"{'case':42s} {'random actions':>22s} {'expert actions':>22s}")
    print(f"{'':42s} {'steps/s (cpu-time)':>22s} {'steps/s (cpu-time)':>22s}")
    for name, kwargs in RAW_CASES.items():
        rnd = _raw_env(kwargs, args.seconds, expert=False)
        exp = _raw_env(kwargs, args.seconds, expert=True)
        results["raw"][name] = {"random": rnd, "expert": exp}
        print(f"{name:42s} {rnd[0]:10.0f} ({rnd[1]:6.0f})    {exp[0]:10.0f} ({exp[1]:6.0f})")
    if args.pin is not None and allowed:
        os.sched_setaffinity(0, allowed)  # the pool's workers may use every core
    print(
        f"\nEnvPool, 128x128 frames through make_env_fns ({len(allowed) if allowed else '?'} cores available)"
    )
    for n in args.pool_sizes:
        got = _pool(n, args.seconds)
        if isinstance(got, str):
            print(got)
            break
        pool_rate, single_rate = got
        ratio = pool_rate / (n * single_rate)
        results["pool"][str(n)] = {
            "pool_env_steps_per_s": pool_rate,
            "single_steps_per_s": single_rate,
            "ratio": ratio,
        }
        print(
            f"N={n}: {pool_rate:7.0f} env steps/s = {ratio:.2f} x (N x {single_rate:.0f} steps/s of one env)"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"\nfigures written to {args.out}")


if __name__ == "__main__":
    main()
