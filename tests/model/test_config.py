from pathlib import Path

import pytest
from pydantic import ValidationError

from latentomni.config import LatentConfig
from latentomni.train.config import load_config

ROOT = Path(__file__).resolve().parents[2]


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


# Each ablation's switch (paper Table 4, Figure 4): what its YAML changes in latent.yaml's latent section.
SWITCHES = {
    "no_audio_latents": {"modalities": "visual", "num_visual": 40, "num_audio": 0, "lambda_sync": 0.0},
    "no_visual_latents": {"modalities": "audio", "num_visual": 0, "num_audio": 40, "lambda_sync": 0.0},
    "no_ospe": {"ospe": False},
    "no_latent_loss": {"lambda_latent": 0.0},
    "no_sync_loss": {"lambda_sync": 0.0},
    "k24_split16_8": {"num_latents": 24, "num_visual": 16},
}
ABLATION_FILES = sorted((ROOT / "configs").glob("*/ablation_*.yaml"))


@pytest.mark.parametrize("path", ABLATION_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_each_ablation_yaml_differs_from_latent_yaml_exactly_in_its_named_switch(path):
    ablation = load_config(path).model_dump()
    latent = load_config(path.parent / "latent.yaml").model_dump()
    assert ablation["training"].pop("output_dir").endswith(path.stem)
    latent["training"].pop("output_dir")
    assert {k: v for k, v in ablation.items() if k != "latent"} == {k: v for k, v in latent.items() if k != "latent"}
    changed = {k: v for k, v in ablation["latent"].items() if latent["latent"][k] != v}
    assert changed == SWITCHES[path.stem.removeprefix("ablation_")]


def test_the_demo_trains_every_ablation_file_and_a_config_per_variant():
    from latentomni.data.collate import VARIANTS
    from latentomni.demo.run import ablations

    demo = ROOT / "configs" / "demo"
    assert ablations(demo) == sorted(p.stem for p in ABLATION_FILES if p.parent == demo)
    assert len(ablations(demo)) == 5
    for variant in VARIANTS:
        assert load_config(demo / f"{variant}.yaml").data.variant == variant
    assert not hasattr(LatentConfig, "ablation")


def test_assignment_is_validated_too():
    c = LatentConfig()
    with pytest.raises(ValidationError):
        c.num_visual = 31
