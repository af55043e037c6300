"""What the tiny base can and cannot do on the synthetic world: the measurements behind issue 8's diagnosis.

The demo's questions ("what colour was on screen while the high tone played?") need a chain of skills. This
script measures each link on held-out clips, with the modality controls that tell reading from guessing:

* ``retrieval`` -- content to time: "When is the high tone heard?" answered "From 1.5 to 3.0 s." (the
  base trains on these for colours and sounds; shapes are never asked).
* ``caption-oracle`` -- the base captions each clip segment by segment, then a perfect text reader answers
  every held-out question from that caption alone: the ceiling of a caption-first chain of thought.
* ``open-questions`` -- the demo's 455 held-out questions asked without their four options: does the model
  find the answer at all, before having to point at its letter?
* ``crossmodal`` -- open cross-modal probes ("What is on screen while the high tone plays?", "What is heard
  while a red shape is on screen?"), optionally after ``--train-steps`` of fine-tuning on them (mixed 1:1
  with the base's perception data).
* ``grounding`` -- where head 0 of LLM layers 2 and 3 looks while answering an open cross-modal probe: the
  share of its attention over the audio tokens on the named segment (stage 3, ``grounding_stage.py``, trains this), with
  the share a question-blind look would give. Compare ``--model runs/base/perception`` (before stage 3).
* ``option-copy`` -- text only: "Which option says 'the mid tone'? A. ... D. ...", answered with the boxed
  letter (stage 2 trains exactly this).
* ``choice`` -- four-option versions of the cross-modal probes, whose replies state the answer text before
  the boxed letter (:func:`crossmodal.crossmodal_choice_samples`): accuracy, how
  often the stated text is right, and how often the letter is the one of the stated text.
* ``binding`` -- linear heads on an intermediate LLM layer read, from each audio token, what is on screen at
  that token's time, and from each video time step what is heard; ``--steps`` trains the LLM and the heads.

Run from a source checkout after ``make demo`` (which writes the world), e.g.::

    python experiments/grounding/base_skills.py retrieval
    python experiments/grounding/base_skills.py crossmodal --train-steps 600 --out runs/skills/crossmodal
    python experiments/grounding/base_skills.py binding --steps 400 --out runs/skills/binding
    python experiments/grounding/base_skills.py grounding --clips 60
    python experiments/grounding/base_skills.py option-copy

Each prints one JSON object; nothing here is used by the package.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from pathlib import Path

import numpy as np
import torch
from crossmodal import crossmodal_choice_samples, crossmodal_probes, crossmodal_samples
from grounding_stage import BindingHeads, audio_binding_labels, named_audio_positions

from latentomni.data.answers import boxed_spans
from latentomni.data.collate import SampleEncoder, collate
from latentomni.data.questions import prompt_sample
from latentomni.data.schema import load_samples, write_samples
from latentomni.data.world.perception import option_copy_sample, world_sample
from latentomni.data.world.questions import QUESTION_TYPES, answer_text
from latentomni.data.world.scene import SOUNDS, VALUES, clip_from_record, seconds
from latentomni.demo.base import (
    CAPTION_PROMPT,
    DEMO_MEDIA,
    MODALITY_CONTROLS,
    RECIPE,
    ask,
    caption_clips,
    stage_config,
    truth_records,
)
from latentomni.demo.encoders import (
    IGNORE,
    VISUAL_CLASSES,
    fit_readout,
    readout_accuracy,
    readout_loss,
    segment_per_time_step,
)
from latentomni.model.wrapper import LatentOmniModel


def _records(world: Path, split: str, limit: int | None = None) -> list[dict]:
    return truth_records(world / "ground_truth.jsonl", split)[:limit]


def _prompt_text(sample) -> str:
    """The text part of a sample's user turn (the question, with its options when it has them)."""
    return next(p.text for p in sample.messages[0].content if getattr(p, "type", "") == "text")


