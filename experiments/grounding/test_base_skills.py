"""The measurement helpers of ``base_skills.py`` read the world's ground truth correctly: a perfect
caption must let the caption oracle answer every held-out question, and the binding labels must follow the
clip's timeline."""

import json

import base_skills as skills
import numpy as np
from crossmodal import crossmodal_choice_samples

from latentomni.data.schema import load_samples
from latentomni.data.world import generate_world
from latentomni.data.world.scene import clip_from_record, dense_line
from latentomni.demo.base import parse_caption
from latentomni.demo.encoders import segment_per_audio_token
from latentomni.model.backbone import Qwen25Omni


def _world(tmp_path):
    world = generate_world(tmp_path, n_train_clips=4, n_test_clips=30, seed=2, render=False)
    records = {r["id"]: r for r in map(json.loads, world.path("ground_truth").read_text().splitlines())}
    return world, records


def test_true_caption_answers_every_question(tmp_path):
    world, records = _world(tmp_path)
    questions = load_samples(world.path("test")) + load_samples(world.path("test_seen"))
    assert len(questions) > 30
    for q in questions:
        clip = clip_from_record(records[q.meta["clip"]])
        lines = parse_caption("\n".join(dense_line(s) for s in clip.segments))
        assert len(lines) == len(clip.segments)
        assert skills.answer_from_caption(q, lines), (q.id, q.question_type, lines)
        wrong = {k: (v.replace("silence", "a low tone"), "a low tone") for k, (v, _) in lines.items()}
        if q.question_type.startswith("sound_with") and q.meta["answer_text"] != "the low tone":
            assert not skills.answer_from_caption(q, wrong)


def test_probe_items_and_binding_labels_follow_the_timeline(tmp_path):
    _, records = _world(tmp_path)
    record = next(iter(records.values()))
    segs = record["segments"]
    n_audio = int(record["duration"] * 25)
    audio, video = skills.binding_labels(record, n_audio, steps=int(record["duration"]), frames_per_step=2,
                                         backbone=Qwen25Omni(None))
    per_token = segment_per_audio_token(segs, n_audio, Qwen25Omni(None))
    for j in (0, n_audio - 1):
        seg = per_token[j]
        assert audio[j, 0] == skills.VISUAL_CLASSES["colour"].index(seg["colour"])
    assert video[0] == skills.SOUNDS.index(segs[0]["sound"]) or segs[0]["end"] < 1.0
    for kind, rec, question, answer in skills.crossmodal_items(record):
        assert rec is record and question.endswith("?") and answer
        assert kind in {"see_at_sound", "hear_at_colour", "hear_at_shape"}
    spans = [a for _, _, _, a in skills.retrieval_items([record])]
    assert all(a.startswith("From ") and a.endswith(" s.") for a in spans)


def test_open_reply_scoring_reads_the_answer_words_only():
    assert skills.reply_contains_answer("two", "two green squares")
    assert skills.reply_contains_answer("the low tone", "a low tone")
    assert skills.reply_contains_answer("a noise burst", "A noise burst.")
    assert not skills.reply_contains_answer("two", "three green squares")
    assert not skills.reply_contains_answer("red", "a reddish square"), "whole words only"
    assert not skills.reply_contains_answer("the low tone", "a high tone")


def test_choice_scoring_reads_the_stated_text_and_the_boxed_letter(tmp_path):
    _, records = _world(tmp_path)
    record = next(iter(records.values()))
    samples = crossmodal_choice_samples(np.random.default_rng(0), clip_from_record(record), record["media"])
    assert samples
    for s in samples:
        reply = s.messages[1].content[0].text  # the training target: right text, its letter
        assert skills.boxed_letter(reply) == s.answer
        assert skills.stated_option(reply, s.options) == s.answer
        other = next(o for o in s.options if o[0] != s.answer)
        wrong_letter = f"{reply.split('. ')[0]}. \\boxed{{{other[0]}}}"
        assert skills.stated_option(wrong_letter, s.options) == s.answer != skills.boxed_letter(wrong_letter)
    assert skills.boxed_letter("no answer") is None
    assert skills.stated_option("\\boxed{A}", ["A. red", "B. blue"]) is None
    assert skills.stated_option("The Mid Tone. \\boxed{B}", ["A. red", "B. the mid tone"]) == "B"
