"""LatentOmni as a model for LVOmniBench's official harness, OmniEval, so its scores can be checked there too.

OmniEval (the ``OmniEval/`` folder of the LVOmniBench repository) loads a wrapper *file* by path, builds
``Class(model_path=..., device_ids=[...])`` in each worker (the constructor calls ``load_model()``), then
calls ``generate(video_path, prompt, has_audio) -> str`` once per question and reads the option letter out of
the returned string with its own extractor. Point it at this module::

    cd LVOmniBench/OmniEval
    python run_eval.py --class-name LatentOmniWrapper \\
        --wrapper-file "$(python -c 'import latentomni.eval.omnieval as m; print(m.__file__)')" \\
        --model-path runs/my_run/checkpoint --data-path /data/LVOmniBench/data.json \\
        --video-dir /data/LVOmniBench/videos

The wrapper is built on :class:`latentomni.inference.predictor.LatentOmniPredictor` and asks each question the way
``latentomni eval`` does, so the two harnesses see the same replies:

* OmniEval's prompt ("Question: ...", "Options:", one option a line, then "Directly provide the letter...")
  is split into question and options and rendered with ``data.questions.render_question``: the project's answer
  instruction (reason, then ``\\boxed{}``) replaces OmniEval's, since that is the form the model was
  trained to answer in. A prompt without options (``sanity_check.py``'s "What is happening in this
  video?") is asked as it is and the reply returned as it is.
* ``has_audio`` (OmniEval probes the file for an audio track) decides whether the video's own audio track is
  interleaved with its frames, as ``EvalItem.use_audio`` does.
* The reply is read with the project's one answer extractor (``data.answers.parse_choice``) and the wrapper
  returns just that letter. OmniEval's extractor would take a reply that starts "A blue square..." as A, or
  the first capital A-F anywhere; handing it the raw reasoning would score a different model. An unreadable
  reply returns "", which OmniEval leaves out of its denominator (``latentomni eval`` counts it wrong); a
  media error raises, which OmniEval records as a skipped sample with the reason. The raw reply is logged
  and kept as ``last_reply``.

Predictor settings (fps, max_frames, max_new_tokens, ...) are the keyword arguments of the constructor
beyond OmniEval's two; OmniEval passes none, so to change them subclass and set ``PREDICTOR_SETTINGS``.
This module imports only the standard library and ``latentomni`` at import time: OmniEval loads it as a
stand-alone file (module name ``user_wrapper_module``), so it uses absolute imports only.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, ClassVar

from latentomni.data.answers import parse_choice
from latentomni.data.questions import EvalItem
from latentomni.eval.annotations import AnnotationError, Record, normalise_options

_PROMPT = re.compile(r"^\s*Question:\s*(?P<question>.*?)\n\s*Options:\s*\n(?P<options>.*?)(?:\n\s*\n.*)?$", re.DOTALL)


def split_prompt(prompt: str) -> tuple[str, list[str]] | None:
    """(question, ["A. text", ...]) from an OmniEval multiple-choice prompt; None for any other prompt."""
    m = _PROMPT.match(prompt)
    if not m:
        return None
    lines = [line.strip() for line in m.group("options").splitlines() if line.strip()]
    try:
        options = normalise_options(lines, Record({}, Path("<OmniEval prompt>"), "options"))
    except AnnotationError:
        return None
    return m.group("question").strip(), options


class LatentOmniWrapper:
    """OmniEval's model interface (``BaseOmniModel``: ``load_model``, ``generate``) over a LatentOmni
    checkpoint. It does not inherit OmniEval's base class, which is not installable; OmniEval only calls
    the constructor and these two methods."""

    PREDICTOR_SETTINGS: ClassVar[dict[str, Any]] = {}

    def __init__(self, model_path: str, device_ids: list[int], **settings: Any):
        self.model_path = model_path
        self.device_ids = list(device_ids)
        self.primary_device = f"cuda:{self.device_ids[0]}" if self.device_ids else "cpu"
        self.settings = {**self.PREDICTOR_SETTINGS, **settings}
        self.logger = logging.getLogger(self.__class__.__name__)
        self.predictor: Any = None
        self.last_reply: str | None = None
        self._asked = 0
        self.load_model()

    def load_model(self) -> None:
        """Load the checkpoint on ``primary_device`` (one GPU per OmniEval worker; CPU without one)."""
        from latentomni.inference.predictor import LatentOmniPredictor

        self.predictor = LatentOmniPredictor(self.model_path, device=self.primary_device, **self.settings)
        self.logger.info("LatentOmni %s loaded on %s", self.model_path, self.primary_device)

    def generate(self, video_path: str, prompt: str, has_audio: bool) -> str:
        """The option letter the model answers for an OmniEval prompt ("" when unreadable), or the raw reply
        for a prompt without options. Raises when the video cannot be decoded."""
        self._asked += 1
        parsed = split_prompt(prompt)
        if parsed is None:
            encoded, _, note = self.predictor.encode(prompt, Path(video_path), None, has_audio, f"q{self._asked}")
            reply = self.predictor.generate([encoded]).texts[0]
            self._log(video_path, reply, note)
            return reply
        question, options = parsed
        item = EvalItem(
            benchmark="lvomnibench",
            qid=f"{Path(video_path).stem}#omnieval{self._asked}",
            question=question,
            options=options,
            answer="",  # unknown here: OmniEval scores the letter
            video=Path(video_path),
            audio=None,
            use_audio=bool(has_audio),
        )
        (out,) = self.predictor.predict([item])
        if out.get("error"):
            raise RuntimeError(f"{video_path}: {out['error']}")
        reply = str(out["reply"])
        self._log(video_path, reply, out.get("note"))
        return parse_choice(reply, options).letter or ""

    def _log(self, video_path: str, reply: str, note: str | None) -> None:
        self.last_reply = reply
        self.logger.info("%s%s: %r", video_path, f" ({note})" if note else "", reply)
