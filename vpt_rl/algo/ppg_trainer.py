"""`PPGTrainer`: the training loop of `train_ppo.py` (PPG with a KL penalty to the frozen prior).

The trainer takes what it trains, as Stable-Baselines3's ``PPO(policy, env)`` does: the policy,
the frozen prior (or None), the vector env, the resolved config, the run folder and the process
group. `vpt_rl.algo.ppg_setup.build_ppg_trainer` does the file work (--init, --model-file,
--resume, rank 0 reads and broadcasts) and hands it these objects.

`_iteration` reads as the algorithm: collect a segment, GAE, the policy phase, every N_pi
iterations the auxiliary phase, log, checkpoint. The pieces live in `roller.py`, `gae.py`,
`phases.py`, `optim.py`, `ppg_stats.py` (timing, rank gathering, the logged scalars),
`ppg_state.py` (what a checkpoint holds), `vpt_rl/run_dir.py` and `vpt_rl/checkpoint.py`.

Data parallel (torchrun): each rank owns its envs (consecutive global env indices), its rollout
segments and its aux buffer; gradients, advantage and value statistics are global (phases.py);
frames count over all ranks; rank 0 writes the run folder, every rank its own checkpoint part.
"""

from __future__ import annotations

import time
from typing import Any

import torch
import yaml

from vpt_rl.algo.buffer import AuxBuffer
from vpt_rl.algo.episodes import EpisodeLog
from vpt_rl.algo.gae import RunningAdvStd
from vpt_rl.algo.optim import in_value_warmup, kl_coef_at, lr_at, make_optimizer, set_lr
from vpt_rl.algo.phases import (
    NonFiniteError,
    NonFiniteGuard,
    PhaseContext,
    aux_phase,
    compute_advantages,
    policy_phase,
)
from vpt_rl.algo.ppg_state import PPGTrainState
from vpt_rl.algo.ppg_stats import IterationStats
from vpt_rl.algo.prior_kl import PriorKL
from vpt_rl.algo.roller import Roller
from vpt_rl.checkpoint import save_checkpoint
from vpt_rl.config import TrainConfig, save_config
from vpt_rl.config.lib import to_dict
from vpt_rl.distributed import Dist
from vpt_rl.model.policy import VPTPolicy
from vpt_rl.model.weights import save_weights
from vpt_rl.run_dir import RunDir
from vpt_rl.run_log import Progress, RunLogger, image_strip

__all__ = ["PPGTrainer", "NonFiniteError", "sampler_seed"]


def sampler_seed(seed: int, env: int) -> int:
    """The action sampler seed of global env ``env`` (one stream per env; see `Roller`)."""
    import numpy as np

    return int(np.random.SeedSequence([seed, env]).generate_state(1)[0])


