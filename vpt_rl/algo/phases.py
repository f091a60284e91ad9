"""The two PPG phases on whole env rows: advantages, the policy phase (PPO + KL to the prior) and
the auxiliary phase (aux value + true value + behaviour-clone KL), with a guard that skips
non-finite updates.

Why hand-written instead of SB3's PPO.train: see `vpt_rl.algo.losses` (memory-state rows, KL prior,
a second phase); the explained variance is SB3's formula, with the variances of the global batch.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from vpt_rl.algo.buffer import AuxBuffer, Segment, minibatch_rows, segment_to, select_rows
from vpt_rl.algo.gae import RunningAdvStd, gae, normalize_advantages
from vpt_rl.algo.losses import aux_phase_loss, policy_phase_loss
from vpt_rl.algo.prior_kl import PriorKL
from vpt_rl.config import PPGConfig
from vpt_rl.distributed import Dist, global_moments, pooled_mean_var
from vpt_rl.model.policy import VPTPolicy
from vpt_rl.model.state import state_to
from vpt_rl.model.value_heads import ScaledValueHead

__all__ = [
    "NonFiniteError",
    "NonFiniteGuard",
    "PhaseContext",
    "aux_phase",
    "compute_advantages",
    "explained_variance_or_none",
    "policy_phase",
    "pooled_explained_variance",
    "prior_kl_bt",
    "recompute_old_logprobs",
]


class NonFiniteError(RuntimeError):
    """Too many consecutive updates had a non-finite loss or gradient; the run must stop."""


class NonFiniteGuard:
    """Counts skipped updates; raises `NonFiniteError` after ``patience`` in a row
    (docs/implementation_details.md item 25)."""

    def __init__(self, patience: int, section: str = "ppg") -> None:
        self.patience = patience
        self.section = section  # the config section whose lr / patience the message names
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
                f"(last in the {where}); stopping. The last good checkpoint is intact; lower {self.section}.lr, "
                f"check the data, or raise {self.section}.nonfinite_patience."
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
    prior_kl: PriorKL | None = None  # the KL term's frozen prior (None: no prior, no KL term)
    dist: Dist = field(default_factory=Dist)  # data-parallel ranks (one process: no collective)
    adv_std: RunningAdvStd | None = None
    """The running advantage std (``ppg.adv_std: running``); None = a fresh one. The trainer passes
    the one its checkpoint holds."""

    def __post_init__(self) -> None:
        if self.adv_std is None:
            self.adv_std = RunningAdvStd(self.cfg.adv_std_frames)

    def moments(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean of x and of x^2 over the global batch, for the value normalisers' EWMA updates
        (docs/implementation_details.md item 34); on one rank the batch's own, bit for bit."""
        return global_moments(self.dist, x)


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


def _value_heads(policy: VPTPolicy) -> list[ScaledValueHead]:
    return [h for h in (policy.value_head, policy.aux_value_head) if h is not None]


def _guarded_step(ctx: PhaseContext, loss: Tensor, snapshot: list[Tensor], where: str) -> float:
    """Backward, clip, step; skip (and restore the normaliser statistics the loss already
    updated) when the loss or the gradient norm is not finite. Returns the pre-clip grad norm."""
    ctx.optimizer.zero_grad(set_to_none=True)
    # every rank skips, or none: the replicas must stay equal (one rank: its own vote)
    ok = ctx.dist.sum_all(0.0 if bool(torch.isfinite(loss)) else 1.0)[0] == 0.0
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
    NaN. The trainer then leaves the tag out and counts it (docs/monitoring.md).

    ``dist`` (default `Dist()`, one process): both variances are those of the global batch, each
    rank's (numpy's, as SB3 computes them) pooled by `pooled_mean_var`, which on one rank returns
    them bit for bit, so one process gets SB3's number (docs/implementation_details.md item 34)."""
    y = returns.detach().flatten().double().cpu().numpy()
    e = y - vpred.detach().flatten().double().cpu().numpy()
    local = np.array([[y.mean(), np.var(y)], [e.mean(), np.var(e)]]) if y.size else np.zeros((2, 2))
    n, _, var = pooled_mean_var(
        dist or Dist(), y.size, torch.from_numpy(local[:, 0]), torch.from_numpy(local[:, 1])
    )
    assert var is not None
    var_y, var_e = float(var[0]), float(var[1])
    if n.item() == 0 or not var_y > 0:
        return None
    value = 1.0 - var_e / var_y
    return value if np.isfinite(value) else None


def prior_kl_bt(cfg: PPGConfig, prior_logprobs: dict[str, Tensor], logprobs: dict[str, Tensor]) -> Tensor:
    """The KL term per frame in the direction ``ppg.kl_direction`` names: "prior_policy" =
    KL(prior || policy), the VPT paper's (mass-covering: the policy keeps every action the prior
    samples, its imitated noise included); "policy_prior" = KL(policy || prior), MineStudio's
    (mode-seeking: the policy may drop actions the prior rarely takes and sharpen within its
    support). Both exact over the full tables; measured in docs/benchmarks.md "Full difficulty, second pass"."""
    if cfg.kl_direction == "prior_policy":
        return VPTPolicy.kl(prior_logprobs, logprobs)
    return VPTPolicy.kl(logprobs, prior_logprobs)


