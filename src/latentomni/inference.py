"""Running a trained LatentOmni model: the predictor the evaluator uses, and ``latentomni infer``.

Decoding is greedy by default. The Qwen-Omni thinker's own generation config samples, which makes two runs
of the same benchmark disagree; every setting that changes a reply is in :meth:`LatentOmniPredictor.settings`
and is saved beside each evaluation.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

from .data.collate import MediaSettings, SampleEncoder, batch_to, collate
from .data.media import MediaError
from .data.schema import TrainingSample
from .model.generate import GenerationConfig, GenerationOutput, generate


def prompt_sample(question: str, video: str | Path | None = None, audio: str | Path | None = None,
                  sample_id: str = "prompt") -> TrainingSample:
    """A prompt-only sample (its assistant turn is empty and never encoded)."""
    parts: list[dict] = []
    if video is not None:
        parts.append({"type": "video", "video": str(video)})
    if audio is not None:
        parts.append({"type": "audio", "audio": str(audio)})
    parts.append({"type": "text", "text": question})
    return TrainingSample.model_validate({
        "id": sample_id, "answer": "-",
        "messages": [{"role": "user", "content": parts}, {"role": "assistant", "content": []}],
    })


def resolve_dtype(name: str) -> torch.dtype | None:
    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else None
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


class LatentOmniPredictor:
    """Answers evaluation items (``latentomni.eval.items.EvalItem``) with latent-aware generation."""

    def __init__(self, model_dir: str, fps: float = 2.0, max_frames: int = 256, max_pixels: int = 448 * 448,
                 use_audio_in_video: bool = True, prefer_separate_audio: bool = False,
                 system_prompt: str | None = None, max_new_tokens: int = 512, do_sample: bool = False,
                 temperature: float = 1.0, top_p: float = 1.0, seed: int | None = None,
                 max_latent_blocks: int = 4, attention_flow: str | None = None, dtype: str = "auto",
                 device: str = "auto", attn_implementation: str | None = None):
        from .model.wrapper import LatentOmniModel

        overrides = {"attention_flow": attention_flow} if attention_flow else {}
        self.model = LatentOmniModel.from_pretrained(model_dir, dtype=resolve_dtype(dtype),
                                                     attn_implementation=attn_implementation, **overrides)
        dev = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self.model.to(dev).eval()
        self.model_dir = str(model_dir)
        self.media = MediaSettings(fps=fps, max_frames=max_frames, max_pixels=max_pixels,
                                   use_audio_in_video=use_audio_in_video)
        self.prefer_separate_audio = prefer_separate_audio
        self.system_prompt = system_prompt
        self.gen = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=temperature,
                                    top_p=top_p, seed=seed, max_latent_blocks=max_latent_blocks)
        self.dtype = dtype

    def settings(self) -> dict[str, Any]:
        lat = self.model.latent
        return {
            "model": self.model_dir, **self.media.model_dump(), "prefer_separate_audio": self.prefer_separate_audio,
            "system_prompt": self.system_prompt, "decoding": vars(self.gen) | {"output_latents": False},
            "latent": {"K": lat.num_latents, "Kv": lat.num_visual, "Ka": lat.num_audio, "ospe": lat.ospe,
                       "latent_mode": lat.latent_mode, "attention_flow": lat.attention_flow},
            "dtype": self.dtype,
        }

    def _encoder(self, use_audio_in_video: bool) -> SampleEncoder:
        media = self.media.model_copy(update={"use_audio_in_video": use_audio_in_video})
        return SampleEncoder.for_model(self.model, media, system_prompt=self.system_prompt)

    def encode(self, question: str, video: Path | None, audio: Path | None, use_audio: bool, sid: str = "q"):
        """Encode one prompt; returns (encoded, mode, note). Audio comes from the video's own track unless
        the item has only a separate audio file (or ``prefer_separate_audio``); a video without an audio
        track falls back to vision only, and says so."""
        separate = audio if (use_audio and audio is not None and (video is None or self.prefer_separate_audio)) \
            else None
        in_video = bool(use_audio and video is not None and separate is None and self.media.use_audio_in_video)
        sample = prompt_sample(question, video, separate, sid)
        try:
            return self._encoder(in_video).encode(sample, Path("."), for_generation=True), in_video, None
        except MediaError as e:
            if in_video and "no audio track" in e.reason:
                enc = self._encoder(False).encode(sample, Path("."), for_generation=True)
                return enc, False, f"vision only: {e.reason}"
            raise

    def generate(self, encoded: list, cfg: GenerationConfig | None = None) -> GenerationOutput:
        pad = self.model.processor.tokenizer.pad_token_id
        batch = collate(encoded, pad, padding_side="left")
        batch = batch_to(batch, self.model.device)
        return generate(self.model, batch, cfg or self.gen)

    def predict(self, items: list) -> list[dict[str, Any]]:
        from .eval.items import render_question

        results: list[dict[str, Any] | None] = [None] * len(items)
        groups: dict[bool, list[tuple[int, Any, str | None]]] = {}
        for i, item in enumerate(items):
            try:
                enc, mode, note = self.encode(render_question(item), item.video, item.audio, item.use_audio,
                                              item.qid)
                groups.setdefault(mode, []).append((i, enc, note))
            except (MediaError, ValueError) as e:
                results[i] = {"reply": "", "error": str(e)}
        for members in groups.values():  # one audio layout per batch, as Qwen2.5-Omni positions require
            out = self.generate([enc for _, enc, _ in members])
            for (i, _, note), text, blocks in zip(members, out.texts, out.num_blocks, strict=True):
                results[i] = {"reply": text, "n_latent_blocks": blocks, **({"note": note} if note else {})}
        return results  # type: ignore[return-value]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("infer", help="answer one question about a video (and/or audio) with latent reasoning")
    p.add_argument("--model", required=True, help="a LatentOmni checkpoint directory")
    p.add_argument("--video", type=Path)
    p.add_argument("--audio", type=Path, help="a separate audio file (otherwise the video's own track is used)")
    p.add_argument("--question", required=True)
    p.add_argument("--options", nargs="+", help='options, e.g. "A. red" "B. blue"')
    p.add_argument("--use-audio-in-video", action=argparse.BooleanOptionalAction, default=True,
                   help="use the video's audio track, interleaved with its frames (qwen-omni-utils' flag)")
    p.add_argument("--fps", type=float, default=2.0)
    p.add_argument("--max-frames", type=int, default=256)
    p.add_argument("--max-pixels", type=int, default=448 * 448)
    p.add_argument("--max-new-tokens", type=int, default=512)
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int)
    p.add_argument("--system-prompt")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_infer)


def _infer(args: argparse.Namespace) -> int:
    from .eval.answer import extract_choice
    from .eval.items import ANSWER_INSTRUCTION

    if args.video is None and args.audio is None:
        print("error: give --video and/or --audio", file=sys.stderr)
        return 2
    pred = LatentOmniPredictor(args.model, fps=args.fps, max_frames=args.max_frames, max_pixels=args.max_pixels,
                               use_audio_in_video=args.use_audio_in_video, system_prompt=args.system_prompt,
                               max_new_tokens=args.max_new_tokens, do_sample=args.sample,
                               temperature=args.temperature, top_p=args.top_p, seed=args.seed,
                               prefer_separate_audio=args.audio is not None)
    question = "\n".join([args.question, *(args.options or []), *([ANSWER_INSTRUCTION] if args.options else [])])
    try:
        enc, _, note = pred.encode(question, args.video, args.audio, use_audio=True)
    except MediaError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    out = pred.generate([enc])
    text = out.texts[0]
    answer = extract_choice(text, args.options) if args.options else _last_boxed(text)
    if args.json:
        print(json.dumps({"reply": text, "answer": answer, "n_latent_blocks": out.num_blocks[0],
                          "note": note, "settings": pred.settings()}))
    else:
        if note:
            print(f"[{note}]")
        print(text)
        print(f"\nanswer: {answer if answer is not None else '(no parseable answer)'}")
    return 0


def _last_boxed(text: str) -> str | None:
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 1, start + len("\\boxed{")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j]
    return None