def _controls(model, world: Path, items: list[tuple[str, dict, str, str]], max_new_tokens: int = 40) -> dict:
    """Exact-match accuracy per kind of (kind, clip record, question, answer) items, under each control."""
    prompts = [(q, r["media"], r["id"]) for _, r, q, _ in items]
    out = {}
    for label, media in MODALITY_CONTROLS.items():
        right: dict[str, list[bool]] = {}
        for (kind, _, _, answer), text in zip(items, ask(model, world, prompts, media, max_new_tokens, 48),
                                              strict=True):
            right.setdefault(kind, []).append(text.strip().rstrip(".") == answer.rstrip("."))
        out[label] = {k: round(sum(v) / len(v), 3) for k, v in right.items()}
    return out


# -- retrieval -------------------------------------------------------------------------------------------
def retrieval_items(records: list[dict]) -> list[tuple[str, dict, str, str]]:
    items = []
    for r in records:
        segs = r["segments"]
        for s in segs:
            span = f"From {seconds(s['start'])} to {seconds(s['end'])} s."
            if s["sound"] != "silence" and sum(o["sound"] == s["sound"] for o in segs) == 1:
                items.append(("when_sound", r, f"When is {answer_text('sound', s['sound'])} heard?", span))
            if sum(o["colour"] == s["colour"] for o in segs) == 1:
                items.append(("when_colour", r, f"When is a {s['colour']} shape on screen?", span))
            if sum(o["shape"] == s["shape"] for o in segs) == 1:
                items.append(("when_shape (never trained)", r, f"When is a {s['shape']} on screen?", span))
    return items


# -- caption oracle --------------------------------------------------------------------------------------
def _said_attribute(visual: str, audio: str, name: str):
    """An attribute value read back from a caption line's visual and audio phrases (None if absent)."""
    words = visual.split()
    if name == "sound":
        return audio[2:] if audio.startswith("a ") else audio
    if name == "count":
        return {"a": 1, "two": 2, "three": 3}.get(words[0] if words else "")
    if name == "motion":
        m = re.search(r"moving (\w+)", visual)
        return m.group(1) if m else "still"
    vocab = VISUAL_CLASSES[name]
    return next((w.rstrip("s") for w in words if w.rstrip("s") in vocab), None)


def answer_from_caption(question, lines: dict[int, tuple[str, str]]) -> bool:
    """Whether a perfect text reader gets ``question`` right from a parsed caption: find the one line whose
    anchor attribute matches, step by the question's offset, read the target attribute there."""
    qt = QUESTION_TYPES[question.question_type]
    hits = [k for k, (v, a) in lines.items() if _said_attribute(v, a, qt.anchor) == question.meta["anchor"]]
    if len(hits) != 1 or hits[0] + qt.offset not in lines:
        return False
    value = _said_attribute(*lines[hits[0] + qt.offset], qt.target)  # a garbled phrase reads as no value
    return value in VALUES[qt.target] and answer_text(qt.target, value) == question.meta["answer_text"]


def caption_oracle(model, world: Path, n_seen: int = 200) -> dict:
    questions = demo_questions(world, n_seen)
    truth = {r["id"]: r for r in _records(world, "test")}
    clips = sorted({q.meta["clip"] for q in questions})
    said = dict(zip(clips, caption_clips(model, world, [truth[c] for c in clips], 32), strict=True))
    by_type: dict[str, list[bool]] = {}
    for q in questions:
        by_type.setdefault(q.question_type, []).append(answer_from_caption(q, said.get(q.meta["clip"], {})))
    n = sum(len(v) for v in by_type.values())
    return {"questions": n, "strict_accuracy": round(sum(sum(v) for v in by_type.values()) / n, 3),
            "by_type": {k: round(sum(v) / len(v), 3) for k, v in by_type.items()},
            "note": "strict: a question whose answer cannot be read from the caption counts as wrong (no guess)"}


# -- the demo's own questions, without their options -----------------------------------------------------
def demo_questions(world: Path, n_seen: int = 200) -> list:
    """The demo's held-out questions: every unseen-type one, and ``n_seen`` seen-type ones (seed 0)."""
    return load_samples(world / "test.jsonl") + random.Random(0).sample(load_samples(world / "test_seen.jsonl"), n_seen)


