"""Fine-tune TD2 for Hangul: `accelerate launch -m training.train --config cfg.json [--flag value ...]`.

One code path for 1 CPU, 1 GPU, or several processes under DDP (`accelerate launch --num_processes N`; tested on
CPU over gloo with 2 processes). Full fine-tune of UNet + text encoder (TD2's recipe), or LoRA on the UNet's
attention projections (peft) plus only the new Hangul rows of the token embedding. EMA, mixed precision, gradient
accumulation and checkpointing; atomic checkpoints every N steps with rotation (training/checkpoint.py), and
`--resume-from-checkpoint latest` that restores model, EMA, optimizer, LR scheduler, RNG and data position
exactly (an interrupted run ends with the same weights as an uninterrupted one). Validation covers (with an OCR
score when kordiff.ocr is available) and losses go to TensorBoard. The result is a KorDiffPipeline directory
(`output_dir`) that `app.py --model DIR` and `kordiff.load_pipeline(DIR)` load.

The steps are functions a study script can reuse: `build_models`, `build_data` + `batch_stream`,
`build_optimizer`, `diffusion_loss`, `train_loop`, `save_checkpoint`/`load_checkpoint`, `save_final`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from kordiff.config import add_dataclass_args
from kordiff.layout import Box, Layout
from kordiff.tokens import book_caption

from . import checkpoint as ckpt
from . import dataset as ds
from .extend import INITS, KO_CLIP, mask_old_rows, prepare_text_encoder

logger = logging.getLogger("training.train")  # also under `python -m`, where __name__ is __main__

LORA_TARGETS = ("to_k", "to_q", "to_v", "to_out.0")
RUN_INFO = "kordiff_training.json"  # config + metrics next to the saved pipeline (read by training.publish)
LR_SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial")


def _f(default, help: str, choices=None):
    """A config field with its help text (and choices) for the CLI."""
    return field(default=default, metadata={"help": help} | ({"choices": list(choices)} if choices else {}))


@dataclass(frozen=True)
class TrainConfig:
    """Training settings; names follow diffusers' train_text_to_image.py where one exists."""

    pretrained_model: str = _f("td2", "'td2' (TD2 UNet/text encoder + SD1.5), a saved kordiff pipeline dir or Hub id")
    train_data_dir: tuple[str, ...] = _f((), "MARIO-style data roots (training.prepare_aihub / training.synth output)")
    output_dir: str = _f("kordiff-finetuned", "where checkpoints, logs and the final pipeline go")
    cache_dir: str | None = _f(None, "prompt-id/latent cache (default: OUTPUT_DIR/cache)")
    scheme: str = _f("syllable", "Hangul tokens: syllable (11,172 tokens) or jamo (67)", ("syllable", "jamo"))
    init: str = _f("mean", "fresh Hangul rows: the mean of TD2's rows or the Korean CLIP's embedding", INITS)
    ko_clip_model: str = _f(KO_CLIP, "Korean CLIP for --init ko-clip")
    cache_latents: bool = _f(True, "encode every image with the VAE once, not every step")
    max_train_samples: int | None = _f(None, "use only the first N samples")
    train_batch_size: int = _f(4, "batch size per process")
    gradient_accumulation_steps: int = _f(1, "micro-batches per optimizer step")
    learning_rate: float = _f(1e-5, "UNet learning rate (TD2: 1e-5 for UNet and text encoder)")
    text_encoder_lr: float | None = _f(None, "text-encoder learning rate (default: --learning-rate; LoRA: 1e-4)")
    lr_scheduler: str = _f("constant", "diffusers LR schedule", LR_SCHEDULERS)
    lr_warmup_steps: int = _f(0, "LR warm-up steps")
    max_train_steps: int = _f(1000, "optimizer steps in the whole run")
    stop_at_step: int | None = _f(None, "end this session at this step after saving a checkpoint (time-limited jobs;"
                                         " continue with --resume-from-checkpoint latest)")
    adam_beta1: float = _f(0.9, "AdamW beta1")
    adam_beta2: float = _f(0.999, "AdamW beta2")
    adam_weight_decay: float = _f(1e-2, "AdamW weight decay (not applied to LoRA mode's Hangul rows)")
    adam_epsilon: float = _f(1e-8, "AdamW epsilon")
    max_grad_norm: float = _f(1.0, "clip the UNet's gradient norm to this, as TD2 does (0: no clipping)")
    mixed_precision: str = _f("no", "autocast precision", ("no", "fp16", "bf16"))
    gradient_checkpointing: bool = _f(False, "recompute activations in the backward pass to save memory")
    allow_tf32: bool = _f(False, "TF32 matmuls on Ampere+ GPUs")
    use_ema: bool = _f(False, "keep an EMA of the UNet weights; the final pipeline gets the EMA weights")
    ema_decay: float = _f(0.9999, "EMA decay")
    checkpointing_steps: int = _f(500, "save a checkpoint every N steps (0: never)")
    checkpoints_total_limit: int | None = _f(3, "keep the newest N complete checkpoints")
    resume_from_checkpoint: str | None = _f(None, "'latest' (newest complete checkpoint) or a checkpoint folder")
    validation_steps: int = _f(500, "render the validation titles every N steps (0: never)")
    validation_titles: tuple[str, ...] = _f(("별빛의 속삭임", "한글의 아름다움"), "titles rendered at validation")
    validation_inference_steps: int = _f(20, "denoising steps for validation covers")
    seed: int = _f(0, "seed of weights init, data order, line order, CFG dropout and noise")
    train_text_encoder: bool = _f(True, "full: train the whole text encoder; LoRA: the Hangul rows only")
    lora_rank: int = _f(0, "LoRA rank on the UNet attention (0: full fine-tune)")
    lora_alpha: int | None = _f(None, "LoRA alpha (default: the rank)")
    cfg_dropout: float = _f(0.1, "share of all-pad prompts (classifier-free guidance)")
    conditioning: str = _f("tokens", "tokens: the scheme's character tokens; glyph: also the layout's text rendered "
                           "into zero-init UNet input channels (kordiff.glyph; dropped with the prompt)",
                           ("tokens", "glyph"))
    shuffle_lines: bool = _f(True, "shuffle the order of a sample's text lines each time it is loaded (TD2)")
    noise_offset: float = _f(0.0, "noise offset (0: off, as in TD2)")
    report_to: str | None = _f("tensorboard", "tracker for losses and validation images ('' or none: off)")
    logging_dir: str = _f("logs", "tracker folder inside OUTPUT_DIR")

    def __post_init__(self) -> None:
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}")
        if self.scheme not in ("syllable", "jamo"):
            raise ValueError("scheme must be 'syllable' or 'jamo'")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ValueError("mixed_precision must be 'no', 'fp16' or 'bf16'")
        if self.conditioning not in ("tokens", "glyph"):
            raise ValueError("conditioning must be 'tokens' or 'glyph'")
        if self.lr_scheduler not in LR_SCHEDULERS:
            raise ValueError(f"lr_scheduler must be one of {LR_SCHEDULERS}")
        if self.max_train_steps < 1 or self.train_batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise ValueError("max_train_steps, train_batch_size and gradient_accumulation_steps must be >= 1")
        object.__setattr__(self, "train_data_dir", tuple(str(p) for p in self.train_data_dir))
        object.__setattr__(self, "validation_titles", tuple(self.validation_titles))
        if self.report_to in ("", "none"):
            object.__setattr__(self, "report_to", None)

    @classmethod
    def from_json(cls, path: str | Path, **overrides) -> TrainConfig:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown keys in {path}: {sorted(unknown)}")
        return cls(**{**data, **overrides})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------- CLI from the dataclass


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="training.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, help="JSON file of TrainConfig fields (snake_case keys); flags override it")
    return add_dataclass_args(p, TrainConfig, suppress_defaults=True)


