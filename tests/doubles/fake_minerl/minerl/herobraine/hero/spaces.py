"""MineRL's space classes: old-gym spaces with `no_op()`."""

from __future__ import annotations

import numpy as np
from gym import spaces


class Discrete(spaces.Discrete):
    def no_op(self) -> int:
        return 0


class Box(spaces.Box):
    def no_op(self) -> np.ndarray:
        return np.zeros(self.shape, dtype=self.dtype)


class Dict(spaces.Dict):
    def no_op(self) -> dict:
        return {k: s.no_op() for k, s in self.spaces.items()}
