"""Optimiser and schedules: AdamW over `VPTPolicy.param_groups`, the learning-rate schedule (SB3's
schedule helpers) and the KL coefficient rho: every schedule is a function of env frames (over all
ranks), so 1 rank x 2E envs and 2 ranks x E envs follow the same curve
(docs/implementation_details.md item 15)."""

from __future__ import annotations

import torch
from stable_baselines3.common.utils import ConstantSchedule, LinearSchedule

from vpt_rl.config import PPGConfig
from vpt_rl.model.policy import VPTPolicy

__all__ = ["make_optimizer", "lr_at", "set_lr", "kl_coef_at", "in_value_warmup"]


def make_optimizer(policy: VPTPolicy, cfg: PPGConfig) -> torch.optim.AdamW:
    """AdamW (decoupled weight decay; VPT paper uses 0.04) with no decay on norms, biases and the
    relative-position table, and the EWMA statistics left out (docs/design.md "Decisions").
    One optimiser serves both PPG phases (as CleanRL's ppg_procgen does). The policy heads'
    parameters get ``lr * ppg.pi_head_lr_scale`` (each group carries its ``lr_scale``)."""
    if unresolved := cfg.unresolved("lr", "pi_head_lr_scale"):
        raise ValueError(f"make_optimizer needs a resolved PPGConfig (PPGConfig.resolve); auto: {unresolved}")
    lr, head_scale = float(cfg.lr), float(cfg.pi_head_lr_scale)
    head = {id(p) for p in policy.pi_head.parameters()}
    groups = []
    for group in policy.param_groups(cfg.weight_decay):
        for is_head in (False, True):
            params = [p for p in group["params"] if (id(p) in head) is is_head]
            if params:
                scale = head_scale if is_head else 1.0
                groups.append({**group, "params": params, "lr": lr * scale, "lr_scale": scale})
    return torch.optim.AdamW(groups, lr=lr, eps=cfg.adam_eps)


def lr_at(lr: float, schedule: str, frames: int, total_frames: int) -> float:
    """Learning rate for an update starting at ``frames``: ``schedule`` "constant" or "linear" (to
    0 at ``total_frames``), both trainers' one schedule helper. A function of progress =
    frames / total_frames (SB3's ``progress_remaining`` convention), so a resumed run gets exactly
    the same values, and a larger total_frames on resume stretches it."""
    progress_remaining = max(0.0, 1.0 - frames / total_frames)
    fn = ConstantSchedule(lr) if schedule == "constant" else LinearSchedule(lr, 0.0, 1.0)
    return float(fn(progress_remaining))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's learning rate (times the group's ``lr_scale``)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def kl_coef_at(cfg: PPGConfig, frames: int, has_prior: bool) -> float:
    """rho at env frame ``frames`` (over all ranks): kl_coef * max(kl_decay ** (frames /
    kl_decay_frames), kl_decay_floor) (VPT paper: 0.2, x0.9995 per iteration, no floor, here
    converted to frames at the batch ``kl_decay_frames``; the package default decays faster to a
    floor, see PPGConfig.kl_decay and kl_decay_floor); 0 without a prior. A pure function of the
    frame counter, so resume is exact and the curve does not depend on how many ranks or envs
    collect the frames."""
    if not has_prior:
        return 0.0
    return cfg.kl_coef * max(cfg.kl_decay ** (frames / cfg.kl_decay_frames), cfg.kl_decay_floor)


def in_value_warmup(cfg: PPGConfig, frames: int) -> bool:
    """Whether the iteration starting at ``frames`` only trains the value heads (ppg.value_warmup_frames)."""
    return frames < cfg.value_warmup_frames