def config_from_args(argv: list[str] | None = None) -> TrainConfig:
    args = vars(build_parser().parse_args(argv))
    config = args.pop("config", None)
    return TrainConfig.from_json(config, **args) if config else TrainConfig(**args)


# ---------------------------------------------------------------- step 1: models


@dataclass
class Models:
    """The pipeline's parts, which of them train, and the noise schedule of the loss."""

    pipe: object
    vae: torch.nn.Module
    unet: torch.nn.Module
    text_encoder: torch.nn.Module
    tokenizer: object
    noise_scheduler: object
    unet_params: list[torch.nn.Parameter]
    te_params: list[torch.nn.Parameter]


def load_base(cfg: TrainConfig):
    """The starting pipeline in fp32 on CPU (accelerate moves it): TD2 + SD1.5, or a saved pipeline."""
    from kordiff.loading import load_pipeline

    return load_pipeline(cfg.pretrained_model, device="cpu", dtype=torch.float32, scheme=cfg.scheme)


def build_models(cfg: TrainConfig, pipeline=None, ko_clip=None) -> Models:
    """Base pipeline with the Hangul tokens/rows added; LoRA adapters or full fine-tune; what trains."""
    from diffusers import DDPMScheduler

    from kordiff.glyph import add_glyph_channels, glyph_channels

    pipe = pipeline if pipeline is not None else load_base(cfg)
    vae, unet, text_encoder, tokenizer = pipe.vae, pipe.unet, pipe.text_encoder, pipe.tokenizer
    if cfg.conditioning == "glyph" and not glyph_channels(unet):
        add_glyph_channels(unet, factor=pipe.vae_scale_factor)  # zero rows: the run starts from the same model
    elif cfg.conditioning == "tokens" and glyph_channels(unet):
        raise ValueError(f"{cfg.pretrained_model} is glyph-conditioned: train it with --conditioning glyph")
    prepare_text_encoder(text_encoder, tokenizer, cfg.scheme, cfg.init, ko_clip)
    vae.requires_grad_(False)
    vae.eval()
    if cfg.lora_rank > 0:
        from peft import LoraConfig

        unet.requires_grad_(False)
        if glyph_channels(unet):
            unet.conv_in.requires_grad_(True)  # the new glyph rows must learn; LoRA does not reach conv_in
        unet.add_adapter(
            LoraConfig(
                r=cfg.lora_rank,
                lora_alpha=cfg.lora_alpha or cfg.lora_rank,
                init_lora_weights="gaussian",
                target_modules=list(LORA_TARGETS),
            )
        )
        text_encoder.requires_grad_(False)
        if cfg.train_text_encoder:
            mask_old_rows(text_encoder, tokenizer)
    else:
        unet.requires_grad_(True)
        text_encoder.requires_grad_(cfg.train_text_encoder)
    if cfg.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
        if cfg.train_text_encoder and cfg.lora_rank == 0:
            text_encoder.gradient_checkpointing_enable()
    return Models(
        pipe=pipe,
        vae=vae,
        unet=unet,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        noise_scheduler=DDPMScheduler.from_config(pipe.scheduler.config),
        unet_params=[p for p in unet.parameters() if p.requires_grad],
        te_params=[p for p in text_encoder.parameters() if p.requires_grad],
    )


