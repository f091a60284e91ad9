from __future__ import annotations

from minerl.herobraine.env_specs.human_controls import HumanControlEnvSpec


class ObtainDiamondShovelEnvSpec(HumanControlEnvSpec):
    """pov + inventory, 18,000 steps, its own reward the first time each rung of its 13-item
    ladder is obtained, and the end of the episode when the diamond shovel is (wrappers.py)."""

    has_inventory = True
    diamond_shovel_ladder = True
    steps = 18000

    def __init__(self) -> None:
        super().__init__(name="MineRLObtainDiamondShovel-v0", max_episode_steps=self.steps)