def reply_contains_answer(answer_text: str, reply: str) -> bool:
    """Whether an open reply holds the option's words, without its article: "the low tone" -> "low tone"."""
    key = answer_text.lower().removeprefix("the ").removeprefix("a ")
    return re.search(rf"\b{re.escape(key)}\b", reply.lower()) is not None


def open_questions(model, world: Path) -> dict:
    """Ask each demo question with its four options removed; a reply is right when it contains the answer's
    words ("red", "two", "low tone"). Separates finding the answer from pointing at its letter."""
    questions = demo_questions(world)
    prompts = []
    for q in questions:
        prompts.append((_prompt_text(q).split("\n")[0], q.video.video, q.id))
    out = {}
    for label, media in MODALITY_CONTROLS.items():
        right: dict[str, list[bool]] = {}
        for q, reply in zip(questions, ask(model, world, prompts, media, 16, 48), strict=True):
            right.setdefault(q.question_type, []).append(reply_contains_answer(q.meta["answer_text"], reply))
        out[label] = {k: round(sum(v) / len(v), 3) for k, v in sorted(right.items())}
    return out


# -- cross-modal probes ----------------------------------------------------------------------------------
def crossmodal_items(record: dict) -> list[tuple[str, dict, str, str]]:
    """Open questions that name a moment in one modality and ask about the other (no count anchors: those
    stay held out, as in the demo's question split)."""
    return [(kind, record, q, a) for kind, q, a, _ in crossmodal_probes(clip_from_record(record))]


def train_crossmodal(base: str, world: Path, out: Path, steps: int) -> Path:
    from latentomni.train.trainer import train

    rows = [world_sample(f"x-{r['id']}-{k}", r["media"], q, a, a, kind, "AV")
            for r in _records(world, "train") for k, (kind, _, q, a) in enumerate(crossmodal_items(r))]
    perception = load_samples(world / "perception.jsonl")
    random.Random(0).shuffle(perception)
    out.mkdir(parents=True, exist_ok=True)
    write_samples(rows + perception[:len(rows)], out / "crossmodal_mix.jsonl")
    cfg = stage_config(base, out / "crossmodal_mix.jsonl", out / "model", steps, RECIPE["training"],
                       save_steps=100000, report_to=[], seed=0)
    train(cfg)
    return out / "model"


# -- grounding: where the supervised heads look ----------------------------------------------------------
def attention_on_named_segment(model, world: Path, records: list[dict], layers=(2, 3)) -> dict:
    """Per probe kind and layer: the share of head 0's attention over the audio tokens that falls on the
    named segment at the first answer position (what stage 3's retrieval target trains), against the share
    of audio tokens the segment holds (a look that ignores the question). ``model`` must be loaded with
    ``attn_implementation="eager"``."""
    enc, aid = SampleEncoder.for_model(model, DEMO_MEDIA), model.config.audio_token_id
    samples = [s for r in records for s in crossmodal_samples(clip_from_record(r), r["media"])]
    share: dict[str, list[float]] = {}
    with torch.no_grad():
        for i in range(0, len(samples), 16):
            part = samples[i:i + 16]
            batch = collate([enc.encode(s, world, variant="text_cot") for s in part],
                            model.processor.tokenizer.pad_token_id, "right")
            attn = model.teacher_forced_hidden(batch, output_attentions=True)[2]
            answers = batch["labels"][:, 1:] != IGNORE
            for b, s in enumerate(part):
                ids, kind = batch["input_ids"][b], s.question_type.split("/")[1]
                audio, inside = (ids == aid).nonzero().squeeze(1), named_audio_positions(ids, aid, s.meta["evidence"],
                                                                                      model.backbone)
                q = answers[b].nonzero()[0, 0]
                for layer in layers:
                    row = attn[layer][b, 0, q]
                    share.setdefault(f"{kind} / layer {layer}", []).append(float(row[inside].sum() / row[audio].sum()))
                share.setdefault(f"{kind} / chance", []).append(len(inside) / len(audio))
    return {k: round(sum(v) / len(v), 3) for k, v in share.items()}


# -- pointing at a letter -------------------------------------------------------------------------------
_LETTER = re.compile(r"\s*([A-D])")


