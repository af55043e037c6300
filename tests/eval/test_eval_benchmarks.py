"""Each adapter on records in its benchmark's official format (with the usual mess), plus the registry."""

import csv
import dataclasses
import json

import numpy as np
import pytest

from latentomni.data.render import render_av
from latentomni.eval import EvalItem, get_benchmark, render_question
from latentomni.eval.annotations import AnnotationError
from latentomni.eval.benchmarks import BENCHMARKS
from latentomni.eval.scoring import score


def _write(path, data):
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def _groups(results, key):
    return {k: (g["n"], g["correct"]) for k, g in results["breakdowns"][key]["groups"].items()}


def _score_with(bench_name, items, right: set[str]):
    """Score ``items`` with replies that are right exactly for the qids in ``right``."""
    wrong = {it.qid: next(x for x in it.letters if x != it.answer) for it in items}
    preds = {it.qid: {"reply": f"\\boxed{{{it.answer if it.qid in right else wrong[it.qid]}}}"} for it in items}
    return score(get_benchmark(bench_name), items, preds)


# -- Daily-Omni ---------------------------------------------------------------------------------------


def test_daily_omni_official_layout_and_fallback(daily_omni):
    qa, videos = daily_omni
    items = get_benchmark("Daily-Omni").load(qa, videos)
    assert [it.qid for it in items] == ["vid1#1", "vid1#2", "vid2#1", "vid2#2", "vid3#1", "vid4#1"]
    first = items[0]
    assert first.video == videos / "vid1" / "vid1_video.mp4"
    assert first.audio == videos / "vid1" / "vid1_audio.wav"  # the separately shipped track
    assert first.use_audio and first.benchmark == "daily_omni"
    assert items[5].video == videos / "vid4.mp4" and items[5].audio is None  # flat mirror layout
    assert items[4].missing_media() == [videos / "vid3" / "vid3_video.mp4"]
    assert items[1].options == ["A. The man", "B. The woman", "C. The child", "D. Nobody"]
    assert [it.answer for it in items] == ["B", "C", "A", "B", "C", "D"]
    assert items[4].options[0] == "A. A piano"  # "A piano", "A violin", ... are text, not labels
    assert items[3].meta == {"task_type": "Inference", "duration": "60s", "video_category": "sports"}


def test_daily_omni_keyed_entries_and_a_real_clip(tmp_path):
    frames = np.zeros((2, 16, 16, 3), np.uint8)
    render_av(tmp_path / "Videos" / "abc" / "abc_video.mp4", frames, fps=2, audio=np.zeros(2000))
    qa = _write(
        tmp_path / "qa.json",
        {
            "Entry_0": {
                "Question": "Q?",
                "Choice": ["A. x", "B. y", "C. z", "D. w"],
                "Answer": "D",
                "video_id": "abc",
                "Type": "Comparative",
                "video_duration": 29.97,
            }
        },
    )
    (item,) = get_benchmark("daily_omni").load(qa, tmp_path / "Videos")
    assert item.missing_media() == [] and item.video.stat().st_size > 0
    assert item.meta["duration"] == "30s" and item.answer == "D"


def test_daily_omni_missing_field_names_file_and_record(tmp_path):
    qa = _write(
        tmp_path / "qa.json",
        [
            {"Question": "Q?", "Choice": ["A. x", "B. y"], "Answer": "A", "video_id": "v"},
            {"Question": "Q?", "Choice": ["A. x", "B. y"], "video_id": "v"},
        ],
    )
    with pytest.raises(AnnotationError, match=r"qa\.json: record 1: missing field 'Answer'"):
        get_benchmark("daily_omni").load(qa, tmp_path)


# -- WorldSense ---------------------------------------------------------------------------------------

