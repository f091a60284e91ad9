"""The two PPG phases on whole env rows: advantages, the policy phase (PPO + KL to the prior) and
the auxiliary phase (aux value + true value + behaviour-clone KL), with a guard that skips
non-finite updates.

Why hand-written instead of SB3's PPO.train: see `vpt_rl.algo.losses` (memory-state rows, KL prior,
a second phase); SB3's `explained_variance` is used as is.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import torch
from stable_baselines3.common.utils import explained_variance
from torch import Tensor

from vpt_rl.algo.buffer import AuxBuffer, Segment, minibatch_rows, segment_to, select_rows
from vpt_rl.algo.gae import gae, normalize_advantages
from vpt_rl.algo.losses import aux_phase_loss, policy_phase_loss
from vpt_rl.config import PPGConfig
from vpt_rl.distributed import Dist
from vpt_rl.model.policy import VPTPolicy
from vpt_rl.model.state import state_to

__all__ = [
    "NonFiniteError",
    "NonFiniteGuard",
    "PhaseContext",
    "aux_phase",
    "compute_advantages",
    "explained_variance_or_none",
    "policy_phase",
    "recompute_old_logprobs",
]


class NonFiniteError(RuntimeError):
    """Too many consecutive updates had a non-finite loss or gradient; the run must stop."""


class NonFiniteGuard:
    """Counts skipped updates; raises `NonFiniteError` after ``patience`` in a row (issue 4 item 10)."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.streak = 0
        self.total = 0

    def record(self, ok: bool, where: str) -> None:
        if ok:
            self.streak = 0
            return
        self.streak += 1
        self.total += 1
        if self.streak >= self.patience:
            raise NonFiniteError(
                f"{self.streak} consecutive updates skipped because of a non-finite loss or gradient "
                f"(last in the {where}); stopping. The last good checkpoint is intact; lower ppg.lr, "
                f"check the rewards, or raise ppg.nonfinite_patience."
            )


@dataclass
class PhaseContext:
    """What both phases need besides the data."""

    policy: VPTPolicy
    optimizer: torch.optim.Optimizer
    cfg: PPGConfig
    device: torch.device
    generator: torch.Generator  # minibatch order (CPU), checkpointed
    guard: NonFiniteGuard
    prior: VPTPolicy | None = None  # frozen prior, for log-probs recomputed per minibatch
    dist: Dist = field(default_factory=Dist)  # data-parallel ranks (one process: identity)

    def all_reduce(self):
        """The rank sum for statistics that must be global (None with one process)."""
        return self.dist.all_reduce_sum_ if self.dist.enabled else None


def compute_advantages(seg: Segment, cfg: PPGConfig) -> None:
    """Fill ``seg.adv_bt`` / ``seg.ret_bt`` by GAE (returns are raw-unit value targets; each value
    head normalises them with its own EWMA statistics inside its loss)."""
    out = gae(
        seg.reward_bt,
        seg.vpred_bt,
        seg.terminated_bt,
        seg.truncated_bt,
        seg.final_value_bt,
        seg.next_value_b,
        cfg.gamma,
        cfg.gae_lambda,
    )
    seg.adv_bt, seg.ret_bt = out["advantages"], out["returns"]


def _value_heads(policy: VPTPolicy) -> list[torch.nn.Module]:
    return [h for h in (policy.value_head, policy.aux_value_head) if h is not None]


def _guarded_step(ctx: PhaseContext, loss: Tensor, snapshot: list[Tensor], where: str) -> float:
    """Backward, clip, step; skip (and restore the normaliser statistics the loss already
    updated) when the loss or the gradient norm is not finite. Returns the pre-clip grad norm."""
    ctx.optimizer.zero_grad(set_to_none=True)
    ok = bool(torch.isfinite(loss))
    if ctx.dist.enabled:  # every rank skips, or none: the replicas must stay equal
        ok = ctx.dist.sum_all(0.0 if ok else 1.0)[0] == 0.0
    grad_norm = float("nan")
    if ok:
        loss.backward()
        params = [p for g in ctx.optimizer.param_groups for p in g["params"] if p.grad is not None]
        ctx.dist.average_gradients_(params)  # then the norm, clip and step agree on every rank
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, ctx.cfg.max_grad_norm)) if params else 0.0
        ok = bool(np.isfinite(grad_norm))
    if ok:
        ctx.optimizer.step()
    else:
        ctx.optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            stats = [p for h in _value_heads(ctx.policy) for p in h.normalizer.parameters()]
            for p, saved in zip(stats, snapshot):
                p.copy_(saved)
    ctx.guard.record(ok, where)
    return grad_norm


