"""Typed replies: the schema sent as response_format, and the parser that validates what comes back."""

from __future__ import annotations

import json

import pytest

from latentomni.synth.replies import (
    AuditReply,
    CaptionReply,
    Category,
    MCQReply,
    OpenQAReply,
    ReplyInvalid,
    ScoreReply,
    TrajectoryReply,
    parse_reply,
    strict_json_schema,
)

OPEN = {"question": "Which object rings when the ball lands?", "answer": "the bell", "reasoning_type": "causal"}


@pytest.mark.parametrize("wrap", [
    lambda t: t,
    lambda t: f"```json\n{t}\n```",
    lambda t: f"```\n{t}\n```",
    lambda t: f"Sure, here it is:\n{t}\nLet me know {{if}} you need more.",
    lambda t: f"<think>the user wants {{json}}</think>\n{t}",
    lambda t: "Note {draft} first. " + t,
])
def test_parser_tolerates_fences_prose_and_think_blocks(wrap):
    assert parse_reply(wrap(json.dumps(OPEN)), OpenQAReply).answer == "the bell"


@pytest.mark.parametrize("question", ["Which song from the 1990s plays while the 2 dancers spin?",
                                      "Why does the crowd cheer after the goal?"])
def test_plain_numbers_are_not_timestamps(question):
    assert parse_reply(json.dumps({**OPEN, "question": question}), OpenQAReply).question == question


def test_raw_control_characters_inside_strings_are_accepted():
    text = json.dumps(OPEN).replace("Which object", "Which\tobject\n")
    assert parse_reply(text, OpenQAReply).question.startswith("Which\tobject")


def test_single_backslash_boxed_is_restored():
    raw = '{"trajectory": "It rings. [Segment 1] \\boxed{A}"}'  # JSON '\b' = backspace
    assert parse_reply(raw, TrajectoryReply).trajectory.endswith("\\boxed{A}")
    raw = '{"trajectory": "x \\s [Segment 1] \\\\boxed{A}"}'  # an invalid escape is repaired, not fatal
    assert parse_reply(raw, TrajectoryReply).trajectory.endswith("\\boxed{A}")


@pytest.mark.parametrize("text, needle", [
    ("", "empty reply"),
    ('{"question": "   ", "answer": "the bell", "reasoning_type": "causal"}', "question"),
    ("no json here", "no JSON object"),
    ('{"question": "Q?", "answer": "yes"}', "reasoning_type"),
    ('{"question": "What happens at 0:03?", "answer": "a bell", "reasoning_type": "temporal"}', "timestamp"),
    ('{"question": "Why?", "answer": "one two three four five six seven eight nine ten eleven", '
     '"reasoning_type": "causal"}', "at most 10 words"),
    ('{"question": "Where is <obj_1>?", "answer": "left", "reasoning_type": "spatial"}', "markup tag"),
])
def test_invalid_replies_say_why(text, needle):
    with pytest.raises(ReplyInvalid, match=needle):
        parse_reply(text, OpenQAReply)


def test_mcq_options_are_four_distinct_and_letters_are_enums():
    ok = {"question": "Which sound follows?", "options": {"A": "A. bell", "B": "dog", "C": "horn", "D": "rain"},
          "answer": "A", "reasoning_type": "temporal"}
    reply = parse_reply(json.dumps(ok), MCQReply)
    assert reply.option_lines() == ["A. bell", "B. dog", "C. horn", "D. rain"]
    with pytest.raises(ReplyInvalid, match="distinct"):
        parse_reply(json.dumps({**ok, "options": {**ok["options"], "B": "Bell"}}), MCQReply)
    with pytest.raises(ReplyInvalid, match="answer"):
        parse_reply(json.dumps({**ok, "answer": "E"}), MCQReply)
    with pytest.raises(ReplyInvalid, match="labelled"):
        parse_reply(json.dumps({**ok, "options": {**ok["options"], "C": "D. horn"}}), MCQReply)


def test_score_reply_bounds_and_categories():
    ok = {"scores": {"context_utilization": 5, "question_difficulty": 4, "deductive_requirement": 4},
          "category": "Counting & Quantification", "modality_dependency": "AV-Strong", "rationale": "r"}
    reply = parse_reply(json.dumps(ok), ScoreReply)
    assert reply.total == 13 and reply.category is Category.COUNTING
    for bad in ({**ok, "scores": {**ok["scores"], "question_difficulty": 6}},
                {**ok, "category": "Counting"}, {**ok, "modality_dependency": "Audio"}):
        with pytest.raises(ReplyInvalid):
            parse_reply(json.dumps(bad), ScoreReply)
    assert len(Category) == 10


def test_plain_text_only_where_allowed():
    assert parse_reply("A ball falls. A bell rings.", CaptionReply).caption == "A ball falls. A bell rings."
    with pytest.raises(ReplyInvalid, match="at most 5 sentences"):
        parse_reply("One. Two. Three. Four. Five. Six.", CaptionReply)
    with pytest.raises(ReplyInvalid):
        parse_reply("consistent, looks fine", AuditReply)
    with pytest.raises(ReplyInvalid, match="no JSON"):  # the server was asked for JSON
        parse_reply("A ball falls. A bell rings.", CaptionReply, plain_text=False)


def test_strict_schema_closes_every_object_and_requires_every_field():
    schema = strict_json_schema(ScoreReply)
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"scores", "category", "modality_dependency", "rationale"}
    scores = schema["$defs"]["QualityScores"]
    assert scores["additionalProperties"] is False
    assert scores["properties"]["question_difficulty"]["minimum"] == 1
    assert scores["properties"]["question_difficulty"]["maximum"] == 5
    assert len(schema["$defs"]["Category"]["enum"]) == 10
    assert schema["$defs"]["Modality"]["enum"] == ["AV-Strong", "Video-Strong", "Audio-Strong"]
    assert strict_json_schema(MCQReply)["$defs"]["OptionLetter"]["enum"] == ["A", "B", "C", "D"]


def test_schema_sent_to_the_server_has_no_string_lengths_but_replies_keep_them():
    # xgrammar rejects every escape inside a length-bounded string: "\\boxed{...}" would be impossible
    for model in (OpenQAReply, MCQReply, TrajectoryReply, CaptionReply):
        text = json.dumps(strict_json_schema(model))
        assert "minLength" not in text and "maxLength" not in text, model.__name__
    with pytest.raises(ReplyInvalid, match="trajectory"):
        parse_reply('{"trajectory": "   "}', TrajectoryReply)
