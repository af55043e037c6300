import pytest
from pydantic import ValidationError

from latentomni.config import LatentConfig


def test_defaults_match_the_paper():
    c = LatentConfig()
    assert (c.num_latents, c.num_visual, c.num_audio) == (40, 32, 8)
    assert (c.lambda_latent, c.lambda_sync) == (0.005, 1.0)
    assert c.ospe and c.latent_mode


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"num_visual": 30}, r"Kv=30 \+ Ka=8 = 38 != K=40"),
        ({"num_latents": 0, "num_visual": 0, "num_audio": 0}, "must be > 0 when latent_mode is on"),
        ({"num_latents": -1}, "greater than or equal to 0"),
        ({"lambda_latent": -0.1}, "greater than or equal to 0"),
        ({"modalities": "visual"}, "needs num_audio=0"),
        ({"num_visual": 40, "num_audio": 0}, "needs both num_visual and num_audio"),
        ({"modalities": "visual", "num_visual": 40, "num_audio": 0}, "lambda_sync > 0 needs both"),
        ({"attention_flow": "sideways"}, "causal"),
        ({"bogus": 1}, "Extra inputs"),
    ],
)
def test_invalid_configs_fail_at_construction(kwargs, needle):
    with pytest.raises(ValidationError, match=needle):
        LatentConfig(**kwargs)


def test_latent_mode_off_allows_zero_latents():
    assert LatentConfig(latent_mode=False, num_latents=0, num_visual=0, num_audio=0).num_latents == 0


def test_ablation_presets_are_valid_configs():
    assert LatentConfig.ablation("no_audio_latents").num_visual == 40
    assert LatentConfig.ablation("no_visual_latents").num_audio == 40
    assert not LatentConfig.ablation("no_ospe").ospe
    assert LatentConfig.ablation("no_latent_loss").lambda_latent == 0
    assert LatentConfig.ablation("no_sync_loss", num_latents=16, num_visual=12, num_audio=4).num_latents == 16
    with pytest.raises(ValueError, match="unknown ablation"):
        LatentConfig.ablation("no_brain")


def test_assignment_is_validated_too():
    c = LatentConfig()
    with pytest.raises(ValidationError):
        c.num_visual = 31
