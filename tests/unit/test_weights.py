"""Strict weight loading (docs/weights.md "The two modes"), file reading errors, and save/load round trips."""

from __future__ import annotations

import json
import os
import pickle
import sys

import pytest
import torch

from vpt_rl.model.policy import VPTPolicy
from vpt_rl.model.vpt_config import VPTConfig
from vpt_rl.model.weights import (
    LoadReport,
    WeightsError,
    check_weights,
    load_weights,
    read_state_dict,
    save_weights,
)

AUX_KEYS = [
    "aux_value_head.linear.weight",
    "aux_value_head.linear.bias",
    "aux_value_head.normalizer.running_mean",
    "aux_value_head.normalizer.running_mean_sq",
    "aux_value_head.normalizer.debiasing_term",
]


@pytest.fixture(scope="module")
def detfill(reference_dir):
    sys.path.insert(0, str(reference_dir))
    try:
        import detfill as module
    finally:
        sys.path.remove(str(reference_dir))
    return module


@pytest.fixture(scope="module")
def shapes(reference_dir):
    manifest = json.loads((reference_dir / "manifest_tiny.json").read_text())
    return {e["key"]: tuple(e["shape"]) for e in manifest["keys"]}


@pytest.fixture
def make_policy():
    return lambda aux: VPTPolicy(VPTConfig.preset("tiny"), aux_value_head=aux)


@pytest.fixture(scope="module")
def sd134(detfill, shapes):
    return detfill.det_fill(shapes, with_aux=False)


@pytest.fixture(scope="module")
def sd139(detfill, shapes):
    return detfill.det_fill(shapes, with_aux=True)


def snapshot(policy):
    return {k: v.detach().clone() for k, v in policy.state_dict().items()}


def assert_unchanged(policy, before):
    after = policy.state_dict()
    assert after.keys() == before.keys()
    for k in before:
        assert torch.equal(after[k], before[k]), k


# ------------------------------------------------------------------ the docs/weights.md "The two modes"


def test_rl_mode_with_rl_checkpoint_loads_everything(make_policy, sd139):
    policy = make_policy(aux=True)
    params_before = {k: id(p) for k, p in policy.named_parameters()}
    report = load_weights(policy, sd139, mode="rl")
    assert report.ok and report.source == "<state dict>" and report.mode == "rl"
    assert report.loaded == list(policy.state_dict()) and len(report.loaded) == 107
    assert report.missing == report.unexpected == report.ignored == report.initialized == []
    for k, v in policy.state_dict().items():
        assert torch.equal(v, sd139[k]), k
    # parameters kept their identity (optimisers may hold them) and their requires_grad flags
    assert {k: id(p) for k, p in policy.named_parameters()} == params_before
    assert not policy.value_head.normalizer.running_mean.requires_grad
    assert policy.value_head.linear.weight.requires_grad


def test_rl_mode_without_aux_keys_initialises_aux_head(make_policy, sd134):
    policy = make_policy(aux=True)
    with torch.no_grad():
        for p in policy.aux_value_head.parameters():
            p.fill_(7.0)  # stale values that a fresh init must replace
    report = load_weights(policy, sd134, mode="rl")
    assert report.ok and report.initialized == AUX_KEYS
    assert len(report.loaded) == 102 and report.ignored == []
    assert any("freshly initialised" in n for n in report.notes)
    aux = policy.aux_value_head
    bound = 1 / aux.linear.in_features**0.5  # nn.Linear default init range (docs/vpt_format.md §4: heads)
    assert aux.linear.weight.abs().max() <= bound and aux.linear.weight.abs().max() > 0
    assert aux.linear.bias.abs().max() <= bound
    for name in ("running_mean", "running_mean_sq", "debiasing_term"):
        assert torch.equal(getattr(aux.normalizer, name), torch.zeros_like(getattr(aux.normalizer, name)))


def test_bc_mode_ignores_aux_keys(make_policy, sd139):
    policy = make_policy(aux=False)
    report = load_weights(policy, sd139, mode="bc")
    assert report.ok and report.ignored == AUX_KEYS
    assert report.loaded == list(policy.state_dict()) and report.initialized == []
    for k, v in policy.state_dict().items():
        assert torch.equal(v, sd139[k]), k


