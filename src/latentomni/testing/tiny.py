"""A tiny, random Qwen2.5-Omni thinker with a tokenizer and processor built locally (no downloads).

The architecture is the real one (vision tower, audio tower, 3D-RoPE text model): only the sizes shrink.
Tests and the demo use it the way transformers' own model tests use tiny configs.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    PretrainedConfig,
    PreTrainedModel,
    ProcessorMixin,
    Qwen2_5OmniProcessor,
    Qwen2_5OmniThinkerConfig,
    Qwen2_5OmniThinkerForConditionalGeneration,
    Qwen2TokenizerFast,
    Qwen2VLImageProcessor,
    Qwen2VLVideoProcessor,
    WhisperFeatureExtractor,
)

# Qwen2.5-Omni's media and chat tokens, by the attribute names its processor reads.
MEDIA_TOKENS = {
    "audio_token": "<|AUDIO|>",
    "audio_bos_token": "<|audio_bos|>",
    "audio_eos_token": "<|audio_eos|>",
    "image_token": "<|IMAGE|>",
    "video_token": "<|VIDEO|>",
    "vision_bos_token": "<|vision_bos|>",
    "vision_eos_token": "<|vision_eos|>",
}
CHAT_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# A ChatML template that renders Qwen-Omni content parts; same layout as the released model's.
CHAT_TEMPLATE = (
    "{%- for m in messages -%}"
    "<|im_start|>{{ m['role'] + '\\n' }}"
    "{%- if m['content'] is string -%}{{ m['content'] }}"
    "{%- else -%}{%- for c in m['content'] -%}"
    "{%- if c['type'] == 'audio' -%}<|audio_bos|><|AUDIO|><|audio_eos|>"
    "{%- elif c['type'] == 'video' -%}<|vision_bos|><|VIDEO|><|vision_eos|>"
    "{%- elif c['type'] == 'image' -%}<|vision_bos|><|IMAGE|><|vision_eos|>"
    "{%- elif c['type'] == 'text' -%}{{ c['text'] }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "<|im_end|>{{ '\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|im_start|>{{ 'assistant\\n' }}{%- endif -%}"
)

_CORPUS = """
You are a helpful assistant that watches and listens. The question is about the video and its sound.
A red square, a blue circle, a green triangle and a yellow star move left or right on a dark screen.
A high tone, a low tone, a mid tone, a noise burst, or silence is heard. The answer is A, B, C or D.
What colour was on screen when the high tone sounded? Which sound came with the second shape?
How many shapes were visible during the noise burst? Segment one two three four, first second third last.
I revisit the moment it sounds, then compare the options and answer with the letter in a box.
0 1 2 3 4 5 6 7 8 9 seconds ( ) [ ] { } \\boxed{A} \\boxed{B} \\boxed{C} \\boxed{D} . , : ; ? ! ' " - + = / *
"""


def build_tokenizer(vocab_size: int = 512) -> Qwen2TokenizerFast:
    """A byte-level BPE trained on a small built-in corpus, with Qwen-Omni's special tokens."""
    specials = CHAT_TOKENS + list(MEDIA_TOKENS.values())
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([_CORPUS] * 4, trainer=trainer)
    return Qwen2TokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
        extra_special_tokens=dict(MEDIA_TOKENS),
        chat_template=CHAT_TEMPLATE,
        model_max_length=32768,
    )


def build_processor(tokenizer: Qwen2TokenizerFast | None = None, patch_size: int = 14) -> Qwen2_5OmniProcessor:
    """The real Qwen2.5-Omni processor from its parts, sized for the tiny vision tower (56x56 frames -> 4 tokens)."""
    tokenizer = tokenizer or build_tokenizer()
    pix = {"min_pixels": 28 * 28, "max_pixels": 56 * 56, "patch_size": patch_size, "merge_size": 2,
           "temporal_patch_size": 2}
    image_processor = Qwen2VLImageProcessor(**pix)
    video_processor = Qwen2VLVideoProcessor(**pix)
    feature_extractor = WhisperFeatureExtractor(feature_size=128, sampling_rate=16000, chunk_length=300)
    return Qwen2_5OmniProcessor(
        image_processor=image_processor,
        video_processor=video_processor,
        feature_extractor=feature_extractor,
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
    )


def tiny_thinker_config(tokenizer: Qwen2TokenizerFast, hidden: int = 128, layers: int = 4, heads: int = 4,
                        vision_hidden: int = 64, audio_hidden: int = 64) -> Qwen2_5OmniThinkerConfig:
    """Real architecture, tiny sizes; token ids come from the tokenizer so nothing is hard-coded."""
    ids = {name: tokenizer.convert_tokens_to_ids(t) for name, t in MEDIA_TOKENS.items()}
    head_dim = hidden // heads
    # mrope sections split head_dim/2 rotary frequencies over (t, h, w).
    half = head_dim // 2
    section = [half - 2 * (half // 4), half // 4, half // 4]
    text_config = {
        "vocab_size": len(tokenizer),
        "hidden_size": hidden,
        "intermediate_size": hidden * 2,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": heads,
        "max_position_embeddings": 32768,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": section},
        "tie_word_embeddings": False,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    vision_config = {
        "depth": 2,
        "hidden_size": vision_hidden,
        "intermediate_size": vision_hidden * 2,
        "num_heads": 2,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": 56,
        "fullatt_block_indexes": [1],
        "out_hidden_size": hidden,
    }
    audio_config = {
        "num_mel_bins": 128,
        "encoder_layers": 2,
        "encoder_attention_heads": 2,
        "encoder_ffn_dim": audio_hidden * 2,
        "d_model": audio_hidden,
        "output_dim": hidden,
        "n_window": 100,
        "max_source_positions": 1500,
    }
    return Qwen2_5OmniThinkerConfig(
        text_config=text_config,
        vision_config=vision_config,
        audio_config=audio_config,
        audio_token_index=ids["audio_token"],
        image_token_index=ids["image_token"],
        video_token_index=ids["video_token"],
        audio_start_token_id=ids["audio_bos_token"],
        audio_end_token_id=ids["audio_eos_token"],
        vision_start_token_id=ids["vision_bos_token"],
        vision_end_token_id=ids["vision_eos_token"],
        position_id_per_seconds=25,
        seconds_per_chunk=2,
        tie_word_embeddings=False,
    )


def build_tiny_base(out_dir: str | Path | None = None, seed: int = 0, **sizes: int):
    """Build (thinker, processor) with random weights; save both to ``out_dir`` when given.

    The saved folder loads back with ``Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained`` and
    ``Qwen2_5OmniProcessor.from_pretrained`` like a released checkpoint.
    """
    processor = build_processor()
    config = tiny_thinker_config(processor.tokenizer, **sizes)
    return random_thinker(Qwen2_5OmniThinkerForConditionalGeneration, config, processor, out_dir, seed)


def random_thinker(thinker_class: type[PreTrainedModel], config: PretrainedConfig, processor: ProcessorMixin,
                   out_dir: str | Path | None, seed: int):
    """``thinker_class(config)`` with weights drawn right after seeding, so one seed gives one checkpoint; saved
    beside ``processor`` when ``out_dir`` is given. Every family's ``build_tiny_base`` ends here, so the tiny
    checkpoints of the families are made (and reproduced) the same way."""
    import torch

    torch.manual_seed(seed)
    thinker = thinker_class(config).eval()
    if out_dir is not None:
        thinker.save_pretrained(out_dir)
        processor.save_pretrained(out_dir)
    return thinker, processor
