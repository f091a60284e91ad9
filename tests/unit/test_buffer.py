"""Segments and minibatches of whole env rows: partitions, row selection keeps every field (and the
start state) aligned, the auxiliary buffer gathers rows across segments, state_dict round trip."""

from __future__ import annotations

import io

import pytest
import torch

from vpt_rl.algo.buffer import AuxBuffer, Segment, cat_rows, minibatch_rows, segment_to, select_rows


def make_segment(b: int = 4, t: int = 3, tag: float = 0.0, with_prior: bool = True) -> Segment:
    """Every field of row r holds a value derived from (tag, r), so misalignment shows."""
    rows = torch.arange(b, dtype=torch.float32)[:, None] + tag
    bt = rows.expand(b, t).clone()

    def state():
        mask = torch.ones(b, 2, dtype=torch.bool)
        k = rows[:, :, None].expand(b, 2, 5).clone()
        return [(mask, k, k + 0.5), (mask.clone(), k * 2, k * 3)]

    return Segment(
        img_bthwc=bt.to(torch.uint8)[:, :, None, None, None].expand(b, t, 2, 2, 3).clone(),
        first_bt=torch.zeros(b, t, dtype=torch.bool),
        action={"buttons": bt.long(), "camera": bt.long() + 1},
        logprob_bt=bt.clone(),
        vpred_bt=bt + 0.1,
        reward_bt=bt + 0.2,
        terminated_bt=torch.zeros(b, t, dtype=torch.bool),
        truncated_bt=torch.zeros(b, t, dtype=torch.bool),
        final_value_bt=torch.zeros(b, t),
        next_value_b=rows[:, 0].clone(),
        state0=state(),
        prior_state0=state() if with_prior else None,
        prior_logprobs={"buttons": bt[:, :, None].expand(b, t, 7).clone()} if with_prior else None,
    )


def _row_ids(seg: Segment) -> list[float]:
    return seg.next_value_b.tolist()


def _assert_aligned(seg: Segment) -> None:
    seg.check()
    ids = torch.tensor(_row_ids(seg))
    torch.testing.assert_close(seg.logprob_bt[:, 0], ids)
    torch.testing.assert_close(seg.action["camera"][:, 0].float(), ids + 1)
    torch.testing.assert_close(seg.state0[0][1][:, 0, 0], ids)
    torch.testing.assert_close(seg.state0[1][2][:, 0, 0], ids * 3)
    if seg.prior_logprobs is not None:
        torch.testing.assert_close(seg.prior_logprobs["buttons"][:, 0, 0], ids)
        torch.testing.assert_close(seg.prior_state0[1][1][:, 0, 0], ids * 2)


def test_minibatch_rows_is_a_partition():
    g = torch.Generator().manual_seed(0)
    parts = minibatch_rows(10, 3, g)
    assert len(parts) == 3
    assert sorted(torch.cat(parts).tolist()) == list(range(10))
    assert sorted(len(p) for p in parts) == [3, 3, 4]


def test_minibatch_rows_depends_only_on_generator():
    a = minibatch_rows(8, 2, torch.Generator().manual_seed(5))
    b = minibatch_rows(8, 2, torch.Generator().manual_seed(5))
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_minibatch_rows_rejects_more_minibatches_than_rows():
    with pytest.raises(ValueError, match="n_minibatches"):
        minibatch_rows(2, 3, torch.Generator())


def test_select_rows_keeps_fields_and_states_aligned():
    seg = make_segment()
    sub = select_rows(seg, torch.tensor([2, 0]))
    assert _row_ids(sub) == [2.0, 0.0]
    assert sub.num_rows == 2 and sub.num_frames == 6
    _assert_aligned(sub)


def test_cat_rows_and_mismatch_error():
    a, b = make_segment(tag=0.0), make_segment(tag=10.0)
    both = cat_rows([a, b])
    assert _row_ids(both) == [0.0, 1.0, 2.0, 3.0, 10.0, 11.0, 12.0, 13.0]
    _assert_aligned(both)
    with pytest.raises(ValueError, match="prior_state0"):
        cat_rows([a, make_segment(with_prior=False)])


def test_check_reports_bad_shape():
    seg = make_segment()
    seg.vpred_bt = seg.vpred_bt[:, :2]
    with pytest.raises(ValueError, match="vpred_bt"):
        seg.check()


def test_aux_buffer_gathers_rows_across_segments_in_order():
    buf = AuxBuffer()
    for i in range(3):
        buf.add(make_segment(tag=10.0 * i))
    assert len(buf) == 3 and buf.num_rows == 12
    assert all(s.prior_logprobs is None for s in buf.segments)  # dropped to save memory
    assert all(s.prior_state0 is None for s in buf.segments)  # docs/implementation_details.md item 36
    sub = buf.rows(torch.tensor([9, 1, 4, 11]))
    assert _row_ids(sub) == [21.0, 1.0, 10.0, 23.0]
    _assert_aligned(sub)
    buf.clear()
    assert len(buf) == 0


def test_aux_buffer_state_dict_round_trip():
    buf = AuxBuffer()
    buf.add(make_segment(tag=0.0))
    buf.add(make_segment(tag=5.0, with_prior=False))
    f = io.BytesIO()
    torch.save(buf.state_dict(), f)
    f.seek(0)
    other = AuxBuffer()
    other.load_state_dict(torch.load(f, weights_only=True))
    assert len(other) == 2
    for x, y in zip(buf.segments, other.segments):
        assert torch.equal(x.img_bthwc, y.img_bthwc)
        assert all(torch.equal(p, q) for bx, by in zip(x.state0, y.state0) for p, q in zip(bx, by))
        assert isinstance(y.state0[0], tuple)
    assert other.segments[1].prior_state0 is None


def test_segment_to_moves_everything():
    seg = segment_to(make_segment(), "meta")
    assert seg.img_bthwc.device.type == "meta"
    assert seg.state0[0][1].device.type == "meta"
    assert seg.prior_logprobs["buttons"].device.type == "meta"


def test_aux_buffer_checkpoint_holds_no_prior_state_and_keeps_the_last_n():
    buf = AuxBuffer()
    for i in range(4):
        buf.add(make_segment(tag=10.0 * i), keep_last=3)
    assert [s.next_value_b[0].item() for s in buf.segments] == [10.0, 20.0, 30.0]
    state = buf.state_dict()
    assert all(seg["prior_state0"] is None and seg["prior_logprobs"] is None for seg in state["segments"])
    with_prior = AuxBuffer()
    with_prior.segments = [make_segment(tag=10.0 * i) for i in range(1, 4)]  # what add() kept before
    sizes = []
    for b in (buf, with_prior):
        f = io.BytesIO()
        torch.save(b.state_dict(), f)
        sizes.append(f.tell())
    assert sizes[0] < sizes[1]