def build_optimizer(cfg: TrainConfig, models: Models, num_processes: int = 1):
    """AdamW over the trainable parameters (two groups: UNet, text encoder) and the LR schedule."""
    from diffusers.optimization import get_scheduler

    te_lr = cfg.text_encoder_lr or (1e-4 if cfg.lora_rank > 0 else cfg.learning_rate)
    groups = [{"params": models.unet_params, "lr": cfg.learning_rate, "weight_decay": cfg.adam_weight_decay}]
    if models.te_params:
        # LoRA mode trains only the embedding's Hangul rows: no weight decay, or TD2's masked rows would shrink.
        decay = cfg.adam_weight_decay if cfg.lora_rank == 0 else 0.0
        groups.append({"params": models.te_params, "lr": te_lr, "weight_decay": decay})
    optimizer = torch.optim.AdamW(groups, betas=(cfg.adam_beta1, cfg.adam_beta2), eps=cfg.adam_epsilon)
    # accelerate steps a prepared scheduler once per process for each optimizer step
    lr_scheduler = get_scheduler(
        cfg.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=cfg.lr_warmup_steps * num_processes,
        num_training_steps=cfg.max_train_steps * num_processes,
    )
    return optimizer, lr_scheduler


# ---------------------------------------------------------------- step 2: data


@dataclass
class Data:
    """The cached dataset, this process's share of the seeded order, and how prompts are built."""

    dataset: ds.CoverDataset
    sampler: ds.EpochSampler
    pad_id: int
    lines: ds.LinePrompts | None  # None: the cached (top-to-bottom) line order
    glyph_channels: int = 0  # > 0: batches carry the glyph image of each sample's boxes (kordiff.glyph)
    latent_size: int = 0


