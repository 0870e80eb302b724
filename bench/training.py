"""Training data and step throughput, side by side: AIHub preparation, synthetic covers, cache building, and a
training step with cached VAE latents vs encoding the images every step (what the seed did).

    python bench/training.py [--runs 3] [--width 32] [--resolution 256] [--batch 4] [--steps 6] [--workers 2]

Models are SD1.5-shaped (UNet with 3 cross-attention blocks, 4-level VAE) at reduced width with random weights:
the ratio cached/uncached is what matters; on a GPU with the real widths (--width 320 --vae-width 128
--resolution 512) the VAE encoder's share, and so the gain, is larger. Medians of --runs runs.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kordiff.tiny import sd15_scheduler, sd15_shaped_unet, sd15_shaped_vae, tiny_text_encoder  # noqa: E402
from kordiff.tokens import clip_tokenizer_from_assets, extend_tokenizer  # noqa: E402
from training import dataset as ds  # noqa: E402
from training.prepare_aihub import PrepareConfig, prepare  # noqa: E402
from training.synth import SynthConfig, synthesize  # noqa: E402
from training.train import diffusion_loss  # noqa: E402


def aihub_like(src: Path, n: int) -> None:
    """n book-cover photos (1600x1200 JPEG, like AIHub's) with labels, in cp949-named zips."""
    src.mkdir(parents=True)
    photo = Image.effect_noise((1600, 1200), 40).convert("RGB")
    buf = io.BytesIO()
    photo.save(buf, format="JPEG", quality=90)
    jpeg = buf.getvalue()
    labels, images = src / "[라벨]Training_책표지.zip", src / "[원천]Training_책표지.zip"
    with zipfile.ZipFile(labels, "w") as zl, zipfile.ZipFile(images, "w") as zi:
        for i in range(n):
            name = f"책표지_총류_{i:06d}"
            label = {"images": [{"file_name": f"{name}.jpg", "width": 1600, "height": 1200}],
                     "annotations": [{"text": "한글 제목", "bbox": [100, 200, 900, 160]},
                                     {"text": "지은이", "bbox": [100, 900, 300, 60]}]}
            zl.writestr(f"{name}.json", json.dumps(label, ensure_ascii=False))
            zi.writestr(f"{name}.jpg", jpeg)


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--width", type=int, default=32, help="UNet base width (SD1.5: 320)")
    p.add_argument("--vae-width", type=int, default=32, help="VAE base width (SD1.5: 128)")
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--aihub", type=int, default=48, help="photos per preparation run")
    p.add_argument("--synth", type=int, default=200, help="covers per synth run")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: 1 on CPU, where the prep workers "
                   "share the cores and two torch threads fighting other load were slower than one)")
    a = p.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_num_threads(a.threads or (1 if device == "cpu" else torch.get_num_threads()))
    rows: list[tuple[str, str, float, str]] = []
    work = Path(tempfile.mkdtemp(prefix="kordiff-bench-"))
    try:
        # 1. preparation: AIHub zips -> samples, synthetic covers, cache (ids + latents)
        aihub_like(work / "aihub", a.aihub)
        t = []
        for r in range(a.runs):
            out = work / f"prep{r}"
            t.append(a.aihub / timed(lambda out=out: prepare(PrepareConfig(work / "aihub", out, workers=a.workers))))
        workers = f"{a.workers} workers"
        rows.append(("prepare_aihub (1600x1200 JPEG -> 512)", workers, statistics.median(t), "samples/s"))
        t = []
        for r in range(a.runs):
            out = work / f"synth{r}"
            cfg = SynthConfig(a.synth, out, size=512, workers=a.workers)
            t.append(a.synth / timed(lambda cfg=cfg: synthesize(cfg)))
        rows.append(("synth covers (512x512)", workers, statistics.median(t), "covers/s"))

        tok = clip_tokenizer_from_assets()
        extend_tokenizer(tok, "syllable")
        vae = sd15_shaped_vae(a.vae_width).to(device).eval()
        text_encoder = tiny_text_encoder(len(tok), hidden_size=32).to(device)
        unet = sd15_shaped_unet(a.width, 32, a.resolution // 8).to(device)
        sched = sd15_scheduler()
        data_dirs = (work / "synth0",)
        n_cache = min(a.synth, max(32, a.batch * (a.steps + 1)))
        t = []
        for r in range(a.runs):
            cfg = ds.DataConfig(data_dirs, work / f"cache{r}", resolution=a.resolution, cache_latents=True,
                                latent_dtype="float32", max_samples=n_cache)
            t.append(n_cache / timed(lambda cfg=cfg: ds.build_cache(cfg, tok, vae)))
        rows.append((f"cache ids + VAE latents ({a.resolution}px)", device, statistics.median(t), "samples/s"))
        folder = ds.build_cache(ds.DataConfig(data_dirs, work / "cache0", resolution=a.resolution, cache_latents=True,
                                              latent_dtype="float32", max_samples=n_cache), tok, vae)

        # 2. training step: cached latents vs VAE-encoding the images every step
        params = list(unet.parameters()) + list(text_encoder.parameters())
        opt = torch.optim.AdamW(params, lr=1e-5)

        def steps(data) -> float:
            batches = [
                ds.collate(data, list(range(i * a.batch, (i + 1) * a.batch)), [False] * a.batch, tok.pad_token_id)
                for i in range(a.steps + 1)
            ]

            def one(batch):
                loss = diffusion_loss(batch, vae, unet, text_encoder, sched, device, torch.float32)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)

            one(batches[0])  # warm-up
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for b in batches[1:]:  # batches are read (and for the uncached path, decoded) inside the timing
                one(b)
            if device == "cuda":
                torch.cuda.synchronize()
            return a.steps / (time.perf_counter() - t0)

        cached = [steps(ds.CoverDataset(folder, with_latents=True)) for _ in range(a.runs)]
        uncached = [steps(ds.CoverDataset(folder, with_latents=False)) for _ in range(a.runs)]
        shape = f"batch {a.batch}, {a.resolution}px, {device}"
        rows.append(("train step, cached latents", shape, statistics.median(cached), "steps/s"))
        rows.append(("train step, VAE encode every step", shape, statistics.median(uncached), "steps/s"))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nmedians of {a.runs} runs; torch threads {torch.get_num_threads()}; UNet width {a.width}, "
          f"VAE width {a.vae_width}\n")
    print(f"| {'what':42} | {'setting':26} | {'rate':>9} | unit      |")
    print(f"|{'-' * 44}|{'-' * 28}|{'-' * 11}|-----------|")
    for what, setting, rate, unit in rows:
        print(f"| {what:42} | {setting:26} | {rate:9.2f} | {unit:9} |")
    print(f"\ncached latents: {rows[-2][2] / rows[-1][2]:.2f}x the steps/s of encoding every step")


if __name__ == "__main__":
    main()
