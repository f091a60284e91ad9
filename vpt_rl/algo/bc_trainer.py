"""`BCTrainer`: behavioural cloning of a VPT policy on VPT-format demonstrations.

`train()` reads top to bottom: next chunk -> forward with carried memory -> NLL (+ KL to the
initial policy) -> backward -> clip -> AdamW step -> detach memory -> log / validate /
checkpoint. Checkpoints are plain 134-key state dicts (loadable by the official agent and by
`train_ppo.py --init`) plus the training state needed to resume exactly (sharded per rank:
`vpt_rl.checkpoint`).

Data parallel (torchrun, `vpt_rl.distributed`): rank r streams its own share of the training
episodes (every world_size-th, from r), gradients are averaged over ranks, frames count over all
ranks; rank 0 validates, logs and writes the run folder; each rank writes its own stream position
and memory into its checkpoint file. The data folder, --init and the run folder must be readable
on every node.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml

from vpt_rl.algo.bc import Chunk, EpisodeStream, bc_loss, validation_chunks
from vpt_rl.algo.bc_setup import build_policy, model_config_for, resolve_device, split_episodes
from vpt_rl.atomic import atomic_write_text
from vpt_rl.checkpoint import load_latest, load_rank_state, load_state, save_checkpoint
from vpt_rl.config.bc import BCConfig
from vpt_rl.config.lib import to_dict
from vpt_rl.data.demos import Episode, list_episodes, read_episode
from vpt_rl.distributed import Dist, on_rank0
from vpt_rl.logging import Progress, RunLogger
from vpt_rl.model.config import VPTConfig
from vpt_rl.model.policy import VPTPolicy
from vpt_rl.model.state import state_detach, state_to
from vpt_rl.model.weights import load_weights, read_state_dict, save_weights
from vpt_rl.perf import apply_perf
from vpt_rl.plot import PlotError, plot_run

STATE_KIND = "bc"  # marks a BC training state, so a PPG run folder is not resumed as BC


class BCTrainer:
    """Behavioural cloning run in ``run_dir`` (see the module docstring)."""

    def __init__(
        self,
        config: BCConfig,
        run_dir: str | Path,
        init_path: str | None = None,
        model_file: str | None = None,
        resume: bool = False,
        log: Callable[[str], None] = print,
        dist: Dist | None = None,
    ) -> None:
        self.config, self.run_dir, self._print = config, Path(run_dir), log
        self.dist = dist or Dist()
        self.ckpt_dir = self.run_dir / "checkpoints"
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.device = resolve_device(config.device)
        saved = self._read_saved_state() if resume else None
        if saved is not None:
            # the run holds its own architecture and prior, so --resume needs no --init
            init_path, model_file = saved["init_path"], saved["model_file"]
            model_cfg, how = VPTConfig.from_model_kwargs(*saved["vpt_config"]), "architecture from the run"
        else:
            model_cfg, how = model_config_for(init_path, model_file, config.model.preset)
        self.init_path, self.model_file, self.model_cfg = init_path, model_file, model_cfg
        self.policy = build_policy(model_cfg, config.seed, self.device)
        self.log(how)
        self._load_initial_weights(saved)
        self.dist.broadcast_module_(self.policy)  # every rank starts from rank 0's weights
        self.prior = self._build_prior(resumed=saved is not None) if config.bc.kl_coef > 0 else None
        self.log(apply_perf((self.policy, self.prior), config.perf, self.device))

        self._setup_data()
        self.params = [
            p for group in self.policy.param_groups(config.bc.weight_decay) for p in group["params"]
        ]
        self.optimizer = torch.optim.AdamW(
            self.policy.param_groups(config.bc.weight_decay), lr=config.bc.lr, eps=config.bc.adam_eps
        )
        self.frames, self.updates = 0, 0
        rows = config.bc.batch_rows
        self.state = self.policy.initial_state(rows, self.device)
        self.prior_state = self.prior.initial_state(rows, self.device) if self.prior is not None else None
        if saved is not None:
            self._restore(saved)
        if self.dist.enabled:
            self.log(
                f"data parallel: {self.dist.world_size} ranks x {rows} rows, each with its share of the episodes"
            )
        self.logger = None
        if self.dist.is_main:  # a resumed run writes a new CSV (SB3's CSV writer would truncate the old one)
            self.logger = RunLogger(
                self.run_dir, csv=True, csv_suffix=f"_from_{self.frames}" if self.frames else ""
            )
            self.logger.text("config", "```yaml\n" + yaml.safe_dump(to_dict(config), sort_keys=False) + "```")

    # ------------------------------------------------------------------ setup
    def log(self, message: str) -> None:
        """Print a message and append it to runs/NAME/train.log (rank 0 only)."""
        if not self.dist.is_main:
            return
        self._print(message)
        with open(self.run_dir / "train.log", "a", encoding="utf-8") as f:
            f.write(message.rstrip("\n") + "\n")

    def _read_saved_state(self) -> dict[str, Any]:
        """The run's training state (rank 0 reads it; each rank gets the global part and its own)."""

        def read() -> dict[str, Any]:
            saved, weights_path = load_latest(self.ckpt_dir)
            if saved.get("kind") != STATE_KIND:
                raise ValueError(
                    f"{self.ckpt_dir}: not a BC run (its training state is not from train_bc.py)"
                )
            world = int(saved.get("world_size", 1))
            if world != self.dist.world_size:
                raise ValueError(
                    f"--resume: the run was trained by {world} process(es) and this launch has "
                    f"{self.dist.world_size}; resume with the same number (each rank continues its own stream)"
                )
            saved["weights"] = read_state_dict(weights_path)
            saved["weights_path"] = weights_path
            return saved

        saved = on_rank0(self.dist, read)
        # rank 0 chose the step; every rank reads the replicated state and its own part itself,
        # so nothing large crosses the process group (vpt_rl/checkpoint.py)
        step = self.dist.broadcast(None if saved is None else saved["step"])
        if saved is None:
            saved = load_state(self.ckpt_dir / f"{step}.state.pt")
            saved["weights_path"] = self.ckpt_dir / saved["weights_file"]
            saved["weights"] = read_state_dict(saved["weights_path"])
        saved.update(load_rank_state(self.ckpt_dir, step, self.dist.rank))
        return saved

    def _load_initial_weights(self, saved: dict | None) -> None:
        if saved is not None:
            report = load_weights(self.policy, saved["weights"], mode="bc", source=str(saved["weights_path"]))
            self.log(f"resuming {self.run_dir} at {saved['frames']} frames\n{report}")
            return
        if self.init_path is None:
            text = (
                "no --init: training a fresh policy from random initialisation "
                f"(preset {self.config.model.preset}, seed {self.config.seed})\n"
            )
            self.log(text.rstrip())
        else:
            report = load_weights(self.policy, self.init_path, mode="bc")
            text = report.to_text()
            self.log(str(report))
        if self.dist.is_main:
            atomic_write_text(self.run_dir / "load_report.txt", text)

    def _build_prior(self, resumed: bool) -> VPTPolicy:
        # why: the KL anchor is the policy training started from, frozen (docs/design.md "Decisions");
        # a copy is kept in the run (checkpoints/prior.weights) as train_ppo.py does
        path = self.ckpt_dir / "prior.weights"
        if resumed and self.dist.is_main and not path.is_file():
            raise ValueError(f"bc.kl_coef > 0 on resume, but {path} is missing (the run had kl_coef 0)")
        prior = build_policy(self.model_cfg, self.config.seed, self.device)
        if resumed:
            if self.dist.is_main:
                load_weights(prior, str(path), mode="bc")
            self.dist.broadcast_module_(prior)
        else:
            prior.load_state_dict(self.policy.state_dict())
            if self.dist.is_main:
                save_weights(prior, path, include_aux=False)
            self.log(f"prior: frozen copy of the initial policy, KL coefficient {self.config.bc.kl_coef}")
        prior.requires_grad_(False)
        return prior.eval()

    def _read(self, stem: Path) -> Episode:
        data = self.config.data
        return read_episode(
            stem,
            img_size=self.policy.config.img_size,
            drop_null=data.drop_null,
            fix_stuck_attack=data.fix_stuck_attack,
        )

    def _setup_data(self) -> None:
        data = self.config.data
        if data.dir is None:
            raise ValueError("data.dir is not set: pass --data DIR")
        stems = list_episodes(data.dir)
        self.train_stems, val_stems = split_episodes(
            stems, data.val_fraction, data.min_val_episodes, self.config.seed
        )
        self.all_train_stems = self.train_stems
        if self.dist.enabled:  # rank r: every world_size-th training episode, from r
            if len(self.train_stems) < self.dist.world_size:
                raise ValueError(
                    f"{len(self.train_stems)} training episode(s) for {self.dist.world_size} ranks: "
                    "each rank needs at least one (record more, or launch fewer processes)"
                )
            self.train_stems = self.train_stems[self.dist.rank :: self.dist.world_size]
        # rank 0 validates (on every validation episode); the others skip it
        self.val_episodes = [self._read(s) for s in val_stems] if self.dist.is_main else []
        cache: dict[int, Episode] = {}

        def load(i: int) -> Episode:
            if i in cache:
                return cache[i]
            episode = self._read(self.train_stems[i])
            if data.cache:
                cache[i] = episode
            return episode

        def on_empty(episode: Episode) -> None:
            self.log(f"note: episode {episode.name} has no frames left after null filtering; it is not used")

        self.stream = EpisodeStream(
            len(self.train_stems),
            load,
            self.config.bc.batch_rows,
            self.config.bc.chunk_len,
            self.config.seed + 7919 * self.dist.rank,
            on_empty,
        )
        n_val = sum(len(ep) for ep in self.val_episodes)
        n_null = sum(ep.n_lines - len(ep) for ep in self.val_episodes)
        self.log(
            f"data: {data.dir}: {len(self.all_train_stems)} training episodes, {len(self.val_episodes)} validation "
            f"episodes ({n_val} frames, {n_null} null-action frames dropped); drop_null={data.drop_null}"
        )

    # ------------------------------------------------------------------ train
    def train(self) -> dict[str, float]:
        """Run until total_frames (or stop_after_frames); returns the last logged metrics."""
        cfg = self.config
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
                chunk = self.stream.next_chunk()
                metrics = self._update(chunk)
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
        finally:
            progress.close()
        if self.logger is not None:
            self.logger.close()
        self._summary(metrics, self.frames - start_frames, time.monotonic() - t_start)
        return metrics

    def _summary(self, metrics: dict[str, float], frames: int, seconds: float) -> None:
        """Frames, time, the final losses, where the files are and the plot (as train_ppo.py)."""
        lines = [f"done: {self.frames:,} frames ({frames:,} in this invocation) in {seconds / 60:.1f} min"]
        if "val_loss" in metrics:
            lines.append(
                f"validation: nll {metrics['val_loss']:.3f}, button accuracy {metrics['val_acc_buttons']:.3f}, "
                f"camera accuracy {metrics['val_acc_camera']:.3f}"
            )
        lines.append(f"logs:        {self.run_dir} (TensorBoard events, progress.csv, train.log)")
        lines.append(
            f"checkpoint:  {self.ckpt_dir / 'latest.weights'} (RL from it: train_ppo.py --init <that file>)"
        )
        try:
            lines.append(f"plot:        {plot_run(self.run_dir)}")
        except PlotError as e:
            lines.append(f"plot:        none ({e})")
        lines.append(f"watch:       tensorboard --logdir {self.run_dir.parent}")
        for line in lines:
            self.log(line)

    def _lr(self) -> float:
        if self.config.bc.lr_schedule == "linear":
            return self.config.bc.lr * max(0.0, 1.0 - self.frames / self.config.total_frames)
        return self.config.bc.lr

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
        finite = bool(torch.isfinite(losses["loss"]))
        if self.dist.enabled:  # every rank stops, or none
            finite = self.dist.sum_all(0.0 if finite else 1.0)[0] == 0.0
        if not finite:
            raise FloatingPointError(
                f"BC loss is {losses['loss'].item()} at update {self.updates} ({self.frames} frames)"
            )
        self.optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        self.dist.average_gradients_(self.params)  # data parallel: the gradient of the global batch
        # why: a real clip over a list of tensors; the released script passed an already consumed
        # parameter generator, so its clip_grad_norm_ saw no tensors and did nothing (docs/vpt_format.md §8)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.config.bc.max_grad_norm)
        for group in self.optimizer.param_groups:
            group["lr"] = self._lr()
        self.optimizer.step()
        # why: truncated backprop through time, memory carried to the next chunk of each episode
        self.state = state_detach(new_state)
        out_metrics = {k: float(v.detach()) for k, v in losses.items()}
        out_metrics["grad_norm"] = float(grad_norm)
        out_metrics["lr"] = self._lr()
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
        scalars["time/fps"] = metrics["fps"]
        return scalars

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> Path:
        """A sharded checkpoint (`vpt_rl.checkpoint`): step_{frames}.weights (the official layout,
        no aux head) and the replicated state from rank 0, each rank's stream position and memory
        in its own file, then the manifest and latest.*."""
        self.dist.check_in_sync(self.policy, f"BC checkpoint at {self.frames} frames")
        mine = {
            "stream": self.stream.get_state(),
            "memory": state_to(self.state, "cpu"),
            "prior_memory": None if self.prior_state is None else state_to(self.prior_state, "cpu"),
        }
        state = None
        if self.dist.is_main:
            state = {
                "kind": STATE_KIND,
                "updates": self.updates,
                "init_path": self.init_path,
                "model_file": self.model_file,
                "vpt_config": self.model_cfg.to_model_kwargs(),
                "optimizer": self.optimizer.state_dict(),
                "train_episodes": [stem.name for stem in self.all_train_stems],
            }
        return save_checkpoint(
            self.ckpt_dir,
            self.frames,
            lambda path: save_weights(self.policy, path, include_aux=False),
            state,
            mine,
            self.config.ckpt.keep_last,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
            barrier=self.dist.barrier,
        )

    def _restore(self, saved: dict[str, Any]) -> None:
        self.frames, self.updates = int(saved["frames"]), int(saved["updates"])
        self.optimizer.load_state_dict(saved["optimizer"])
        names = [stem.name for stem in self.all_train_stems]
        if saved["train_episodes"] != names:
            raise ValueError(
                f"--resume: the training episodes in {self.config.data.dir} differ from the run's "
                f"({len(names)} now, {len(saved['train_episodes'])} then); resume needs the same data"
            )
        self.stream.set_state(saved["stream"])
        self.state = state_to(saved["memory"], self.device)
        if self.prior is not None:
            if saved["prior_memory"] is None:
                raise ValueError(
                    "bc.kl_coef > 0 on resume, but the run was trained without a prior (kl_coef 0)"
                )
            self.prior_state = state_to(saved["prior_memory"], self.device)
