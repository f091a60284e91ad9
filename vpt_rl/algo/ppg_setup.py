"""Starting a PPG run on every data-parallel rank: the policy and prior (fresh, `--init` or
`--resume`), built from files by rank 0 alone and broadcast to the others, so that only rank 0
needs to read the weights and the run folder (on one node of several) and every rank starts from
the same parameters. Errors on rank 0 reach every rank (nobody waits forever in a collective).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vpt_rl.algo.policy_init import build_policy, freeze
from vpt_rl.algo.prior_kl import PRIOR_LOGPROBS_DTYPE, prior_storage  # re-exported (memory_plan.py)
from vpt_rl.checkpoint import load_latest, load_rank_state, load_state
from vpt_rl.config import TrainConfig
from vpt_rl.distributed import Dist, on_rank0
from vpt_rl.errors import VPTRLError
from vpt_rl.model.config import VPTConfig
from vpt_rl.model.policy import VPTPolicy
from vpt_rl.model.weights import load_weights, save_weights

__all__ = [
    "PRIOR_LOGPROBS_DTYPE",
    "RESUME_FIXED",
    "SetupError",
    "Start",
    "prior_storage",
    "resolve_device",
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


def resolve_device(name: str) -> torch.device:
    """ "auto" -> cuda when available, else cpu; "cuda" without CUDA is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SetupError(f"device={name}: CUDA is not available here (use device=cpu or auto)")
    return torch.device(name)


def sampler_seed(seed: int, env: int) -> int:
    """The action sampler seed of global env ``env`` (one stream per env; see `Roller`)."""
    return int(np.random.SeedSequence([seed, env]).generate_state(1)[0])


def start_run(
    config: TrainConfig,
    run_dir: Path,
    init_path: str | os.PathLike | None,
    model_file: str | os.PathLike | None,
    resume: bool,
    device: torch.device,
    d: Dist,
) -> Start:
    """Build (rank 0) and share (all ranks) the policy and prior; see the module docstring."""
    ckpt_dir = run_dir / "checkpoints"
    if resume:
        loaded = on_rank0(d, lambda: _load_resume(config, ckpt_dir, device, d))
    else:
        loaded = on_rank0(d, lambda: _load_new(config, run_dir, init_path, model_file, device))
    head = d.broadcast(None if loaded is None else loaded["head"])
    if d.is_main:
        policy, prior = loaded["policy"], loaded["prior"]
    else:
        policy = VPTPolicy(VPTConfig.from_model_kwargs(*head["vpt_config"]), aux_value_head=True).to(device)
        prior = freeze(copy.deepcopy(policy)) if head["has_prior"] else None
    d.broadcast_module_(policy)
    if prior is not None:
        d.broadcast_module_(prior)
    start = Start(policy, prior, messages=head["messages"])
    if resume:
        # every rank reads the replicated state and its own part itself: nothing large crosses
        # the process group (vpt_rl/checkpoint.py says why); rank 0 chose the step
        step = head["step"]
        start.resumed = load_state(ckpt_dir / f"{step}.state.pt")
        start.resumed["step"] = step
        start.rank_state = load_rank_state(ckpt_dir, step, d.rank)
    return start


def _load_new(
    config: TrainConfig, run_dir: Path, init_path, model_file, device: torch.device
) -> dict[str, Any]:
    init = build_policy(config, init_path, model_file, device)
    messages = list(init.notes)
    run_dir.mkdir(parents=True, exist_ok=True)
    if init.report is not None:
        (run_dir / "load_report.txt").write_text(init.report.to_text())
        messages.append(f"loader report written to {run_dir / 'load_report.txt'}")
    if init.prior is not None:  # kept with the run so --resume needs no --init
        save_weights(init.prior, run_dir / "checkpoints" / "prior.weights")
    head = {
        "vpt_config": init.policy.config.to_model_kwargs(),
        "has_prior": init.prior is not None,
        "messages": messages,
    }
    return {"head": head, "policy": init.policy, "prior": init.prior}


def _load_resume(config: TrainConfig, ckpt_dir: Path, device: torch.device, d: Dist) -> dict[str, Any]:
    state, weights = load_latest(ckpt_dir)
    for name in RESUME_FIXED:
        old, new = _get_plain(state["config"], name), _get(config, name)
        if old != new:
            raise SetupError(f"--resume: {name} was {old!r} in the run and cannot change (got {new!r})")
    world = int(state.get("world_size", 1))
    if world != d.world_size:
        raise SetupError(
            f"--resume: the run was trained by {world} process(es) and this launch has {d.world_size}; "
            f"resume with the same number (torchrun --nproc_per_node/--nnodes), each rank continues its own envs"
        )
    vpt_config = VPTConfig.from_model_kwargs(*state["vpt_config"])
    policy = VPTPolicy(vpt_config, aux_value_head=True)
    load_weights(policy, weights, mode="rl")
    policy.to(device)
    prior = None
    if state["has_prior"]:
        prior = VPTPolicy(vpt_config, aux_value_head=True)
        load_weights(prior, ckpt_dir / "prior.weights", mode="rl")
        prior = freeze(prior.to(device))
    head = {
        "vpt_config": state["vpt_config"],
        "has_prior": prior is not None,
        "step": state["step"],
        "messages": [
            f"resuming {ckpt_dir.parent} at {state['frames']} frames (iteration {state['iteration']}) "
            f"from {weights.name}"
        ],
    }
    return {"head": head, "policy": policy, "prior": prior}


def _get(cfg: TrainConfig, dotted: str):
    obj = cfg
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _get_plain(d: dict, dotted: str):
    for part in dotted.split("."):
        d = d[part]
    return d
