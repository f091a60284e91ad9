"""Strict typed configs: dataclasses <-> nested dicts, YAML layering and dotted overrides.

Why hand-written and not OmegaConf/Hydra: we need exactly three things (unknown keys are errors
that name the field, values are type-checked against the dataclass annotations, later YAML layers
and ``a.b=c`` overrides win) and no interpolation or config-group machinery; this is ~150 lines with
no extra dependency.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from vpt_rl.atomic import atomic_write_text
from vpt_rl.errors import VPTRLError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


class ConfigError(VPTRLError, ValueError):
    """A config file, override or field value is invalid; the message names the field."""


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against annotation ``tp`` (allowing int -> float) and return it."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: must be one of {list(args)}, got {value!r}")
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, prefix=where)
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            items = [_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args))]
        else:
            item_tp = args[0] if args else Any
            items = [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if (origin is tuple or tp is tuple) else items
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        key_tp, val_tp = args if args else (Any, Any)
        return {
            _coerce(k, key_tp, f"{where}.key"): _coerce(v, val_tp, f"{where}.{k}") for k, v in value.items()
        }
    if tp is float:
        if isinstance(value, str):
            # YAML 1.1 reads "2e-5" (no dot) as a string; accept numeric strings for float fields.
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    return value


def from_dict(cls: type[T], data: Mapping[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from a nested mapping; unknown keys and bad types raise ConfigError.

    Missing keys take the dataclass defaults. ``__post_init__`` validation errors (ConfigError or
    ValueError) are re-raised as ConfigError with the section name.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix or cls.__name__}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = prefix or "top level"
        raise ConfigError(
            f"unknown config key(s) {', '.join(prefix + '.' + k if prefix else k for k in unknown)} "
            f"({where} accepts: {', '.join(sorted(fields))})"
        )
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(value, hints[name], f"{prefix}.{name}" if prefix else name)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:  # ConfigError too: its message gains the section
        raise ConfigError(f"{prefix or cls.__name__}: {e}") from e


def to_dict(obj: Any) -> Any:
    """Dataclass -> plain nested dict/list (YAML- and JSON-safe)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def deep_merge(base: dict, update: Mapping) -> dict:
    """Return ``base`` updated recursively by ``update`` (mappings merge, everything else replaces)."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def read_yaml(path: str | os.PathLike) -> dict:
    """Read one YAML layer; an empty file is an empty mapping. Errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"ppg.lr=2e-5"`` -> (["ppg", "lr"], 2e-05); the value is parsed as YAML (so ``null``,
    ``true``, ``[1,2]`` work)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.sub=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"override {text!r}: value is not valid YAML: {e}") from e
    return key.split("."), value


def apply_overrides(data: dict, overrides: Iterable[str], cls: type | None = None) -> dict:
    """Apply dotted ``key=value`` overrides to a nested dict. With ``cls`` given, a path that is
    not a field of the dataclass tree is an error naming it (even where the YAML left it out)."""
    out = dict(data)
    for text in overrides:
        path, value = parse_override(text)
        if cls is not None:
            _check_path(cls, path, text)
        node = out
        for part in path[:-1]:
            child = node.get(part)
            child = dict(child) if isinstance(child, Mapping) else {}
            node[part] = child
            node = child
        node[path[-1]] = value
    return out


def _check_path(cls: type, path: list[str], text: str) -> None:
    tp: Any = cls
    for i, part in enumerate(path):
        if not dataclasses.is_dataclass(tp):
            if typing.get_origin(tp) is dict or tp is dict or tp is Any:
                return  # free-form mapping (e.g. env kwargs): any key is allowed below it
            raise ConfigError(f"override {text!r}: {'.'.join(path[:i])} is not a section")
        names = {f.name for f in dataclasses.fields(tp)}
        if part not in names:
            where = ".".join(path[:i]) or "top level"
            raise ConfigError(
                f"override {text!r}: unknown key {'.'.join(path[: i + 1])} "
                f"({where} accepts: {', '.join(sorted(names))})"
            )
        tp = typing.get_type_hints(tp)[part]
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            non_none = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = non_none[0] if len(non_none) == 1 else Any


def load_layers(
    cls: type[T],
    paths: Iterable[str | os.PathLike] = (),
    overrides: Iterable[str] = (),
    base: Mapping | None = None,
) -> T:
    """Build ``cls`` from ``base`` (a dict), then each YAML file in order, then dotted overrides."""
    data: dict = dict(base or {})
    for path in paths:
        try:
            data = deep_merge(data, read_yaml(path))
            from_dict(cls, data)  # validate each layer so the error names the file that broke it
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") if not str(e).startswith(str(path)) else e from None
    data = apply_overrides(data, overrides, cls)
    return from_dict(cls, data)


def read_config_file(cls: type[T], path: str | os.PathLike) -> T:
    """Read one saved config.yaml into ``cls`` (strict; errors name the file and the field)."""
    try:
        return from_dict(cls, read_yaml(path))
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def save_yaml(obj: Any, path: str | os.PathLike) -> None:
    """Write a dataclass (or dict) as YAML atomically (temp file + rename)."""
    atomic_write_text(path, yaml.safe_dump(to_dict(obj), sort_keys=False))
