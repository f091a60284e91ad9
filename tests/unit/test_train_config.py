"""TrainConfig: base.yaml equals the dataclass defaults, layering order, dotted overrides, strict
errors naming the field, derived values, save/read round trip, the shipped configs load."""

from __future__ import annotations

from pathlib import Path

import pytest

from vpt_rl.config import (
    AUTO_ENT_COEF_FRESH,
    ConfigError,
    TrainConfig,
    load_config,
    read_config,
    save_config,
)
from vpt_rl.config.lib import read_yaml, to_dict

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_base_yaml_is_every_default():
    assert read_yaml(CONFIGS / "base.yaml") == to_dict(TrainConfig())


@pytest.mark.parametrize("name", ["base", "smoke", "treechop_tiny", "vpt_diamond"])
def test_shipped_configs_load(name):
    cfg = load_config([CONFIGS / f"{name}.yaml"])
    assert isinstance(cfg, TrainConfig)


def test_vpt_diamond_has_the_paper_values():
    cfg = load_config([CONFIGS / "vpt_diamond.yaml"])
    p = cfg.ppg
    assert (p.lr, p.weight_decay, p.gamma, p.gae_lambda, p.clip_eps, p.max_grad_norm) == (
        2e-5,
        0.04,
        0.999,
        0.95,
        0.2,
        5.0,
    )
    assert (p.segment_len, p.kl_coef, p.kl_decay, p.kl_decay_floor) == (128, 0.2, 0.9995, 0.0)
    assert cfg.env.reward_table == "vpt_diamond"
    assert cfg.env.kwargs["max_episode_steps"] == 12000
    assert cfg.model.preset == "1x"


def test_layers_and_overrides_apply_in_order(tmp_path):
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text("seed: 3\nppg:\n  lr: 1.0e-3\n  gamma: 0.9\nenv:\n  kwargs: {max_episode_steps: 50}\n")
    b.write_text("ppg:\n  lr: 2e-4\nenv:\n  kwargs: {log_break_ticks: 2}\n")
    cfg = load_config([a, b], ["ppg.gamma=0.5", "env.num_envs=8", "env.kwargs.tree_density=0.3"])
    assert cfg.seed == 3
    assert cfg.ppg.lr == pytest.approx(2e-4)  # later file wins; YAML 1.1 '2e-4' string accepted
    assert cfg.ppg.gamma == 0.5  # override wins over files
    assert cfg.env.num_envs == 8
    assert cfg.env.kwargs == {"max_episode_steps": 50, "log_break_ticks": 2, "tree_density": 0.3}
    assert cfg.ppg.clip_eps == TrainConfig().ppg.clip_eps  # untouched default


