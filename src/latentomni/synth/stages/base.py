"""What every stage shares: units of work, the resumable worker loop, the summary.

A stage turns the previous stage's output records into *units* (one unit per output-or-drop, each with
a stable id) and processes each unit into a record or a drop. :func:`run_item_stage` runs the units not
yet done with bounded concurrency, appends every result the moment it is known, and writes the
stage summary; ``in == out + dropped + pending`` is checked before the summary is written.

Stages that are pure functions of their whole input (ingest, balance, assemble) instead recompute
everything and replace their outputs atomically, which is just as idempotent.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from tqdm import tqdm

from latentomni.synth.cache import ResponseCache
from latentomni.synth.client import Call, ItemDropped, LLMClient, SynthError
from latentomni.synth.config import LLMCallConfig, PipelineConfig
from latentomni.synth.records import Item
from latentomni.synth.store import Drop, StageStore, StageSummary

__all__ = ["ItemStage", "PerItemStage", "PureStage", "StageContext", "Unit", "check_invariant", "run_item_stage"]

Messages = list[dict[str, Any]]


@dataclass
class Unit:
    """One piece of work with the id its output or drop record will carry."""

    id: str
    payload: Any


@dataclass
class StageContext:
    """What a stage run may use: the config, the run folder, the shared response cache, the client."""

    cfg: PipelineConfig
    cache: ResponseCache | None = None
    client: LLMClient | None = None
    show_progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        return self.cfg.run_dir

    def call(self, dotted: str) -> Call:
        """The resolved LLM call named ``stage.key`` in the config (e.g. ``captions.video_llm``)."""
        config: LLMCallConfig = self.cfg.llm_calls()[dotted]
        return Call(dotted, config)

    def transport(self, call: Call) -> str:
        return self.cfg.endpoints[call.config.endpoint].media_transport


def check_invariant(summary: StageSummary) -> None:
    """``in == out + dropped + pending``: every input is accounted for exactly once."""
    if summary.inputs != summary.outputs + summary.dropped_total + summary.pending:
        raise AssertionError(
            f"stage {summary.stage}: in ({summary.inputs}) != out ({summary.outputs}) + dropped "
            f"({summary.dropped_total}) + pending ({summary.pending})"
        )


class _Stage(ABC):
    name: ClassVar[str]
    input_stage: ClassVar[str | None]

    def read_inputs(self, ctx: StageContext) -> list[dict[str, Any]]:
        """The previous stage's output records; a clear error if that stage has not run."""
        assert self.input_stage is not None
        store = StageStore(ctx.run_dir, self.input_stage)
        if not store.out_path.exists():
            raise SynthError(
                f"stage '{self.name}' reads the output of '{self.input_stage}' ({store.out_path}), which does not "
                f"exist yet; run `latentomni synth {self.input_stage}` first"
            )
        return store.outputs()

    def preview(self, ctx: StageContext, inputs: list[dict[str, Any]]) -> list[tuple[str, Messages]]:
        """The first rendered prompt(s) of the stage, for ``--dry-run``; none for stages without LLM."""
        return []


class ItemStage(_Stage):
    """A stage whose units are processed independently (possibly with LLM calls)."""

    uses_llm: ClassVar[bool] = True

    @abstractmethod
    def units(self, ctx: StageContext, inputs: list[dict[str, Any]]) -> list[Unit]: ...

    @abstractmethod
    async def process(self, unit: Unit, ctx: StageContext) -> dict[str, Any]:
        """Return the output record (a JSON-able dict with ``id``) or raise :class:`ItemDropped`."""

    def concurrency(self, ctx: StageContext) -> int:
        """How many units are in flight at once: the ``concurrency`` of the stage's own config section
        (``stages.<name>``); a stage whose section has none says how it is bounded instead."""
        return getattr(ctx.cfg.stages, self.name).concurrency


class PerItemStage(ItemStage):
    """A stage that reads QA items (every item stage after ``qa``): one unit per item, the item its payload."""

    def units(self, ctx: StageContext, inputs: list[dict[str, Any]]) -> list[Unit]:
        return [Unit(r["id"], Item.model_validate(r)) for r in inputs]


class PureStage(_Stage):
    """A stage computed as a whole from its whole input (cheap, deterministic, no LLM)."""

    @abstractmethod
    def run(self, ctx: StageContext) -> StageSummary: ...


async def run_item_stage(stage: ItemStage, ctx: StageContext, *, retry_failed: Sequence[str] = ()) -> StageSummary:
    """Process every unit of ``stage`` that is not done yet; resumable and idempotent."""
    store = StageStore(ctx.run_dir, stage.name)
    inputs = stage.read_inputs(ctx) if stage.input_stage else []
    units = stage.units(ctx, inputs)
    ids = [u.id for u in units]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise SynthError(f"stage '{stage.name}': unit id {dup!r} occurs twice in its input")
    started = time.perf_counter()
    client = ctx.client
    if stage.uses_llm and client is None:
        raise ValueError(f"stage '{stage.name}' makes LLM calls: ctx.client must be set")
    sent_before = client.stats.requests_sent if client else 0
    with store.open():
        if retry_failed:
            store.forget_drops(set(retry_failed))
        done = store.done_ids()
        pending = [u for u in units if u.id not in done]
        bar = tqdm(total=len(units), initial=len(units) - len(pending), desc=stage.name, unit="item",
                   disable=None if ctx.show_progress else True, leave=False)
        queue = iter(pending)

        async def worker() -> None:
            for unit in queue:
                try:
                    record = await stage.process(unit, ctx)
                except ItemDropped as e:
                    store.append_drop(Drop(unit.id, e.reason, e.detail))
                else:
                    store.append(record)
                bar.update()

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(stage.concurrency(ctx), max(1, len(pending)))):
                    group.create_task(worker())
        except BaseExceptionGroup as group_error:  # the first failure is the cause; the rest are cancellations
            raise group_error.exceptions[0] from None
        finally:
            bar.close()
            elapsed = time.perf_counter() - started
            sent = client.stats.requests_sent - sent_before if client else 0
            summary = store.summarize(ids, traffic=client.stats.as_dict() if client else {},
                                      elapsed_s=round(elapsed, 3),
                                      requests_per_s=round(sent / elapsed, 2) if elapsed > 0 else 0.0)
            check_invariant(summary)
            store.write_summary(summary)
    return summary
