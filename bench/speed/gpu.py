"""GPU benchmark of the full-size policies: training forward+backward and acting, plain vs fast
paths, with model FLOPs utilisation (docs/benchmarks.md "Speed: fast paths, rollouts, PPG iteration"). Under 5 minutes on one CUDA GPU.

    python bench/speed/gpu.py                          # CUDA: 1x and 2x, fp32 and bf16, plain and fused
    python bench/speed/gpu.py --device cpu --quick     # the same code on CPU at toy sizes (run in CI)

For each preset: a training step (forward + backward of -logp + 0.5 v^2, AdamW step) at
B x T = ``--batch`` x ``--t``, and acting at B = ``--act-batch`` (one frame per env, memory carried).
FLOPs per frame come from `vpt_rl.model.flops` (CNN + attention + linear layers; checked against
torch's FLOP counter); MFU = achieved FLOP/s / the device's peak (``--peak-tflops``, or a table of
common GPUs for the dtype used; unknown GPU and no flag: MFU is not printed). Peak memory: CUDA's
max_memory_allocated per case (CPU: not measured, printed as n/a).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from vpt_rl.model.flops import forward_flops
from vpt_rl.model.policy import VPTPolicy
from vpt_rl.model.vpt_config import VPTConfig

OUT = Path(__file__).resolve().parents[1] / "out" / "gpu.json"
# dense peak TFLOP/s (no sparsity) by name fragment: (fp32 or tf32 as torch uses it, bf16)
PEAK_TFLOPS = {
    "H100": (494.0, 989.0),  # SXM, TF32 tensor cores
    "A100": (156.0, 312.0),  # TF32 tensor cores
    "L40S": (183.0, 362.0),
    "A10G": (31.2, 125.0),
    "L4": (60.0, 121.0),
    "RTX 4090": (82.6, 165.2),
    "V100": (15.7, 125.0),
    "T4": (8.1, 65.0),
}


def peak_for(device: torch.device, dtype_name: str, override: float | None) -> float | None:
    """Peak TFLOP/s for the device and dtype, or None when unknown."""
    if override is not None:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, (fp32, bf16) in PEAK_TFLOPS.items():
        if key in name:
            return bf16 if dtype_name == "bf16" else fp32
    return None


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, warmup: int, reps: int) -> float:
    """Median seconds of ``fn`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_case(preset: str, variant: dict, args: argparse.Namespace, device: torch.device) -> dict:
    torch.manual_seed(0)
    cfg = VPTConfig.preset(preset)
    policy = VPTPolicy(cfg).to(device)
    policy.set_fast_paths(fused_attention=variant["fused"], autocast_dtype=variant["dtype"])
    opt = torch.optim.AdamW(policy.param_groups(0.0), lr=1e-5)
    h, w = cfg.img_size
    b, t = args.batch, args.t
    img = torch.randint(0, 256, (b, t, h, w, 3), dtype=torch.uint8, device=device)
    first = torch.zeros(b, t, dtype=torch.bool, device=device)
    first[:, 0] = True
    action = {
        "buttons": torch.randint(0, 8641, (b, t), device=device),
        "camera": torch.randint(0, 121, (b, t), device=device),
    }

    def train_step() -> None:
        out, _ = policy(img, first, policy.initial_state(b, device))
        loss = -policy.logprob(out.logprobs, action).mean() + 0.5 * (out.vpred**2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    train_s = timed(train_step, device, args.warmup, args.reps)
    train_mem = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None

    a = args.act_batch
    img1 = torch.randint(0, 256, (a, 1, h, w, 3), dtype=torch.uint8, device=device)
    first1 = torch.zeros(a, 1, dtype=torch.bool, device=device)
    state = [policy.initial_state(a, device)]

    def act() -> None:
        _, _, _, state[0] = policy.act(img1, first1, state[0])

    act_s = timed(act, device, args.warmup, args.reps * 4)
    flops = forward_flops(cfg, t)
    train_fps = b * t / train_s
    achieved = train_fps * flops.train_step() / 1e12
    peak = peak_for(device, variant["name"].split()[0], args.peak_tflops)
    act_fps = a / act_s
    act_tflops = act_fps * forward_flops(cfg, 1).total / 1e12
    # (the model and optimiser go out of scope with this function)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {
        "preset": preset,
        "variant": variant["name"],
        "train_frames_per_s": train_fps,
        "train_tflops": achieved,
        "train_mfu": None if peak is None else achieved / peak,
        "train_peak_mem_gib": train_mem,
        "act_frames_per_s": act_fps,
        "act_mfu": None if peak is None else act_tflops / peak,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--quick", action="store_true", help="toy sizes (tiny preset, small batches): a CI check")
    p.add_argument("--presets", nargs="+", default=None, help="default: 1x 2x (quick: tiny)")
    p.add_argument("--batch", type=int, default=None, help="training rows (default 16; quick 2)")
    p.add_argument("--t", type=int, default=None, help="training frames per row (default 64; quick 8)")
    p.add_argument("--act-batch", type=int, default=None, help="envs acting at once (default 64; quick 4)")
    p.add_argument("--reps", type=int, default=None)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--peak-tflops", type=float, default=None, help="device peak for MFU (default: table)")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(
            "bench/speed/gpu.py: no CUDA device here; use --device cpu --quick for the CPU check"
        )
    quick = args.quick
    args.presets = args.presets or (["tiny"] if quick else ["1x", "2x"])
    args.batch = args.batch or (2 if quick else 16)
    args.t = args.t or (8 if quick else 64)
    args.act_batch = args.act_batch or (4 if quick else 64)
    args.reps = args.reps or (2 if quick else 5)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # what fp32 training on tensor cores uses
        torch.backends.cudnn.allow_tf32 = True
    variants = [
        {"name": "fp32 plain", "fused": False, "dtype": None},
        {"name": "fp32 fused", "fused": True, "dtype": None},
        {"name": "bf16 fused", "fused": True, "dtype": torch.bfloat16},
    ]
    t_start = time.perf_counter()
    rows = [bench_case(preset, v, args, device) for preset in args.presets for v in variants]
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({torch.get_num_threads()} threads)"
    )
    print(
        f"{name}; training B x T = {args.batch} x {args.t}, acting B = {args.act_batch}, torch {torch.__version__}"
    )
    print(
        "| preset | variant | train frames/s | train TFLOP/s | train MFU | peak GiB | act frames/s | act MFU |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        mfu = "n/a" if r["train_mfu"] is None else f"{100 * r['train_mfu']:.1f}%"
        amfu = "n/a" if r["act_mfu"] is None else f"{100 * r['act_mfu']:.1f}%"
        mem = "n/a" if r["train_peak_mem_gib"] is None else f"{r['train_peak_mem_gib']:.2f}"
        print(
            f"| {r['preset']} | {r['variant']} | {r['train_frames_per_s']:.1f} | {r['train_tflops']:.3f} | {mfu} "
            f"| {mem} | {r['act_frames_per_s']:.1f} | {amfu} |"
        )
    print(f"total {time.perf_counter() - t_start:.0f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"device": name, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
