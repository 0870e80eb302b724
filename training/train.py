"""Fine-tune TD2 for Hangul: `accelerate launch -m training.train --config cfg.json [--flag value ...]`.

One code path for 1 CPU, 1 GPU, many GPUs or nodes (accelerate; DeepSpeed/FSDP via `accelerate launch
--config_file training/configs/...`). Full fine-tune of UNet + text encoder (TD2's recipe), or LoRA on the
UNet's attention projections (peft) plus only the new Hangul rows of the token embedding. EMA, mixed
precision, gradient accumulation and checkpointing, checkpoints every N steps with rotation, and
`--resume_from_checkpoint latest` that restores model, EMA, optimizer, LR scheduler, RNG and data position
exactly (an interrupted run ends with the same weights as an uninterrupted one). Validation covers (with an
OCR score when kordiff.ocr is available) and losses go to TensorBoard. The result is a KorDiffPipeline
directory (`output_dir`) that `app.py --model DIR` and `kordiff.load_pipeline(DIR)` load.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from kordiff.config import add_dataclass_args
from kordiff.layout import Box, Layout
from kordiff.tokens import book_caption

from . import dataset as ds
from .extend import INITS, KO_CLIP, mask_old_rows, prepare_text_encoder

logger = logging.getLogger(__name__)

LORA_TARGETS = ("to_k", "to_q", "to_v", "to_out.0")
RUN_INFO = "kordiff_training.json"  # config + metrics next to the saved pipeline (read by training.publish)
EMA_FILE = "ema.pt"


@dataclass(frozen=True)
class TrainConfig:
    """Training settings; names follow diffusers' train_text_to_image.py where one exists."""

    pretrained_model: str = "td2"  # 'td2' (TD2 UNet/text encoder + SD1.5), a saved kordiff pipeline dir or Hub id
    train_data_dir: tuple[str, ...] = ()  # MARIO-style roots (training.prepare_aihub / training.synth output)
    output_dir: str = "kordiff-finetuned"
    cache_dir: str | None = None  # default: {output_dir}/cache
    scheme: str = "syllable"  # Hangul tokens: 'syllable' (11,172 tokens) or 'jamo' (67)
    init: str = "mean"  # fresh Hangul rows: 'mean' of TD2's rows or 'ko-clip'
    ko_clip_model: str = KO_CLIP
    cache_latents: bool = True  # encode every image with the VAE once, not every step
    max_train_samples: int | None = None
    train_batch_size: int = 4  # per device
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-5  # TD2: 1e-5 for UNet and text encoder
    text_encoder_lr: float | None = None  # default: learning_rate (LoRA mode: 1e-4 for the Hangul rows)
    lr_scheduler: str = "constant"
    lr_warmup_steps: int = 0
    max_train_steps: int = 1000
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_weight_decay: float = 1e-2
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    mixed_precision: str = "no"  # 'no', 'fp16', 'bf16'
    gradient_checkpointing: bool = False
    allow_tf32: bool = False
    use_ema: bool = False
    ema_decay: float = 0.9999
    checkpointing_steps: int = 500
    checkpoints_total_limit: int | None = 3
    resume_from_checkpoint: str | None = None  # 'latest' or a checkpoint folder
    validation_steps: int = 500  # 0 = never
    validation_titles: tuple[str, ...] = ("별빛의 속삭임", "한글의 아름다움")
    validation_inference_steps: int = 20
    seed: int = 0
    train_text_encoder: bool = True  # full: whole text encoder; LoRA: the Hangul rows only
    lora_rank: int = 0  # 0 = full fine-tune
    lora_alpha: int | None = None  # default: lora_rank
    cfg_dropout: float = 0.1  # share of all-pad prompts (classifier-free guidance)
    noise_offset: float = 0.0
    report_to: str | None = "tensorboard"
    logging_dir: str = "logs"

    def __post_init__(self) -> None:
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ValueError("mixed_precision must be 'no', 'fp16' or 'bf16'")
        if self.max_train_steps < 1 or self.train_batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise ValueError("max_train_steps, train_batch_size and gradient_accumulation_steps must be >= 1")
        object.__setattr__(self, "train_data_dir", tuple(str(p) for p in self.train_data_dir))
        object.__setattr__(self, "validation_titles", tuple(self.validation_titles))

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
    p.add_argument("--config", type=Path, help="JSON file of TrainConfig fields; flags override it")
    return add_dataclass_args(p, TrainConfig, suppress_defaults=True)