WORLDSENSE = {
    "vidA": {
        "video_id": "vidA",
        "video_duration": "75s",
        "duration": "1-2min",
        "domain": "Daily Life",
        "sub_category": "Cooking",
        "audio_class": ["Speech", "Music"],
        "video_caption": "A cook talks.",
        "task0": {
            "question": "What does the cook add?",
            "candidates": ["A. Salt", "B. Sugar", "C. Oil", "D. Water"],
            "answer": "B",
            "task_type": "Audio Recognition",
            "task_domain": "Recognition",
        },
        "task1": {
            "question": "Why does she laugh?",
            "candidates": ["A.x", "B.y", "C.z", "D.w"],
            "answer": "(D)",
            "task_type": "Causal Reasoning",
            "task_domain": "reasoning",
        },
    },
    "vidB": {  # no video_id field: the key is the id
        "duration": "<1min",
        "domain": "Sports",
        "audio_class": ["event"],
        "task0": {
            "question": "What hits the net?",
            "candidates": ["A. Ball", "B. Bird", "C. Racket", "D. Shoe"],
            "answer": "c",
            "task_type": "Audio Recognition",
            "task_domain": "Recognition",
        },
    },
}


def test_worldsense_nested_official_file(tmp_path):
    qa = _write(tmp_path / "worldsense_qa.json", WORLDSENSE)
    _touch(tmp_path / "videos" / "vidA.mp4")
    items = get_benchmark("worldsense").load(qa, tmp_path / "videos")
    assert [it.qid for it in items] == ["vidA#task0", "vidA#task1", "vidB#task0"]
    assert [it.answer for it in items] == ["B", "D", "C"]
    assert items[0].video == tmp_path / "videos" / "vidA.mp4" and not items[0].missing_media()
    assert items[2].missing_media() == [tmp_path / "videos" / "vidB.mp4"]
    assert items[0].meta["audio_class"] == "Speech|Music" and items[0].meta["duration"] == "1-2min"

    results = _score_with("worldsense", items, right={"vidA#task0", "vidB#task0"})
    # A question counts in every audio class it lists; "event" joins the paper's "Event".
    assert _groups(results, "audio_class") == {"Speech": (2, 1), "Event": (1, 1), "Music": (2, 1)}
    assert _groups(results, "task_domain") == {"Recognition": (2, 2), "Reasoning": (1, 0)}
    assert list(_groups(results, "duration")) == ["<1min", "1-2min"]


def test_worldsense_flat_table_export(tmp_path):
    rows = [
        {
            "index": 0,
            "video": "vidC",
            "video_path": "./videos/vidC.mp4",
            "duration": None,
            "video_duration": "500s",
            "domain": "Games",
            "audio_class": "['Speech', 'Event']",
            "candidates": "['A. 1', 'B. 2', 'C. 3', 'D. 4']",
            "question": "How many?",
            "answer": "A",
            "task_type": "Object Counting",
            "task_domain": "Recognition",
        }
    ]
    (item,) = get_benchmark("WorldSense").load(_write(tmp_path / "ws.json", rows), tmp_path / "videos")
    assert item.qid == "0" and item.options == ["A. 1", "B. 2", "C. 3", "D. 4"]
    assert item.meta["audio_class"] == "Speech|Event" and item.meta["duration"] == ">8min"


# VLMEvalKit's WorldSense.tsv: its columns in its order, lists as their Python repr, cells quoted only when
# they hold a tab, a quote or a line break (what pandas' to_csv(sep="\t") writes).
WORLDSENSE_TSV_COLUMNS = [
    "index", "video", "video_path", "duration", "domain", "candidates", "sub_category", "audio_class",
    "task_domain", "task_type", "subtitle_path", "audio_path", "video_caption", "question", "answer",
]


def _worldsense_tsv(path, rows):
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(WORLDSENSE_TSV_COLUMNS)
        for row in rows:
            writer.writerow([row.get(c, "") for c in WORLDSENSE_TSV_COLUMNS])
    return path


