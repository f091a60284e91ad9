"""Strict weight loading (docs/weights.md "The two modes") and its strictness: errors leave the policy
untouched. Files, round trips and reports are in test_weights_files.py."""

from __future__ import annotations

import pytest
import torch
import weights_helpers  # tests/unit, on sys.path under pytest's default import mode
from weights_helpers import AUX_KEYS, assert_unchanged, snapshot

from vpt_rl.model.weights import (
    WeightsError,
    check_weights,
    load_weights,
)

# the fixtures, for the tests below
detfill, shapes, make_policy = weights_helpers.detfill, weights_helpers.shapes, weights_helpers.make_policy
sd134, sd139 = weights_helpers.sd134, weights_helpers.sd139


# ------------------------------------------------------------------ the docs/weights.md "The two modes"


def test_rl_mode_with_rl_checkpoint_loads_everything(make_policy, sd139):
    policy = make_policy(aux=True)
    params_before = {k: id(p) for k, p in policy.named_parameters()}
    report = load_weights(policy, sd139, mode="rl")
    assert report.ok and report.source == "<state dict>" and report.mode == "rl"
    assert report.loaded == list(policy.state_dict()) and len(report.loaded) == 107
    assert report.missing == report.unexpected == report.ignored == report.initialized == []
    for k, v in policy.state_dict().items():
        assert torch.equal(v, sd139[k]), k
    # parameters kept their identity (optimisers may hold them) and their requires_grad flags
    assert {k: id(p) for k, p in policy.named_parameters()} == params_before
    assert not policy.value_head.normalizer.running_mean.requires_grad
    assert policy.value_head.linear.weight.requires_grad


def test_rl_mode_without_aux_keys_initialises_aux_head(make_policy, sd134):
    policy = make_policy(aux=True)
    with torch.no_grad():
        for p in policy.aux_value_head.parameters():
            p.fill_(7.0)  # stale values that a fresh init must replace
    report = load_weights(policy, sd134, mode="rl")
    assert report.ok and report.initialized == AUX_KEYS
    assert len(report.loaded) == 102 and report.ignored == []
    assert any("freshly initialised" in n for n in report.notes)
    aux = policy.aux_value_head
    bound = 1 / aux.linear.in_features**0.5  # nn.Linear default init range (docs/vpt_format.md §4: heads)
    assert aux.linear.weight.abs().max() <= bound and aux.linear.weight.abs().max() > 0
    assert aux.linear.bias.abs().max() <= bound
    for name in ("running_mean", "running_mean_sq", "debiasing_term"):
        assert torch.equal(getattr(aux.normalizer, name), torch.zeros_like(getattr(aux.normalizer, name)))


def test_bc_mode_ignores_aux_keys(make_policy, sd139):
    policy = make_policy(aux=False)
    report = load_weights(policy, sd139, mode="bc")
    assert report.ok and report.ignored == AUX_KEYS
    assert report.loaded == list(policy.state_dict()) and report.initialized == []
    for k, v in policy.state_dict().items():
        assert torch.equal(v, sd139[k]), k


def test_bc_mode_loads_official_file_whole(make_policy, sd134):
    policy = make_policy(aux=False)
    report = load_weights(policy, sd134, mode="bc")
    assert report.ok and len(report.loaded) == 102
    assert report.missing == report.unexpected == report.ignored == report.initialized == []


@pytest.mark.parametrize(
    "mode, aux, needed", [("rl", False, "aux_value_head=True"), ("bc", True, "aux_value_head=False")]
)
def test_mode_that_does_not_fit_the_policy_is_an_error(make_policy, sd139, mode, aux, needed):
    policy = make_policy(aux=aux)
    before = snapshot(policy)
    with pytest.raises(WeightsError, match=needed):
        load_weights(policy, sd139, mode=mode)
    assert_unchanged(policy, before)
    with pytest.raises(WeightsError, match="mode must be 'rl' or 'bc'"):
        load_weights(policy, sd139, mode="ppo")


def test_zero_value_head(make_policy, sd134):
    policy = make_policy(aux=True)
    report = load_weights(policy, sd134, mode="rl", zero_value_head=True)
    assert report.ok
    value_keys = [k for k in policy.state_dict() if k.startswith("value_head.")]
    assert report.initialized == AUX_KEYS + value_keys
    assert not set(value_keys) & set(report.loaded)
    assert any("zero_value_head" in n for n in report.notes)
    for k in value_keys:
        assert not policy.state_dict()[k].any(), k
    assert torch.equal(
        policy.pi_head.buttons.linear_layer.weight, sd134["pi_head.buttons.linear_layer.weight"]
    )