def build_data(cfg: TrainConfig, models: Models, num_processes: int = 1, process_index: int = 0,
               device: torch.device | str = "cpu", main_process_first=None) -> Data:
    """Build (or reuse) the cache, then the seeded sampler; `main_process_first`: accelerate's context manager."""
    import contextlib

    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else Path(cfg.output_dir) / "cache"
    device = torch.device(device)
    data_cfg = ds.DataConfig(
        tuple(Path(d) for d in cfg.train_data_dir),
        cache_dir,
        resolution=models.pipe.image_size,
        cache_latents=cfg.cache_latents,
        max_samples=cfg.max_train_samples,
        latent_dtype="float32" if device.type == "cpu" else "float16",
    )
    with (main_process_first or contextlib.nullcontext)():
        vae = models.vae.to(device) if cfg.cache_latents else None
        folder = ds.build_cache(data_cfg, models.tokenizer, vae)
    dataset = ds.CoverDataset(folder)
    sampler = ds.EpochSampler(
        len(dataset), cfg.train_batch_size, cfg.seed, num_processes, process_index, cfg.cfg_dropout
    )
    lines = ds.LinePrompts(dataset, models.tokenizer, cfg.seed) if cfg.shuffle_lines else None
    from kordiff.glyph import glyph_channels

    unet_config = models.unet.config
    return Data(dataset, sampler, models.tokenizer.pad_token_id, lines, glyph_channels(models.unet),
                int(unet_config.sample_size))


def glyph_batch(data: Data, indices: list[int], drop: list[bool]) -> torch.Tensor:
    """Glyph images of the samples' cached boxes; blank for CFG-dropped rows (the sampler's unconditional half)."""
    from kordiff.glyph import glyph_tensor

    size, rows = data.latent_size, []
    for i, dropped in zip(indices, drop):
        layout = Layout(tuple(Box(*b) for b in data.dataset.prompts[i][1]))
        rows.append(torch.zeros(data.glyph_channels, size, size) if dropped
                    else glyph_tensor(layout, size, size, data.glyph_channels))
    return torch.stack(rows)


def batch_stream(data: Data, position: ds.DataPosition) -> Iterator[dict[str, torch.Tensor]]:
    """Batches from `position` on, forever; `position` advances as each batch is handed out."""
    for indices, drop, epoch in data.sampler.batches(ds.DataPosition(position.epoch, position.batch)):
        position.advance(data.sampler.batches_per_epoch)
        ids = [data.lines.ids(i, epoch) for i in indices] if data.lines is not None else None
        batch = ds.collate(data.dataset, indices, drop, data.pad_id, ids)
        if data.glyph_channels:
            batch["glyph"] = glyph_batch(data, indices, drop)
        yield batch


# ---------------------------------------------------------------- step 3: the loss


def diffusion_loss(batch, vae, unet, text_encoder, noise_scheduler, device, weight_dtype, noise_offset: float = 0.0):
    """TD2's training loss for one batch: noise-prediction MSE at random timesteps (global torch RNG).

    Latents come from the cached VAE posterior (`latent_params`) or from encoding `pixels` now; both draw one
    posterior sample, so the two paths are the same computation apart from where the VAE ran.
    """
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    if "latent_params" in batch:
        latents = DiagonalGaussianDistribution(batch["latent_params"].to(device, weight_dtype)).sample()
    else:
        with torch.no_grad():
            latents = vae.encode(batch["pixels"].to(device, weight_dtype)).latent_dist.sample()
    latents = latents * vae.config.scaling_factor
    noise = torch.randn_like(latents)
    if noise_offset:
        noise += noise_offset * torch.randn((*latents.shape[:2], 1, 1), device=latents.device)
    t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (latents.shape[0],), device=latents.device)
    noisy = noise_scheduler.add_noise(latents, noise, t)
    hidden = text_encoder(batch["input_ids"].to(device))[0]
    if noise_scheduler.config.prediction_type == "v_prediction":
        target = noise_scheduler.get_velocity(latents, noise, t)
    else:
        target = noise
    if "glyph" in batch:  # a glyph-conditioned UNet reads [noisy latents; glyph] (kordiff.glyph)
        from kordiff.glyph import concat_glyph

        noisy_in = concat_glyph(noisy, batch["glyph"].to(device, noisy.dtype))
    else:
        noisy_in = noisy
    pred = unet(noisy_in, t, hidden.to(noisy.dtype), return_dict=False)[0]
    return F.mse_loss(pred.float(), target.float())


# ---------------------------------------------------------------- step 4: the run (accelerate, checkpoints, loop)


