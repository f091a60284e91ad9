"""VPTConfig: presets equal the released kwargs, strict from_model_kwargs, validation messages."""

from __future__ import annotations

import dataclasses
import json

import pytest

from vpt_rl.model.vpt_config import VPTConfig


def _manifest(reference_dir, name):
    return json.loads((reference_dir / f"manifest_{name}.json").read_text())


@pytest.mark.parametrize("name", ["tiny", "1x", "2x", "3x"])
def test_preset_equals_manifest_kwargs(reference_dir, name):
    m = _manifest(reference_dir, name)
    cfg = VPTConfig.preset(name)
    policy_kwargs, pi_head_kwargs = cfg.to_model_kwargs()
    assert policy_kwargs == m["policy_kwargs"]
    assert pi_head_kwargs == m["pi_head_kwargs"]
    assert VPTConfig.from_model_kwargs(m["policy_kwargs"], m["pi_head_kwargs"]) == cfg


def test_preset_temperatures_and_derived():
    assert [VPTConfig.preset(n).temperature for n in ("1x", "2x", "3x", "tiny")] == [1.0, 2.0, 3.0, 2.0]
    tiny = VPTConfig.preset("tiny")
    assert tiny.memory_size == 8 and tiny.img_size == (32, 32) and tiny.head_size == 16
    one = VPTConfig.preset("1x")
    assert one.memory_size == 128 and one.img_size == (128, 128) and one.cnn_chans == (64, 128, 128)
    assert set(VPTConfig.preset_names()) == {"1x", "2x", "3x", "tiny"}


def test_unknown_preset_lists_valid():
    with pytest.raises(ValueError, match="1x, 2x, 3x, tiny"):
        VPTConfig.preset("4x")


@pytest.mark.parametrize("name,temp", [("1x", 1.0), ("2x", 2.0), ("3x", 3.0)])
def test_temperature_from_matching_released_architecture(reference_dir, name, temp):
    kwargs = _manifest(reference_dir, name)["policy_kwargs"]
    assert VPTConfig.from_model_kwargs(kwargs).temperature == temp
    kwargs.pop("active_reward_monitors")  # agent.py's POLICY_KWARGS lack it (docs/vpt_format.md §1.4)
    assert VPTConfig.from_model_kwargs(kwargs).temperature == temp


def test_unmatched_architecture_needs_pi_head_kwargs(reference_dir):
    kwargs = _manifest(reference_dir, "tiny")["policy_kwargs"]
    with pytest.raises(ValueError, match="pi_head_kwargs"):
        VPTConfig.from_model_kwargs(kwargs)
    assert VPTConfig.from_model_kwargs(kwargs, {"temperature": 5}).temperature == 5.0


def test_unknown_and_missing_kwargs_named(reference_dir):
    kwargs = _manifest(reference_dir, "1x")["policy_kwargs"]
    with pytest.raises(ValueError, match="hidsizee"):
        VPTConfig.from_model_kwargs({**kwargs, "hidsizee": 3})
    del kwargs["timesteps"]
    with pytest.raises(ValueError, match="missing.*timesteps"):
        VPTConfig.from_model_kwargs(kwargs)
    with pytest.raises(ValueError, match="pi_head_kwargs"):
        VPTConfig.from_model_kwargs(_manifest(reference_dir, "1x")["policy_kwargs"], {"temp": 1.0})


@pytest.mark.parametrize(
    "change,field",
    [
        ({"recurrence_type": "lstm"}, "recurrence_type"),
        ({"attention_mask_style": "none"}, "attention_mask_style"),
        ({"attention_heads": 7}, "hidsize"),
        ({"timesteps": 256}, "attention_memory_size"),
        ({"use_pre_lstm_ln": True}, "use_pre_lstm_ln"),
        ({"img_shape": (32, 32, 4)}, "img_shape"),
        ({"impala_chans": ()}, "impala_chans"),
        ({"init_norm_kwargs": {"batch_norm": True, "group_norm_groups": 1}}, "init_norm_kwargs"),
        ({"impala_kwargs": {"post_pool_groups": 3}}, "impala_kwargs"),
        ({"temperature": 0.0}, "temperature"),
        ({"n_recurrence_layers": True}, "n_recurrence_layers"),
    ],
)
def test_validation_names_field(change, field):
    with pytest.raises(ValueError, match=f"VPTConfig.{field}"):
        dataclasses.replace(VPTConfig.preset("tiny"), **change)


def test_to_model_kwargs_round_trip():
    cfg = dataclasses.replace(VPTConfig.preset("tiny"), hidsize=32, temperature=1.5)
    assert VPTConfig.from_model_kwargs(*cfg.to_model_kwargs()) == cfg
    policy_kwargs, _ = cfg.to_model_kwargs()
    assert isinstance(policy_kwargs["img_shape"], list)
