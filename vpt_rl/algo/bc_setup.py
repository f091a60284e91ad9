"""Setting up a behavioural-cloning run: the architecture (from a `.model` file, the `--init`
weights' shapes or the preset) and the seeded episode split. The device, the fresh policy and the
prior come from the setup layer both trainers share (`vpt_rl.algo.policy_init`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vpt_rl.errors import VPTRLError
from vpt_rl.model.architecture import resolve_architecture
from vpt_rl.model.vpt_config import VPTConfig
from vpt_rl.model.weights import read_state_dict

__all__ = ["BCSetupError", "model_config_for", "split_episodes"]


class BCSetupError(VPTRLError, ValueError):
    """A BC run cannot start as asked (too few episodes for the split, a resume that does not match
    the run: its world size, its training episodes, its prior); the message names what differs."""


def model_config_for(init_path: str | None, model_file: str | None, preset: str) -> tuple[VPTConfig, str]:
    """The architecture to build, and a line saying where it came from: the ``.model`` file's
    kwargs, else the preset whose shapes the ``--init`` file matches, else ``preset``
    (`vpt_rl.model.architecture.resolve_architecture`, one rule for every command)."""
    shapes = None
    if init_path is not None:
        shapes = {k: tuple(v.shape) for k, v in read_state_dict(init_path).items()}
    arch = resolve_architecture(model_file, shapes, preset, source=str(init_path))
    return arch.config, arch.how


def split_episodes(stems: list[Path], val_fraction: float, min_val: int, seed: int) -> tuple[list, list]:
    """(train stems, validation stems): a seeded split by episode."""
    n_val = max(min_val, round(val_fraction * len(stems))) if val_fraction > 0 or min_val > 0 else 0
    if len(stems) - n_val < 1:
        raise BCSetupError(
            f"{len(stems)} episode(s) cannot give {n_val} validation episode(s) and at least one training "
            "episode: record more, or set data.min_val_episodes=0 and data.val_fraction=0"
        )
    order = np.random.default_rng(seed).permutation(len(stems))
    val = sorted(stems[i] for i in order[:n_val])
    train = sorted(stems[i] for i in order[n_val:])
    return train, val
