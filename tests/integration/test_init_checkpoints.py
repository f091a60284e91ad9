"""Starting RL from any checkpoint: synthetic tiny files without (foundation/BC layout) and with the
aux head (RL layout), `ppg.zero_init_value`, the frozen prior, --model-file, clear errors, and a
CLI run with --init that writes load_report.txt and trains against the prior."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from vpt_rl.algo.policy_init import InitError, init_policy, resolve_vpt_config
from vpt_rl.config import load_config
from vpt_rl.model.policy import VPTPolicy
from vpt_rl.model.vpt_config import VPTConfig
from vpt_rl.model.weights import AUX_PREFIX, save_weights

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A trained-looking tiny policy saved as 102 keys (no aux) and 107 keys (with aux)."""
    d = tmp_path_factory.mktemp("init")
    torch.manual_seed(123)
    src = VPTPolicy(VPTConfig.preset("tiny"))
    with torch.no_grad():
        src.value_head.linear.weight.fill_(0.5)
        src.value_head.normalizer.debiasing_term.fill_(0.3)
        src.aux_value_head.linear.weight.fill_(-0.25)
    save_weights(src, d / "bc.weights", include_aux=False)
    save_weights(src, d / "rl.weights")
    return {"src": src, "bc": d / "bc.weights", "rl": d / "rl.weights", "dir": d}


def _cfg(*overrides):
    return load_config([ROOT / "configs" / "smoke.yaml"], list(overrides))


def test_file_without_aux_head_gets_fresh_aux_and_zeroed_value(files):
    assert len(torch.load(files["bc"], weights_only=True)) == 102
    init = init_policy(_cfg(), files["bc"])
    aux_keys = {k for k in init.policy.state_dict() if k.startswith(AUX_PREFIX)}
    assert len(aux_keys) == 5
    assert set(init.report.initialized) >= aux_keys | {"value_head.linear.weight", "value_head.linear.bias"}
    assert torch.count_nonzero(init.policy.value_head.linear.weight) == 0  # zero_init_value: auto
    assert init.policy.value_head.normalizer.debiasing_term.item() == 0
    assert not torch.equal(
        init.policy.aux_value_head.linear.weight, files["src"].aux_value_head.linear.weight
    )
    torch.testing.assert_close(
        init.policy.net.lastlayer.layer.weight, files["src"].net.lastlayer.layer.weight
    )
    assert any("zeroed" in n for n in init.notes)


def test_file_with_aux_head_loads_everything(files):
    assert len(torch.load(files["rl"], weights_only=True)) == 107
    init = init_policy(_cfg(), files["rl"])
    assert init.report.initialized == []
    for k, v in files["src"].state_dict().items():
        torch.testing.assert_close(init.policy.state_dict()[k], v)


@pytest.mark.parametrize("value, zeroed", [(True, True), (False, False)])
def test_zero_init_value_explicit(files, value, zeroed):
    init = init_policy(_cfg(f"ppg.zero_init_value={str(value).lower()}"), files["bc" if not value else "rl"])
    assert bool(torch.count_nonzero(init.policy.value_head.linear.weight) == 0) is zeroed


def test_prior_is_a_frozen_copy_of_the_initial_policy(files):
    init = init_policy(_cfg(), files["bc"])
    prior = init.prior
    assert prior is not None and not prior.training
    assert all(not p.requires_grad for p in prior.parameters())
    for k, v in init.policy.state_dict().items():
        assert torch.equal(prior.state_dict()[k], v)
    with torch.no_grad():
        init.policy.net.lastlayer.layer.weight.add_(1.0)  # training the policy leaves the prior alone
    assert not torch.equal(prior.net.lastlayer.layer.weight, init.policy.net.lastlayer.layer.weight)


def test_fresh_policy_has_no_prior():
    init = init_policy(_cfg())
    assert init.prior is None and init.report is None
    assert any("no prior" in n for n in init.notes)


def test_model_file_gives_the_architecture(reference_dir):
    vcfg, how = resolve_vpt_config(_cfg(), None, reference_dir / "foundation-model-1x.model")
    assert vcfg == VPTConfig.preset("1x") and "foundation-model-1x.model" in how


def test_unrecognised_weights_name_the_problem(files):
    sd = torch.load(files["rl"], weights_only=True)
    sd["net.lastlayer.layer.weight"] = torch.zeros(48, 48)
    bad = files["dir"] / "odd.weights"
    torch.save(sd, bad)
    with pytest.raises(InitError, match="--model-file"):
        init_policy(_cfg(), bad)
    junk = files["dir"] / "junk.weights"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(InitError, match="junk.weights"):
        init_policy(_cfg(), junk)


def _train_ppo():
    spec = importlib.util.spec_from_file_location("train_ppo", ROOT / "train_ppo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_init_errors_are_one_line_exit_2(files, tmp_path, capsys):
    tp = _train_ppo()
    junk = files["dir"] / "junk2.weights"
    junk.write_bytes(b"nope")
    rc = tp.main(
        ["--init", str(junk), "--runs-dir", str(tmp_path), "--config", str(ROOT / "configs/smoke.yaml")]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("train_ppo.py: error:") and "junk2.weights" in err
    assert "Traceback" not in err


def test_cli_init_run_writes_load_report_and_uses_the_prior(files, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tp = _train_ppo()
    args = ["--init", str(files["bc"]), "--runs-dir", str(tmp_path), "--run-name", "init"]
    rc = tp.main(
        [*args, "--config", str(ROOT / "configs/smoke.yaml"), "total_frames=32", "log.progress=false"]
    )
    assert rc == 0
    run = tmp_path / "init"
    report = (run / "load_report.txt").read_text()
    assert "initialized" in report and "aux_value_head.linear.weight" in report and str(files["bc"]) in report
    assert (run / "checkpoints" / "prior.weights").is_file()
    log = (run / "train.log").read_text()
    assert "prior: frozen copy" in log and "preset tiny" in log
    ea = EventAccumulator(str(run), size_guidance={"scalars": 0})
    ea.Reload()
    rho = [e.value for e in ea.Scalars("train/kl_coef")]
    # rho decays per kl_decay_frames (512) env frames: the second iteration starts at 16 frames
    assert rho[0] == pytest.approx(0.2) and rho[1] == pytest.approx(0.2 * 0.99 ** (16 / 512))
    assert ea.Scalars("train/kl_prior")[0].value == pytest.approx(0.0, abs=1e-5)  # policy == prior at first
    assert ea.Scalars("train/kl_prior")[1].value > 0
    assert all(e.value == 0.0 for e in ea.Scalars("train/ent_coef"))  # auto: no entropy bonus with a prior
