"""Setting up a behavioural-cloning run: the architecture (from a `.model` file, the `--init`
weights' shapes or the preset), a reproducible fresh policy, and the seeded episode split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vpt_rl.errors import VPTRLError
from vpt_rl.model.config import VPTConfig
from vpt_rl.model.policy import VPTPolicy
from vpt_rl.model.weights import WeightsError, read_state_dict

__all__ = ["BCSetupError", "build_policy", "model_config_for", "resolve_device", "split_episodes"]


class BCSetupError(VPTRLError, ValueError):
    """A BC run cannot start as asked (too few episodes for the split, a resume that does not match
    the run: its world size, its training episodes, its prior); the message names what differs."""


def resolve_device(name: str) -> torch.device:
    """The torch device for a config value; auto means cuda when available, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def model_config_for(init_path: str | None, model_file: str | None, preset: str) -> tuple[VPTConfig, str]:
    """The architecture to build, and a line saying where it came from: the ``.model`` file's
    kwargs, else the preset whose shapes the ``--init`` file matches, else ``preset``."""
    if model_file is not None:
        from vpt_rl.model.model_file import read_model_file

        policy_kwargs, pi_head_kwargs = read_model_file(model_file)
        try:
            model_cfg = VPTConfig.from_model_kwargs(policy_kwargs, pi_head_kwargs or None)
        except ValueError as e:
            raise WeightsError(f"{model_file}: {e}") from None
        return model_cfg, f"architecture from {model_file}"
    if init_path is not None:
        from vpt_rl.model.detect import detect_preset

        name, reason = detect_preset({k: tuple(v.shape) for k, v in read_state_dict(init_path).items()})
        if name is None:
            raise WeightsError(f"{init_path}: matches no preset ({reason}); pass --model-file FILE.model")
        return VPTConfig.preset(name), f"architecture: preset {name}, detected from the shapes in {init_path}"
    return VPTConfig.preset(preset), f"architecture: preset {preset} (config model.preset)"


def build_policy(model_cfg: VPTConfig, seed: int, device: torch.device) -> VPTPolicy:
    """A BC policy (no aux head), initialised from ``seed`` so a fresh one can be rebuilt exactly."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        policy = VPTPolicy(model_cfg, aux_value_head=False)
    finally:
        torch.random.set_rng_state(generator_state)  # no global RNG change leaks out of here
    return policy.to(device)


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
