"""Audio longer than the Whisper extractor's 300-s chunk reaches the model whole (or is cut by a setting, with
a warning), so a long video's audio keeps the video's timeline (LVOmniBench runs 10-90 minutes)."""

import warnings

import numpy as np
import pytest
import torch

from latentomni.data.collate import SampleEncoder, collate
from latentomni.data.features import MediaSettings, whisper_features
from latentomni.data.render import render_av, tone, write_wav
from latentomni.data.schema import parse_sample

SECONDS = 400  # past the extractor's chunk_length (300 s), where it used to cut without a word
TOKENS_PER_SECOND = 25  # Qwen2.5-Omni: 100 mel frames a second, 2x conv stride, 2x pooling


def _wave(seconds: int, sr: int = 16000) -> np.ndarray:
    """Alternating 10-s tones, so the audio after 300 s differs from the audio before it."""
    return np.concatenate([tone(330.0 if i % 2 == 0 else 660.0, 10.0, sr) for i in range(seconds // 10)])


@pytest.fixture(scope="module")
def long_media(tmp_path_factory):
    d = tmp_path_factory.mktemp("long_media")
    wave = _wave(SECONDS)
    write_wav(d / "long.wav", wave)
    render_av(d / "long.mp4", np.zeros((SECONDS, 56, 56, 3), np.uint8), 1, wave, 16000)
    return d


def _sample(media: dict, block: tuple[float, float] = (350.0, 360.0)) -> dict:
    return {
        "id": "long",
        "messages": [
            {"role": "user", "content": [media, {"type": "text", "text": "Which tone?\nA. low\nB. high"}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Listen late."},
                {"type": "latent", "segment": 1, "start": block[0], "end": block[1]},
                {"type": "text", "text": "It is low. \\boxed{A}"}]},
        ],
        "answer": "A",
        "options": ["A. low", "B. high"],
    }


def _encode(model, sample: dict, base_dir, **media):
    enc = SampleEncoder.for_model(model, MediaSettings(max_pixels=56 * 56, **media))
    encoded = enc.encode(parse_sample(sample), base_dir)
    return encoded, collate([encoded], model.processor.tokenizer.pad_token_id)


def test_whisper_features_cover_the_whole_wave_and_match_the_extractor_within_one_chunk(model):
    fe = model.processor.feature_extractor
    assert fe.n_samples == 300 * 16000  # the chunk the extractor cuts at
    wave = _wave(SECONDS)
    feats = whisper_features(fe, wave)
    assert feats.shape[-1] == SECONDS * 100
    ref = fe([wave[: fe.n_samples]], sampling_rate=16000, return_attention_mask=True, padding="longest",
             return_tensors="pt")["input_features"][0]
    assert torch.equal(feats[:, : ref.shape[-1]], ref)  # the first 300 s are the extractor's own features
    short = wave[:123_456]
    ref = fe([short], sampling_rate=16000, return_attention_mask=True, padding="longest", return_tensors="pt")
    assert torch.equal(whisper_features(fe, short), ref["input_features"][0][:, : int(ref["attention_mask"].sum())])
    # a sliver past a chunk boundary (shorter than one STFT window) joins the chunk before it
    assert whisper_features(fe, wave[: fe.n_samples + 100]).shape[-1] == 30_000


def test_a_400_second_audio_file_reaches_the_audio_tower_whole(model, long_media):
    encoded, batch = _encode(model, _sample({"type": "audio", "audio": "long.wav"}), long_media)
    n_audio = int((batch["input_ids"] == model.config.audio_token_id).sum())
    assert n_audio == SECONDS * TOKENS_PER_SECOND
    assert encoded.meta["duration"] == pytest.approx(SECONDS) and encoded.windows == [(350.0, 360.0)]
    with torch.no_grad():
        _, _, audios = model.embed_prompt(batch)
    assert [a.shape[0] for a in audios] == [n_audio]  # the tower (2-s windows) takes it as it is


def test_a_400_second_video_keeps_its_audio_beside_its_whole_timeline(model, long_media):
    encoded, batch = _encode(model, _sample({"type": "video", "video": "long.mp4"}), long_media, fps=0.5)
    assert encoded.meta["audio_in_video"] and encoded.meta["duration"] == pytest.approx(SECONDS)
    ids = batch["input_ids"][0]
    n_audio = int((ids == model.config.audio_token_id).sum())
    assert n_audio == SECONDS * TOKENS_PER_SECOND
    # audio and video alternate in 2-second chunks to the end: only the last frames' chunks of audio (396-400 s)
    # follow the last video token (a cut audio would end at 300 s, long before the frames do)
    last_video = int((ids == model.config.video_token_id).nonzero().max())
    after = int((ids[last_video:] == model.config.audio_token_id).sum())
    assert 0 < after <= 2 * 2 * TOKENS_PER_SECOND


def test_max_audio_seconds_cuts_with_one_warning_and_is_a_recorded_setting(model, long_media):
    sample = _sample({"type": "audio", "audio": "long.wav"}, block=(10.0, 20.0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # Python's own filter: a warning shows once per message and place
        _, batch = _encode(model, sample, long_media, max_audio_seconds=60)
        _encode(model, sample, long_media, max_audio_seconds=60)  # a second long file: no second warning
    cut = [str(w.message) for w in caught if "max_audio_seconds" in str(w.message)]
    assert len(cut) == 1 and "max_audio_seconds=60 s is cut to its first 60 s" in cut[0]
    assert int((batch["input_ids"] == model.config.audio_token_id).sum()) == 60 * TOKENS_PER_SECOND
    assert MediaSettings().model_dump()["max_audio_seconds"] is None  # default: the whole track
    assert MediaSettings(max_audio_seconds=60).model_dump()["max_audio_seconds"] == 60
