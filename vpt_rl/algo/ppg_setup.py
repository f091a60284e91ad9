"""`build_ppg_trainer`: the file work of a PPG run, done before the trainer exists.

On every data-parallel rank: the policy and prior (fresh, `--init` or `--resume`) are built from
files by rank 0 alone and broadcast to the others, so that every rank starts from the same
parameters; errors on rank 0 reach every rank (nobody waits forever in a collective). On resume
each rank then reads the checkpoint's replicated part and its own part itself (nothing large
crosses the process group: vpt_rl/checkpoint.py). The config is resolved ("auto" fields decided
for a fresh or a fine-tuned policy) and saved resolved; the envs are started; the trainer gets
these objects (`vpt_rl.algo.ppg_trainer.PPGTrainer`).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from typing import Any

import torch
from stable_baselines3.common.utils import set_random_seed

from vpt_rl.algo.policy_init import build_policy, freeze, init_policy, resolve_device
from vpt_rl.algo.ppg_trainer import PPGTrainer, sampler_seed
from vpt_rl.algo.prior_kl import PRIOR_LOGPROBS_DTYPE, prior_storage  # re-exported (memory_plan.py)
from vpt_rl.checkpoint import load_latest, load_rank_state, load_state
from vpt_rl.config import TrainConfig
from vpt_rl.distributed import Dist, on_rank0
from vpt_rl.envs.factory import make_pool
from vpt_rl.errors import VPTRLError
from vpt_rl.model.policy import VPTPolicy
from vpt_rl.model.vpt_config import VPTConfig
from vpt_rl.model.weights import load_weights, save_weights
from vpt_rl.perf import apply_perf
from vpt_rl.run_dir import RunDir

__all__ = [
    "PRIOR_LOGPROBS_DTYPE",
    "RESUME_FIXED",
    "SetupError",
    "Start",
    "build_ppg_trainer",
    "prior_storage",
    "sampler_seed",
    "start_run",
]


# Fields that must not change on --resume: the saved memory/env states depend on them.
RESUME_FIXED = ("seed", "env.id", "env.num_envs", "ppg.segment_len", "ppg.e_aux")


class SetupError(VPTRLError, ValueError):
    """The run cannot start as asked (device, resume mismatch); the message names the field."""


@dataclass
class Start:
    """What every rank starts from. ``resumed`` holds the run's replicated training state
    (counters, optimiser, guard, episode log) and ``rank_state`` this rank's own part (roller, envs,
    aux buffer, generators), both read from the checkpoint by each rank itself; None for a new run."""

    policy: VPTPolicy
    prior: VPTPolicy | None
    messages: list[str] = field(default_factory=list)
    resumed: dict[str, Any] | None = None
    rank_state: dict[str, Any] | None = None


def build_ppg_trainer(
    config: TrainConfig,
    run_dir: str | os.PathLike,
    init_path: str | os.PathLike | None = None,
    model_file: str | os.PathLike | None = None,
    resume: bool = False,
    dist: Dist | None = None,
) -> PPGTrainer:
    """A `PPGTrainer` ready to `train()`: policy and prior from ``init_path`` (134 or 139 keys; the
    prior is their frozen copy) or fresh, the architecture from ``model_file`` where given, or the
    run in ``run_dir`` continued exactly (``resume``: ``config`` is the saved config, possibly with
    overrides such as a larger ``total_frames``). ``dist``: this process's rank (default: one)."""
    dist = dist or Dist()
    device = resolve_device(config.device)
    # Seeding in one place (docs/design.md "Style" 9): SB3's helper seeds python, numpy and torch
    # (the same on every rank, so a fresh policy is the same everywhere before rank 0's is
    # broadcast); each env's action sampler and each rank's minibatch order have their own
    # generators (PPGTrainer), all checkpointed.
    set_random_seed(config.seed)
    run = RunDir(run_dir, is_main=dist.is_main)
    start = start_run(config, run, init_path, model_file, resume, device, dist)
    config = config.resolved(has_prior=start.prior is not None)  # config.yaml holds these values
    messages = [*start.messages, apply_perf((start.policy, start.prior), config.perf, device)]
    start.policy.train()
    env = make_pool(config.env, start.policy.config.img_size, dist.rank, run.name)
    try:
        trainer = PPGTrainer(start.policy, start.prior, env, config, run, dist)
    except BaseException:
        env.close()
        raise
    trainer.messages[:0] = messages
    if start.resumed is not None and start.rank_state is not None:
        trainer.load_state_dict(start.resumed, start.rank_state)
    return trainer


def start_run(
    config: TrainConfig,
    run: RunDir,
    init_path: str | os.PathLike | None,
    model_file: str | os.PathLike | None,
    resume: bool,
    device: torch.device,
    d: Dist,
) -> Start:
    """Build (rank 0) and share (all ranks) the policy and prior; see the module docstring."""
    if resume:
        loaded = on_rank0(d, lambda: _load_resume(config, run, device, d))
    else:
        loaded = on_rank0(d, lambda: _load_new(config, run, init_path, model_file, device))
    head = d.broadcast(None if loaded is None else loaded["head"])
    if loaded is not None:
        policy, prior = loaded["policy"], loaded["prior"]
    else:
        vpt = VPTConfig.from_model_kwargs(*head["vpt_config"])
        policy = build_policy(vpt, aux_value_head=True, device=device)
        prior = freeze(copy.deepcopy(policy)) if head["has_prior"] else None
    d.broadcast_module_(policy)
    if prior is not None:
        d.broadcast_module_(prior)
    start = Start(policy, prior, messages=head["messages"])
    if resume:
        # every rank reads the replicated state and its own part itself; rank 0 chose the step
        step = head["step"]
        start.resumed = load_state(run.ckpt_dir / f"{step}.state.pt")
        start.rank_state = load_rank_state(run.ckpt_dir, step, d.rank)
    return start


def _load_new(
    config: TrainConfig, run: RunDir, init_path: Any, model_file: Any, device: torch.device
) -> dict[str, Any]:
    init = init_policy(config, init_path, model_file, device)
    messages = list(init.notes)
    if init.report is not None:
        path = run.write_load_report(init.report.to_text())
        messages.append(f"loader report written to {path}")
    if init.prior is not None:  # kept with the run so --resume needs no --init
        save_weights(init.prior, run.ckpt_dir / "prior.weights")
    head = {
        "vpt_config": init.policy.config.to_model_kwargs(),
        "has_prior": init.prior is not None,
        "messages": messages,
    }
    return {"head": head, "policy": init.policy, "prior": init.prior}


def _load_resume(config: TrainConfig, run: RunDir, device: torch.device, d: Dist) -> dict[str, Any]:
    state, weights = load_latest(run.ckpt_dir)
    run.check_resume(state["config"], config, RESUME_FIXED, int(state.get("world_size", 1)), d.world_size)
    vpt_config = VPTConfig.from_model_kwargs(*state["vpt_config"])
    policy = build_policy(vpt_config, aux_value_head=True)
    load_weights(policy, weights, mode="rl")
    policy.to(device)
    prior = None
    if state["has_prior"]:
        prior = build_policy(vpt_config, aux_value_head=True)
        load_weights(prior, run.ckpt_dir / "prior.weights", mode="rl")
        prior = freeze(prior.to(device))
    head = {
        "vpt_config": state["vpt_config"],
        "has_prior": prior is not None,
        "step": state["step"],
        "messages": [
            f"resuming {run.path} at {state['frames']} frames (iteration {state['iteration']}) "
            f"from {weights.name}"
        ],
    }
    return {"head": head, "policy": policy, "prior": prior}