def config_from_args(argv: list[str] | None = None) -> TrainConfig:
    args = vars(build_parser().parse_args(argv))
    config = args.pop("config", None)
    return TrainConfig.from_json(config, **args) if config else TrainConfig(**args)


# ---------------------------------------------------------------- pieces


@dataclass
class RunState:
    """Everything the loop advances, besides what accelerate saves: step counter, data position, losses."""

    global_step: int = 0
    position: ds.DataPosition = field(default_factory=ds.DataPosition)
    losses: list[float] = field(default_factory=list)
    validation: list[dict] = field(default_factory=list)


def load_base(cfg: TrainConfig):
    """The starting pipeline in fp32 on CPU (accelerate moves it): TD2 + SD1.5, or a saved pipeline."""
    from kordiff.loading import load_pipeline

    return load_pipeline(cfg.pretrained_model, device="cpu", dtype=torch.float32, scheme=cfg.scheme)


def checkpoints(output_dir: Path) -> list[Path]:
    """checkpoint-N folders, oldest first."""
    found = [p for p in output_dir.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def resolve_resume(cfg: TrainConfig, output_dir: Path) -> Path | None:
    if not cfg.resume_from_checkpoint:
        return None
    if cfg.resume_from_checkpoint == "latest":
        found = checkpoints(output_dir)
        if not found:
            logger.info("no checkpoint in %s: starting a new run", output_dir)
        return found[-1] if found else None
    path = Path(cfg.resume_from_checkpoint)
    if not path.is_dir():
        path = output_dir / cfg.resume_from_checkpoint
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint {cfg.resume_from_checkpoint} not found")
    return path


def rotate_checkpoints(output_dir: Path, limit: int | None) -> None:
    """Keep at most limit - 1 old checkpoints, so there are `limit` after the next save."""
    if not limit:
        return
    found = checkpoints(output_dir)
    for old in found[: max(0, len(found) - limit + 1)]:
        shutil.rmtree(old, ignore_errors=True)


def validation_layout(title: str, size: int) -> Layout:
    """A planned layout for a validation title (kordiff's heuristic planner when present, else one box)."""
    try:
        from kordiff.planner import HeuristicPlanner

        return HeuristicPlanner(seed=0).plan(title).layout
    except ImportError:
        return Layout((Box.from_pixels(title, size * 0.1, size * 0.35, size * 0.9, size * 0.55, size=size),))


def ocr_scorer() -> Callable | None:
    try:
        from kordiff.ocr import score_image
    except ImportError:
        return None
    return score_image


# ---------------------------------------------------------------- training


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
    pred = unet(noisy, t, hidden.to(noisy.dtype), return_dict=False)[0]
    return F.mse_loss(pred.float(), target.float())


def train(cfg: TrainConfig, pipeline=None, ko_clip=None, on_step: Callable[[int], None] | None = None) -> Path:
    """Run (or resume) training; returns the output dir holding the final KorDiffPipeline.

    `pipeline`: a ready KorDiffPipeline instead of loading `cfg.pretrained_model`; `ko_clip`: (tokenizer, text
    model) for init='ko-clip' instead of loading the Hub model; `on_step(global_step)` after each update.
    """
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration, set_seed
    from diffusers import DDPMScheduler
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel
    from tqdm.auto import tqdm

    from kordiff.pipeline import KorDiffPipeline

    output_dir = Path(cfg.output_dir)
    accelerator = Accelerator(
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        mixed_precision=cfg.mixed_precision,
        log_with=cfg.report_to or None,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / cfg.logging_dir)),
    )
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
    set_seed(cfg.seed)
    if cfg.allow_tf32 and torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True

    # 1. models: base pipeline, Hangul tokens/rows, trainable parts
    pipe = pipeline if pipeline is not None else load_base(cfg)
    vae, unet, text_encoder, tokenizer = pipe.vae, pipe.unet, pipe.text_encoder, pipe.tokenizer
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    prepare_text_encoder(text_encoder, tokenizer, cfg.scheme, cfg.init, ko_clip)
    resolution = pipe.image_size
    vae.requires_grad_(False)
    vae.eval()
    if cfg.lora_rank > 0:
        from peft import LoraConfig

        unet.requires_grad_(False)
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
    unet_params = [p for p in unet.parameters() if p.requires_grad]
    te_params = [p for p in text_encoder.parameters() if p.requires_grad]
    te_lr = cfg.text_encoder_lr or (1e-4 if cfg.lora_rank > 0 else cfg.learning_rate)
    groups = [{"params": unet_params, "lr": cfg.learning_rate, "weight_decay": cfg.adam_weight_decay}]
    if te_params:
        # LoRA mode trains only the embedding's Hangul rows: no weight decay, or TD2's masked rows would shrink.
        groups.append(
            {"params": te_params, "lr": te_lr, "weight_decay": cfg.adam_weight_decay if cfg.lora_rank == 0 else 0.0}
        )
    optimizer = torch.optim.AdamW(groups, betas=(cfg.adam_beta1, cfg.adam_beta2), eps=cfg.adam_epsilon)
    lr_scheduler = get_scheduler(
        cfg.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=cfg.lr_warmup_steps * accelerator.num_processes,
        num_training_steps=cfg.max_train_steps * accelerator.num_processes,
    )
    ema = EMAModel(unet_params, decay=cfg.ema_decay) if cfg.use_ema else None

    # 2. data: one-time cache, whole-set shuffle with a resumable position
    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else output_dir / "cache"
    data_cfg = ds.DataConfig(
        tuple(Path(d) for d in cfg.train_data_dir),
        cache_dir,
        resolution=resolution,
        cache_latents=cfg.cache_latents,
        max_samples=cfg.max_train_samples,
        latent_dtype="float32" if accelerator.device.type == "cpu" else "float16",
    )
    with accelerator.main_process_first():
        folder = ds.build_cache(data_cfg, tokenizer, vae.to(accelerator.device) if cfg.cache_latents else None)
    data = ds.CoverDataset(folder)
    sampler = ds.EpochSampler(
        len(data), cfg.train_batch_size, cfg.seed, accelerator.num_processes, accelerator.process_index, cfg.cfg_dropout
    )
    pad_id = tokenizer.pad_token_id

    # 3. accelerate, hooks for EMA and the data position
    if accelerator.distributed_type.name == "DEEPSPEED" and te_params:
        # accelerate gives DeepSpeed one engine = one model; the text encoder would silently not train
        raise ValueError(
            "DeepSpeed trains one model here: use --no-train_text_encoder with it, or the DDP config "
            "(training/configs/accelerate_multi_gpu.yaml) to train the text encoder too"
        )
    unet, text_encoder, optimizer, lr_scheduler = accelerator.prepare(unet, text_encoder, optimizer, lr_scheduler)
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision, torch.float32)
    vae.to(accelerator.device, dtype=weight_dtype)
    if not te_params:
        text_encoder.to(dtype=weight_dtype)
    if ema is not None:
        ema.to(accelerator.device)
    state = RunState()

    def save_hook(models, weights, out_dir):
        if ema is not None and accelerator.is_main_process:
            torch.save(ema.state_dict(), os.path.join(out_dir, EMA_FILE))

    def load_hook(models, in_dir):
        if ema is not None:
            ema.load_state_dict(torch.load(os.path.join(in_dir, EMA_FILE), map_location="cpu", weights_only=False))
            ema.to(accelerator.device)

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)
    accelerator.register_for_checkpointing(state.position)

    resume = resolve_resume(cfg, output_dir)
    if resume is not None:
        accelerator.load_state(str(resume))
        state.global_step = int(resume.name.split("-")[-1])
        logger.info(
            "resumed from %s at step %d, data epoch %d batch %d",
            resume,
            state.global_step,
            state.position.epoch,
            state.position.batch,
        )
    if accelerator.is_main_process and cfg.report_to:
        tracker_cfg = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in cfg.to_dict().items()}
        accelerator.init_trackers("kordiff", config=tracker_cfg)

    logger.info(
        "training %d samples, %d steps, batch %d x %d processes x %d accumulation",
        len(data),
        cfg.max_train_steps,
        cfg.train_batch_size,
        accelerator.num_processes,
        cfg.gradient_accumulation_steps,
    )
    batches = sampler.batches(ds.DataPosition(state.position.epoch, state.position.batch))
    bar = tqdm(
        total=cfg.max_train_steps,
        initial=state.global_step,
        desc="train",
        unit="step",
        disable=not accelerator.is_local_main_process,
    )
    params = unet_params + te_params
    unet.train()
    text_encoder.train(bool(te_params))
    t_start = time.perf_counter()

    # 4. loop
    while state.global_step < cfg.max_train_steps:
        indices, drop = next(batches)
        state.position.batch += 1
        if state.position.batch >= sampler.batches_per_epoch:
            state.position.epoch, state.position.batch = state.position.epoch + 1, 0
        batch = ds.collate(data, indices, drop, pad_id)
        with accelerator.accumulate(unet, text_encoder):
            loss = diffusion_loss(
                batch, vae, unet, text_encoder, noise_scheduler, accelerator.device, weight_dtype, cfg.noise_offset
            )
            accelerator.backward(loss)
            if accelerator.sync_gradients and cfg.max_grad_norm > 0:
                accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        if not accelerator.sync_gradients:
            continue
        if ema is not None:
            ema.step(unet_params)
        state.global_step += 1
        loss_value = accelerator.gather(loss.detach()[None]).mean().item()
        state.losses.append(loss_value)
        accelerator.log({"train_loss": loss_value, "lr": lr_scheduler.get_last_lr()[0]}, step=state.global_step)
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.4f}")
        if cfg.checkpointing_steps and state.global_step % cfg.checkpointing_steps == 0:
            if accelerator.is_main_process:
                rotate_checkpoints(output_dir, cfg.checkpoints_total_limit)
            accelerator.wait_for_everyone()
            accelerator.save_state(str(output_dir / f"checkpoint-{state.global_step}"))
        if cfg.validation_steps and state.global_step % cfg.validation_steps == 0 and accelerator.is_main_process:
            state.validation.append(
                _validate(cfg, accelerator, pipe, unet, text_encoder, ema, unet_params, state.global_step, output_dir)
            )
        if on_step is not None:
            on_step(state.global_step)
    bar.close()
    seconds = time.perf_counter() - t_start

    # 5. final pipeline (EMA weights, LoRA fused) + run info
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        unet_final = accelerator.unwrap_model(unet)
        te_final = accelerator.unwrap_model(text_encoder)
        if ema is not None:
            ema.copy_to(unet_params)
        if cfg.lora_rank > 0:
            from peft.utils import get_peft_model_state_dict
            from safetensors.torch import save_file

            lora_dir = output_dir / "unet_lora"
            lora_dir.mkdir(parents=True, exist_ok=True)
            save_file(
                {k: v.contiguous() for k, v in get_peft_model_state_dict(unet_final).items()},
                str(lora_dir / "adapter_model.safetensors"),
            )
            unet_final.fuse_lora()
            unet_final.unload_lora()
        final = KorDiffPipeline(
            vae=vae.to(torch.float32),
            text_encoder=te_final.to(torch.float32),
            tokenizer=tokenizer,
            unet=unet_final.to(torch.float32),
            scheduler=pipe.scheduler,
        )
        final.save_pretrained(str(output_dir))
        info = {
            "config": cfg.to_dict(),
            "steps": state.global_step,
            "samples": len(data),
            "data": [str(d) for d in cfg.train_data_dir],
            "final_loss": state.losses[-1] if state.losses else None,
            "mean_loss_last_50": sum(state.losses[-50:]) / max(1, len(state.losses[-50:])) if state.losses else None,
            "validation": state.validation,
            "seconds_this_session": round(seconds, 2),
        }
        (output_dir / RUN_INFO).write_text(json.dumps(info, ensure_ascii=False, indent=2), encoding="utf-8")
    accelerator.end_training()
    return output_dir


@torch.no_grad()
def _validate(cfg, accelerator, pipe, unet, text_encoder, ema, unet_params, step: int, output_dir: Path) -> dict:
    """Covers for the validation titles with fixed seeds (EMA weights if any), saved, logged, OCR-scored."""
    from kordiff.pipeline import KorDiffPipeline

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
            "error: give --train_data_dir (folders written by training.prepare_aihub or training.synth)",
            file=sys.stderr,
        )
        return 2
    from kordiff.loading import ModelUnavailableError

    try:
        out = train(cfg)
    except ModelUnavailableError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: resume with --resume_from_checkpoint latest", file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"saved KorDiffPipeline to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
