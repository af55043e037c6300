"""Decoding stops where Hugging Face's ``generate`` stops: on the generation config's EOS ids only."""

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from latentomni.model.generate import GenerationConfig, eos_token_ids, generate
from lo_testing import encode_batch, make_sample

STEPS = 12


def _batch(model, clip_dir):
    return encode_batch(model, [make_sample("a"), make_sample("b", video="clip3.mp4")], clip_dir,
                        for_generation=True)


class _ForceAt(LogitsProcessor):
    """HF side: make ``token`` the pick at generation step ``step``."""

    def __init__(self, prompt_length: int, step: int, token: int) -> None:
        self.prompt_length, self.step, self.token = prompt_length, step, token

    def __call__(self, input_ids, scores):
        if input_ids.shape[1] - self.prompt_length == self.step:
            scores = torch.full_like(scores, float("-inf"))
            scores[:, self.token] = 0.0
        return scores


def _force_at(step: int, token: int):
    def process(s, logits):
        if s == step:
            logits = torch.full_like(logits, float("-inf"))
            logits[:, token] = 0.0
        return logits
    return process


def _hf(model, batch, processors):
    out = model.thinker.generate(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
        pixel_values_videos=batch["pixel_values_videos"], video_grid_thw=batch["video_grid_thw"],
        video_second_per_grid=batch["video_second_per_grid"], input_features=batch["input_features"],
        feature_attention_mask=batch["feature_attention_mask"], use_audio_in_video=True, do_sample=False,
        max_new_tokens=STEPS, logits_processor=LogitsProcessorList(processors))
    return out[:, batch["input_ids"].shape[1]:]


def test_stop_ids_are_the_generation_configs(model):
    assert eos_token_ids(model).tolist() == [model.thinker.generation_config.eos_token_id]


def test_endoftext_outside_the_generation_config_does_not_stop_decoding(model, clip_dir):
    """The tiny base's <|endoftext|> (its pad token) is not in its generation config: HF decodes past it,
    and so must we, token for token."""
    tok = model.processor.tokenizer
    endoftext = tok.convert_tokens_to_ids("<|endoftext|>")
    assert endoftext not in eos_token_ids(model).tolist()
    batch = _batch(model, clip_dir)
    ours = generate(model, batch, GenerationConfig(max_new_tokens=STEPS), logits_processor=_force_at(3, endoftext))
    hf = _hf(model, batch, [_ForceAt(batch["input_ids"].shape[1], 3, endoftext)])
    assert hf.shape[1] == STEPS and ours.sequences.shape[1] == STEPS
    assert torch.equal(ours.sequences, hf)


def test_the_configured_eos_stops_both(model, clip_dir):
    eos = int(eos_token_ids(model)[0])
    batch = _batch(model, clip_dir)
    ours = generate(model, batch, GenerationConfig(max_new_tokens=STEPS), logits_processor=_force_at(3, eos))
    hf = _hf(model, batch, [_ForceAt(batch["input_ids"].shape[1], 3, eos)])
    assert hf.shape[1] == 4 and torch.equal(ours.sequences, hf)