def test_worldsense_vlmevalkit_tsv_loads_with_sub_category(tmp_path):
    rows = [
        {"index": 0, "video": "vidA", "video_path": "./videos/vidA.mp4", "duration": "1-2min",
         "domain": "Daily Life", "candidates": str(["A. Salt", "B. Sugar", "C. Oil", "D. Water"]),
         "sub_category": "Cooking", "audio_class": str(["Speech", "Music"]), "task_domain": "Recognition",
         "task_type": "Audio Recognition", "subtitle_path": "./subtitles/vidA.srt", "audio_path": "./audios/vidA.wav",
         "video_caption": 'A cook says "salt"\tthen\nlaughs.', "question": "What does the cook add?", "answer": "B"},
        {"index": 1, "video": "vidA", "video_path": "./videos/vidA.mp4", "duration": "1-2min",
         "domain": "Daily Life", "candidates": str(["A. x", "B. y", "C. z", "D. w"]), "sub_category": "Cooking",
         "audio_class": str(["Speech", "Music"]), "task_domain": "Reasoning", "task_type": "Causal Reasoning",
         "video_caption": "", "question": "Why does she laugh?", "answer": "D"},
        {"index": 2, "video": "vidB", "video_path": "./videos/vidB.mp4", "duration": "<1min", "domain": "Sports",
         "candidates": str(["A. Ball", "B. Bird", "C. Racket", "D. Shoe"]), "sub_category": "Tennis",
         "audio_class": str(["Event"]), "task_domain": "Recognition", "task_type": "Audio Recognition",
         "question": "What hits the net?", "answer": "C"},
    ]
    tsv = _worldsense_tsv(tmp_path / "WorldSense.tsv", rows)
    _touch(tmp_path / "videos" / "vidA.mp4")
    items = get_benchmark("worldsense").load(tsv, tmp_path / "videos")
    assert [it.qid for it in items] == ["0", "1", "2"]
    assert [it.answer for it in items] == ["B", "D", "C"]
    assert items[0].options == ["A. Salt", "B. Sugar", "C. Oil", "D. Water"]
    assert items[0].video == tmp_path / "videos" / "vidA.mp4" and not items[0].missing_media()
    assert items[0].meta["audio_class"] == "Speech|Music" and items[0].meta["sub_category"] == "Cooking"
    assert items[2].meta["duration"] == "<1min"

    results = _score_with("worldsense", items, right={"0", "2"})
    assert _groups(results, "sub_category") == {"Cooking": (2, 1), "Tennis": (1, 1)}
    assert _groups(results, "audio_class") == {"Speech": (2, 1), "Event": (1, 1), "Music": (2, 1)}


def test_worldsense_nested_file_has_the_sub_category_breakdown(tmp_path):
    items = get_benchmark("worldsense").load(_write(tmp_path / "worldsense_qa.json", WORLDSENSE), tmp_path)
    results = _score_with("worldsense", items, right={"vidA#task0"})
    assert _groups(results, "sub_category") == {"Cooking": (2, 1), "unknown": (1, 0)}


# -- OmniVideoBench -----------------------------------------------------------------------------------

OVB = [
    {
        "video": "video_1",
        "video_type": "Vlog",
        "duration": "03:28",
        "questions": [
            {
                "question": "How many boats?",
                "question_type": "counting",
                "audio_type": "Speech",
                "reasoning_steps": [{"modality": "vision", "evidence": "...", "inference": "..."}],
                "answer": "2",
                "options": ["A.0", "B.1", "C.2", "D.3"],
                "correct_option": "C",
            },
            {
                "question": "What mood?",
                "question_type": "sentiment analysis",
                "audio_type": "speech",
                "answer": "Angry",
                "options": ["A. Thankful", "B. Dislike", "C. Angry", "D. Indifferent"],
            },
        ],
    },
    {
        "video": "video_2",
        "video_type": "Documentary",
        "duration": "00:45",
        "questions": [
            {
                "question": "Which bird sings?",
                "question_type": "Counting",
                "audio_type": "Sound",
                "options": ["A. Crow", "B. Owl", "C. Robin", "D. Gull"],
                "correct_option": "b",
            }
        ],
    },
    {
        "video": "video_3",
        "video_type": "Vlog",
        "duration": "12:10",
        "questions": [
            {
                "question": "Which song?",
                "question_type": "background and music understanding",
                "audio_type": "Music",
                "options": ["A. x", "B. y", "C. z", "D. w"],
                "correct_option": "D",
            }
        ],
    },
    {
        "video": "video_4",
        "video_type": "Vlog",
        "duration": "10:00",
        "questions": [
            {
                "question": "Who?",
                "question_type": "counting",
                "audio_type": "Speech",
                "options": ["A. x", "B. y", "C. z", "D. w"],
                "correct_option": "A",
            }
        ],
    },
]


