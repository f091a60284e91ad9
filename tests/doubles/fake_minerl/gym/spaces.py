"""Fake old-gym spaces (only what MineRL's spaces and the adapter touch)."""

from __future__ import annotations

from typing import Any

import numpy as np


class Space:
    shape: tuple = ()
    dtype: Any = None
    seeded_with: int | None = None  # what the last `seed()` got (the tests read it)

    def seed(self, seed: int | None = None) -> list:
        """Seed sampling (MineRL's env `seed()` seeds its spaces too); the fake only records it."""
        self.seeded_with = seed
        return [seed]


class Discrete(Space):
    def __init__(self, n: int) -> None:
        self.n = n
        self.dtype = np.int64

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Discrete) and other.n == self.n


class Box(Space):
    def __init__(self, low: float, high: float, shape: tuple, dtype: Any = np.float32) -> None:
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.low = np.full(self.shape, low, dtype=self.dtype)
        self.high = np.full(self.shape, high, dtype=self.dtype)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Box)
            and other.shape == self.shape
            and np.array_equal(other.low, self.low)
            and np.array_equal(other.high, self.high)
        )


class Dict(Space):
    def __init__(self, spaces: dict[str, Space]) -> None:
        self.spaces = dict(sorted(spaces.items()))

    def __getitem__(self, key: str) -> Space:
        return self.spaces[key]

    def keys(self):
        return self.spaces.keys()

    def seed(self, seed: int | None = None) -> list:
        super().seed(seed)
        for space in self.spaces.values():
            space.seed(seed)
        return [seed]
