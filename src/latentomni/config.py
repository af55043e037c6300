"""Typed configuration. :class:`LatentConfig` is the single source of truth for every number of the latent
method (K, the visual/audio split, loss weights, OSPE, attention flow): anchors, slot insertion, OSPE
positions, losses and decoding all read it, so they cannot disagree.

Invalid values fail at construction with a message that says which field and why, so that ``Kv + Ka != K``
is an error at start-up rather than a shape mismatch an hour into a run.

Every config reader (training, eval, prediction settings, the sweep) reports a bad file in one line naming
the file, the line and the field: :func:`yaml_error_line` and :func:`validation_error_line` live here, at the
bottom of the layers, so that none of them has to reach up into the command module for it.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

LatentModalities = Literal["av", "visual", "audio"]
AttentionFlow = Literal["causal", "through_latents"]
# What the latent slots hold in the training pass (see LatentConfig.slot_inputs).
SlotInputs = Literal["anchors", "rollout", "scheduled"]
# The latent loss (Eq. 5 and alternatives) and L_sync's negatives; see model/losses.py for what each means.
LatentLossKind = Literal["mse_sum", "mse_mean", "cosine", "cosine_norm", "contrastive"]
CenterAnchors = Literal["off", "batch", "clip"]
SyncNegatives = Literal["window", "batch"]


class LatentConfig(BaseModel):
    """Hyper-parameters of LatentOmni (paper Sec. 3.1, 3.2, 3.4 and App. B).

    Attributes:
        latent_mode: off turns the model into plain SFT (no latent blocks are inserted or decoded). A training
            config does not set it: it follows ``data.variant`` (on for ``latent`` only).
        num_latents: K, latent states per block (paper default 40).
        num_visual: Kv, the first Kv states of a block are visual latents (32).
        num_audio: Ka, the last Ka states are audio latents (8).
        modalities: which anchor families exist; ``visual`` requires Ka=0 and ``audio`` Kv=0 (Table 4 ablations).
        lambda_latent: λ1 of Eq. 7 (0.005 in App. B).
        lambda_sync: λ2 of Eq. 7 (1.0 in App. B).
        lambda_router: weight of a mixture-of-experts backbone's router load-balancing loss (Qwen3-Omni), added to
            Eq. 7 and logged as ``loss_router``; 0.001 is the released Qwen3-Omni's ``router_aux_loss_coef``. A
            dense backbone (Qwen2.5-Omni) has no router: the field is then unused.
        init_temperature: initial τ of the learnable InfoNCE temperature (Eq. 4).
        sync_detach: stop L_sync's gradient at the latent states (only τ learns); for ablations.
        ospe: Omni-Sync Position Embedding on latent slots; off gives sequential positions.
        attention_flow: ``through_latents`` lets text after the first trigger reach media only via latents.
        slot_inputs: what the latent slots hold in the training pass. ``anchors`` (Sec. 3.4): the cited
            window's anchors. ``rollout``: the model's own states, generated without gradient exactly as
            decoding generates them (so training sees what inference feeds back); the anchors stay the
            targets of L_latent. ``scheduled``: each block takes its own states with a probability ramped
            from 0 to 1 over training (scheduled sampling), else its anchors.
        slot_schedule_ramp: ``scheduled`` only: the fraction of the training steps over which that
            probability rises linearly from 0 to 1 (it stays 1 afterwards).
        latent_loss: ``mse_sum`` is Eq. 5 literally; ``mse_mean`` averages over the hidden dimension (official
            code); ``cosine`` 1 - cos; ``cosine_norm`` adds a norm-matching term; ``contrastive`` is InfoNCE
            against the same slot's anchors of the clip's other segments and of the batch's other clips.
        contrastive_temperature: the temperature of the ``contrastive`` latent loss (cosine logits).
        center_anchors: ``contrastive`` only: subtract the slot's mean anchor over the batch or the clip.
        sync_negatives: L_sync's negatives: ``window`` (Eq. 4: the block's other time slices) or ``batch``
            (also every slice of the batch's other blocks and clips).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    latent_mode: bool = True
    num_latents: int = Field(default=40, ge=0)
    num_visual: int = Field(default=32, ge=0)
    num_audio: int = Field(default=8, ge=0)
    modalities: LatentModalities = "av"
    lambda_latent: float = Field(default=0.005, ge=0)
    lambda_sync: float = Field(default=1.0, ge=0)
    lambda_router: float = Field(default=0.001, ge=0)
    init_temperature: float = Field(default=0.07, gt=0, le=10)
    sync_detach: bool = False
    ospe: bool = True
    attention_flow: AttentionFlow = "causal"
    slot_inputs: SlotInputs = "anchors"
    slot_schedule_ramp: float = Field(default=1.0, gt=0, le=1)
    latent_loss: LatentLossKind = "mse_sum"
    contrastive_temperature: float = Field(default=0.1, gt=0)
    center_anchors: CenterAnchors = "off"
    sync_negatives: SyncNegatives = "window"

    @model_validator(mode="after")
    def _check(self) -> LatentConfig:
        k, kv, ka = self.num_latents, self.num_visual, self.num_audio
        if self.slot_schedule_ramp != 1.0 and self.slot_inputs != "scheduled":
            raise ValueError(f"slot_schedule_ramp={self.slot_schedule_ramp} applies to slot_inputs 'scheduled' only, "
                             f"got slot_inputs={self.slot_inputs!r}")
        if not self.latent_mode:
            if self.slot_inputs != "anchors":
                raise ValueError(f"slot_inputs={self.slot_inputs!r} needs latent_mode: true (without latent blocks "
                                 "there are no slots to roll out); use slot_inputs: anchors")
            return self
        if k == 0:
            raise ValueError("num_latents (K) must be > 0 when latent_mode is on; set latent_mode: false for SFT")
        if kv + ka != k:
            raise ValueError(
                f"num_visual + num_audio must equal num_latents: Kv={kv} + Ka={ka} = {kv + ka} != K={k}"
            )
        if self.modalities == "visual" and ka != 0:
            raise ValueError(f"modalities='visual' (no audio latents) needs num_audio=0, got {ka}")
        if self.modalities == "audio" and kv != 0:
            raise ValueError(f"modalities='audio' (no visual latents) needs num_visual=0, got {kv}")
        if self.modalities == "av" and (kv == 0 or ka == 0):
            raise ValueError(f"modalities='av' needs both num_visual and num_audio > 0, got Kv={kv}, Ka={ka}")
        if self.center_anchors != "off" and self.latent_loss != "contrastive":
            raise ValueError(f"center_anchors={self.center_anchors!r} applies to latent_loss 'contrastive' only, "
                             f"got latent_loss={self.latent_loss!r}; set center_anchors: off")
        if self.lambda_sync > 0 and self.modalities != "av":
            raise ValueError(
                "lambda_sync > 0 needs both visual and audio latents (L_sync pairs them); "
                f"set lambda_sync: 0 for modalities='{self.modalities}'"
            )
        return self


# -- one-line config errors -------------------------------------------------------------------------
def _node_path(node: Any, index: int, path: tuple[str, ...] = ()) -> tuple[str, ...] | None:
    """The key path of the YAML node that starts at character ``index`` of the document."""
    import yaml

    if node.start_mark.index == index and path:
        return path
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = str(key.value) if isinstance(key, yaml.ScalarNode) else "?"
            found = _node_path(value, index, (*path, name))
            if found is not None:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found = _node_path(item, index, (*path, str(i)))
            if found is not None:
                return found
    return None


def yaml_error_line(path: str | Path, text: str, error: Exception, *, with_line: bool = True) -> str:
    """``FILE:LINE: FIELD: problem`` for a YAML error in ``text`` (read from ``path``). A tag (``!!python/...``,
    ``!include``) is refused by the safe loader; the message says so, and names the field it was on."""
    import yaml

    mark = getattr(error, "problem_mark", None)
    where = f"{path}:{mark.line + 1}" if mark is not None and with_line else str(path)
    problem = str(getattr(error, "problem", None) or error).strip()
    if isinstance(error, yaml.constructor.ConstructorError) and "constructor for the tag" in problem:
        tag = problem.rsplit("tag ", 1)[-1].replace("tag:yaml.org,2002:", "!!")
        problem = f"YAML tag {tag} is not allowed (configs are plain YAML: no tags)"
        field = None
        if mark is not None:
            try:
                field = _node_path(yaml.compose(text, Loader=yaml.SafeLoader), mark.index)
            except yaml.YAMLError:
                field = None
        if field:
            return f"{where}: {'.'.join(field)}: {problem}"
        return f"{where}: {problem}"
    return f"{where}: not valid YAML ({problem})"


def _fields_at(model: Any, loc: Sequence[Any]) -> list[str]:
    """Field names of the pydantic model reached by following ``loc`` from ``model`` (for suggestions)."""
    from pydantic import BaseModel

    for key in loc:
        field = getattr(model, "model_fields", {}).get(key)
        if field is None:
            return []
        annotation = field.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return []
    known = getattr(model, "known_fields", None)  # a section that passes other keys through names them too
    return list(known()) if callable(known) else list(getattr(model, "model_fields", {}))


def validation_error_line(source: str, error: Any, model: Any = None) -> str:
    """One line for a pydantic ``ValidationError``: ``SOURCE: FIELD: problem``, the first error in full and
    how many more (with their fields). An unknown field gets the closest known name as a suggestion."""
    errors = error.errors()
    parts = []
    for err in errors[:1]:
        loc = list(err["loc"])
        field = ".".join(str(x) for x in loc) or "<top level>"
        if err["type"] == "extra_forbidden":
            known = _fields_at(model, loc[:-1]) if model is not None else []
            close = difflib.get_close_matches(str(loc[-1]), known, n=1)
            hint = f" (did you mean {'.'.join([*map(str, loc[:-1]), close[0]])}?)" if close else ""
            parts.append(f"{field}: unknown field{hint}")
        else:
            got = err.get("input")
            shown = f" (got {got!r})" if "input" in err and not isinstance(got, dict | list) else ""
            msg = err["msg"].removeprefix("Value error, ")
            parts.append(f"{field}: {msg}{shown}" if loc else f"{msg}")
    more = errors[1:]
    if more:
        fields = ", ".join(".".join(str(x) for x in e["loc"]) or "<top level>" for e in more[:3])
        parts.append(f"and {len(more)} more ({fields}{', ...' if len(more) > 3 else ''})")
    return f"{source}: " + "; ".join(parts)
