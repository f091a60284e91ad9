"""Data-parallel training on PyTorch's own engine (torch.distributed, launched by torchrun), shared
by `train_ppo.py` and `train_bc.py`.

`Dist` is the one object the trainers hold: rank, world size, the helpers that reduce statistics
over ranks, and the rule that only rank 0 writes the run folder. A plain `python train_ppo.py`
gets ``Dist()`` (one process; every helper is then the identity), so the single-process path has
no distributed code in it. Gradients are averaged over ranks after each backward
(`Dist.average_gradients_`, which says why not the DDP wrapper); everything else a rank computes
from its own data and that must be global (advantage normalisation, the value normaliser's statistics, explained
variance, logged means, episode returns) goes through the helpers here.

Backends and devices: the default process group is NCCL on CUDA, gloo on CPU. NCCL serves only
CUDA tensors ("No backend type associated with device type cpu" for anything else), yet much of
what the ranks exchange lives on the CPU (episode statistics, the skip vote, explained variance,
pickled objects). So every `Dist` also holds a gloo group (``cpu_group``), and each collective goes
to the group that serves its tensor's device: CUDA tensors (gradients, parameters, value-target
moments) to the default group, CPU tensors and every pickled object to ``cpu_group``. Objects never
stage on the GPU that way, and nothing large is exchanged at all: checkpoints are written per rank
(`vpt_rl.checkpoint`). The tests prove it on CPU with a default group whose only backend serves
``cuda`` (``backend="cuda:gloo"``), which refuses CPU tensors exactly as NCCL does.

``VPT_RL_DIST_FORCE=1`` starts a process group even for one process without torchrun, so a single
GPU runs the same collectives (NCCL included) that a multi-GPU job runs.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from vpt_rl.errors import VPTRLError

__all__ = [
    "BACKEND_ENV",
    "FORCE_ENV",
    "Dist",
    "DistributedError",
    "device_override",
    "global_moments",
    "pooled_mean_var",
    "init_distributed",
    "forced",
    "join",
    "launched_by_torchrun",
    "on_rank0",
]

T = TypeVar("T")
FORCE_ENV = "VPT_RL_DIST_FORCE"  # "1": a process group even for one process (see the module docstring)
BACKEND_ENV = "VPT_RL_DIST_BACKEND"  # the default group's backend instead of nccl/gloo (init_distributed)


class DistributedError(VPTRLError, RuntimeError):
    """The ranks disagree (world size on resume, parameters out of sync) or cannot start."""


def launched_by_torchrun() -> bool:
    """True when torchrun (or another launcher of the env:// method) started this process."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


@dataclass(frozen=True)
class Dist:
    """This process's place in the job (rank 0 of 1 without torchrun).

    ``cpu_group``: the gloo group for CPU tensors and objects (None without a process group: every
    helper is then the identity, with no collective at all)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    cpu_group: Any = None

    @property
    def enabled(self) -> bool:
        """Collectives are real: several ranks, or one rank with a (forced) process group."""
        return self.world_size > 1 or self.cpu_group is not None

    @property
    def is_main(self) -> bool:
        """Rank 0: the only rank that writes the run folder and prints."""
        return self.rank == 0

    def _group(self, tensor: torch.Tensor) -> Any:
        """The process group serving ``tensor``'s device: gloo for CPU, the default one otherwise."""
        return self.cpu_group if tensor.device.type == "cpu" else None

    # ---------------------------------------------------------------- tensors
    def all_reduce_sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over ranks in place (identity with one process); returns it."""
        if self.enabled:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=self._group(tensor))
        return tensor

    def sum_all(self, *values: float | torch.Tensor) -> list[float]:
        """Sums of several scalars over ranks, in one collective (float64, on the CPU group)."""
        t = torch.tensor([float(v) for v in values], dtype=torch.float64)
        return self.all_reduce_sum_(t).tolist()

    def average_gradients_(self, params: Iterable[torch.Tensor]) -> None:
        """Replace each ``p.grad`` by its mean over ranks (data parallelism's gradient step).

        Why not the `DistributedDataParallel` wrapper: PPG's updates are not one module forward
        per backward. The true value head reads a detached latent, the value warm-up and the
        policy phase leave other heads without gradients, and a non-finite loss must skip the
        update on every rank at once, after the forward. DDP would need find_unused_parameters
        and still cannot skip a backward once its forward ran. Averaging after backward is the
        same arithmetic, in one collective over a flat buffer per dtype (what DDP's buckets do,
        without overlapping the communication with the backward pass).
        """
        if not self.enabled:
            return
        grads = [p.grad for p in params if p.grad is not None]
        by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
        for g in grads:
            by_dtype.setdefault(g.dtype, []).append(g)
        for group in by_dtype.values():
            flat = torch.cat([g.reshape(-1) for g in group])
            self.all_reduce_sum_(flat)
            flat /= self.world_size
            offset = 0
            for g in group:
                g.copy_(flat[offset : offset + g.numel()].view_as(g))
                offset += g.numel()

    def broadcast_module_(self, module: nn.Module) -> None:
        """Rank 0's parameters (trainable or not) copied into every rank's ``module``."""
        if not self.enabled:
            return
        with torch.no_grad():
            for p in module.parameters():
                dist.broadcast(p.data, src=0, group=self._group(p.data))

    def check_in_sync(self, module: nn.Module, what: str) -> None:
        """Raise `DistributedError` if any rank's parameters differ from rank 0's (exactly).

        One float64 checksum per parameter tensor (sum and sum of |x| weighted by position), so
        the cost is one small collective; DDP keeps replicas equal by construction, and this
        catches anything that updates one rank alone (e.g. statistics reduced on one rank only).
        """
        if not self.enabled:
            return
        sums = []
        with torch.no_grad():
            for p in module.parameters():
                x = p.detach().double().flatten()
                w = torch.arange(1, x.numel() + 1, dtype=torch.float64, device=x.device)
                sums.append(torch.stack([x.sum(), (x.abs() * w).sum() / x.numel()]))
        local = torch.cat(sums)
        everyone = [torch.empty_like(local) for _ in range(self.world_size)]
        dist.all_gather(everyone, local, group=self._group(local))
        for r, other in enumerate(everyone):
            if not torch.equal(other, everyone[0]):
                raise DistributedError(f"{what}: parameters of rank {r} differ from rank 0's")

    # ---------------------------------------------------------------- objects
    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` on rank 0 (a list in rank order); None on the other ranks."""
        if not self.enabled:
            return [obj]
        out = [None] * self.world_size if self.is_main else None
        dist.gather_object(obj, out, dst=0, group=self.cpu_group)
        return out

    def all_gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` on every rank (a list in rank order)."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj, group=self.cpu_group)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (the argument is ignored on the others)."""
        if not self.enabled:
            return obj
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0, group=self.cpu_group)
        return box[0]

    def scatter(self, objs: list[Any] | None) -> Any:
        """Rank r gets ``objs[r]`` (a list given on rank 0; ignored elsewhere)."""
        if not self.enabled:
            if objs is None:
                raise DistributedError("scatter: no objects given on the only rank")
            return objs[0]
        out: list[Any] = [None]
        if self.is_main and (objs is None or len(objs) != self.world_size):
            raise DistributedError(f"scatter: need {self.world_size} objects, got {objs and len(objs)}")
        dist.scatter_object_list(out, objs if self.is_main else None, src=0, group=self.cpu_group)
        return out[0]

    def mean_scalars(self, scalars: Mapping[str, float], summed: Iterable[str] = ()) -> dict[str, float]:
        """Logged statistics over ranks: the mean of each tag over the ranks that have it (a tag
        a rank could not compute, e.g. no finite value, is left out there), the sum for the tags
        in ``summed`` (counts such as completed episodes)."""
        if not self.enabled:
            return dict(scalars)
        summed = set(summed)
        per_rank = self.all_gather({k: float(v) for k, v in scalars.items()})
        keys = sorted({k for d in per_rank for k in d})
        out = {}
        for k in keys:
            values = [d[k] for d in per_rank if k in d]
            out[k] = sum(values) if k in summed else sum(values) / len(values)
        return out

    def barrier(self) -> None:
        """Wait for every rank."""
        if self.enabled:
            dist.barrier(group=self.cpu_group)


def on_rank0(d: Dist, fn: Callable[[], T]) -> T | None:
    """Run ``fn`` on rank 0 only (file reads, run-folder checks); an error there is raised on every
    rank (as `DistributedError` on the others), so nobody waits forever in the next collective.
    Returns ``fn()`` on rank 0, None elsewhere."""
    result, error = None, None
    if d.is_main:
        try:
            result = fn()
        except Exception as e:  # re-raised below, after the other ranks heard of it
            error = e
    message = d.broadcast(None if error is None else f"{type(error).__name__}: {error}")
    if error is not None:
        raise error
    if message is not None:
        raise DistributedError(f"rank 0 could not start the run: {message}")
    return result


def pooled_mean_var(
    d: Dist, n: int, mean: torch.Tensor, var: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Count, mean and (with ``var``) variance of the global batch from each rank's own: this
    rank's ``n`` elements have ``mean`` and ``var`` (float tensors of one shape, an entry per
    statistic). Chan et al.'s parallel formula with weights w_r = n_r / N: mean = sum_r w_r mean_r,
    var = sum_r w_r (var_r + (mean_r - mean)^2), in float64, on ``mean``'s device.

    One collective: each rank writes its row [n, mean, var] into a (world_size, k) table of zeros
    and the table is summed over ranks, which only adds zeros to each row. With one rank (`Dist()`:
    no collective) w is exactly 1 and ``mean`` and ``var`` come back bit for bit, so a single
    process computes its statistics with the same formula as N ranks."""
    parts = [
        torch.full((1,), float(n), dtype=torch.float64, device=mean.device),
        mean.detach().double().flatten(),
    ]
    if var is not None:
        parts.append(var.detach().double().flatten())
    row = torch.cat(parts)
    table = row.new_zeros((d.world_size, row.numel()))
    table[d.rank] = row
    table = d.all_reduce_sum_(table)
    total = table[:, 0].sum()
    w = (table[:, 0] / total)[:, None]
    k = mean.numel()
    means = table[:, 1 : 1 + k]
    g_mean = (w * means).sum(0)
    g_var = None if var is None else (w * (table[:, 1 + k :] + (means - g_mean) ** 2)).sum(0).view(var.shape)
    return total, g_mean.view(mean.shape), g_var


def global_moments(d: Dist, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of x and of x^2 over the global batch, in x's dtype: each rank's own means pooled by
    `pooled_mean_var` (one collective on x's device). With one rank they are ``x.mean()`` and
    ``(x**2).mean()`` bit for bit: what a value normaliser computes alone (docs/vpt_format.md §5),
    so `ScaledValueHead.update(x, moments=partial(global_moments, d))` is one formula for any
    number of ranks."""
    _, means, _ = pooled_mean_var(d, x.numel(), torch.stack([x.mean(), (x**2).mean()]))
    return means[0].to(x.dtype), means[1].to(x.dtype)


def device_override(overrides: Iterable[str]) -> str | None:
    """The value of the last ``device=...`` among dotted overrides (each rank needs the device
    before the config is read, to join the job with the right backend)."""
    values = [o.split("=", 1)[1] for o in overrides if o.startswith("device=")]
    return values[-1] if values else None


def forced() -> bool:
    """``VPT_RL_DIST_FORCE=1``: start a process group even for a single process."""
    return os.environ.get(FORCE_ENV, "0").strip().lower() in ("1", "true", "yes")


def init_distributed(device: str) -> tuple[Dist, str]:
    """Join the job torchrun started (env:// variables), or return ``Dist()`` without torchrun.

    ``device`` is the config's device ("auto", "cpu", "cuda", "cuda:N"); returns the device this
    rank uses: with CUDA each rank takes ``cuda:LOCAL_RANK`` (one GPU per process), else the CPU.
    The default group is NCCL for CUDA, gloo for CPU; a gloo group beside it carries CPU tensors
    and objects (module docstring). With ``VPT_RL_DIST_FORCE=1`` a single process (torchrun with
    one rank, or plain python) gets a group of one, so the collectives run for real.
    """
    torchrun = launched_by_torchrun()
    world = int(os.environ["WORLD_SIZE"]) if torchrun else 1
    if world == 1 and not forced():
        return Dist(), device
    if not torchrun:  # forced, one process: a rendezvous of its own on this machine
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(_free_port()))
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0))
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        if not torch.cuda.is_available():
            raise DistributedError(f"device={device}: CUDA is not available on rank {rank}")
        if local >= torch.cuda.device_count():
            raise DistributedError(
                f"rank {rank}: LOCAL_RANK {local} but only {torch.cuda.device_count()} GPUs here "
                "(--nproc_per_node must not exceed the GPUs per node)"
            )
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    else:
        device = "cpu"
    if not dist.is_initialized():
        # VPT_RL_DIST_BACKEND overrides the default group's backend: "cuda:gloo" serves only CUDA
        # tensors, as NCCL does, so a CPU machine can prove that no CPU tensor reaches it
        backend = os.environ.get(BACKEND_ENV) or ("nccl" if use_cuda else "gloo")
        # a long timeout: a rank may wait for a slow env reset (MineRL) or a checkpoint on rank 0
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30), init_method="env://")
    return join(rank, world, local), device


def join(rank: int, world_size: int, local_rank: int = 0) -> Dist:
    """The `Dist` of a process whose default group is already initialised (by `init_distributed`,
    or by a test with any backend): adds the gloo group for CPU tensors and objects. Every rank
    must call it (creating a group is itself collective)."""
    cpu_group = dist.new_group(backend="gloo", timeout=datetime.timedelta(minutes=30))
    return Dist(rank=rank, world_size=world_size, local_rank=local_rank, cpu_group=cpu_group)


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def shutdown(d: Dist) -> None:
    """Leave the process group (torchrun's processes exit cleanly)."""
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()
