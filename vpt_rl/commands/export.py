"""``vpt-rl export IN OUT [--keep-aux] [--format torch|safetensors]``: any checkpoint -> official layout.

Reads a weights file (torch or safetensors; an RL checkpoint with the aux value head, a BC
checkpoint, a released file), checks it is a complete VPT policy state dict, and writes the
official layout: the 134 keys in the released order (139 with ``--keep-aux`` when the file has the
aux head), as a torch file the official agent loads or as safetensors.
"""

from __future__ import annotations

import argparse
from collections import OrderedDict
from pathlib import Path
from typing import Any

from vpt_rl.commands import CommandError

AUX_PREFIX = "aux_value_head."


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``export`` with the ``vpt-rl`` subparsers."""
    parser = subparsers.add_parser(
        "export",
        help="write a checkpoint in the official layout (134 keys) and/or as safetensors",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    parser.add_argument("input", metavar="IN", type=Path, help="weights file (.weights / .pt / .safetensors)")
    parser.add_argument("output", metavar="OUT", type=Path, help="file to write")
    parser.add_argument(
        "--keep-aux", action="store_true", help="keep the 5 aux_value_head keys (an RL checkpoint)"
    )
    parser.add_argument(
        "--format",
        choices=("torch", "safetensors"),
        default=None,
        help="output format (default: safetensors when OUT ends in .safetensors, else torch)",
    )
    parser.add_argument(
        "--model-file", type=Path, default=None, help=".model file (if the shapes match no preset)"
    )
    parser.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    return parser


def official_order(sd: dict, model_file: Path | None, source: str) -> tuple[list[str], str]:
    """The keys of the matching architecture in the official order (with aux keys last), checked
    against ``sd``: every non-aux key present with its shape, nothing unknown. Returns (keys, arch)."""
    import torch

    from vpt_rl.model.architecture import resolve_architecture
    from vpt_rl.model.policy import VPTPolicy
    from vpt_rl.model.weights import WeightsError

    shapes = None if model_file is not None else {k: tuple(v.shape) for k, v in sd.items()}
    try:  # the one architecture rule every command uses (vpt_rl/model/architecture.py)
        config, _, arch = resolve_architecture(model_file, shapes, "tiny", source=source)
    except WeightsError as e:
        raise CommandError(str(e)) from None
    with torch.device("meta"):
        expected = VPTPolicy(config, aux_value_head=True).state_dict()
    missing = [k for k in expected if k not in sd and not k.startswith(AUX_PREFIX)]
    unknown = [k for k in sd if k not in expected]
    wrong = [
        f"{k} {tuple(sd[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in sd and sd[k].shape != v.shape
    ]
    if missing or unknown or wrong:
        parts = [
            f"missing {missing[:5]}" if missing else "",
            f"unknown {unknown[:5]}" if unknown else "",
            "; ".join(wrong[:5]),
        ]
        raise CommandError(f"{source}: not a complete {arch} policy: " + "; ".join(p for p in parts if p))
    return list(expected), arch


def run(args: argparse.Namespace) -> int:
    """Convert IN to OUT; prints one line per file."""
    from vpt_rl.atomic import atomic_torch_save, atomic_write_bytes
    from vpt_rl.model.weights import read_state_dict

    if args.output.exists() and not args.force:
        raise CommandError(f"{args.output}: already exists (use --force to overwrite)")
    if args.output.resolve() == args.input.resolve():
        raise CommandError(f"{args.output}: OUT must differ from IN")
    sd = read_state_dict(args.input)
    keys, arch = official_order(sd, args.model_file, str(args.input))
    has_aux = any(k.startswith(AUX_PREFIX) for k in sd)
    if has_aux and args.keep_aux and not all(k in sd for k in keys if k.startswith(AUX_PREFIX)):
        raise CommandError(f"{args.input}: has only some aux_value_head keys; export without --keep-aux")
    keep = [k for k in keys if k in sd and (args.keep_aux or not k.startswith(AUX_PREFIX))]
    out = OrderedDict((k, sd[k].contiguous()) for k in keep)
    fmt = args.format or ("safetensors" if args.output.suffix == ".safetensors" else "torch")
    if fmt == "safetensors":
        from safetensors.torch import save

        atomic_write_bytes(args.output, save(dict(out), metadata={"format": "pt"}))
    else:
        atomic_torch_save(out, args.output)
    dropped = len(sd) - len(out)
    note = f", dropped {dropped} aux_value_head keys" if dropped else ""
    if args.keep_aux and not has_aux:
        note += " (--keep-aux: the input has no aux value head)"
    print(f"{args.input}: {len(sd)} keys, {arch}, aux value head: {'yes' if has_aux else 'no'}")
    print(f"{args.output}: {len(out)} keys, {fmt}{note}")
    return 0
