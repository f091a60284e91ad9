"""Pure loss functions: ratio 1 => no clipping and zero approx-KL, clipping behaviour, the KL-to-prior
term, value warm-up and the auxiliary-phase combination."""

from __future__ import annotations

import pytest
import torch

from vpt_rl.algo.losses import aux_phase_loss, policy_phase_loss, ppo_clip_loss


def _kl(logp_p: torch.Tensor, logp_q: torch.Tensor) -> torch.Tensor:
    return (logp_p.exp() * (logp_p - logp_q)).sum(-1)


def test_ratio_one_gives_no_clipping_and_zero_kl():
    g = torch.Generator().manual_seed(0)
    lp = torch.randn(3, 5, generator=g)
    adv = torch.randn(3, 5, generator=g)
    out = ppo_clip_loss(lp, lp.clone(), adv, 0.2)
    assert out["train/clip_frac"].item() == 0.0
    assert out["train/approx_kl"].item() == 0.0
    assert out["train/policy_loss"].item() == pytest.approx(-adv.mean().item(), abs=1e-6)


def test_clipping_stops_gradient_beyond_the_range():
    old = torch.zeros(1, 2)
    new = torch.log(torch.tensor([[1.5, 0.5]])).requires_grad_(True)
    adv = torch.tensor([[1.0, -1.0]])  # ratio 1.5 with A>0 and 0.5 with A<0: both clipped
    out = ppo_clip_loss(new, old, adv, 0.2)
    out["train/policy_loss"].backward()
    assert out["train/clip_frac"].item() == 1.0
    assert torch.count_nonzero(new.grad).item() == 0
    assert out["train/policy_loss"].item() == pytest.approx(-(1.2 * 1.0 + 0.8 * -1.0) / 2)


def test_unclipped_side_keeps_gradient():
    old = torch.zeros(1, 1)
    new = torch.log(torch.tensor([[1.5]])).requires_grad_(True)
    adv = torch.tensor([[-1.0]])  # ratio above range with A<0: the pessimistic term is unclipped
    out = ppo_clip_loss(new, old, adv, 0.2)
    out["train/policy_loss"].backward()
    assert new.grad.abs().item() > 0
    assert out["train/policy_loss"].item() == pytest.approx(1.5)


def _policy_loss(logits, prior_logits, **kw):
    logp = torch.log_softmax(logits, -1)
    prior = torch.log_softmax(prior_logits, -1)
    lp = logp[..., 0]
    args = dict(
        logprob_bt=lp,
        old_logprob_bt=lp.detach(),
        adv_bt=torch.ones_like(lp),
        value_loss=torch.tensor(0.25),
        entropy_bt=-(logp.exp() * logp).sum(-1),
        kl_prior_bt=_kl(prior, logp),
        clip_eps=0.2,
        vf_coef=0.5,
        ent_coef=0.01,
        kl_coef=0.2,
    )
    args.update(kw)
    return policy_phase_loss(**args)


def test_kl_prior_zero_when_prior_equals_policy():
    logits = torch.randn(2, 3, 7)
    out = _policy_loss(logits, logits.clone())
    assert out["train/kl_prior"].abs().item() < 1e-6
    out = _policy_loss(logits, torch.randn(2, 3, 7))
    assert out["train/kl_prior"].item() > 1e-3


def test_total_combines_terms_with_named_coefficients():
    logits = torch.randn(2, 3, 7)
    out = _policy_loss(logits, torch.randn(2, 3, 7))
    expect = out["train/policy_loss"] + 0.5 * 0.25 - 0.01 * out["train/entropy"] + 0.2 * out["train/kl_prior"]
    assert out["train/loss"].item() == pytest.approx(expect.item(), rel=1e-6)
    for tag in (
        "train/policy_loss",
        "train/value_loss",
        "train/entropy",
        "train/kl_prior",
        "train/approx_kl",
        "train/clip_frac",
    ):
        assert tag in out


def test_kl_term_pulls_policy_towards_prior():
    logits = torch.zeros(1, 1, 4, requires_grad=True)
    prior_logits = torch.tensor([[[3.0, 0.0, 0.0, 0.0]]])
    out = _policy_loss(logits, prior_logits, adv_bt=torch.zeros(1, 1), ent_coef=0.0, kl_coef=1.0)
    out["train/loss"].backward()
    assert logits.grad[0, 0, 0] < 0  # descending raises the logit the prior favours


def test_value_warmup_keeps_only_value_loss():
    logits = torch.randn(2, 3, 7, requires_grad=True)
    value_loss = torch.tensor(0.3, requires_grad=True)
    out = _policy_loss(logits, torch.randn(2, 3, 7), value_loss=value_loss, train_policy=False)
    assert out["train/loss"].item() == pytest.approx(0.5 * 0.3)
    out["train/loss"].backward()
    assert logits.grad is None
    assert value_loss.grad.item() == pytest.approx(0.5)


def test_no_prior_gives_zero_kl():
    logits = torch.randn(2, 3, 7)
    out = _policy_loss(logits, logits, kl_prior_bt=None)
    assert out["train/kl_prior"].item() == 0.0


def test_aux_phase_loss():
    out = aux_phase_loss(
        aux_value_loss=torch.tensor(2.0),
        value_loss=torch.tensor(3.0),
        bc_kl_bt=torch.tensor([[0.1, 0.3]]),
        beta_clone=1.0,
        aux_vf_coef=0.5,
        aux_true_vf_coef=2.0,
    )
    assert out["aux/bc_kl"].item() == pytest.approx(0.2)
    assert out["aux/loss"].item() == pytest.approx(0.5 * 2.0 + 0.2 + 2.0 * 3.0)
    assert set(out) == {"aux/loss", "aux/aux_value_loss", "aux/value_loss", "aux/bc_kl"}


def test_shape_mismatch_is_named():
    with pytest.raises(ValueError, match="shapes differ"):
        ppo_clip_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3, 2), 0.2)
