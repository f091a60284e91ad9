"""`BCTrainer`: behavioural cloning of a VPT policy on VPT-format demonstrations.

The trainer takes what it trains: the policy, the frozen prior of the KL term (or None), the data
(`vpt_rl.algo.bc_data.BCData`), the config, the run folder and the process group;
`vpt_rl.algo.bc_build.build_bc_trainer` does the file work (--init, --model-file, --resume).

`train()` reads top to bottom: next chunk -> forward with carried memory -> NLL (+ KL to the
initial policy) -> backward -> clip -> AdamW step -> detach memory -> log / validate /
checkpoint. Checkpoints are plain 134-key state dicts (loadable by the official agent and by
`train_ppo.py --init`) plus the training state needed to resume exactly (sharded per rank:
`vpt_rl.checkpoint`; its keys are spelt in `state_dict` / `rank_state_dict` / `load_state_dict`).

Data parallel (torchrun, `vpt_rl.distributed`): rank r streams its own share of the training
episodes (every world_size-th, from r), gradients are averaged over ranks, frames count over all
ranks; rank 0 validates, logs and writes the run folder; each rank writes its own stream position
and memory into its checkpoint file. The data folder, --init and the run folder must be readable
on every node.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
import yaml

from vpt_rl.algo.bc_chunks import Chunk, bc_loss, validation_chunks
from vpt_rl.algo.bc_data import BCData
from vpt_rl.algo.optim import lr_at, set_lr
from vpt_rl.algo.phases import NonFiniteError, NonFiniteGuard
from vpt_rl.checkpoint import save_checkpoint
from vpt_rl.config.bc import BCConfig, save_bc_config
from vpt_rl.config.lib import to_dict
from vpt_rl.distributed import Dist
from vpt_rl.model.policy import VPTPolicy
from vpt_rl.model.state import state_detach, state_to
from vpt_rl.model.weights import save_weights
from vpt_rl.run_dir import ResumeError, RunDir, minutes
from vpt_rl.run_log import Progress, RunLogger

__all__ = ["BCTrainer", "STATE_KIND"]

STATE_KIND = "bc"  # marks a BC training state, so a PPG run folder is not resumed as BC


class BCTrainer:
    """Behavioural cloning of ``policy`` on ``data``; outputs in ``run`` (module docstring)."""

    def __init__(
        self,
        policy: VPTPolicy,
        prior: VPTPolicy | None,
        data: BCData,
        config: BCConfig,
        run: RunDir,
        dist: Dist | None = None,
    ) -> None:
        self.policy, self.prior, self.data, self.config, self.run = policy, prior, data, config, run
        self.dist = dist or Dist()
        self.device = next(policy.parameters()).device
        self.stream = data.stream
        self.val_episodes = data.val_episodes
        groups = policy.param_groups(config.bc.weight_decay)
        self.params = [p for group in groups for p in group["params"]]
        self.optimizer = torch.optim.AdamW(groups, lr=config.bc.lr, eps=config.bc.adam_eps)
        # one policy for non-finite losses in both trainers: skip the update on every rank, stop
        # after K in a row (docs/implementation_details.md item 25)
        self.guard = NonFiniteGuard(config.bc.nonfinite_patience, section="bc")
        self.frames, self.updates = 0, 0
        rows = config.bc.batch_rows
        self.state = policy.initial_state(rows, self.device)
        self.prior_state = prior.initial_state(rows, self.device) if prior is not None else None
        self.logger: RunLogger | None = None
        if self.dist.enabled:
            self.log(
                f"data parallel: {self.dist.world_size} ranks x {rows} rows, each with its share of the episodes"
            )

    def log(self, message: str) -> None:
        """Print a message and keep it in runs/NAME/train.log (rank 0 only)."""
        self.run.log(message)

    # ------------------------------------------------------------------ checkpoint state
    def state_dict(self) -> dict[str, Any]:
        """The replicated part of a checkpoint (rank 0 writes it)."""
        return {
            "kind": STATE_KIND,
            "updates": self.updates,
            "vpt_config": self.policy.config.to_model_kwargs(),
            "optimizer": self.optimizer.state_dict(),
            "guard": (self.guard.streak, self.guard.total),
            "train_episodes": self.data.train_names,
        }

    def rank_state_dict(self) -> dict[str, Any]:
        """This rank's part: its stream position and memory states."""
        return {
            "stream": self.stream.get_state(),
            "memory": state_to(self.state, "cpu"),
            "prior_memory": None if self.prior_state is None else state_to(self.prior_state, "cpu"),
        }

    def load_state_dict(self, saved: dict[str, Any], rank: dict[str, Any]) -> None:
        """Continue a checkpoint (its replicated part ``saved`` and this rank's ``rank``)."""
        self.frames, self.updates = int(saved["frames"]), int(saved["updates"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.guard.streak, self.guard.total = saved.get("guard", (0, 0))
        names = self.data.train_names
        if saved["train_episodes"] != names:
            raise ResumeError(
                f"--resume: the training episodes in {self.config.data.dir} differ from the run's "
                f"({len(names)} now, {len(saved['train_episodes'])} then); resume needs the same data"
            )
        self.stream.set_state(rank["stream"])
        self.state = state_to(rank["memory"], self.device)
        if self.prior is not None:
            if rank["prior_memory"] is None:
                raise ResumeError(
                    "bc.kl_coef > 0 on resume, but the run was trained without a prior (kl_coef 0)"
                )
            self.prior_state = state_to(rank["prior_memory"], self.device)

    def save_checkpoint(self) -> Path:
        """A sharded checkpoint (`vpt_rl.checkpoint`): step_{frames}.weights (the official layout,
        no aux head) and the replicated state from rank 0, each rank's part in its own file, then
        the manifest and latest.*."""
        self.dist.check_in_sync(self.policy, f"BC checkpoint at {self.frames} frames")
        return save_checkpoint(
            self.run.ckpt_dir,
            self.frames,
            lambda path: save_weights(self.policy, path, include_aux=False),
            self.state_dict() if self.dist.is_main else None,
            self.rank_state_dict(),
            self.config.ckpt.keep_last,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
            barrier=self.dist.barrier,
        )

    # ------------------------------------------------------------------ train
    def train(self) -> dict[str, float]:
        """Run until total_frames (or stop_after_frames); returns the last logged metrics."""
        cfg = self.config
        self.run.save_config(save_bc_config, cfg)
        if self.dist.is_main:  # a resumed run writes a new CSV (SB3's CSV writer would truncate the old one)
            suffix = f"_from_{self.frames}" if self.frames else ""
            self.logger = RunLogger(self.run.path, csv=True, csv_suffix=suffix)
            self.logger.text("config", "```yaml\n" + yaml.safe_dump(to_dict(cfg), sort_keys=False) + "```")
        stop = (
            cfg.total_frames
            if cfg.stop_after_frames is None
            else min(cfg.total_frames, cfg.stop_after_frames)
        )
        start_frames, t_start = self.frames, time.monotonic()
        # why Progress, not a bare tqdm bar: plain lines when stdout is not a terminal, and the
        # validation / checkpoint pauses are named on the line while they run
        progress = Progress(
            cfg.total_frames, self.frames, enabled=cfg.log.progress and self.dist.is_main, desc="bc"
        )
        metrics: dict[str, float] = {}
        t_last, frames_last = time.perf_counter(), self.frames
        try:
            while self.frames < stop:
                metrics = self._update(self.stream.next_chunk())
                self.frames += cfg.frames_per_update * self.dist.world_size  # frames of all ranks
                self.updates += 1
                scalars: dict[str, float] = {}
                if self.updates % cfg.log.interval == 0:
                    now = time.perf_counter()
                    metrics["fps"] = (self.frames - frames_last) / max(now - t_last, 1e-9)
                    t_last, frames_last = now, self.frames
                    scalars.update(self.dist.mean_scalars(self._train_scalars(metrics)))
                    progress.current = f"loss={metrics['loss']:.3f}"
                progress.update(self.frames)
                if cfg.log.val_interval and self.updates % cfg.log.val_interval == 0:
                    with progress.phase("validation"):
                        scalars.update(self._validate(metrics))
                if scalars and self.logger is not None:
                    self.logger.write(scalars, self.frames)
                if cfg.ckpt.interval and self.updates % cfg.ckpt.interval == 0:
                    with progress.phase("checkpoint", announce=True):
                        self.save_checkpoint()
            with progress.phase("final validation + checkpoint", announce=True):
                val = self._validate(metrics)
                if self.logger is not None:
                    self.logger.write(val, self.frames)
                self.save_checkpoint()
        except NonFiniteError as e:
            self.log(f"stopped: {e}")
            raise
        finally:
            progress.close()
            if self.logger is not None:
                self.logger.close()
        self._summary(metrics, self.frames - start_frames, time.monotonic() - t_start)
        return metrics

    def _summary(self, metrics: dict[str, float], frames: int, seconds: float) -> None:
        """Frames, time, the final losses, where the files are and the plot (as train_ppo.py)."""
        lines = [f"done: {self.frames:,} frames ({frames:,} in this invocation) in {minutes(seconds)}"]
        if "val_loss" in metrics:
            lines.append(
                f"validation: nll {metrics['val_loss']:.3f}, button accuracy {metrics['val_acc_buttons']:.3f}, "
                f"camera accuracy {metrics['val_acc_camera']:.3f}"
            )
        self.run.summary(lines, checkpoint_note=" (RL from it: train_ppo.py --init <that file>)")

    def _update(self, chunk: Chunk) -> dict[str, float]:
        batch = chunk.to_torch(self.device)
        self.policy.train()
        out, new_state = self.policy(batch["img"], batch["first"], self.state)
        prior_logprobs = None
        if self.prior is not None:
            with torch.no_grad():
                prior_out, self.prior_state = self.prior(batch["img"], batch["first"], self.prior_state)
            prior_logprobs = prior_out.logprobs
        losses = bc_loss(out.logprobs, batch["action"], None, prior_logprobs, self.config.bc.kl_coef)
        lr = lr_at(self.config.bc.lr, self.config.bc.lr_schedule, self.frames, self.config.total_frames)
        self.optimizer.zero_grad(set_to_none=True)
        ok = bool(torch.isfinite(losses["loss"]))
        if self.dist.enabled:  # every rank skips, or none: the replicas must stay equal
            ok = self.dist.sum_all(0.0 if ok else 1.0)[0] == 0.0
        grad_norm = float("nan")
        if ok:
            losses["loss"].backward()
            self.dist.average_gradients_(self.params)  # data parallel: the gradient of the global batch
            # why: a real clip over a list of tensors; the released script passed an already consumed
            # parameter generator, so its clip_grad_norm_ saw no tensors and did nothing (docs/vpt_format.md §8)
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, self.config.bc.max_grad_norm))
            ok = bool(torch.isfinite(torch.tensor(grad_norm)))
        if ok:
            set_lr(self.optimizer, lr)
            self.optimizer.step()
        else:
            self.optimizer.zero_grad(set_to_none=True)
        self.guard.record(ok, f"BC update at {self.frames} frames")
        # why: truncated backprop through time, memory carried to the next chunk of each episode
        self.state = state_detach(new_state)
        out_metrics = {k: float(v.detach()) for k, v in losses.items()}
        out_metrics["grad_norm"] = grad_norm
        out_metrics["lr"] = lr
        return out_metrics

    @torch.no_grad()
    def _validate(self, metrics: dict[str, float]) -> dict[str, float]:
        """Mean NLL and accuracies over every validation frame (fresh memory, no gradients); they
        are added to ``metrics`` and returned as TensorBoard scalars."""
        if not self.val_episodes:
            return {}
        self.policy.eval()
        rows = min(self.config.bc.batch_rows, len(self.val_episodes))
        state = self.policy.initial_state(rows, self.device)
        sums = {"val_loss": 0.0, "val_acc_buttons": 0.0, "val_acc_camera": 0.0}
        n_total = 0
        for chunk in validation_chunks(self.val_episodes, rows, self.config.bc.chunk_len):
            batch = chunk.to_torch(self.device)
            out, state = self.policy(batch["img"], batch["first"], state)
            losses = bc_loss(out.logprobs, batch["action"], batch["valid"])
            n = int(chunk.valid_bt.sum())
            sums["val_loss"] += float(losses["nll"]) * n
            sums["val_acc_buttons"] += float(losses["acc_buttons"]) * n
            sums["val_acc_camera"] += float(losses["acc_camera"]) * n
            n_total += n
        self.policy.train()
        if n_total == 0:
            return {}
        result = {k: v / n_total for k, v in sums.items()}
        metrics.update(result)
        return {f"bc/{k}": v for k, v in result.items()}

    def _train_scalars(self, metrics: dict[str, float]) -> dict[str, float]:
        scalars = {
            f"bc/{k}": metrics[k]
            for k in ("loss", "nll", "kl", "acc_buttons", "acc_camera", "grad_norm", "lr")
        }
        scalars["bc/epoch"] = self.stream.epoch
        scalars["bc/skipped_updates"] = float(self.guard.total)
        scalars["time/fps"] = metrics["fps"]
        return scalars
