from __future__ import annotations

from minerl.herobraine.env_specs.human_controls import HumanControlEnvSpec


class ObtainDiamondShovelEnvSpec(HumanControlEnvSpec):
    """pov + inventory, 18,000 steps, its own reward the first time each ladder item is obtained."""

    has_inventory = True
    reward_ladder = {"log": 1.0, "planks": 2.0, "diamond": 1024.0, "diamond_shovel": 2048.0}

    def __init__(self) -> None:
        super().__init__(name="MineRLObtainDiamondShovel-v0", max_episode_steps=18000)
