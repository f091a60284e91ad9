"""Config sections both trainers share (`train_ppo.py` and `train_bc.py`): the model preset, the
checkpoints and the compute fast paths, plus the range checks their dataclasses use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from vpt_rl.config.lib import ConfigError

__all__ = ["CkptConfig", "ModelConfig", "PerfConfig", "non_negative", "positive"]


def positive(section: str, **values: float) -> None:
    """Raise ConfigError naming ``section.field`` for every value that is not > 0."""
    for name, value in values.items():
        if not value > 0:
            raise ConfigError(f"{section}.{name} must be > 0, got {value!r}")


def non_negative(section: str, **values: float) -> None:
    """Raise ConfigError naming ``section.field`` for every value that is not >= 0."""
    for name, value in values.items():
        if not value >= 0:
            raise ConfigError(f"{section}.{name} must be >= 0, got {value!r}")


@dataclass
class ModelConfig:
    """Which network to build when no --init/--model-file decides it."""

    preset: str = "tiny"
    """Architecture preset for a fresh policy: "1x", "2x", "3x" or "tiny" (ignored with --init, whose
    shapes decide, and with --model-file, whose kwargs decide)."""

    def __post_init__(self) -> None:
        if self.preset not in ("1x", "2x", "3x", "tiny"):
            raise ConfigError(f"model.preset must be one of 1x, 2x, 3x, tiny; got {self.preset!r}")


@dataclass
class CkptConfig:
    """Checkpoints in runs/NAME/checkpoints/ (a final one is always written)."""

    interval: int = 10
    """Save every this many iterations/updates (0 = only at the end of each invocation)."""
    keep_last: int = 3
    """Keep this many step_* checkpoints (weights + state); older ones are deleted (0 = keep all)."""

    def __post_init__(self) -> None:
        non_negative("ckpt", interval=self.interval, keep_last=self.keep_last)


@dataclass
class PerfConfig:
    """How the network is computed (the maths and the weights stay the same; docs/benchmarks.md
    has the measured effect of each switch)."""

    fused_attention: bool = True
    """Memory attention through PyTorch's fused scaled_dot_product_attention (equal to the plain
    path to 1e-5 in float32); false = the plain reference computation."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """Trunk compute dtype: "bf16" runs the CNN and transformer under bfloat16 autocast (heads,
    log-softmax, values, losses and memory state stay float32); "auto" = bf16 where it is faster:
    a CUDA GPU that supports it, or a CPU with AVX512-BF16/AMX for models as wide as 1x; fp32
    elsewhere (the tiny preset on CPU)."""
    compile: bool = False
    """torch.compile the trunk (off by default: on CPU it did not pay for its compile time)."""
    reuse_memory: bool = True
    """CPU: let glibc keep freed memory for reuse instead of returning every large tensor to the
    OS (no page faults per activation; ~1.8x faster 1x training on CPU). Set by the CLI for its
    own process; no effect on CUDA memory or non-glibc systems."""