def boxed_letter(reply: str) -> str | None:
    """The last boxed option letter of a reply (boxes read by the project's one reader), or None."""
    found = [m.group(1) for content, _start, _end in boxed_spans(reply) if (m := _LETTER.match(content))]
    return found[-1] if found else None


def option_copy(model, n: int = 400, seed: int = 0) -> dict:
    """Share of text-only "Which option says X?" prompts answered with X's letter (chance 0.25)."""
    rng = np.random.default_rng(seed)
    items = [s for s in (option_copy_sample(rng, f"copy-{i}") for i in range(2 * n)) if s.options][:n]
    prompts = [(_prompt_text(s), None, s.id) for s in items]
    replies = ask(model, Path("."), prompts, DEMO_MEDIA, 12, 64)
    return {"accuracy": round(sum(boxed_letter(r) == s.answer for s, r in zip(items, replies, strict=True)) / n, 3),
            "n": n}


def stated_option(reply: str, options: list[str]) -> str | None:
    """The letter of the option whose text a reply states before its boxed letter ("red. \\boxed{B}")."""
    said = reply.split("\\boxed")[0].strip().rstrip(".").strip().lower()
    return next((o[0] for o in options if o.split(". ", 1)[1].lower() == said), None)


def choice(model, world: Path, records: list[dict], seed: int = 0) -> dict:
    """Four-option cross-modal questions on ``records`` under each control: accuracy per kind, and over
    all of them how often the stated answer text is right and how often the letter matches that text."""
    rng = np.random.default_rng(seed)
    items = [s for r in records for s in crossmodal_choice_samples(rng, clip_from_record(r), r["media"])]
    prompts = [(_prompt_text(s), s.video.video, s.id) for s in items]
    out = {}
    for label, media in MODALITY_CONTROLS.items():
        right: dict[str, list[bool]] = {}
        for s, reply in zip(items, ask(model, world, prompts, media, 24, 48), strict=True):
            said, boxed = stated_option(reply, s.options or []), boxed_letter(reply)
            right.setdefault(s.question_type.split("/")[1], []).append(boxed == s.answer)
            right.setdefault("all", []).append(boxed == s.answer)
            right.setdefault("stated text right", []).append(said == s.answer)
            right.setdefault("letter matches stated text", []).append(said is not None and said == boxed)
        out[label] = {k: round(sum(v) / len(v), 3) for k, v in right.items()}
    out["n"] = len(items)
    return out


# -- binding read-outs -----------------------------------------------------------------------------------
def binding_labels(record: dict, n_audio: int, steps: int, frames_per_step: int, backbone):
    """Per audio token, the visual attributes on screen at its time; per video time step, the sound."""
    video = [SOUNDS.index(s["sound"]) if s else IGNORE
             for s in segment_per_time_step(record["segments"], steps * frames_per_step, DEMO_MEDIA.fps,
                                            frames_per_step)]
    return audio_binding_labels(record, n_audio, backbone), torch.tensor(video)


def _binding_pass(model, heads, enc, world: Path, records: list[dict], layer: int):
    encoded = [enc.encode(prompt_sample(CAPTION_PROMPT, str(world / r["media"]), sample_id=r["id"]), Path("."),
                          for_generation=True) for r in records]
    batch = collate(encoded, model.processor.tokenizer.pad_token_id, "left")
    embeds, _, _ = model.embed_prompt(batch)
    hidden = model.thinker.model.language_model(
        inputs_embeds=embeds, attention_mask=batch["attention_mask"], position_ids=model.rope_positions(batch),
        use_cache=False, output_hidden_states=True).hidden_states[layer]
    ids, cfg = batch["input_ids"], model.config
    audio, video, alabels, vlabels = [], [], [], []
    for i, r in enumerate(records):
        a = hidden[i][ids[i] == cfg.audio_token_id]
        steps = int(batch["video_grid_thw"][i, 0])
        v = hidden[i][ids[i] == cfg.video_token_id].view(steps, -1, hidden.shape[-1]).mean(1)
        al, vl = binding_labels(r, a.shape[0], steps, model.processor.video_processor.temporal_patch_size,
                                model.backbone)
        audio.append(a)
        video.append(v)
        alabels.append(al)
        vlabels.append(vl)
    audio, video, alabels, vlabels = torch.cat(audio), torch.cat(video), torch.cat(alabels), torch.cat(vlabels)
    outs = [(f"audio->{a}", head(audio), alabels[:, k]) for k, (a, head) in enumerate(heads.visual.items())]
    outs.append(("video->sound", heads.sound(video), vlabels))
    return readout_loss(outs)


