"""The PPG phases on real tiny-policy segments: ratio 1 before the first update, KL to an identical
prior is 0, value warm-up and the detached value input leave the trunk alone, the auxiliary phase
recomputes pi_old (bc KL starts at 0) and trains the aux head, e_aux = 0 is plain PPO, and the
non-finite guard skips updates, restores the normaliser and stops after K in a row."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from vpt_rl.algo.buffer import AuxBuffer
from vpt_rl.algo.gae import RunningAdvStd
from vpt_rl.algo.phases import (
    NonFiniteError,
    NonFiniteGuard,
    PhaseContext,
    aux_phase,
    compute_advantages,
    policy_phase,
)
from vpt_rl.algo.ppg_setup import sampler_seed
from vpt_rl.algo.prior_kl import PriorKL
from vpt_rl.algo.roller import Roller
from vpt_rl.config import PPGConfig
from vpt_rl.model.policy import VPTPolicy
from vpt_rl.model.vpt_config import VPTConfig


class TinyVecEnv:
    """Random 32x32 frames, reward = 1 when buttons index is even, episodes of 5 steps (truncated)."""

    def __init__(self, n: int, seed: int = 0) -> None:
        self.num_envs = n
        self.rng = np.random.default_rng(seed)
        self.t = 0

    def _obs(self):
        return {"img": self.rng.integers(0, 256, size=(self.num_envs, 32, 32, 3), dtype=np.uint8)}

    def reset(self, seed=None):
        return self._obs(), {}

    def step(self, actions):
        self.t += 1
        reward = (actions["buttons"] % 2 == 0).astype(np.float64)
        trunc = np.full(self.num_envs, self.t % 5 == 0)
        infos = {}
        if trunc.any():
            infos["final_obs"] = np.array([{"img": x} for x in self._obs()["img"]] + [None], dtype=object)[
                :-1
            ]
        return self._obs(), reward, np.zeros(self.num_envs, dtype=bool), trunc, infos


def _setup(prior: bool = True, n_envs: int = 4, seed: int = 0, prior_mode: str = "fp32"):
    """A tiny policy, its frozen copy as the prior (``prior_mode``: `PriorKL` storage) and a roller
    with one action sampler per env, seeded as the trainer seeds them."""
    torch.manual_seed(seed)
    policy = VPTPolicy(VPTConfig.preset("tiny"))
    prior_policy = copy.deepcopy(policy).eval().requires_grad_(False) if prior else None
    env = TinyVecEnv(n_envs, seed)
    samplers = [torch.Generator().manual_seed(sampler_seed(seed, i)) for i in range(n_envs)]
    prior_kl = None if prior_policy is None else PriorKL(prior_policy, prior_mode)
    roller = Roller(env, policy, 6, torch.device("cpu"), samplers, prior_kl=prior_kl)
    roller.start(env.reset()[0])
    return policy, prior_policy, roller


def _ctx(policy, prior_kl: PriorKL | None = None, **cfg_kw) -> PhaseContext:
    # One epoch, one minibatch: the first minibatch then sees exactly the rollout policy (ratio 1).
    raw = PPGConfig(**{"n_minibatches": 1, "n_epochs": 1, "lr": 1e-3, "detach_value_input": True, **cfg_kw})
    cfg = raw.resolve(has_prior=True)
    opt = torch.optim.AdamW(policy.param_groups(cfg.weight_decay), lr=cfg.lr, eps=cfg.adam_eps)
    return PhaseContext(
        policy,
        opt,
        cfg,
        torch.device("cpu"),
        torch.Generator().manual_seed(0),
        NonFiniteGuard(cfg.nonfinite_patience),
        prior_kl=prior_kl,
        adv_std=RunningAdvStd(cfg.adv_std_frames),
    )


def _params(module):
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def _changed(before, module, prefix=""):
    return {k for k, v in module.named_parameters() if k.startswith(prefix) and not torch.equal(before[k], v)}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def test_first_update_sees_ratio_one_and_zero_prior_kl():
    policy, _, roller = _setup(prior=True)
    seg = roller.collect()
    ctx = _ctx(policy, roller.prior_kl)
    compute_advantages(seg, ctx.cfg)
    before = _params(policy)
    stats = policy_phase(ctx, seg, kl_coef=0.2, ent_coef=0.01)
    assert stats["train/clip_frac"] == 0.0
    assert abs(stats["train/approx_kl"]) < 1e-6
    assert abs(stats["train/kl_prior"]) < 1e-5  # prior == policy before the update
    assert np.isfinite(stats["train/grad_norm"]) and stats["train/grad_norm"] > 0
    assert "train/explained_variance" in stats
    assert _changed(before, policy, "net.")  # the trunk learned
    assert policy.value_head.normalizer.debiasing_term.item() > 0  # targets went through the EWMA

    # second iteration: now the policy moved away from the prior
    seg2 = roller.collect()
    compute_advantages(seg2, ctx.cfg)
    stats2 = policy_phase(ctx, seg2, kl_coef=0.2, ent_coef=0.01)
    assert stats2["train/kl_prior"] > 0


def test_value_warmup_trains_only_the_value_head():
    policy, _, roller = _setup(prior=False)
    seg = roller.collect()
    ctx = _ctx(policy, detach_value_input=False)  # warm-up detaches anyway
    compute_advantages(seg, ctx.cfg)
    before = _params(policy)
    policy_phase(ctx, seg, kl_coef=0.0, ent_coef=0.01, train_policy=False)
    changed = _changed(before, policy)
    assert {"value_head.linear.weight", "value_head.linear.bias"} <= changed
    assert all(k.startswith("value_head.") for k in changed), changed


@pytest.mark.parametrize("detach", [True, False])
def test_detached_value_input_keeps_value_gradient_off_the_trunk(detach):
    policy, _, roller = _setup(prior=False)
    seg = roller.collect()
    ctx = _ctx(policy, detach_value_input=detach, norm_adv=False)
    compute_advantages(seg, ctx.cfg)
    seg.adv_bt = torch.zeros_like(seg.adv_bt)  # no policy gradient: only the value loss acts
    before = _params(policy)
    policy_phase(ctx, seg, kl_coef=0.0, ent_coef=0.0)
    assert bool(_changed(before, policy, "net.")) is (not detach)


def _fill_buffer(n_segments=2):
    policy, _, roller = _setup(prior=False)
    ctx = _ctx(policy, e_aux=2, n_pi=n_segments)
    buf = AuxBuffer()
    for _ in range(n_segments):
        seg = roller.collect()
        compute_advantages(seg, ctx.cfg)
        buf.add(seg)
    return policy, ctx, buf


def test_aux_phase_recomputes_old_policy_and_trains_aux_head():
    policy, ctx, buf = _fill_buffer()
    ctx.cfg.e_aux = 1
    ctx.cfg.aux_n_minibatches = 1  # one update: its bc KL is measured before any change
    before = _params(policy)
    stats = aux_phase(ctx, buf)
    assert abs(stats["aux/bc_kl"]) < 1e-6
    assert set(stats) >= {"aux/aux_value_loss", "aux/value_loss", "aux/bc_kl", "aux/loss"}
    changed = _changed(before, policy)
    assert {"aux_value_head.linear.weight", "value_head.linear.weight"} <= changed
    assert any(k.startswith("net.") for k in changed)  # the aux value loss shapes the shared trunk
    assert policy.aux_value_head.normalizer.debiasing_term.item() > 0
    assert all(s.old_logprobs is None for s in buf.segments)  # freed after the phase


def test_aux_phase_bc_kl_keeps_policy_close():
    policy, ctx, buf = _fill_buffer()
    ctx.cfg.e_aux = 3
    stats = aux_phase(ctx, buf)
    assert 0 <= stats["aux/bc_kl"] < 0.05


def test_nonfinite_loss_is_skipped_and_normaliser_restored():
    policy, _, roller = _setup(prior=False)
    seg = roller.collect()
    ctx = _ctx(policy, nonfinite_patience=3, n_epochs=2)
    compute_advantages(seg, ctx.cfg)
    seg.ret_bt[0, 0] = float("nan")
    before = _params(policy)
    stats = policy_phase(ctx, seg, kl_coef=0.0, ent_coef=0.0)
    assert not _changed(before, policy)  # every update skipped, EWMA statistics restored too
    assert ctx.guard.streak == 2 and ctx.guard.total == 2
    assert "train/value_loss" not in stats  # no finite update: the tag is omitted, never a NaN
    with pytest.raises(NonFiniteError, match="3 consecutive updates skipped"):
        policy_phase(ctx, seg, kl_coef=0.0, ent_coef=0.0)


def test_guard_resets_streak_on_a_good_update():
    g = NonFiniteGuard(2)
    g.record(False, "x")
    g.record(True, "x")
    g.record(False, "x")
    assert g.streak == 1 and g.total == 2


def test_optimizer_groups_schedules_and_rho():
    from vpt_rl.algo.optim import kl_coef_at, lr_at, make_optimizer, set_lr

    policy = VPTPolicy(VPTConfig.preset("tiny"))
    cfg = PPGConfig(lr=1e-3, pi_head_lr_scale=10.0, weight_decay=0.04)
    opt = make_optimizer(policy, cfg)
    head = {id(p) for p in policy.pi_head.parameters()}
    trainable = [p for p in policy.parameters() if p.requires_grad]
    assert sum(len(g["params"]) for g in opt.param_groups) == len(trainable)  # EWMA stats left out
    for g in opt.param_groups:
        is_head = all(id(p) in head for p in g["params"])
        assert is_head or not any(id(p) in head for p in g["params"])
        assert g["lr"] == pytest.approx(1e-2 if is_head else 1e-3)
        assert g["weight_decay"] in (0.0, 0.04)
        if any(p.dim() < 2 for p in g["params"]):
            assert g["weight_decay"] == 0.0  # no decay on norms and biases
    set_lr(opt, 5e-4)
    assert sorted({g["lr"] for g in opt.param_groups}) == pytest.approx([5e-4, 5e-3])
    lin = PPGConfig(lr=1e-3, lr_schedule="linear")
    assert lr_at(lin.lr, "linear", 0, 1000) == pytest.approx(1e-3)
    assert lr_at(lin.lr, "linear", 750, 1000) == pytest.approx(2.5e-4)
    assert lr_at(1e-3, "constant", 750, 1000) == pytest.approx(1e-3)
    assert lr_at(lin.lr, "linear", 1500, 1000) == 0.0
    assert kl_coef_at(PPGConfig(), 0, True) == 0.2
    assert kl_coef_at(PPGConfig(), 10 * 512, True) == pytest.approx(0.2 * 0.99**10)  # 10 default batches
    assert kl_coef_at(PPGConfig(), 256, True) == pytest.approx(0.2 * 0.99**0.5)  # continuous in frames
    assert kl_coef_at(PPGConfig(kl_decay_frames=2048), 2048, True) == pytest.approx(0.2 * 0.99)
    assert kl_coef_at(PPGConfig(), 0, False) == 0.0
    # the decay stops at kl_decay_floor x kl_coef (0.03 by default, from ~97k frames on) ...
    assert kl_coef_at(PPGConfig(), 64 * 1024, True) == pytest.approx(0.2 * 0.99**128)  # above the floor
    assert kl_coef_at(PPGConfig(), 400_000, True) == pytest.approx(0.03)
    assert kl_coef_at(PPGConfig(kl_coef=0.5, kl_decay_floor=0.1), 10**7, True) == pytest.approx(0.05)
    # ... 0 = the paper's pure decay, and no prior means no KL term whatever the floor
    assert kl_coef_at(PPGConfig(kl_decay_floor=0.0), 400_000, True) == pytest.approx(
        0.2 * 0.99 ** (400_000 / 512)
    )
    assert kl_coef_at(PPGConfig(), 400_000, False) == 0.0


def test_explained_variance_of_constant_returns_is_undefined_not_nan():
    from vpt_rl.algo.phases import explained_variance_or_none

    assert explained_variance_or_none(torch.randn(2, 8), torch.zeros(2, 8)) is None  # SB3 gives NaN
    assert explained_variance_or_none(torch.zeros(0), torch.zeros(0)) is None
    ret = torch.arange(16.0).reshape(2, 8)
    assert explained_variance_or_none(ret, ret) == pytest.approx(1.0)
    assert explained_variance_or_none(torch.zeros(2, 8), ret) == pytest.approx(0.0)


@pytest.mark.parametrize("mode", ["recompute", "bf16"])
def test_prior_logprobs_recomputed_or_bf16_give_the_fp32_kl(mode):
    """The compact prior modes (docs/implementation_details.md item 7): recomputing the prior per minibatch gives the KL
    and the update of the stored float32 table to float rounding; bf16 storage to ~1e-3."""
    results = {}
    for m in ("fp32", mode):
        policy, _, roller = _setup(prior=True, seed=3, prior_mode=m)
        roller.collect()  # a first update would make the KL non-zero: move the policy first
        with torch.no_grad():
            for p in policy.pi_head.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
        seg = roller.collect()
        assert (seg.prior_logprobs is None) == (m == "recompute")
        assert (seg.prior_state0 is None) == (m != "recompute")  # kept only where it is needed
        if m == "bf16":
            assert seg.prior_logprobs["buttons"].dtype == torch.bfloat16
        ctx = _ctx(policy, roller.prior_kl, n_epochs=2, n_minibatches=2)
        compute_advantages(seg, ctx.cfg)
        stats = policy_phase(ctx, seg, kl_coef=0.5, ent_coef=0.0)
        results[m] = (stats["train/kl_prior"], _params(policy))
    (kl_ref, p_ref), (kl, p) = results["fp32"], results[mode]
    assert kl_ref > 1e-3
    if mode == "recompute":
        assert abs(kl - kl_ref) <= 1e-6 * kl_ref, (kl, kl_ref)  # equal here; float rounding allowed
    else:  # bf16 keeps ~3 significant digits of each log-prob: 0.4% of the KL here
        assert abs(kl - kl_ref) <= 0.01 * kl_ref, (kl, kl_ref)
    worst = max((p[k] - p_ref[k]).abs().max().item() for k in p)
    # bf16: 4 AdamW steps of lr 1e-3, whose normalised steps amplify small gradient differences
    assert worst <= (1e-5 if mode == "recompute" else 4e-3), worst


def test_value_warmup_computes_no_prior_kl():
    """The warm-up optimises the value loss alone: the prior is not run for a KL nobody uses
    (recompute mode would run it once per minibatch); the policy phase proper does run it."""
    policy, prior_policy, roller = _setup(prior=True, prior_mode="recompute")
    calls = []
    seg = roller.collect()
    prior_policy.register_forward_hook(lambda *_: calls.append(1))
    ctx = _ctx(policy, roller.prior_kl, n_minibatches=2)
    compute_advantages(seg, ctx.cfg)
    stats = policy_phase(ctx, seg, kl_coef=0.2, ent_coef=0.0, train_policy=False)
    assert calls == [] and stats["train/kl_prior"] == 0.0
    policy_phase(ctx, seg, kl_coef=0.2, ent_coef=0.0)
    assert len(calls) == 2  # one prior forward per minibatch


def test_prior_storage_auto_keeps_the_fewest_bytes():
    from vpt_rl.algo.prior_kl import prior_storage

    tiny, onex = VPTConfig.preset("tiny"), VPTConfig.preset("1x")
    assert prior_storage("auto", tiny, 64) == "recompute"  # an 8 kB state against a 1.1 MB table
    assert prior_storage("auto", onex, 128) == "bf16"  # a 4 MiB state against a 2.1 MiB table
    assert prior_storage("auto", onex, 256) == "recompute"  # ... against 4.3 MiB
    assert prior_storage("fp32", tiny, 64) == "fp32"
    # the trainer's object resolves "auto" by the same rule; no prior, no KL term
    assert PriorKL.from_config(VPTPolicy(tiny), "auto", tiny, 64).storage == "recompute"
    assert PriorKL.from_config(None, "auto", tiny, 64) is None
    from vpt_rl.algo.ppg_setup import prior_storage as reexported

    assert reexported is prior_storage  # memory_plan.py's import


def test_kl_direction_picks_which_distribution_weighs_the_log_ratio():
    """ppg.kl_direction: "prior_policy" is KL(prior || policy), "policy_prior" KL(policy || prior),
    each the exact sum over both heads' tables; they differ for different distributions and both
    are 0 for equal ones."""
    from vpt_rl.algo.phases import prior_kl_bt

    torch.manual_seed(0)
    prior = {
        "buttons": torch.randn(2, 3, 8641).log_softmax(-1),
        "camera": torch.randn(2, 3, 121).log_softmax(-1),
    }
    pol = {k: (v + 0.5 * torch.randn_like(v)).log_softmax(-1) for k, v in prior.items()}

    def by_hand(p, q):
        return sum((p[k].exp() * (p[k] - q[k])).sum(-1) for k in p)

    fwd = prior_kl_bt(PPGConfig(kl_direction="prior_policy"), prior, pol)
    rev = prior_kl_bt(PPGConfig(kl_direction="policy_prior"), prior, pol)
    torch.testing.assert_close(fwd, by_hand(prior, pol))
    torch.testing.assert_close(rev, by_hand(pol, prior))
    assert (fwd - rev).abs().min() > 1e-3
    for direction in ("prior_policy", "policy_prior"):
        assert prior_kl_bt(PPGConfig(kl_direction=direction), prior, prior).abs().max() < 1e-5


def test_pooled_explained_variance_is_one_ev_over_the_whole_buffer():
    """aux/explained_variance_pooled: the rollout values against the returns of every buffered
    segment at once, so a segment whose returns are constant (no reward) still counts, where its
    own per-iteration figure is undefined; logged by the aux phase."""
    from vpt_rl.algo.phases import pooled_explained_variance

    policy, ctx, buf = _fill_buffer()
    assert pooled_explained_variance(AuxBuffer()) is None
    y = np.concatenate([s.ret_bt.flatten().double().numpy() for s in buf.segments])
    v = np.concatenate([s.vpred_bt.flatten().double().numpy() for s in buf.segments])
    assert pooled_explained_variance(buf) == pytest.approx(1 - np.var(y - v) / np.var(y))
    buf.segments[0].ret_bt = torch.zeros_like(buf.segments[0].ret_bt)  # a reward-free batch
    buf.segments[0].vpred_bt = torch.zeros_like(buf.segments[0].vpred_bt)
    assert pooled_explained_variance(buf) is not None
    ctx.cfg.e_aux = 1
    assert "aux/explained_variance_pooled" in aux_phase(ctx, buf)


def test_kl_direction_is_validated():
    from vpt_rl.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="kl_direction"):
        load_config([], ["ppg.kl_direction=both"])


def test_running_adv_std_learns_from_policy_iterations_only():
    policy, _, roller = _setup(prior=False)
    ctx = _ctx(policy, adv_std="running")
    assert ctx.adv_std is not None
    seg = roller.collect()
    compute_advantages(seg, ctx.cfg)
    stats = policy_phase(ctx, seg, kl_coef=0.0, ent_coef=0.0, train_policy=False)  # value warm-up
    assert ctx.adv_std.weight == 0.0 and "train/adv_std_running" not in stats
    stats = policy_phase(ctx, seg, kl_coef=0.0, ent_coef=0.0)
    assert ctx.adv_std.weight > 0.0
    assert stats["train/adv_std_running"] == pytest.approx(float(seg.adv_bt.std(unbiased=False)), rel=1e-5)
    # "batch" (the PPG code's) never touches it
    batch_ctx = _ctx(policy, adv_std="batch")
    assert batch_ctx.adv_std is not None
    stats = policy_phase(batch_ctx, seg, kl_coef=0.0, ent_coef=0.0)
    assert batch_ctx.adv_std.weight == 0.0 and "train/adv_std_running" not in stats
