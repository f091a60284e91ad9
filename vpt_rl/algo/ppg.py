"""`PPGTrainer`: the training loop of `train_ppo.py` (PPG with a KL penalty to the frozen prior).

`train()` reads top to bottom like CleanRL's loop: collect a segment, GAE, policy phase, every
N_pi iterations the auxiliary phase, log, checkpoint. The pieces live in `roller.py`, `gae.py`,
`phases.py`, `optim.py`, `ppg_setup.py`, `vpt_rl/logging.py` and `vpt_rl/checkpoint.py`.

Data parallel (torchrun): each rank owns its envs (consecutive global env indices), its rollout
segments and its aux buffer; gradients, advantage and value statistics are global (phases.py);
frames count over all ranks; rank 0 alone writes the run folder and gathers every rank's part of
the checkpoint (`vpt_rl.distributed`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
import yaml
from stable_baselines3.common.utils import set_random_seed

from vpt_rl.algo.buffer import AuxBuffer, Segment
from vpt_rl.algo.episodes import EpisodeLog
from vpt_rl.algo.optim import in_value_warmup, kl_coef_at, lr_at, make_optimizer, set_lr
from vpt_rl.algo.phases import (
    NonFiniteError,
    NonFiniteGuard,
    PhaseContext,
    aux_phase,
    compute_advantages,
    policy_phase,
)
from vpt_rl.algo.ppg_report import summary_lines
from vpt_rl.algo.ppg_setup import (
    RESUME_FIXED,
    SetupError,
    resolve_device,
    sampler_seed,
    start_run,
)
from vpt_rl.algo.prior_kl import PriorKL
from vpt_rl.algo.roller import Roller
from vpt_rl.checkpoint import capture_rng, restore_rng, save_checkpoint
from vpt_rl.config import TrainConfig, save_config
from vpt_rl.config.lib import to_dict
from vpt_rl.distributed import Dist
from vpt_rl.logging import Progress, RunLogger, image_strip
from vpt_rl.model.weights import save_weights
from vpt_rl.perf import apply_perf

__all__ = ["PPGTrainer", "NonFiniteError", "SetupError", "resolve_device", "RESUME_FIXED"]

# tags that are sums over ranks (counts), not means
SUMMED_TAGS = ("env/restarts",)


class PPGTrainer:
    """Train a VPT policy with PPG + KL to the prior; outputs in ``run_dir`` (DESIGN.md layout).

    ``init_path``: weights to start from (134 or 139 keys; the prior is their frozen copy).
    ``model_file``: official `.model` kwargs for the architecture (else detected from the weights).
    ``resume``: continue the run in ``run_dir`` exactly from its latest checkpoint (``config``
    must be the saved config, possibly with overrides such as a larger ``total_frames``).
    ``dist``: this process's rank (`vpt_rl.distributed.init_distributed`; default: one process).
    """

    def __init__(
        self,
        config: TrainConfig,
        run_dir: str | os.PathLike,
        init_path: str | os.PathLike | None = None,
        model_file: str | os.PathLike | None = None,
        resume: bool = False,
        dist: Dist | None = None,
    ) -> None:
        self.config = config
        self.dist = dist or Dist()
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.device = resolve_device(config.device)
        # Seeding in one place (DESIGN.md style 9): SB3's helper seeds python, numpy and torch
        # (the same on every rank, so a fresh policy is the same everywhere before rank 0's is
        # broadcast); each env has its own action sampler (`sampler_seed`) and each rank its own
        # minibatch order; all are checkpointed.
        set_random_seed(config.seed)
        self.shuffle_gen = torch.Generator().manual_seed(config.seed + 1 + 7919 * self.dist.rank)
        n, offset = config.env.num_envs, config.env.num_envs * self.dist.rank
        self.samplers = [
            torch.Generator(device=self.device).manual_seed(sampler_seed(config.seed, offset + i))
            for i in range(n)
        ]
        start = start_run(config, self.run_dir, init_path, model_file, resume, self.device, self.dist)
        self.policy, self.prior, self.messages = start.policy, start.prior, start.messages
        self.messages.append(apply_perf((self.policy, self.prior), config.perf, self.device))
        if self.dist.enabled:
            self.messages.append(
                f"data parallel: {self.dist.world_size} ranks x {n} envs; rank r steps envs r*{n}..r*{n}+{n - 1}"
            )
        self.policy.train()
        # the "auto" fields take their fresh-policy or fine-tuning values here (config.py)
        self.ppg = config.ppg.resolve(has_prior=self.prior is not None)
        self.optimizer = make_optimizer(self.policy, self.ppg)
        self.guard = NonFiniteGuard(config.ppg.nonfinite_patience)
        self.aux_buffer = AuxBuffer()
        self.ent_coef = self.ppg.ent_coef
        self.ctx = PhaseContext(
            self.policy,
            self.optimizer,
            self.ppg,
            self.device,
            self.shuffle_gen,
            self.guard,
            prior_kl=PriorKL.from_config(
                self.prior,
                self.ppg.prior_logprobs,
                self.policy.config,
                self.ppg.segment_len,
                max(1, self.ppg.n_minibatches),
            ),
            dist=self.dist,
        )
        self.episodes = EpisodeLog()  # over all ranks (episodes.py)
        self.frames = self.iteration = self.start_frames = 0
        self.restarts_before, self.elapsed_before, self.ev_undefined = 0, 0.0, 0
        self.resumed, self.rank_state = start.resumed, start.rank_state
        if self.resumed is not None:
            self._restore_global(self.resumed)
        self.start_time = time.monotonic()
        self.pool = None
        self.roller: Roller | None = None
        self.logger: RunLogger | None = None
        self.progress: Progress | None = None

    # ------------------------------------------------------------------ construction helpers
    def _restore_global(self, state: dict) -> None:
        self.frames, self.iteration = int(state["frames"]), int(state["iteration"])
        self.restarts_before = int(state.get("restarts", 0))
        self.elapsed_before = float(state.get("elapsed", 0.0))
        self.ev_undefined = int(state.get("ev_undefined", 0))
        self.optimizer.load_state_dict(state["optimizer"])
        self.guard.streak, self.guard.total = state["guard"]
        self.episodes.load_state_dict(state["episodes"])

    def _make_env(self):
        from vpt_rl.envs.factory import make_pool

        return make_pool(self.config.env, self.policy.config.img_size, self.dist.rank, self.run_dir.name)

    def _start(self) -> None:
        """Open the outputs (rank 0), start the envs (restoring their states on resume)."""
        cfg = self.config
        offset = cfg.env.num_envs * self.dist.rank
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, self.run_dir / "config.yaml")
            suffix = f"_from_{self.frames:012d}" if self.resumed is not None else ""
            self.logger = RunLogger(self.run_dir, csv=cfg.log.csv, stdout=cfg.log.stdout, csv_suffix=suffix)
            self.logger.text(
                "config",
                "    " + yaml.safe_dump(to_dict(cfg), sort_keys=False).replace("\n", "\n    "),
                self.frames,
            )
        self.pool = self._make_env()
        self.roller = Roller(
            self.pool,
            self.policy,
            cfg.ppg.segment_len,
            self.device,
            self.samplers,
            prior_kl=self.ctx.prior_kl,
            overlap=cfg.env.use_overlap(self.device.type),
            env_offset=offset,
        )
        obs, _ = self.pool.reset(seed=cfg.seed + offset)  # env i of rank r: seed + r * num_envs + i
        self.roller.start(obs)
        if self.rank_state is not None:
            self._restore_rank(self.rank_state)
            self.rank_state = None
        # made once the envs run, so its fps is the training loop's (env start-up is not a frame)
        self.progress = Progress(
            cfg.total_frames,
            self.frames,
            enabled=cfg.log.progress and self.dist.is_main,
            desc=self.run_dir.name,
        )
        for msg in self.messages:
            self.say(msg)
        self.say(f"TensorBoard: tensorboard --logdir {self.run_dir.parent}")

    def _restore_rank(self, state: dict) -> None:
        if state["aux_buffer"] is not None:  # None: saved with ckpt.aux_buffer false
            self.aux_buffer.load_state_dict(state["aux_buffer"])
        restore_rng(state["rng"], {"shuffle": self.shuffle_gen})
        env_states = state.get("env_states")
        if env_states is not None and self.pool.supports_state and all(s is not None for s in env_states):
            self.pool.set_state(env_states)
            self.roller.load_state_dict(state["roller"], restore_envs=True)
            return
        # MineRL cannot restore its world: fresh episodes, first=True; the episodes cut at the
        # checkpoint were already bootstrapped from V(next obs) in their last segment, which is
        # exactly the truncation treatment (DESIGN.md "Decisions").
        self.roller.load_state_dict(state["roller"], restore_envs=False)
        self.say(
            f"envs cannot restore their state: {self.pool.num_envs} episodes restarted (treated as truncated)"
        )

    def say(self, msg: str) -> None:
        """A console line (above the progress bar) that is also appended to runs/NAME/train.log
        (rank 0 only)."""
        if not self.dist.is_main:
            return
        (self.progress.write if self.progress is not None else print)(msg)
        with open(self.run_dir / "train.log", "a") as f:
            f.write(msg + "\n")

    # ------------------------------------------------------------------ the loop
    def _done(self) -> bool:
        cfg = self.config
        done = self.frames >= cfg.total_frames
        if cfg.stop_after_frames is not None and self.frames - self.start_frames >= cfg.stop_after_frames:
            done = True
        if cfg.time_limit is not None and time.monotonic() - self.start_time >= cfg.time_limit:
            done = True
        # rank 0's clock decides for everyone: ranks that stop at different iterations would hang
        return bool(self.dist.broadcast(done)) if cfg.time_limit is not None else done

    def train(self) -> dict[str, float]:
        """Run until total_frames (or stop_after_frames more frames, or time_limit seconds); returns the
        last logged scalars."""
        last: dict[str, float] = {}
        try:
            self.start_time = time.monotonic()  # time/elapsed and time_limit include the env start-up
            self._start()
            self.start_frames = self.frames
            while not self._done():
                last = self._iteration()
            with self.progress.phase("final checkpoint", announce=True):
                self._save()
            self.progress.update(self.frames)
            self.progress.close()
            self._summary()
        except NonFiniteError as e:
            self.say(f"stopped: {e}")
            raise
        finally:
            self.close()
        return last

    def _iteration(self) -> dict[str, float]:
        cfg = self.config
        t0 = time.monotonic()
        lr = lr_at(cfg.ppg, self.frames, cfg.total_frames)
        set_lr(self.optimizer, lr)
        rho = kl_coef_at(cfg.ppg, self.frames, self.prior is not None)
        with self.progress.phase("rollout"):
            seg = self.roller.collect()
        t_rollout = time.monotonic() - t0
        new_frames = seg.num_frames * self.dist.world_size  # frames count over all ranks
        for record in sorted(r for rank in self.dist.all_gather(self.roller.stats.drain()) for r in rank):
            self.episodes.add(record)  # (env step, global env) order: as one process would see them
        # the frames are collected: count them now, so the phases below show against them
        self.progress.update(self.frames + new_frames, self.episodes.mean_return())
        compute_advantages(seg, cfg.ppg)
        warmup = in_value_warmup(cfg.ppg, self.frames)
        with self.progress.phase("policy phase"):
            scalars = policy_phase(
                self.ctx, seg, kl_coef=rho, ent_coef=self.ent_coef, train_policy=not warmup
            )
        t_aux = 0.0
        if cfg.ppg.e_aux > 0:  # e_aux = 0: plain PPO, nothing buffered
            self.aux_buffer.add(seg, keep_last=cfg.ppg.n_pi)
            # why: an aux phase moves the shared trunk, which the value warm-up keeps fixed; the
            # first one runs after the warm-up, on the last N_pi segments (issue 12 item 3)
            if len(self.aux_buffer) >= cfg.ppg.n_pi and not warmup:
                t_aux0 = time.monotonic()
                with self.progress.phase("aux phase", announce=True):
                    scalars.update(aux_phase(self.ctx, self.aux_buffer))
                self.aux_buffer.clear()
                t_aux = time.monotonic() - t_aux0
        self.frames += new_frames
        self.iteration += 1
        if "train/explained_variance" not in scalars:  # computed over all ranks: same everywhere
            self.ev_undefined += 1
        scalars.update(self._rollout_scalars(seg, rho, lr, warmup, time.monotonic() - t0, t_rollout, t_aux))
        scalars = self.dist.mean_scalars(scalars, summed=SUMMED_TAGS)
        if self.iteration % cfg.log.interval == 0:
            self._write(scalars)
        if self.dist.is_main and cfg.log.image_interval and self.iteration % cfg.log.image_interval == 0:
            self.logger.images(
                "rollout/frames", image_strip(seg.img_bthwc[0], cfg.log.image_frames), self.frames
            )
        if cfg.ckpt.interval and self.iteration % cfg.ckpt.interval == 0 and not self._done():
            with self.progress.phase("checkpoint", announce=True):
                self._save()  # (the final checkpoint is written after the loop)
        return scalars

    def _write(self, scalars: dict[str, float]) -> None:
        if not self.dist.is_main:
            return
        dropped = self.logger.write(scalars, self.frames)
        if dropped:  # a bug if it happens: every statistic is computed to be finite (issue 10)
            self.say(f"warning: non-finite scalars not logged at {self.frames} frames: {', '.join(dropped)}")

    def _summary(self) -> None:
        """What a newcomer wants to see at the end (`ppg_report.summary_lines`)."""
        if not self.dist.is_main:
            return
        seconds = time.monotonic() - self.start_time
        for line in summary_lines(
            self.episodes,
            self.frames,
            self.frames - self.start_frames,
            seconds,
            self.progress.fps,
            self.run_dir,
        ):
            self.say(line)

    def _rollout_scalars(
        self, seg: Segment, rho: float, lr: float, warmup: bool, dt: float, t_rollout: float, t_aux: float
    ) -> dict:
        eps = self.episodes
        out = {
            "train/kl_coef": rho,
            "train/lr": lr,
            "train/ent_coef": self.ent_coef,
            "train/value_warmup": float(warmup),
            "train/skipped_updates": float(self.guard.total),
            "rollout/reward_mean": float(seg.reward_bt.mean()),
            "rollout/value_mean": float(seg.vpred_bt.mean()),
            "rollout/episodes": float(eps.completed),
            "train/explained_variance_undefined": float(self.ev_undefined),
            # why: frames (all ranks) per wall-clock second of the whole invocation, so an
            # iteration that runs the aux phase or a checkpoint does not show a misleading
            # collapse (issue 10)
            "time/fps": (self.frames - self.start_frames) / max(time.monotonic() - self.progress.t0, 1e-9),
            "time/rollout_fps": seg.num_frames * self.dist.world_size / max(t_rollout, 1e-9),
            "time/iteration_s": dt,
            "time/aux_phase_s": t_aux,
            "time/iteration": float(self.iteration),
            "time/frames": float(self.frames),
            "time/elapsed": self._elapsed(),
            "env/restarts": float(self.pool.restarts) + (self.restarts_before if self.dist.is_main else 0.0),
        }
        out.update(eps.scalars())
        return out

    # ------------------------------------------------------------------ checkpoint / close
    def _save(self) -> None:
        """A sharded checkpoint (`vpt_rl.checkpoint`): every rank writes its own part (roller,
        envs, aux buffer, RNG), rank 0 the weights and the replicated state; nothing large crosses
        the process group. A resume on the same number of ranks continues each exactly."""
        self.dist.check_in_sync(self.policy, f"checkpoint at {self.frames} frames")
        mine = {
            "roller": self.roller.state_dict(),
            "env_states": self.pool.get_state() if self.pool.supports_state else None,
            # ckpt.aux_buffer false: the buffered segments are dropped (the aux cycle restarts on resume)
            "aux_buffer": self.aux_buffer.state_dict() if self.config.ckpt.aux_buffer else None,
            "rng": capture_rng({"shuffle": self.shuffle_gen}),
        }
        restarts = self.dist.sum_all(self.pool.restarts)[0]
        state = None
        if self.dist.is_main:
            state = {
                "iteration": self.iteration,
                "vpt_config": self.policy.config.to_model_kwargs(),
                "has_prior": self.prior is not None,
                "optimizer": self.optimizer.state_dict(),
                "guard": (self.guard.streak, self.guard.total),
                "ev_undefined": self.ev_undefined,
                "episodes": self.episodes.state_dict(),
                "restarts": self.restarts_before + int(restarts),
                "elapsed": self._elapsed(),
                "config": to_dict(self.config),
            }
        save_checkpoint(
            self.ckpt_dir,
            self.frames,
            lambda p: save_weights(self.policy, p),
            state,
            mine,
            self.config.ckpt.keep_last,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
            barrier=self.dist.barrier,
        )

    def _elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.start_time

    def close(self) -> None:
        """Stop the env workers and flush the logs (idempotent)."""
        if self.pool is not None:
            self.pool.close()
            self.pool = None
        if self.logger is not None:
            self.logger.close()
            self.logger = None
        if self.progress is not None:
            self.progress.close()
            self.progress = None
