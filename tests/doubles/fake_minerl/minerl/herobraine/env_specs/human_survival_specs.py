from __future__ import annotations

from typing import Any

from minerl.herobraine.env_specs.human_controls import HumanControlEnvSpec


class HumanSurvival(HumanControlEnvSpec):
    """Open-world survival: pov, inventory and more observations; no reward, no step limit."""

    has_inventory = True
    has_survival_extras = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("name", "MineRLHumanSurvival-v0")
        super().__init__(*args, **kwargs)