# ------------------------------------------------------------------ strictness: errors leave the policy untouched


def _edit(sd, drop=(), add=None, rename=None):
    out = {rename(k) if rename else k: v for k, v in sd.items() if k not in drop}
    out.update(add or {})
    return out


@pytest.mark.parametrize(
    "edit, patterns",
    [
        (lambda sd: _edit(sd, drop=["net.final_ln.weight"]), [r"missing \(1\): net\.final_ln\.weight"]),
        (
            lambda sd: _edit(sd, add={"net.extra.weight": torch.zeros(3)}),
            [r"unexpected \(1\): net\.extra\.weight"],
        ),
        (
            lambda sd: _edit(sd, add={"value_head.linear.weight": torch.zeros(1, 32)}),
            [r"value_head\.linear\.weight: expected shape \(1, 64\), file has \(1, 32\)"],
        ),
        (
            lambda sd: _edit(sd, add={"net.final_ln.bias": torch.zeros(64, dtype=torch.int64)}),
            [r"net\.final_ln\.bias: dtype int64 is not floating point"],
        ),
        (
            lambda sd: _edit(sd, add={"net.final_ln.bias": [0.0] * 64}),
            [r"net\.final_ln\.bias: not a tensor \(list\)"],
        ),
        (
            lambda sd: _edit(sd, rename=lambda k: k[len("net.") :] if k.startswith("net.") else k),
            [r"missing \(93\)", r"unexpected \(93\)", r"lack the 'net\.' prefix"],
        ),
        (
            lambda sd: _edit(sd, rename=lambda k: "module." + k),
            [r"missing \(102\)", r"unexpected \(107\)", r"extra 'module\.' prefix"],
        ),
        (
            lambda sd: _edit(sd, drop=["aux_value_head.linear.bias"]),
            [r"missing \(1\): aux_value_head\.linear\.bias"],
        ),
    ],
    ids=[
        "missing",
        "unknown",
        "shape",
        "int-dtype",
        "non-tensor",
        "no-net-prefix",
        "module-prefix",
        "partial-aux",
    ],
)
def test_bad_state_dicts_raise_and_change_nothing(make_policy, sd139, edit, patterns):
    policy = make_policy(aux=True)
    load_weights(policy, sd139, mode="rl")
    before = snapshot(policy)
    bad = edit(sd139)
    with pytest.raises(WeightsError) as info:
        load_weights(policy, bad, mode="rl")
    message = str(info.value)
    assert message.startswith("<state dict>: does not fit the policy (mode 'rl'); nothing was loaded")
    for pattern in patterns:
        assert __import__("re").search(pattern, message), (pattern, message)
    assert_unchanged(policy, before)
    assert not check_weights(policy, bad, mode="rl").ok


def test_partial_aux_set_in_bc_mode_is_unexpected(make_policy, sd139):
    bad = _edit(sd139, drop=["aux_value_head.linear.bias"])
    report = check_weights(make_policy(aux=False), bad, mode="bc")
    assert not report.ok and report.unexpected == [k for k in AUX_KEYS if k != "aux_value_head.linear.bias"]
    assert any("only 4 of the 5" in n for n in report.notes)


def test_aux_keys_must_have_value_head_shapes_in_bc_mode(make_policy, sd139):
    bad = _edit(sd139, add={"aux_value_head.linear.weight": torch.zeros(2, 64)})
    with pytest.raises(WeightsError, match=r"aux_value_head\.linear\.weight: expected shape \(1, 64\)"):
        load_weights(make_policy(aux=False), bad, mode="bc")


def test_half_precision_file_is_converted_and_noted(make_policy, sd134):
    half = {k: v.half() for k, v in sd134.items()}
    policy = make_policy(aux=False)
    report = load_weights(policy, half, mode="bc")
    assert any("102 tensors converted from float16" in n for n in report.notes)
    assert policy.net.final_ln.weight.dtype == torch.float32
    assert torch.equal(policy.net.final_ln.weight, half["net.final_ln.weight"].float())
