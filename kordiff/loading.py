"""Loading pipelines by name with device/dtype resolved once and one clear error when weights are missing."""

from __future__ import annotations

import logging
import os
import socket
from functools import lru_cache
from urllib.parse import urlparse

import torch

logger = logging.getLogger(__name__)

TD2_REPO = "JingyeChen22/textdiffuser2-full-ft"  # UNet + fine-tuned text encoder
SD15_REPO = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # VAE, scheduler, tokenizer (runwayml's copy is gone)
TD2_VOCAB = 49408 + 2080 + 95
TINY = "tiny-random"
BASELINE = "td2"


class ModelUnavailableError(RuntimeError):
    """Weights that cannot be loaded here; the message says what is missing and how to get it."""


def resolve_device_dtype(device: str | torch.device | None = None, dtype: torch.dtype | None = None):
    """CUDA + fp16 when there is a GPU, else CPU + fp32 (fp16 on CPU is slow and lossy)."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dtype is None:
        dtype = torch.float16 if device.type == "cuda" else torch.float32
    return device, dtype


@lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hub answers at all (so offline users get a message now, not after minutes of retries)."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _looks_local(name: str) -> bool:
    return os.path.exists(name) or name.startswith(("/", "./", "../", "~")) or name.count("/") > 1


def _missing_message(what: str, repo: str, err: BaseException) -> str:
    reason = (str(err).splitlines() or [type(err).__name__])[0][:200].rstrip(". ") or type(err).__name__
    if _looks_local(repo):
        if not os.path.isdir(os.path.expanduser(repo)):
            return f"Could not load the {what}: there is no directory {repo!r}."
        return (f"Could not load the {what} from the directory {repo!r}: {reason}. "
                "Check that it holds a saved kordiff pipeline (model_index.json).")
    return (f"Could not load the {what} from the Hugging Face Hub repo {repo!r}: {reason}. "
            f"Download it once where there is network access (`huggingface-cli download {repo}`) and run again "
            "(the Hub cache is used offline), or pass a local directory.")


def load_component(what: str, repo: str, load, **kwargs):
    """Call `load(repo, **kwargs)`, offline-aware; any failure becomes one ModelUnavailableError."""
    if not _looks_local(repo) and not hub_reachable():
        kwargs["local_files_only"] = True  # use the cache if it is there; fail fast if not
    try:
        return load(repo, **kwargs)
    except Exception as e:  # the Hub client raises many types; users need one message
        raise ModelUnavailableError(_missing_message(what, repo, e)) from None


def from_textdiffuser2(scheme: str = "syllable", td2_repo: str = TD2_REPO, sd_repo: str = SD15_REPO,
                       device=None, dtype=None):
    """TD2's UNet + text encoder with SD1.5's VAE/scheduler/tokenizer, tokenizer extended with Hangul (no fine-tune)."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    from .pipeline import KorDiffPipeline
    from .tokens import extend_text_encoder, extend_tokenizer

    device, dtype = resolve_device_dtype(device, dtype)
    unet = load_component("TD2 UNet", td2_repo, UNet2DConditionModel.from_pretrained, subfolder="unet",
                          dtype=dtype)
    text_encoder = load_component("TD2 text encoder", td2_repo, CLIPTextModel.from_pretrained, subfolder="text_encoder")
    vae = load_component("SD1.5 VAE", sd_repo, AutoencoderKL.from_pretrained, subfolder="vae", dtype=dtype)
    scheduler = load_component("SD1.5 scheduler", sd_repo, DDPMScheduler.from_pretrained, subfolder="scheduler")
    tokenizer = load_component("SD1.5 tokenizer", sd_repo, CLIPTokenizer.from_pretrained, subfolder="tokenizer")
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
    from .pipeline import KorDiffPipeline

    if model == TINY:
        from .tiny import tiny_pipeline

        return tiny_pipeline(scheme=scheme)
    if model == BASELINE:
        return from_textdiffuser2(scheme=scheme, device=device, dtype=dtype)
    device, dtype = resolve_device_dtype(device, dtype)
    return KorDiffPipeline.from_pretrained(model, dtype=dtype).to(device)
