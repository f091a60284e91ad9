"""Weight files (docs/weights.md): save/load round trips in both formats, the official layout
without the aux head, unreadable or unsafe files named in the error, the load report's text.
Loading itself (the two modes, strictness) is in test_weights.py."""

from __future__ import annotations

import os
import pickle

import pytest
import torch
import weights_helpers  # tests/unit, on sys.path under pytest's default import mode
from weights_helpers import AUX_KEYS, assert_unchanged, snapshot

from vpt_rl.model.weights import (
    LoadReport,
    WeightsError,
    check_weights,
    load_weights,
    read_state_dict,
    save_weights,
)

# the fixtures, for the tests below
detfill, shapes, make_policy = weights_helpers.detfill, weights_helpers.shapes, weights_helpers.make_policy
sd134, sd139 = weights_helpers.sd134, weights_helpers.sd139


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
