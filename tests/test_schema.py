import json

import pytest

from latentomni.data.schema import SampleFormatError, load_samples, parse_sample


def _record(**over):
    rec = {
        "id": "s1",
        "messages": [
            {"role": "user", "content": [{"type": "video", "video": "a.mp4"}, {"type": "text", "text": "Q?"}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Look."},
                    {"type": "latent", "segment": 1, "start": 0.0, "end": 2.0},
                    {"type": "text", "text": "\\boxed{A}"},
                ],
            },
        ],
        "answer": "A",
    }
    rec.update(over)
    return rec


def test_valid_record_exposes_blocks_and_media():
    s = parse_sample(_record())
    assert [b.segment for b in s.latent_blocks] == [1]
    assert s.video.video == "a.mp4" and s.audio is None


def test_string_content_is_normalised():
    rec = _record()
    rec["messages"].insert(0, {"role": "system", "content": "be brief"})
    s = parse_sample(rec)
    assert s.messages[0].content[0].text == "be brief"


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (lambda r: r["messages"][1]["content"][1].update(end=0.0), "must be > start"),
        (lambda r: r["messages"].pop(), "exactly one assistant"),
        (lambda r: r["messages"][0]["content"].pop(0), "no video or audio"),
        (lambda r: r["messages"][0]["content"].append({"type": "latent", "segment": 1, "start": 0, "end": 1}),
         "only appear in the assistant"),
    ],
)
def test_invalid_records_say_why(mutate, needle):
    rec = _record()
    mutate(rec)
    with pytest.raises(SampleFormatError, match=needle):
        parse_sample(rec)


def test_loader_reports_file_and_line(tmp_path):
    p = tmp_path / "train.jsonl"
    p.write_text(json.dumps(_record()) + "\n\n" + "{not json\n")
    with pytest.raises(SampleFormatError, match=r"train.jsonl:3"):
        load_samples(p)
