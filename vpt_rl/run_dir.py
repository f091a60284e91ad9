"""`RunDir`: the one owner of a run folder's files for both trainers (`runs/NAME/`).

It writes `train.log` (console lines kept with the run), `config.yaml` (the resolved config),
`load_report.txt` (what the weight loader did), checks that a resume keeps what it must (world
size, the fields the saved states depend on), and prints the end-of-run summary. Only rank 0
writes (``is_main``); on the other ranks every write is a no-op, so the trainers call the same
methods on every rank. Checkpoint files are `vpt_rl.checkpoint`'s; the folder's lock is
`vpt_rl.run_lock`'s (taken by the CLI before anything is written).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from vpt_rl.atomic import atomic_write_text
from vpt_rl.errors import VPTRLError

__all__ = ["ResumeError", "RunDir", "minutes"]


class ResumeError(VPTRLError, ValueError):
    """A resume asks for something the saved run cannot give (another world size, a changed
    field its saved states depend on, another kind of run); the message names it."""


class RunDir:
    """The run folder ``path`` (created on rank 0) and its log, config, report and summary."""

    def __init__(
        self, path: str | os.PathLike, is_main: bool = True, echo: Callable[[str], None] = print
    ) -> None:
        self.path = Path(path)
        self.is_main = is_main
        self.echo = echo  # where console lines go (a progress bar's write, or print)
        if is_main:
            self.path.mkdir(parents=True, exist_ok=True)

    @property
    def ckpt_dir(self) -> Path:
        """`runs/NAME/checkpoints`."""
        return self.path / "checkpoints"

    @property
    def name(self) -> str:
        return self.path.name

    # ------------------------------------------------------------------ writes (rank 0)
    def log(self, message: str) -> None:
        """Print ``message`` and append it to train.log (rank 0 only)."""
        if not self.is_main:
            return
        self.echo(message.rstrip("\n"))
        with open(self.path / "train.log", "a", encoding="utf-8") as f:
            f.write(message.rstrip("\n") + "\n")

    def save_config(self, save: Callable[[Any, Path], None], config: Any) -> None:
        """config.yaml, written by ``save(config, path)`` (the config module's own saver)."""
        if self.is_main:
            save(config, self.path / "config.yaml")

    def write_load_report(self, text: str) -> Path:
        """load_report.txt: what the weight loader did with --init (or that there was none)."""
        path = self.path / "load_report.txt"
        if self.is_main:
            atomic_write_text(path, text if text.endswith("\n") else text + "\n")
        return path

    def summary(self, head: Iterable[str], checkpoint_note: str = "") -> None:
        """The end-of-run lines both trainers print (and keep in train.log): ``head`` (frames,
        time, what was learned), then where the logs, checkpoint and plot are; writes the plot."""
        if not self.is_main:
            return
        from vpt_rl.run_plot import PlotError, plot_run

        lines = list(head)
        lines.append(f"logs:        {self.path} (TensorBoard events, progress.csv, train.log)")
        lines.append(f"checkpoint:  {self.ckpt_dir / 'latest.weights'}{checkpoint_note}")
        try:
            lines.append(f"plot:        {plot_run(self.path)}")
        except PlotError as e:
            lines.append(f"plot:        none ({e})")
        lines.append(f"watch:       tensorboard --logdir {self.path.parent}")
        for line in lines:
            self.log(line)

    # ------------------------------------------------------------------ resume checks
    def check_resume(
        self,
        saved_config: Mapping[str, Any],
        config: Any,
        fixed: Iterable[str],
        saved_world: int,
        world: int,
    ) -> None:
        """Raise `ResumeError` if a field in ``fixed`` (dotted) changed, or the world size did."""
        for name in fixed:
            old, new = _get_plain(saved_config, name), _get(config, name)
            if old != new:
                raise ResumeError(f"--resume: {name} was {old!r} in the run and cannot change (got {new!r})")
        self.check_world_size(saved_world, world)

    @staticmethod
    def check_world_size(saved_world: int, world: int) -> None:
        """Raise `ResumeError` unless the run is resumed by as many processes as trained it."""
        if saved_world != world:
            raise ResumeError(
                f"--resume: the run was trained by {saved_world} process(es) and this launch has {world}; "
                "resume with the same number (torchrun --nproc_per_node/--nnodes): each rank continues "
                "its own envs or data stream"
            )


def minutes(seconds: float) -> str:
    """``4 min 32 s`` (or ``12 s``)."""
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s:02d} s" if m else f"{s} s"


def _get(cfg: Any, dotted: str) -> Any:
    obj = cfg
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _get_plain(d: Mapping[str, Any], dotted: str) -> Any:
    obj: Any = d
    for part in dotted.split("."):
        obj = obj[part]
    return obj
