"""GPU memory of one training step of the paper's recipe, computed (not measured) for Qwen2.5-Omni-7B or -3B.

    python benchmarks/memory.py --size 7b --gpus 8 --engine zero2 --seconds 128

Parameter counts are exact: the real thinker class is built on the ``meta`` device from the released
architecture sizes (written out below from the models' config.json), so no weights are needed. Token counts
follow the processor's arithmetic at the recipe's media settings (2 fps, at most 256 frames, 448x448 pixels,
25 audio tokens a second). The rest is the usual accounting for mixed-precision AdamW:

* weights: 2 bytes per parameter (bf16), sharded over GPUs only under ZeRO-3;
* gradients: 2 bytes per *trainable* parameter, sharded under ZeRO-2 and ZeRO-3;
* optimizer: 12 bytes per trainable parameter (fp32 master copy, Adam m and v), sharded under ZeRO-2/3;
* activations of the language model, per sequence of S tokens, hidden h, L layers: with gradient
  checkpointing 2*S*h*L bytes kept at layer boundaries plus one layer recomputed in full (34*S*h bytes,
  Korthikanti et al. 2022 with flash attention, no S^2 term); without it 34*S*h*L. The audio tower trains
  (freeze_audio false) and is counted the same way over its own tokens; the frozen vision tower keeps none.

These are lower bounds: allocator fragmentation, communication buckets (DeepSpeed's reduce/allgather buckets,
about 1 GB each at the configs' sizes) and the CUDA context (about 1 GB) come on top. Prints a JSON report.
"""

from __future__ import annotations

import argparse
import json
import math

import torch
from transformers import Qwen2_5OmniThinkerConfig, Qwen2_5OmniThinkerForConditionalGeneration

GIB = 1024**3
# The released architectures (their config.json); the vision tower is Qwen2.5-VL's 1280-wide ViT in both.
_VISION = {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16}
_AUDIO = {"d_model": 1280, "encoder_layers": 32, "encoder_ffn_dim": 5120}
SIZES = {
    "7b": {"text_config": {"hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
                           "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064},
           "vision_config": {**_VISION, "out_hidden_size": 3584}, "audio_config": {**_AUDIO, "output_dim": 3584}},
    "3b": {"text_config": {"hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36,
                           "num_attention_heads": 16, "num_key_value_heads": 2, "vocab_size": 151936},
           "vision_config": {**_VISION, "out_hidden_size": 2048}, "audio_config": {**_AUDIO, "output_dim": 2048}},
}


def build_config(size: str) -> Qwen2_5OmniThinkerConfig:
    """The thinker config of a released size; embeddings and LM head are counted untied (an upper bound)."""
    sections = SIZES[size]
    text = {**sections["text_config"], "tie_word_embeddings": False}
    return Qwen2_5OmniThinkerConfig(text_config=text, vision_config=sections["vision_config"],
                                    audio_config=sections["audio_config"])


def parameter_counts(cfg: Qwen2_5OmniThinkerConfig) -> dict[str, int]:
    with torch.device("meta"):
        model = Qwen2_5OmniThinkerForConditionalGeneration(cfg)
    inner = model.model
    towers = {"vision": inner.visual, "audio": inner.audio_tower, "language": inner.language_model}
    counts = {name: sum(p.numel() for p in m.parameters()) for name, m in towers.items()}
    counts["lm_head"] = sum(p.numel() for p in model.lm_head.parameters())
    counts["total"] = sum(p.numel() for p in model.parameters())
    return counts


def media_tokens(seconds: float, fps: float = 2.0, max_frames: int = 256, pixels: int = 448 * 448,
                 patch: int = 14, merge: int = 2, temporal_patch: int = 2) -> dict[str, int]:
    frames = min(max_frames, int(seconds * fps))
    frames -= frames % temporal_patch
    side = int(math.sqrt(pixels)) // (patch * merge) * (patch * merge)
    per_grid = (side // patch) ** 2 // merge**2
    return {"frames": frames, "video": frames // temporal_patch * per_grid, "audio": int(25 * seconds)}


def estimate(size: str, gpus: int, engine: str, seconds: float, text_tokens: int, checkpointing: bool) -> dict:
    cfg = build_config(size)
    counts = parameter_counts(cfg)
    trainable = counts["total"] - counts["vision"]  # freeze_vision: true in the recipe
    tokens = media_tokens(seconds)
    seq = tokens["video"] + tokens["audio"] + text_tokens
    t = cfg.text_config
    shard_params = gpus if engine == "zero3" else 1
    shard_states = gpus if engine in ("zero2", "zero3") else 1
    weights = 2 * counts["total"] / shard_params
    grads = 2 * trainable / shard_states
    optimizer = 12 * trainable / shard_states
    if checkpointing:
        lm_act = 2 * seq * t.hidden_size * t.num_hidden_layers + 34 * seq * t.hidden_size
    else:
        lm_act = 34 * seq * t.hidden_size * t.num_hidden_layers
    a = cfg.audio_config
    audio_act = 34 * 2 * tokens["audio"] * a.d_model * (a.encoder_layers if not checkpointing else 1)
    logits = 4 * text_tokens * t.vocab_size  # fp32 logits of the text targets only
    parts = {"weights": weights, "gradients": grads, "optimizer": optimizer, "activations_llm": lm_act,
             "activations_audio": audio_act, "logits": logits}
    return {
        "model": f"Qwen2.5-Omni-{size.upper()} thinker", "engine": engine, "gpus": gpus,
        "gradient_checkpointing": checkpointing, "clip_seconds": seconds, "parameters": counts,
        "trainable_parameters": trainable, "tokens": {**tokens, "text": text_tokens, "sequence": seq},
        "per_gpu_gib": {k: round(v / GIB, 1) for k, v in parts.items()}
        | {"total": round(sum(parts.values()) / GIB, 1)},
        "method": "computed: exact parameter counts (meta-device model), standard mixed-precision AdamW accounting",
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", choices=sorted(SIZES), default="7b")
    p.add_argument("--gpus", type=int, default=8)
    p.add_argument("--engine", choices=["ddp", "zero2", "zero3"], default="zero2")
    p.add_argument("--seconds", type=float, default=128.0, help="clip length (128 s = the 256-frame cap at 2 fps)")
    p.add_argument("--text-tokens", type=int, default=1024, help="question, reasoning and latent slots")
    p.add_argument("--no-checkpointing", action="store_true")
    a = p.parse_args()
    print(json.dumps(estimate(a.size, a.gpus, a.engine, a.seconds, a.text_tokens, not a.no_checkpointing), indent=2))


if __name__ == "__main__":
    main()
