"""The checks behind ``vpt-rl doctor``: a planned run (`Target`) against the machine (`Probes`).

Each ``check_*`` reads the machine only through `vpt_rl.commands.doctor_probes.Probes` and
returns `Line` results (OK / WARN / FAIL, each problem with its fix) for one concern: Python,
torch, the device and GPUs, NCCL, host and GPU memory and disk against the config's plan
(`vpt_rl.memory_plan`), torchrun's rendezvous variables and Ray. MineRL 1.0's install (minerl,
Java 8, a display, numpy < 1.24) is checked in `vpt_rl.commands.doctor_minerl`. `render` formats
the lines and `exit_code` turns them into the command's exit status; `vpt_rl.commands.doctor`
lists the checks in order. Nothing here parses a command line.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from vpt_rl.commands.doctor_probes import Probes, TorchInfo

Status = Literal["OK", "WARN", "FAIL"]

MINERL_INSTALL = "pip install git+https://github.com/minerllabs/minerl@v1.0.2"
MIN_PYTHON = (3, 10)  # pyproject.toml requires-python
MINERL_MAX_PYTHON = (3, 11)  # numpy < 1.24 has no wheels for newer Pythons
MINERL_NUMPY_BELOW = (1, 24)
TORCHRUN_VARS = ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK")
HEADROOM = 0.8  # above this share of what is free, a plan is a WARN


@dataclass(frozen=True)
class Target:
    """The run being planned: its resolved config and what the command line adds."""

    config: Any
    """A `TrainConfig`."""
    vpt: Any
    """The `VPTConfig` the run will build."""
    arch_source: str
    has_prior: bool
    runs_dir: Path = Path("runs")
    nproc: int = 1
    """Ranks on this machine (torchrun's --nproc_per_node)."""

    @property
    def minerl(self) -> bool:
        """Whether the env is MineRL (its install problems are then failures, not warnings)."""
        from vpt_rl.envs.factory import is_minerl_id

        return is_minerl_id(self.config.env.id)


@dataclass(frozen=True)
class Line:
    """One result: a status, the check's name, what was found and, for a problem, the fix."""

    status: Status
    name: str
    detail: str
    fix: str = ""


def _bad(minerl: bool) -> Status:
    return "FAIL" if minerl else "WARN"


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", version.split("+")[0])[:3])


# ---------------------------------------------------------------- the checks
def check_python(p: Probes, t: Target) -> list[Line]:
    """Python >= 3.10; <= 3.11 for MineRL (numpy < 1.24 has no wheels beyond)."""
    v = p.python_version
    text = ".".join(map(str, v))
    if v[:2] < MIN_PYTHON:
        return [Line("FAIL", "python", f"{text}: vpt_rl needs >= 3.10", "use Python 3.10 or 3.11")]
    if v[:2] > MINERL_MAX_PYTHON:
        return [
            Line(
                _bad(t.minerl),
                "python",
                f"{text}: MineRL 1.0 needs numpy < 1.24, which has no wheels for Python > 3.11",
                "for MineRL, make the venv with Python 3.10 or 3.11",
            )
        ]
    return [Line("OK", "python", text)]


def check_torch(p: Probes, t: Target) -> list[Line]:
    """torch imports; which CUDA it was built for."""
    info = p.torch()
    if info.version is None:
        return [Line("FAIL", "torch", f"does not import ({info.error})", "pip install torch (README: setup)")]
    build = f"CUDA {info.cuda_build} build" if info.cuda_build else "CPU-only build"
    return [Line("OK", "torch", f"{info.version} ({build})")]


def _no_cuda_reason(info: TorchInfo) -> tuple[str, str]:
    """(why CUDA is not available, the fix)."""
    if info.version is None:
        return "torch does not import", "install torch"
    if not info.cuda_build:
        return (
            f"torch {info.version} is a CPU-only build",
            "on a GPU machine install a CUDA build of torch (pytorch.org 'Get started')",
        )
    detail = f"; torch: {info.error}" if info.error else ""
    return (
        f"torch {info.version} (CUDA {info.cuda_build}) sees no GPU: no device, no driver, "
        f"or CUDA_VISIBLE_DEVICES hides them{detail}",
        "check nvidia-smi and that the driver supports CUDA " + str(info.cuda_build),
    )


def uses_gpu(p: Probes, t: Target) -> bool:
    """Whether the run will put the policy on a GPU (device "auto" resolved as the trainer does)."""
    device = t.config.device
    return device.startswith("cuda") or (device == "auto" and bool(p.torch().gpus))


def check_device(p: Probes, t: Target) -> list[Line]:
    """``device`` against the GPUs torch sees."""
    info, device = p.torch(), t.config.device
    if info.gpus:
        index = int(device.split(":")[1]) if device.startswith("cuda:") else 0
        if device.startswith("cuda") and index >= len(info.gpus):
            return [
                Line("FAIL", "device", f"{device}: only {len(info.gpus)} GPU(s) visible", "use device=cuda:0")
            ]
        where = "cpu (as configured)" if device == "cpu" else f"cuda:{index} ({info.gpus[index].name})"
        return [Line("OK", "device", f"{device} -> {where}")]
    why, fix = _no_cuda_reason(info)
    if device.startswith("cuda"):
        return [
            Line("FAIL", "device", f"{device}, but CUDA is not available: {why}", fix + ", or device=cpu")
        ]
    if device == "cpu":
        return [Line("OK", "device", f"cpu (as configured); CUDA is not available: {why}")]
    status: Status = "OK" if t.vpt.hidsize <= 64 else "WARN"  # a tiny policy is fine on the CPU
    return [
        Line(
            status,
            "device",
            f"auto -> cpu: CUDA is not available: {why}",
            "" if status == "OK" else fix + " (a 1x policy on the CPU runs ~22 frames/s; docs/scaling.md)",
        )
    ]


def check_gpus(p: Probes, t: Target) -> list[Line]:
    """One line per GPU: name, free memory, bf16 (a FAIL where precision=bf16 cannot run)."""
    lines = []
    for i, gpu in enumerate(p.torch().gpus):
        from vpt_rl.memory_plan import format_bytes

        detail = (
            f"{gpu.name}, {format_bytes(gpu.free_bytes)} free of {format_bytes(gpu.total_bytes)}, "
            f"compute {gpu.capability[0]}.{gpu.capability[1]}, bf16 {'yes' if gpu.bf16 else 'no'}"
        )
        if not gpu.bf16 and t.config.perf.precision == "bf16":
            lines.append(
                Line("FAIL", f"gpu {i}", detail, "perf.precision=auto or fp32 (no bf16 before Ampere)")
            )
        else:
            lines.append(Line("OK", f"gpu {i}", detail + ("" if gpu.bf16 else " (precision auto -> fp32)")))
    return lines


def check_nccl(p: Probes, t: Target) -> list[Line]:
    """NCCL, which torchrun on GPUs uses (gloo on the CPU needs nothing)."""
    info = p.torch()
    if not info.gpus:
        return [Line("OK", "nccl", "not needed without GPUs (data parallel on the CPU uses gloo)")]
    if info.nccl:
        return [Line("OK", "nccl", "available (torchrun on GPUs)")]
    multi = int(p.environ.get("WORLD_SIZE", "1") or 1) > 1 or t.nproc > 1
    return [
        Line(
            "FAIL" if multi else "WARN",
            "nccl",
            "torch.distributed.is_nccl_available() is False: several GPU ranks cannot talk",
            "install a CUDA build of torch from pytorch.org (it ships NCCL)",
        )
    ]


def _plan(p: Probes, t: Target) -> Any:
    from vpt_rl.memory_plan import plan_run

    sizes = p.model_size(t.vpt)
    return plan_run(t.config, t.vpt, t.has_prior, uses_gpu(p, t), world_size=t.nproc, sizes=sizes)


def _against(name: str, need: int, free: int, what: str, fix: str) -> Line:
    from vpt_rl.memory_plan import format_bytes

    detail = f"needs ~{format_bytes(need)} ({what}); {format_bytes(free)} free"
    if need > free:
        return Line("FAIL", name, detail, fix)
    if need > HEADROOM * free:
        return Line("WARN", name, detail + f" (over {HEADROOM:.0%})", fix)
    return Line("OK", name, detail)


def check_memory(p: Probes, t: Target) -> list[Line]:
    """Host memory (psutil) and, on a GPU, free GPU memory against the plan."""
    from vpt_rl.memory_plan import format_bytes

    plan = _plan(p, t)
    e, n = plan.per_env, t.config.env.num_envs
    ranks = f"{t.nproc} ranks x " if t.nproc > 1 else ""
    what = (
        f"{ranks}{n} envs x {format_bytes(plan.host_bytes // n if n else 0)}: "
        f"{e.aux_segments} segments {format_bytes(e.aux_segments * e.segment)}, "
        f"pi_old {format_bytes(e.pi_old)}, worker {format_bytes(e.worker)}; docs/scaling.md"
    )
    fix = "lower env.num_envs, ppg.n_pi or ppg.segment_len (docs/scaling.md 'Memory per env')"
    lines = [_against("host memory", t.nproc * plan.host_bytes, p.available_memory(), what, fix)]
    gpus = p.torch().gpus
    if plan.on_gpu and gpus:
        device = t.config.device
        index = int(device.split(":")[1]) if device.startswith("cuda:") else 0
        index = min(index, len(gpus) - 1)
        what = (
            f"weights, grads, AdamW{', prior' if t.has_prior else ''} {format_bytes(plan.model_bytes)} + "
            f"{n} envs' memory states {format_bytes(n * e.live)}, activations not counted"
        )
        lines.append(
            _against(
                "gpu memory",
                plan.device_bytes,
                gpus[index].free_bytes,
                what,
                "free the GPU, or lower env.num_envs; a larger model needs a larger GPU",
            )
        )
    return lines


def _existing_parent(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_disk(p: Probes, t: Target) -> list[Line]:
    """Free disk where the run folder goes, against the checkpoints the run keeps."""
    from vpt_rl.memory_plan import format_bytes

    plan = _plan(p, t)
    where = _existing_parent(t.runs_dir)
    keep = t.config.ckpt.keep_last
    what = (
        f"{plan.checkpoints_kept} checkpoints x {format_bytes(plan.checkpoint_bytes)} "
        f"(ckpt.keep_last {keep}{' = all' if keep == 0 else ''}, one more until pruning, latest)"
        f"{' + prior.weights' if t.has_prior else ''} in {t.runs_dir}"
    )
    return [
        _against(
            "disk",
            plan.disk_bytes,
            p.disk_free(str(where)),
            what,
            "free disk, --runs-dir elsewhere, or lower ckpt.keep_last",
        )
    ]


def check_torchrun(p: Probes, t: Target) -> list[Line]:
    """torchrun's rendezvous variables: none (one process), or all of them, consistent."""
    env = p.environ
    present = [v for v in TORCHRUN_VARS if env.get(v)]
    if not present:
        return [Line("OK", "torchrun", "no rendezvous variables: one process (torchrun sets them)")]
    missing = [v for v in TORCHRUN_VARS if not env.get(v)]
    fix = "launch with torchrun (it sets all of them), or unset the stray ones"
    if missing:
        return [Line("FAIL", "torchrun", f"{', '.join(present)} set but {', '.join(missing)} missing", fix)]
    try:
        rank, world, local = (int(env[v]) for v in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
        port = int(env["MASTER_PORT"])
        local_world = int(env["LOCAL_WORLD_SIZE"]) if env.get("LOCAL_WORLD_SIZE") else None
    except ValueError as e:
        return [Line("FAIL", "torchrun", f"not an integer: {e}", fix)]
    problems = []
    if not 0 <= rank < world:
        problems.append(f"RANK {rank} not in [0, WORLD_SIZE {world})")
    if local < 0 or (local_world is not None and local >= local_world) or local > rank:
        problems.append(f"LOCAL_RANK {local} inconsistent with RANK {rank}, LOCAL_WORLD_SIZE {local_world}")
    if not 0 < port < 65536:
        problems.append(f"MASTER_PORT {port} is not a port")
    gpus = p.torch().gpus
    if uses_gpu(p, t) and gpus and local >= len(gpus):
        problems.append(f"LOCAL_RANK {local} but only {len(gpus)} GPU(s) visible")
    if problems:
        return [Line("FAIL", "torchrun", "; ".join(problems), fix)]
    return [Line("OK", "torchrun", f"rank {rank} of {world} (local {local}), {env['MASTER_ADDR']}:{port}")]


def check_ray(p: Probes, t: Target) -> list[Line]:
    """Ray, needed by ``env.backend: ray`` only."""
    version = p.module_version("ray")
    env = t.config.env
    if env.backend != "ray":
        state = f"{version} installed" if version else "not installed"
        return [Line("OK", "ray", f"{state}; not needed (env.backend={env.backend})")]
    if version is None:
        return [Line("FAIL", "ray", "env.backend=ray but ray is not installed", 'pip install -e ".[ray]"')]
    where = env.ray.address or "a local cluster started by the run"
    return [Line("OK", "ray", f"{version}; envs on {where}")]


def render(lines: Sequence[Line]) -> str:
    """Aligned columns (status, check, result; the fix below a problem) and a summary line."""
    width = max((len(line.name) for line in lines), default=0)
    out = []
    for line in lines:
        out.append(f"{line.status:<4}  {line.name:<{width}}  {line.detail}")
        if line.fix and line.status != "OK":
            out.append(f"{'':<4}  {'':<{width}}  -> {line.fix}")
    counts = Counter(line.status for line in lines)
    verdict = (
        "fix the FAIL lines before launching"
        if counts["FAIL"]
        else "ready (read the WARN lines)"
        if counts["WARN"]
        else "ready"
    )
    out.append(f"\n{counts['OK']} OK, {counts['WARN']} WARN, {counts['FAIL']} FAIL: {verdict}")
    return "\n".join(out)


def exit_code(lines: Sequence[Line]) -> int:
    """1 when any line is FAIL, else 0."""
    return 1 if any(line.status == "FAIL" for line in lines) else 0