def _normaliser_snapshot(policy: VPTPolicy) -> list[Tensor]:
    return [p.detach().clone() for h in _value_heads(policy) for p in h.normalizer.parameters()]


def _mean(stats: dict[str, list[float]]) -> dict[str, float]:
    """Mean of each tag over the finite values (a skipped non-finite update is counted by
    `train/skipped_updates`, not averaged in); tags with no finite value are left out."""
    out = {}
    for k, values in stats.items():
        finite = [v for v in values if np.isfinite(v)]
        if finite:
            out[k] = float(np.mean(finite))
    return out


def explained_variance_or_none(vpred: Tensor, returns: Tensor, dist: Dist | None = None) -> float | None:
    """SB3's explained variance 1 - Var(returns - vpred) / Var(returns), or None where it is
    undefined: returns with zero variance (e.g. no reward in the segment), for which SB3 gives
    NaN. The trainer then leaves the tag out and counts it (docs/monitoring.md; issue 10).
    With ``dist`` (several ranks) both variances are those of the global batch."""
    y = returns.flatten().double().numpy()
    if dist is not None and dist.enabled:
        e = y - vpred.flatten().double().numpy()
        n, sy, syy, se, see = dist.sum_all(y.size, y.sum(), (y * y).sum(), e.sum(), (e * e).sum())
        if n == 0:
            return None
        var_y, var_e = syy / n - (sy / n) ** 2, see / n - (se / n) ** 2
        if not var_y > 1e-12 * max(1.0, syy / n):  # zero up to the rounding of the sums
            return None
        return float(1.0 - var_e / var_y)
    if y.size == 0 or not np.var(y) > 0:
        return None
    value = float(explained_variance(vpred.flatten().double().numpy(), y))
    return value if np.isfinite(value) else None


def policy_phase(
    ctx: PhaseContext, seg: Segment, kl_coef: float, ent_coef: float, train_policy: bool = True
) -> dict[str, float]:
    """E_pi epochs of PPO over the segment's rows (PPG paper, Algorithm 1, policy phase).

    Each minibatch is a set of whole env rows run from their stored start state. Advantages are
    normalised once over the whole batch (issue 4). ``kl_coef`` (rho) weighs KL(prior || policy)
    with the prior log-probs the roller stored, or, where it stored none, recomputed per minibatch
    by ``ctx.prior`` from the rows' prior start state; ``train_policy=False`` is the value warm-up.
    Returns the epoch-mean of every `train/*` tag plus `train/explained_variance` (left out when
    the returns have zero variance, where it is undefined).
    """
    cfg, policy = ctx.cfg, ctx.policy
    if seg.adv_bt is None or seg.ret_bt is None:
        raise ValueError("policy_phase: compute_advantages(seg) first")
    adv_all = normalize_advantages(seg.adv_bt, ctx.all_reduce()) if cfg.norm_adv else seg.adv_bt
    data = dataclasses.replace(seg, adv_bt=adv_all)
    detach = cfg.detach_value_input or not train_policy  # warm-up: only the value head learns
    has_prior = seg.prior_logprobs is not None or (ctx.prior is not None and seg.prior_state0 is not None)
    use_prior = has_prior and kl_coef > 0
    stats: dict[str, list[float]] = defaultdict(list)
    for epoch in range(cfg.n_epochs):
        for i, rows in enumerate(minibatch_rows(seg.num_rows, cfg.n_minibatches, ctx.generator)):
            mb = segment_to(select_rows(data, rows), ctx.device)
            snapshot = _normaliser_snapshot(policy)
            out, _ = policy(mb.img_bthwc, mb.first_bt, mb.state0)
            logprob = policy.logprob(out.logprobs, mb.action)
            if epoch == 0 and i == 0:
                # why: before any update the ratio must be 1; acting one frame at a time and
                # training on whole segments round differently (bf16, fused kernels), and this
                # is how far (docs/monitoring.md, train/ratio_dev_first)
                dev = (logprob.detach() - mb.logprob_bt).exp().sub(1.0).abs().max()
                stats["train/ratio_dev_first"].append(float(dev))
            # why detach: the true value head must not shape the shared trunk (PPG: value gradients interfere with policy features; issue 4)
            vpred = policy.value_head(out.latent.detach()) if detach else out.vpred
            value_loss = policy.value_head.loss(vpred, mb.ret_bt, ctx.all_reduce())
            losses = policy_phase_loss(
                logprob_bt=logprob,
                old_logprob_bt=mb.logprob_bt,
                adv_bt=mb.adv_bt,
                value_loss=value_loss,
                entropy_bt=policy.entropy(out.logprobs),
                kl_prior_bt=policy.kl(_prior_logprobs(ctx, mb), out.logprobs) if use_prior else None,
                clip_eps=cfg.clip_eps,
                vf_coef=cfg.vf_coef,
                ent_coef=ent_coef,
                kl_coef=kl_coef,
                train_policy=train_policy,
            )
            grad_norm = _guarded_step(ctx, losses["train/loss"], snapshot, "policy phase")
            for k, v in losses.items():
                stats[k].append(float(v.detach()))
            stats["train/grad_norm"].append(grad_norm)
    out_stats = _mean(stats)
    ev = explained_variance_or_none(seg.vpred_bt, seg.ret_bt, ctx.dist)
    if ev is not None:
        out_stats["train/explained_variance"] = ev
    return out_stats


