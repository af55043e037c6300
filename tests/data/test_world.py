"""The synthetic world: determinism, media that decodes to its ground truth, valid records, questions that
need both modalities, held-out templates, balanced answer letters, the CLI."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import av
import numpy as np
import pytest

from latentomni.data.schema import LatentPart, TextPart, load_samples
from latentomni.data.world import QUESTION_TYPES, QuestionType, WorldConfig, clip_from_record, generate_world
from latentomni.data.world.draw import BACKGROUND, shape_centres
from latentomni.data.world.questions import Question, answer_on, question_from_sample, single_modality_answers
from latentomni.data.world.scene import COLOURS, TONES, Clip, Segment, Visual

REASONING = ("train", "test", "test_seen")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("world")
    generate_world(out, n_train_clips=6, n_test_clips=4, seed=3)
    return out


@pytest.fixture(scope="module")
def large(tmp_path_factory) -> Path:
    """Enough questions for statistics; JSONL only (no media), which is all those tests read."""
    out = tmp_path_factory.mktemp("world_large")
    generate_world(out, n_train_clips=300, n_test_clips=150, seed=1, render=False)
    return out


def _clips(out: Path) -> dict[str, Clip]:
    with (out / "ground_truth.jsonl").open() as fh:
        return {c.id: c for c in (clip_from_record(json.loads(line)) for line in fh)}


def _files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


# -- determinism -----------------------------------------------------------------------------------------
def test_same_seed_writes_identical_files_whatever_the_workers(rendered, tmp_path):
    again = generate_world(tmp_path, n_train_clips=6, n_test_clips=4, seed=3, workers=2)
    first, second = _files(rendered), _files(again.out_dir)
    assert set(first) == set(second)
    assert len([f for f in first if f.endswith(".mp4")]) == 10
    assert [f for f in first if first[f] != second[f]] == []


def test_clips_last_whole_seconds_in_segments_of_one_and_a_half_to_two(large):
    """Whole seconds keep a 2 fps sampler, which takes frames in pairs, on the 0.5 s grid of the segments."""
    clips = _clips(large).values()
    assert {c.duration for c in clips} == {3.0, 4.0, 5.0, 6.0, 7.0, 8.0}
    assert {s.duration for c in clips for s in c.segments} == {1.5, 2.0}
    assert {len(c.segments) for c in clips} == {2, 3, 4}


def test_a_finished_world_of_the_same_config_is_not_rendered_again(tmp_path):
    first = generate_world(tmp_path, 2, 1, seed=5)
    again = generate_world(tmp_path, 2, 1, seed=5)
    assert first.render_seconds is not None and again.render_seconds is None
    assert generate_world(tmp_path, 2, 1, seed=5, reuse=False).render_seconds is not None
    assert generate_world(tmp_path, 2, 1, seed=5, frame_size=64).render_seconds is not None
    with av.open(str(tmp_path / "clips" / "train-000000.mp4")) as c:
        assert c.streams.video[0].width == 64


def test_another_seed_writes_another_world(tmp_path):
    a = generate_world(tmp_path / "a", 5, 2, seed=0, render=False)
    b = generate_world(tmp_path / "b", 5, 2, seed=1, render=False)
    assert a.path("train").read_bytes() != b.path("train").read_bytes()


# -- media -----------------------------------------------------------------------------------------------
def test_clips_decode_with_a_video_and_an_aac_track_of_the_clip_duration(rendered):
    for clip in _clips(rendered).values():
        with av.open(str(rendered / "clips" / f"{clip.id}.mp4")) as c:
            assert len(c.streams.video) == 1 and len(c.streams.audio) == 1
            v, a = c.streams.video[0], c.streams.audio[0]
            assert a.codec_context.name == "aac" and a.rate == 44100
            assert (v.width, v.height) == (56, 56)
            assert float(v.duration * v.time_base) == pytest.approx(clip.duration, abs=0.26)
            assert float(a.duration * a.time_base) == pytest.approx(clip.duration, abs=0.1)


def _nearest_colour(pixel: np.ndarray) -> str:
    palette = {**COLOURS, "background": BACKGROUND}
    return min(palette, key=lambda name: float(np.sum((np.asarray(palette[name], float) - pixel) ** 2)))


def test_pixels_show_the_ground_truth_colour_where_the_shapes_are(rendered):
    checked = 0
    for clip in _clips(rendered).values():
        with av.open(str(rendered / "clips" / f"{clip.id}.mp4")) as c:
            for frame in c.decode(video=0):
                t = float(frame.time)
                seg = clip.segment_at(t)
                rgb = frame.to_ndarray(format="rgb24").astype(float)
                for cx, cy in shape_centres(seg.visual, (t - seg.start) / seg.duration, 56):
                    assert _nearest_colour(rgb[round(cy), round(cx)]) == seg.visual.colour, (clip.id, t)
                    checked += 1
                assert _nearest_colour(rgb[1, 1]) == "background"
    assert checked > 100


def _decode_audio(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=44100)
        chunks = [out.to_ndarray().reshape(-1) for f in c.decode(audio=0) for out in resampler.resample(f)]
    return np.concatenate(chunks)


def test_audio_plays_the_ground_truth_sound_in_each_segment(rendered):
    heard = Counter()
    for clip in _clips(rendered).values():
        audio = _decode_audio(rendered / "clips" / f"{clip.id}.mp4")
        for seg in clip.segments:
            window = audio[round((seg.start + 0.1) * 44100) : round((seg.end - 0.1) * 44100)]
            rms = float(np.sqrt(np.mean(window**2)))
            if seg.sound == "silence":
                assert rms < 0.01, (clip.id, seg.index)
            else:
                spectrum = np.abs(np.fft.rfft(window * np.hanning(len(window))))
                freqs = np.fft.rfftfreq(len(window), 1 / 44100)
                peak = spectrum.max() / spectrum.mean()
                if seg.sound in TONES:
                    assert freqs[spectrum.argmax()] == pytest.approx(TONES[seg.sound], rel=0.02), (clip.id, seg.index)
                    assert peak > 100
                else:  # a noise burst: loud, with no tone standing out
                    assert rms > 0.05 and peak < 20, (clip.id, seg.index)
            heard[seg.sound] += 1
    assert len(heard) >= 4  # the small world still exercises most sounds


# -- records ---------------------------------------------------------------------------------------------
def test_every_record_loads_and_cites_windows_of_its_clip(rendered):
    clips = _clips(rendered)
    for role in REASONING:
        samples = load_samples(rendered / f"{role}.jsonl")
        assert samples, role
        for s in samples:
            clip = clips[s.meta["clip"]]
            assert (rendered / s.video.video).is_file() and s.video.video == f"clips/{clip.id}.mp4"
            assert s.modality == "AV-Strong" and s.source == "world" and s.question_type in QUESTION_TYPES
            assert [o[:3] for o in s.options] == ["A. ", "B. ", "C. ", "D. "]
            assert s.assistant.content[-1].text.endswith(f"\\boxed{{{s.answer}}}")
            assert 1 <= len(s.latent_blocks) <= 2
            for block in s.latent_blocks:
                seg = clip.segments[block.segment - 1]
                assert (block.start, block.end) == (seg.start, seg.end)
                assert 0 <= block.start < block.end <= clip.duration <= 8.0
    assert len(load_samples(rendered / "perception.jsonl")) > 0


def test_captions_are_ingestible_by_the_synthesis_pipeline(rendered):
    sources = pytest.importorskip("latentomni.synth.sources")
    clips = _clips(rendered)
    for record in sources.iter_source(rendered / "captions.jsonl"):
        parsed = sources.adapt(record, "native", rendered)
        clip = clips[parsed.id]
        assert parsed.duration == clip.duration and parsed.caption.startswith(f"A {clip.duration:.1f}-second clip")
        assert len(parsed.events) == 2 * len(clip.segments)
        assert {(e.start, e.end) for e in parsed.events} == {(s.start, s.end) for s in clip.segments}


def test_trajectories_revisit_the_anchor_then_the_neighbour_they_ask_about(large):
    clips = _clips(large)
    for s in load_samples(large / "train.jsonl"):
        q = question_from_sample(s, clips[s.meta["clip"]])
        assert answer_on(q.qtype, q.anchor_value, clips[s.meta["clip"]]) == q.answer == s.meta["answer_text"]
        cited = [b.segment for b in s.latent_blocks]
        assert cited == ([q.anchor_segment] if q.qtype.offset == 0 else [q.anchor_segment, q.target_segment])
        assert isinstance(s.assistant.content[0], TextPart) and isinstance(s.assistant.content[1], LatentPart)


def test_perception_samples_are_plain_or_lettered_answers_without_latents(large):
    clips = _clips(large)
    kinds = Counter()
    for s in load_samples(large / "perception.jsonl"):
        assert not s.latent_blocks and s.question_type.startswith("perception/")
        kinds[s.question_type] += 1
        text = s.assistant.content[-1].text
        if s.options:
            assert text == f"\\boxed{{{s.answer}}}" and s.answer in "ABCD"
        else:
            assert text == s.answer
        if s.video is not None:
            assert s.meta["clip"].startswith("train-")
        if s.question_type == "perception/option_letter":
            word = s.messages[0].content[0].text.split("'")[1]
            assert s.options["ABCD".index(s.answer)] == f"{s.answer}. {word}"
        if s.question_type == "perception/caption_segment":
            n = int(s.answer.split()[1])
            seg = clips[s.meta["clip"]].segments[n - 1]
            assert f"({seg.start:.1f}–{seg.end:.1f} s)" in s.answer
    assert len(kinds) >= 14


# -- the questions ---------------------------------------------------------------------------------------
def test_no_question_is_answerable_from_one_modality(large):
    """For every written question: clips that sound identical, and clips that look identical, still
    disagree on which of the offered options is right."""
    clips = _clips(large)
    n = 0
    for role in REASONING:
        for s in load_samples(large / f"{role}.jsonl"):
            clip = clips[s.meta["clip"]]
            q = question_from_sample(s, clip)
            assert len(single_modality_answers(q, clip, "audio", limit=2)) > 1, (s.id, "audio alone answers it")
            assert len(single_modality_answers(q, clip, "video", limit=2)) > 1, (s.id, "video alone answers it")
            n += 1
    assert n > 1000


def _clip(*events: tuple[Visual, str]) -> Clip:
    segs = tuple(Segment(i + 1, 2.0 * i, 2.0 * (i + 1), v, a) for i, (v, a) in enumerate(events))
    return Clip("hand-made", segs)


def test_the_check_flags_a_question_whose_options_give_the_answer_away():
    clip = _clip((Visual("square", "red"), "high tone"), (Visual("circle", "blue"), "low tone"))
    qtype = QUESTION_TYPES["colour_at_sound"]
    fair = Question(qtype, "high tone", "?", ("red", "blue", "green", "yellow"), 0, 1, 1)
    assert single_modality_answers(fair, clip, "video") == {"red", "blue"}
    assert single_modality_answers(fair, clip, "audio") == {"red", "blue", "green", "yellow"}
    # Without blue among the options, only red is on screen and on offer: seeing alone suffices.
    leaky = Question(qtype, "high tone", "?", ("red", "green", "yellow", "white"), 0, 1, 1)
    assert single_modality_answers(leaky, clip, "video") == {"red"}


def test_a_question_type_within_one_modality_is_refused():
    with pytest.raises(ValueError, match="one modality alone"):
        QuestionType("colour_of_circle", "shape", "colour", ("What colour was {when}?",))


def test_held_out_question_types_never_reach_training(large):
    config = WorldConfig(**json.loads((large / "manifest.json").read_text())["config"])
    types = {role: {s.question_type for s in load_samples(large / f"{role}.jsonl")} for role in REASONING}
    held_out = set(config.held_out_types)
    assert types["test"] == held_out
    assert types["train"] == types["test_seen"] == set(config.seen_types)
    perception = {s.question_type.removeprefix("perception/") for s in load_samples(large / "perception.jsonl")}
    assert not held_out & perception
    train_texts = {s.messages[0].content[1].text.split("\n")[0] for s in load_samples(large / "train.jsonl")}
    assert not any(s.messages[0].content[1].text.split("\n")[0] in train_texts
                   for s in load_samples(large / "test.jsonl"))
    clips = _clips(large)
    train_sigs = {c.signature() for c in clips.values() if c.id.startswith("train-")}
    assert not any(c.signature() in train_sigs for c in clips.values() if c.id.startswith("test-"))


def test_answer_letters_are_roughly_uniform(large):
    for role in ("train", "test_seen"):
        letters = Counter(s.answer for s in load_samples(large / f"{role}.jsonl"))
        total = sum(letters.values())
        assert set(letters) == set("ABCD")
        assert all(abs(c / total - 0.25) < 0.05 for c in letters.values()), (role, letters)


def test_no_answer_text_is_a_better_blind_guess_than_another(large):
    """Segments mostly stand still, yet 'not moving' must not win motion questions by default."""
    for role in REASONING:
        by_type: dict[str, Counter] = {}
        for s in load_samples(large / f"{role}.jsonl"):
            by_type.setdefault(s.question_type, Counter())[s.meta["answer_text"]] += 1
        for qtype, answers in by_type.items():
            assert max(answers.values()) - min(answers.values()) <= 3, (role, qtype, answers)


def test_canonical_order_lists_options_as_the_vocabulary_does_and_keeps_every_check(tmp_path):
    """With option_order="canonical" a letter names a value (given the options on offer); the questions
    still need both modalities, and the same clips get the same questions, only reordered."""
    from latentomni.data.world.questions import answer_vocabulary

    canon = generate_world(tmp_path / "c", n_train_clips=60, n_test_clips=20, seed=1, render=False,
                           option_order="canonical")
    shuffled = generate_world(tmp_path / "s", n_train_clips=60, n_test_clips=20, seed=1, render=False)
    assert canon.config.option_order == "canonical" and shuffled.config.option_order == "shuffled"
    clips = _clips(tmp_path / "c")
    for role in REASONING:
        for s in load_samples(tmp_path / "c" / f"{role}.jsonl"):
            q = question_from_sample(s, clips[s.meta["clip"]])
            vocab = answer_vocabulary(q.qtype.target)
            assert list(q.options) == sorted(q.options, key=vocab.index), s.id
            assert q.answer == s.meta["answer_text"]
            for evidence in ("audio", "video"):
                assert len(single_modality_answers(q, clips[s.meta["clip"]], evidence, limit=2)) > 1, s.id

    def colour_questions(world: str) -> list:
        return [s for s in load_samples(tmp_path / world / "train.jsonl") if s.question_type == "colour_at_sound"]

    assert {s.answer for s in colour_questions("c") if s.meta["answer_text"] == "red"} == {"A"}
    assert {s.options[0] for s in colour_questions("c")} == {"A. red"}
    assert len({s.options[0] for s in colour_questions("s")}) == 4
    pairs = {(s.meta["clip"], s.question_type, s.meta["anchor"]) for s in colour_questions("s")}
    assert pairs == {(s.meta["clip"], s.question_type, s.meta["anchor"]) for s in colour_questions("c")}


def test_every_question_type_occurs(large):
    seen = Counter(s.question_type for role in REASONING for s in load_samples(large / f"{role}.jsonl"))
    assert set(seen) == set(QUESTION_TYPES)
    assert min(seen.values()) >= 30, seen


# -- config and CLI --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "options, needle",
    [
        ({"held_out_types": ("no_such_type",)}, "unknown held-out"),
        ({"held_out_types": tuple(QUESTION_TYPES)}, "every question type is held out"),
        ({"segment_seconds": (3.0,)}, "keep them within"),
        ({"segment_seconds": (1.3,)}, "whole number of frames"),
        ({"segment_seconds": (1.5,)}, "add up to a multiple"),
    ],
)
def test_config_says_what_is_wrong(options, needle):
    with pytest.raises(ValueError, match=needle):
        WorldConfig(**options)


def _cli(argv: list[str]) -> int:
    from latentomni.data.cli import add_parser

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_writes_the_world(tmp_path, capsys):
    assert _cli(["world", "--out", str(tmp_path), "--n-train", "4", "--n-test", "2", "--no-render", "--quiet"]) == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["counts"]["train_clips"] == 4 and manifest["rendered"] is False
    for name in manifest["files"].values():
        assert (tmp_path / name).is_file()
    assert "train.jsonl" in capsys.readouterr().out


def test_cli_rejects_an_unknown_held_out_type(tmp_path, capsys):
    assert _cli(["world", "--out", str(tmp_path), "--held-out", "bogus", "--no-render", "--quiet"]) == 2
    assert "bogus" in capsys.readouterr().out
