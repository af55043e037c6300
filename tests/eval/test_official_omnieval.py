"""The OmniEval wrapper (LVOmniBench's official harness) on the tiny checkpoint, loaded the way OmniEval loads it."""

import importlib.util

import pytest

import latentomni.eval.omnieval as omnieval
from latentomni.data.answers import parse_choice
from latentomni.data.questions import ANSWER_INSTRUCTION
from latentomni.eval.omnieval import split_prompt

OPTIONS = ["A. red", "B. blue", "C. green", "D. yellow"]


def omnieval_prompt(question: str, options: list[str]) -> str:
    """A prompt in the shape OmniEval's prompt builder gives it: question, options, then its instruction."""
    return (f"Question: {question}\nOptions:\n" + "\n".join(options) + "\n\nSelect the best answer from the "
            "options above. Directly provide the letter representing your choice and nothing else.")


def _load_like_omnieval():
    """OmniEval imports the wrapper from its file path under the name user_wrapper_module."""
    spec = importlib.util.spec_from_file_location("user_wrapper_module", omnieval.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.LatentOmniWrapper


@pytest.fixture(scope="module")
def ckpt(tiny_base_dir, tmp_path_factory):
    from latentomni.model.wrapper import LatentOmniModel

    out = tmp_path_factory.mktemp("tiny_ckpt")
    LatentOmniModel.from_base(tiny_base_dir).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def wrapper(ckpt):
    cls = _load_like_omnieval()
    cls.PREDICTOR_SETTINGS = {"max_new_tokens": 6, "max_pixels": 56 * 56, "fps": 2.0}
    return cls(model_path=str(ckpt), device_ids=[])


def test_split_prompt_reads_omnieval_prompts():
    assert split_prompt(omnieval_prompt("Which colour\nis first?", ["A.red", "B.blue"])) == (
        "Which colour\nis first?", ["A. red", "B. blue"])
    assert split_prompt("What is happening in this video?") is None
    assert split_prompt("Question: Q?\nOptions:\nonly one\n\nSelect.") is None


def test_wrapper_answers_on_the_tiny_model(wrapper, clip_dir):
    assert wrapper.primary_device == "cpu" and wrapper.predictor.settings()["decoding"]["max_new_tokens"] == 6
    asked = []
    predict = wrapper.predictor.predict

    def spy(items):
        asked.extend(items)
        return predict(items)

    wrapper.predictor.predict = spy
    try:
        letter = wrapper.generate(str(clip_dir / "clip4.mp4"), omnieval_prompt("Which colour first?", OPTIONS), True)
        first_reply = wrapper.last_reply
        silent = wrapper.generate(str(clip_dir / "silent.mp4"), omnieval_prompt("Which colour?", OPTIONS), False)
    finally:
        wrapper.predictor.predict = predict
    assert letter in {"", "A", "B", "C", "D"} and isinstance(first_reply, str)
    assert letter == (parse_choice(first_reply, OPTIONS).letter or "")
    first, second = asked
    assert first.question == "Which colour first?" and first.options == OPTIONS and first.use_audio
    assert not second.use_audio and second.video == clip_dir / "silent.mp4"
    assert silent == (parse_choice(wrapper.last_reply, OPTIONS).letter or "")


def test_wrapper_asks_in_the_project_form_and_returns_the_parsed_letter(wrapper, clip_dir, monkeypatch):
    prompts = []

    def reply(items):
        from latentomni.data.questions import render_question

        prompts.append(render_question(items[0]))
        return [{"reply": "A blue square is on screen then. \\boxed{B}"}]

    monkeypatch.setattr(wrapper.predictor, "predict", reply)
    assert wrapper.generate(str(clip_dir / "clip4.mp4"), omnieval_prompt("Which colour?", OPTIONS), True) == "B"
    assert prompts[0].splitlines()[-1] == ANSWER_INSTRUCTION and "Directly provide" not in prompts[0]
    assert wrapper.last_reply.endswith("\\boxed{B}")  # the raw reply is kept, not handed to OmniEval's extractor

    monkeypatch.setattr(wrapper.predictor, "predict", lambda items: [{"reply": "I cannot tell."}])
    assert wrapper.generate(str(clip_dir / "clip4.mp4"), omnieval_prompt("Which colour?", OPTIONS), True) == ""


def test_wrapper_raises_on_media_errors_and_answers_free_prompts(wrapper, clip_dir):
    with pytest.raises(RuntimeError, match=r"corrupt\.mp4"):
        wrapper.generate(str(clip_dir / "corrupt.mp4"), omnieval_prompt("Which colour?", OPTIONS), True)
    reply = wrapper.generate(str(clip_dir / "clip3.mp4"), "What is happening in this video?", True)
    assert isinstance(reply, str) and reply == wrapper.last_reply
