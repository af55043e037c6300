"""[Segment n] rules and marker -> latent-part assembly."""

from __future__ import annotations

import pytest

from latentomni.synth.trajectory import answers_match, check_trajectory, extract_boxed, to_parts

OPTIONS = ["A. A ringing bell", "B. A barking dog", "C. A car horn", "D. Rain on a roof"]
WINDOWS = {1: (0.0, 2.0), 2: (2.0, 4.5), 3: (4.5, 6.0)}


def test_markers_become_latent_parts_with_their_windows():
    text = "First listen. [Segment 2] The bell rings as it lands.\n[Segment 1]So it is the bell. \\boxed{A}"
    parts = to_parts(text, WINDOWS, {2: "bell rings"})
    assert parts == [
        {"type": "text", "text": "First listen."},
        {"type": "latent", "segment": 2, "start": 2.0, "end": 4.5, "caption": "bell rings"},
        {"type": "text", "text": "The bell rings as it lands."},
        {"type": "latent", "segment": 1, "start": 0.0, "end": 2.0},
        {"type": "text", "text": "So it is the bell. \\boxed{A}"},
    ]


def test_adjacent_and_leading_markers_leave_no_empty_text():
    parts = to_parts("[Segment 1] [Segment 3] Therefore \\boxed{B}", WINDOWS)
    assert [p["type"] for p in parts] == ["latent", "latent", "text"]
    assert parts[1]["start"] == 4.5 and parts[2]["text"] == "Therefore \\boxed{B}"


def test_boxed_extraction_balances_braces():
    assert extract_boxed("so \\boxed{f(x)={1}} .")[0] == "f(x)={1}"
    assert extract_boxed("\\boxed{A} then \\boxed{B}")[0] == "B"
    assert extract_boxed("no box") is None and extract_boxed("\\boxed{open") is None


@pytest.mark.parametrize("boxed, ok", [("A", True), ("(A)", True), ("A.", True), ("A. A ringing bell", True),
                                       ("a ringing bell", True), ("B", False), ("A. A barking dog", False),
                                       ("The answer is A", False), ("", False)])
def test_multiple_choice_answers_need_the_letter_or_the_exact_option(boxed, ok):
    assert answers_match(boxed, "A", OPTIONS) is ok


def test_open_answers_compare_normalised():
    assert answers_match("The bell.", "the bell", None)
    assert not answers_match("a bell and a horn", "the bell", None)


def _check(text: str, **kw):
    kw = {"n_segments": 3, "answer": "A", "options": OPTIONS, "banned_phrases": ["caption"], **kw}
    problem = check_trajectory(text, **kw)
    return None if problem is None else problem.reason


@pytest.mark.parametrize(
    "text, reason",
    [
        ("Look. [Segment 1] Bell. \\boxed{A}", None),
        ("Look. [Segment 1] Bell. \\boxed{A}.\n", None),
        ("Look. [Segment 1] Bell.", "no_boxed_answer"),
        ("Look. [Segment 1] Bell. \\boxed{A} I am sure.", "text_after_answer"),
        ("Look. [Segment 4] Bell. \\boxed{A}", "citation_out_of_range"),
        ("Look. [Segment 0] Bell. \\boxed{A}", "citation_out_of_range"),
        ("Bell. \\boxed{A}", "citation_count"),
        ("[Segment 1] [Segment 2] [Segment 3] [Segment 1] \\boxed{A}", "citation_count"),
        ("Look. [Segments 1-2] Bell. \\boxed{A}", "malformed_citation"),
        ("Look. [segment 1] Bell. \\boxed{A}", "malformed_citation"),
        ("Look. [Segment 1] Bell. \\boxed{B}", "answer_mismatch"),
        ("The caption says [Segment 1] bell. \\boxed{A}", "mentions_source_text"),
    ],
)
def test_rule_check(text, reason):
    assert _check(text) == reason


def test_rule_check_citation_limits_are_configurable():
    text = "[Segment 1] [Segment 2] [Segment 3] [Segment 1] \\boxed{A}"
    assert _check(text, max_citations=4) is None
    assert _check("[Segment 1] \\boxed{A}", min_citations=2) == "citation_count"