def test_bc_mode_loads_official_file_whole(make_policy, sd134):
    policy = make_policy(aux=False)
    report = load_weights(policy, sd134, mode="bc")
    assert report.ok and len(report.loaded) == 102
    assert report.missing == report.unexpected == report.ignored == report.initialized == []


@pytest.mark.parametrize(
    "mode, aux, needed", [("rl", False, "aux_value_head=True"), ("bc", True, "aux_value_head=False")]
)
def test_mode_that_does_not_fit_the_policy_is_an_error(make_policy, sd139, mode, aux, needed):
    policy = make_policy(aux=aux)
    before = snapshot(policy)
    with pytest.raises(WeightsError, match=needed):
        load_weights(policy, sd139, mode=mode)
    assert_unchanged(policy, before)
    with pytest.raises(WeightsError, match="mode must be 'rl' or 'bc'"):
        load_weights(policy, sd139, mode="ppo")


def test_zero_value_head(make_policy, sd134):
    policy = make_policy(aux=True)
    report = load_weights(policy, sd134, mode="rl", zero_value_head=True)
    assert report.ok
    value_keys = [k for k in policy.state_dict() if k.startswith("value_head.")]
    assert report.initialized == AUX_KEYS + value_keys
    assert not set(value_keys) & set(report.loaded)
    assert any("zero_value_head" in n for n in report.notes)
    for k in value_keys:
        assert not policy.state_dict()[k].any(), k
    assert torch.equal(
        policy.pi_head.buttons.linear_layer.weight, sd134["pi_head.buttons.linear_layer.weight"]
    )


# ------------------------------------------------------------------ strictness: errors leave the policy untouched


def _edit(sd, drop=(), add=None, rename=None):
    out = {rename(k) if rename else k: v for k, v in sd.items() if k not in drop}
    out.update(add or {})
    return out


@pytest.mark.parametrize(
    "edit, patterns",
    [
        (lambda sd: _edit(sd, drop=["net.final_ln.weight"]), [r"missing \(1\): net\.final_ln\.weight"]),
        (
            lambda sd: _edit(sd, add={"net.extra.weight": torch.zeros(3)}),
            [r"unexpected \(1\): net\.extra\.weight"],
        ),
        (
            lambda sd: _edit(sd, add={"value_head.linear.weight": torch.zeros(1, 32)}),
            [r"value_head\.linear\.weight: expected shape \(1, 64\), file has \(1, 32\)"],
        ),
        (
            lambda sd: _edit(sd, add={"net.final_ln.bias": torch.zeros(64, dtype=torch.int64)}),
            [r"net\.final_ln\.bias: dtype int64 is not floating point"],
        ),
        (
            lambda sd: _edit(sd, add={"net.final_ln.bias": [0.0] * 64}),
            [r"net\.final_ln\.bias: not a tensor \(list\)"],
        ),
        (
            lambda sd: _edit(sd, rename=lambda k: k[len("net.") :] if k.startswith("net.") else k),
            [r"missing \(93\)", r"unexpected \(93\)", r"lack the 'net\.' prefix"],
        ),
        (
            lambda sd: _edit(sd, rename=lambda k: "module." + k),
            [r"missing \(102\)", r"unexpected \(107\)", r"extra 'module\.' prefix"],
        ),
        (
            lambda sd: _edit(sd, drop=["aux_value_head.linear.bias"]),
            [r"missing \(1\): aux_value_head\.linear\.bias"],
        ),
    ],
    ids=[
        "missing",
        "unknown",
        "shape",
        "int-dtype",
        "non-tensor",
        "no-net-prefix",
        "module-prefix",
        "partial-aux",
    ],
)
def test_bad_state_dicts_raise_and_change_nothing(make_policy, sd139, edit, patterns):
    policy = make_policy(aux=True)
    load_weights(policy, sd139, mode="rl")
    before = snapshot(policy)
    bad = edit(sd139)
    with pytest.raises(WeightsError) as info:
        load_weights(policy, bad, mode="rl")
    message = str(info.value)
    assert message.startswith("<state dict>: does not fit the policy (mode 'rl'); nothing was loaded")
    for pattern in patterns:
        assert __import__("re").search(pattern, message), (pattern, message)
    assert_unchanged(policy, before)
    assert not check_weights(policy, bad, mode="rl").ok


