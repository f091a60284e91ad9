"""Training configuration for `train_ppo.py`: typed dataclasses, YAML layering, dotted overrides.

The dataclass defaults below are the single source of the defaults; `configs/base.yaml` repeats
every one of them for reading (a test keeps the two equal). `load_config([a.yaml, b.yaml],
["ppg.lr=2e-5"])` layers the files over the defaults, then the overrides; unknown keys and bad
types are `ConfigError`s naming the field (strictness comes from `vpt_rl.config.lib`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from vpt_rl.config.auto import AUTO_ENT_COEF_FRESH, AUTO_FIELDS, auto_value
from vpt_rl.config.common import CkptConfig, ModelConfig, PerfConfig
from vpt_rl.config.common import non_negative as _non_negative
from vpt_rl.config.common import positive as _positive
from vpt_rl.config.lib import (
    ConfigError,
    load_layers,
    read_config_file,
    save_yaml,
)

__all__ = [
    "AUTO_ENT_COEF_FRESH",
    "LEARNABLE_VOXEL_KWARGS",
    "CkptConfig",
    "ConfigError",
    "EnvConfig",
    "LogConfig",
    "ModelConfig",
    "PerfConfig",
    "PPGCkptConfig",
    "PPGConfig",
    "RayEnvConfig",
    "TrainConfig",
    "load_config",
    "read_config",
    "save_config",
]

# The voxel world's "learnable" settings (docs/environments.md): logs break in 2 attack ticks and
# progress survives looking away, the agent spawns facing a 2x2 trunk in a dense, flat forest, and
# 200-step episodes give many fresh starts per frame. A fresh policy finishes episodes from the
# first iterations and gets reward; the world's own defaults (configs/treechop_full.yaml) give it
# almost none.
LEARNABLE_VOXEL_KWARGS: dict[str, Any] = {
    "max_episode_steps": 200,
    "log_break_ticks": 2,
    "keep_break_progress": True,
    "spawn_facing_tree": True,
    "trunk_width": 2,
    "tree_density": 0.03,
    "terrain_amplitude": 1.0,
}


@dataclass
class RayEnvConfig:
    """Where the Ray backend places env actors (``env.backend: ray``; docs/scaling.md)."""

    address: str | None = None
    """A running Ray cluster ("auto", "ray://host:port" or "host:port"); null = start a local one."""
    num_cpus: float = 1.0
    """CPUs reserved per env actor's env (MineRL: 1-2; the voxel world: 1)."""
    memory: float | None = None
    """Bytes of memory reserved per env (MineRL: 2-4 GiB); null = no reservation."""
    resources: dict[str, float] = field(default_factory=dict)
    """Custom resources per env, e.g. {"minerl": 1} to place envs on nodes started with that resource."""
    envs_per_actor: int = 1
    """Envs hosted by one actor (one process); 1 for MineRL (one Java client each)."""

    def __post_init__(self) -> None:
        _positive("env.ray", num_cpus=self.num_cpus, envs_per_actor=self.envs_per_actor)
        if self.memory is not None:
            _positive("env.ray", memory=self.memory)


