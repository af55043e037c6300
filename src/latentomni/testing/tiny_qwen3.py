"""A tiny, random Qwen3-Omni thinker with a tokenizer and processor built locally (no downloads).

The architecture is the real one -- the mixture-of-experts text model (here 4 experts, top-2) with its router,
the DeepStack vision tower (2 layers, both feeding DeepStack features), the chunked audio encoder (~13 tokens a
second) and interleaved TMRoPE -- only the sizes shrink, as in :mod:`.tiny` for Qwen2.5-Omni. The media and chat
tokens carry Qwen3-Omni's own names (``<|audio_start|>``, ``<|video_pad|>``, ...); the processor reads them by
attribute, so nothing downstream depends on the strings.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    Qwen2TokenizerFast,
    Qwen2VLImageProcessor,
    Qwen2VLVideoProcessor,
    Qwen3OmniMoeProcessor,
    Qwen3OmniMoeThinkerConfig,
    Qwen3OmniMoeThinkerForConditionalGeneration,
    WhisperFeatureExtractor,
)

from .tiny import _CORPUS, CHAT_TOKENS, random_thinker

# Qwen3-Omni's media tokens, by the attribute names its processor reads.
MEDIA_TOKENS = {
    "audio_token": "<|audio_pad|>",
    "audio_bos_token": "<|audio_start|>",
    "audio_eos_token": "<|audio_end|>",
    "image_token": "<|image_pad|>",
    "video_token": "<|video_pad|>",
    "vision_bos_token": "<|vision_start|>",
    "vision_eos_token": "<|vision_end|>",
}

# ChatML rendering Qwen3-Omni's content parts (same layout as the released template's, without its tools).
CHAT_TEMPLATE = (
    "{%- for m in messages -%}"
    "<|im_start|>{{ m['role'] + '\\n' }}"
    "{%- if m['content'] is string -%}{{ m['content'] }}"
    "{%- else -%}{%- for c in m['content'] -%}"
    "{%- if c['type'] == 'audio' -%}<|audio_start|><|audio_pad|><|audio_end|>"
    "{%- elif c['type'] == 'video' -%}<|vision_start|><|video_pad|><|vision_end|>"
    "{%- elif c['type'] == 'image' -%}<|vision_start|><|image_pad|><|vision_end|>"
    "{%- elif c['type'] == 'text' -%}{{ c['text'] }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "<|im_end|>{{ '\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|im_start|>{{ 'assistant\\n' }}{%- endif -%}"
)

PATCH_SIZE = 16  # Qwen3-Omni's vision patch (Qwen2.5-Omni: 14)


def build_tokenizer(vocab_size: int = 512) -> Qwen2TokenizerFast:
    """A byte-level BPE trained on the same small corpus as :func:`.tiny.build_tokenizer`, with Qwen3-Omni's
    special tokens."""
    specials = CHAT_TOKENS + list(MEDIA_TOKENS.values())
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([_CORPUS] * 4, trainer=trainer)
    return Qwen2TokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                              unk_token=None, bos_token=None, extra_special_tokens=dict(MEDIA_TOKENS),
                              chat_template=CHAT_TEMPLATE, model_max_length=32768)


def build_processor(tokenizer: Qwen2TokenizerFast | None = None) -> Qwen3OmniMoeProcessor:
    """The real Qwen3-Omni processor from its parts, sized for the tiny vision tower (64x64 frames -> 4 tokens)."""
    tokenizer = tokenizer or build_tokenizer()
    side = PATCH_SIZE * 2
    pix = {"min_pixels": side * side, "max_pixels": 2 * side * 2 * side, "patch_size": PATCH_SIZE, "merge_size": 2,
           "temporal_patch_size": 2}
    return Qwen3OmniMoeProcessor(
        image_processor=Qwen2VLImageProcessor(**pix), video_processor=Qwen2VLVideoProcessor(**pix),
        feature_extractor=WhisperFeatureExtractor(feature_size=128, sampling_rate=16000, chunk_length=300),
        tokenizer=tokenizer, chat_template=CHAT_TEMPLATE)


def tiny_thinker_config(tokenizer: Qwen2TokenizerFast, hidden: int = 128, layers: int = 4, heads: int = 4,
                        experts: int = 4, top_k: int = 2, vision_hidden: int = 64,
                        audio_hidden: int = 64) -> Qwen3OmniMoeThinkerConfig:
    """Real architecture, tiny sizes; token ids come from the tokenizer so nothing is hard-coded.

    ``position_id_per_seconds`` is 13, as in the released Qwen3-Omni config (the config class defaults to 25, the
    processor to 13): one TMRoPE id per audio token. ``vision_start_token_id`` (and the other marker ids), which
    the config class does not declare but ``get_rope_index`` reads, are set from the tokenizer, as the released
    checkpoint's config sets them.
    """
    ids = {name: tokenizer.convert_tokens_to_ids(t) for name, t in MEDIA_TOKENS.items()}
    head_dim = hidden // heads
    half = head_dim // 2
    section = [half - 2 * (half // 4), half // 4, half // 4]
    text_config = {
        "vocab_size": len(tokenizer), "hidden_size": hidden, "intermediate_size": hidden * 2,
        "moe_intermediate_size": hidden, "num_experts": experts, "num_experts_per_tok": top_k,
        "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": heads // 2,
        "head_dim": head_dim, "max_position_embeddings": 32768,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": section,
                            "interleaved": True},
        "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id,
    }
    vision_config = {
        "depth": 2, "hidden_size": vision_hidden, "intermediate_size": vision_hidden * 2, "num_heads": 2,
        "patch_size": PATCH_SIZE, "spatial_merge_size": 2, "temporal_patch_size": 2, "out_hidden_size": hidden,
        "num_position_embeddings": 64, "deepstack_visual_indexes": [0, 1],
    }
    audio_config = {
        "num_mel_bins": 128, "encoder_layers": 2, "encoder_attention_heads": 2, "encoder_ffn_dim": audio_hidden * 2,
        "d_model": audio_hidden, "output_dim": hidden, "n_window": 50, "n_window_infer": 400,
        "downsample_hidden_size": 32, "max_source_positions": 1500,
    }
    config = Qwen3OmniMoeThinkerConfig(
        text_config=text_config, vision_config=vision_config, audio_config=audio_config,
        audio_token_id=ids["audio_token"], image_token_id=ids["image_token"], video_token_id=ids["video_token"],
        audio_start_token_id=ids["audio_bos_token"], position_id_per_seconds=13, tie_word_embeddings=False,
    )
    config.audio_end_token_id = ids["audio_eos_token"]
    config.vision_start_token_id = ids["vision_bos_token"]
    config.vision_end_token_id = ids["vision_eos_token"]
    config.seconds_per_chunk = 2
    return config


def build_tiny_base(out_dir: str | Path | None = None, seed: int = 0, **sizes: int):
    """Build (thinker, processor) with random weights; save both to ``out_dir`` when given.

    The saved folder loads back with ``Qwen3OmniMoeThinkerForConditionalGeneration.from_pretrained`` and
    ``Qwen3OmniMoeProcessor.from_pretrained`` like a released checkpoint's thinker.
    """
    processor = build_processor()
    config = tiny_thinker_config(processor.tokenizer, **sizes)
    return random_thinker(Qwen3OmniMoeThinkerForConditionalGeneration, config, processor, out_dir, seed)


if __name__ == "__main__":  # python -m latentomni.testing.tiny_qwen3 OUT_DIR
    import sys

    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m latentomni.testing.tiny_qwen3 OUT_DIR")
    build_tiny_base(sys.argv[1])
    print(f"tiny Qwen3-Omni thinker written to {sys.argv[1]}")
