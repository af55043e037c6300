"""The benchmark registry: one module per benchmark, listed here in the order of the paper's tables.

Adding a benchmark is adding a module that defines ``BENCHMARK`` and one line below.
"""

from __future__ import annotations

from latentomni.eval.benchmarks import daily_omni, lvomnibench, omnivideobench, videomme, world, worldsense
from latentomni.eval.benchmarks.base import Benchmark, Breakdown

BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        daily_omni.BENCHMARK,
        worldsense.BENCHMARK,
        omnivideobench.BENCHMARK,
        lvomnibench.BENCHMARK,
        videomme.BENCHMARK,
        world.BENCHMARK,  # the synthetic world of `make demo`: not a paper benchmark, last
    )
}


def get_benchmark(name: str | Benchmark) -> Benchmark:
    """The benchmark called ``name`` (registry name, title or alias; case and ``-``/``_`` ignored)."""
    if isinstance(name, Benchmark):
        return name
    key = _key(name)
    for bench in BENCHMARKS.values():
        if key in {_key(bench.name), _key(bench.title), *map(_key, bench.aliases)}:
            return bench
    raise KeyError(f"unknown benchmark {name!r}; choose one of {', '.join(BENCHMARKS)}")


def _key(name: str) -> str:
    return name.casefold().replace("-", "").replace("_", "").replace(" ", "")


__all__ = ["BENCHMARKS", "Benchmark", "Breakdown", "get_benchmark"]
