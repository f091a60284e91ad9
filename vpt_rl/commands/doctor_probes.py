"""The real system probes behind ``vpt-rl doctor``: what the checks may ask of this machine.

`GpuInfo` and `TorchInfo` describe what torch sees, the ``_real_*`` functions ask the machine
itself (torch and its GPUs, subprocesses, installed module versions, free host memory and disk, a
model's size), and `Probes` bundles them so that the checks in `vpt_rl.commands.doctor_checks`
read the machine only through it and tests can replace any probe with a fake. Nothing here
judges what it finds.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


# ---------------------------------------------------------------- what the checks may ask
@dataclass(frozen=True)
class GpuInfo:
    """One visible CUDA device."""

    name: str
    free_bytes: int
    total_bytes: int
    capability: tuple[int, int]

    @property
    def bf16(self) -> bool:
        """Native bfloat16 (compute capability 8.0, Ampere, or newer)."""
        return self.capability[0] >= 8


@dataclass(frozen=True)
class TorchInfo:
    """What torch says about this machine."""

    version: str | None
    """torch.__version__, or None where torch does not import."""
    cuda_build: str | None = None
    """torch.version.cuda: the CUDA version torch was built for; None = a CPU-only build."""
    gpus: tuple[GpuInfo, ...] = ()
    nccl: bool = False
    """torch.distributed.is_nccl_available()."""
    error: str | None = None
    """Why torch did not import, or why a CUDA build sees no GPU, where torch said."""


def _real_torch() -> TorchInfo:
    try:
        import torch
    except Exception as e:  # a broken install is what the doctor is for
        return TorchInfo(version=None, error=f"{type(e).__name__}: {e}")
    gpus: list[GpuInfo] = []
    error = None
    try:
        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                free, total = torch.cuda.mem_get_info(i)
                gpus.append(
                    GpuInfo(
                        torch.cuda.get_device_name(i),
                        int(free),
                        int(total),
                        torch.cuda.get_device_capability(i),
                    )
                )
    except Exception as e:  # a driver mismatch surfaces here
        error = f"{type(e).__name__}: {e}"
    nccl = bool(torch.distributed.is_available() and torch.distributed.is_nccl_available())
    return TorchInfo(torch.__version__, torch.version.cuda, tuple(gpus), nccl, error)


def _real_run(argv: Sequence[str]) -> tuple[int, str, str]:
    try:
        p = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return 127, "", str(e)
    return p.returncode, p.stdout, p.stderr


def _real_module_version(name: str) -> str | None:
    """The installed version of a module (its distribution's, else ``__version__``), or None."""
    try:
        if importlib.util.find_spec(name) is None:
            return None
    except (ImportError, ValueError):
        return None
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        try:
            return str(getattr(importlib.import_module(name), "__version__", "unknown"))
        except Exception:
            return "unknown"


def _real_available_memory() -> int:
    import psutil

    return int(psutil.virtual_memory().available)


def _real_disk_free(path: str) -> int:
    return int(shutil.disk_usage(path).free)


_MODEL_SIZES: dict[str, tuple[int, int]] = {}


def _real_model_size(vpt: Any) -> tuple[int, int]:
    from vpt_rl.memory_plan import model_size

    key = repr(vpt)  # VPTConfig is not hashable
    if key not in _MODEL_SIZES:
        _MODEL_SIZES[key] = model_size(vpt)
    return _MODEL_SIZES[key]


@dataclass
class Probes:
    """Everything the checks read from the machine; tests replace any of these with fakes."""

    which: Callable[[str], str | None] = shutil.which
    run: Callable[[Sequence[str]], tuple[int, str, str]] = _real_run
    """argv -> (return code, stdout, stderr); 127 when it cannot start."""
    module_version: Callable[[str], str | None] = _real_module_version
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    python_version: tuple[int, int, int] = (sys.version_info[0], sys.version_info[1], sys.version_info[2])
    torch: Callable[[], TorchInfo] = functools.cache(_real_torch)
    available_memory: Callable[[], int] = _real_available_memory
    """Host bytes available to new processes (psutil)."""
    disk_free: Callable[[str], int] = _real_disk_free
    model_size: Callable[[Any], tuple[int, int]] = _real_model_size
    """VPTConfig -> (weights-file bytes, trainable parameters)."""
