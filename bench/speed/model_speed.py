"""Policy speed on CPU: the plain path against each fast path, for acting and for a training
forward+backward, side by side in one run (docs/benchmarks.md "Speed: fast paths, rollouts, PPG iteration"). Prints tables; nothing fails.

    python bench/speed/model_speed.py                          # tiny and 1x, 2 threads (~10 minutes)
    python bench/speed/model_speed.py --presets tiny --rounds 3
    python bench/speed/model_speed.py --quick                  # tiny, 1 round, few reps (run in CI)

Variants (each cumulative on the one before, so the table reads as a ladder):
  plain            the reference path: plain attention, glibc's default allocator, fp32
  +fused           fused scaled_dot_product_attention (the default)
  +reuse_memory    glibc keeps freed memory (the CLIs' default; vpt_rl/perf.py says why)
  +bf16            bf16 autocast of the trunk (perf.precision=bf16; not the CPU default)
  +compile         torch.compile of the trunk (--compile; compile time excluded)

Every variant runs in its own child process (the allocator setting is process-wide), variants
alternate over ``--rounds`` rounds, and each figure is the median over rounds of the child's
median. Acting: B=1, T=1, memory carried, no grad. Training: forward + backward of
-logp + 0.5 v^2 at B x T (1x: 4 x 16, the official timing's shape; tiny: 8 x 64). Peak memory is
the child's peak resident set (weights, activations and all).

The official VPT code cannot run here (no network): its figures (docs/vpt_format.md §10) were measured beside
this project's plain path on a 2-core machine (act 26.8 ms vs ours 26.2 ms; train 3.86 s vs
4.04 s), so "vs official" = this run's plain time x (official / plain there) / variant time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "bench" / "out" / "model_speed.json"
VARIANTS = ["plain", "+fused", "+reuse_memory", "+bf16", "+compile"]
SHAPES = {"1x": (4, 16), "tiny": (8, 64)}
# docs/vpt_format.md §10: official / ours-plain on the same machine, same weights and inputs
OFFICIAL_OVER_PLAIN = {"act": 26.8 / 26.2, "train": 3.86 / 4.04}
# --quick: the code runs, the figures mean nothing
QUICK = {"presets": ["tiny"], "rounds": 1, "act_reps": 2, "train_reps": 1}


def child(args: argparse.Namespace) -> None:
    """Measure one variant in this process; print one JSON line."""
    ladder = VARIANTS[: VARIANTS.index(args.child) + 1]
    if "+reuse_memory" in ladder:
        from vpt_rl.perf import reuse_freed_memory

        reuse_freed_memory()
    import torch

    from vpt_rl.model.policy import VPTPolicy
    from vpt_rl.model.vpt_config import VPTConfig

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = VPTConfig.preset(args.preset)
    policy = VPTPolicy(cfg)
    policy.set_fast_paths(
        fused_attention="+fused" in ladder, autocast_dtype=torch.bfloat16 if "+bf16" in ladder else None
    )
    if "+compile" in ladder:
        policy.net.compile()
    h, w = cfg.img_size
    gen = torch.Generator().manual_seed(0)
    if args.what == "act":
        img = torch.randint(0, 256, (1, 1, h, w, 3), dtype=torch.uint8, generator=gen)
        first = torch.zeros(1, 1, dtype=torch.bool)
        state = [policy.initial_state(1)]

        def step() -> None:
            _, _, _, state[0] = policy.act(img, first, state[0])

        warmup, reps = 5, args.act_reps
    else:
        b, t = SHAPES[args.preset]
        img = torch.randint(0, 256, (b, t, h, w, 3), dtype=torch.uint8, generator=gen)
        first = torch.zeros(b, t, dtype=torch.bool)
        first[:, 0] = True
        action = {
            "buttons": torch.randint(0, 8641, (b, t), generator=gen),
            "camera": torch.randint(0, 121, (b, t), generator=gen),
        }
        policy.train()

        def step() -> None:
            out, _ = policy(img, first, policy.initial_state(b))
            loss = -policy.logprob(out.logprobs, action).mean() + 0.5 * (out.vpred**2).mean()
            policy.zero_grad(set_to_none=True)
            loss.backward()

        warmup, reps = (2 if "+compile" in ladder else 1), args.train_reps
    for _ in range(warmup):
        step()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"ms": 1000 * statistics.median(times), "peak_mb": peak_mb}))


def run_child(args: argparse.Namespace, preset: str, what: str, variant: str) -> dict:
    cmd = [
        sys.executable, __file__, "--child", variant, "--preset", preset, "--what", what,
        "--threads", str(args.threads), "--act-reps", str(args.act_reps), "--train-reps", str(args.train_reps),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["tiny", "1x"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--act-reps", type=int, default=20)
    p.add_argument("--train-reps", type=int, default=3)
    p.add_argument("--compile", action="store_true", help="also measure +compile (slow to compile)")
    p.add_argument("--out", type=Path, default=OUT, help="figures as JSON")
    p.add_argument("--quick", action="store_true", help=f"toy run ({QUICK}; flags given still win)")
    p.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    p.add_argument("--preset", help=argparse.SUPPRESS)
    p.add_argument("--what", choices=["act", "train"], help=argparse.SUPPRESS)
    if p.parse_known_args()[0].quick:
        p.set_defaults(**QUICK)
    args = p.parse_args()
    if args.child:
        child(args)
        return
    variants = VARIANTS if args.compile else VARIANTS[:-1]
    results: dict = {}
    for preset in args.presets:
        for what in ("act", "train"):
            runs: dict[str, list[dict]] = {v: [] for v in variants}
            for r in range(args.rounds):
                for v in variants:
                    runs[v].append(run_child(args, preset, what, v))
                    print(
                        f"  {preset} {what} round {r + 1}: {v} {runs[v][-1]['ms']:.1f} ms",
                        file=sys.stderr,
                        flush=True,
                    )
            results.setdefault(preset, {})[what] = {
                v: {"ms": statistics.median(x["ms"] for x in rs), "peak_mb": max(x["peak_mb"] for x in rs)}
                for v, rs in runs.items()
            }
    print(
        f"\nCPU: {_cpu_name()}, {os.cpu_count()} cores, torch threads {args.threads}, rounds {args.rounds}\n"
    )
    for preset, whats in results.items():
        b, t = SHAPES[preset]
        for what, row in whats.items():
            plain = row["plain"]["ms"]
            frames = 1 if what == "act" else b * t
            shape = "B=1, T=1" if what == "act" else f"B={b}, T={t}, forward+backward"
            print(f"{preset} {what} ({shape})")
            print("| variant | ms | frames/s | vs plain | vs official (est.) | peak RSS MB |")
            print("|---|---|---|---|---|---|")
            for v, x in row.items():
                official = (plain * OFFICIAL_OVER_PLAIN[what] / x["ms"]) if preset == "1x" else float("nan")
                off = f"{official:.2f}x" if preset == "1x" else "n/a"
                print(
                    f"| {v} | {x['ms']:.1f} | {1000 * frames / x['ms']:.1f} | {plain / x['ms']:.2f}x | {off} | {x['peak_mb']:.0f} |"
                )
            print()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"threads": args.threads, "cpu": _cpu_name(), "results": results}, indent=1)
    )


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    main()
