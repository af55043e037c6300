"""Stage ``captions`` (Sec. 3.3, App. A.4-A.5): grounded segment-level captions for each QA item.

Per segment: a video-only caption (captioner sees the clip) and an audio-only caption (captioner hears
the wav), both guided by the QA pair; their fusion into one narrative, checked programmatically to keep
every sentence; refinement against the full caption (shot fragmentation); and a hallucination check
against the source caption, whose unsupported sentences are removed. A segment that is mostly
unsupported drops the item, since its trajectory would cite evidence that is not there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from latentomni.synth import prompts
from latentomni.synth.client import ItemDropped, audio_part, video_part
from latentomni.synth.records import Item, Segment, SegmentCaption
from latentomni.synth.replies import CaptionReply, FusionReply, GroundingReply, RefineReply
from latentomni.synth.stages.base import Messages, PerItemStage, StageContext, Unit
from latentomni.synth.text import missing_sentences, normalize_sentence, split_sentences


def fusion_check(video_caption: str, audio_caption: str):
    """A reply check: the fused narrative must contain every sentence of both captions (Fig. 10)."""

    def check(reply: FusionReply) -> tuple[str, str] | None:
        missing = missing_sentences([video_caption, audio_caption], reply.narrative)
        if missing:
            listed = " | ".join(missing[:3])
            return "fusion_lost_sentences", f"the narrative omits or rewords {len(missing)} sentence(s): {listed}"
        return None

    return check


def remove_sentences(caption: str, unsupported: list[str]) -> tuple[str, int]:
    """``caption`` without the sentences a judge listed, and how many of its sentences were removed."""
    bad = {normalize_sentence(s) for s in unsupported if s.strip()}
    kept, removed = [], 0
    for sentence in split_sentences(caption):
        if normalize_sentence(sentence) in bad:
            removed += 1
        else:
            kept.append(sentence)
    return " ".join(kept), removed


class CaptionsStage(PerItemStage):
    name = "captions"
    input_stage = "segment"

    @staticmethod
    def _qa(item: Item) -> str:
        return prompts.qa_text(item.qa.question, item.qa.answer, item.qa.options)

    def media_messages(self, ctx: StageContext, item: Item, seg: Segment) -> tuple[Messages, Messages]:
        vcall = ctx.call("captions.video_llm")
        window = (seg.start, seg.end)
        video = prompts.video_caption_messages(self._qa(item), window, video_part(seg.video, ctx.transport(vcall)))
        audio = prompts.audio_caption_messages(self._qa(item), window, audio_part(seg.audio))
        return video, audio

    async def caption_segment(self, ctx: StageContext, item: Item, seg: Segment) -> SegmentCaption:
        assert ctx.client is not None
        ask = ctx.client.ask
        window = (seg.start, seg.end)
        video_msgs, audio_msgs = self.media_messages(ctx, item, seg)
        video = (await ask(ctx.call("captions.video_llm"), video_msgs, CaptionReply)).caption
        audio = (await ask(ctx.call("captions.audio_llm"), audio_msgs, CaptionReply)).caption
        fused = (await ask(ctx.call("captions.fusion_llm"), prompts.fusion_messages(video, audio), FusionReply,
                           check=fusion_check(video, audio))).narrative
        refined = (await ask(ctx.call("captions.refine_llm"), prompts.refine_messages(item.clip, window, fused),
                             RefineReply)).caption
        grounding = await ask(ctx.call("captions.filter_llm"), prompts.grounding_messages(item.clip, window, refined),
                              GroundingReply)
        final, removed = remove_sentences(refined, grounding.unsupported_sentences)
        total = max(1, len(split_sentences(refined)))
        limit = ctx.cfg.stages.captions.max_unsupported_fraction
        if grounding.verdict == "hallucinated" or not final or removed / total > limit:
            raise ItemDropped("hallucinated_caption",
                              f"segment {seg.index}: {removed} of {total} sentences unsupported (verdict "
                              f"{grounding.verdict})")
        return SegmentCaption(index=seg.index, video_caption=video, audio_caption=audio, fused=fused,
                              refined=refined, final=final)

    async def process(self, unit: Unit, ctx: StageContext) -> dict[str, Any]:
        item: Item = unit.payload
        assert item.segments, "segment stage output without segments"
        item.captions = [await self.caption_segment(ctx, item, seg) for seg in item.segments]
        return item.model_dump(mode="json")

    def preview(self, ctx: StageContext, inputs: list[dict[str, Any]]) -> list[tuple[str, Messages]]:
        if not inputs:
            return []
        item = Item.model_validate(inputs[0])
        if not item.segments:
            return []
        seg = item.segments[0]
        window = (seg.start, seg.end)
        if Path(seg.video).is_file() and Path(seg.audio).is_file():
            video, audio = self.media_messages(ctx, item, seg)
        else:  # a dry run before the segment stage: show the prompt with a stand-in for the media
            stand_in = f"<segment {seg.index} media, not cut yet>"
            video = prompts.video_caption_messages(self._qa(item), window,
                                                   {"type": "video_url", "video_url": {"url": stand_in}})
            audio = prompts.audio_caption_messages(self._qa(item), window,
                                                   {"type": "input_audio", "input_audio": {"data": stand_in,
                                                                                           "format": "wav"}})
        return [("captions.video_llm", video), ("captions.audio_llm", audio),
                ("captions.fusion_llm", prompts.fusion_messages("<video caption>", "<audio caption>")),
                ("captions.refine_llm", prompts.refine_messages(item.clip, window, "<fused caption>")),
                ("captions.filter_llm", prompts.grounding_messages(item.clip, window, "<refined caption>"))]