@dataclass
class RunState:
    """Everything the loop advances, besides model/optimizer/RNG: step counter, data position, losses."""

    global_step: int = 0
    position: ds.DataPosition = field(default_factory=ds.DataPosition)
    losses: list[float] = field(default_factory=list)
    validation: list[dict] = field(default_factory=list)

    def state_dict(self) -> dict:
        return {
            "global_step": self.global_step,
            "position": self.position.state_dict(),
            "losses": self.losses,
            "validation": self.validation,
        }

    def load_state_dict(self, d: dict) -> None:
        self.global_step = int(d["global_step"])
        self.position.load_state_dict(d["position"])
        self.losses = [float(x) for x in d["losses"]]
        self.validation = list(d["validation"])


@dataclass
class Run:
    """A prepared run: accelerator, models (wrapped), optimizer, schedule, EMA, data and state."""

    cfg: TrainConfig
    accelerator: object
    models: Models
    unet: torch.nn.Module  # accelerate-wrapped
    text_encoder: torch.nn.Module  # accelerate-wrapped when it trains
    optimizer: object
    lr_scheduler: object
    ema: object | None
    data: Data
    weight_dtype: torch.dtype
    state: RunState = field(default_factory=RunState)

    @property
    def output_dir(self) -> Path:
        return Path(self.cfg.output_dir)


def make_accelerator(cfg: TrainConfig):
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    output_dir = Path(cfg.output_dir)
    # Several processes and no GPU: DDP on the CPU over gloo (accelerate only picks it when told `cpu`).
    multi_cpu = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()
    accelerator = Accelerator(
        cpu=multi_cpu,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        mixed_precision=cfg.mixed_precision,
        log_with=cfg.report_to or None,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / cfg.logging_dir)),
    )
    if accelerator.distributed_type.name not in ("NO", "MULTI_CPU", "MULTI_GPU"):
        raise ValueError(
            f"training.train runs on one device or under DDP (MULTI_CPU/MULTI_GPU); {accelerator.distributed_type.name}"
            " has never been tested with it"
        )
    return accelerator


def prepare_run(cfg: TrainConfig, accelerator, models: Models, data: Data) -> Run:
    """Optimizer, schedule and EMA, wrapped by accelerate; the frozen parts moved to the device and dtype."""
    from diffusers.training_utils import EMAModel

    optimizer, lr_scheduler = build_optimizer(cfg, models, accelerator.num_processes)
    ema = EMAModel(models.unet_params, decay=cfg.ema_decay) if cfg.use_ema else None
    if models.te_params:
        unet, text_encoder, optimizer, lr_scheduler = accelerator.prepare(
            models.unet, models.text_encoder, optimizer, lr_scheduler
        )
    else:  # DDP refuses a module with nothing to train: the frozen text encoder is only moved
        unet, optimizer, lr_scheduler = accelerator.prepare(models.unet, optimizer, lr_scheduler)
        text_encoder = models.text_encoder.to(accelerator.device)
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision, torch.float32)
    models.vae.to(accelerator.device, dtype=weight_dtype)
    if not models.te_params:
        text_encoder.to(dtype=weight_dtype)
    if ema is not None:
        ema.to(accelerator.device)
    return Run(cfg, accelerator, models, unet, text_encoder, optimizer, lr_scheduler, ema, data, weight_dtype)


def save_checkpoint(run: Run) -> Path:
    """Write checkpoint-{step} atomically (all processes call this), then rotate old ones."""
    acc, step = run.accelerator, run.state.global_step
    tmp = ckpt.temp_dir(run.output_dir, step)
    if acc.is_main_process:
        ckpt.begin(run.output_dir, step)
    acc.wait_for_everyone()
    tensors, meta = ckpt.rng_parts()
    ckpt.save_tensors(tmp / ckpt.rng_file(acc.process_index), tensors, meta)
    acc.wait_for_everyone()
    final = run.output_dir / f"{ckpt.PREFIX}{step}"
    if acc.is_main_process:
        ckpt.save_tensors(tmp / ckpt.UNET_FILE, acc.unwrap_model(run.unet).state_dict())
        ckpt.save_tensors(tmp / ckpt.TEXT_ENCODER_FILE, acc.unwrap_model(run.text_encoder).state_dict())
        ckpt.save_optimizer(tmp / ckpt.OPTIMIZER_FILE, run.optimizer)
        ckpt.write_json(tmp / ckpt.SCHEDULER_FILE, run.lr_scheduler.state_dict())
        if run.ema is not None:
            ckpt.save_tensors(tmp / ckpt.EMA_FILE, *ckpt.ema_parts(run.ema))
        if acc.scaler is not None:
            ckpt.write_json(tmp / ckpt.SCALER_FILE, acc.scaler.state_dict())
        ckpt.write_json(tmp / ckpt.STATE_FILE, run.state.state_dict())
        final = ckpt.commit(tmp, step, acc.num_processes)
        removed = ckpt.rotate(run.output_dir, run.cfg.checkpoints_total_limit)
        logger.info("saved %s%s", final.name, f" (removed {', '.join(removed)})" if removed else "")
    acc.wait_for_everyone()
    return final


