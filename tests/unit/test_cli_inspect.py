"""`vpt-rl inspect`: the description of good files and one clear error line for broken ones."""

from __future__ import annotations

import importlib
import json
import os
import pickle
import subprocess
import sys

import pytest
import torch

from vpt_rl.cli import COMMANDS, main


@pytest.fixture(scope="module")
def tiny_files(reference_dir, tmp_path_factory):
    sys.path.insert(0, str(reference_dir))
    try:
        import detfill
    finally:
        sys.path.remove(str(reference_dir))
    manifest = json.loads((reference_dir / "manifest_tiny.json").read_text())
    shapes = {e["key"]: tuple(e["shape"]) for e in manifest["keys"]}
    d = tmp_path_factory.mktemp("inspect")
    torch.save(detfill.det_fill(shapes, with_aux=True), d / "rl.weights")
    torch.save(detfill.det_fill(shapes, with_aux=False), d / "foundation.weights")
    from safetensors.torch import save_file

    save_file(dict(detfill.det_fill(shapes, with_aux=True)), d / "rl.safetensors")
    torch.save(
        {k.removeprefix("net."): v for k, v in detfill.det_fill(shapes).items()}, d / "stripped.weights"
    )
    data = (d / "rl.weights").read_bytes()
    (d / "truncated.weights").write_bytes(data[: len(data) // 3])
    (d / "notes.weights").write_text("these are my notes\n")
    return d


def inspect(capsys, *args):
    code = main(["inspect", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_every_command_module_has_the_interface():
    assert COMMANDS[0] == "inspect"
    for name in COMMANDS:
        module = importlib.import_module(f"vpt_rl.commands.{name}")
        assert callable(module.add_parser) and callable(module.run), name


def test_rl_checkpoint(capsys, tiny_files):
    code, out, err = inspect(capsys, tiny_files / "rl.weights")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == f"file:          {tiny_files / 'rl.weights'}"
    assert lines[1].startswith("format:        PyTorch zip archive (torch.save), ")
    assert "architecture:  tiny (all 102 keys and shapes match preset tiny)" in lines
    assert "keys:          107 (net 93, value_head 5, pi_head 4, aux_value_head 5, other 0)" in lines
    assert "parameters:    734,882 (2.9 MB of tensor data)" in lines
    assert "aux head:      yes (5 aux_value_head.* keys: an RL checkpoint)" in lines
    assert "dtypes:        float32 107" in lines
    value_line = next(line for line in lines if line.startswith("  value_head:"))
    assert "running_mean -0.648968, running_mean_sq 1.6382, debiasing_term 0.749904" in value_line
    assert value_line.endswith("-> mean -0.865402, std 1.19817")  # de-biased, docs/vpt_format.md §5
    assert next(line for line in lines if line.startswith("  aux_value_head:")).count("running_mean") == 2
    rl, bc = out.split("--- RL mode")[1].split("--- BC mode")
    assert "result:  ok" in rl and "counts:  107 loaded, 0 initialized, 0 ignored" in rl
    assert "result:  ok" in bc and "counts:  102 loaded, 0 initialized, 5 ignored" in bc
    assert "ignored (5):\n  aux_value_head.linear.weight" in bc


def test_foundation_file(capsys, tiny_files):
    code, out, _ = inspect(capsys, tiny_files / "foundation.weights")
    assert code == 0
    assert "aux head:      no (foundation/BC layout)" in out
    assert "  aux_value_head: not in the file" in out
    rl, bc = out.split("--- RL mode")[1].split("--- BC mode")
    assert "counts:  102 loaded, 5 initialized, 0 ignored" in rl and "freshly initialised" in rl
    assert "counts:  102 loaded, 0 initialized, 0 ignored" in bc


def test_safetensors_file(capsys, tiny_files):
    code, out, _ = inspect(capsys, tiny_files / "rl.safetensors")
    assert code == 0 and "format:        safetensors, " in out and "architecture:  tiny" in out


def test_unknown_architecture_is_explained(capsys, tiny_files):
    code, out, _ = inspect(capsys, tiny_files / "stripped.weights")
    assert code == 0
    assert "architecture:  unknown (keys look like they lack the 'net.' prefix (no net.* keys))" in out
    assert "keys:          102 (net 0, value_head 5, pi_head 4, aux_value_head 0, other 93)" in out
    assert "not checked: the architecture is unknown; pass --model-file X.model" in out


def test_model_file_sets_the_config(capsys, tiny_files, reference_dir):
    # tiny weights checked against the real 1x architecture: both modes fail and say why
    code, out, _ = inspect(
        capsys, tiny_files / "foundation.weights", "--model-file", reference_dir / "foundation-model-1x.model"
    )
    assert code == 0
    assert "policy config: config from foundation-model-1x.model (preset 1x), temperature 1.0" in out
    assert out.count("result:  FAILED, nothing loaded") == 2
    assert (
        "net.img_process.cnn.stacks.0.firstconv.layer.weight: expected shape (64, 3, 3, 3), file has (4, 3, 3, 3)"
        in out
    )


def test_stripped_file_with_model_file_gives_prefix_hint(capsys, tiny_files, tmp_path):
    # a .model file for the tiny architecture, written like the released ones
    from vpt_rl.model.vpt_config import VPTConfig

    policy_kwargs, pi_head_kwargs = VPTConfig.preset("tiny").to_model_kwargs()
    model = {"model": {"args": {"net": {"args": policy_kwargs}, "pi_head_opts": pi_head_kwargs}}}

    (tmp_path / "tiny.model").write_bytes(pickle.dumps(model))
    code, out, _ = inspect(capsys, tiny_files / "stripped.weights", "--model-file", tmp_path / "tiny.model")
    assert code == 0 and "(preset tiny), temperature 2.0" in out
    assert "keys look like they lack the 'net.' prefix" in out


@pytest.mark.parametrize("name, hidsize, temperature", [("1x", 1024, 1.0), ("3x", 3072, 3.0)])
def test_model_file_as_the_file(capsys, reference_dir, name, hidsize, temperature):
    code, out, _ = inspect(capsys, reference_dir / f"foundation-model-{name}.model")
    assert code == 0
    assert f"architecture:  {name} (the kwargs equal preset {name})" in out
    assert f"temperature:   {temperature}" in out and f"hidsize:       {hidsize}" in out


@pytest.mark.parametrize(
    "name, problem",
    [
        ("missing.weights", "no such file"),
        ("truncated.weights", "truncated or corrupt zip archive"),
        ("notes.weights", "not a weights file"),
    ],
)
def test_broken_files_give_one_error_line(capsys, tiny_files, name, problem):
    code, out, err = inspect(capsys, tiny_files / name)
    assert code == 2 and out == ""
    assert err.startswith(f"vpt-rl inspect: error: {tiny_files / name}: {problem}")
    assert err.count("\n") == 1


def test_broken_model_file(capsys, tiny_files):
    code, _, err = inspect(capsys, tiny_files / "rl.weights", "--model-file", tiny_files / "notes.weights")
    assert code == 2
    assert err.startswith(
        f"vpt-rl inspect: error: {tiny_files / 'notes.weights'}: not a readable .model pickle"
    )


def test_usage_error_returns_2(capsys):
    assert main(["inspect"]) == 2
    assert "the following arguments are required: FILE" in capsys.readouterr().err
    assert main(["--version"]) == 0


def test_python_m_entry_point_without_traceback(tiny_files):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "vpt_rl.cli", "inspect", str(tiny_files / "truncated.weights")]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("vpt-rl inspect: error: ") and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1
