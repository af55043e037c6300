"""Shared fixtures: tiny random Qwen2.5-Omni and Qwen3-Omni thinkers saved to disk, and media rendered by the
tests."""

from __future__ import annotations

import pytest
import torch

from lo_testing import render_clip

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_base_dir(tmp_path_factory):
    from latentomni.testing.tiny import build_tiny_base

    out = tmp_path_factory.mktemp("tiny_base")
    build_tiny_base(out, seed=0)
    return out


@pytest.fixture(scope="session")
def tiny_qwen3_dir(tmp_path_factory):
    from latentomni.testing.tiny_qwen3 import build_tiny_base

    out = tmp_path_factory.mktemp("tiny_qwen3")
    build_tiny_base(out, seed=0)
    return out


FAMILIES = ("qwen2.5-omni", "qwen3-omni")


@pytest.fixture(params=FAMILIES)
def family(request) -> str:
    """Each backbone family in turn (tests that run over both)."""
    return request.param


@pytest.fixture
def family_base_dir(family, request):
    """The tiny base checkpoint of ``family``."""
    return request.getfixturevalue("tiny_base_dir" if family == "qwen2.5-omni" else "tiny_qwen3_dir")


@pytest.fixture
def family_model(family_base_dir):
    """A fresh LatentOmni wrapper around the tiny base of each family (K=40, 32/8), in eval mode."""
    from latentomni.config import LatentConfig
    from latentomni.model.wrapper import LatentOmniModel

    torch.manual_seed(0)
    return LatentOmniModel.from_base(family_base_dir, LatentConfig()).eval()


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("media")
    render_clip(d / "clip4.mp4", seconds=4.0)
    render_clip(d / "clip3.mp4", seconds=3.0)
    render_clip(d / "silent.mp4", seconds=2.0, with_audio=False)
    (d / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    return d


@pytest.fixture
def model(tiny_base_dir):
    """A fresh LatentOmni wrapper around the tiny base (K=40, 32/8), in eval mode."""
    from latentomni.config import LatentConfig
    from latentomni.model.wrapper import LatentOmniModel

    torch.manual_seed(0)
    return LatentOmniModel.from_base(tiny_base_dir, LatentConfig()).eval()
