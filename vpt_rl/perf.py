"""Compute switches of `PerfConfig` applied to a policy, and the CPU allocator setting the CLIs
use for their own process. Measured effects: docs/benchmarks.md (bench/model_speed.py)."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Iterable

import torch

from vpt_rl.config.common import PerfConfig
from vpt_rl.model.policy import VPTPolicy

__all__ = ["apply_perf", "resolve_autocast", "reuse_freed_memory"]

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def reuse_freed_memory() -> bool:
    """Make glibc keep freed memory in the heap for reuse. Returns False where that is not glibc.

    Why: by default glibc gives every allocation above 32 MB its own mmap and unmaps it on free,
    so each large activation of a training step (a 1x CNN activation of 64 frames is 67 MB) is
    fresh memory that the kernel must fault in and zero page by page. Measured on 2 CPU cores: the
    element-wise ops of a 1x forward+backward spent more time faulting than computing, and the
    step ran 1.8x faster with mmap disabled and trimming deferred (docs/benchmarks.md). The cost:
    the process keeps its peak heap until it exits. This changes the calling process, so only the
    CLIs call it (like `torch.set_num_threads`), never an import; env worker processes are
    started by a fresh forkserver and keep glibc's defaults.
    """
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))


def cpu_has_native_bf16() -> bool:
    """True when the CPU has bf16 instructions (AVX512-BF16 or AMX) that oneDNN uses."""
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        fn = getattr(torch.cpu, probe, None)  # private helpers of torch.cpu; absent: assume no
        if fn is not None and fn():
            return True
    return False


# the smallest width where bf16 paid on a CPU with native bf16 (measured, docs/benchmarks.md:
# 1x training 2.1x faster than fp32, tiny 0.8-1.0x)
BF16_CPU_MIN_HIDSIZE = 1024


def resolve_autocast(precision: str, device: torch.device, hidsize: int | None = None) -> torch.dtype | None:
    """The trunk's autocast dtype for ``perf.precision`` on ``device`` (None = float32).

    "auto" is bf16 where it is faster: on a CUDA device that supports it, and on a CPU with native
    bf16 instructions for a model at least as wide as 1x (``hidsize`` >= 1024); float32
    elsewhere (on the tiny preset bf16 is slower on CPU). bf16 changes the numbers within the
    tolerance stated in tests/unit/test_fast_paths.py.
    """
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
        if (
            device.type == "cpu"
            and hidsize is not None
            and hidsize >= BF16_CPU_MIN_HIDSIZE
            and cpu_has_native_bf16()
        ):
            return torch.bfloat16
        return None
    raise ValueError(f"perf.precision must be auto, fp32 or bf16; got {precision!r}")


def apply_perf(
    policies: VPTPolicy | Iterable[VPTPolicy | None], perf: PerfConfig, device: torch.device
) -> str:
    """Set the fast paths of the policy, or of each policy given (None skipped: a trainer's
    absent prior), and compile their trunks if asked; returns a one-line note."""
    targets = [policies] if isinstance(policies, VPTPolicy) else [p for p in policies if p is not None]
    notes = set()
    for policy in targets:
        dtype = resolve_autocast(perf.precision, device, policy.config.hidsize)
        policy.set_fast_paths(fused_attention=perf.fused_attention, autocast_dtype=dtype)
        if perf.compile:
            # Module.compile keeps the parameter names (no `_orig_mod.` prefix in checkpoints)
            policy.net.compile(dynamic=None)
        notes.add(
            f"compute: {'fused' if perf.fused_attention else 'plain'} attention, "
            f"{'bf16 autocast' if dtype is not None else 'fp32'}{', compiled trunk' if perf.compile else ''}"
        )
    return "; ".join(sorted(notes))