def policy_phase(
    ctx: PhaseContext, seg: Segment, kl_coef: float, ent_coef: float, train_policy: bool = True
) -> dict[str, float]:
    """E_pi epochs of PPO over the segment's rows (PPG paper, Algorithm 1, policy phase).

    Each minibatch is a set of whole env rows run from their stored start state. Advantages are
    normalised once over the whole batch (docs/implementation_details.md item 10). ``kl_coef``
    (rho) weighs the KL to the prior (`prior_kl_bt`, direction ``ppg.kl_direction``), with the prior's log-probs from ``ctx.prior_kl`` (stored in
    the segment or recomputed per minibatch, by its storage mode). ``train_policy=False`` is the
    value warm-up: only the value loss is optimised, so the KL is not computed at all
    (``train/kl_prior`` 0). Returns the epoch-mean of every `train/*` tag plus
    `train/explained_variance` (left out when the returns have zero variance, where it is
    undefined).
    """
    cfg, policy = ctx.cfg, ctx.policy
    if seg.adv_bt is None or seg.ret_bt is None:
        raise ValueError("policy_phase: compute_advantages(seg) first")
    # the running std learns only from batches the policy is trained on (not the value warm-up's,
    # whose advantages against a zeroed value head are the returns themselves)
    running = ctx.adv_std if cfg.norm_adv and cfg.adv_std == "running" and train_policy else None
    adv_all = normalize_advantages(seg.adv_bt, ctx.dist, running=running) if cfg.norm_adv else seg.adv_bt
    data = dataclasses.replace(seg, adv_bt=adv_all)
    detach = cfg.detach_value_input or not train_policy  # warm-up: only the value head learns
    prior_kl = ctx.prior_kl if train_policy and kl_coef > 0 else None  # a KL that is optimised
    stats: dict[str, list[float]] = defaultdict(list)
    for epoch in range(cfg.n_epochs):
        for i, rows in enumerate(minibatch_rows(seg.num_rows, cfg.n_minibatches, ctx.generator)):
            mb = segment_to(select_rows(data, rows), ctx.device)
            assert mb.adv_bt is not None and mb.ret_bt is not None
            snapshot = _normaliser_snapshot(policy)
            out, _ = policy(mb.img_bthwc, mb.first_bt, mb.state0)
            logprob = policy.logprob(out.logprobs, mb.action)
            if epoch == 0 and i == 0:
                # why: before any update the ratio must be 1; acting one frame at a time and
                # training on whole segments round differently (bf16, fused kernels), and this
                # is how far (docs/monitoring.md, train/ratio_dev_first)
                dev = (logprob.detach() - mb.logprob_bt).exp().sub(1.0).abs().max()
                stats["train/ratio_dev_first"].append(float(dev))
            # why detach: the true value head must not shape the shared trunk (PPG: value gradients
            # interfere with policy features; docs/implementation_details.md item 14)
            vpred = policy.value_head(out.latent.detach()) if detach else out.vpred
            value_loss = policy.value_head.loss(vpred, mb.ret_bt, ctx.moments)
            losses = policy_phase_loss(
                logprob_bt=logprob,
                old_logprob_bt=mb.logprob_bt,
                adv_bt=mb.adv_bt,
                value_loss=value_loss,
                entropy_bt=policy.entropy(out.logprobs),
                kl_prior_bt=None
                if prior_kl is None
                else prior_kl_bt(cfg, prior_kl.logprobs(mb), out.logprobs),
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
    if running is not None:
        out_stats["train/adv_std_running"] = running.variance**0.5
    ev = explained_variance_or_none(seg.vpred_bt, seg.ret_bt, ctx.dist)
    if ev is not None:
        out_stats["train/explained_variance"] = ev
    return out_stats


def pooled_explained_variance(buffer: AuxBuffer, dist: Dist | None = None) -> float | None:
    """`explained_variance_or_none` of the rollout-time values against the GAE returns over every
    segment in the aux buffer (the last n_pi iterations) at once, before the aux phase updates.
    Why besides the per-iteration figure: with a reward on a few frames in a thousand, most
    512-frame batches hold none, and their EV is a ratio of two tiny variances (the targets are the
    value's own bootstrap) that is negative whenever the value varies at all; pooled over 16
    iterations the rewarded frames are in the batch (docs/benchmarks.md, "why the value does not
    learn")."""
    pairs = [(s.vpred_bt.flatten(), s.ret_bt.flatten()) for s in buffer.segments if s.ret_bt is not None]
    if not pairs:
        return None
    return explained_variance_or_none(
        torch.cat([v for v, _ in pairs]), torch.cat([r for _, r in pairs]), dist
    )


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
    cfg, policy, aux_head = ctx.cfg, ctx.policy, ctx.policy.aux_value_head
    if aux_head is None:
        raise ValueError(
            "aux_phase: the policy has no aux_value_head (build VPTPolicy(config, aux_value_head=True))"
        )
    n_rows = buffer.num_rows
    n_mb = min(cfg.aux_n_minibatches or cfg.n_minibatches * len(buffer), n_rows)
    recompute_old_logprobs(policy, buffer, ctx.device, chunks=max(1, n_mb // max(1, len(buffer))))
    stats: dict[str, list[float]] = defaultdict(list)
    ev = pooled_explained_variance(buffer, ctx.dist)
    if ev is not None:
        stats["aux/explained_variance_pooled"].append(ev)
    for _ in range(cfg.e_aux):
        for rows in minibatch_rows(n_rows, n_mb, ctx.generator):
            mb = segment_to(buffer.rows(rows), ctx.device)
            assert mb.ret_bt is not None and mb.old_logprobs is not None
            snapshot = _normaliser_snapshot(policy)
            out, _ = policy(mb.img_bthwc, mb.first_bt, mb.state0)
            assert out.aux_vpred is not None  # the policy has an aux head (checked above)
            vpred = policy.value_head(out.latent.detach()) if cfg.detach_value_input else out.vpred
            losses = aux_phase_loss(
                aux_value_loss=aux_head.loss(out.aux_vpred, mb.ret_bt, ctx.moments),
                value_loss=policy.value_head.loss(vpred, mb.ret_bt, ctx.moments),
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
