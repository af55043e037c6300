"""Prompt texts of every LLM call (our wording of the requirements in App. A, Figs. 5-12).

Each builder returns chat ``messages``: a system message stating the role and the rules, and a user
message holding the data. The JSON shape a reply must take is stated in words here *and* enforced by
the reply model (``replies.py``), which is sent as a JSON schema when the endpoint supports it.
"""

from __future__ import annotations

from typing import Any

from latentomni.synth.replies import Category, Modality, ReasoningType
from latentomni.synth.sources import Clip, Event

__all__ = [
    "audio_caption_messages",
    "audit_messages",
    "fusion_messages",
    "grounding_messages",
    "mcq_messages",
    "open_qa_messages",
    "refine_messages",
    "score_messages",
    "trajectory_messages",
    "video_caption_messages",
]

Messages = list[dict[str, Any]]

_REASONING = ", ".join(r.value for r in ReasoningType)


def _fmt_time(t: float) -> str:
    return f"{t:.1f}s"


def _events(events: list[Event]) -> str:
    if not events:
        return "(no timed events)"
    return "\n".join(f"- [{_fmt_time(e.start)}-{_fmt_time(e.end)}] ({e.modality}) {e.text}" for e in events)


def _clip_block(clip: Clip) -> str:
    return (f"Full audio-visual caption ({clip.duration:.1f} s of media):\n{clip.caption}\n\n"
            f"Time-aligned events:\n{_events(clip.events)}")


_QA_RULES = f"""Rules that the question must satisfy:
- Both senses are required: answering must need what is seen AND what is heard, combined. If either the
  picture alone or the sound alone would suffice, the question is not acceptable.
- Several reasoning steps: link events across the two modalities (e.g. which action produced which sound,
  what happened before or after a sound, why something happened) rather than look up one fact.
- Target one reasoning type and name it in "reasoning_type", one of: {_REASONING}.
- Everything in the question and answer must be stated in or directly implied by the captions; add no
  outside facts. Physical common sense is welcome where it links a visible action to its expected sound.
- Use plain words: no timestamps, clock times or second counts, no object IDs, box labels or markup tags."""
_JSON_ONLY = "Reply with a single JSON object and nothing else (no Markdown fences, no commentary)."


def _qa_design_messages(clip: Clip, task: str, rules: str, fields: str, kind: str) -> Messages:
    """The QA-design prompt both formats share: the role, :data:`_QA_RULES` and the format's own ``rules``,
    the reply's JSON ``fields``; the user turn holds the clip and asks for the ``kind`` of question."""
    system = f"""You design questions for an audio-visual question answering dataset. You receive the
captions of one video: a full caption and events with start/end times, each marked visual or audio
(or audiovisual). Read them closely, work out how sights and sounds line up in time, then write exactly
one {task}.

{_QA_RULES}
{rules}

{_JSON_ONLY}
JSON fields: {fields}"""
    return [{"role": "system", "content": system},
            {"role": "user", "content": _clip_block(clip) + f"\n\nWrite the {kind} question now."}]


def open_qa_messages(clip: Clip) -> Messages:
    """Fig. 5: one open-ended cross-modal question with a concise answer."""
    return _qa_design_messages(
        clip, "open-ended question with its answer",
        "- The answer is short (at most 10 words), concrete and unambiguous.",
        '"question" (string), "answer" (string, at most 10 words), "reasoning_type" (string).',
        "open-ended")


def mcq_messages(clip: Clip) -> Messages:
    """Fig. 6: one multiple-choice question, four options, exactly one correct."""
    return _qa_design_messages(
        clip, "multiple-choice question with four options",
        """- Exactly four options, A to D, exactly one of them correct. The three wrong options are plausible
  misreadings of the scene (e.g. the right sound paired with the wrong action), yet each is clearly
  contradicted by the captions, with no room for opinion.
- Write the option texts without their letters.""",
        """"question" (string), "options" (object with keys "A", "B", "C", "D", each a string),
"answer" (the letter of the correct option), "reasoning_type" (string).""",
        "multiple-choice")


_CATEGORIES = "\n".join(f"  {i}. {c.value}" for i, c in enumerate(Category, start=1))
_MODALITIES = {
    Modality.AV_STRONG: "the answer needs visual and auditory cues combined",
    Modality.VIDEO_STRONG: "the answer rests mainly on what is seen",
    Modality.AUDIO_STRONG: "the answer rests mainly on what is heard",
}


