"""Reading annotation files the way real benchmark releases write them."""

import json
from pathlib import Path

import pytest

from latentomni.eval.annotations import (
    AnnotationError,
    Record,
    load_records,
    normalise_answer,
    normalise_options,
    parse_seconds,
)

REC = Record({}, path=Path("qa.json"), where="record 7")
ABC = ["A. red", "B. blue", "C. green"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (["A. red", "B. blue", "C. green"], ABC),
        (["A.red", "B.blue", "C.green"], ABC),
        (["A red", "B blue", "C green"], ABC),
        (["(A) red", "(B) blue", "(C) green"], ABC),
        (["a) red", "b) blue", "c) green"], ABC),
        (["A: red", "B: blue", "C: green"], ABC),
        (["red", "blue", "green"], ABC),
        ({"A": "red", "B": "blue", "C": "green"}, ABC),
        ("['A. red', 'B. blue', 'C. green']", ABC),  # a list flattened to its repr by a TSV export
        ("A. red\nB. blue\nC. green", ABC),
        ("A. red B. blue C. green", ABC),
        # Options that merely start with the article "A" are text, lettered in order.
        (["A man walks", "A dog barks", "A car stops"], ["A. A man walks", "B. A dog barks", "C. A car stops"]),
        (["B. blue", "A. red"], ["A. B. blue", "B. A. red"]),  # labels out of order are not trusted
        # Repeated source letters (OmniVideoBench's A, B, A, B) are dropped, never kept as "C. A. ...".
        (["A. red", "B. blue", "A. green"], ABC),
        (["A.red", "B) blue", "(A) green"], ABC),
        (["A. happy", "B. sad", "A. an angry tone", "B. calm"],
         ["A. happy", "B. sad", "C. an angry tone", "D. calm"]),
        # ...but only explicit labels: "A man" / "A dog" / "A car" is text, letters or not.
        (["A man", "A dog", "A car"], ["A. A man", "B. A dog", "C. A car"]),
    ],
)
def test_normalise_options(raw, expected):
    assert normalise_options(raw, REC) == expected


def test_normalise_options_rejects_too_few():
    with pytest.raises(AnnotationError, match=r"qa\.json: record 7: field 'options'"):
        normalise_options(["only one"], REC)


@pytest.mark.parametrize("raw", ["B", "b", "B.", "(B)", " B ", "B. blue", "blue", "BLUE", "Blue."])
def test_normalise_answer(raw):
    assert normalise_answer(raw, ABC, REC) == "B"


@pytest.mark.parametrize("raw", ["E", "purple", "B. red"])
def test_normalise_answer_errors_name_the_record(raw):
    with pytest.raises(AnnotationError, match=r"qa\.json: record 7: field 'answer'"):
        normalise_answer(raw, ABC, REC)


ROWS = [{"id": 1, "q": "x"}, {"id": 2, "q": "y"}]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("list.json", json.dumps(ROWS)),
        ("rows.jsonl", "\n".join(json.dumps(r) for r in ROWS) + "\n\n"),
        ("lines.json", "\n".join(json.dumps(r) for r in ROWS)),  # JSONL under a .json name
        ("under_key.json", json.dumps({"version": 2, "data": ROWS})),
        ("keyed.json", json.dumps({"Entry_0": ROWS[0], "Entry_1": ROWS[1]})),
    ],
)
def test_load_records_formats(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    records = load_records(path)
    assert [r.get("id") for r in records] == [1, 2]
    if name == "keyed.json":
        assert [r.key for r in records] == ["Entry_0", "Entry_1"]


def test_load_records_reads_a_tsv_table(tmp_path):
    path = tmp_path / "WorldSense.tsv"
    path.write_text('index\tq\tcandidates\n1\tx\t"[\'A. a\', \'B. \t b\']"\n2\t"say ""hi"""\t\n', encoding="utf-8")
    records = load_records(path)
    assert [r.get("index") for r in records] == ["1", "2"]
    assert records[0].get("candidates") == "['A. a', 'B. \t b']" and records[1].get("q") == 'say "hi"'
    assert records[1].get("candidates") is None  # an empty cell is a missing value
    assert records[1].where == "record 1"


def test_load_records_tsv_errors_name_the_line(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("a\tb\n1\t2\n1\t2\t3\n", encoding="utf-8")
    with pytest.raises(AnnotationError, match=r"t\.tsv: line 3: 3 cells for 2 columns"):
        load_records(path)
    path.write_text("", encoding="utf-8")
    with pytest.raises(AnnotationError, match=r"t\.tsv: line 1: expected a header row"):
        load_records(path)


def test_load_records_errors(tmp_path):
    with pytest.raises(AnnotationError, match="not found"):
        load_records(tmp_path / "absent.json")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(AnnotationError, match=r"bad\.jsonl: line 2"):
        load_records(bad)
    scalar = tmp_path / "scalar.json"
    scalar.write_text("3")
    with pytest.raises(AnnotationError, match="expected a list"):
        load_records(scalar)


def test_record_lookup_ignores_key_case_and_reports_missing_fields(tmp_path):
    rec = Record({"Question": "Why?", "answer": ""}, tmp_path / "qa.json", "record 3")
    assert rec.get("question") == "Why?"
    with pytest.raises(AnnotationError, match=r"qa\.json: record 3: missing field 'answer', 'correct_option'"):
        rec.require("answer", "correct_option")  # an empty string counts as missing


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("03:28", 208), ("1:02:03", 3723), ("30s", 30), ("60S", 60), ("2 min", 120), (12, 12), ("7.5", 7.5)],
)
def test_parse_seconds(value, seconds):
    assert parse_seconds(value) == seconds


def test_parse_seconds_unreadable():
    assert parse_seconds("about a minute") is None
    assert parse_seconds(None) is None
