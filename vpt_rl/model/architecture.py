"""Which network to build, for every command that builds one (`train_ppo.py`, `train_bc.py`,
`vpt-rl export`): the kwargs of an official `.model` file, else the released preset whose shapes a
weights file matches, else a configured preset (docs/vpt_format.md §1.3-1.4 for the kwargs,
docs/weights.md for the detection)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NamedTuple

from vpt_rl.model.detect import detect_preset
from vpt_rl.model.model_file import read_model_file
from vpt_rl.model.vpt_config import VPTConfig
from vpt_rl.model.weights_file import WeightsError

__all__ = ["Architecture", "resolve_architecture"]


class Architecture(NamedTuple):
    """What `resolve_architecture` found: the config, a line for the log, and a short label
    (the `.model` path or ``preset NAME``)."""

    config: VPTConfig
    how: str
    label: str


def resolve_architecture(
    model_file: str | os.PathLike | None,
    shapes: Mapping[str, tuple[int, ...]] | None,
    preset: str,
    source: str = "the weights",
) -> Architecture:
    """The architecture, a line saying where it came from, and a short label.

    ``model_file``: an official `.model` file, whose kwargs decide; else ``shapes`` (a weights
    file's key -> shape, named ``source`` in messages) must match one released preset; else
    ``preset``. A `.model` file that cannot be read or a weights file that matches no preset is a
    `WeightsError` naming the file.
    """
    if model_file is not None:
        policy_kwargs, pi_head_kwargs = read_model_file(model_file)
        try:
            config = VPTConfig.from_model_kwargs(policy_kwargs, pi_head_kwargs or None)
        except ValueError as e:
            raise WeightsError(f"{model_file}: {e}") from None
        return Architecture(config, f"architecture from {model_file}", str(model_file))
    if shapes is not None:
        name, reason = detect_preset(dict(shapes))
        if name is None:
            raise WeightsError(
                f"{source}: cannot tell the architecture ({reason}); pass --model-file X.model"
            )
        how = f"architecture detected from the shapes in {source}: preset {name} ({reason})"
        return Architecture(VPTConfig.preset(name), how, f"preset {name}")
    return Architecture(
        VPTConfig.preset(preset), f"fresh policy of preset {preset} (model.preset)", f"preset {preset}"
    )