def test_partial_aux_set_in_bc_mode_is_unexpected(make_policy, sd139):
    bad = _edit(sd139, drop=["aux_value_head.linear.bias"])
    report = check_weights(make_policy(aux=False), bad, mode="bc")
    assert not report.ok and report.unexpected == [k for k in AUX_KEYS if k != "aux_value_head.linear.bias"]
    assert any("only 4 of the 5" in n for n in report.notes)


def test_aux_keys_must_have_value_head_shapes_in_bc_mode(make_policy, sd139):
    bad = _edit(sd139, add={"aux_value_head.linear.weight": torch.zeros(2, 64)})
    with pytest.raises(WeightsError, match=r"aux_value_head\.linear\.weight: expected shape \(1, 64\)"):
        load_weights(make_policy(aux=False), bad, mode="bc")


def test_half_precision_file_is_converted_and_noted(make_policy, sd134):
    half = {k: v.half() for k, v in sd134.items()}
    policy = make_policy(aux=False)
    report = load_weights(policy, half, mode="bc")
    assert any("102 tensors converted from float16" in n for n in report.notes)
    assert policy.net.final_ln.weight.dtype == torch.float32
    assert torch.equal(policy.net.final_ln.weight, half["net.final_ln.weight"].float())


# ------------------------------------------------------------------ files


def test_save_and_load_round_trip(tmp_path, make_policy, sd139):
    rl = make_policy(aux=True)
    load_weights(rl, sd139, mode="rl")
    for name in ("rl.weights", "rl.safetensors"):
        path = save_weights(rl, tmp_path / name)
        sd = read_state_dict(path)
        assert list(sd) == list(sd139) or name.endswith(".safetensors")
        assert set(sd) == set(sd139) and all(torch.equal(sd[k], sd139[k]) for k in sd)
        for mode, aux, expect in (
            ("rl", True, {"loaded": 107}),
            ("bc", False, {"loaded": 102, "ignored": 5}),
        ):
            target = make_policy(aux=aux)
            report = load_weights(target, path, mode=mode)
            assert report.source == str(path)
            assert {k: len(getattr(report, k)) for k in ("loaded", "ignored", "initialized")} == {
                "loaded": 0,
                "ignored": 0,
                "initialized": 0,
                **expect,
            }
            for k, v in target.state_dict().items():
                assert torch.equal(v, sd139[k]), k


