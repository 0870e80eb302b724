"""A tiny random KorDiffPipeline with the real CLIP tokenizer: for tests, smoke runs and UI development."""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from .pipeline import KorDiffPipeline
from .tokens import clip_tokenizer_from_assets, extend_tokenizer


def tiny_unet(cross_attention_dim: int = 32, sample_size: int = 16) -> UNet2DConditionModel:
    """diffusers' test-size UNet (two blocks, 32/64 channels)."""
    return UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=2, sample_size=sample_size, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=cross_attention_dim, attention_head_dim=8, norm_num_groups=32,
    )


def tiny_vae() -> AutoencoderKL:
    """Four blocks so latents are 1/8 of the image, as in SD1.5 (16x16 latents -> 128x128 covers)."""
    return AutoencoderKL(
        block_out_channels=(32, 32, 32, 32), layers_per_block=1, latent_channels=4, norm_num_groups=32,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    )

def sd15_shaped_unet(width: int = 32, cross_attention_dim: int = 32, sample_size: int = 32) -> UNet2DConditionModel:
    """SD1.5's UNet layout (3 cross-attention down blocks + 1 plain, 2 layers each) at reduced width (SD1.5: 320)."""
    return UNet2DConditionModel(
        sample_size=sample_size, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(width, 2 * width, 4 * width, 4 * width),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=cross_attention_dim, attention_head_dim=8, norm_num_groups=min(32, width),
    )


def sd15_shaped_vae(width: int = 32) -> AutoencoderKL:
    """SD1.5's VAE layout (4 levels, 2 layers each) at reduced width (SD1.5: 128)."""
    return AutoencoderKL(
        block_out_channels=(width, 2 * width, 4 * width, 4 * width), layers_per_block=2, latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        norm_num_groups=min(32, width),
    )


def tiny_text_encoder(vocab_size: int, hidden_size: int = 32) -> CLIPTextModel:
    return CLIPTextModel(CLIPTextConfig(
        hidden_size=hidden_size, intermediate_size=37, num_hidden_layers=5, num_attention_heads=4,
        vocab_size=vocab_size, max_position_embeddings=77, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407,
    ))


def sd15_scheduler() -> DDPMScheduler:
    """SD1.5's noise schedule as a DDPMScheduler (what TD2 samples with)."""
    return DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                         clip_sample=False, steps_offset=1)


def tiny_pipeline(scheme: str = "syllable", seed: int = 0) -> KorDiffPipeline:
    """Random weights from `seed`; real CLIP BPE + TD2 + Hangul tokens, so prompts are encoded exactly."""
    tokenizer = clip_tokenizer_from_assets()
    extend_tokenizer(tokenizer, scheme)
    torch.manual_seed(seed)
    pipe = KorDiffPipeline(vae=tiny_vae(), text_encoder=tiny_text_encoder(len(tokenizer)), tokenizer=tokenizer,
                           unet=tiny_unet(), scheduler=sd15_scheduler())
    pipe.set_progress_bar_config(disable=True)
    return pipe
