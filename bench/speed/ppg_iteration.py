"""Where a PPG iteration's learning time goes: the policy phase (each way of getting the prior's
log-probs) and the auxiliary phase, against the bare forward+backward passes they contain
(docs/benchmarks.md "Speed: fast paths, rollouts, PPG iteration"). Prints a table; nothing passes or fails.

    python bench/speed/ppg_iteration.py                   # tiny, 8 envs x 64 frames, the default PPG settings
    python bench/speed/ppg_iteration.py --preset 1x --envs 4 --segment-len 16 --repeats 2
    python bench/speed/ppg_iteration.py --quick           # toy sizes, a few seconds (run in CI)

The segment is collected once on synthetic frames (a fake env: learning time does not depend on
what the frames show), then each phase is timed ``--repeats`` times in alternation.
"bare" = the same number of policy forward+backward passes on the same minibatch shapes with a
trivial loss: what the phase would cost with no PPO bookkeeping, no prior and no value statistics.
Memory: the segment's bytes per env row for each prior mode (docs/scaling.md).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from vpt_rl.algo.buffer import AuxBuffer, minibatch_rows, segment_to, select_rows
from vpt_rl.algo.optim import make_optimizer
from vpt_rl.algo.phases import NonFiniteGuard, PhaseContext, aux_phase, compute_advantages, policy_phase
from vpt_rl.algo.ppg_setup import sampler_seed
from vpt_rl.algo.prior_kl import PRIOR_LOGPROBS_DTYPE, PriorKL
from vpt_rl.algo.roller import Roller
from vpt_rl.config import PPGConfig
from vpt_rl.model.policy import VPTPolicy
from vpt_rl.model.vpt_config import VPTConfig
from vpt_rl.perf import reuse_freed_memory

OUT = Path(__file__).resolve().parents[1] / "out" / "ppg_iteration.json"
QUICK = {"envs": 2, "segment_len": 8, "repeats": 1}  # --quick: the code runs, the figures mean nothing


class FrameEnv:
    """N envs of random frames, no episode ends: only the shapes matter here."""

    def __init__(self, n: int, hw: tuple[int, int]) -> None:
        self.num_envs, self.hw, self.rng = n, hw, np.random.default_rng(0)

    def _obs(self) -> dict:
        return {"img": self.rng.integers(0, 256, (self.num_envs, *self.hw, 3), dtype=np.uint8)}

    def reset(self, seed=None):
        return self._obs(), {}

    def step(self, actions):
        z = np.zeros(self.num_envs, dtype=bool)
        return self._obs(), np.ones(self.num_envs), z, z, {}


def segment_bytes(seg) -> int:
    """Bytes of every tensor a segment holds (images, actions, memory states, prior table)."""
    total = 0
    for value in vars(seg).values():
        if isinstance(value, torch.Tensor):
            total += value.numel() * value.element_size()
        elif isinstance(value, dict):
            total += sum(v.numel() * v.element_size() for v in value.values())
        elif isinstance(value, list):
            total += sum(t.numel() * t.element_size() for block in value for t in block)
    return total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="tiny")
    p.add_argument("--envs", type=int, default=8)
    p.add_argument("--segment-len", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=OUT, help="figures as JSON")
    p.add_argument("--quick", action="store_true", help=f"toy sizes ({QUICK}; flags given still win)")
    if p.parse_known_args()[0].quick:
        p.set_defaults(**QUICK)
    args = p.parse_args()
    reuse_freed_memory()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = VPTConfig.preset(args.preset)
    policy = VPTPolicy(cfg)
    prior = copy.deepcopy(policy).eval().requires_grad_(False)
    ppg = PPGConfig(n_minibatches=min(PPGConfig().n_minibatches, args.envs)).resolve(has_prior=True)
    device = torch.device("cpu")
    segs, sizes, prior_kls = {}, {}, {}
    for mode in PRIOR_LOGPROBS_DTYPE:
        env = FrameEnv(args.envs, cfg.img_size)
        prior_kls[mode] = PriorKL(prior, mode, chunks=ppg.n_minibatches)  # as the trainer builds it
        samplers = [torch.Generator().manual_seed(sampler_seed(0, i)) for i in range(args.envs)]
        roller = Roller(env, policy, args.segment_len, device, samplers, prior_kl=prior_kls[mode])
        roller.start(env.reset()[0])
        segs[mode] = roller.collect()
        compute_advantages(segs[mode], ppg)
        sizes[mode] = segment_bytes(segs[mode]) / args.envs
    opt = make_optimizer(policy, ppg)
    ctx = PhaseContext(policy, opt, ppg, device, torch.Generator().manual_seed(0), NonFiniteGuard(5))

    def bare() -> None:
        seg = segs["fp32"]
        for _ in range(ppg.n_epochs):
            for rows in minibatch_rows(seg.num_rows, ppg.n_minibatches, ctx.generator):
                mb = segment_to(select_rows(seg, rows), device)
                out, _ = policy(mb.img_bthwc, mb.first_bt, mb.state0)
                loss = -policy.logprob(out.logprobs, mb.action).mean() + (out.vpred**2).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

    times: dict[str, list[float]] = {k: [] for k in ("bare", *PRIOR_LOGPROBS_DTYPE, "aux")}
    buffer = AuxBuffer()
    for _ in range(args.repeats):
        for key in times:
            t0 = time.perf_counter()
            if key == "bare":
                bare()
            elif key == "aux":
                buffer.clear()
                buffer.add(segs["fp32"])
                aux_phase(ctx, buffer)
            else:
                ctx.prior_kl = prior_kls[key]  # the storage mode of this segment
                policy_phase(ctx, segs[key], kl_coef=0.2, ent_coef=0.0)
            times[key].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    frames = args.envs * args.segment_len
    figures = {
        "preset": args.preset,
        "envs": args.envs,
        "segment_len": args.segment_len,
        "n_epochs": ppg.n_epochs,
        "n_minibatches": ppg.n_minibatches,
        "seconds": {k: round(v, 3) for k, v in med.items()},
        "policy_phase_vs_bare": {m: round(med[m] / med["bare"], 3) for m in PRIOR_LOGPROBS_DTYPE},
        "segment_mb_per_env_row": {m: round(sizes[m] / 2**20, 3) for m in PRIOR_LOGPROBS_DTYPE},
    }
    print(
        f"PPG iteration, {args.preset}, {args.envs} envs x {args.segment_len} frames ({frames} frames), "
        f"{ppg.n_epochs} epochs x {ppg.n_minibatches} minibatches, prior present, {args.threads} thread(s):"
    )
    print("| | seconds | vs bare fwd+bwd | segment MB per env row |")
    print("|---|---|---|---|")
    print(
        f"| bare forward+backward ({ppg.n_epochs * ppg.n_minibatches} minibatches) | {med['bare']:.3f} | 1.00 | |"
    )
    for m in PRIOR_LOGPROBS_DTYPE:
        print(
            f"| policy phase, prior_logprobs={m} | {med[m]:.3f} | {med[m] / med['bare']:.2f} | {sizes[m] / 2**20:.2f} |"
        )
    print(f"| auxiliary phase (1 segment, {ppg.e_aux} epoch) | {med['aux']:.3f} | | |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=1))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