def score_messages(clip: Clip, question: str, answer: str, options: list[str] | None) -> Messages:
    """Fig. 7: quality scores, category and modality dependency of one QA pair."""
    modalities = "\n".join(f"  - {m.value}: {why}" for m, why in _MODALITIES.items())
    system = f"""You review question-answer pairs of an audio-visual question answering dataset against
the reference caption of the video. Do two things.

1. Score the pair from 1 (poor) to 5 (excellent) on each of:
   - context_utilization: 5 = the question can only be answered from the audio-visual content described;
     1 = it ignores that content or can be answered from general knowledge.
   - question_difficulty: 5 = several steps or a subtle combination of cues; 1 = a shallow lookup.
   - deductive_requirement: 5 = the answer must be inferred step by step from observations;
     1 = it can be copied from the caption word for word.
   Judge strictly; the answer must also be correct according to the caption.
2. Classify the question into exactly one category:
{_CATEGORIES}
   and name its primary modality dependency, exactly one of:
{modalities}

Reply with a single JSON object and nothing else: "scores" (object with the three integer scores),
"category" (the category name exactly as listed), "modality_dependency" (exactly as listed), and
"rationale" (one or two sentences)."""
    qa = f"Question: {question}\n"
    if options:
        qa += "Options:\n" + "\n".join(options) + "\n"
    qa += f"Ground-truth answer: {answer}"
    return [{"role": "system", "content": system},
            {"role": "user", "content": f"Reference caption:\n{clip.caption}\n\n{qa}"}]


def _qa_text(question: str, answer: str, options: list[str] | None) -> str:
    opts = ("\nOptions:\n" + "\n".join(options)) if options else ""
    return f"Question: {question}{opts}\nAnswer: {answer}"


def video_caption_messages(qa: str, window: tuple[float, float], media_part: dict[str, Any]) -> Messages:
    """Fig. 8: a visual-only description of one segment, guided by the QA pair."""
    system = """You describe short video segments for a dataset. Look at the segment and describe only
what can be seen, concentrating on what bears on the question below: the setting, the people, their
actions, the objects, and how the camera moves. Be concise but complete: at most five sentences and no
repetition. Report only what is directly visible; do not guess mood, intentions, genre or cultural
style, do not interpret, and do not judge. Output the description as plain text."""
    user = [media_part, {"type": "text", "text": (
        f"This segment covers {_fmt_time(window[0])} to {_fmt_time(window[1])} of the video.\n{qa}\n\n"
        "Describe what is visible in this segment.")}]
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def audio_caption_messages(qa: str, window: tuple[float, float], media_part: dict[str, Any]) -> Messages:
    """Fig. 9: an audio-only description of one segment, guided by the QA pair."""
    system = """You describe the sound of short audio segments for a dataset. Listen to the segment and
describe only what can be heard, concentrating on what bears on the question below. Name only sound
sources you can clearly identify (music, instruments, voices, environmental noises). If someone speaks,
say who speaks and report what is said accurately. Be concise but complete: at most five sentences and
no repetition. Do not guess mood, intentions, genre or cultural style, and avoid atmospheric language.
Output the description as plain text."""
    user = [media_part, {"type": "text", "text": (
        f"This segment covers {_fmt_time(window[0])} to {_fmt_time(window[1])} of the recording.\n{qa}\n\n"
        "Describe what is audible in this segment.")}]
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def fusion_messages(video_caption: str, audio_caption: str) -> Messages:
    """Fig. 10: one narrative that keeps every sentence of both captions."""
    system = """You merge a visual caption and an audio caption of the same video segment into one
narrative. Strict rules:
1. Every sentence of both captions appears in your narrative word for word.
2. No sentence is dropped, shortened or paraphrased.
3. You may change the order of the sentences so the narrative follows the events in time, placing each
   sound next to the action it belongs to.
Before answering, check that every sentence of both captions is present.
Reply with a JSON object {"narrative": "..."} and nothing else."""
    user = f"Visual caption:\n{video_caption}\n\nAudio caption:\n{audio_caption}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def refine_messages(clip: Clip, window: tuple[float, float], segment_caption: str) -> Messages:
    """Fig. 11: repair shot fragmentation using the full caption, staying inside the window."""
    system = """You repair captions of video segments that were cut at fixed times. Cutting can split an
action in half, start a segment in the middle of a shot, or lose who is doing something. Compare the
segment caption with the full caption of the video and fix such fragments: complete an interrupted
action, restore a missing subject, give an action that crosses the boundary its context. Do not add
anything that happens outside this segment's time window. Keep the caption short and objective.
Reply with a JSON object {"caption": "..."} and nothing else."""
    user = (f"{_clip_block(clip)}\n\nSegment window: {_fmt_time(window[0])} to {_fmt_time(window[1])}\n"
            f"Segment caption:\n{segment_caption}")
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def grounding_messages(clip: Clip, window: tuple[float, float], caption: str) -> Messages:
    """Hallucination filter (Sec. 3.3): which sentences the source caption does not support."""
    inside = clip.events_in(*window)
    system = """You check generated captions against trusted reference captions. A sentence of the
generated caption is unsupported if it states something (an object, a person, an action, a sound, spoken
words) that the reference contradicts or never mentions for this part of the video. Sentences that only
rephrase or summarise the reference are supported.
Reply with a single JSON object and nothing else: "unsupported_sentences" (list of the unsupported
sentences, copied exactly; empty if none) and "verdict": "grounded" (all supported), "partially_grounded"
(some unsupported) or "hallucinated" (mostly unsupported)."""
    user = (f"Reference caption of the whole video:\n{clip.caption}\n\n"
            f"Reference events in this segment ({_fmt_time(window[0])} to {_fmt_time(window[1])}):\n"
            f"{_events(inside)}\n\nGenerated caption to check:\n{caption}")
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