def load_checkpoint(run: Run, path: Path) -> None:
    """Restore everything `save_checkpoint` wrote; a bad part raises CheckpointError (one line)."""
    acc = run.accelerator
    ckpt.load_module(path, ckpt.UNET_FILE, acc.unwrap_model(run.unet))
    ckpt.load_module(path, ckpt.TEXT_ENCODER_FILE, acc.unwrap_model(run.text_encoder))
    ckpt.load_optimizer(path, run.optimizer)
    ckpt.load_scheduler(path, run.lr_scheduler)
    if run.ema is not None:
        ckpt.load_ema(path, run.ema)
        run.ema.to(acc.device)
    if acc.scaler is not None:
        acc.scaler.load_state_dict(ckpt.load_json(path, ckpt.SCALER_FILE))
    state = ckpt.load_json(path, ckpt.STATE_FILE)
    try:
        run.state.load_state_dict(state)
    except (KeyError, TypeError, ValueError) as e:
        raise ckpt.fail(path, ckpt.STATE_FILE, f"not a run state ({e})") from None
    ckpt.load_rng(path, acc.process_index)
    logger.info(
        "resumed from %s at step %d, data epoch %d batch %d",
        path,
        run.state.global_step,
        run.state.position.epoch,
        run.state.position.batch,
    )


def train_step(run: Run, batch: dict) -> torch.Tensor:
    """One micro-batch: loss, backward, and (on an accumulation boundary) clip + optimizer + LR step."""
    acc, m = run.accelerator, run.models
    with acc.accumulate(run.unet, run.text_encoder):
        loss = diffusion_loss(
            batch, m.vae, run.unet, run.text_encoder, m.noise_scheduler, acc.device, run.weight_dtype,
            run.cfg.noise_offset,
        )
        acc.backward(loss)
        if acc.sync_gradients and run.cfg.max_grad_norm > 0:
            # the UNet's gradients only, as TD2 does: the text encoder's new Hangul rows are not held back by them
            acc.clip_grad_norm_(m.unet_params, run.cfg.max_grad_norm)
        run.optimizer.step()
        run.lr_scheduler.step()
        run.optimizer.zero_grad(set_to_none=True)
    return loss


def train_loop(run: Run, on_step: Callable[[int], None] | None = None) -> None:
    """Optimizer steps until max_train_steps (or stop_at_step): EMA, logging, checkpoints, validation."""
    from tqdm.auto import tqdm

    cfg, acc, state = run.cfg, run.accelerator, run.state
    end = min(cfg.max_train_steps, cfg.stop_at_step or cfg.max_train_steps)
    batches = batch_stream(run.data, state.position)
    bar = tqdm(total=cfg.max_train_steps, initial=state.global_step, desc="train", unit="step",
               disable=not acc.is_local_main_process)
    run.unet.train()
    run.text_encoder.train(bool(run.models.te_params))
    saved_at = state.global_step
    while state.global_step < end:
        loss = train_step(run, next(batches))
        if not acc.sync_gradients:
            continue
        if run.ema is not None:
            run.ema.step(run.models.unet_params)
        state.global_step += 1
        loss_value = acc.gather(loss.detach()[None]).mean().item()
        state.losses.append(loss_value)
        acc.log({"train_loss": loss_value, "lr": run.lr_scheduler.get_last_lr()[0]}, step=state.global_step)
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.4f}")
        if cfg.checkpointing_steps and state.global_step % cfg.checkpointing_steps == 0:
            save_checkpoint(run)
            saved_at = state.global_step
        if cfg.validation_steps and state.global_step % cfg.validation_steps == 0 and acc.is_main_process:
            state.validation.append(_validate(run, state.global_step))
        if on_step is not None:
            on_step(state.global_step)
    bar.close()
    if state.global_step < cfg.max_train_steps and saved_at != state.global_step:
        save_checkpoint(run)  # stop_at_step: keep the work of this session