@dataclass
class EnvConfig:
    """The environments the roller steps (one worker process each, `vpt_rl.EnvPool`)."""

    id: str = "vpt_rl/VoxelTreechop-v0"
    """gymnasium id (the built-in voxel world, or a MineRL id where MineRL 1.0 is installed)."""
    num_envs: int = 8
    """Number of parallel envs (worker processes); the batch size B of every rollout step."""
    kwargs: dict[str, Any] = field(default_factory=lambda: dict(LEARNABLE_VOXEL_KWARGS))
    """Free-form keyword arguments for gymnasium.make(id, **kwargs) (e.g. max_episode_steps); the
    default is the voxel world's learnable settings (LEARNABLE_VOXEL_KWARGS)."""
    reward_table: str | dict[str, Any] | None = None
    """Item-reward table for envs without a reward of their own: "treechop", "vpt_diamond", a
    mapping item -> [reward, cap], or null (the env's own reward)."""
    step_timeout: float = 60.0
    """Seconds a worker may take for one step before it is killed, restarted and reported truncated."""
    reset_timeout: float = 300.0
    """Seconds a worker may take for a reset (MineRL resets are slow)."""
    max_worker_steps: int | None = None
    """Restart a worker after this many steps at its next episode end (MineRL leaks memory); null = never."""
    backend: Literal["local", "ray"] = "local"
    """Where the env workers run: "local" = processes of this rank (`EnvPool`); "ray" = actors on a
    Ray cluster (`pip install -e ".[ray]"`; placement in ``env.ray``; docs/scaling.md)."""
    ray: RayEnvConfig = field(default_factory=RayEnvConfig)
    """Ray placement (used with ``backend: ray`` only)."""
    overlap: bool | Literal["auto"] = "auto"
    """Double buffering: half the envs step while the policy acts for the other half, so env and
    policy time overlap (same actions as lockstep for a seed); false = lockstep. "auto" = on when
    the policy runs on a GPU, off on CPU, where policy and envs share the cores and two half-batch
    calls cost more than the overlap saves (bench/rollout_speed.py). Needs >= 2 envs."""

    def use_overlap(self, device_type: str) -> bool:
        """Whether the roller double-buffers ("auto" resolved for the policy's device)."""
        wanted = device_type == "cuda" if self.overlap == "auto" else bool(self.overlap)
        return wanted and self.num_envs >= 2

    def __post_init__(self) -> None:
        _positive("env", num_envs=self.num_envs, step_timeout=self.step_timeout)
        _positive("env", reset_timeout=self.reset_timeout)