_TRAJECTORY_RULES = """- Treat the segment observations as your own sight and hearing. You are watching and listening,
  not reading: never use the words "caption", "description", "text", "reference", "provided information" or
  "input", never write "according to ...", and never discuss disagreements between sources; state what
  you perceive as fact.
- Reason step by step. Whenever a step needs to look at or listen to a specific part of the media again,
  insert the marker [Segment n] (exactly this form, one segment per marker) at that point.
- Use at least one and at most three markers in total; prefer the earliest or most decisive evidence.
- After a marker, continue with what that revisit shows, without repeating segment numbers in the prose.
- Finish with the final answer as \\boxed{...} and write nothing after it."""


def _segments_block(segments: list[tuple[int, float, float, str]]) -> str:
    return "\n".join(f"[Segment {n}] {_fmt_time(a)}-{_fmt_time(b)}: {text}" for n, a, b, text in segments)


def trajectory_messages(question: str, answer: str, options: list[str] | None,
                        segments: list[tuple[int, float, float, str]]) -> Messages:
    """Fig. 12: an interleaved reasoning chain citing segments and ending in the boxed answer."""
    boxed = "the letter of the correct option" if options else "the answer exactly as given"
    system = f"""You are an expert at audio-visual analysis answering a question about a video by
reasoning over what you see and hear. You are given the question, its correct answer, and observations
of the video's consecutive segments.

How to write the reasoning:
{_TRAJECTORY_RULES}
- The boxed answer is {boxed}.

Pattern: reasoning -> [Segment n] -> reasoning -> ... -> \\boxed{{answer}}
Reply with a JSON object {{"trajectory": "..."}} and nothing else."""
    user = (f"Segments:\n{_segments_block(segments)}\n\n{_qa_text(question, answer, options)}\n\n"
            "Write the reasoning now.")
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def audit_messages(question: str, answer: str, options: list[str] | None,
                   segments: list[tuple[int, float, float, str]], trajectory: str) -> Messages:
    """Sec. 3.3: a second model corrects citations and rejects inconsistent trajectories."""
    system = f"""You audit reasoning written for an audio-visual question answering dataset. The
reasoning cites video segments with markers [Segment n]. Check it against the segment observations:
1. Every marker must point to the segment that actually shows or sounds what the next step relies on.
   If a marker names the wrong segment, change its number. If a marker is malformed, rewrite it as
   [Segment n].
2. Remove redundant or self-contradicting branches; keep the reasoning short and in order.
3. The reasoning must reach the correct answer from the observations, and end with \\boxed{{...}}.
Mark it inconsistent ("consistent": false) if it relies on things the observations do not contain,
contradicts them, or reaches the answer by a leap that cannot be repaired by small edits.
The corrected reasoning must follow the same rules as the original:
{_TRAJECTORY_RULES}

Reply with a single JSON object and nothing else: "consistent" (true or false), "trajectory" (the
corrected reasoning; the original if nothing needed fixing) and "issues" (list of what you fixed or why
it is inconsistent; empty if nothing)."""
    user = (f"Segments:\n{_segments_block(segments)}\n\n{_qa_text(question, answer, options)}\n\n"
            f"Reasoning to audit:\n{trajectory}")
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def qa_text(question: str, answer: str, options: list[str] | None) -> str:
    """The QA pair as the captioning prompts show it."""
    return _qa_text(question, answer, options)
