"""Video-MME's official output file: written beside results.json with the parsed letter as ``response``."""

import json
import re

from latentomni.eval import get_benchmark
from latentomni.eval.official import VIDEOMME_FILE, videomme_official
from latentomni.eval.runner import RESULTS, run_eval

OPTIONS = ["A. red", "B. blue", "C. green", "D. yellow"]
REPLY_B = "The high tone matters. A blue square is on screen then. \\boxed{B}"


def official_letter(response: str) -> str:
    """What the authors' eval_your_results.py reads from ``response``: a few answer prefixes removed, a long
    text without any capital A-D is unanswered, else the first capital A-D anywhere (written from its
    description, to show why the raw reply must not be handed to it)."""
    s = response.strip()
    for prefix in ("The best answer is", "The correct answer is", "The answer is", "The answer"):
        s = s.replace(prefix, "")
    m = re.search("[ABCD]", s)
    return m.group(0) if m else ""


def _rows():
    rows = []
    for vid, youtube, duration, domain, sub in (
        ("001", "yt1", "short", "Knowledge", "Humanity & History"),
        ("301", "yt2", "medium", "Sports Competition", "Football"),
    ):
        for n, answer in ((1, "B"), (2, "C")):
            rows.append({"video_id": vid, "duration": duration, "domain": domain, "sub_category": sub,
                         "videoID": youtube, "question_id": f"{vid}-{n}", "task_type": "Counting Problem",
                         "question": f"Q{n}?", "options": OPTIONS, "answer": answer})
    return rows


def _annotations(tmp_path):
    qa = tmp_path / "videomme.jsonl"
    qa.write_text("\n".join(json.dumps(r) for r in _rows()), encoding="utf-8")
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "yt1.mp4").write_bytes(b"")  # yt2 is missing
    return qa, tmp_path / "media"


def test_the_raw_reply_would_be_misscored_by_the_official_scorer():
    assert official_letter(REPLY_B) == "A"  # "A blue square..." is read as option A


def test_official_file_holds_the_parsed_letter(tmp_path):
    qa, media = _annotations(tmp_path)
    items = get_benchmark("videomme").load(qa, media)
    predictions = {
        "001-1": {"reply": REPLY_B},
        "001-2": {"reply": "I cannot tell."},  # unreadable: no letter is made up for it
        "301-1": {"error": "yt2.mp4: corrupt video stream"},
    }
    (path,) = videomme_official(tmp_path, items, predictions)
    assert path == tmp_path / VIDEOMME_FILE
    videos = json.loads(path.read_text(encoding="utf-8"))
    assert [v["video_id"] for v in videos] == ["001", "301"]
    first, second = videos
    assert {k: first[k] for k in ("duration_category", "video_category", "video_subcategory", "missing")} == {
        "duration_category": "short", "video_category": "Knowledge", "video_subcategory": "Humanity & History",
        "missing": False,
    }
    assert first["questions"][0] == {"question_id": "001-1", "task_type": "Counting Problem", "question": "Q1?",
                                     "choices": OPTIONS, "answer": "B", "response": "B"}
    assert [q["response"] for q in first["questions"]] == ["B", ""]
    assert second["missing"] is True and [q["response"] for q in second["questions"]] == ["", ""]

    # The official reading of the file agrees with ours: 001-1 right, the rest unanswered.
    read = {q["question_id"]: official_letter(q["response"]) for v in videos for q in v["questions"]}
    assert read == {"001-1": "B", "001-2": "", "301-1": "", "301-2": ""}


def test_other_benchmarks_write_no_official_file(tmp_path, daily_omni):
    qa, videos = daily_omni
    bench = get_benchmark("daily_omni")
    assert bench.write_official(tmp_path, bench.load(qa, videos), {}) == []
    assert list(tmp_path.glob("*official*")) == []


def test_an_eval_run_writes_the_official_file_next_to_results(tmp_path, scripted):
    qa, media = _annotations(tmp_path)
    out = tmp_path / "out"
    run_eval(scripted({"001-1": REPLY_B, "001-2": "Answer: C"}), "videomme", qa, media, out, progress=False)
    assert (out / RESULTS).is_file()
    videos = json.loads((out / VIDEOMME_FILE).read_text(encoding="utf-8"))
    assert [q["response"] for q in videos[0]["questions"]] == ["B", "C"]
    assert videos[1]["missing"] is True  # yt2.mp4 is not on disk
