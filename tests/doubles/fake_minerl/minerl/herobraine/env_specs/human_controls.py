"""Human-control spec: pov at `resolution` (width, height) and the 24-key action space.

There is no ``frameskip`` setting: like any unknown keyword, it goes to `EnvSpec`, which drops
it."""

from __future__ import annotations

from typing import Any

from minerl.herobraine.env_spec import EnvSpec


class HumanControlEnvSpec(EnvSpec):
    def __init__(
        self,
        name: str,
        *args: Any,
        resolution=(640, 360),
        guiscale_range=(1, 1),
        gamma_range=(2.0, 2.0),
        fov_range=(70.0, 70.0),
        cursor_size_range=(16, 16),
        **kwargs: Any,
    ) -> None:
        self.resolution = resolution
        self.guiscale_range = guiscale_range
        self.gamma_range = gamma_range
        self.fov_range = fov_range
        self.cursor_size_range = cursor_size_range
        super().__init__(name, *args, **kwargs)