@pytest.mark.parametrize(
    "override, needle",
    [
        ("ppg.lrr=1", "ppg.lrr"),
        ("nosuch=1", "nosuch"),
        ("ppg.lr=fast", "ppg.lr"),
        ("env.num_envs=2.5", "env.num_envs"),
        ("ppg.norm_adv=3", "ppg.norm_adv"),
        ("ppg.adv_std=ewma", "ppg.adv_std"),
        ("ppg.adv_std_frames=0", "ppg.adv_std_frames"),
        ("ppg.lr_schedule=cosine", "ppg.lr_schedule"),
        ("ppg.gamma=1.5", "ppg.gamma"),
        ("ppg.kl_decay_floor=2", "ppg.kl_decay_floor"),
        ("ppg.zero_init_value=maybe", "ppg.zero_init_value"),
        ("model.preset=4x", "model.preset"),
        ("ppg.n_minibatches=64", "ppg.n_minibatches"),
        ("device=tpu", "device"),
    ],
)
def test_bad_overrides_name_the_field(override, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        load_config([], [override])


def test_unknown_key_in_file_names_file_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("ppg:\n  clip_epsilon: 0.1\n")
    with pytest.raises(ConfigError) as e:
        load_config([bad])
    assert "bad.yaml" in str(e.value) and "ppg.clip_epsilon" in str(e.value)


def test_union_fields_accept_both_forms():
    cfg = load_config(
        [], ["ppg.ent_coef=0.05", "ppg.zero_init_value=false", "env.reward_table={log: [1.0, 3]}"]
    )
    assert cfg.ppg.ent_coef == 0.05 and cfg.ppg.zero_init_value is False
    assert cfg.env.reward_table == {"log": [1.0, 3]}
    assert cfg.ppg.entropy_coef(has_prior=True) == 0.05
    auto = TrainConfig().ppg
    assert auto.entropy_coef(has_prior=True) == 0.0
    assert auto.entropy_coef(has_prior=False) == AUTO_ENT_COEF_FRESH


def test_lr_auto_fine_tunes_slower_than_it_learns_from_scratch():
    """ "auto" is 1e-3 fresh and 3e-4 with --init; a number is kept as given; the optimiser and the
    trainer refuse an unresolved "auto"."""
    from vpt_rl.algo.optim import make_optimizer
    from vpt_rl.config.auto import AUTO_LR_FRESH, AUTO_LR_PRIOR
    from vpt_rl.model.policy import VPTPolicy
    from vpt_rl.model.vpt_config import VPTConfig

    auto = load_config([], []).ppg
    assert auto.lr == "auto" and (AUTO_LR_FRESH, AUTO_LR_PRIOR) == (1e-3, 3e-4)
    assert auto.resolve(has_prior=False).lr == AUTO_LR_FRESH
    assert auto.resolve(has_prior=True).lr == AUTO_LR_PRIOR
    assert load_config([], ["ppg.lr=5e-5"]).ppg.resolve(has_prior=True).lr == 5e-5
    with pytest.raises(ConfigError, match="ppg.lr"):
        load_config([], ["ppg.lr=0"])
    policy = VPTPolicy(VPTConfig.preset("tiny"))
    with pytest.raises(ValueError, match="resolved"):
        make_optimizer(policy, auto)
    groups = make_optimizer(policy, auto.resolve(has_prior=True)).param_groups
    assert {g["lr"] for g in groups} == {AUTO_LR_PRIOR}  # head scale 1 with --init


def test_resolve_decides_every_auto_field_and_keeps_given_values():
    """`unresolved` names the fields still "auto"; `resolve` leaves none, by whether there is a
    prior, and keeps (typed) what the user gave; the optimiser's refusal names what is left."""
    from vpt_rl.algo.optim import make_optimizer
    from vpt_rl.model.policy import VPTPolicy
    from vpt_rl.model.vpt_config import VPTConfig

    auto = load_config([], []).ppg
    assert auto.unresolved() == ["lr", "ent_coef", "pi_head_lr_scale", "detach_value_input"]
    fresh, tuned = auto.resolve(has_prior=False), auto.resolve(has_prior=True)
    assert fresh.unresolved() == [] and tuned.unresolved() == []
    assert (fresh.ent_coef, fresh.pi_head_lr_scale, fresh.detach_value_input) == (
        AUTO_ENT_COEF_FRESH,
        3.0,
        False,
    )
    assert (tuned.ent_coef, tuned.pi_head_lr_scale, tuned.detach_value_input) == (0.0, 1.0, True)
    given = load_config([], ["ppg.ent_coef=0.02", "ppg.detach_value_input=false", "ppg.pi_head_lr_scale=2"])
    assert given.ppg.unresolved() == ["lr"]
    kept = given.ppg.resolve(has_prior=True)
    assert (kept.ent_coef, kept.detach_value_input, kept.pi_head_lr_scale) == (0.02, False, 2.0)
    assert isinstance(kept.pi_head_lr_scale, float)
    with pytest.raises(ValueError, match=r"auto: \['lr'\]"):
        make_optimizer(VPTPolicy(VPTConfig.preset("tiny")), given.ppg)


def test_derived_values():
    cfg = load_config([], ["env.num_envs=3", "ppg.n_minibatches=1", "ppg.segment_len=10", "total_frames=65"])
    assert cfg.frames_per_iter == 30
    assert cfg.num_iterations == 3


def test_save_and_read_round_trip(tmp_path):
    cfg = load_config([], ["ppg.lr=2e-5", "env.kwargs.max_episode_steps=7", "run_name=x"])
    save_config(cfg, tmp_path / "config.yaml")
    assert read_config(tmp_path / "config.yaml") == cfg
    # a saved config is a valid base layer for --resume overrides
    again = load_config([], ["total_frames=99999"], base=read_yaml(tmp_path / "config.yaml"))
    assert again.ppg.lr == pytest.approx(2e-5) and again.total_frames == 99999


def test_overlap_auto_is_on_for_gpu_policies_only():
    from vpt_rl.config import EnvConfig

    assert EnvConfig().use_overlap("cuda") and not EnvConfig().use_overlap("cpu")
    assert EnvConfig(overlap=True).use_overlap("cpu")
    assert not EnvConfig(overlap=True, num_envs=1).use_overlap("cuda")  # nothing to overlap with
    assert not EnvConfig(overlap=False).use_overlap("cuda")
