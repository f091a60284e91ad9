"""ScaledValueHead reproduces the official ScaledMSEHead and its EWMA normaliser (ewma_golden.pt)."""

from __future__ import annotations

import functools

import pytest
import torch

from vpt_rl.distributed import Dist, global_moments
from vpt_rl.model.value_heads import ScaledValueHead


@pytest.fixture(scope="module")
def golden(reference_dir):
    return torch.load(reference_dir / "ewma_golden.pt", weights_only=True)


def _head_from_golden(golden):
    head = ScaledValueHead(64)
    head.load_state_dict(golden["initial_state"], strict=True)
    return head


@pytest.mark.parametrize("moments", ["batch", "one rank"])
def test_matches_official_ewma_steps(golden, moments):
    """Also through the moments the trainer passes (`global_moments` of a one-process `Dist`):
    one formula for any number of ranks, bit-exact on one (docs/design.md "Style" 15)."""
    head = _head_from_golden(golden)
    update = None if moments == "batch" else functools.partial(global_moments, Dist())
    assert golden["meta"]["beta"] == 0.99999
    pred = head(golden["x"])
    assert pred.shape == (2, 6)
    torch.testing.assert_close(pred, golden["pred"][..., 0], atol=1e-6, rtol=0)
    for i, step in enumerate(golden["steps"]):
        head.train()
        loss = head.loss(golden["pred"], step["target"], update)  # updates first, then normalises
        torch.testing.assert_close(loss, step["loss"], atol=1e-5, rtol=1e-6, msg=f"step {i} loss")
        for name, value in step["stats_after"].items():
            ours = getattr(head.normalizer, name)
            torch.testing.assert_close(ours.detach(), value, atol=1e-7, rtol=0, msg=f"step {i} {name}")
        head.eval()
        torch.testing.assert_close(
            head.normalize(step["target"]), step["normalized_target_eval"], atol=1e-6, rtol=0
        )
        torch.testing.assert_close(
            head.denormalize(golden["pred"]), step["denormalized_pred"], atol=1e-6, rtol=0
        )


def test_eval_loss_and_pure_functions_do_not_update(golden):
    head = _head_from_golden(golden).eval()
    before = [p.clone() for p in head.normalizer.parameters()]
    head.loss(golden["pred"], golden["steps"][0]["target"])
    head.normalize(golden["pred"])
    head.denormalize(golden["pred"])
    assert all(torch.equal(a, b) for a, b in zip(before, head.normalizer.parameters()))


def test_normalize_denormalize_inverse_and_fresh_stats():
    head = ScaledValueHead(8)
    x = torch.randn(3, 5)
    # Fresh stats are zero: mean 0, variance floored at 1e-2, so denormalise = 0.1 * v (docs/vpt_format.md §4).
    torch.testing.assert_close(head.denormalize(x), 0.1 * x)
    head.update(torch.randn(3, 5) * 7 + 2)
    torch.testing.assert_close(head.denormalize(head.normalize(x)), x, atol=1e-5, rtol=1e-5)
    head.reset_normalizer()
    assert all(p.abs().sum() == 0 for p in head.normalizer.parameters())


def test_update_is_per_call_with_batch_mean():
    head = ScaledValueHead(4)
    head.update(torch.tensor([[1.0, 3.0], [5.0, 7.0]]))
    beta = 0.99999
    torch.testing.assert_close(head.normalizer.running_mean, torch.tensor([(1 - beta) * 4.0]))
    torch.testing.assert_close(head.normalizer.running_mean_sq, torch.tensor([(1 - beta) * 21.0]))
    torch.testing.assert_close(head.normalizer.debiasing_term, torch.tensor(1 - beta))
    mean, _ = head.normalizer.mean_var()
    torch.testing.assert_close(mean, torch.tensor([4.0]), rtol=1e-4, atol=0)


def test_stats_frozen_and_gradients_reach_linear_only():
    head = ScaledValueHead(4).train()
    assert [n for n, p in head.named_parameters() if not p.requires_grad] == [
        "normalizer.running_mean",
        "normalizer.running_mean_sq",
        "normalizer.debiasing_term",
    ]
    assert list(head.named_buffers()) == []
    latent = torch.randn(2, 3, 4)
    head.loss(head(latent), torch.randn(2, 3)).backward()
    assert head.linear.weight.grad is not None and head.linear.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in head.normalizer.parameters())
    with pytest.raises(ValueError, match="shape"):
        head.loss(head(latent), torch.randn(2, 3, 1))