# ---------------------------------------------------------------- step 5: the final pipeline


def save_final(run: Run, seconds: float) -> None:
    """The KorDiffPipeline (EMA weights, LoRA fused) and the run record, in output_dir (main process)."""
    from kordiff.pipeline import KorDiffPipeline

    acc, cfg, m, state = run.accelerator, run.cfg, run.models, run.state
    acc.wait_for_everyone()
    if not acc.is_main_process:
        return
    unet_final = acc.unwrap_model(run.unet)
    te_final = acc.unwrap_model(run.text_encoder)
    if run.ema is not None:
        run.ema.copy_to(m.unet_params)
    if cfg.lora_rank > 0:
        from peft.utils import get_peft_model_state_dict
        from safetensors.torch import save_file

        lora_dir = run.output_dir / "unet_lora"
        lora_dir.mkdir(parents=True, exist_ok=True)
        save_file(
            {k: v.contiguous() for k, v in get_peft_model_state_dict(unet_final).items()},
            str(lora_dir / "adapter_model.safetensors"),
        )
        unet_final.fuse_lora()
        unet_final.unload_lora()
    final = KorDiffPipeline(
        vae=m.vae.to(torch.float32),
        text_encoder=te_final.to(torch.float32),
        tokenizer=m.tokenizer,
        unet=unet_final.to(torch.float32),
        scheduler=m.pipe.scheduler,
    )
    final.save_pretrained(str(run.output_dir))
    losses = state.losses
    info = {
        "config": cfg.to_dict(),
        "steps": state.global_step,
        "samples": len(run.data.dataset),
        "data": [str(d) for d in cfg.train_data_dir],
        "final_loss": losses[-1] if losses else None,
        "mean_loss_last_50": sum(losses[-50:]) / max(1, len(losses[-50:])) if losses else None,
        "validation": state.validation,
        "seconds_this_session": round(seconds, 2),
    }
    (run.output_dir / RUN_INFO).write_text(json.dumps(info, ensure_ascii=False, indent=2), encoding="utf-8")


# ---------------------------------------------------------------- all steps


def train(cfg: TrainConfig, pipeline=None, ko_clip=None, on_step: Callable[[int], None] | None = None) -> Path:
    """Run (or resume) training; returns the output dir holding the final KorDiffPipeline.

    `pipeline`: a ready KorDiffPipeline instead of loading `cfg.pretrained_model`; `ko_clip`: (tokenizer, text
    model) for init='ko-clip' instead of loading the Hub model; `on_step(global_step)` after each update.
    """
    from accelerate.utils import set_seed

    accelerator = make_accelerator(cfg)
    output_dir = Path(cfg.output_dir)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
    # the checkpoint is found and verified before anything is loaded: a bad path fails in a second, not minutes
    resume = ckpt.resolve(output_dir, cfg.resume_from_checkpoint, accelerator.num_processes,
                          clean=accelerator.is_main_process, hashes=accelerator.is_main_process)
    accelerator.wait_for_everyone()
    set_seed(cfg.seed)
    if cfg.allow_tf32 and torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True

    models = build_models(cfg, pipeline, ko_clip)
    data = build_data(cfg, models, accelerator.num_processes, accelerator.process_index, accelerator.device,
                      accelerator.main_process_first)
    run = prepare_run(cfg, accelerator, models, data)
    if resume is not None:
        load_checkpoint(run, resume)
    if accelerator.is_main_process and cfg.report_to:
        tracker_cfg = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in cfg.to_dict().items()}
        accelerator.init_trackers("kordiff", config=tracker_cfg)
    logger.info(
        "training %d samples, %d steps, batch %d x %d processes x %d accumulation",
        len(data.dataset),
        cfg.max_train_steps,
        cfg.train_batch_size,
        accelerator.num_processes,
        cfg.gradient_accumulation_steps,
    )
    t_start = time.perf_counter()
    train_loop(run, on_step)
    if run.state.global_step >= cfg.max_train_steps:
        save_final(run, time.perf_counter() - t_start)
    else:
        logger.info("stopped at step %d of %d: continue with --resume-from-checkpoint latest",
                    run.state.global_step, cfg.max_train_steps)
    # every process waits for the main one's final save: a process that leaves early and tears down its process
    # group while the other still works can leave the main one hanging at exit (seen in CI under gloo)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return output_dir


