from __future__ import annotations

from minerl.herobraine.env_specs.human_controls import HumanControlEnvSpec


class _Basalt(HumanControlEnvSpec):
    """BASALT task: pov only, ESC ends the episode, no reward."""

    esc_ends_episode = True
    task_name = ""
    steps = 0

    def __init__(self) -> None:
        super().__init__(name=self.task_name, max_episode_steps=self.steps)


class FindCaveEnvSpec(_Basalt):
    task_name, steps = "MineRLBasaltFindCave-v0", 3600


class MakeWaterfallEnvSpec(_Basalt):
    task_name, steps = "MineRLBasaltMakeWaterfall-v0", 6000


class PenAnimalsVillageEnvSpec(_Basalt):
    task_name, steps = "MineRLBasaltCreateVillageAnimalPen-v0", 6000


class VillageMakeHouseEnvSpec(_Basalt):
    task_name, steps = "MineRLBasaltBuildVillageHouse-v0", 14400


BASALT_SPECS = [FindCaveEnvSpec, MakeWaterfallEnvSpec, PenAnimalsVillageEnvSpec, VillageMakeHouseEnvSpec]
