"""Training with the Hugging Face Trainer: distributed set-ups (DDP, DeepSpeed ZeRO-2/3, FSDP through an
accelerate config), mixed precision, gradient accumulation, checkpoint rotation and resume are the Trainer's;
this module adds the LatentOmni loss with per-term logging and checkpoints that load with
``LatentOmniModel.from_pretrained``."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from ..data.collate import SampleEncoder
from ..model.wrapper import CONFIG_NAME, LOSS_ITEMS, PARAMS_NAME, LatentOmniModel, plain_key, resolve_dtype
from .config import TrainConfig
from .data import Collator, LatentDataset

log = logging.getLogger(__name__)
LOSS_TERMS = ("loss_text", "loss_latent", "loss_sync")
ROUTER_TERM = "loss_router"  # logged too for a backbone with a MoE router (Qwen3-Omni)


class LatentOmniTrainer(Trainer):
    """Trainer whose loss is Eq. 7, logged term by term (``loss_text``, ``loss_latent``, ``loss_sync``,
    ``temperature``) at every logging step, and whose checkpoints are LatentOmni checkpoints.

    A step optimises the loss of its *global* batch, however it is split over micro-batches (gradient
    accumulation) and processes: each term of Eq. 7 is a sum over its items divided by the step's global
    item count (text tokens, latent states, blocks; :meth:`LatentOmniModel.loss_items`), counted once per
    step before its first micro-batch and summed over processes, as transformers' own
    ``average_tokens_across_devices`` does for a plain LM loss. The per-term logs are reduced over
    processes once per logging step, never read on the host per micro-step.
    """

    # compute_loss already divides by the step's global counts: the Trainer must not divide by the
    # accumulation steps again (and DeepSpeed must not scale w.r.t. them, which the Trainer then turns off).
    loss_is_scaled_for_ga = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Our forward takes **batch, which makes the Trainer count label tokens and pass them on; we count
        # the three item kinds ourselves in get_batch_samples.
        self.model_accepts_loss_kwargs = False
        self._step_items: torch.Tensor | None = None
        self._term_sums: torch.Tensor | None = None
        self._temperature: torch.Tensor | None = None
        self._steps_since_log = 0
        check_engine(self)

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        batch_samples, _ = super().get_batch_samples(epoch_iterator, num_batches, device)
        items = torch.zeros(len(LOSS_ITEMS), device=device)
        for batch in batch_samples:
            items += LatentOmniModel.loss_items(batch).to(device)
        if self.accelerator.num_processes > 1:
            items = self.accelerator.reduce(items, reduction="sum")
        self._step_items = items
        self._steps_since_log += 1  # called once per optimizer step
        return batch_samples, None

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        training = model.training and self._step_items is not None
        out = model(**inputs, loss_normalizers=self._step_items if training else None)
        loss = out.loss
        if training:
            # DDP, DeepSpeed and FSDP average gradients over processes; each process's loss is its share of
            # the global-batch loss, so scale it back up (Trainer.compute_loss does the same).
            loss = loss * self.accelerator.num_processes
            parts = [out.loss_text, out.loss_latent, out.loss_sync]
            if out.loss_router is not None:
                parts.append(out.loss_router.reshape(()))
            terms = torch.stack(parts).detach().float()
            self._term_sums = terms if self._term_sums is None else self._term_sums + terms
            self._temperature = out.temperature
        return (loss, out) if return_outputs else loss

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs and self._term_sums is not None:
            sums = self._term_sums
            if self.accelerator.num_processes > 1:
                sums = self.accelerator.reduce(sums, reduction="sum")
            names = LOSS_TERMS + ((ROUTER_TERM,) if len(sums) > len(LOSS_TERMS) else ())
            for name, value in zip(names, (sums / max(self._steps_since_log, 1)).tolist(), strict=True):
                logs[name] = round(value, 6)
            logs["temperature"] = round(float(self._temperature), 6)
            if self._unwrap().latent.slot_inputs == "scheduled":
                logs["slot_own_probability"] = round(float(self._unwrap().slot_own_probability), 6)
            self._term_sums = None
            self._steps_since_log = 0
        super().log(logs, *args, **kwargs)

    def _unwrap(self) -> LatentOmniModel:
        return self.accelerator.unwrap_model(self.model) if hasattr(self, "accelerator") else self.model

    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        # Under ZeRO-3 and FSDP the live parameters are shards: the Trainer gathers the full state dict on
        # the main process and passes it here. It calls this on every rank under DeepSpeed; the others hold
        # only their shards (empty placeholders), so only the main process writes the folder.
        if not self.args.should_save:
            return
        output_dir = output_dir or self.args.output_dir
        self._unwrap().save_pretrained(output_dir, state_dict=state_dict)
        torch.save(self.args, os.path.join(output_dir, "training_args.bin"))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        if self.is_fsdp_enabled:  # the Trainer wrote FSDP's own model files beside ours; it reads them back
            super()._load_from_checkpoint(resume_from_checkpoint, model)
            return
        load_weights(model or self._unwrap(), resume_from_checkpoint)


class TimeLimit(TrainerCallback):
    """Stop cleanly (the Trainer saves the final model) once ``max_minutes`` of wall time have passed."""

    def __init__(self, max_minutes: float):
        self.deadline = time.time() + 60 * max_minutes

    def on_step_end(self, args, state, control, **kwargs):
        if time.time() > self.deadline:
            log.warning("time limit reached at step %d; stopping", state.global_step)
            control.should_training_stop = True
            control.should_save = True
        return control


class SlotSchedule(TrainerCallback):
    """``slot_inputs: scheduled`` (scheduled sampling): before every optimizer step, set the probability that
    a block's slots hold its own rolled-out states (``LatentOmniModel.slot_own_probability``), ramped linearly
    from 0 at the first step to 1 after ``ramp`` of the run's steps. Read from the step count, so a resumed
    run continues the ramp where it stopped."""

    def __init__(self, ramp: float):
        self.ramp = ramp

    @staticmethod
    def probability(step: int, max_steps: int, ramp: float) -> float:
        return min(1.0, step / max(ramp * max_steps, 1.0))

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        p = self.probability(state.global_step, state.max_steps, self.ramp)
        for module in model.modules():  # the model may be wrapped (DDP, DeepSpeed, FSDP)
            if isinstance(module, LatentOmniModel):
                module.slot_own_probability = p
        return control


class DiagnosticsLog(TrainerCallback):
    """Every ``every`` optimizer steps and after the last, the latent diagnostics (:func:`..model.diagnostics.
    diagnose`: free-running fidelity, segment retrieval, latent value) of a fixed probe set -- the training
    set's first samples with latent blocks -- logged as ``latent/*`` beside the loss terms (TensorBoard,
    trainer_state.json). Teacher-forced only (no generation, so no trigger rate): a few extra no-grad passes
    per probe batch. Every process measures the same probe set, so sharded (ZeRO-3/FSDP) forwards line up."""

    def __init__(self, trainer: Trainer, dataset, every: int, n_samples: int, batch_size: int):
        self.trainer, self.every, self.batch_size = trainer, every, batch_size
        self.dataset, self.n_samples = dataset, n_samples
        self._probe: list | None = None

    def probe(self) -> list:
        if self._probe is None:
            picked = []
            for i in range(len(self.dataset)):
                enc = self.dataset[i]
                if enc.windows:
                    picked.append(enc)
                if len(picked) == self.n_samples:
                    break
            self._probe = picked
        return self._probe

    def measure(self) -> dict[str, float]:
        from ..data.collate import batch_to, collate
        from ..model.diagnostics import diagnose

        model = self.trainer._unwrap()
        pad = model.processor.tokenizer.pad_token_id
        items = self.probe()
        batches = (batch_to(collate(items[i:i + self.batch_size], pad), model.device)
                   for i in range(0, len(items), self.batch_size))
        return {k: round(v, 6) for k, v in diagnose(model, batches).items()}

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.every == 0 or state.global_step >= state.max_steps:
            self.trainer.log(self.measure())
        return control


def load_weights(model: LatentOmniModel, ckpt: str | Path) -> None:
    """Load a LatentOmni checkpoint's weights into an already built model (used on resume).

    The checkpoint is read by transformers' own loader (it owns the on-disk key names). With LoRA, the
    checkpoint holds merged weights: they become the base weights and the adapters restart at zero, which
    leaves the function the model computes unchanged.
    """
    ckpt = Path(ckpt)
    if not (ckpt / CONFIG_NAME).is_file():
        raise FileNotFoundError(f"{ckpt} is not a LatentOmni checkpoint (no {CONFIG_NAME})")
    saved = model.backbone.load_thinker(ckpt, dtype=model.thinker.dtype)
    source = saved.state_dict()
    target = model.thinker.state_dict()
    with torch.no_grad():
        for key, tensor in target.items():
            if "lora_" in key:
                if "lora_B" in key:
                    tensor.zero_()
                continue
            plain = plain_key(key)
            if plain not in source:
                raise RuntimeError(f"{ckpt}: no weight for {plain}")
            tensor.copy_(source[plain])
    if (ckpt / PARAMS_NAME).is_file():
        model.log_temperature.data.copy_(load_file(str(ckpt / PARAMS_NAME))["log_temperature"].reshape(1))


def build_model(cfg: TrainConfig) -> LatentOmniModel:
    """The model a config describes: from a LatentOmni checkpoint (its latent settings and variant replaced by
    the config's) or from a plain Qwen2.5-Omni or Qwen3-Omni thinker, then frozen per the recipe."""
    dtype = resolve_dtype(cfg.model.dtype)
    base = Path(cfg.model.base)
    if (base / CONFIG_NAME).is_file():
        model = LatentOmniModel.from_pretrained(base, dtype=dtype, attn_implementation=cfg.model.attn_implementation)
        model.latent = cfg.latent
        model.log_temperature.data.fill_(float(torch.tensor(cfg.latent.init_temperature).log()))
    else:
        model = LatentOmniModel.from_base(base, cfg.latent, dtype=dtype,
                                          attn_implementation=cfg.model.attn_implementation)
    model.variant = cfg.data.variant  # saved with every checkpoint of the run
    t = cfg.training
    inner = model.thinker.model
    for module, frozen in ((inner.visual, t.freeze_vision), (inner.audio_tower, t.freeze_audio),
                           (inner.language_model, t.freeze_llm)):
        for p in module.parameters():
            p.requires_grad_(not frozen)
    if t.lora.enabled:
        from .lora import add_lora
        add_lora(model, t.lora)
    return model


def make_encoder(model: LatentOmniModel, cfg: TrainConfig) -> SampleEncoder:
    return SampleEncoder.for_model(model, cfg.data.media, system_prompt=cfg.data.system_prompt,
                                   media_cache_size=cfg.data.media_cache_size)


def training_arguments(cfg: TrainConfig) -> TrainingArguments:
    """The Trainer's arguments: every TrainingArguments field of ``training`` as written (or the recipe's value),
    and the few the project decides itself: ``bf16: auto``, ``warmup_ratio`` (transformers 5 reads a
    ``warmup_steps`` below 1 as that ratio), all columns kept for the collator, gloo on a CPU-only launch."""
    t = cfg.training
    args = t.arguments()
    args.setdefault("warmup_steps", t.warmup_ratio)
    args.setdefault("ddp_backend", cpu_process_group_backend())
    bf16 = (torch.cuda.is_available() and torch.cuda.is_bf16_supported()) if t.bf16 == "auto" else t.bf16
    return TrainingArguments(output_dir=t.output_dir, bf16=bf16, remove_unused_columns=False, **args)


def check_engine(trainer: Trainer) -> None:
    """Refuse a run whose launcher asked for DeepSpeed or FSDP that accelerate did not switch on.

    accelerate quietly falls back to plain data parallelism in two cases: FSDP on a CPU process group
    (it enables FSDP only for accelerator process groups) and DeepSpeed with ``ACCELERATE_USE_CPU`` set.
    A sharded recipe that silently runs unsharded would run out of memory or mislead a benchmark.
    """
    import accelerate

    asked = [name for name, flag, on in (("DeepSpeed", "ACCELERATE_USE_DEEPSPEED", trainer.is_deepspeed_enabled),
                                         ("FSDP", "ACCELERATE_USE_FSDP", trainer.is_fsdp_enabled))
             if os.environ.get(flag, "").lower() in {"1", "true"} and not on]
    if asked:
        kind = trainer.accelerator.distributed_type
        hint = ("unset ACCELERATE_USE_CPU (DeepSpeed picks its CPU backend itself)" if asked[0] == "DeepSpeed"
                else "use configs/accelerate/ddp.yaml, zero2.yaml or zero3.yaml on a CPU")
        raise RuntimeError(f"the launch asks for {asked[0]} but accelerate {accelerate.__version__} set up {kind} "
                           f"instead (a {asked[0]} run would silently be unsharded); {hint}")


def cpu_process_group_backend() -> str | None:
    """``gloo`` for a multi-process launch on a machine without an accelerator, else None (the default).

    accelerate only builds a CPU process group when told the run is on the CPU, and then turns DeepSpeed off;
    naming the backend makes DeepSpeed (ZeRO-2/3) start its process group over gloo, so the paper's engines
    run, and are tested, on CPU-only machines too. GPU launches are unaffected.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return "gloo" if world > 1 and not torch.accelerator.is_available() else None


def train(cfg: TrainConfig, resume: str | bool | None = None, callbacks: list | None = None) -> dict:
    """Run one training job; returns the final metrics. ``resume``: a checkpoint path, or True for the
    newest checkpoint in ``output_dir``."""
    out = Path(cfg.training.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_config.json").write_text(json.dumps(cfg.model_dump(), indent=2))
    # The Trainer seeds only once it is built, after the model: without this the LoRA adapters' random A
    # matrices would differ from launch to launch (and a one-process run from a multi-process one).
    set_seed(cfg.training.seed)
    model = build_model(cfg)
    if cfg.training.gradient_checkpointing:
        model.thinker.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    dataset = LatentDataset(cfg.data.train_file, make_encoder(model, cfg), cfg.data.variant, cfg.data.fail_fast,
                            cfg.data.max_samples, cfg.data.cache_encoded, skipped_log=out / "skipped.jsonl",
                            media_root=cfg.data.media_root, allow_absolute_media=cfg.data.allow_absolute_media)
    trainer = LatentOmniTrainer(model=model, args=training_arguments(cfg), train_dataset=dataset,
                                data_collator=Collator(model.processor.tokenizer.pad_token_id),
                                callbacks=list(callbacks or []))
    if cfg.training.max_minutes is not None:
        trainer.add_callback(TimeLimit(cfg.training.max_minutes))
    if cfg.training.diagnostics_every:
        trainer.add_callback(DiagnosticsLog(trainer, dataset, cfg.training.diagnostics_every,
                                            cfg.training.diagnostics_samples, cfg.training.per_device_train_batch_size))
    if cfg.latent.slot_inputs == "scheduled":
        trainer.add_callback(SlotSchedule(cfg.latent.slot_schedule_ramp))
    checkpoint = None
    if resume is True:
        checkpoint = get_last_checkpoint(str(out))
        if checkpoint is None:
            log.warning("no checkpoint in %s to resume from; starting fresh", out)
    elif resume:
        checkpoint = str(resume)
    resumed_at = None
    if checkpoint is not None:
        resumed_at = json.loads((Path(checkpoint) / "trainer_state.json").read_text())["global_step"]
        log.info("resuming from %s (step %d)", checkpoint, resumed_at)
    result = trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model(str(out))
    trainer.save_state()
    metrics = dict(result.metrics) | {"global_step": trainer.state.global_step, "skipped": dict(dataset.skipped),
                                      "train_samples": len(dataset), "resumed_from": checkpoint,
                                      "resumed_at_step": resumed_at}
    (out / "train_results.json").write_text(json.dumps(metrics, indent=2))
    return metrics
