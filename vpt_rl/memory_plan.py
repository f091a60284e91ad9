"""What a PPG run needs in memory and on disk, from its config: the one formula behind
`vpt-rl doctor`'s memory and disk checks and docs/scaling.md's "Memory per env" table (generated
by ``python -m vpt_rl.memory_plan``; tests/unit/test_docs_numbers.py keeps the two equal).

Per env row (docs/scaling.md "Memory per env"): the live memory state of the policy (and of the
prior with ``--init``); one rollout segment (frames, step data, the policy's start state, the
prior's part for the KL); the PPG auxiliary buffer (N_pi segments without the prior part,
docs/implementation_details.md item 20) and, during the auxiliary phase, pi_old's log-probs of
every buffered segment (float32, on the CPU); and the env worker process. Segments live on the
host and move to the device one minibatch at a time; the live states live where the policy acts.
Activations are not counted (they depend on the minibatch, not on the number of envs).
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from typing import Any

from vpt_rl.model.action_heads import N_BUTTON_CLASSES, N_CAMERA_CLASSES
from vpt_rl.model.vpt_config import VPTConfig

__all__ = [
    "EnvMemory",
    "RunPlan",
    "env_memory",
    "format_bytes",
    "model_size",
    "plan_run",
    "scaling_table",
]

KIB, MIB, GIB = 1024, 1024**2, 1024**3
LOGPROB_CLASSES = N_BUTTON_CLASSES + N_CAMERA_CLASSES  # 8762 log-probs per frame (both heads)
# Bytes per frame of a segment besides the image (vpt_rl/algo/roller.py `_SegmentBuffer`, plus the
# advantages and returns GAE adds): first 1, buttons 8, camera 8, logprob 4, value 4, reward 4,
# terminated 1, truncated 1, final value 4, advantage 4, return 4.
STEP_BYTES_PER_FRAME = 43
# One env worker process: a MineRL env launches its own Minecraft client, a Java process of
# 2-4 GB (docs/scaling.md "Env workers per GPU"); a voxel-world worker measured ~70 MB RSS at
# 128x128 (psutil), rounded up.
MINERL_WORKER_BYTES = 3 * GIB
VOXEL_WORKER_BYTES = 100 * MIB
# The trainer process itself (Python, torch, CUDA context) besides the tensors counted here.
RUNTIME_BYTES = 2 * GIB


def format_bytes(n: float) -> str:
    """Binary units, as the docs write them: "5.4 KiB", "4.0 MiB", "320 MiB", "5.3 GiB"."""
    if n < KIB:
        return f"{n:.0f} B"
    for unit, size in (("KiB", KIB), ("MiB", MIB)):
        if n < 1024 * size:
            value = n / size
            return f"{value:.0f} {unit}" if value >= 99.95 else f"{value:.1f} {unit}"
    return f"{n / GIB:.1f} GiB"


@dataclass(frozen=True)
class EnvMemory:
    """Bytes one env row costs a PPG run (each field is a row of docs/scaling.md's table)."""

    state: int
    """The policy's memory state: K and V of L blocks (M x D float32 each) + the M-frame mask."""
    prior_state: int
    """The prior's memory state (the same size; 0 without a prior)."""
    frames: int
    """One segment's frames: T x H x W x 3 uint8."""
    step_data: int
    """One segment's actions, log-probs, values, rewards, flags, advantages: T x 43."""
    prior_part: int
    """One segment's prior part for the KL: the prior's log-prob table (bf16/fp32) or, with
    ``recompute``, its start state (0 without a prior)."""
    prior_mode: str
    """``ppg.prior_logprobs`` resolved: "recompute", "bf16", "fp32", or "none" (no prior)."""
    aux_segments: int
    """Segments kept for the auxiliary phase (N_pi; 1 with ``e_aux: 0``: only the current one)."""
    pi_old: int
    """Auxiliary phase: pi_old's float32 log-probs of every buffered segment (N_pi x T x 8762 x 4)."""
    worker: int
    """The env worker process (a Minecraft client for MineRL)."""

    @property
    def segment(self) -> int:
        """One buffered segment: frames, step data and the policy's start state (no prior part)."""
        return self.frames + self.step_data + self.state

    @property
    def buffered(self) -> int:
        """All segments kept at once (the current one's prior part included)."""
        return self.aux_segments * self.segment + self.prior_part

    @property
    def live(self) -> int:
        """The memory states carried from step to step (where the policy acts)."""
        return self.state + self.prior_state

    def host(self, on_gpu: bool) -> int:
        """Host bytes of this env at the peak (the auxiliary phase), its worker included; the live
        states count here only when the policy runs on the CPU."""
        return self.buffered + self.pi_old + self.worker + (0 if on_gpu else self.live)


def env_memory(
    vpt: VPTConfig,
    segment_len: int,
    n_pi: int,
    e_aux: int,
    has_prior: bool,
    prior_logprobs: str = "auto",
    minerl: bool = False,
) -> EnvMemory:
    """The bytes of one env row of a run with this architecture and PPG settings."""
    from vpt_rl.algo.ppg_setup import prior_storage  # the trainer's own choice of "auto"

    t = segment_len
    state = vpt.n_recurrence_layers * 2 * vpt.memory_size * vpt.hidsize * 4 + vpt.memory_size
    mode = prior_storage(prior_logprobs, vpt, t) if has_prior else "none"
    prior_part = {
        "none": 0,
        "recompute": state,
        "bf16": t * LOGPROB_CLASSES * 2,
        "fp32": t * LOGPROB_CLASSES * 4,
    }[mode]
    h, w, c = vpt.img_shape
    buffered = n_pi if e_aux > 0 else 1
    return EnvMemory(
        state=state,
        prior_state=state if has_prior else 0,
        frames=t * h * w * c,
        step_data=t * STEP_BYTES_PER_FRAME,
        prior_part=prior_part,
        prior_mode=mode,
        aux_segments=buffered,
        pi_old=n_pi * t * LOGPROB_CLASSES * 4 if e_aux > 0 else 0,
        worker=MINERL_WORKER_BYTES if minerl else VOXEL_WORKER_BYTES,
    )


def model_size(vpt: VPTConfig) -> tuple[int, int]:
    """(bytes of the weights file with the aux head, trainable parameters), from the network
    built on the ``meta`` device (no memory, no initialisation work)."""
    import torch

    from vpt_rl.model.policy import VPTPolicy

    with torch.device("meta"):
        policy = VPTPolicy(vpt, aux_value_head=True)
    weight_bytes = sum(v.numel() * v.element_size() for v in policy.state_dict().values())
    trainable = sum(p.numel() for p in policy.parameters() if p.requires_grad)
    return weight_bytes, trainable


@dataclass(frozen=True)
class RunPlan:
    """What one rank of a run needs: host memory, device memory, disk for its checkpoints."""

    per_env: EnvMemory
    num_envs: int
    on_gpu: bool
    has_prior: bool
    weight_bytes: int
    trainable: int
    workers_on_host: bool
    checkpoints_kept: int
    """Checkpoints on disk at the peak: keep_last, one more until pruning, and latest (at most)."""
    ranks: int = 1
    """Ranks writing their own part of each checkpoint into this run folder."""
    aux_in_checkpoint: bool = True
    """Whether each rank's part holds its auxiliary buffer (``ckpt.aux_buffer``)."""

    @property
    def model_bytes(self) -> int:
        """Policy weights, gradients and AdamW's two moments, plus the frozen prior's weights."""
        return self.weight_bytes + self.trainable * 4 * 3 + (self.weight_bytes if self.has_prior else 0)

    @property
    def host_bytes(self) -> int:
        """Host memory at the peak (the auxiliary phase), env workers included where they run here."""
        per_env = self.per_env.host(self.on_gpu) - (0 if self.workers_on_host else self.per_env.worker)
        return self.num_envs * per_env + RUNTIME_BYTES + (0 if self.on_gpu else self.model_bytes)

    @property
    def device_bytes(self) -> int:
        """GPU memory without activations (0 on the CPU)."""
        return self.model_bytes + self.num_envs * self.per_env.live if self.on_gpu else 0

    @property
    def checkpoint_bytes(self) -> int:
        """One checkpoint at its largest (mid-cycle): the weights, AdamW's moments, and each rank's
        envs' live memory states and auxiliary buffer (without the prior's part;
        docs/implementation_details.md items 30 and 36)."""
        segments = max(self.per_env.aux_segments - 1, 0) if self.aux_in_checkpoint else 0
        per_rank = self.num_envs * (self.per_env.live + segments * self.per_env.segment)
        return self.weight_bytes + self.trainable * 4 * 2 + self.ranks * per_rank

    @property
    def disk_bytes(self) -> int:
        """Disk for the run's checkpoints folder at the peak (``prior.weights`` included)."""
        prior = self.weight_bytes if self.has_prior else 0
        return self.checkpoints_kept * self.checkpoint_bytes + prior


def plan_run(
    config: Any,
    vpt: VPTConfig,
    has_prior: bool,
    on_gpu: bool,
    world_size: int = 1,
    sizes: tuple[int, int] | None = None,
) -> RunPlan:
    """The plan of one rank of ``config`` (a `TrainConfig`) for architecture ``vpt``, with
    ``world_size`` ranks sharing the run folder; ``sizes`` = `model_size(vpt)` where the caller
    has it."""
    from vpt_rl.envs.factory import is_minerl_id

    ppg, env = config.ppg, config.env
    per_env = env_memory(
        vpt, ppg.segment_len, ppg.n_pi, ppg.e_aux, has_prior, ppg.prior_logprobs, is_minerl_id(env.id)
    )
    weight_bytes, trainable = sizes if sizes is not None else model_size(vpt)
    if config.ckpt.keep_last > 0:
        kept = config.ckpt.keep_last + 2
    else:  # keep all: one pair per interval over the whole run
        iters = math.ceil(config.total_frames / (world_size * config.frames_per_iter))
        kept = (iters // config.ckpt.interval if config.ckpt.interval else 0) + 2
    remote_ray = env.backend == "ray" and env.ray.address is not None
    return RunPlan(
        per_env=per_env,
        num_envs=env.num_envs,
        on_gpu=on_gpu,
        has_prior=has_prior,
        weight_bytes=weight_bytes,
        trainable=trainable,
        workers_on_host=not remote_ray,
        ranks=world_size,
        aux_in_checkpoint=bool(getattr(config.ckpt, "aux_buffer", True)),
        checkpoints_kept=kept,
    )


# ---------------------------------------------------------------- docs/scaling.md's table
TABLE_BEGIN = "<!-- begin generated: python -m vpt_rl.memory_plan (tests/unit/test_docs_numbers.py) -->"
TABLE_END = "<!-- end generated -->"
# The example the table works out: 1x fine-tuning as configs/vpt_diamond.yaml runs it.
EXAMPLE_PRESET, EXAMPLE_T, EXAMPLE_N_PI, EXAMPLE_E_AUX = "1x", 128, 32, 6
EXAMPLE_ENVS = (16, 64)


def _auto_recompute_from(vpt: VPTConfig) -> int:
    """The first T at which ``prior_logprobs: auto`` picks recompute over bf16."""
    from vpt_rl.algo.ppg_setup import prior_storage

    return next(t for t in range(1, 100_000) if prior_storage("auto", vpt, t) == "recompute")


def scaling_table() -> str:
    """docs/scaling.md's "Memory per env" table and totals, between the generated-text markers."""
    vpt = VPTConfig.preset(EXAMPLE_PRESET)
    t, n_pi = EXAMPLE_T, EXAMPLE_N_PI
    m = env_memory(vpt, t, n_pi, EXAMPLE_E_AUX, has_prior=True, minerl=True)
    variants = {
        mode: env_memory(vpt, t, n_pi, EXAMPLE_E_AUX, True, prior_logprobs=mode).prior_part
        for mode in ("fp32", "bf16", "recompute")
    }
    t_rec = _auto_recompute_from(vpt)
    frame = math.prod(vpt.img_shape)
    fb = format_bytes
    rows = [
        ("what", "bytes", f"1x, T = {t}"),
        ("---", "---", "---"),
        (
            f"memory state (K and V of {vpt.n_recurrence_layers} blocks, float32, + mask)",
            "L x 2 x M x D x 4 + M",
            fb(m.state),
        ),
        ("the prior's memory state (with `--init`)", "the same", fb(m.prior_state)),
        ("segment: frames", f"T x {frame:,}", fb(m.frames)),
        (
            "segment: actions, log-probs, values, rewards, flags, advantages",
            f"T x {STEP_BYTES_PER_FRAME}",
            fb(m.step_data),
        ),
        ("segment: policy start state (for the minibatches)", "as the memory state", fb(m.state)),
        (
            "segment: prior for the KL, `prior_logprobs: fp32`",
            f"T x {LOGPROB_CLASSES} x 4",
            fb(variants["fp32"]),
        ),
        (
            f"... `bf16` (auto's choice at 1x, T <= {t_rec - 1})",
            f"T x {LOGPROB_CLASSES} x 2",
            fb(variants["bf16"]),
        ),
        (
            f"... `recompute` (auto's choice for tiny, or 1x T >= {t_rec}): the prior's start state",
            "as the memory state",
            fb(variants["recompute"]),
        ),
        (
            "PPG aux buffer: N_pi segments without the prior part",
            "N_pi x (frames + step data + start state)",
            f"{n_pi} x {fb(m.segment)} = {fb(n_pi * m.segment)}",
        ),
        (
            "aux phase: pi_old of every buffered segment (float32, CPU)",
            f"N_pi x T x {LOGPROB_CLASSES} x 4",
            fb(m.pi_old),
        ),
        (
            "env worker: MineRL (one Minecraft client) / voxel world",
            "2-4 GB / ~70 MB measured",
            f"{fb(MINERL_WORKER_BYTES)} / {fb(VOXEL_WORKER_BYTES)}",
        ),
    ]
    lines = [TABLE_BEGIN, ""]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    tensors = m.host(on_gpu=False) - m.worker
    totals = ", ".join(f"{n} envs {fb(n * tensors)}" for n in EXAMPLE_ENVS)
    tiny = VPTConfig.preset("tiny")
    tiny_t = 64
    tm = env_memory(tiny, tiny_t, n_pi, EXAMPLE_E_AUX, has_prior=True)
    tiny_bf16 = env_memory(tiny, tiny_t, n_pi, EXAMPLE_E_AUX, True, prior_logprobs="bf16").prior_part
    h, w, c = tiny.img_shape
    paragraphs = [
        f"Per 1x env with the prior (`prior_logprobs: {m.prior_mode}`, N_pi = {n_pi}, T = {t}): "
        f"{fb(m.live)} of live memory state, {fb(m.segment + m.prior_part)} per rollout segment, "
        f"{fb(n_pi * m.segment)} of aux buffer and {fb(m.pi_old)} of pi_old: {fb(tensors)} of tensors "
        f"per env at the peak ({totals}), plus the env worker.",
        f"The tiny preset (D = {tiny.hidsize}, {tiny.n_recurrence_layers} blocks, M = {tiny.memory_size}) "
        f"needs {fb(tm.state)} of state per env; its segments are frames ({fb(h * w * c)} per frame at "
        f"{h}x{w}) and, with a prior, `recompute` (auto's choice: `{tm.prior_mode}`) keeps "
        f"{fb(tm.prior_part)} per row instead of a {fb(tiny_bf16)} bf16 table per {tiny_t}-frame row.",
    ]
    for text in paragraphs:
        lines += ["", textwrap.fill(text, width=100, break_on_hyphens=False)]
    lines += ["", TABLE_END]
    return "\n".join(lines)


if __name__ == "__main__":
    print(scaling_table())
