"""``vpt-rl doctor [--config X.yaml ...] [--init FILE] [key=value ...]``: will this machine run it?

Checks what a `train_ppo.py` run with the same config needs before a long launch, one line per
check, OK / WARN / FAIL, each problem with its fix: Python; torch, its CUDA build, the GPUs and
their bf16 support, NCCL; free GPU memory, host memory and disk against the config's plan
(`vpt_rl.memory_plan`, docs/scaling.md "Memory per env"); MineRL 1.0's install (the `minerl`
package, Java 8, a display or xvfb-run, numpy < 1.24: FAIL for a MineRL env id, WARN otherwise);
torchrun's rendezvous variables; Ray (``env.backend: ray``). Exits 1 when any line is FAIL.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from vpt_rl.commands import CommandError
from vpt_rl.commands.doctor_checks import (
    HEADROOM,
    MIN_PYTHON,
    MINERL_INSTALL,
    MINERL_MAX_PYTHON,
    MINERL_NUMPY_BELOW,
    TORCHRUN_VARS,
    Line,
    Status,
    Target,
    _against,
    _bad,
    _existing_parent,
    _no_cuda_reason,
    _plan,
    _version_tuple,
    check_device,
    check_disk,
    check_gpus,
    check_memory,
    check_nccl,
    check_python,
    check_ray,
    check_torch,
    check_torchrun,
    exit_code,
    render,
    uses_gpu,
)
from vpt_rl.commands.doctor_minerl import check_display, check_java, check_minerl, check_numpy, java_major
from vpt_rl.commands.doctor_probes import GpuInfo, Probes, TorchInfo

__all__ = [
    "CHECKS",
    "HEADROOM",
    "MIN_PYTHON",
    "MINERL_INSTALL",
    "MINERL_MAX_PYTHON",
    "MINERL_NUMPY_BELOW",
    "TORCHRUN_VARS",
    "GpuInfo",
    "Line",
    "Probes",
    "Status",
    "Target",
    "TorchInfo",
    "_against",
    "_bad",
    "_existing_parent",
    "_no_cuda_reason",
    "_plan",
    "_version_tuple",
    "add_parser",
    "check_device",
    "check_disk",
    "check_display",
    "check_gpus",
    "check_java",
    "check_memory",
    "check_minerl",
    "check_nccl",
    "check_numpy",
    "check_python",
    "check_ray",
    "check_torch",
    "check_torchrun",
    "diagnose",
    "exit_code",
    "java_major",
    "make_target",
    "render",
    "run",
    "uses_gpu",
]

# every check, in the order the report prints them
CHECKS: tuple[Callable[[Probes, Target], list[Line]], ...] = (
    check_python,
    check_torch,
    check_device,
    check_gpus,
    check_nccl,
    check_memory,
    check_disk,
    check_minerl,
    check_java,
    check_display,
    check_numpy,
    check_torchrun,
    check_ray,
)


def diagnose(p: Probes, t: Target) -> list[Line]:
    """Every check's lines, in order."""
    return [line for check in CHECKS for line in check(p, t)]


# ---------------------------------------------------------------- the command
def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``doctor`` with the ``vpt-rl`` subparsers."""
    parser = subparsers.add_parser(
        "doctor",
        help="check this machine against a planned run (install, GPUs, memory, disk, MineRL)",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        action="append",
        default=[],
        help="YAML layer, as train_ppo.py (repeatable)",
    )
    parser.add_argument(
        "--init", metavar="PATH", help="the weights the run starts from (plans the prior too)"
    )
    parser.add_argument("--runs-dir", metavar="DIR", type=Path, default=Path("runs"), help="default: runs")
    parser.add_argument(
        "--nproc-per-node",
        type=int,
        default=None,
        help="ranks on this machine (default: $LOCAL_WORLD_SIZE, else 1)",
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, as train_ppo.py")
    return parser


def make_target(args: argparse.Namespace, environ: Mapping[str, str]) -> Target:
    """The run ``args`` describe: config layers and overrides, the architecture, the prior."""
    from vpt_rl.config import load_config
    from vpt_rl.model.vpt_config import VPTConfig

    config = load_config(args.config, args.overrides)
    if args.init is None:
        vpt, source = (
            VPTConfig.preset(config.model.preset),
            f"model.preset {config.model.preset}, fresh, no prior",
        )
    else:
        from vpt_rl.model.detect import detect_preset
        from vpt_rl.model.weights import read_state_dict

        preset, reason = detect_preset(read_state_dict(args.init))
        if preset is None:
            raise CommandError(f"{args.init}: architecture unknown ({reason})")
        vpt, source = VPTConfig.preset(preset), f"{preset} from --init {args.init}, with its prior"
    nproc = args.nproc_per_node or int(environ.get("LOCAL_WORLD_SIZE") or 1)
    if nproc < 1:
        raise CommandError(f"--nproc-per-node must be >= 1, got {nproc}")
    return Target(config, vpt, source, args.init is not None, args.runs_dir, nproc)


def run(args: argparse.Namespace, probes: Probes | None = None) -> int:
    """Print every check and the summary; 1 when any check failed."""
    p = probes or Probes()
    t = make_target(args, p.environ)
    env = t.config.env
    name = " + ".join(args.config) or "the defaults (configs/base.yaml)"
    print(f"vpt-rl doctor: {name}{' ' + ' '.join(args.overrides) if args.overrides else ''}")
    print(
        f"planned run: {env.id} x {env.num_envs} envs ({env.backend}), {t.arch_source}, "
        f"device {t.config.device}, T {t.config.ppg.segment_len}, N_pi {t.config.ppg.n_pi}\n"
    )
    lines = diagnose(p, t)
    print(render(lines))
    return exit_code(lines)
