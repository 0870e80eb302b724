"""KorDiffPipeline: TD2's layout-conditioned SD1.5 sampling with Hangul tokens and one UNet call per CFG step."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import PIL.Image
import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DDPMScheduler,
    DiffusionPipeline,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    UNet2DConditionModel,
    UniPCMultistepScheduler,
)
from diffusers.image_processor import VaeImageProcessor
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from .glyph import concat_glyph, glyph_channels, glyph_tensor, use_split_conv
from .layout import Layout
from .tokens import decode_prompt, encode_prompt_report, uncond_prompt

logger = logging.getLogger(__name__)

SCHEDULERS = {
    "ddpm": DDPMScheduler,  # TD2's choice
    "ddim": DDIMScheduler,
    "dpm++": DPMSolverMultistepScheduler,
    "euler": EulerDiscreteScheduler,
    "euler_a": EulerAncestralDiscreteScheduler,
    "unipc": UniPCMultistepScheduler,
}
MAX_IMAGES = 8


@dataclass
class KorDiffOutput(BaseOutput):
    """Images plus what conditioned them (TD2's 'intermediate results')."""

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor
    seeds: list[int] = field(default_factory=list)
    prompt_ids: list[int] = field(default_factory=list)
    prompt_text: str = ""
    warnings: list[str] = field(default_factory=list)


def resolve_seeds(seed: int | list[int] | None, num_images: int) -> list[int]:
    """One seed per image: a list as given, consecutive seeds from an int, random ones from None."""
    if seed is None:
        base = int(torch.randint(0, 2**31 - 1, (1,)).item())
        return [base + i for i in range(num_images)]
    if isinstance(seed, int):
        return [seed + i for i in range(num_images)]
    seeds = [int(s) for s in seed]
    if len(seeds) != num_images:
        raise ValueError(f"got {len(seeds)} seeds for {num_images} images")
    return seeds


class KorDiffPipeline(DiffusionPipeline):
    """Text-to-cover pipeline: caption + layout -> 77 ids -> CLIP -> UNet with CFG -> VAE."""

    model_cpu_offload_seq = "text_encoder->unet->vae"

    def __init__(self, vae: AutoencoderKL, text_encoder, tokenizer, unet: UNet2DConditionModel, scheduler) -> None:
        super().__init__()
        use_split_conv(unet)  # a glyph-conditioned UNet (kordiff.glyph) keeps its zero-init glyph path exact
        self.register_modules(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler)
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs) -> KorDiffPipeline:
        """diffusers' loader; a missing/unreachable pipeline raises one ModelUnavailableError instead of Hub noise."""
        from .hub import load_component

        parent = super().from_pretrained
        return load_component("kordiff pipeline", str(pretrained_model_name_or_path), parent, **kwargs)

    @property
    def image_size(self) -> int:
        return self.unet.config.sample_size * self.vae_scale_factor

    @property
    def size_multiple(self) -> int:
        """Heights and widths must be multiples of this (VAE scale x the UNet's downsampling; SD1.5: 64)."""
        return self.vae_scale_factor * 2 ** (len(self.unet.config.block_out_channels) - 1)

    def make_scheduler(self, name: str | None = None):
        """A fresh scheduler per call (schedulers are stateful: sharing one breaks concurrent requests)."""
        if name is None:
            return type(self.scheduler).from_config(self.scheduler.config)
        if name not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {name!r}; choose one of {sorted(SCHEDULERS)}")
        return SCHEDULERS[name].from_config(self.scheduler.config)

    # 1. check inputs
    def check_inputs(self, caption, layout, num_images, num_inference_steps, guidance_scale, image, strength) -> None:
        if not isinstance(caption, str):
            raise TypeError(f"caption must be a str, got {type(caption).__name__}")
        if not isinstance(layout, Layout):
            raise TypeError(f"layout must be a kordiff.Layout, got {type(layout).__name__}")
        if not 1 <= num_images <= MAX_IMAGES:
            raise ValueError(f"num_images must be 1..{MAX_IMAGES}, got {num_images}")
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
        if guidance_scale < 0:
            raise ValueError(f"guidance_scale must be >= 0, got {guidance_scale}")
        if image is not None and not 0.0 < strength <= 1.0:
            raise ValueError(f"strength must be in (0, 1], got {strength}")

    # 2. encode
    @torch.no_grad()
    def encode(self, caption: str, layout: Layout, do_cfg: bool, fit_layout: bool = True):
        """(hidden states [uncond; cond] or [cond], PromptEncoding)."""
        enc = encode_prompt_report(self.tokenizer, caption, layout, fit_layout=fit_layout)
        rows = ([uncond_prompt(self.tokenizer)] if do_cfg else []) + [enc.ids]
        ids = torch.tensor(rows, dtype=torch.long, device=self._execution_device)
        hidden = self.text_encoder(ids)[0].to(self.unet.dtype)
        return hidden, enc

    # 3. latents
    def prepare_latents(self, generators, dtype, device, image=None, timestep=None, scheduler=None,
                        height: int | None = None, width: int | None = None):
        height, width = height or self.image_size, width or self.image_size
        f = self.vae_scale_factor
        # 512x768 -> 64x96; out_channels, since in_channels may add glyph channels
        shape = (len(generators), self.unet.config.out_channels, height // f, width // f)
        noise = randn_tensor(shape, generator=generators, device=device, dtype=dtype)
        if image is None:
            return noise * scheduler.init_noise_sigma
        pixels = self.image_processor.preprocess(image, height=height, width=width)
        pixels = pixels.to(device=device, dtype=self.vae.dtype)
        init = self.vae.encode(pixels).latent_dist.mean * self.vae.config.scaling_factor
        init = init.to(dtype).expand(len(generators), -1, -1, -1)
        return scheduler.add_noise(init, noise, timestep.repeat(len(generators)))

    # 3b. glyph channels (only for a glyph-conditioned UNet, kordiff.glyph)
    def prepare_glyph(self, layout: Layout, latents: torch.Tensor, do_cfg: bool) -> torch.Tensor | None:
        """[blank x n; glyph x n] (or [glyph x n]): the unconditional half sees no glyph, as in training.

        Training drops the glyph together with the prompt (CFG dropout), so the unconditional model has learned
        "no text at all" and guidance amplifies the glyph as well as the prompt: the text is what guidance should
        sharpen. (AnyText/ControlNet keep their control in both halves, which leaves it at guidance 1.)
        """
        channels = glyph_channels(self.unet)
        if not channels:
            return None
        n, _, h, w = latents.shape
        glyph = glyph_tensor(layout, h, w, channels).to(latents.device, latents.dtype)
        glyph = glyph[None].expand(n, -1, -1, -1)
        return torch.cat([torch.zeros_like(glyph), glyph]) if do_cfg else glyph

    @torch.no_grad()
    def __call__(
        self,
        caption: str,
        layout: Layout,
        num_images: int = 1,
        num_inference_steps: int = 20,
        guidance_scale: float = 7.5,
        seed: int | list[int] | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        scheduler: str | None = None,
        image: PIL.Image.Image | None = None,
        strength: float = 0.3,
        output_type: str = "pil",
        callback_on_step_end: Callable | None = None,
        return_dict: bool = True,
        fit_layout: bool = True,
        height: int | None = None,
        width: int | None = None,
    ) -> KorDiffOutput:
        """Generate `num_images` covers for a caption and a layout (image + strength: image-to-image).

        `fit_layout` shortens a caption that would push the boxes out of the 77-token prompt (False: TD2 exactly).
        `height`/`width` default to the UNet's native square (TD2: 512); e.g. 768x512 makes a portrait cover.
        """
        # 1. check inputs; resolve device, dtype, seeds and scheduler once
        self.check_inputs(caption, layout, num_images, num_inference_steps, guidance_scale, image, strength)
        for name, v in (("height", height), ("width", width)):
            if v is not None and (v <= 0 or v % self.size_multiple):
                raise ValueError(f"{name} must be a positive multiple of {self.size_multiple}, got {v}")
        device, dtype = self._execution_device, self.unet.dtype
        if generator is not None:
            generators = generator if isinstance(generator, list) else [generator] * num_images
            seeds = [int(g.initial_seed()) for g in generators]
        else:
            seeds = resolve_seeds(seed, num_images)
            generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
        sched = self.make_scheduler(scheduler)
        do_cfg = guidance_scale > 1.0

        # 2. encode caption + layout (and the all-pad prompt for CFG) in one text-encoder call
        hidden, enc = self.encode(caption, layout, do_cfg, fit_layout)
        for w in enc.warnings:
            logger.warning(w)
        hidden = hidden.repeat_interleave(num_images, dim=0)  # [uncond x n; cond x n]

        # 3. timesteps and initial latents
        sched.set_timesteps(num_inference_steps, device=device)
        timesteps = sched.timesteps
        if image is not None:
            start = min(int(round(num_inference_steps * (1 - strength))), num_inference_steps - 1)  # >= 1 step
            timesteps = timesteps[start * sched.order:]
            if hasattr(sched, "set_begin_index"):
                sched.set_begin_index(start * sched.order)
        latents = self.prepare_latents(generators, dtype, device, image, timesteps[:1], sched, height, width)
        glyph = self.prepare_glyph(layout, latents, do_cfg)
        step_kwargs = {"generator": generators} if "generator" in inspect.signature(sched.step).parameters else {}

        # 4. denoise: cond and uncond in ONE UNet call per step
        with self.progress_bar(total=len(timesteps)) as progress:
            for i, t in enumerate(timesteps):
                model_in = torch.cat([latents] * 2) if do_cfg else latents
                model_in = sched.scale_model_input(model_in, t)
                if glyph is not None:
                    model_in = concat_glyph(model_in, glyph)
                noise = self.unet(model_in, t, encoder_hidden_states=hidden, return_dict=False)[0]
                if do_cfg:
                    uncond, cond = noise.chunk(2)
                    noise = uncond + guidance_scale * (cond - uncond)
                latents = sched.step(noise, t, latents, **step_kwargs, return_dict=False)[0]
                if callback_on_step_end is not None:
                    out = callback_on_step_end(self, i, t, {"latents": latents}) or {}
                    latents = out.get("latents", latents)
                progress.update()

        # 5. decode
        if output_type == "latent":
            images = latents
        else:
            decoded = self.vae.decode(latents.to(self.vae.dtype) / self.vae.config.scaling_factor, return_dict=False)[0]
            images = self.image_processor.postprocess(decoded.float(), output_type=output_type)
        self.maybe_free_model_hooks()
        prompt_text = decode_prompt(self.tokenizer, enc.ids)
        out = KorDiffOutput(images=images, seeds=seeds, prompt_ids=enc.ids, prompt_text=prompt_text,
                            warnings=enc.warnings)
        return out if return_dict else (images,)
