"""`vpt-rl export`: any checkpoint -> official layout / safetensors; the result loads as expected."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vpt_rl.cli import main
from vpt_rl.model.policy import VPTPolicy
from vpt_rl.model.vpt_config import VPTConfig
from vpt_rl.model.weights import load_weights, read_state_dict, save_weights

TINY = VPTConfig.preset("tiny")


@pytest.fixture()
def rl_checkpoint(tmp_path) -> Path:
    torch.manual_seed(3)
    policy = VPTPolicy(TINY, aux_value_head=True)
    with torch.no_grad():
        policy.aux_value_head.linear.weight.fill_(0.25)  # recognisable aux values
    return save_weights(policy, tmp_path / "rl.weights")


def official_keys(aux: bool) -> list[str]:
    return list(VPTPolicy(TINY, aux_value_head=aux).state_dict())


def test_export_drops_aux_and_loads_in_both_modes(rl_checkpoint, tmp_path, capsys):
    out = tmp_path / "official.weights"
    assert main(["export", str(rl_checkpoint), str(out)]) == 0
    printed = capsys.readouterr().out
    assert "107 keys, preset tiny, aux value head: yes" in printed and "102 keys, torch, dropped 5" in printed
    sd, src = read_state_dict(out), read_state_dict(rl_checkpoint)
    assert list(sd) == official_keys(aux=False)
    assert all(torch.equal(sd[k], src[k]) for k in sd)
    bc = load_weights(VPTPolicy(TINY, aux_value_head=False), out, mode="bc")
    assert len(bc.loaded) == 102 and not bc.ignored
    rl = load_weights(VPTPolicy(TINY, aux_value_head=True), out, mode="rl")
    assert sorted(rl.initialized) == sorted(k for k in official_keys(True) if k.startswith("aux_value_head."))


def test_export_keep_aux_safetensors(rl_checkpoint, tmp_path, capsys):
    out = tmp_path / "rl.safetensors"
    assert main(["export", str(rl_checkpoint), str(out), "--keep-aux"]) == 0
    assert "107 keys, safetensors" in capsys.readouterr().out
    assert out.read_bytes()[8:9] == b"{"  # safetensors header, not a torch zip
    sd = read_state_dict(out)
    # safetensors stores keys in its own order; the set is the official one
    assert (
        sorted(sd) == sorted(official_keys(aux=True)) and (sd["aux_value_head.linear.weight"] == 0.25).all()
    )
    rl = load_weights(VPTPolicy(TINY, aux_value_head=True), out, mode="rl")
    assert len(rl.loaded) == 107 and not rl.initialized
    bc = load_weights(VPTPolicy(TINY, aux_value_head=False), out, mode="bc")
    assert len(bc.ignored) == 5
    # --format overrides the suffix
    forced = tmp_path / "x.weights"
    assert main(["export", str(out), str(forced), "--format", "safetensors"]) == 0
    assert sorted(read_state_dict(forced)) == sorted(official_keys(aux=False))


def test_export_errors(rl_checkpoint, tmp_path, capsys):
    sd = read_state_dict(rl_checkpoint)
    del sd["pi_head.camera.linear_layer.bias"]
    broken = tmp_path / "broken.weights"
    torch.save(sd, broken)
    assert main(["export", str(broken), str(tmp_path / "o.weights")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vpt-rl export: error: ") and "broken.weights" in err
    assert main(["export", str(rl_checkpoint), str(rl_checkpoint)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "none.weights"), str(tmp_path / "o.weights")]) == 2
    assert "none.weights" in capsys.readouterr().err