def test_omnivideobench_nested_questions_and_buckets(tmp_path):
    qa = _write(tmp_path / "ovb.json", OVB)
    items = get_benchmark("OmniVideoBench").load(qa, tmp_path / "videos")
    assert [it.qid for it in items] == ["video_1#1", "video_1#2", "video_2#1", "video_3#1", "video_4#1"]
    assert [it.answer for it in items] == ["C", "C", "B", "D", "A"]  # letter, text-only answer, lower case
    assert items[0].options == ["A. 0", "B. 1", "C. 2", "D. 3"]
    assert items[0].video == tmp_path / "videos" / "video_1.mp4"
    assert [it.meta["duration_bucket"] for it in items] == ["(1,5]", "(1,5]", "(0,1]", "(10,30]", "(5,10]"]

    results = _score_with("omnivideobench", items, right={"video_1#1", "video_2#1", "video_3#1"})
    assert _groups(results, "audio_type") == {"Speech": (3, 1), "Sound": (1, 1), "Music": (1, 1)}
    assert _groups(results, "duration_bucket") == {
        "(0,1]": (1, 1),
        "(1,5]": (2, 1),
        "(5,10]": (1, 0),
        "(10,30]": (1, 1),
    }
    assert _groups(results, "question_type")["counting"] == (3, 2)  # "counting" and "Counting" merged


def test_omnivideobench_source_letters_disagreeing_answers_and_long_videos(tmp_path, caplog):
    qa = [
        {"video": "v_tone", "video_type": "Vlog", "duration": "02:00", "questions": [
            # Lettered A, B, A, B at the source; the gold letter and the text agree on the third option.
            {"question": "Which tone?", "options": ["A. a happy tone", "B. a sad tone", "A. an angry tone",
                                                    "B. a calm tone"],
             "correct_option": "C", "answer": "an angry tone", "audio_type": "Speech"},
            # The gold letter says B, the answer text names option D.
            {"question": "How many?", "options": ["A.0", "B.1", "C.2", "D.3"], "correct_option": "B",
             "answer": "3", "audio_type": "Sound"},
            # The answer text names no option at all.
            {"question": "Who?", "options": ["A. x", "B. y", "C. z", "D. w"], "correct_option": "A",
             "answer": "nobody", "audio_type": "Speech"},
        ]},
        {"video": "v_long", "video_type": "Lecture", "duration": "45:10", "questions": [
            {"question": "When?", "options": ["A. x", "B. y", "C. z", "D. w"], "correct_option": "D",
             "audio_type": "Speech"}]},
        {"video": "v_odd", "video_type": "Lecture", "duration": "about an hour", "questions": [
            {"question": "What?", "options": ["A. x", "B. y", "C. z", "D. w"], "correct_option": "A",
             "audio_type": "Music"}]},
    ]
    bench = get_benchmark("omnivideobench")
    with caplog.at_level("WARNING"):
        items = bench.load(_write(tmp_path / "ovb.json", qa), tmp_path / "videos")
    assert items[0].options == ["A. a happy tone", "B. a sad tone", "C. an angry tone", "D. a calm tone"]
    assert [it.answer for it in items] == ["C", "B", "A", "D", "A"]  # the gold letter is what is scored
    assert [it.meta["duration_bucket"] for it in items] == ["(1,5]"] * 3 + [">30", "unknown"]

    notes = bench.notes(items)
    assert notes["answer_text_disagrees"]["n"] == 2
    assert notes["answer_text_disagrees"]["records"] == [
        {"qid": "v_tone#2", "correct_option": "B", "answer_text": "3", "answer_text_option": "D"},
        {"qid": "v_tone#3", "correct_option": "A", "answer_text": "nobody", "answer_text_option": None},
    ]
    assert notes["outside_duration_buckets"]["n"] == 2
    assert notes["outside_duration_buckets"]["records"] == [
        {"qid": "v_long#1", "duration": "45:10", "group": ">30"},
        {"qid": "v_odd#1", "duration": "about an hour", "group": "unknown"},
    ]
    logged = caplog.text
    assert "2 of 5 questions: correct_option and the answer text name different options" in logged
    assert "2 of 5 questions: videos over 30 minutes" in logged and "notes.outside_duration_buckets" in logged

    # The long video's question is scored in a group of its own, which results.json names, and the
    # scorer passes the notes through to results.json.
    results = _score_with("omnivideobench", items, right={"v_long#1"})
    assert _groups(results, "duration_bucket") == {"(1,5]": (3, 0), ">30": (1, 1), "unknown": (1, 0)}
    assert results["notes"] == notes


