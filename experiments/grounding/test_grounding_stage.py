"""The grounding stage (grounding_stage.py): the cross-modal probes name one segment and ask about the other
modality, the retrieval target covers exactly that segment's audio tokens, and training on it moves the
supervised heads' attention there."""

import numpy as np
import pytest
import torch
from crossmodal import crossmodal_choice_samples, crossmodal_samples
from grounding_stage import (
    BindingHeads,
    audio_binding_labels,
    grounding_losses,
    named_audio_positions,
    pretrain_grounding,
)

from latentomni.data.collate import SampleEncoder, collate
from latentomni.data.world import generate_world
from latentomni.data.world.questions import DEFAULT_HELD_OUT, QUESTION_TYPES, answer_text
from latentomni.data.world.scene import audio_phrase, clip_from_record, visual_phrase
from latentomni.demo.base import ASSET_DIR, DEMO_MEDIA, truth_records
from latentomni.model.backbone import Qwen25Omni
from latentomni.model.wrapper import LatentOmniModel


def test_crossmodal_samples_name_one_segment_and_ask_about_the_other_modality(tmp_path):
    world = generate_world(tmp_path, n_train_clips=12, n_test_clips=0, seed=3, render=False)
    kinds = set()
    for record in truth_records(world.path("ground_truth")):
        clip = clip_from_record(record)
        for s in crossmodal_samples(clip, record["media"]):
            start, end = s.meta["evidence"]
            seg = next(g for g in clip.segments if (g.start, g.end) == (start, end))
            kind = s.question_type.split("/")[1]
            kinds.add(kind)
            if kind == "see_at_sound":
                assert s.answer == visual_phrase(seg.visual)
                assert sum(g.sound == seg.sound for g in clip.segments) == 1
            else:
                attribute = kind.removeprefix("hear_at_")
                assert s.answer == audio_phrase(seg.sound)
                assert sum(g.attribute(attribute) == seg.attribute(attribute) for g in clip.segments) == 1
    assert kinds == {"see_at_sound", "hear_at_colour", "hear_at_shape"}


def test_choice_samples_ask_one_attribute_of_the_other_modality_with_a_confusable_option(tmp_path):
    world = generate_world(tmp_path, n_train_clips=20, n_test_clips=0, seed=3, render=False)
    rng = np.random.default_rng(0)
    kinds, confusable = set(), 0
    held_out = {(QUESTION_TYPES[t].target, QUESTION_TYPES[t].anchor) for t in DEFAULT_HELD_OUT}
    for record in truth_records(world.path("ground_truth")):
        clip = clip_from_record(record)
        samples = crossmodal_choice_samples(rng, clip, record["media"])
        assert len(samples) == len(crossmodal_samples(clip, record["media"]))
        for s in samples:
            target, anchor = s.question_type.split("/")[1].split("_at_")
            assert (target, anchor) not in held_out and target != "motion" and anchor != "count"
            start, end = s.meta["evidence"]
            seg = next(g for g in clip.segments if (g.start, g.end) == (start, end))
            assert sum(g.attribute(anchor) == seg.attribute(anchor) for g in clip.segments) == 1
            texts = [o.split(". ", 1)[1] for o in s.options]
            assert len(set(texts)) == 4 and s.options[ord(s.answer) - ord("A")].startswith(f"{s.answer}. ")
            correct = answer_text(target, seg.attribute(target))
            assert texts[ord(s.answer) - ord("A")] == correct
            others = {answer_text(target, g.attribute(target)) for g in clip.segments} - {correct}
            confusable += bool(others & set(texts))
            assert bool(others) <= bool(others & set(texts)), "another segment's value is always offered"
            reply = s.messages[1].content[0].text
            assert reply == f"{correct}. \\boxed{{{s.answer}}}", "the answer text comes before the letter"
            kinds.add((target, anchor))
    assert confusable > 0
    assert {("colour", "sound"), ("shape", "sound"), ("count", "sound"), ("sound", "colour")} <= kinds


def test_grounding_rejects_a_mix_from_a_missing_pool(tmp_path):
    model = LatentOmniModel.from_pretrained(ASSET_DIR, attn_implementation="eager")
    with pytest.raises(ValueError, match="choice"):
        pretrain_grounding(model, tmp_path, {"open": []}, {}, DEMO_MEDIA,
                           [{"steps": 1, "mix": {"choice": 2}, "bind_weight": 0.0}])


def test_named_audio_positions_follow_audio_time_across_interleaved_chunks():
    a, v, t = 7, 8, 1
    # two chunks: [video x2][audio x3] [video x2][audio x3]; audio token j covers [j/25, (j+1)/25) s
    ids = torch.tensor([t, v, v, a, a, a, v, v, a, a, a, t])
    qwen25 = Qwen25Omni(None)
    got = named_audio_positions(ids, a, (2 / 25, 5 / 25), qwen25)
    assert got.tolist() == [5, 8, 9]
    assert named_audio_positions(ids, a, (10.0, 11.0), qwen25).numel() == 0


def test_binding_labels_say_what_is_on_screen_at_each_audio_token(tmp_path):
    world = generate_world(tmp_path, n_train_clips=2, n_test_clips=0, seed=4, render=False)
    record = truth_records(world.path("ground_truth"))[0]
    n = int(record["duration"] * 25)
    labels = audio_binding_labels(record, n, Qwen25Omni(None))
    assert labels.shape == (n, 4)
    first, last = record["segments"][0], record["segments"][-1]
    assert labels[0, 0] != -100 and labels[-1, 0] != -100
    assert (labels[0] != labels[-1]).any() or first["colour"] == last["colour"]


def test_grounding_moves_the_supervised_attention_onto_the_named_segment(tmp_path):
    world = generate_world(tmp_path, n_train_clips=3, n_test_clips=0, seed=5, workers=1)
    records = {r["id"]: r for r in truth_records(world.path("ground_truth"))}
    probes = [s for r in records.values() for s in crossmodal_samples(clip_from_record(r), r["media"])][:4]
    model = LatentOmniModel.from_pretrained(ASSET_DIR, attn_implementation="eager")
    enc = SampleEncoder.for_model(model, DEMO_MEDIA)
    heads = BindingHeads(model.config.text_config.hidden_size)

    def retrieval_loss() -> float:
        batch = collate([enc.encode(s, world.out_dir, variant="text_cot") for s in probes],
                        model.processor.tokenizer.pad_token_id, "right")
        with torch.no_grad():
            _, ret, bind, _ = grounding_losses(model, heads, batch, probes, records, (2, 3), 2)
        assert torch.isfinite(bind)
        return float(ret)

    before = retrieval_loss()
    report = pretrain_grounding(model, world.out_dir, {"open": probes}, records, DEMO_MEDIA,
                                [{"steps": 25, "mix": {"open": 4}, "bind_weight": 0.5}])
    after = retrieval_loss()
    assert after < 0.7 * before, (before, after)
    assert not model.training and report["phases"][0]["steps"] == 25
    assert all(not p.requires_grad for p in model.thinker.model.visual.parameters()), "vision stays frozen"
