"""``vpt-rl inspect FILE [--model-file X.model]``: what a weights file is and how it would load.

Prints the format, the architecture detected from the shapes, key groups, parameter count, whether
the file has the aux value head, dtypes, the EWMA normaliser statistics, and the reports that
RL-mode and BC-mode loading would give (dry runs on policies built on the ``meta`` device, so even
3x costs no memory). Given a ``.model`` file as FILE, prints the architecture it describes.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections import Counter
from pathlib import Path
from typing import Any

from vpt_rl.commands import CommandError

GROUPS = ("net", "value_head", "pi_head", "aux_value_head", "other")
NORMALIZER_FIELDS = ("running_mean", "running_mean_sq", "debiasing_term")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``inspect`` with the ``vpt-rl`` subparsers."""
    parser = subparsers.add_parser(
        "inspect",
        help="describe a weights file and what RL/BC loading would report",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    parser.add_argument(
        "file", metavar="FILE", type=Path, help="a .weights / .pt / .safetensors file, or a .model file"
    )
    parser.add_argument(
        "--model-file",
        type=Path,
        default=None,
        help="released .model file giving the architecture (default: the preset detected from the shapes)",
    )
    return parser


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def _config_from_model_file(path: Path) -> Any:
    from vpt_rl.model.model_file import read_model_file
    from vpt_rl.model.vpt_config import VPTConfig

    policy_kwargs, pi_head_kwargs = read_model_file(path)
    try:
        return VPTConfig.from_model_kwargs(policy_kwargs, pi_head_kwargs or None)
    except ValueError as e:
        raise CommandError(f"{path}: {e}") from None


def _matching_preset(config: Any) -> str | None:
    from vpt_rl.model.vpt_config import VPTConfig

    for name in VPTConfig.preset_names():
        preset = VPTConfig.preset(name)
        if dataclasses.replace(preset, temperature=config.temperature) == config:
            return name
    return None


def _describe_model_file(path: Path) -> list[str]:
    config = _config_from_model_file(path)
    preset = _matching_preset(config)
    arch = (
        f"{preset} (the kwargs equal preset {preset})" if preset else "unknown (the kwargs match no preset)"
    )
    lines = [
        f"file:          {path}",
        "format:        VPT .model pickle (read with a restricted unpickler; nothing executed)",
        f"architecture:  {arch}",
        f"temperature:   {config.temperature}",
        f"hidsize:       {config.hidsize}",
        f"layers:        {config.n_recurrence_layers} transformer blocks, {config.attention_heads} heads, "
        f"memory {config.memory_size} frames",
        f"image:         {config.img_size[0]}x{config.img_size[1]}, impala width {config.impala_width}",
    ]
    return lines


def _normalizer_line(sd: dict[str, Any], head: str) -> str:
    keys = [f"{head}.normalizer.{f}" for f in NORMALIZER_FIELDS]
    if not all(k in sd and sd[k].numel() == 1 for k in keys):
        return f"  {head + ':':16s}not in the file"
    rm, rms, c = (float(sd[k].float().reshape(())) for k in keys)
    # de-biased statistics exactly as the value head uses them (docs/vpt_format.md §5)
    mean = rm / max(c, 1e-5)
    std = math.sqrt(max(rms / max(c, 1e-5) - mean**2, 1e-2))
    return (
        f"  {head + ':':16s}running_mean {rm:.6g}, running_mean_sq {rms:.6g}, debiasing_term {c:.6g}"
        f" -> mean {mean:.6g}, std {std:.6g}"
    )


def _describe_weights(path: Path, sd: dict[str, Any]) -> tuple[list[str], str | None]:
    from vpt_rl.model.detect import detect_preset
    from vpt_rl.model.weights import FORMAT_NAMES, group_of, sniff_format

    preset, reason = detect_preset(sd)
    groups = Counter(group_of(k) for k in sd)
    n_aux = groups["aux_value_head"]
    numel = sum(v.numel() for v in sd.values())
    n_bytes = sum(v.numel() * v.element_size() for v in sd.values())
    dtypes = Counter(str(v.dtype).removeprefix("torch.") for v in sd.values())
    if n_aux == 5:
        aux = "yes (5 aux_value_head.* keys: an RL checkpoint)"
    elif n_aux == 0:
        aux = "no (foundation/BC layout)"
    else:
        aux = f"partial ({n_aux} aux_value_head.* keys; a complete aux head has 5)"
    lines = [
        f"file:          {path}",
        f"format:        {FORMAT_NAMES[sniff_format(path)]}, {_human_bytes(path.stat().st_size)}",
        f"architecture:  {preset or 'unknown'} ({reason})",
        f"keys:          {len(sd)} (" + ", ".join(f"{g} {groups[g]}" for g in GROUPS) + ")",
        f"parameters:    {numel:,} ({_human_bytes(n_bytes)} of tensor data)",
        f"aux head:      {aux}",
        "dtypes:        " + ", ".join(f"{d} {n}" for d, n in dtypes.most_common()),
        "normalisers (EWMA value statistics):",
        _normalizer_line(sd, "value_head"),
        _normalizer_line(sd, "aux_value_head"),
    ]
    return lines, preset


def _load_reports(sd: dict[str, Any], source: str, config: Any) -> list[str]:
    import torch

    from vpt_rl.model.policy import VPTPolicy
    from vpt_rl.model.weights import check_weights

    lines = []
    for mode, aux in (("rl", True), ("bc", False)):
        with torch.device("meta"):  # a dry run needs shapes only
            policy = VPTPolicy(config, aux_value_head=aux)
        report = check_weights(policy, sd, mode=mode, source=source)
        lines += [
            "",
            f"--- {mode.upper()} mode: load_weights(VPTPolicy(config, aux_value_head={aux}), mode={mode!r}) ---",
        ]
        lines += str(report).splitlines()
    return lines


def run(args: argparse.Namespace) -> int:
    """Print the description of ``args.file``; 0 when it could be read."""
    from vpt_rl.model.vpt_config import VPTConfig
    from vpt_rl.model.weights import read_state_dict

    path: Path = args.file
    if path.suffix == ".model":
        print("\n".join(_describe_model_file(path)))
        return 0
    sd = read_state_dict(path)
    lines, preset = _describe_weights(path, sd)
    if args.model_file is not None:
        config = _config_from_model_file(args.model_file)
        matching = _matching_preset(config)
        config_name = f"config from {args.model_file.name}" + (f" (preset {matching})" if matching else "")
    elif preset is not None:
        config = VPTConfig.preset(preset)
        config_name = f'VPTConfig.preset("{preset}")'
    else:
        config = None
    if config is None:
        lines += ["", "loading:       not checked: the architecture is unknown; pass --model-file X.model"]
    else:
        lines.append(f"policy config: {config_name}, temperature {config.temperature}")
        lines += _load_reports(sd, str(path), config)
    print("\n".join(lines))
    return 0
