"""LatentOmni: unified audio-visual latent reasoning on Qwen2.5-Omni."""

__version__ = "0.1.0"
