"""Strict weight I/O for VPT policies: read a file, check it against a policy, load or save.

Why strict: the official loader calls ``load_state_dict(..., strict=False)``, so a typo or a stripped
``net.`` prefix silently leaves layers randomly initialised (docs/vpt_format.md §2.4). Here the
official keys are always required, the 5 ``aux_value_head.*`` keys are the only optional ones
(docs/weights.md "The two modes"), and anything else raises :class:`WeightsError` before a single value is copied.

| mode | policy          | file with aux keys      | file without aux keys          |
|------|-----------------|-------------------------|--------------------------------|
| rl   | has aux head    | all loaded              | aux head initialised, reported |
| bc   | no aux head     | aux keys ``ignored``    | all loaded                     |
"""

from __future__ import annotations

import os
from collections import Counter, OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vpt_rl.atomic import atomic_torch_save, atomic_write_bytes
from vpt_rl.model.weights_file import FORMAT_NAMES, WeightsError, read_state_dict, sniff_format

__all__ = [
    "AUX_PREFIX",
    "MODES",
    "group_counts",
    "group_of",
    "FORMAT_NAMES",
    "LoadReport",
    "WeightsError",
    "check_weights",
    "load_weights",
    "policy_state_dict",
    "read_state_dict",
    "save_weights",
    "sniff_format",
]

MODES = ("rl", "bc")
AUX_PREFIX = "aux_value_head."
VALUE_PREFIX = "value_head."
STATE_DICT_SOURCE = "<state dict>"
_LIST_LIMIT = 8  # keys shown per list in an error message
_STR_LIST_LIMIT = 12  # entries shown per list by str(report); to_text() shows all


# --------------------------------------------------------------------------------------------
# the report


def _shape(shape: Any) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def group_of(key: str) -> str:
    """Top-level group of a state-dict key: net, value_head, pi_head, aux_value_head or other."""
    top = key.split(".", 1)[0]
    return top if top in ("net", "value_head", "pi_head", "aux_value_head") else "other"


def group_counts(keys: list[str]) -> str:
    """``"net 125, value_head 5, pi_head 4"`` in first-seen order."""
    return ", ".join(f"{g} {n}" for g, n in Counter(group_of(k) for k in keys).items())