@dataclass
class PPGConfig:
    """Phasic policy gradient (policy phase = PPO, auxiliary phase every n_pi iterations)."""

    segment_len: int = 64
    """T: frames per env per rollout segment (one iteration collects num_envs * T frames)."""
    lr: float | Literal["auto"] = "auto"
    """AdamW learning rate (both phases); "auto" = 1e-3 for a fresh policy, 3e-4 with --init.
    Fine-tuning a released VPT model wants far less (configs/vpt_diamond.yaml: 2e-5, the VPT
    paper's)."""
    pi_head_lr_scale: float | Literal["auto"] = "auto"
    """Learning-rate multiplier for the policy heads; "auto" = 3 for a fresh policy (a fresh
    8641-way joint button head learns each combination separately), 1 with --init."""
    lr_schedule: Literal["constant", "linear"] = "constant"
    """"linear" decays lr to 0 at total_frames (over env frames, so resume keeps it exact)."""
    weight_decay: float = 0.0
    """AdamW decoupled weight decay (not applied to norms, biases, the relative table b_nd)."""
    adam_eps: float = 1e-5
    """AdamW epsilon."""
    gamma: float = 0.9
    """Discount factor (0.9: chopping pays within a few steps; the VPT paper's 0.999 is in
    configs/vpt_diamond.yaml)."""
    gae_lambda: float = 0.9
    """GAE lambda."""
    clip_eps: float = 0.2
    """PPO ratio clip range."""
    vf_coef: float = 0.5
    """Weight of the true value loss in the policy phase."""
    ent_coef: float | Literal["auto"] = "auto"
    """Entropy bonus; "auto" = 0 with a prior (the KL term regularises; 0.01 raised the entropy and
    not the return at the learnable settings, and at full difficulty drove it to 9.9 nats and the
    eval to 0.2x the default's once rho reached its floor: docs/benchmarks.md "Fifth pass",
    "Seventh pass"), 0.001 without (AUTO_ENT_COEF_FRESH)."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip (both phases)."""
    n_epochs: int = 3
    """E_pi: passes over each rollout in the policy phase (PPG paper: 1; 3 learns faster from
    scratch on the voxel world)."""
    n_minibatches: int = 4
    """Policy-phase minibatches per epoch; each is a set of whole env rows (<= env.num_envs)."""
    norm_adv: bool = True
    """Normalise advantages: subtract the rollout batch's mean, divide by the std ``adv_std`` names."""
    adv_std: Literal["batch", "running"] = "running"
    """The std advantages are divided by (with ``norm_adv``): "running" = a running average over the
    last ~``adv_std_frames`` env frames, so a batch with few or no rewards gets a small update
    instead of a unit-size one (docs/implementation_details.md item 10b; measured in
    docs/benchmarks.md "Full difficulty, third pass"); "batch" = the rollout batch's own (the PPG
    code's)."""
    adv_std_frames: int = 32768
    """Memory of the running advantage std in env frames (over all ranks): each batch of n frames
    gets weight 1 - exp(-n / adv_std_frames); 32768 = 64 default iterations."""
    kl_coef: float = 0.2
    """rho: weight of the KL to the prior (``kl_direction``) at frame 0 (0 without --init: no prior)."""
    kl_direction: Literal["prior_policy", "policy_prior"] = "prior_policy"
    """Which KL the prior term is: "prior_policy" = KL(prior || policy) (the VPT paper's;
    mass-covering), "policy_prior" = KL(policy || prior) (MineStudio's; mode-seeking: the policy
    may sharpen within the prior's support). The first ends higher on every seed of a paired
    3-seed comparison at the learnable settings (docs/benchmarks.md "Fifth pass") and higher on the
    mean, two seeds of three, at full difficulty (docs/benchmarks.md "Sixth pass")."""
    kl_decay: float = 0.99
    """rho is multiplied by this once every ``kl_decay_frames`` env frames (counted over all
    ranks), continuously: rho(f) = kl_coef * kl_decay ** (f / kl_decay_frames), down to
    ``kl_decay_floor`` * kl_coef. A schedule in
    frames, not iterations, so adding ranks or envs does not change it (docs/implementation_details.md
    item 15). 0.99 per 512 frames halves rho every 35k frames, so the prior guards the first,
    fragile updates and then lets RL move past it (docs/benchmarks.md, handoff: with 0.9995, RL
    from a BC policy that imitated its demonstrator's noise stayed at BC level for 131k frames;
    0.99 doubled its return). The VPT paper's 0.9995 per iteration is for thousands of iterations
    from a strong foundation model (configs/vpt_diamond.yaml keeps it)."""
    kl_decay_floor: float = 0.15
    """rho never decays below this fraction of ``kl_coef`` (0.15 x 0.2 = 0.03, reached after 97k
    frames at the default decay): the prior lets go of most of its weight, not all of it. Once rho
    is near 0 nothing holds a fine-tuned policy near its prior, and with sparse rewards PPO's
    clipped updates on noisy advantages raise its entropy until it stops finishing its actions:
    at full difficulty, 393k frames, seed 0's training return rose to 2x its BC's and then fell to
    0.2 logs per episode (entropy 3.2 -> 8.6) once rho was below ~0.01; with this floor it ended
    above its BC (entropy <= 4.8), 3-seed eval 2.41x BC against 2.50x without (docs/benchmarks.md
    "Full difficulty, fourth pass"). 0 = the pure decay of the VPT paper (configs/vpt_diamond.yaml)."""
    kl_decay_frames: int = 512
    """The frames over which rho is multiplied by ``kl_decay`` once: a per-iteration decay converted
    at a batch of this many frames (512 = the default 8 envs x 64 frames, so a default one-rank run
    decays once per iteration, as before)."""
    n_pi: int = 16
    """N_pi: policy iterations between auxiliary phases (PPG paper: 32)."""
    e_aux: int = 1
    """E_aux: epochs of the auxiliary phase over the buffered segments (0 = plain PPO; PPG paper: 6;
    1 keeps the aux phase a small share of a short CPU run)."""
    beta_clone: float = 1.0
    """Weight of the behaviour-clone KL(pi_old || pi_theta) in the auxiliary phase (PPG paper: 1)."""
    aux_vf_coef: float = 0.5
    """Weight of the aux value head's mean squared error in the auxiliary phase (0.5: the reference
    PPG code's 0.5 * mean((v - target)**2), relative to beta_clone 1)."""
    aux_true_vf_coef: float = 0.5
    """Weight of the true value head's mean squared error in the auxiliary phase (PPG trains it
    there too; 0.5 as in the reference PPG code)."""
    aux_n_minibatches: int | None = None
    """Auxiliary-phase minibatches per epoch; null = n_minibatches * n_pi (same rows per minibatch)."""
    detach_value_input: bool | Literal["auto"] = "auto"
    """Train the true value head on a detached latent (its gradient does not reach the trunk);
    "auto" = true with --init (PPG's separation), false for a fresh policy (AUTO_DETACH_VALUE_FRESH)."""
    zero_init_value: bool | Literal["auto"] = "auto"
    """Zero the true value head and reset its normaliser at --init; "auto" = when the file has no aux head."""
    prior_logprobs: Literal["auto", "recompute", "bf16", "fp32"] = "auto"
    """How the policy phase gets the prior's distributions for the KL term: "recompute" runs the
    frozen prior on each minibatch from the rows' prior start state (keeps no (envs, T, 8762)
    table, but that start state; exact; one more prior forward per minibatch), "bf16"/"fp32" keep
    the table the rollout computed (bf16: the KL within 1%). "auto" = whichever keeps fewer bytes
    per env row: recompute for the tiny preset, bf16 for 1x at T <= 239 (docs/scaling.md)."""
    value_warmup_frames: int = 0
    """The first this many env frames (over all ranks) update only the value heads (policy loss,
    KL and entropy not applied); an iteration is a warm-up one when it starts before this frame."""
    nonfinite_patience: int = 5
    """K: stop the run after K consecutive updates skipped for a non-finite loss or gradient."""

    def __post_init__(self) -> None:
        _positive("ppg", segment_len=self.segment_len, adam_eps=self.adam_eps)
        if self.lr != "auto":
            _positive("ppg", lr=self.lr)
        if self.pi_head_lr_scale != "auto":
            _positive("ppg", pi_head_lr_scale=self.pi_head_lr_scale)
        _positive("ppg", max_grad_norm=self.max_grad_norm, n_minibatches=self.n_minibatches)
        _positive("ppg", n_pi=self.n_pi, nonfinite_patience=self.nonfinite_patience)
        _non_negative("ppg", weight_decay=self.weight_decay, clip_eps=self.clip_eps, vf_coef=self.vf_coef)
        _non_negative("ppg", n_epochs=self.n_epochs, e_aux=self.e_aux, beta_clone=self.beta_clone)
        _non_negative("ppg", kl_coef=self.kl_coef, aux_vf_coef=self.aux_vf_coef)
        _non_negative(
            "ppg", aux_true_vf_coef=self.aux_true_vf_coef, value_warmup_frames=self.value_warmup_frames
        )
        _positive("ppg", kl_decay_frames=self.kl_decay_frames, adv_std_frames=self.adv_std_frames)
        if self.ent_coef != "auto":
            _non_negative("ppg", ent_coef=self.ent_coef)
        for name in ("gamma", "gae_lambda", "kl_decay", "kl_decay_floor"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"ppg.{name} must be in [0, 1], got {getattr(self, name)!r}")
        if self.aux_n_minibatches is not None:
            _positive("ppg", aux_n_minibatches=self.aux_n_minibatches)

    def entropy_coef(self, has_prior: bool) -> float:
        """The entropy bonus actually used ("auto" resolved by whether a prior is present)."""
        return float(self._decided("ent_coef", has_prior))

    def unresolved(self, *names: str) -> list[str]:
        """The fields still "auto" among ``names`` (default: every auto field); empty once `resolve`
        ran. What a consumer of a resolved config checks, naming the fields it reads."""
        return [name for name in names or AUTO_FIELDS if getattr(self, name) == "auto"]

    def resolve(self, has_prior: bool) -> PPGConfig:
        """A copy with every "auto" field replaced by its value for a fresh policy
        (``has_prior=False``) or a fine-tuned one (``has_prior=True``, --init with the KL prior;
        the values and why: vpt_rl/config/auto.py)."""
        return dataclasses.replace(self, **{name: self._decided(name, has_prior) for name in AUTO_FIELDS})

    def _decided(self, name: str, has_prior: bool) -> Any:
        """One auto field's value: its "auto" value, or the given one as that value's type."""
        value, given = auto_value(name, has_prior), getattr(self, name)
        return value if given == "auto" else type(value)(given)


