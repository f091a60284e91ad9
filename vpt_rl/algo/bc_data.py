"""The demonstrations a BC run trains on: the seeded train/validation split by episode, this rank's
share of the training episodes (every world_size-th, from its rank), the stream of training chunks
and (rank 0) the validation episodes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vpt_rl.algo.bc_chunks import EpisodeStream
from vpt_rl.algo.bc_setup import split_episodes
from vpt_rl.config.bc import BCConfig
from vpt_rl.config.lib import ConfigError
from vpt_rl.data.demos import Episode, list_episodes, read_episode
from vpt_rl.distributed import Dist

__all__ = ["BCData", "load_bc_data"]


@dataclass
class BCData:
    """What the BC trainer reads: its stream of training chunks, the validation episodes (rank 0;
    empty elsewhere), and the names of all training episodes (a resume checks them)."""

    stream: EpisodeStream
    val_episodes: list[Episode]
    train_names: list[str]

    def describe(self, data_dir: str | None, drop_null: bool) -> str:
        n_val = sum(len(ep) for ep in self.val_episodes)
        n_null = sum(ep.n_lines - len(ep) for ep in self.val_episodes)
        return (
            f"data: {data_dir}: {len(self.train_names)} training episodes, {len(self.val_episodes)} validation "
            f"episodes ({n_val} frames, {n_null} null-action frames dropped); drop_null={drop_null}"
        )


def load_bc_data(
    config: BCConfig, img_size: tuple[int, int], dist: Dist, log: Callable[[str], None]
) -> BCData:
    """Split, share and stream ``config.data.dir`` (frames resized to ``img_size``)."""
    data = config.data
    if data.dir is None:
        raise ConfigError("data.dir is not set: pass --data DIR")
    stems = list_episodes(data.dir)
    train_stems, val_stems = split_episodes(stems, data.val_fraction, data.min_val_episodes, config.seed)
    names = [stem.name for stem in train_stems]
    if dist.enabled:  # rank r: every world_size-th training episode, from r
        if len(train_stems) < dist.world_size:
            raise ConfigError(
                f"{len(train_stems)} training episode(s) for {dist.world_size} ranks: "
                "each rank needs at least one (record more, or launch fewer processes)"
            )
        train_stems = train_stems[dist.rank :: dist.world_size]

    def read(stem: Path) -> Episode:
        return read_episode(
            stem, img_size=img_size, drop_null=data.drop_null, fix_stuck_attack=data.fix_stuck_attack
        )

    cache: dict[int, Episode] = {}

    def load(i: int) -> Episode:
        if i in cache:
            return cache[i]
        episode = read(train_stems[i])
        if data.cache:
            cache[i] = episode
        return episode

    def on_empty(episode: Episode) -> None:
        log(f"note: episode {episode.name} has no frames left after null filtering; it is not used")

    stream = EpisodeStream(
        len(train_stems),
        load,
        config.bc.batch_rows,
        config.bc.chunk_len,
        config.seed + 7919 * dist.rank,
        on_empty,
    )
    # rank 0 validates (on every validation episode); the others skip it
    val = [read(s) for s in val_stems] if dist.is_main else []
    return BCData(stream, val, names)