def binding(model, world: Path, steps: int, layer: int, n_test: int = 60, lr: float = 1e-3) -> dict:
    """Train heads (and the LLM; encoders frozen) for ``steps``, then report held-out read-out accuracy with
    each modality zeroed: reading what is on screen from audio tokens needs the video, not the audio."""
    inner = model.thinker.model
    for p in [*inner.visual.parameters(), *inner.audio_tower.parameters()]:
        p.requires_grad_(False)
    torch.manual_seed(0)
    heads = BindingHeads(model.config.text_config.hidden_size, len(SOUNDS))
    params = [p for p in inner.language_model.parameters() if p.requires_grad] + list(heads.parameters())
    enc = SampleEncoder.for_model(model, DEMO_MEDIA, media_cache_size=4096)
    train, rng = _records(world, "train"), random.Random(0)
    model.train()
    fit_readout(params, lambda: _binding_pass(model, heads, enc, world, rng.sample(train, min(8, len(train))),
                                              layer)[0], steps, lr, "binding")
    model.eval()
    test, report = _records(world, "test", n_test), {}
    for label, media in MODALITY_CONTROLS.items():
        enc = SampleEncoder.for_model(model, media)
        with torch.no_grad():
            report[label] = readout_accuracy([_binding_pass(model, heads, enc, world, test[i:i + 20], layer)[1]
                                              for i in range(0, len(test), 20)])
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("probe", choices=["retrieval", "caption-oracle", "open-questions", "crossmodal", "grounding",
                                      "option-copy", "choice", "binding"])
    ap.add_argument("--model", default="src/latentomni/assets/tiny-base")
    ap.add_argument("--world", type=Path, default=Path("runs/demo/world"))
    ap.add_argument("--clips", type=int, default=200, help="held-out clips to probe")
    ap.add_argument("--train-steps", type=int, default=0, help="crossmodal: fine-tune on the probes first")
    ap.add_argument("--steps", type=int, default=400, help="binding: training steps")
    ap.add_argument("--layer", type=int, default=2, help="binding: hidden-state layer the heads read")
    ap.add_argument("--out", type=Path, default=Path("runs/skills"))
    args = ap.parse_args()
    t0 = time.time()
    model_dir = args.model
    if args.probe == "crossmodal" and args.train_steps:
        model_dir = str(train_crossmodal(args.model, args.world, args.out, args.train_steps))
    # the grounding probe reads attention weights, which only the eager implementation returns
    eager = "eager" if args.probe == "grounding" else None
    model = LatentOmniModel.from_pretrained(model_dir, attn_implementation=eager).eval()
    if args.probe == "grounding":
        result = attention_on_named_segment(model, args.world, _records(args.world, "test", args.clips))
    elif args.probe == "retrieval":
        result = _controls(model, args.world, retrieval_items(_records(args.world, "test", args.clips)))
    elif args.probe == "caption-oracle":
        result = caption_oracle(model, args.world)
    elif args.probe == "open-questions":
        result = open_questions(model, args.world)
    elif args.probe == "option-copy":
        result = option_copy(model)
    elif args.probe == "choice":
        result = choice(model, args.world, _records(args.world, "test", args.clips))
    elif args.probe == "crossmodal":
        items = [it for r in _records(args.world, "test", args.clips) for it in crossmodal_items(r)]
        result = _controls(model, args.world, items, max_new_tokens=16)
    else:
        result = binding(model, args.world, args.steps, args.layer, min(args.clips, 60))
    print(json.dumps({"probe": args.probe, "model": model_dir, "result": result,
                      "seconds": round(time.time() - t0, 1)}, indent=2))


if __name__ == "__main__":
    main()