@dataclass
class LogConfig:
    """TensorBoard / console / CSV logging (all x-axes are env frames)."""

    interval: int = 1
    """Write the scalars every this many iterations (1 = every iteration)."""
    image_interval: int = 50
    """Write an image strip of env 0's view every this many iterations (0 = never)."""
    image_frames: int = 8
    """Frames in each image strip (evenly spaced over env 0's last segment)."""
    csv: bool = True
    """Also write progress.csv in the run folder."""
    stdout: bool = False
    """Also print SB3's key/value table to the console each write (the progress bar is always shown)."""
    progress: bool = True
    """Show the console progress bar (frames, fps, return, ETA)."""

    def __post_init__(self) -> None:
        _positive("log", interval=self.interval, image_frames=self.image_frames)
        _non_negative("log", image_interval=self.image_interval)


@dataclass
class PPGCkptConfig(CkptConfig):
    """Checkpoints of a PPG run: the shared fields, plus what a rank's part holds."""

    aux_buffer: bool = True
    """Keep the aux buffer (the last N_pi segments) in each rank's checkpoint file, so a resume is
    exact. false: much smaller checkpoints (the buffer is most of a rank's file: docs/scaling.md),
    but after a resume the aux cycle restarts: the first aux phase waits for N_pi new segments, so
    the resumed run differs from an uninterrupted one from that aux phase on."""


