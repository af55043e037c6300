"""Cross-modal probes of the synthetic world, the data of the grounding experiment: a moment named in one
modality ("while the high tone played") and a question about the other. Moved out of
``latentomni.data.world.perception``: only this experiment and its probes (``base_skills.py``) use them."""

from __future__ import annotations

import numpy as np

from latentomni.data.schema import TrainingSample
from latentomni.data.world.perception import multiple_choice, world_sample
from latentomni.data.world.questions import answer_text, when_clause
from latentomni.data.world.scene import Clip, Segment, audio_phrase, visual_phrase


def crossmodal_probes(clip: Clip) -> list[tuple[str, str, str, Segment]]:
    """(kind, question, answer, named segment) of every open cross-modal probe of ``clip``: a moment named in
    one modality ("while the high tone played", "while a red shape was on screen") and a question about the
    other. Only names that pick out one segment; counts are never the anchor (the demo holds that type out)."""
    out = []
    for s in clip.segments:
        if sum(o.sound == s.sound for o in clip.segments) == 1:
            out.append(("see_at_sound", f"What is on screen {when_clause('sound', s.sound)}?",
                        visual_phrase(s.visual), s))
        for a in ("colour", "shape"):
            if sum(o.attribute(a) == s.attribute(a) for o in clip.segments) == 1:
                out.append((f"hear_at_{a}", f"What is heard {when_clause(a, s.attribute(a))}?",
                            audio_phrase(s.sound), s))
    return out


def crossmodal_samples(clip: Clip, media: str) -> list[TrainingSample]:
    """:func:`crossmodal_probes` as open-answer samples; ``meta["evidence"]`` is the named segment's window
    (seconds), the target of the grounding stage (:mod:`grounding_stage`)."""
    return [world_sample(f"world-{clip.id}-x{k}", media, question, answer, answer, kind, "AV",
                    meta={"clip": clip.id, "duration": clip.duration, "evidence": [seg.start, seg.end]})
            for k, (kind, question, answer, seg) in enumerate(crossmodal_probes(clip))]


_CHOICE_QUESTIONS = {"colour": "Which colour is on screen {when}?", "shape": "Which shape is on screen {when}?",
                     "count": "How many shapes are on screen {when}?", "sound": "What is heard {when}?"}


def crossmodal_choice_samples(rng: np.random.Generator, clip: Clip, media: str) -> list[TrainingSample]:
    """Four-option versions of :func:`crossmodal_probes`: one attribute of the other modality at the named
    moment (colour, shape or count for a sound; the sound for a colour or a shape), never motion and never a
    count as the anchor, so the demo's held-out types stay held out. The options always hold the value of
    another segment, so a reply that ignores the named moment is often wrong. The reply states the answer
    text before the boxed letter.

    Why the text comes first: in four layers the lookup of the named moment takes the upper two, which
    leaves none to match its result against the options in the same pass; once the answer is written out,
    pointing at its letter is a copy. Measured (``base_skills.py choice``, held-out clips): 1,200
    steps of these on top of stage 3 make the base state the right answer 0.64 of the time (0.39 with the
    video zeroed), but its letter still matches its own text only at chance: the copy is the missing skill
    (see docs/research-notes.md)."""
    meta = {"clip": clip.id, "duration": clip.duration}
    out = []
    for k, (kind, _, _, seg) in enumerate(crossmodal_probes(clip)):
        if kind == "see_at_sound":
            anchor, target = "sound", ("colour", "shape", "count")[int(rng.integers(3))]
        else:
            anchor, target = kind.removeprefix("hear_at_"), "sound"
        correct = answer_text(target, seg.attribute(target))
        others = sorted({answer_text(target, o.attribute(target)) for o in clip.segments} - {correct})
        options, letter = multiple_choice(rng, target, correct,
                                           (others[int(rng.integers(len(others)))],) if others else ())
        question = _CHOICE_QUESTIONS[target].format(when=when_clause(anchor, seg.attribute(anchor)))
        reply = f"{correct}. \\boxed{{{letter}}}"
        out.append(world_sample(f"world-{clip.id}-c{k}", media, "\n".join([question, *options]), reply, letter,
                           f"{target}_at_{anchor}", "AV", options, {**meta, "evidence": [seg.start, seg.end]}))
    return out

