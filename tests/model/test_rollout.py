"""slot_inputs rollout: the states training puts at the slots are the ones decoding feeds back."""

import pytest
import torch

from latentomni.model.generate import GenerationConfig, generate
from lo_testing import encode_batch, make_sample


def _samples():
    # Two blocks in the first sample, one in the second; different clips, so the prompts (and with them the
    # right padding of the training batch and the left padding of the prompt batch) differ in length.
    return [make_sample("a", blocks=((0.0, 1.5), (1.5, 3.0)), tail="It is blue because the tone is high."),
            make_sample("b", video="clip3.mp4", blocks=((1.0, 2.5),))]


def _teacher_forcing(model, train: dict, prompts: dict):
    """A logits processor that makes ``generate`` emit each sample's teacher reply (its training sequence
    after the prompt); the loop inserts the latent slots and the block end itself."""
    lengths = train["attention_mask"].sum(1).tolist()
    starts = prompts["attention_mask"].sum(1).tolist()
    replies = [train["input_ids"][i, p:n].tolist() for i, (p, n) in enumerate(zip(starts, lengths, strict=True))]

    def process(step, logits):
        for i, reply in enumerate(replies):
            if step < len(reply):
                logits[i, reply[step]] = 1e4
        return logits
    return process, replies


@pytest.mark.parametrize("ospe", [True, False])
@pytest.mark.parametrize("flow", ["causal", "through_latents"])
def test_rollout_states_equal_generate_latents_for_the_teacher_text(model, clip_dir, flow, ospe):
    model.latent.attention_flow = flow
    model.latent.ospe = ospe
    train = encode_batch(model, _samples(), clip_dir)
    prompts = encode_batch(model, _samples(), clip_dir, for_generation=True)
    assert train["attention_mask"][1].eq(0).any() and prompts["attention_mask"][1].eq(0).any()
    assert train["attention_mask"][1, 0] == 1 and prompts["attention_mask"][1, 0] == 0, "right vs left padding"
    process, replies = _teacher_forcing(model, train, prompts)
    out = generate(model, prompts, GenerationConfig(max_new_tokens=max(map(len, replies)) + 1, output_latents=True),
                   logits_processor=process)
    assert out.num_blocks == [2, 1]
    for row, reply in zip(out.sequences.tolist(), replies, strict=True):
        assert row[: len(reply)] == reply, "generate followed the teacher reply"

    states = model.rollout_slot_states(train)
    k = model.latent.num_latents
    assert states.shape == (3 * k, model.config.text_config.hidden_size)
    assert int((train["slot_index"] >= 0).sum()) == 3 * k
    decoded = torch.cat(out.latents)
    print(f"max |rollout - generate| = {(states - decoded).abs().max():.2e}")
    assert (states - decoded).abs().max() < 1e-5
    # and they are not the anchors the single teacher-forced pass would put there
    with torch.no_grad():
        _, anchors, _ = model.teacher_forced_hidden(train)
    assert not torch.allclose(states, anchors.reshape(-1, anchors.shape[-1]), atol=1e-2)


def test_rollout_of_a_batch_equals_each_sample_alone(model, clip_dir):
    """Batching (padding, a sample without a second block feeding padding) changes no sample's states."""
    model.latent.attention_flow = "through_latents"
    samples = _samples()
    both = model.rollout_slot_states(encode_batch(model, samples, clip_dir))
    alone = torch.cat([model.rollout_slot_states(encode_batch(model, [s], clip_dir)) for s in samples])
    assert (both - alone).abs().max() < 1e-5


def test_rollout_without_blocks_is_empty(model, clip_dir):
    batch = encode_batch(model, [make_sample("a")], clip_dir, variant="vanilla")
    assert model.rollout_slot_states(batch).shape == (0, model.config.text_config.hidden_size)


def test_rollout_padded_to_more_blocks_gives_the_same_states(model, clip_dir):
    """A process of a sharded run rolls out as many blocks as the busiest process (padding past its own):
    its states do not change, and a batch without blocks still runs and returns none."""
    from latentomni.model.generate import rollout

    batch = encode_batch(model, _samples(), clip_dir)
    with torch.no_grad():
        embeds, _, _ = model.embed_prompt(batch)
        positions = model.rope_positions(batch)
        own = rollout(model, batch, embeds, positions)
        padded = rollout(model, batch, embeds, positions, n_blocks=3)
        plain = encode_batch(model, [make_sample("a")], clip_dir, variant="vanilla")
        embeds, _, _ = model.embed_prompt(plain)
        none = rollout(model, plain, embeds, model.rope_positions(plain), n_blocks=2)
    assert torch.equal(own, padded)
    assert none.shape == (0, own.shape[1])