@dataclass
class TrainConfig:
    """Everything `train_ppo.py` needs besides the --init file."""

    seed: int = 0
    """Seeds python, numpy and torch, the action sampler and the envs (env i gets seed + i)."""
    total_frames: int = 73_728
    """Env frames (summed over envs) of the whole run; schedules are defined over it (the default
    is about 4.5 minutes on 2 CPU cores: enough to watch a fresh policy learn)."""
    stop_after_frames: int | None = None
    """End this invocation after this many more frames (checkpoint written); --resume continues
    (null = run to total_frames)."""
    time_limit: float | None = None
    """End this invocation after this many seconds of training (checkpoint written; null = no limit)."""
    device: str = "auto"
    """"cpu", "cuda", "cuda:N" or "auto" (cuda when available)."""
    torch_threads: int | None = 1
    """torch intra-op threads of the trainer process, set by train_ppo.py: 1 leaves the other cores
    to the env workers (on a busy 2-core machine, 2 threads spin-wait and run 10x slower); null =
    torch's default (all cores: better for big models on CPU)."""
    run_name: str | None = None
    """Output folder runs/NAME; null = config name + timestamp."""
    model: ModelConfig = field(default_factory=ModelConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    ppg: PPGConfig = field(default_factory=PPGConfig)
    log: LogConfig = field(default_factory=LogConfig)
    ckpt: PPGCkptConfig = field(default_factory=PPGCkptConfig)
    perf: PerfConfig = field(default_factory=PerfConfig)

    def __post_init__(self) -> None:
        _positive("top level", total_frames=self.total_frames)
        if self.stop_after_frames is not None:
            _positive("top level", stop_after_frames=self.stop_after_frames)
        if self.time_limit is not None:
            _positive("top level", time_limit=self.time_limit)
        if self.torch_threads is not None:
            _positive("top level", torch_threads=self.torch_threads)
        if not (self.device in ("cpu", "cuda", "auto") or self.device.startswith("cuda:")):
            raise ConfigError(f"device must be cpu, cuda, cuda:N or auto; got {self.device!r}")
        if self.ppg.n_minibatches > self.env.num_envs:
            raise ConfigError(
                f"ppg.n_minibatches ({self.ppg.n_minibatches}) must be <= env.num_envs "
                f"({self.env.num_envs}): minibatches are whole env rows"
            )

    def resolved(self, has_prior: bool) -> TrainConfig:
        """A copy with every "auto" PPG field decided for a fresh policy (``has_prior=False``) or a
        fine-tuned one: the config a run uses, and what its config.yaml holds."""
        return dataclasses.replace(self, ppg=self.ppg.resolve(has_prior))

    @property
    def frames_per_iter(self) -> int:
        """Env frames collected per iteration (num_envs * segment_len)."""
        return self.env.num_envs * self.ppg.segment_len

    @property
    def num_iterations(self) -> int:
        """Iterations needed to reach total_frames (the last one may overshoot it)."""
        return math.ceil(self.total_frames / self.frames_per_iter)


def load_config(
    paths: Iterable[str | os.PathLike] = (), overrides: Iterable[str] = (), base: dict | None = None
) -> TrainConfig:
    """Defaults, then each YAML file in order, then dotted ``key=value`` overrides.

    ``base`` (a nested dict, e.g. a saved run's config.yaml) replaces the defaults as the first
    layer. Raises `ConfigError` naming the file and field for unknown keys and bad values.
    """
    return load_layers(TrainConfig, paths, overrides, base=base)


def read_config(path: str | os.PathLike) -> TrainConfig:
    """Read one saved config.yaml (strict)."""
    return read_config_file(TrainConfig, path)


def save_config(config: TrainConfig, path: str | os.PathLike) -> None:
    """Write the resolved config as YAML (atomically); `read_config` reads it back equal."""
    save_yaml(config, path)