# ---------------------------------------------------------------- validation


def validation_layout(title: str, size: int) -> Layout:
    """A planned layout for a validation title (kordiff's heuristic planner when present, else one box), planned
    for a square cover: training images are square, and grid cells are per axis."""
    try:
        from kordiff.planner import HeuristicConfig, HeuristicPlanner

        return HeuristicPlanner(seed=0, config=HeuristicConfig(shape="square")).plan(title).layout
    except ImportError:
        return Layout((Box.from_pixels(title, size * 0.1, size * 0.35, size * 0.9, size * 0.55, size=size),))


def ocr_scorer() -> Callable | None:
    try:
        from kordiff.ocr import score_image
    except ImportError:
        return None
    return score_image


@torch.no_grad()
def _validate(run: Run, step: int) -> dict:
    """Covers for the validation titles with fixed seeds (EMA weights if any), saved, logged, OCR-scored."""
    from kordiff.pipeline import KorDiffPipeline

    cfg, accelerator, pipe, ema = run.cfg, run.accelerator, run.models.pipe, run.ema
    unet, text_encoder, unet_params, output_dir = run.unet, run.text_encoder, run.models.unet_params, run.output_dir

    folder = output_dir / "validation" / f"step-{step:06d}"
    folder.mkdir(parents=True, exist_ok=True)
    if ema is not None:
        ema.store(unet_params)
        ema.copy_to(unet_params)
    u, te = accelerator.unwrap_model(unet), accelerator.unwrap_model(text_encoder)
    was_training = (u.training, te.training)
    u.eval()
    te.eval()
    vpipe = KorDiffPipeline(vae=pipe.vae, text_encoder=te, tokenizer=pipe.tokenizer, unet=u, scheduler=pipe.scheduler)
    vpipe.set_progress_bar_config(disable=True)
    score = ocr_scorer()
    result: dict = {"step": step, "images": [], "ocr": []}
    # forked RNG: validation must not move the training RNG, or a resumed run would diverge
    with torch.random.fork_rng(devices=[accelerator.device] if accelerator.device.type == "cuda" else []):
        for k, title in enumerate(cfg.validation_titles):
            layout = validation_layout(title, vpipe.image_size)
            with accelerator.autocast():
                image = vpipe(
                    book_caption(title), layout, num_inference_steps=cfg.validation_inference_steps, seed=cfg.seed + k
                ).images[0]
            path = folder / f"{k:02d}.png"
            image.save(path)
            result["images"].append(str(path))
            if score is not None:
                try:
                    s = score(image, layout)
                    result["ocr"].append({"title": title, "correct": bool(s.correct), "ned": float(s.ned)})
                except Exception as e:  # noqa: BLE001 - OCR trouble must not stop training
                    logger.warning("OCR scoring failed: %s", e)
            for tracker in accelerator.trackers:
                if tracker.name == "tensorboard":
                    import numpy as np

                    tracker.writer.add_image(f"validation/{k}", np.asarray(image), step, dataformats="HWC")
    if result["ocr"]:
        nd = [o["ned"] for o in result["ocr"]]
        accelerator.log(
            {"val_ocr_ned": sum(nd) / len(nd), "val_ocr_exact": sum(o["correct"] for o in result["ocr"]) / len(nd)},
            step=step,
        )
    if ema is not None:
        ema.restore(unet_params)
    u.train(was_training[0])
    te.train(was_training[1])
    return result



def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = config_from_args(argv)
    except (ValueError, TypeError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not cfg.train_data_dir:
        print(
            "error: give --train-data-dir (folders written by training.prepare_aihub or training.synth)",
            file=sys.stderr,
        )
        return 2
    from kordiff.loading import ModelUnavailableError

    try:
        out = train(cfg)
    except (ModelUnavailableError, ckpt.CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: resume with --resume-from-checkpoint latest", file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    if cfg.stop_at_step is not None and cfg.stop_at_step < cfg.max_train_steps:
        print(f"stopped at step {cfg.stop_at_step}: continue with --resume-from-checkpoint latest")
    else:
        print(f"saved KorDiffPipeline to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