@torch.no_grad()
def _prior_logprobs(ctx: PhaseContext, mb: Segment) -> dict[str, Tensor]:
    """The prior's distributions on a minibatch (float32): stored by the roller (float32 or bf16),
    or recomputed from the rows' prior start state (`ppg.prior_logprobs: recompute`), which keeps
    no (B, T, 8641) table per segment at all (issue 9 item 3)."""
    if mb.prior_logprobs is not None:
        return {k: v.float() for k, v in mb.prior_logprobs.items()}
    out, _ = ctx.prior(mb.img_bthwc, mb.first_bt, mb.prior_state0)
    return out.logprobs


@torch.no_grad()
def recompute_old_logprobs(policy: VPTPolicy, buffer: AuxBuffer, device: torch.device, chunks: int) -> None:
    """pi_old for the behaviour-clone KL: the current policy's distributions over every buffered
    segment, computed once before the auxiliary epochs (PPG paper, Algorithm 1, line "compute and
    store current policy"). Stored on the CPU."""
    for seg in buffer.segments:
        parts = []
        for rows in torch.arange(seg.num_rows).tensor_split(min(chunks, seg.num_rows)):
            sub = select_rows(seg, rows)
            out, _ = policy(sub.img_bthwc.to(device), sub.first_bt.to(device), state_to(sub.state0, device))
            parts.append({k: v.cpu() for k, v in out.logprobs.items()})
        seg.old_logprobs = {k: torch.cat([p[k] for p in parts], 0) for k in parts[0]}


def aux_phase(ctx: PhaseContext, buffer: AuxBuffer) -> dict[str, float]:
    """E_aux epochs over the buffered segments (PPG paper, Algorithm 1, auxiliary phase): aux value
    loss on the shared trunk + true value loss + beta_clone * KL(pi_old || pi_theta).
    Minibatches are whole rows (across segments) with their stored start states."""
    cfg, policy = ctx.cfg, ctx.policy
    if policy.aux_value_head is None:
        raise ValueError(
            "aux_phase: the policy has no aux_value_head (build VPTPolicy(config, aux_value_head=True))"
        )
    n_rows = buffer.num_rows
    n_mb = min(cfg.aux_n_minibatches or cfg.n_minibatches * len(buffer), n_rows)
    recompute_old_logprobs(policy, buffer, ctx.device, chunks=max(1, n_mb // max(1, len(buffer))))
    stats: dict[str, list[float]] = defaultdict(list)
    for _ in range(cfg.e_aux):
        for rows in minibatch_rows(n_rows, n_mb, ctx.generator):
            mb = segment_to(buffer.rows(rows), ctx.device)
            snapshot = _normaliser_snapshot(policy)
            out, _ = policy(mb.img_bthwc, mb.first_bt, mb.state0)
            vpred = policy.value_head(out.latent.detach()) if cfg.detach_value_input else out.vpred
            losses = aux_phase_loss(
                aux_value_loss=policy.aux_value_head.loss(out.aux_vpred, mb.ret_bt, ctx.all_reduce()),
                value_loss=policy.value_head.loss(vpred, mb.ret_bt, ctx.all_reduce()),
                bc_kl_bt=policy.kl(mb.old_logprobs, out.logprobs),
                beta_clone=cfg.beta_clone,
                aux_vf_coef=cfg.aux_vf_coef,
                aux_true_vf_coef=cfg.aux_true_vf_coef,
            )
            grad_norm = _guarded_step(ctx, losses["aux/loss"], snapshot, "auxiliary phase")
            for k, v in losses.items():
                stats[k].append(float(v.detach()))
            stats["aux/grad_norm"].append(grad_norm)
    for seg in buffer.segments:
        seg.old_logprobs = None
    return _mean(stats)
