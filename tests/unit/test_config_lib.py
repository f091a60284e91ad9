"""The strict config machinery: unknown keys, bad types, layering and overrides name the field."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from vpt_rl.config.lib import ConfigError, apply_overrides, from_dict, load_layers, save_yaml, to_dict


@dataclass
class Inner:
    lr: float = 1e-3
    steps: int = 4
    mode: str = "a"
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


@dataclass
class Outer:
    seed: int = 0
    name: str | None = None
    sizes: tuple[int, int] = (32, 32)
    inner: Inner = field(default_factory=Inner)


def test_defaults_and_int_to_float() -> None:
    cfg = from_dict(Outer, {"inner": {"lr": 1}})
    assert cfg.inner.lr == 1.0 and isinstance(cfg.inner.lr, float)
    assert cfg.sizes == (32, 32)


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"sed": 1}, "sed"),
        ({"inner": {"lrr": 1}}, "inner.lrr"),
        ({"inner": {"steps": "four"}}, "inner.steps"),
        ({"inner": {"steps": True}}, "inner.steps"),
        ({"sizes": [1, 2, 3]}, "sizes"),
        ({"inner": {"lr": -1.0}}, "lr must be > 0"),
        ({"inner": 3}, "inner"),
    ],
)
def test_errors_name_the_field(data: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
        from_dict(Outer, data)


def test_overrides_parse_yaml_values_and_reject_unknown_paths() -> None:
    data = apply_overrides({}, ["inner.lr=2e-5", "name=null", "inner.extra.foo=[1, 2]"], Outer)
    cfg = from_dict(Outer, data)
    assert cfg.inner.lr == 2e-5 and cfg.name is None and cfg.inner.extra == {"foo": [1, 2]}
    with pytest.raises(ConfigError, match="inner.nope"):
        apply_overrides({}, ["inner.nope=1"], Outer)
    with pytest.raises(ConfigError, match="key.sub=value"):
        apply_overrides({}, ["inner.lr"], Outer)


def test_layers_later_wins_and_bad_layer_names_file(tmp_path) -> None:
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text("seed: 1\ninner:\n  lr: 0.5\n  steps: 2\n")
    b.write_text("inner:\n  lr: 0.25\n")
    cfg = load_layers(Outer, [a, b], ["seed=3"])
    assert (cfg.seed, cfg.inner.lr, cfg.inner.steps) == (3, 0.25, 2)
    bad = tmp_path / "bad.yaml"
    bad.write_text("inner:\n  stepz: 1\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_layers(Outer, [a, bad])
    with pytest.raises(ConfigError, match="not found"):
        load_layers(Outer, [tmp_path / "missing.yaml"])


def test_save_roundtrip(tmp_path) -> None:
    cfg = from_dict(Outer, {"seed": 7, "inner": {"extra": {"k": 1}}})
    save_yaml(cfg, tmp_path / "c.yaml")
    again = load_layers(Outer, [tmp_path / "c.yaml"])
    assert to_dict(again) == to_dict(cfg)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
