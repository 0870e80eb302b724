"""Batched-CFG sampling (kordiff) vs the seed's two-UNet-calls-per-step loop, side by side.

    python bench/sampling.py [--runs 5] [--steps 20] [--images 1] [--width 32]
    python bench/sampling.py --device cuda --width 320 --sample-size 64    # SD1.5's width, fp16 on a GPU

Same UNet (SD1.5's block structure at reduced width), same seeds, same steps; reports medians and checks that the
batched loop reproduces the two-pass latents.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from diffusers import DDPMScheduler

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kordiff import Box, Layout, book_caption  # noqa: E402
from kordiff.loading import resolve_device_dtype  # noqa: E402
from kordiff.tiny import sd15_scheduler, sd15_shaped_unet, tiny_pipeline  # noqa: E402
from kordiff.tokens import encode_prompt, uncond_prompt  # noqa: E402


@torch.no_grad()
def seed_two_pass(pipe, caption, layout, steps, guidance, seeds):
    """The seed report's loop (section 4-4 d): cond then uncond UNet call per step, DDPM, CFG, no batching."""
    tok, te, unet = pipe.tokenizer, pipe.text_encoder, pipe.unet
    device, dtype = unet.device, unet.dtype
    n = len(seeds)
    cond_ids = torch.tensor([encode_prompt(tok, caption, layout, fit_layout=True)] * n, device=device)
    nocond_ids = torch.tensor([uncond_prompt(tok)] * n, device=device)
    hidden_cond, hidden_nocond = te(cond_ids)[0].to(dtype), te(nocond_ids)[0].to(dtype)
    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    scheduler.set_timesteps(steps)
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    size = unet.config.sample_size
    latents = torch.cat([torch.randn((1, 4, size, size), generator=g) for g in generators]).to(device, dtype)
    for t in scheduler.timesteps:
        noise_cond = unet(sample=latents, timestep=t, encoder_hidden_states=hidden_cond).sample
        noise_nocond = unet(sample=latents, timestep=t, encoder_hidden_states=hidden_nocond).sample
        residual = noise_nocond + guidance * (noise_cond - noise_nocond)
        # the seed drew step noise from the global RNG; per-image generators make the two loops comparable
        latents = scheduler.step(residual, t, latents, generator=generators).prev_sample
    return latents


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--images", type=int, default=1)
    ap.add_argument("--width", type=int, default=32, help="first block width (SD1.5: 320)")
    ap.add_argument("--sample-size", type=int, default=32, help="latent side (SD1.5: 64)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    ap.add_argument("--device", default="cpu", help="cpu (fp32) or cuda (fp16)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    pipe = tiny_pipeline()
    torch.manual_seed(0)
    unet = sd15_shaped_unet(args.width, pipe.text_encoder.config.hidden_size, args.sample_size).eval()
    pipe.register_modules(unet=unet, scheduler=sd15_scheduler())
    device, dtype = resolve_device_dtype(args.device)
    if device.type != "cpu":
        pipe.to(device, dtype)
    layout = Layout((Box("별빛의 속삭임", 10, 12, 118, 40),))
    caption = book_caption("별빛의 속삭임", "a night sky")
    seeds = list(range(args.images))
    kw = dict(num_images=args.images, num_inference_steps=args.steps, guidance_scale=7.5, seed=seeds,
              output_type="latent")

    def batched():
        return pipe(caption, layout, **kw).images

    def two_pass():
        return seed_two_pass(pipe, caption, layout, args.steps, 7.5, seeds)

    diff = (batched() - two_pass()).abs().max().item()  # also warms both paths up
    times = {"kordiff (1 UNet call/step)": [], "seed loop (2 UNet calls/step)": []}
    for _ in range(args.runs):
        for name, fn in zip(times, (batched, two_pass)):
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - t0)

    params = sum(p.numel() for p in unet.parameters()) / 1e6
    print(f"UNet: SD1.5 block structure, width {args.width}, {params:.1f}M params, latents "
          f"{args.images}x4x{args.sample_size}x{args.sample_size}, {args.steps} DDPM steps, CFG 7.5, "
          f"{device} {str(dtype).replace('torch.', '')}, {torch.get_num_threads()} threads, {args.runs} runs")
    print()
    base = statistics.median(times["seed loop (2 UNet calls/step)"])
    print("| sampler | median s | min s | speed-up |")
    print("|---|---|---|---|")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"| {name} | {med:.3f} | {min(ts):.3f} | {base / med:.2f}x |")
    print()
    tol = 1e-4 if dtype == torch.float32 else 5e-2  # fp16 rounds differently at batch 1 and 2
    print(f"max |latents(batched) - latents(two-pass)| = {diff:.2e} ({str(dtype).replace('torch.', '')})")
    assert diff <= tol, f"batched CFG diverged from the two-pass loop: {diff}"


if __name__ == "__main__":
    main()
