"""The typed configuration of ``latentomni synth`` (one YAML file; see ``configs/synth/pipeline.yaml``).

Everything a run depends on is here and nowhere else: endpoints (several base URLs each, used
round-robin), the model and sampling settings of every LLM call of every stage, retry policy, and the
stage parameters of Sec. 3.3 (score threshold 13, adjacent-category ratio 3x, segment lengths).

API keys never enter the config: an endpoint names the *environment variable* that holds its key
(``api_key_env``) and the key is read only when the HTTP client is built. Relative paths are resolved
against the config file's folder, so a config means the same thing from any working directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "AssembleConfig",
    "BalanceConfig",
    "CaptionsConfig",
    "ConfigError",
    "EndpointConfig",
    "IngestConfig",
    "InputConfig",
    "LLMCallConfig",
    "PipelineConfig",
    "QAConfig",
    "RetryConfig",
    "SamplingConfig",
    "ScoreConfig",
    "SegmentConfig",
    "TrajectoryConfig",
    "load_config",
]


class ConfigError(ValueError):
    """The config file is unreadable or invalid; the message says which key and why."""


class _Strict(BaseModel):
    """A config section: unknown keys are errors. ``ordered`` lists the (low, high) field pairs of a range
    that the section must keep in order, checked after the fields themselves."""

    model_config = ConfigDict(extra="forbid")
    ordered: ClassVar[tuple[tuple[str, str], ...]] = ()

    @model_validator(mode="after")
    def _in_order(self) -> Self:
        for low, high in self.ordered:
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"{low} ({getattr(self, low)}) must be <= {high} ({getattr(self, high)})")
        return self


class SamplingConfig(_Strict):
    """Sampling settings sent with every request of one LLM call.

    ``seed`` is optional on purpose: a per-request seed crashed vLLM's CPU backend under high
    concurrency, so it is only sent when set. ``extra_body`` is passed through verbatim, e.g.
    ``{chat_template_kwargs: {enable_thinking: false}}`` to keep Qwen3 from emitting a think block.
    """

    temperature: float = Field(0.7, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(1024, ge=1)
    seed: int | None = None
    extra_body: dict[str, Any] = Field(default_factory=dict)


class EndpointConfig(_Strict):
    """One OpenAI-compatible service, reachable at one or more base URLs (used round-robin).

    ``response_format`` says how replies are constrained: ``json_schema`` sends each stage's reply
    model as a strict JSON schema (vLLM structured outputs), ``json_object`` asks only for JSON, and
    ``none`` sends nothing (e.g. a captioner without guided decoding). Every reply is validated by the
    pipeline itself whatever this says.
    """

    base_urls: list[str] = Field(min_length=1)
    api_key_env: str | None = None
    response_format: Literal["json_schema", "json_object", "none"] = "json_schema"
    max_concurrency: int = Field(64, ge=1)
    timeout_s: float = Field(600.0, gt=0)
    media_transport: Literal["data_url", "file_url"] = "data_url"  # for video parts; audio is always inline
    # httpx's connection pool scans every pooled connection on each request, so one pool serving 64
    # concurrent requests costs O(64) per request; several smaller pools per URL keep that flat.
    connections_per_client: int = Field(8, ge=1)

    @field_validator("base_urls")
    @classmethod
    def _urls(cls, v: list[str]) -> list[str]:
        for url in v:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"base URL {url!r} must start with http:// or https://")
        return [u.rstrip("/") for u in v]

    def api_key(self, name: str) -> str:
        """The key from the environment (never stored, never logged); vLLM without auth takes any."""
        if self.api_key_env is None:
            return "EMPTY"
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ConfigError(
                f"endpoint '{name}': environment variable {self.api_key_env} (api_key_env) is not set; "
                "export it or remove api_key_env for a server without authentication"
            )
        return key


class LLMCallConfig(_Strict):
    """Which endpoint and model one kind of request goes to, with its sampling settings."""

    endpoint: str
    model: str = Field(min_length=1)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)


class RetryConfig(_Strict):
    """Transport retries (429, 5xx, timeouts, connection errors) with exponential backoff and jitter,
    and repair turns for replies that do not validate."""

    max_attempts: int = Field(5, ge=1)
    base_delay_s: float = Field(1.0, ge=0)
    max_delay_s: float = Field(60.0, ge=0)
    jitter: float = Field(0.5, ge=0, le=1)
    invalid_reply_attempts: int = Field(2, ge=0)


class InputConfig(_Strict):
    """One caption file. ``format`` picks the adapter (see ``latentomni.synth.sources``)."""

    path: Path
    format: Literal["native", "asid", "avocado"] = "native"
    media_root: Path | None = None


class IngestConfig(_Strict):
    inputs: list[InputConfig] = Field(default_factory=list)
    min_duration_s: float = Field(1.0, ge=0)
    max_duration_s: float | None = Field(None, gt=0)


class QAConfig(_Strict):
    """Sec. 3.3 / App. A.2: open-ended and multiple-choice QA synthesis, ``per_format`` per caption."""

    llm: LLMCallConfig
    formats: list[Literal["open", "mcq"]] = Field(default_factory=lambda: ["open", "mcq"], min_length=1)
    per_format: int = Field(1, ge=1)
    concurrency: int = Field(64, ge=1)


class ScoreConfig(_Strict):
    """Sec. 3.3 / App. A.3: judge scores (three 1-5 scores), category, modality; keep total >= min_total."""

    llm: LLMCallConfig
    min_total: int = Field(13, ge=3, le=15)
    concurrency: int = Field(64, ge=1)


class BalanceConfig(_Strict):
    """Sorted by count, adjacent categories may differ by at most ``max_ratio`` (paper: 3x)."""

    max_ratio: float = Field(3.0, ge=1.0)
    seed: int = 0


class SegmentConfig(_Strict):
    """How each media file is cut: fixed-length windows or boundaries at caption event times."""

    ordered = (("min_length_s", "max_length_s"),)
    mode: Literal["fixed", "events"] = "fixed"
    length_s: float = Field(2.0, gt=0)
    min_length_s: float = Field(1.0, gt=0)
    max_length_s: float = Field(10.0, gt=0)
    max_segments: int = Field(16, ge=1)
    audio_rate: int = Field(16000, ge=8000)
    video_max_side: int | None = Field(None, ge=16)
    workers: int = Field(2, ge=1)


class CaptionsConfig(_Strict):
    """Sec. 3.3 / App. A.4-A.5: per-segment video-only and audio-only captions, their fusion, refinement
    against the full caption, and a hallucination check against the source caption."""

    video_llm: LLMCallConfig
    audio_llm: LLMCallConfig
    fusion_llm: LLMCallConfig
    refine_llm: LLMCallConfig
    filter_llm: LLMCallConfig
    max_unsupported_fraction: float = Field(0.5, ge=0, le=1)
    concurrency: int = Field(16, ge=1)


class TrajectoryConfig(_Strict):
    """Sec. 3.3 / App. A.6: interleaved reasoning with 1..max_citations ``[Segment n]``, then an audit."""

    ordered = (("min_citations", "max_citations"),)
    llm: LLMCallConfig
    audit_llm: LLMCallConfig
    min_citations: int = Field(1, ge=1)
    max_citations: int = Field(3, ge=1)
    banned_phrases: list[str] = Field(
        default_factory=lambda: ["caption", "description", "the text says", "provided info", "according to the"]
    )
    concurrency: int = Field(64, ge=1)


class AssembleConfig(_Strict):
    output: Path = Path("train.jsonl")
    media_paths: Literal["relative", "absolute"] = "relative"
    system_prompt: str | None = None


class StagesConfig(_Strict):
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    qa: QAConfig
    score: ScoreConfig
    balance: BalanceConfig = Field(default_factory=BalanceConfig)
    segment: SegmentConfig = Field(default_factory=SegmentConfig)
    captions: CaptionsConfig
    trajectory: TrajectoryConfig
    assemble: AssembleConfig = Field(default_factory=AssembleConfig)


class PipelineConfig(_Strict):
    run_dir: Path = Path("runs/synth")
    endpoints: dict[str, EndpointConfig] = Field(min_length=1)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    stages: StagesConfig

    @model_validator(mode="after")
    def _endpoints_exist(self) -> PipelineConfig:
        for where, call in self.llm_calls().items():
            if call.endpoint not in self.endpoints:
                known = ", ".join(sorted(self.endpoints))
                raise ValueError(f"stages.{where}.endpoint: '{call.endpoint}' is not defined (endpoints: {known})")
        return self

    def llm_calls(self) -> dict[str, LLMCallConfig]:
        """Every LLM call of the pipeline by its dotted config name (``qa.llm``, ``captions.video_llm``)."""
        s = self.stages
        return {
            "qa.llm": s.qa.llm,
            "score.llm": s.score.llm,
            "captions.video_llm": s.captions.video_llm,
            "captions.audio_llm": s.captions.audio_llm,
            "captions.fusion_llm": s.captions.fusion_llm,
            "captions.refine_llm": s.captions.refine_llm,
            "captions.filter_llm": s.captions.filter_llm,
            "trajectory.llm": s.trajectory.llm,
            "trajectory.audit_llm": s.trajectory.audit_llm,
        }

    def resolve_paths(self, base: Path) -> PipelineConfig:
        """Make every relative path absolute against ``base`` (the config file's folder)."""
        def fix(p: Path) -> Path:
            return p if p.is_absolute() else (base / p).resolve()

        self.run_dir = fix(self.run_dir)
        for inp in self.stages.ingest.inputs:
            inp.path = fix(inp.path)
            if inp.media_root is not None:
                inp.media_root = fix(inp.media_root)
        if not self.stages.assemble.output.is_absolute():
            self.stages.assemble.output = self.run_dir / self.stages.assemble.output
        return self


def _format_errors(e: ValidationError, source: str) -> str:
    lines = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "<top level>"
        got = f" (got {err['input']!r})" if "input" in err and not isinstance(err["input"], dict | list) else ""
        lines.append(f"  {loc}: {err['msg']}{got}")
    return f"{source}: invalid synth config:\n" + "\n".join(lines)


def parse_config(data: Any, *, base: Path | None = None, source: str = "<config>") -> PipelineConfig:
    """Validate a config mapping; relative paths resolve against ``base`` (default: the cwd)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    # top-level keys starting with "x-" only hold YAML anchors (shared sampling blocks); not settings
    data = {k: v for k, v in data.items() if not str(k).startswith("x-")}
    try:
        cfg = PipelineConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_errors(e, source)) from None
    return cfg.resolve_paths(base or Path.cwd())


def load_config(path: str | Path) -> PipelineConfig:
    """Read and validate a YAML config; errors name the file, the key path and the problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config ({e.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    return parse_config(data, base=path.resolve().parent, source=str(path))
