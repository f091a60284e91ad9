"""GAE on hand-computed cases: continuing, termination (no bootstrap), truncation (bootstrap from
the final observation's value), both flags, and agreement with a plain per-step reference."""

from __future__ import annotations

import math

import pytest
import torch

from vpt_rl.algo.gae import RunningAdvStd, gae, normalize_advantages


def _row(*xs, dtype=torch.float32):
    return torch.tensor([list(xs)], dtype=dtype)


def _run(r, v, term, trunc, final, nxt, gamma, lam):
    return gae(
        _row(*r),
        _row(*v),
        _row(*term, dtype=torch.bool),
        _row(*trunc, dtype=torch.bool),
        _row(*final),
        torch.tensor([nxt], dtype=torch.float32),
        gamma,
        lam,
    )


def test_continuing_segment_bootstraps_from_next_value():
    g, lam = 0.9, 0.5
    out = _run([1, 0, 2], [0.5, 1.0, 1.5], [0, 0, 0], [0, 0, 0], [9, 9, 9], 2.0, g, lam)
    d2 = 2 + g * 2.0 - 1.5  # 2.3
    d1 = 0 + g * 1.5 - 1.0  # 0.35
    d0 = 1 + g * 1.0 - 0.5  # 1.4
    a2 = d2
    a1 = d1 + g * lam * a2
    a0 = d0 + g * lam * a1
    torch.testing.assert_close(out["advantages"], _row(a0, a1, a2))
    torch.testing.assert_close(out["returns"], _row(a0 + 0.5, a1 + 1.0, a2 + 1.5))


def test_termination_does_not_bootstrap_and_stops_the_recursion():
    g, lam = 0.9, 0.5
    # episode ends (terminated) at t=1; t=2 belongs to the next episode
    out = _run([1, 3, 2], [0.5, 1.0, 1.5], [0, 1, 0], [0, 0, 0], [7, 7, 7], 2.0, g, lam)
    a2 = 2 + g * 2.0 - 1.5
    a1 = 3 - 1.0  # no bootstrap, no carry from t=2
    a0 = (1 + g * 1.0 - 0.5) + g * lam * a1
    torch.testing.assert_close(out["advantages"], _row(a0, a1, a2))


def test_truncation_bootstraps_from_final_obs_value():
    g, lam = 0.9, 0.5
    out = _run([1, 3, 2], [0.5, 1.0, 1.5], [0, 0, 0], [0, 1, 0], [0, 7, 0], 2.0, g, lam)
    a2 = 2 + g * 2.0 - 1.5
    a1 = 3 + g * 7.0 - 1.0  # bootstrap V(final_obs) = 7, but no carry from the next episode
    a0 = (1 + g * 1.0 - 0.5) + g * lam * a1
    torch.testing.assert_close(out["advantages"], _row(a0, a1, a2))


def test_truncation_vs_termination_differ_only_by_bootstrap():
    args = ([0, 0], [0.0, 0.0], None, None, [0, 5.0], 1.0, 0.99, 0.95)
    term = _run(args[0], args[1], [0, 1], [0, 0], *args[4:])
    trunc = _run(args[0], args[1], [0, 0], [0, 1], *args[4:])
    assert term["advantages"][0, 1].item() == pytest.approx(0.0)
    assert trunc["advantages"][0, 1].item() == pytest.approx(0.99 * 5.0)


def test_both_flags_means_terminated():
    out = _run([1.0], [0.0], [1], [1], [100.0], 50.0, 0.9, 0.9)
    assert out["advantages"].item() == pytest.approx(1.0)


def test_end_at_last_step_ignores_next_value():
    out = _run([1.0, 1.0], [0.0, 0.0], [0, 1], [0, 0], [0, 0], 1000.0, 0.5, 1.0)
    torch.testing.assert_close(out["advantages"], _row(1.0 + 0.5 * 1.0, 1.0))


