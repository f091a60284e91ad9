"""Architecture detection from state-dict shapes (presets built on the meta device)."""

from __future__ import annotations

import json

import pytest
import torch

from vpt_rl.model.detect import detect_preset, preset_shapes


def manifest_shapes(reference_dir, name):
    manifest = json.loads((reference_dir / f"manifest_{name}.json").read_text())
    return {e["key"]: tuple(e["shape"]) for e in manifest["keys"]}


@pytest.mark.parametrize("name", ["tiny", "1x", "2x", "3x"])
def test_preset_shapes_equal_manifests(reference_dir, name):
    expected = manifest_shapes(reference_dir, name)
    shapes = preset_shapes(name)
    assert list(shapes) == list(expected)  # official key order too
    assert shapes == expected


@pytest.mark.parametrize("name", ["tiny", "1x", "2x", "3x"])
def test_each_manifest_is_detected_with_and_without_aux(reference_dir, name):
    shapes = manifest_shapes(reference_dir, name)
    assert detect_preset(shapes) == (name, f"all {len(shapes)} keys and shapes match preset {name}")
    with_aux = {**shapes, **{"aux_" + k: s for k, s in shapes.items() if k.startswith("value_head.")}}
    assert detect_preset(with_aux)[0] == name


def test_tensors_are_accepted(reference_dir):
    tensors = {k: torch.empty(s, device="meta") for k, s in manifest_shapes(reference_dir, "tiny").items()}
    assert detect_preset(tensors)[0] == "tiny"


def test_unknown_hidsize_names_the_key(reference_dir):
    shapes = {
        k: tuple(512 if d == 1024 else d for d in s) for k, s in manifest_shapes(reference_dir, "1x").items()
    }
    name, reason = detect_preset(shapes)
    assert name is None
    assert reason == (
        "hidsize 512 from net.lastlayer.layer.weight matches no preset (1x: 1024, 2x: 2048, 3x: 3072, tiny: 64)"
    )


def test_same_hidsize_other_image_size_names_the_differing_keys(reference_dir):
    shapes = manifest_shapes(reference_dir, "1x")
    # a 64x64-input variant of 1x: only the CNN's dense layer changes (128 channels * 8 * 8)
    shapes["net.img_process.cnn.dense.norm.weight"] = (8192,)
    shapes["net.img_process.cnn.dense.norm.bias"] = (8192,)
    shapes["net.img_process.cnn.dense.layer.weight"] = (256, 8192)
    name, reason = detect_preset(shapes)
    assert name is None
    assert reason.startswith("hidsize 1024 is that of preset 1x, but 3 keys differ: ")
    assert "net.img_process.cnn.dense.layer.weight expected (256, 32768), got (256, 8192)" in reason


def test_extra_and_missing_blocks_are_named(reference_dir):
    shapes = {k: s for k, s in manifest_shapes(reference_dir, "tiny").items() if "blocks.1.r." not in k}
    name, reason = detect_preset(shapes)
    assert name is None and "net.recurrent_layer.blocks.1.r.orc_block.b_nd missing" in reason
    shapes = {**manifest_shapes(reference_dir, "tiny"), "net.extra.weight": (3,)}
    assert "net.extra.weight not in the preset" in detect_preset(shapes)[1]


def test_not_a_policy(reference_dir):
    stripped = {k.removeprefix("net."): s for k, s in manifest_shapes(reference_dir, "tiny").items()}
    assert detect_preset(stripped) == (None, "keys look like they lack the 'net.' prefix (no net.* keys)")
    assert detect_preset({"fc.weight": (3, 4)}) == (
        None,
        "no net.lastlayer.layer.weight key: not a VPT policy state dict",
    )
    assert detect_preset({})[0] is None
