"""Configuration for `train_bc.py` (behavioural cloning on VPT-format demonstrations).

Same machinery as `vpt_rl.config.ppg` (strict dataclasses, YAML layers, dotted overrides):
`load_bc_config([configs/bc.yaml], ["bc.lr=1e-4"])`. The dataclass defaults are the defaults;
`configs/bc.yaml` repeats them for reading.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from vpt_rl.config.common import CkptConfig, ModelConfig, PerfConfig
from vpt_rl.config.lib import ConfigError, load_layers, read_config_file, save_yaml

__all__ = [
    "BCConfig",
    "BCDataConfig",
    "BCLogConfig",
    "BCOptimConfig",
    "load_bc_config",
    "read_bc_config",
    "save_bc_config",
]


def _check(section: str, ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(f"{section}.{message}")


@dataclass
class BCDataConfig:
    """Where the demonstrations are and how they are read (`vpt_rl.data.demos`)."""

    dir: str | None = None
    """Folder of NAME.mp4 + NAME.jsonl episodes (set by --data)."""
    val_fraction: float = 0.1
    """Fraction of episodes held out for the validation loss (split by episode, seeded)."""
    min_val_episodes: int = 1
    """At least this many validation episodes (0 = allow no validation split)."""
    drop_null: bool = True
    """Drop null-action frames, as the VPT paper did for BC."""
    fix_stuck_attack: bool = True
    """Apply the released loader's stuck-attack fix at episode starts (docs/vpt_format.md §8)."""
    cache: bool = True
    """Keep decoded training episodes in memory (false: decode each episode every time it is used)."""

    def __post_init__(self) -> None:
        _check(
            "data", 0.0 <= self.val_fraction < 1.0, f"val_fraction must be in [0, 1), got {self.val_fraction}"
        )
        _check(
            "data", self.min_val_episodes >= 0, f"min_val_episodes must be >= 0, got {self.min_val_episodes}"
        )


@dataclass
class BCOptimConfig:
    """Loss, batching and optimiser."""

    chunk_len: int = 128
    """T: frames per row per update (truncated backprop; memory carried across chunks of an episode)."""
    batch_rows: int = 8
    """B: episodes streamed in parallel (each row plays its episodes back to back)."""
    lr: float = 1.81e-4
    """AdamW learning rate (the released BC script's value)."""
    lr_schedule: Literal["constant", "linear"] = "constant"
    """"linear" decays lr to 0 at total_frames."""
    weight_decay: float = 0.039428
    """AdamW decoupled weight decay (not on norms, biases, b_nd). The released script used this
    value as coupled L2 in Adam on every parameter (docs/vpt_format.md §8)."""
    adam_eps: float = 1e-8
    """AdamW epsilon."""
    max_grad_norm: float = 5.0
    """Global gradient-norm clip (really applied; the released script's clip was a no-op)."""
    kl_coef: float = 0.0
    """Weight of KL(initial policy || policy) per frame (0 = off; the initial policy is frozen)."""
    nonfinite_patience: int = 5
    """K: an update whose loss or gradient is not finite is skipped (on every rank); the run stops
    after K in a row, as PPG does (docs/implementation_details.md item 25)."""

    def __post_init__(self) -> None:
        _check(
            "bc",
            self.nonfinite_patience > 0,
            f"nonfinite_patience must be > 0, got {self.nonfinite_patience}",
        )
        _check("bc", self.chunk_len > 0, f"chunk_len must be > 0, got {self.chunk_len}")
        _check("bc", self.batch_rows > 0, f"batch_rows must be > 0, got {self.batch_rows}")
        _check("bc", self.lr > 0, f"lr must be > 0, got {self.lr}")
        _check("bc", self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        _check("bc", self.adam_eps > 0, f"adam_eps must be > 0, got {self.adam_eps}")
        _check("bc", self.max_grad_norm > 0, f"max_grad_norm must be > 0, got {self.max_grad_norm}")
        _check("bc", self.kl_coef >= 0, f"kl_coef must be >= 0, got {self.kl_coef}")


@dataclass
class BCLogConfig:
    """TensorBoard / console (x-axis: demonstration frames trained on)."""

    interval: int = 1
    """Write the training scalars every this many updates."""
    val_interval: int = 20
    """Compute the validation loss every this many updates (0 = only at the end of each invocation)."""
    progress: bool = True
    """Show the console progress bar."""

    def __post_init__(self) -> None:
        _check("log", self.interval > 0, f"interval must be > 0, got {self.interval}")
        _check("log", self.val_interval >= 0, f"val_interval must be >= 0, got {self.val_interval}")


@dataclass
class BCConfig:
    """Everything `train_bc.py` needs besides --init."""

    seed: int = 0
    """Seeds the validation split, the episode order and a fresh policy's initialisation."""
    total_frames: int = 100_000
    """Demonstration frames (summed over rows) of the whole run; epochs repeat the data."""
    stop_after_frames: int | None = None
    """End this invocation once this many frames are done (checkpoint written); --resume continues."""
    device: str = "auto"
    """"cpu", "cuda", "cuda:N" or "auto" (cuda when available)."""
    torch_threads: int | None = None
    """torch intra-op threads (null = torch's default)."""
    run_name: str | None = None
    """Output folder runs/NAME; null = "bc-" + config name + timestamp."""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: BCDataConfig = field(default_factory=BCDataConfig)
    bc: BCOptimConfig = field(default_factory=BCOptimConfig)
    log: BCLogConfig = field(default_factory=BCLogConfig)
    ckpt: CkptConfig = field(default_factory=CkptConfig)
    perf: PerfConfig = field(default_factory=PerfConfig)

    def __post_init__(self) -> None:
        _check("top level", self.total_frames > 0, f"total_frames must be > 0, got {self.total_frames}")
        if self.stop_after_frames is not None:
            _check("top level", self.stop_after_frames > 0, "stop_after_frames must be > 0")
        if not (self.device in ("cpu", "cuda", "auto") or self.device.startswith("cuda:")):
            raise ConfigError(f"device must be cpu, cuda, cuda:N or auto; got {self.device!r}")

    @property
    def frames_per_update(self) -> int:
        """Frames in one update (batch_rows * chunk_len)."""
        return self.bc.batch_rows * self.bc.chunk_len


def load_bc_config(
    paths: Iterable[str | os.PathLike] = (), overrides: Iterable[str] = (), base: dict | None = None
) -> BCConfig:
    """Defaults (or ``base``, e.g. a run's saved config.yaml), each YAML file, then ``key=value``."""
    return load_layers(BCConfig, paths, overrides, base=base)


def read_bc_config(path: str | os.PathLike) -> BCConfig:
    """Read one saved config.yaml (strict)."""
    return read_config_file(BCConfig, path)


def save_bc_config(config: BCConfig, path: str | os.PathLike) -> None:
    """Write the resolved config as YAML atomically."""
    save_yaml(config, path)
