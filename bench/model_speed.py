"""1x policy speed on CPU, as a ratio to the official code's figures (SPEC.md section 10).

Prints the median ms/step of acting (B=1, T=1, carried memory, no_grad) and of a training step
(B=4, T=16, forward + backward of -logp + 0.5 v^2, train mode, fresh state), and each as a ratio
to `timing_1x_cpu.json` (official code, torch 2.13 CPU, 2 threads). Weights are a fresh init: speed
does not depend on the values. Usage: python bench/model_speed.py [--preset 1x] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from vpt_rl import VPTConfig, VPTPolicy

OFFICIAL = Path(__file__).resolve().parents[1] / "tests" / "data" / "vpt_reference" / "timing_1x_cpu.json"


def _median_ms(fn, warmup: int, n: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="1x")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--act-steps", type=int, default=20)
    parser.add_argument("--train-steps", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = VPTConfig.preset(args.preset)
    policy = VPTPolicy(cfg, aux_value_head=True)
    h, w = cfg.img_size
    gen = torch.Generator().manual_seed(0)

    img = torch.randint(0, 256, (1, 1, h, w, 3), dtype=torch.uint8, generator=gen)
    first = torch.zeros(1, 1, dtype=torch.bool)
    state = [policy.initial_state(1)]

    def act() -> None:
        _, _, _, state[0] = policy.act(img, first, state[0])

    act_ms = _median_ms(act, warmup=5, n=args.act_steps)

    b, t = 4, 16
    img_train = torch.randint(0, 256, (b, t, h, w, 3), dtype=torch.uint8, generator=gen)
    first_train = torch.zeros(b, t, dtype=torch.bool)
    first_train[:, 0] = True
    action = {
        "buttons": torch.randint(0, 8641, (b, t), generator=gen),
        "camera": torch.randint(0, 121, (b, t), generator=gen),
    }
    policy.train()

    def train_step() -> None:
        out, _ = policy(img_train, first_train, policy.initial_state(b))
        loss = -policy.logprob(out.logprobs, action).mean() + 0.5 * (out.vpred**2).mean()
        policy.zero_grad(set_to_none=True)
        loss.backward()

    train_ms = _median_ms(train_step, warmup=1, n=args.train_steps)
    figures = {
        "preset": args.preset,
        "threads": args.threads,
        "act_B1_T1_median_ms": round(act_ms, 2),
        "act_frames_per_s": round(1000 / act_ms, 2),
        "train_B4_T16_median_ms": round(train_ms, 1),
        "train_frames_per_s": round(b * t * 1000 / train_ms, 2),
    }
    if args.preset == "1x" and OFFICIAL.is_file():
        ref = json.loads(OFFICIAL.read_text())
        figures["act_speedup_vs_official"] = round(ref["infer_B1_T1"]["median_ms"] / act_ms, 3)
        figures["train_speedup_vs_official"] = round(ref["train_B4_T16_fwd_bwd"]["median_ms"] / train_ms, 3)
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