def test_omnivideobench_clean_file_has_empty_notes(tmp_path):
    bench = get_benchmark("omnivideobench")
    notes = bench.notes(bench.load(_write(tmp_path / "ovb.json", OVB), tmp_path / "videos"))
    assert notes["answer_text_disagrees"]["n"] == 0 and notes["outside_duration_buckets"]["n"] == 0


def test_benchmarks_without_notes_say_nothing(daily_omni):
    qa, videos = daily_omni
    bench = get_benchmark("daily_omni")
    assert bench.notes(bench.load(qa, videos)) == {}


# -- LVOmniBench --------------------------------------------------------------------------------------


def test_lvomnibench_records(tmp_path):
    rows = [
        {
            "video_id": "video_0",
            "question": "What plays at the end?",
            "options": ["A. x", "B. y", "C. z", "D. w"],
            "correct_option": "B",
            "question_type": "Temporal",
            "audio_type": "Music",
            "difficulty": "Hard",
            "video_category": "Film",
        },
        {
            "video_id": "video_0",
            "question": "Who narrates?",
            "options": ["(A) x", "(B) y", "(C) z", "(D) w"],
            "correct_option": "(a)",
            "question_type": "temporal",
            "audio_type": "Speech",
            "difficulty": "easy",
        },
    ]
    _touch(tmp_path / "videos" / "video_0.mp4")
    items = get_benchmark("lvomnibench").load(_write(tmp_path / "data.json", rows), tmp_path / "videos")
    assert [(it.qid, it.answer) for it in items] == [("video_0#1", "B"), ("video_0#2", "A")]
    assert all(not it.missing_media() and it.use_audio for it in items)
    results = _score_with("lvomnibench", items, right={"video_0#1"})
    assert _groups(results, "question_type") == {"Temporal": (2, 1)}
    assert _groups(results, "video_category") == {"Film": (1, 1), "unknown": (1, 0)}


def test_lvomnibench_missing_question_is_located(tmp_path):
    rows = [{"video_id": "v", "options": ["A. x", "B. y"], "correct_option": "A"}]
    with pytest.raises(AnnotationError, match=r"data\.json: record 0: missing field 'question'"):
        get_benchmark("lvomnibench").load(_write(tmp_path / "data.json", rows), tmp_path)


# -- VideoMME -----------------------------------------------------------------------------------------


