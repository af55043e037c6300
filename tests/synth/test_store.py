"""Append-only stage outputs: torn lines, locking, the in = out + dropped + pending summary."""

from __future__ import annotations

import pytest

from latentomni.synth.stages.base import check_invariant
from latentomni.synth.store import Drop, StageStore, StoreError


def test_append_resume_and_summary(tmp_path):
    store = StageStore(tmp_path, "qa")
    with store.open():
        store.append({"id": "a", "x": 1})
        store.append_drop(Drop("b", "invalid_reply", "bad"))
    assert store.done_ids() == {"a", "b"}
    summary = store.summarize(["a", "b", "c"])
    assert (summary.inputs, summary.outputs, summary.dropped, summary.pending) == (3, 1, {"invalid_reply": 1}, 1)
    check_invariant(summary)
    assert not summary.complete


def test_a_torn_last_line_is_cut_before_appending(tmp_path):
    store = StageStore(tmp_path, "qa")
    store.dir.mkdir(parents=True)
    store.out_path.write_text('{"id": "a"}\n{"id": "b", "te')
    with store.open():
        store.append({"id": "c"})
    assert [r["id"] for r in store.outputs()] == ["a", "c"]


def test_a_corrupt_middle_line_is_reported_with_file_and_line(tmp_path):
    store = StageStore(tmp_path, "qa")
    store.dir.mkdir(parents=True)
    store.out_path.write_text('{"id": "a"}\nnot json\n{"id": "c"}\n')
    with pytest.raises(StoreError, match=r"qa\.jsonl:2"):
        store.outputs()


def test_one_process_per_stage(tmp_path):
    store = StageStore(tmp_path, "qa")
    with store.open(), pytest.raises(StoreError, match="already running"), StageStore(tmp_path, "qa").open():
        pass
    with StageStore(tmp_path, "qa").open():  # released afterwards
        pass


def test_forget_drops_makes_items_pending_again(tmp_path):
    store = StageStore(tmp_path, "qa")
    with store.open():
        store.append({"id": "a"})
        store.append_drop(Drop("b", "request_failed"))
        store.append_drop(Drop("c", "invalid_reply"))
    assert store.forget_drops({"request_failed"}) == 1
    assert store.done_ids() == {"a", "c"} and store.outputs() == [{"id": "a"}]


def test_records_appended_after_forget_drops_inside_open_are_kept(tmp_path):
    """forget_drops replaces the files; the open append handles must follow, or retried records vanish."""
    store = StageStore(tmp_path, "qa")
    with store.open():
        store.append({"id": "a"})
        store.append_drop(Drop("b", "request_failed"))
    with store.open():
        assert store.forget_drops({"request_failed"}) == 1
        store.append({"id": "b"})
        store.append_drop(Drop("c", "invalid_reply"))
    assert [r["id"] for r in store.outputs()] == ["a", "b"]
    assert store.drops() == [Drop("c", "invalid_reply")]