class PPGTrainer:
    """Train ``policy`` with PPG + KL to ``prior`` on ``env``; outputs in ``run``.

    ``config`` must be resolved (its "auto" fields decided: `TrainConfig.resolved`), and is what
    the run's config.yaml holds. ``env`` is a vector env with the `EnvPool` contract (this rank's
    ``config.env.num_envs`` envs; `vpt_rl.envs.factory.make_pool`), not yet reset. ``dist``: this
    process's rank (default: one process). Call `load_state_dict` to continue a checkpoint.
    """

    def __init__(
        self,
        policy: VPTPolicy,
        prior: VPTPolicy | None,
        env: Any,
        config: TrainConfig,
        run: RunDir,
        dist: Dist | None = None,
    ) -> None:
        self.policy, self.prior, self.env, self.config, self.run = policy, prior, env, config, run
        self.dist = dist or Dist()
        self.device = next(policy.parameters()).device
        self.ppg = config.ppg
        if unresolved := self.ppg.unresolved():
            raise ValueError(
                f"PPGTrainer needs a resolved config (TrainConfig.resolved(has_prior=...)); auto: {unresolved}"
            )
        n, offset = config.env.num_envs, config.env.num_envs * self.dist.rank
        # each rank its own minibatch order; each env its own action sampler (`sampler_seed`):
        # env i's actions depend only on its own stream, however envs are spread over ranks
        shuffle_gen = torch.Generator().manual_seed(config.seed + 1 + 7919 * self.dist.rank)
        self.samplers = [
            torch.Generator(device=self.device).manual_seed(sampler_seed(config.seed, offset + i))
            for i in range(n)
        ]
        self.optimizer = make_optimizer(policy, self.ppg)
        self.state = PPGTrainState(
            self.optimizer,
            NonFiniteGuard(self.ppg.nonfinite_patience),
            EpisodeLog(),
            AuxBuffer(),
            shuffle_gen,
            RunningAdvStd(self.ppg.adv_std_frames),
        )
        self.roller = Roller(
            env,
            policy,
            self.ppg.segment_len,
            self.device,
            self.samplers,
            prior_kl=PriorKL.from_config(
                prior,
                self.ppg.prior_logprobs,
                policy.config,
                self.ppg.segment_len,
                max(1, self.ppg.n_minibatches),
            ),
            overlap=config.env.use_overlap(self.device.type),
            env_offset=offset,
        )
        self.ctx = PhaseContext(
            policy,
            self.optimizer,
            self.ppg,
            self.device,
            shuffle_gen,
            self.state.guard,
            prior_kl=self.roller.prior_kl,
            dist=self.dist,
            adv_std=self.state.adv_std,
        )
        self.messages: list[str] = []  # said once the run starts (setup notes)
        if self.dist.enabled:
            self.messages.append(
                f"data parallel: {self.dist.world_size} ranks x {n} envs; rank r steps envs r*{n}..r*{n}+{n - 1}"
            )
        self.start_frames = 0
        self.start_time = time.monotonic()  # reset when train() starts (time_limit, time/elapsed)
        self.stats: IterationStats | None = None
        self.logger: RunLogger | None = None
        self.progress: Progress | None = None

    # ------------------------------------------------------------------ convenience views
    @property
    def frames(self) -> int:
        return self.state.frames

    @property
    def iteration(self) -> int:
        return self.state.iteration

    @property
    def aux_buffer(self) -> AuxBuffer:
        return self.state.aux_buffer

    # ------------------------------------------------------------------ checkpoint state
    def load_state_dict(self, replicated: dict[str, Any], rank: dict[str, Any]) -> None:
        """Continue a checkpoint: the replicated part now, this rank's part once the envs run."""
        self.state.load_state_dict(replicated)
        self.state.pending_rank = rank

    def _save(self) -> None:
        """A sharded checkpoint (`vpt_rl.checkpoint`): every rank writes its own part, rank 0 the
        weights and the replicated state; nothing large crosses the process group. A resume on
        the same number of ranks continues each rank exactly."""
        self.dist.check_in_sync(self.policy, f"checkpoint at {self.frames} frames")
        mine = self.state.rank_state_dict(self.roller, self.env, self.config.ckpt.aux_buffer)
        restarts = int(self.dist.sum_all(self.env.restarts)[0])
        replicated = None
        if self.dist.is_main:
            replicated = self.state.state_dict(
                {
                    "vpt_config": self.policy.config.to_model_kwargs(),
                    "has_prior": self.prior is not None,
                    "restarts": self.state.restarts_before + restarts,
                    "elapsed": self._elapsed(),
                    "config": to_dict(self.config),
                }
            )
        save_checkpoint(
            self.run.ckpt_dir,
            self.frames,
            lambda p: save_weights(self.policy, p),
            replicated,
            mine,
            self.config.ckpt.keep_last,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
            barrier=self.dist.barrier,
        )

    # ------------------------------------------------------------------ the loop
    def train(self) -> dict[str, float]:
        """Run until total_frames (or stop_after_frames more frames, or time_limit seconds);
        returns the last logged scalars."""
        last: dict[str, float] = {}
        try:
            self.start_time = time.monotonic()  # time/elapsed and time_limit include the env start-up
            self._start()
            while not self._done():
                last = self._iteration()
            with self._progress().phase("final checkpoint", announce=True):
                self._save()
            self._progress().update(self.frames)
            self._progress().close()
            self._summary()
        except NonFiniteError as e:
            self.say(f"stopped: {e}")
            raise
        finally:
            self.close()
        return last

    def _iteration(self) -> dict[str, float]:
        cfg, ppg, progress, stats = self.config, self.ppg, self._progress(), self._stats()
        stats.begin()
        lr = lr_at(float(ppg.lr), ppg.lr_schedule, self.frames, cfg.total_frames)
        set_lr(self.optimizer, lr)
        rho = kl_coef_at(ppg, self.frames, self.prior is not None)
        warmup = in_value_warmup(ppg, self.frames)
        with progress.phase("rollout"), stats.timed("rollout"):
            seg = self.roller.collect()
        new_frames = stats.gather_episodes(self.roller, self.state.episodes, seg)
        progress.update(self.frames + new_frames, self.state.episodes.mean_return())
        compute_advantages(seg, ppg)
        with progress.phase("policy phase"):
            scalars = policy_phase(
                self.ctx, seg, kl_coef=rho, ent_coef=float(ppg.ent_coef), train_policy=not warmup
            )
        scalars.update(self._aux_phase(seg, warmup))
        self.state.frames += new_frames
        self.state.iteration += 1
        scalars = stats.scalars(scalars, seg, self, rho=rho, lr=lr, warmup=warmup)
        self._log(scalars, seg)
        if cfg.ckpt.interval and self.iteration % cfg.ckpt.interval == 0 and not self._done():
            with progress.phase("checkpoint", announce=True):
                self._save()  # (the final checkpoint is written after the loop)
        return scalars

    def _aux_phase(self, seg: Any, warmup: bool) -> dict[str, float]:
        """Buffer the segment; every N_pi segments (after the value warm-up: an aux phase moves the
        shared trunk, which the warm-up keeps fixed; docs/implementation_details.md item 22) run
        the auxiliary phase on the last N_pi. e_aux = 0: plain PPO, nothing buffered."""
        ppg, buffer = self.ppg, self.state.aux_buffer
        if ppg.e_aux == 0:
            return {}
        buffer.add(seg, keep_last=ppg.n_pi)
        if len(buffer) < ppg.n_pi or warmup:
            return {}
        with self._progress().phase("aux phase", announce=True), self._stats().timed("aux"):
            out = aux_phase(self.ctx, buffer)
        buffer.clear()
        return out

    # ------------------------------------------------------------------ start / stop
    def _start(self) -> None:
        """Open the outputs (rank 0), reset the envs, restore a checkpoint's rank part."""
        cfg = self.config
        offset = cfg.env.num_envs * self.dist.rank
        self.run.save_config(save_config, cfg)  # resolved: what the run actually uses
        if self.dist.is_main:
            suffix = f"_from_{self.frames:012d}" if self.frames else ""
            self.logger = RunLogger(self.run.path, csv=cfg.log.csv, stdout=cfg.log.stdout, csv_suffix=suffix)
            text = yaml.safe_dump(to_dict(cfg), sort_keys=False)
            self.logger.text("config", "    " + text.replace("\n", "\n    "), self.frames)
        self.start_frames = self.frames
        obs, _ = self.env.reset(seed=cfg.seed + offset)  # env i of rank r: seed + r * num_envs + i
        self.roller.start(obs)
        if self.state.pending_rank is not None and not self.state.restore_rank(self.roller, self.env):
            self.messages.append(
                f"envs cannot restore their state: {self.env.num_envs} episodes restarted (treated as truncated)"
            )
        # made once the envs run, so its fps is the training loop's (env start-up is not a frame)
        self.progress = Progress(
            cfg.total_frames, self.frames, enabled=cfg.log.progress and self.dist.is_main, desc=self.run.name
        )
        self.run.echo = self.progress.write
        self.stats = IterationStats(self.dist, self.progress.t0)
        for msg in self.messages:
            self.say(msg)
        self.say(f"TensorBoard: tensorboard --logdir {self.run.path.parent}")

    def _done(self) -> bool:
        cfg = self.config
        done = self.frames >= cfg.total_frames
        if cfg.stop_after_frames is not None and self.frames - self.start_frames >= cfg.stop_after_frames:
            done = True
        if cfg.time_limit is not None and time.monotonic() - self.start_time >= cfg.time_limit:
            done = True
        # rank 0's clock decides for everyone: ranks that stop at different iterations would hang
        return bool(self.dist.broadcast(done)) if cfg.time_limit is not None else done

    def say(self, msg: str) -> None:
        """A console line (above the progress bar), also kept in runs/NAME/train.log (rank 0)."""
        self.run.log(msg)

    def _log(self, scalars: dict[str, float], seg: Any) -> None:
        cfg = self.config
        if not self.dist.is_main or self.logger is None:
            return
        if self.iteration % cfg.log.interval == 0:
            dropped = self.logger.write(scalars, self.frames)
            if dropped:  # a bug if it happens: every statistic is computed to be finite
                self.say(
                    f"warning: non-finite scalars not logged at {self.frames} frames: {', '.join(dropped)}"
                )
        if cfg.log.image_interval and self.iteration % cfg.log.image_interval == 0:
            self.logger.images(
                "rollout/frames", image_strip(seg.img_bthwc[0], cfg.log.image_frames), self.frames
            )

    def _summary(self) -> None:
        """What a newcomer wants to see at the end: frames, time, return from start to end, files."""
        seconds = time.monotonic() - self.start_time
        self.run.summary(
            self._stats().summary_head(self.state.episodes, self.frames, self.start_frames, seconds)
        )

    def _elapsed(self) -> float:
        return self.state.elapsed_before + time.monotonic() - self.start_time

    def _progress(self) -> Progress:
        assert self.progress is not None, "the run has not started (train() opens it)"
        return self.progress

    def _stats(self) -> IterationStats:
        assert self.stats is not None, "the run has not started (train() opens it)"
        return self.stats

    def close(self) -> None:
        """Stop the env workers and flush the logs (idempotent)."""
        if self.env is not None:
            self.env.close()
            self.env = None
        if self.logger is not None:
            self.logger.close()
            self.logger = None
        if self.progress is not None:
            self.progress.close()
            self.progress = None