def test_videomme_hf_rows_are_vision_only(tmp_path):
    rows = [
        {
            "video_id": "001",
            "duration": "short",
            "domain": "Knowledge",
            "sub_category": "Humanity & History",
            "url": "https://www.youtube.com/watch?v=fFjv93ACGo8",
            "videoID": "fFjv93ACGo8",
            "question_id": "001-1",
            "task_type": "Counting Problem",
            "question": "How many?",
            "options": ["A. 4.", "B. 9.", "C. 5.", "D. 13."],
            "answer": "B",
        },
        {
            "video_id": "601",
            "duration": "Long",
            "domain": "Sports Competition",
            "sub_category": "Football",
            "videoID": "zzz",
            "question_id": "601-2",
            "task_type": "Action Reasoning",
            "question": "Why?",
            "options": ["A. a", "B. b", "C. c", "D. d"],
            "answer": "D",
        },
    ]
    qa = tmp_path / "videomme.jsonl"
    qa.write_text("\n".join(json.dumps(r) for r in rows))
    _touch(tmp_path / "media" / "data" / "fFjv93ACGo8.mp4")
    items = get_benchmark("video-mme").load(qa, tmp_path / "media")
    assert [it.qid for it in items] == ["001-1", "601-2"]
    assert all(not it.use_audio and it.audio is None for it in items)
    assert items[0].video == tmp_path / "media" / "data" / "fFjv93ACGo8.mp4" and not items[0].missing_media()
    assert items[1].video == tmp_path / "media" / "zzz.mp4"
    results = _score_with("videomme", items, right={"601-2"})
    assert _groups(results, "duration") == {"short": (1, 0), "long": (1, 1)}


def test_videomme_authors_template(tmp_path):
    template = [
        {
            "video_id": "001",
            "duration_category": "short",
            "video_category": "Knowledge",
            "video_subcategory": "Humanity & History",
            "questions": [
                {
                    "question_id": "001-1",
                    "task_type": "Object Reasoning",
                    "question": "Which is wrong?",
                    "choices": ["A. x", "B. y", "C. z", "D. w"],
                    "answer": "A",
                    "response": "D",
                }
            ],
        }
    ]
    (item,) = get_benchmark("VideoMME").load(_write(tmp_path / "t.json", template), tmp_path)
    assert item.qid == "001-1" and item.video == tmp_path / "001.mp4"
    assert item.meta == {
        "video_id": "001",  # the official output groups questions by it
        "duration": "short",
        "task_type": "Object Reasoning",
        "domain": "Knowledge",
        "sub_category": "Humanity & History",
    }


# -- registry and prompt ------------------------------------------------------------------------------


def test_registry_names_and_aliases():
    assert list(BENCHMARKS) == ["daily_omni", "worldsense", "omnivideobench", "lvomnibench", "videomme", "world"]
    for alias, name in [
        ("Daily-Omni", "daily_omni"),
        ("OmniVideoBench", "omnivideobench"),
        ("Video-MME", "videomme"),
        ("LVOmniBench", "lvomnibench"),
        ("world_sense", "worldsense"),
    ]:
        assert get_benchmark(alias).name == name
    with pytest.raises(KeyError, match="daily_omni, worldsense"):
        get_benchmark("mmlu")


def test_render_question_lists_options_and_asks_for_a_box():
    item = EvalItem(
        "daily_omni", "v#1", "What sound follows the flash?", ["A. A bell", "B. A horn"], "B", None, None, True, {}
    )
    text = render_question(item)
    lines = text.splitlines()
    assert lines[:3] == ["What sound follows the flash?", "A. A bell", "B. A horn"]
    assert "\\boxed{}" in lines[-1]


# -- media paths stay inside the media root -----------------------------------------------------------

