"""Checkpoints: `runs/NAME/checkpoints/step_{frames:012d}.weights` (plain 139-key state dict) +
`.state.pt` (everything else exact resume needs), `latest.weights` / `latest.state.pt`, pruning.

Every file is written atomically (temp file + rename, `vpt_rl.atomic`), in the order step weights
-> step state -> latest weights -> latest state -> prune, so a kill at any point leaves a
consistent pair: `latest.state.pt` names the step weights file it belongs to, and resume loads that
pair (falling back to the newest complete `step_*` pair).
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vpt_rl.atomic import atomic_torch_save

__all__ = [
    "CheckpointError",
    "capture_rng",
    "load_latest",
    "load_state",
    "prune",
    "restore_rng",
    "save_checkpoint",
    "step_name",
]

STATE_VERSION = 1
_STEP_RE = re.compile(r"^step_(\d{12})\.state\.pt$")


class CheckpointError(RuntimeError):
    """A checkpoint is missing or unreadable; the message names the file."""


def step_name(frames: int) -> str:
    """``step_000000004096`` for 4096 frames."""
    return f"step_{frames:012d}"


def save_checkpoint(
    ckpt_dir: str | os.PathLike, frames: int, save_weights_fn, state: dict, keep_last: int
) -> Path:
    """Write the step pair and the latest pair atomically, then prune old step pairs.

    ``save_weights_fn(path)`` writes the policy's weights (atomically: `vpt_rl.save_weights`);
    ``state`` is a dict of tensors/plain data (optimiser, counters, RNG, env and memory states).
    Returns the step weights path.
    """
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    name = step_name(frames)
    weights = ckpt_dir / f"{name}.weights"
    state = {**state, "version": STATE_VERSION, "frames": frames, "weights_file": weights.name}
    save_weights_fn(weights)
    atomic_torch_save(state, ckpt_dir / f"{name}.state.pt")
    save_weights_fn(ckpt_dir / "latest.weights")
    atomic_torch_save(state, ckpt_dir / "latest.state.pt")
    prune(ckpt_dir, keep_last)
    return weights


def _step_pairs(ckpt_dir: Path) -> list[tuple[int, Path]]:
    pairs = []
    for p in ckpt_dir.glob("step_*.state.pt"):
        m = _STEP_RE.match(p.name)
        if m and (ckpt_dir / p.name.replace(".state.pt", ".weights")).is_file():
            pairs.append((int(m.group(1)), p))
    return sorted(pairs)


def prune(ckpt_dir: str | os.PathLike, keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` step pairs (0 = keep all); returns what was removed."""
    if keep_last <= 0:
        return []
    removed = []
    for _, state_path in _step_pairs(Path(ckpt_dir))[:-keep_last]:
        for p in (state_path, state_path.with_name(state_path.name.replace(".state.pt", ".weights"))):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def load_latest(ckpt_dir: str | os.PathLike) -> tuple[dict, Path]:
    """(training state, weights path) of the newest complete checkpoint in ``ckpt_dir``.

    `latest.state.pt` names its weights file; if it is unreadable (or its weights are gone) the
    newest complete `step_*` pair is used instead.
    """
    ckpt_dir = Path(ckpt_dir)
    latest = ckpt_dir / "latest.state.pt"
    if latest.is_file():
        try:
            state = load_state(latest)
            weights = ckpt_dir / state["weights_file"]
            if weights.is_file():
                return state, weights
        except CheckpointError:
            pass
    for _, state_path in reversed(_step_pairs(ckpt_dir)):
        try:
            state = load_state(state_path)
        except CheckpointError:
            continue
        return state, ckpt_dir / state["weights_file"]
    raise CheckpointError(
        f"no readable checkpoint in {ckpt_dir} (expected latest.state.pt or step_*.state.pt)"
    )


def load_state(path: str | os.PathLike) -> dict:
    """Read a `.state.pt` written by `save_checkpoint`. weights_only=False because it holds
    numpy RNG and env states (plain pickles of this project's own objects): never point this at
    untrusted files (weights files, which users do exchange, are read with weights_only=True)."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"{path}: cannot read the training state: {e}") from e
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise CheckpointError(f"{path}: not a vpt_rl training state (version {STATE_VERSION})")
    return state


def capture_rng(generators: dict[str, torch.Generator] | None = None) -> dict[str, Any]:
    """RNG states of python, numpy, torch (CPU and CUDA) and the named torch generators."""
    out: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "generators": {k: g.get_state() for k, g in (generators or {}).items()},
    }
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def restore_rng(rng: dict[str, Any], generators: dict[str, torch.Generator] | None = None) -> None:
    """Inverse of `capture_rng` (the named generators are set in place)."""
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    for name, g in (generators or {}).items():
        if name not in rng["generators"]:
            raise CheckpointError(f"training state has no RNG state for generator {name!r}")
        g.set_state(rng["generators"][name])
