"""Fake env specs and their gym registration (ids and step limits as in docs/environments.md)."""

from __future__ import annotations


def register_all() -> None:
    import gym

    from minerl.herobraine.env_specs.basalt_specs import BASALT_SPECS
    from minerl.herobraine.env_specs.human_survival_specs import HumanSurvival
    from minerl.herobraine.env_specs.obtain_specs import ObtainDiamondShovelEnvSpec

    entry = "minerl.herobraine.env_specs:_make_from_spec"
    gym.register("MineRLHumanSurvival-v0", entry_point=entry, kwargs={"spec_cls": HumanSurvival})
    for spec_cls in [*BASALT_SPECS, ObtainDiamondShovelEnvSpec]:
        spec = spec_cls()
        gym.register(
            spec.name,
            entry_point=entry,
            kwargs={"spec_cls": spec_cls},
            max_episode_steps=spec.max_episode_steps,
        )


def _make_from_spec(spec_cls):
    return spec_cls().make()
