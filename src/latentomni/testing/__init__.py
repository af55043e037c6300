"""Test machinery, named as such: shipped in the package because tests, benchmarks and the demo's base recipe
use it, but no part of the method.

Module map::

    tiny.py         a tiny random Qwen2.5-Omni thinker with a locally trained tokenizer (tests; the committed
                    demo base is built from it by ``latentomni pretrain-base``)
    chat_server.py  a scripted OpenAI-compatible chat server for the synth tests and benchmarks
    vllm_server.py  a real vLLM server with a tiny taught model, for ``make test-vllm`` and the synth benchmark
"""