def _reference(r, v, term, trunc, final, nxt, gamma, lam):
    """Plain per-env, per-step loop written the long way (CleanRL style)."""
    b, t = r.shape
    adv = torch.zeros(b, t, dtype=torch.float64)
    for i in range(b):
        last = 0.0
        for k in reversed(range(t)):
            if term[i, k]:
                next_v, cont = 0.0, 0.0
            elif trunc[i, k]:
                next_v, cont = final[i, k].item(), 0.0
            else:
                next_v = v[i, k + 1].item() if k + 1 < t else nxt[i].item()
                cont = 1.0
            delta = r[i, k].item() + gamma * next_v - v[i, k].item()
            last = delta + gamma * lam * cont * last
            adv[i, k] = last
    return adv


def test_random_batch_matches_reference_loop():
    g = torch.Generator().manual_seed(0)
    b, t = 5, 17
    r = torch.randn(b, t, generator=g)
    v = torch.randn(b, t, generator=g)
    u = torch.rand(b, t, generator=g)
    term = u < 0.1
    trunc = (u > 0.85) | (u < 0.03)
    final = torch.randn(b, t, generator=g)
    nxt = torch.randn(b, generator=g)
    out = gae(r, v, term, trunc, final, nxt, 0.97, 0.9)
    ref = _reference(r, v, term, trunc, final, nxt, 0.97, 0.9)
    torch.testing.assert_close(out["advantages"], ref.float(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out["returns"], (ref + v.double()).float(), rtol=1e-5, atol=1e-5)


def test_shape_mismatch_names_the_argument():
    with pytest.raises(ValueError, match="value_bt"):
        gae(
            torch.zeros(2, 3),
            torch.zeros(2, 4),
            torch.zeros(2, 3),
            torch.zeros(2, 3),
            torch.zeros(2, 3),
            torch.zeros(2),
            0.9,
            0.9,
        )


def test_normalize_advantages_whole_batch():
    a = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    n = normalize_advantages(a)
    assert n.mean().abs().item() < 1e-6
    assert n.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-5)


def test_running_adv_std_is_a_frame_weighted_debiased_average():
    r = RunningAdvStd(memory_frames=1000)
    assert r.update(4.0, 512) == pytest.approx(4.0)  # de-biased: the first batch is its own estimate
    w = 1 - math.exp(-512 / 1000)
    by_hand = ((1 - w) * w * 4.0 + w * 1.0) / ((1 - w) * w + w)
    assert r.update(1.0, 512) == pytest.approx(by_hand)
    assert 1.0 < by_hand < 4.0
    # the memory is counted in frames: one 512-frame batch == two 256-frame batches of its variance
    a, b = RunningAdvStd(1000), RunningAdvStd(1000)
    a.update(2.0, 300), b.update(2.0, 300)
    a.update(5.0, 512)
    b.update(5.0, 256), b.update(5.0, 256)
    assert a.state_dict() == pytest.approx(b.state_dict())
    c = RunningAdvStd(1000)
    c.load_state_dict(a.state_dict())
    assert c.variance == a.variance
    with pytest.raises(ValueError, match="memory_frames"):
        RunningAdvStd(0)


def test_running_std_shrinks_a_reward_poor_batch():
    """After a batch with rewards, a batch of small value errors is divided by the running std
    (mostly the rewarded batch's), so it keeps a small scale instead of being blown up to std 1."""
    g = torch.Generator().manual_seed(0)
    rewarded = torch.randn(8, 64, generator=g)  # std ~1
    errors = 0.01 * torch.randn(8, 64, generator=g)  # a batch without reward: value errors only
    running = RunningAdvStd(memory_frames=32768)
    first = normalize_advantages(rewarded, running=running)
    assert torch.allclose(first, normalize_advantages(rewarded), atol=1e-6)  # first batch: its own std
    scaled = normalize_advantages(errors, running=running)
    assert scaled.mean().abs().item() < 1e-6  # the batch's own mean is still subtracted
    assert scaled.std(unbiased=False).item() < 0.02  # per-batch normalisation would give 1.0
    assert normalize_advantages(errors).std(unbiased=False).item() == pytest.approx(1.0, abs=1e-4)
