"""VPTPolicy public API: act / sampling / logprob / entropy / kl (docs/vpt_format.md §6.7), param_groups,
initial_state and input checks, on a fresh tiny policy."""

from __future__ import annotations

import pytest
import torch

from vpt_rl.model import action_heads
from vpt_rl.model.policy import PolicyOutput, VPTPolicy
from vpt_rl.model.vpt_config import VPTConfig


@pytest.fixture(scope="module")
def policy():
    torch.manual_seed(0)
    p = VPTPolicy(VPTConfig.preset("tiny"))
    with torch.no_grad():  # non-trivial stats so that denormalising is visible
        p.value_head.normalizer.running_mean.fill_(0.5)
        p.value_head.normalizer.running_mean_sq.fill_(4.0)
        p.value_head.normalizer.debiasing_term.fill_(0.5)
    return p.eval()


def _inputs(b=2, t=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    img = torch.randint(0, 256, (b, t, 32, 32, 3), dtype=torch.uint8, generator=gen)
    return img, torch.zeros(b, t, dtype=torch.bool)


def _random_logprobs(b, t, seed):
    gen = torch.Generator().manual_seed(seed)
    return {
        "buttons": torch.log_softmax(3 * torch.randn(b, t, 8641, generator=gen), -1),
        "camera": torch.log_softmax(3 * torch.randn(b, t, 121, generator=gen), -1),
    }


def test_forward_output_shapes(policy):
    img, first = _inputs()
    out, state = policy(img, first, policy.initial_state(2))
    assert isinstance(out, PolicyOutput)
    assert out.logprobs["buttons"].shape == (2, 3, 8641) and out.logprobs["camera"].shape == (2, 3, 121)
    assert out.vpred.shape == (2, 3) and out.aux_vpred.shape == (2, 3) and out.latent.shape == (2, 3, 64)
    assert len(state) == 2 and state[0][0].dtype == torch.bool and state[0][0].shape == (2, 8)


def test_temperature_is_applied(policy):
    img, first = _inputs()
    out, _ = policy(img, first, policy.initial_state(2))
    logits = policy.pi_head["camera"].linear_layer(out.latent)
    torch.testing.assert_close(out.logprobs["camera"], torch.log_softmax(logits / 2.0, -1))


def test_act_deterministic_value_and_logprob(policy):
    img, first = _inputs()
    state = policy.initial_state(2)
    out, _ = policy(img, first, state)
    action, logprob, value, new_state = policy.act(img, first, state, deterministic=True)
    assert action["buttons"].dtype == torch.int64 and action["camera"].shape == (2, 3)
    assert torch.equal(action["buttons"], out.logprobs["buttons"].argmax(-1))
    assert torch.equal(action["camera"], out.logprobs["camera"].argmax(-1))
    torch.testing.assert_close(logprob, policy.logprob(out.logprobs, action))
    torch.testing.assert_close(value, policy.value_head.denormalize(out.vpred))
    assert not torch.allclose(value, out.vpred)  # act returns raw units (docs/vpt_format.md §5)
    assert not logprob.requires_grad and len(new_state) == 2


def test_act_sampling_uses_generator(policy):
    img, first = _inputs(b=4, t=2)
    state = policy.initial_state(4)
    a1 = policy.act(img, first, state, generator=torch.Generator().manual_seed(5))[0]
    a2 = policy.act(img, first, state, generator=torch.Generator().manual_seed(5))[0]
    a3 = policy.act(img, first, state, generator=torch.Generator().manual_seed(6))[0]
    assert all(torch.equal(a1[k], a2[k]) for k in a1)
    assert not all(torch.equal(a1[k], a3[k]) for k in a1)


def test_sampling_frequencies_match_probabilities():
    """Gumbel-max draws follow the distribution (20000 draws, tolerance ~6 standard errors).
    Sampling is per head and size-agnostic, so the buttons head gets 12 classes here to keep
    the test small (20000 x 8641 floats would be 0.7 GB)."""
    n = 20000
    probs_c = torch.softmax(torch.tensor([2.0, 1.0, 0.0, -1.0] + [-30.0] * 117), 0)
    probs_b = torch.tensor([0.1, 0.2, 0.0, 0.3] + [0.0] * 7 + [0.4])
    logprobs = {"camera": probs_c.log().expand(1, n, 121), "buttons": probs_b.log().expand(1, n, 12)}
    action = action_heads.sample(logprobs, generator=torch.Generator().manual_seed(1))
    freq_c = torch.bincount(action["camera"].flatten(), minlength=121).float() / n
    freq_b = torch.bincount(action["buttons"].flatten(), minlength=12).float() / n
    assert (freq_c - probs_c).abs().max() < 0.02
    assert (freq_b - probs_b).abs().max() < 0.02
    assert freq_b[probs_b == 0].sum() == 0  # log p = -inf is never drawn


def test_gumbel_guard_for_u_equal_one(monkeypatch):
    """u == 1 is replaced by 0.999 (docs/vpt_format.md §6.7); without the guard every class would tie at +inf."""
    logprobs = _random_logprobs(1, 2, seed=3)
    monkeypatch.setattr(torch, "rand", lambda *shape, **kw: torch.ones(*shape, dtype=kw.get("dtype")))
    action = action_heads.sample(logprobs)
    assert torch.equal(action["buttons"], logprobs["buttons"].argmax(-1))
    assert torch.equal(action["camera"], logprobs["camera"].argmax(-1))


def test_logprob_entropy_kl_definitions():
    p = _random_logprobs(2, 3, seed=1)
    q = _random_logprobs(2, 3, seed=2)
    # Camera always included, even for button 0 (camera meta-action off; docs/vpt_format.md §6.7).
    action = {"buttons": torch.zeros(2, 3, dtype=torch.long), "camera": torch.full((2, 3), 60)}
    torch.testing.assert_close(VPTPolicy.logprob(p, action), p["buttons"][..., 0] + p["camera"][..., 60])
    ent = sum(-(p[h].exp() * p[h]).sum(-1) for h in ("buttons", "camera"))
    torch.testing.assert_close(VPTPolicy.entropy(p), ent)
    kl = sum((p[h].exp() * (p[h] - q[h])).sum(-1) for h in ("buttons", "camera"))
    torch.testing.assert_close(VPTPolicy.kl(p, q), kl)
    assert VPTPolicy.kl(p, p).abs().max() < 1e-5
    assert (VPTPolicy.kl(p, q) >= 0).all() and (VPTPolicy.kl(q, p) >= 0).all()
    assert VPTPolicy.kl(p, q).shape == (2, 3)


def test_kl_and_entropy_with_zero_probability_are_finite():
    p = _random_logprobs(1, 1, seed=4)
    p["camera"] = torch.log_softmax(torch.tensor([0.0, -float("inf")] + [0.0] * 119), 0).expand(1, 1, 121)
    assert torch.isfinite(VPTPolicy.kl(p, _random_logprobs(1, 1, seed=5))).all()
    assert torch.isfinite(VPTPolicy.entropy(p)).all()


def test_param_groups(policy):
    groups = policy.param_groups(0.05)
    decay, no_decay = groups
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    ids = [id(p) for g in groups for p in g["params"]]
    trainable = {id(p) for p in policy.parameters() if p.requires_grad}
    assert len(ids) == len(set(ids)) and set(ids) == trainable
    names = {id(p): n for n, p in policy.named_parameters()}
    no_decay_names = {names[id(p)] for p in no_decay["params"]}
    assert "net.recurrent_layer.blocks.0.r.orc_block.b_nd" in no_decay_names
    assert "net.final_ln.weight" in no_decay_names and "pi_head.buttons.linear_layer.bias" in no_decay_names
    assert all(p.dim() >= 2 for p in decay["params"])
    assert not any("normalizer" in names[i] for i in ids)
    torch.optim.AdamW(groups, lr=1e-4)  # accepted as-is


def test_gradients_flow_in_train_mode():
    p = VPTPolicy(VPTConfig.preset("tiny")).train()
    img, first = _inputs()
    out, state = p(img, first, p.initial_state(2))
    (out.logprobs["buttons"].mean() + out.vpred.mean() + out.aux_vpred.mean()).backward()
    assert p.net.img_process.cnn.stacks[0].firstconv.layer.weight.grad.abs().sum() > 0
    assert p.net.recurrent_layer.blocks[0].r.orc_block.b_nd.grad.abs().sum() > 0
    assert state[0][1].requires_grad  # K/V carry the graph until state_detach


def test_train_and_eval_forward_identical(policy):
    img, first = _inputs()
    out_eval, _ = policy(img, first, policy.initial_state(2))
    policy.train()
    try:
        out_train, _ = policy(img, first, policy.initial_state(2))
    finally:
        policy.eval()
    torch.testing.assert_close(out_eval.logprobs["buttons"], out_train.logprobs["buttons"], atol=0, rtol=0)


def test_no_aux_head():
    p = VPTPolicy(VPTConfig.preset("tiny"), aux_value_head=False)
    assert p.aux_value_head is None and len(p.state_dict()) == 102
    img, first = _inputs(b=1, t=1)
    out, _ = p(img, first, p.initial_state(1))
    assert out.aux_vpred is None


def test_initial_state(policy):
    state = policy.initial_state(3)
    assert len(state) == 2
    for mask, k, v in state:
        assert mask.dtype == torch.bool and mask.shape == (3, 8) and not mask.any()
        assert k.shape == v.shape == (3, 8, 64) and k.dtype == torch.float32 and k.abs().sum() == 0
    assert policy.initial_state(1, device="meta")[0][1].device.type == "meta"


def test_input_errors_name_the_problem(policy):
    img, first = _inputs()
    state = policy.initial_state(2)
    with pytest.raises(ValueError, match="img must be uint8"):
        policy(img.float(), first, state)
    with pytest.raises(ValueError, match="img must be uint8"):
        policy(img[:, :, :16], first, state)
    with pytest.raises(ValueError, match="first must be bool"):
        policy(img, first.long(), state)
    with pytest.raises(ValueError, match="state block 0"):
        policy(img, first, policy.initial_state(3))
    with pytest.raises(ValueError, match="state has 1 blocks"):
        policy(img, first, state[:1])
