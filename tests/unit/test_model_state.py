"""State helpers: select / cat / detach / to / clone act on the batch dimension of every block."""

from __future__ import annotations

import pytest
import torch

from vpt_rl.model.policy import VPTPolicy
from vpt_rl.model.state import (
    initial_state,
    state_batch_size,
    state_cat,
    state_clone,
    state_detach,
    state_select,
    state_to,
)
from vpt_rl.model.vpt_config import VPTConfig


def _state(b=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [
        (
            torch.rand(b, 8, generator=gen) > 0.5,
            torch.randn(b, 8, 16, generator=gen),
            torch.randn(b, 8, 16, generator=gen),
        )
        for _ in range(3)
    ]


def _equal(a, b):
    return len(a) == len(b) and all(torch.equal(x, y) for sa, sb in zip(a, b) for x, y in zip(sa, sb))


def test_select_forms_agree():
    s = _state()
    by_list = state_select(s, [2, 0])
    by_tensor = state_select(s, torch.tensor([2, 0]))
    by_bool = state_select(s, torch.tensor([True, False, True, False]))
    assert _equal(by_list, by_tensor)
    assert torch.equal(by_list[1][1][0], s[1][1][2]) and torch.equal(by_list[2][0][1], s[2][0][0])
    assert _equal(by_bool, state_select(s, [0, 2]))
    assert _equal(state_select(s, slice(1, 3)), state_select(s, [1, 2]))
    assert state_batch_size(by_list) == 2


def test_cat_inverts_select():
    s = _state()
    assert _equal(state_cat([state_select(s, [0, 1]), state_select(s, [2]), state_select(s, [3])]), s)
    with pytest.raises(ValueError, match="different numbers of blocks"):
        state_cat([s, s[:2]])
    with pytest.raises(ValueError, match="no states"):
        state_cat([])


def test_detach_clone_to():
    s = [(m, k.requires_grad_(), v) for m, k, v in _state()]
    d = state_detach(s)
    assert not d[0][1].requires_grad and _equal(d, s)
    c = state_clone(s)
    c[0][1].add_(1.0)
    assert not torch.equal(c[0][1], s[0][1])
    m = state_to(s, "meta")
    assert m[0][0].device.type == "meta" and m[0][0].dtype == torch.bool


def test_initial_state_helper_and_policy_rows_independent():
    """Running rows separately then concatenating states equals running them together."""
    assert not initial_state(2, 3, 8, 16)[1][0].any()
    torch.manual_seed(0)
    policy = VPTPolicy(VPTConfig.preset("tiny")).eval()
    img = torch.randint(0, 256, (3, 4, 32, 32, 3), dtype=torch.uint8)
    first = torch.zeros(3, 4, dtype=torch.bool)
    with torch.no_grad():
        _, joint = policy(img, first, policy.initial_state(3))
        parts = [policy(img[i : i + 1], first[i : i + 1], policy.initial_state(1))[1] for i in range(3)]
    cat = state_cat(parts)
    for (m, k, v), (m2, k2, v2) in zip(joint, cat):
        assert torch.equal(m, m2)
        torch.testing.assert_close(k, k2, atol=1e-5, rtol=0)
        torch.testing.assert_close(v, v2, atol=1e-5, rtol=0)
