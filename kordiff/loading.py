"""Loading pipelines by name with device/dtype resolved once and one clear error when weights are missing."""

from __future__ import annotations

import logging

import torch

from .hub import (  # noqa: F401 - re-exported: kordiff.loading is where users and training/ look for them
    BASELINE,
    SD15_REPO,
    TD2_REPO,
    TINY,
    ModelUnavailableError,
    hub_reachable,
    load_component,
)
from .pipeline import KorDiffPipeline
from .tiny import tiny_pipeline
from .tokens import extend_text_encoder, extend_tokenizer

logger = logging.getLogger(__name__)

TD2_VOCAB = 49408 + 2080 + 95


class _EmptyFp32Notice(logging.Filter):
    """diffusers warns "should be kept in float32: []" on every `.to(dtype=...)`, even when no module is kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "should be kept in float32: []" not in record.getMessage()


logging.getLogger("diffusers.models.modeling_utils").addFilter(_EmptyFp32Notice())


def resolve_device_dtype(device: str | torch.device | None = None, dtype: torch.dtype | None = None):
    """CUDA + fp16 when there is a GPU, else CPU + fp32 (fp16 on CPU is slow and lossy)."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dtype is None:
        dtype = torch.float16 if device.type == "cuda" else torch.float32
    return device, dtype


def from_textdiffuser2(scheme: str = "syllable", td2_repo: str = TD2_REPO, sd_repo: str = SD15_REPO,
                       device=None, dtype=None):
    """TD2's UNet + text encoder with SD1.5's VAE/scheduler/tokenizer, tokenizer extended with Hangul (no fine-tune)."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    device, dtype = resolve_device_dtype(device, dtype)
    needed = (td2_repo, sd_repo)  # every message names both downloads, whichever part is missing
    unet = load_component("TD2 UNet", td2_repo, UNet2DConditionModel.from_pretrained, subfolder="unet",
                          dtype=dtype, needed=needed)
    text_encoder = load_component("TD2 text encoder", td2_repo, CLIPTextModel.from_pretrained,
                                  subfolder="text_encoder", needed=needed)
    vae = load_component("SD1.5 VAE", sd_repo, AutoencoderKL.from_pretrained, subfolder="vae", dtype=dtype,
                         needed=needed)
    scheduler = load_component("SD1.5 scheduler", sd_repo, DDPMScheduler.from_pretrained, subfolder="scheduler",
                               needed=needed)
    tokenizer = load_component("SD1.5 tokenizer", sd_repo, CLIPTokenizer.from_pretrained, subfolder="tokenizer",
                               needed=needed)
    extend_tokenizer(tokenizer, scheme)
    rows = text_encoder.get_input_embeddings().weight.shape[0]
    if rows != TD2_VOCAB:
        logger.warning("TD2 text encoder has %d token rows, expected %d", rows, TD2_VOCAB)
    extend_text_encoder(text_encoder, tokenizer)  # in fp32, so the mean rows are exact
    pipe = KorDiffPipeline(vae=vae, text_encoder=text_encoder.to(dtype), tokenizer=tokenizer, unet=unet,
                           scheduler=scheduler)
    return pipe.to(device)


def load_pipeline(model: str = BASELINE, device=None, dtype=None, scheme: str = "syllable"):
    """'td2' (TD2 baseline), 'tiny-random' (tests, smoke runs) or a saved kordiff pipeline dir / Hub id."""
    if model == TINY:
        return tiny_pipeline(scheme=scheme)
    if model == BASELINE:
        return from_textdiffuser2(scheme=scheme, device=device, dtype=dtype)
    device, dtype = resolve_device_dtype(device, dtype)
    return KorDiffPipeline.from_pretrained(model, dtype=dtype).to(device)