def test_save_without_aux_gives_the_official_layout(tmp_path, make_policy, sd139, sd134):
    rl = make_policy(aux=True)
    load_weights(rl, sd139, mode="rl")
    path = save_weights(rl, tmp_path / "official.weights", include_aux=False)
    sd = torch.load(path, weights_only=True)  # what the official agent's loader reads
    assert list(sd) == list(sd134) and all(v.device.type == "cpu" for v in sd.values())
    report = load_weights(make_policy(aux=True), path, mode="rl")
    assert report.initialized == AUX_KEYS and len(report.loaded) == 102
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left no temp file


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _write(path, content):
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    "make_file, problem",
    [
        (lambda d: d / "nope.weights", "no such file"),
        (lambda d: d, "is a directory"),
        (lambda d: _write(d / "empty.weights", b""), "file is empty"),
        (lambda d: _write(d / "notes.weights", b"hello, I am text\n"), "not a weights file"),
        (
            lambda d: _write(
                d / "lfs.weights", b"version https://git-lfs.github.com/spec/v1\noid sha256:016a\n"
            ),
            "is a Git LFS pointer, not the weights: fetch them with `git lfs pull`",
        ),
        (
            lambda d: _write(d / "page.weights", b"<!DOCTYPE html><html>"),
            r"an HTML page: a failed download\?",
        ),
        (
            lambda d: _write(d / "plain.weights", pickle.dumps({"a": 1}, protocol=2)),
            "not a PyTorch weights file",
        ),
        (lambda d: d / "cut.weights", "truncated or corrupt zip archive"),
        (lambda d: d / "evil.weights", "contains code or Python objects"),
        (lambda d: d / "list.weights", "holds a list, not a state dict"),
        (lambda d: d / "ckpt.weights", "nests the weights under 'state_dict'"),
        (
            lambda d: _write(d / "bad.safetensors", b"\x10\0\0\0\0\0\0\0{garbage}"),
            "not a valid safetensors file",
        ),
    ],
    ids=[
        "missing",
        "dir",
        "empty",
        "text",
        "lfs",
        "html",
        "plain-pickle",
        "truncated",
        "code",
        "list",
        "nested",
        "safetensors",
    ],
)
def test_unreadable_files_name_the_file(tmp_path, make_policy, sd134, make_file, problem):
    torch.save(dict(sd134), tmp_path / "full.weights")
    data = (tmp_path / "full.weights").read_bytes()
    (tmp_path / "cut.weights").write_bytes(data[: len(data) // 2])
    torch.save({"w": _Evil(tmp_path / "PWNED")}, tmp_path / "evil.weights")
    torch.save([torch.zeros(1)], tmp_path / "list.weights")
    torch.save({"state_dict": dict(sd134), "step": 3}, tmp_path / "ckpt.weights")
    path = make_file(tmp_path)
    policy = make_policy(aux=False)
    before = snapshot(policy)
    with pytest.raises(WeightsError, match=problem) as info:
        load_weights(policy, path, mode="bc")
    assert str(info.value).startswith(f"{path}: ")
    assert "\n" not in str(info.value)  # file errors are one line (the CLI prints them as such)
    assert_unchanged(policy, before)
    assert not (tmp_path / "PWNED").exists()


def test_report_text(tmp_path, make_policy, sd134):
    torch.save(dict(sd134), tmp_path / "f.weights")
    report = load_weights(make_policy(aux=True), tmp_path / "f.weights", mode="rl")
    text = str(report)
    assert text.splitlines()[:4] == [
        f"weights: {tmp_path / 'f.weights'}",
        "mode:    rl (policy with aux value head)",
        "result:  ok",
        "counts:  102 loaded, 5 initialized, 0 ignored, 0 missing, 0 unexpected, 0 mismatched",
    ]
    assert "loaded (102): net 93, value_head 5, pi_head 4" in text
    assert "initialized (5):\n  aux_value_head.linear.weight\n" in text
    assert "missing (" not in text and "notes:\n  - the file has no aux value head" in text
    full = report.to_text()
    assert full.startswith(text) and full.endswith("  pi_head.buttons.linear_layer.bias\n")
    assert full.count("\n  net.") == 93
    assert isinstance(report, LoadReport) and report.ok


def test_failed_report_text_is_short_and_to_text_complete(make_policy, sd134):
    stripped = {k.removeprefix("net."): v for k, v in sd134.items()}
    report = check_weights(make_policy(aux=False), stripped, mode="bc")
    text = str(report)
    assert "result:  FAILED, nothing loaded" in text
    assert "counts:  9 would load, 0 initialized, 0 ignored, 93 missing, 93 unexpected" in text
    assert "  ... and 81 more (LoadReport.to_text() lists all)" in text
    assert len(text.splitlines()) < 40
    assert report.to_text().count("\n  net.") == 93


def test_source_names_a_state_dict_read_earlier(tmp_path, make_policy, sd134):
    sd = {k: v for k, v in sd134.items() if k != "net.final_ln.bias"}
    with pytest.raises(WeightsError, match=r"^init\.weights: does not fit"):
        load_weights(make_policy(aux=True), sd, mode="rl", source="init.weights")
    report = check_weights(make_policy(aux=False), sd134, mode="bc", source="init.weights")
    assert report.ok and str(report).startswith("weights: init.weights\n")


@pytest.mark.gpu
@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA: loads into and saves from a GPU policy"
)
def test_cuda_policy_round_trip(tmp_path, make_policy, sd139):
    policy = make_policy(aux=True).cuda()
    report = load_weights(policy, sd139, mode="rl")  # CPU file values copied onto the GPU in place
    assert report.ok and policy.net.final_ln.weight.is_cuda
    assert torch.equal(policy.net.final_ln.weight.cpu(), sd139["net.final_ln.weight"])
    sd = read_state_dict(save_weights(policy, tmp_path / "gpu.weights"))
    assert all(v.device.type == "cpu" and torch.equal(v, sd139[k]) for k, v in sd.items())
    load_weights(policy, sd139, mode="rl", zero_value_head=True)
    assert not policy.value_head.linear.weight.any() and policy.value_head.linear.weight.is_cuda