_OPTS = ["A. x", "B. y", "C. z", "D. w"]
# benchmark -> (annotation file name, records naming video <vid>, the field the error names)
HOSTILE_LAYOUTS = {
    "daily_omni": ("qa.json", lambda vid: [{"Question": "Q?", "Choice": _OPTS, "Answer": "A", "video_id": vid}],
                   "video_id"),
    "worldsense": ("ws.json", lambda vid: [{"index": 0, "video": vid, "candidates": _OPTS, "question": "Q?",
                                            "answer": "A"}], "video_id"),
    "omnivideobench": ("ovb.json", lambda vid: [{"video": vid, "duration": "00:10", "questions": [
        {"question": "Q?", "options": _OPTS, "correct_option": "A"}]}], "video"),
    "lvomnibench": ("data.json", lambda vid: [{"video_id": vid, "question": "Q?", "options": _OPTS,
                                               "correct_option": "A"}], "video_id"),
    "videomme": ("vm.json", lambda vid: [{"video_id": "001", "videoID": vid, "question_id": "001-1",
                                          "question": "Q?", "options": _OPTS, "answer": "A"}], "videoID"),
    "world": ("world.json", lambda vid: [{"id": "q1", "answer": "A", "options": _OPTS, "messages": [
        {"role": "user", "content": [{"type": "video", "video": f"{vid}.mp4"}, {"type": "text", "text": "Q?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "\\boxed{A}"}]}]}], "video"),
}


@pytest.fixture
def hostile_root(tmp_path):
    """media/ with evil.mp4 -> outside/x.mp4, and outside/x.mp4 a file that must never be opened."""
    media, outside = tmp_path / "media", tmp_path / "outside"
    media.mkdir()
    _touch(outside / "x.mp4")
    (media / "evil.mp4").symlink_to(outside / "x.mp4")
    return media, outside


@pytest.mark.parametrize("name", list(HOSTILE_LAYOUTS))
def test_every_adapter_refuses_media_outside_the_root(tmp_path, hostile_root, name):
    assert set(HOSTILE_LAYOUTS) == set(BENCHMARKS), "a new benchmark needs its hostile layout here"
    media, outside = hostile_root
    file_name, records, field = HOSTILE_LAYOUTS[name]
    bench = get_benchmark(name)
    cases = {
        "../../outside/x": "climbs out of the media root",
        str(outside / "x"): "is an absolute path outside the media root",
        "evil": "resolves outside the media root .*symlink",
    }
    for vid, why in cases.items():
        qa = _write(tmp_path / file_name, records(vid))
        with pytest.raises(AnnotationError, match=rf"{file_name}: record 0.*field '{field}': media path .*{why}"):
            bench.load(qa, media)

    # The switch accepts the absolute path and the symlink (as named), never the '..' escape.
    allowed = dataclasses.replace(bench, allow_absolute_media=True)
    (item,) = allowed.load(_write(tmp_path / file_name, records(str(outside / "x"))), media)
    assert item.video == outside / "x.mp4"
    (item,) = allowed.load(_write(tmp_path / file_name, records("evil")), media)
    assert item.video == media / "evil.mp4"
    with pytest.raises(AnnotationError, match="climbs out"):
        allowed.load(_write(tmp_path / file_name, records("../../outside/x")), media)


def test_daily_omni_refuses_a_separate_audio_track_linked_outside(tmp_path, hostile_root):
    media, outside = hostile_root
    _touch(media / "v" / "v_video.mp4")
    (media / "v" / "v_audio.wav").symlink_to(outside / "x.mp4")
    qa = _write(tmp_path / "qa.json", HOSTILE_LAYOUTS["daily_omni"][1]("v"))
    with pytest.raises(AnnotationError, match=r"v_audio\.wav' resolves outside the media root"):
        get_benchmark("daily_omni").load(qa, media)


def test_eval_command_refuses_hostile_media_before_loading_a_model(tmp_path, hostile_root, capsys, monkeypatch):
    from latentomni import cli
    from latentomni.eval import cli as eval_cli

    media, outside = hostile_root
    made = []
    monkeypatch.setattr(eval_cli, "make_predictor", lambda *a: made.append(a) or pytest.fail("stop here"))
    qa = _write(tmp_path / "data.json", HOSTILE_LAYOUTS["lvomnibench"][1](str(outside / "x")))
    args = ["eval", "--model", "m", "--benchmark", "lvomnibench", "--annotations", str(qa), "--media-root", str(media)]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "record 0: field 'video_id'" in err and "--allow-absolute-media" in err and not made
    with pytest.raises(pytest.fail.Exception, match="stop here"):
        cli.main([*args, "--allow-absolute-media"])  # the file now loads, and the model would be built
    assert made