@dataclass
class LoadReport:
    """What loading a file into a policy did (or, from :func:`check_weights`, would do).

    ``loaded``: keys whose values now come from the file. ``missing`` / ``unexpected``: required keys
    the file lacks / keys the policy does not know. ``ignored``: the file's aux value head in BC mode.
    ``initialized``: keys set fresh (the aux head from a file without one, or the value head with
    ``zero_value_head``). ``mismatched``: key -> wrong shape or type. A returned report from
    :func:`load_weights` is always ``ok``.
    """

    source: str
    mode: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    initialized: list[str] = field(default_factory=list)
    mismatched: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is missing, unexpected or mis-shaped."""
        return not (self.missing or self.unexpected or self.mismatched)

    def _lines(self, full: bool) -> list[str]:
        policy = "policy with aux value head" if self.mode == "rl" else "policy without aux value head"
        fitting = "loaded" if self.ok else "would load"
        counts = (
            f"{len(self.loaded)} {fitting}, {len(self.initialized)} initialized, {len(self.ignored)} ignored, "
            f"{len(self.missing)} missing, {len(self.unexpected)} unexpected, {len(self.mismatched)} mismatched"
        )
        lines = [
            f"weights: {self.source}",
            f"mode:    {self.mode} ({policy})",
            f"result:  {'ok' if self.ok else 'FAILED, nothing loaded'}",
            f"counts:  {counts}",
        ]
        if self.loaded:
            lines.append(f"{fitting} ({len(self.loaded)}): {group_counts(self.loaded)}")
        limit = None if full else _STR_LIST_LIMIT
        for name in ("initialized", "ignored", "missing", "unexpected", "mismatched"):
            entries = getattr(self, name)
            if isinstance(entries, dict):
                entries = [f"{k}: {why}" for k, why in entries.items()]
            if entries:
                lines.append(f"{name} ({len(entries)}):")
                lines += [f"  {e}" for e in entries[:limit]]
                if limit is not None and len(entries) > limit:
                    lines.append(f"  ... and {len(entries) - limit} more (LoadReport.to_text() lists all)")
        if self.notes:
            lines.append("notes:")
            lines += [f"  - {n}" for n in self.notes]
        if full and self.loaded:
            lines.append(f"{fitting} keys ({len(self.loaded)}):")
            lines += [f"  {k}" for k in self.loaded]
        return lines

    def __str__(self) -> str:
        return "\n".join(self._lines(full=False))

    def to_text(self) -> str:
        """Full report (every loaded key listed) for ``runs/NAME/load_report.txt``."""
        return "\n".join(self._lines(full=True)) + "\n"

    def error_message(self) -> str:
        """The :class:`WeightsError` text for a report that is not ``ok``: file, keys, shapes, hints."""

        def listing(keys: list[str]) -> str:
            more = f" ... and {len(keys) - _LIST_LIMIT} more" if len(keys) > _LIST_LIMIT else ""
            return ", ".join(keys[:_LIST_LIMIT]) + more

        lines = [f"{self.source}: does not fit the policy (mode {self.mode!r}); nothing was loaded"]
        if self.missing:
            lines.append(f"  missing ({len(self.missing)}): {listing(self.missing)}")
        if self.unexpected:
            lines.append(f"  unexpected ({len(self.unexpected)}): {listing(self.unexpected)}")
        for k, why in list(self.mismatched.items())[:_LIST_LIMIT]:
            lines.append(f"  {k}: {why}")
        if len(self.mismatched) > _LIST_LIMIT:
            lines.append(f"  ... and {len(self.mismatched) - _LIST_LIMIT} more mismatched keys")
        lines += [f"  hint: {n}" for n in self.notes if n.startswith("keys ")]
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# checking


def _prefix_hints(missing: list[str], unexpected: list[str], known: set[str]) -> list[str]:
    """Explain a key-naming mistake: keys that lack a prefix (e.g. saved from ``policy.net``) or carry
    an extra one (``module.`` from DataParallel, ``_orig_mod.`` from torch.compile)."""
    hints = []
    lacking: Counter[str] = Counter()
    unexpected_set = set(unexpected)
    for k in missing:
        parts = k.split(".")
        for i in range(1, len(parts)):
            if ".".join(parts[i:]) in unexpected_set:
                lacking[".".join(parts[:i]) + "."] += 1
                break
    for prefix, n in lacking.most_common(1):
        if n >= max(1, len(unexpected) // 2):
            hints.append(
                f"keys look like they lack the {prefix!r} prefix ({n} unexpected keys match a missing key "
                f"once {prefix!r} is added): was the file saved from a submodule instead of the whole "
                f"policy? Add the prefix to the keys and save again"
            )
    extra: Counter[str] = Counter()
    for k in unexpected:
        parts = k.split(".")
        for i in range(1, len(parts)):
            if ".".join(parts[i:]) in known:
                extra[".".join(parts[:i]) + "."] += 1
                break
    for prefix, n in extra.most_common(1):
        if n >= max(1, len(unexpected) // 2) and not hints:
            hints.append(
                f"keys carry an extra {prefix!r} prefix ({n} unexpected keys match a policy key once it is "
                f"removed; DataParallel adds 'module.', torch.compile '_orig_mod.'): strip it and save again"
            )
    return hints


def _check_value(value: Any, expected: torch.Size) -> str | None:
    if not isinstance(value, torch.Tensor):
        return f"not a tensor ({type(value).__name__})"
    if not value.is_floating_point():
        return f"dtype {str(value.dtype).replace('torch.', '')} is not floating point"
    if tuple(value.shape) != tuple(expected):
        return f"expected shape {_shape(expected)}, file has {_shape(value.shape)}"
    return None


def _policy_has_aux(target: Mapping[str, torch.Tensor]) -> bool:
    return any(k.startswith(AUX_PREFIX) for k in target)


def _resolve(path_or_state_dict: Any, source: str | None) -> tuple[dict[str, Any], str]:
    if isinstance(path_or_state_dict, (str, os.PathLike)):
        return read_state_dict(path_or_state_dict), source or str(path_or_state_dict)
    if isinstance(path_or_state_dict, Mapping):
        source = source or STATE_DICT_SOURCE
        bad = [k for k in path_or_state_dict if not isinstance(k, str)]
        if bad:
            raise WeightsError(f"{source}: state dict keys must be strings; got {bad[:_LIST_LIMIT]!r}")
        return dict(path_or_state_dict), source
    raise WeightsError(
        f"expected a path or a state dict (a mapping of tensors), got {type(path_or_state_dict).__name__}"
    )


def check_weights(
    policy: nn.Module, path_or_state_dict: Any, mode: str = "rl", *, source: str | None = None
) -> LoadReport:
    """Dry run of :func:`load_weights`: the report it would give, without touching the policy.

    Never raises for key problems (they are in the report: ``ok`` is False); raises
    :class:`WeightsError` for an unreadable file or a mode that does not fit the policy.
    Works on a policy built on the ``meta`` device (shapes only). ``source`` as in :func:`load_weights`.
    """
    sd, source = _resolve(path_or_state_dict, source)
    return _check(policy, sd, source, mode)


def _check(policy: nn.Module, sd: dict[str, Any], source: str, mode: str) -> LoadReport:
    target = policy.state_dict(keep_vars=True)
    has_aux = _policy_has_aux(target)
    if mode not in MODES:
        raise WeightsError(f"{source}: mode must be 'rl' or 'bc', got {mode!r}")
    if mode == "rl" and not has_aux:
        raise WeightsError(
            f"{source}: mode 'rl' needs a policy with an aux value head "
            f"(VPTPolicy(config, aux_value_head=True)); this one has none (use mode 'bc' for it)"
        )
    if mode == "bc" and has_aux:
        raise WeightsError(
            f"{source}: mode 'bc' needs a policy without an aux value head "
            f"(VPTPolicy(config, aux_value_head=False)); this one has one (use mode 'rl' for it)"
        )

    official = {k: v.shape for k, v in target.items() if not k.startswith(AUX_PREFIX)}
    if has_aux:
        aux_shapes = {k: v.shape for k, v in target.items() if k.startswith(AUX_PREFIX)}
    else:  # BC: an RL checkpoint's aux head has the value head's shapes (docs/vpt_format.md §2.4)
        aux_shapes = {"aux_" + k: v.shape for k, v in target.items() if k.startswith(VALUE_PREFIX)}

    report = LoadReport(source=source, mode=mode)
    for k, v in sd.items():
        expected = official.get(k, aux_shapes.get(k))
        if expected is None:
            report.unexpected.append(k)
        elif (why := _check_value(v, expected)) is not None:
            report.mismatched[k] = why
    report.missing = [k for k in official if k not in sd]

    file_aux = [k for k in aux_shapes if k in sd]
    aux_complete = len(file_aux) == len(aux_shapes)
    if file_aux and not aux_complete:
        if has_aux:
            report.missing += [k for k in aux_shapes if k not in sd]
        else:
            report.unexpected += file_aux
        report.notes.append(
            f"the file has only {len(file_aux)} of the {len(aux_shapes)} aux_value_head keys: a damaged "
            f"RL checkpoint?"
        )
    elif file_aux and not has_aux:
        report.ignored = file_aux
        report.notes.append("the file's aux value head (an RL checkpoint) is not used in BC mode: ignored")
    elif not file_aux and has_aux:
        report.initialized = list(aux_shapes)
        report.notes.append(
            "the file has no aux value head (foundation/BC file): aux_value_head freshly initialised "
            "(nn.Linear default init, normaliser statistics zero)"
        )

    usable = set(official) | (set(aux_shapes) if has_aux and aux_complete else set())
    report.loaded = [k for k in target if k in usable and k in sd and k not in report.mismatched]
    if not report.ok:
        report.notes += _prefix_hints(report.missing, report.unexpected, set(target))
    return report


# --------------------------------------------------------------------------------------------
# loading and saving


def _fresh_value_head(policy: nn.Module, prefix: str, zero_linear: bool) -> None:
    """Reset the value head under ``prefix``: its linear layer to nn.Linear's default init (docs/vpt_format.md §4:
    heads keep the default init) or to zeros, and its EWMA normaliser statistics to zero."""
    head = policy.get_submodule(prefix.rstrip("."))
    for module in head.modules():
        if isinstance(module, nn.Linear):
            if zero_linear:
                module.weight.zero_()
                if module.bias is not None:
                    module.bias.zero_()
            else:
                module.reset_parameters()
    for name, param in head.named_parameters():
        if ".normalizer." in f".{name}":
            param.zero_()


def load_weights(
    policy: nn.Module,
    path_or_state_dict: Any,
    mode: str = "rl",
    zero_value_head: bool = False,
    *,
    source: str | None = None,
) -> LoadReport:
    """Load weights strictly into ``policy`` (docs/weights.md "The two modes") and return the :class:`LoadReport`.

    ``mode="rl"`` needs a policy with ``aux_value_head``; ``mode="bc"`` one without. Everything is
    validated before anything is copied, so on :class:`WeightsError` the policy is unchanged.
    ``source`` names the weights in messages and the report (default: the path, or "<state dict>"
    for a mapping, e.g. one read earlier with :func:`read_state_dict`).

    Values are copied in place (``copy_`` under ``no_grad``), so parameter objects (which optimisers
    may hold) and their ``requires_grad`` flags are kept. ``zero_value_head=True`` then zeroes the
    true value head's linear layer and resets its normaliser (why: a foundation model's value head
    was not trained for this reward; a zero value avoids huge early advantages;
    docs/design.md "Decisions").
    """
    sd, source = _resolve(path_or_state_dict, source)
    report = _check(policy, sd, source, mode)
    if not report.ok:
        raise WeightsError(report.error_message())
    target = policy.state_dict(keep_vars=True)
    converted: Counter[str] = Counter()
    with torch.no_grad():
        for k in report.loaded:
            if sd[k].dtype != target[k].dtype:
                converted[str(sd[k].dtype).replace("torch.", "")] += 1
            target[k].copy_(sd[k])
        if report.initialized:
            _fresh_value_head(policy, AUX_PREFIX, zero_linear=False)
        if zero_value_head:
            _fresh_value_head(policy, VALUE_PREFIX, zero_linear=True)
    for dtype, n in converted.items():
        report.notes.append(f"{n} tensors converted from {dtype} to the policy's dtype")
    if zero_value_head:
        zeroed = [k for k in report.loaded if k.startswith(VALUE_PREFIX)]
        report.loaded = [k for k in report.loaded if not k.startswith(VALUE_PREFIX)]
        report.initialized += zeroed
        report.notes.append("zero_value_head: value_head.linear zeroed and its normaliser reset")
    return report


def policy_state_dict(policy: nn.Module, include_aux: bool = True) -> OrderedDict[str, torch.Tensor]:
    """The policy's weights as a plain ordered ``{key: CPU tensor}`` in the official layout."""
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for k, v in policy.state_dict().items():
        if include_aux or not k.startswith(AUX_PREFIX):
            out[k] = v.detach().to("cpu").contiguous()
    return out


def save_weights(policy: nn.Module, path: str | os.PathLike, include_aux: bool = True) -> Path:
    """Write the policy's state dict to ``path`` atomically (temp file + rename).

    A plain ordered state dict the official agent can load (134 keys; 139 with the aux head).
    ``include_aux=False`` writes the 134-key official layout even from an RL policy. A path ending in
    ``.safetensors`` is written as safetensors, anything else with ``torch.save``.
    """
    sd = policy_state_dict(policy, include_aux=include_aux)
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import save

        return atomic_write_bytes(path, save(dict(sd), metadata={"format": "pt"}))
    return atomic_torch_save(sd, path)
