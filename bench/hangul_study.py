"""Does it learn Hangul? Train small models from scratch that differ only in conditioning, and read what they write.

    python -m bench.hangul_study --out DIR [--quick] [--arms syllable jamo glyph+syllable glyph+jamo]
    python -m bench.hangul_study --out DIR --device cuda --scale large      # untested on a GPU

Arms: TD2-style syllable tokens, jamo tokens, and glyph channels (kordiff.glyph) + either token scheme. Everything
else is shared and seeded: the data (training.synth's word list, fonts, backgrounds and colours), the prompt
(kordiff.tokens.encode_prompt), the loss (training.train.diffusion_loss), CFG dropout (training.dataset's
EpochSampler + collate), EMA (diffusers' EMAModel, as training.train), the UNet (diffusers UNet2DConditionModel)
and its initial weights. A seeded 20% of the study's syllables never appears in a training title.

Syllables: by default the 297 everyday syllables built from 10 initials, 6 vowels and 4 finals (`--universe
compact`), so every held-out syllable is a new combination of jamo drawn many times in training; `--universe common`
uses all 2,350 (each then appears too rarely for a CPU budget to learn, see the README).

Images are title strips of 3 syllable cells (16 px cells: 48x16 RGB at the small scale) in pixel space through a
fixed, lossless space-to-depth "autoencoder" (2x2 pixels -> 12 channels): no autoencoder to train, no
reconstruction error to blame, and 4x fewer UNet positions than pixels. Targets are drawn in the serif (Myeongjo)
and display fonts at 13-15 px in random colours on blurred synth backgrounds; the glyph image is drawn in the plain
sans font (the reference font, never a target font), so the glyph arms cannot just copy their input.

Scoring, per title set (seen syllables only / >= 1 held-out syllable / benchmark test titles and words that fit):
kordiff.ocr (sentence accuracy, NED, character accuracy) and a Tesseract-free nearest-template classifier that
labels every syllable cell with the best match among renders of all 11,172 syllables in every target font and size.
Ceiling = real target renders through the same scorers; floor = the untrained model. Results are written after
every arm (hangul_study.json, hangul_study.png, samples), so a stopped run still reports the arms it finished;
`--jobs 2` trains the arms in two 1-thread processes side by side and merges them (`--merge` does it by hand).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import random
import sys
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFilter

from kordiff.assets import has_glyph, load_font
from kordiff.config import add_dataclass_args
from kordiff.glyph import GLYPH_FONT, add_glyph_channels, glyph_tensor
from kordiff.layout import GRID, Box, Layout
from kordiff.tokens import HANGUL_SYLLABLES, clip_tokenizer_from_assets, encode_prompt, extend_tokenizer

logger = logging.getLogger("bench.hangul_study")

ARMS = ("syllable", "glyph+syllable", "jamo", "glyph+jamo")  # most telling first: a cut-short run still compares
CAPTION = "book cover title"  # constant: the title reaches the model only through the arm's conditioning
# synth's fonts minus the glyph font (sans) and the brush and handwriting faces, which are illegible at 13-15 px
# (targets no scorer, and no reader, could check)
TARGET_FONTS = {"serif": 1, "display": 1}
TARGET_SIZES = (13, 14, 15)  # per 16 px cell (scaled with the cell size)
BENCH_TITLES = Path(__file__).resolve().parent.parent / "assets" / "benchmark" / "titles.jsonl"
# The compact universe: every everyday syllable built from 10 initials x 6 vowels (3 vertical, 3 horizontal) x
# {no final, ㄱ, ㄴ, ㄹ, ㅇ} -- 297 of the 2,350. Each jamo occurs in dozens of syllables, so a held-out syllable is a
# new combination of jamo the model has drawn many times: the test jamo tokens are meant to pass. Why not all 2,350:
# at 48k training samples an arm sees each of 1,880 syllables ~77 times in 4 fonts, and the full-inventory run
# learned nothing measurable (README, "Does it learn Hangul?").
COMPACT_INITIALS = (0, 2, 3, 5, 6, 7, 9, 11, 12, 18)  # ㄱ ㄴ ㄷ ㄹ ㅁ ㅂ ㅅ ㅇ ㅈ ㅎ
COMPACT_VOWELS = (0, 4, 8, 13, 18, 20)  # ㅏ ㅓ ㅗ ㅜ ㅡ ㅣ
COMPACT_FINALS = (0, 1, 4, 8, 21)  # none ㄱ ㄴ ㄹ ㅇ
UNIVERSES = ("compact", "common")


@dataclass(frozen=True)
class Scale:
    """Model and budget of one study scale (identical for every arm)."""

    cell: int  # pixels per syllable cell (square)
    widths: tuple[int, ...]  # UNet block_out_channels
    layers: int  # UNet layers per block
    text_hidden: int  # text encoder width = cross-attention dim
    text_layers: int
    steps: int
    batch: int
    n_train: int
    n_eval: int  # titles per title set
    eval_every: int  # learning-curve points
    curve_titles: int  # titles per set at a curve point
    sample_steps: int
    bank_sizes: tuple[int, ...]  # font sizes (per 16 px cell) the template bank holds


SCALES = {
    # 1.5M-parameter UNet (as the measurement). 0.6-1.1 s per step of 32 on one core of a shared 2-core
    # machine: the full study (4 arms, --jobs 2) took 89 min with data, template bank and scoring (README).
    "small": Scale(cell=16, widths=(32, 64, 64), layers=1, text_hidden=64, text_layers=2, steps=3000, batch=32,
                   n_train=8000, n_eval=24, eval_every=500, curve_titles=8, sample_steps=20, bank_sizes=TARGET_SIZES),
    "quick": Scale(cell=16, widths=(32, 32, 32), layers=1, text_hidden=32, text_layers=1, steps=4, batch=8,
                   n_train=48, n_eval=2, eval_every=4, curve_titles=1, sample_steps=2, bank_sizes=(14,)),
    # one GPU, <= 8 minutes planned: 24 px cells, a wider UNet, more samples (untested: no GPU here)
    "large": Scale(cell=24, widths=(128, 256, 256), layers=2, text_hidden=128, text_layers=3, steps=4000, batch=256,
                   n_train=60000, n_eval=96, eval_every=1000, curve_titles=32, sample_steps=30,
                   bank_sizes=TARGET_SIZES),
}


@dataclass(frozen=True)
class StudyConfig:
    """Settings of `python -m bench.hangul_study`."""

    out: str = field(default="hangul_study_out", metadata={"help": "output folder (results, samples, log)"})
    quick: bool = field(default=False, metadata={"help": "tiny CI run (<= 2 minutes): every arm trains and samples"})
    scale: str = field(default="small", metadata={"help": "model/budget preset", "choices": ["small", "large"]})
    device: str = field(default="cpu", metadata={"help": "torch device ('cuda' for --scale large)"})
    arms: tuple[str, ...] = field(default=ARMS, metadata={"help": "arms to train, in order"})
    steps: int | None = field(default=None, metadata={"help": "training steps per arm (default: the scale's)"})
    seed: int = field(default=0, metadata={"help": "seed of the syllable split, data, init and sampling noise"})
    universe: str = field(default="compact", metadata={
        "help": "syllables titles are drawn from: 'compact' (297 everyday syllables of 10 initials, 6 vowels, 4 finals)"
                " or 'common' (all 2,350 everyday syllables)", "choices": list(UNIVERSES)})
    held_out: float = field(default=0.2, metadata={"help": "share of the universe's syllables never trained"})
    cells: int = field(default=3, metadata={"help": "syllable cells per title strip (titles of 2..cells)"})
    learning_rate: float = field(default=1e-3, metadata={"help": "AdamW LR (UNet and text encoder, from scratch)"})
    warmup_steps: int = field(default=200, metadata={"help": "linear LR warm-up"})
    cfg_dropout: float = field(default=0.1, metadata={"help": "share of dropped prompts (and glyphs)"})
    ema_decay: float = field(default=0.999, metadata={"help": "EMA decay (with diffusers' warm-up)"})
    guidance_scale: float = field(default=3.0, metadata={"help": "CFG scale at sampling"})
    ocr: bool = field(default=True, metadata={"help": "also score with kordiff.ocr (Tesseract)"})
    threads: int = field(default=2, metadata={"help": "torch CPU threads (per process)"})
    jobs: int = field(default=1, metadata={
        "help": "train the arms in this many processes side by side (1 thread each), then merge their results"})

    def __post_init__(self) -> None:
        bad = [a for a in self.arms if a not in ARMS]
        if bad:
            raise ValueError(f"unknown arms {bad}; choose from {list(ARMS)}")
        if self.universe not in UNIVERSES:
            raise ValueError(f"universe must be one of {list(UNIVERSES)}, got {self.universe!r}")
        if not 0.0 < self.held_out < 1.0:
            raise ValueError("held_out must be in (0, 1)")
        if self.cells < 2:
            raise ValueError("cells must be >= 2")
        object.__setattr__(self, "arms", tuple(self.arms))

    @property
    def preset(self) -> Scale:
        s = SCALES["quick" if self.quick else self.scale]
        return dataclasses.replace(s, steps=self.steps) if self.steps else s


# ---------------------------------------------------------------- syllables, titles, images


def common_syllables() -> list[str]:
    from training.synth import KS_X_1001

    return sorted(KS_X_1001)


def universe_syllables(universe: str) -> list[str]:
    """The syllables a study draws titles from: 'common' = the 2,350 everyday ones, 'compact' = 297 of them."""
    common = common_syllables()
    if universe == "common":
        return common
    if universe != "compact":
        raise ValueError(f"universe must be one of {list(UNIVERSES)}, got {universe!r}")
    keep = {chr(0xAC00 + (i * 21 + v) * 28 + f) for i in COMPACT_INITIALS for v in COMPACT_VOWELS
            for f in COMPACT_FINALS}
    return [c for c in common if c in keep]


def split_syllables(seed: int, held_out: float, universe: str = "common") -> tuple[list[str], list[str]]:
    """(train, held-out) syllables of the universe: a seeded share is never in a training title."""
    syl = universe_syllables(universe)
    random.Random(f"hangul-study-split:{seed}").shuffle(syl)
    k = round(len(syl) * held_out)
    return sorted(syl[k:]), sorted(syl[:k])


def word_pool(cells: int) -> list[str]:
    """training.synth's Korean words of 2..cells syllables (Hangul only)."""
    from training.synth import load_words

    w = load_words()
    words = {x for sec in ("nouns", "modifiers") for x in w[sec]}
    return sorted(x for x in words if 2 <= len(x) <= cells and all("가" <= c <= "힣" for c in x))


def train_titles(n: int, train_syl: list[str], cells: int, seed: int) -> list[str]:
    """Training titles: a third real words made only of training syllables, the rest random syllable strings."""
    allowed = set(train_syl)
    words = [x for x in word_pool(cells) if set(x) <= allowed]
    rng = random.Random(f"hangul-study-train:{seed}")
    out = []
    for _ in range(n):
        if words and rng.random() < 1 / 3:
            out.append(rng.choice(words))
        else:
            out.append("".join(rng.choice(train_syl) for _ in range(rng.randint(2, cells))))
    return out


def eval_titles(n: int, train_syl: list[str], held: list[str], cells: int, seed: int,
                exclude: set[str]) -> dict[str, list[str]]:
    """The three title sets: every syllable seen / >= 1 held-out syllable / benchmark test titles that fit."""
    rng = random.Random(f"hangul-study-eval:{seed}")
    allowed, held_set = set(train_syl), set(held)
    words = word_pool(cells)
    seen_words = [x for x in words if set(x) <= allowed and x not in exclude]
    unseen_words = [x for x in words if set(x) & held_set and set(x) <= allowed | held_set]
    rng.shuffle(seen_words)
    rng.shuffle(unseen_words)
    seen = seen_words[: n // 2]
    while len(seen) < n:
        t = "".join(rng.choice(train_syl) for _ in range(rng.randint(2, cells)))
        if t not in exclude and t not in seen:
            seen.append(t)
    unseen = unseen_words[: n // 2]
    while len(unseen) < n:
        k = rng.randint(2, cells)
        chars = [rng.choice(train_syl) for _ in range(k)]
        chars[rng.randrange(k)] = rng.choice(held)
        unseen.append("".join(chars))
    return {"seen": seen, "unseen": unseen, "benchmark": benchmark_titles(cells)[:n]}


def benchmark_titles(cells: int) -> list[str]:
    """Test-split benchmark titles of <= cells characters, then their words of 2..cells syllables."""
    rows = [json.loads(x) for x in BENCH_TITLES.read_text(encoding="utf-8").splitlines() if x.strip()]
    titles = [r["title"] for r in rows if r.get("split") == "test"]

    def fits(t: str) -> bool:
        return 2 <= len(t) <= cells and all("가" <= c <= "힣" or c == " " for c in t) and t.strip() == t

    out = [t for t in titles if fits(t)]
    for t in titles:
        for w in t.split():
            if fits(w) and w not in out:
                out.append(w)
    return out


def title_layout(title: str, cells: int) -> Layout:
    """One box over the title's cells (grid coordinates per axis of the strip)."""
    return Layout((Box(title, 0, 0, round(GRID * len(title) / cells), GRID),))


def render_target(title: str, cells: int, cell: int, rng: random.Random, nrng: np.random.Generator) -> Image.Image:
    """A training/ceiling image: synth background strip, one target font/size/colour, one syllable per cell."""
    from training.synth import make_background, pick_text_colour

    width, height = cells * cell, cell
    bg, _ = make_background(rng, nrng, width, ())
    y = rng.randint(0, width - height)
    # blurred: at 16 px a background texture is pixel noise the model would spend its capacity on
    img = bg.crop((0, y, width, y + height)).filter(ImageFilter.GaussianBlur(1.5))
    colour = pick_text_colour(rng, np.asarray(img, np.float32).reshape(-1, 3).mean(0))
    fonts = [f for f in TARGET_FONTS if all(has_glyph(f, c) for c in title)]
    font = rng.choices(fonts, weights=[TARGET_FONTS[f] for f in fonts])[0]
    size = round(rng.choice(TARGET_SIZES) * cell / 16)
    draw = ImageDraw.Draw(img)
    for i, ch in enumerate(title):
        if ch != " ":
            draw.text((cell * (i + 0.5), cell / 2), ch, font=load_font(font, size), fill=colour, anchor="mm")
    return img


def to_tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img, np.uint8).copy()).permute(2, 0, 1)


def to_image(x: torch.Tensor) -> Image.Image:
    """[3, H, W] in [-1, 1] -> RGB image."""
    arr = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr, "RGB")


# ---------------------------------------------------------------- scoring


class TemplateBank:
    """Nearest-template syllable classifier: every syllable in every target font and size, one cell each.

    Matching is by |correlation| (light or dark text alike), maximised over shifts of up to `shift` px: a
    syllable drawn 1-2 px off the template's position is still that syllable. Exact-position matching read real
    renders shifted by 1 px at 0.30 and by 2 px at 0.03 (shift-tolerant: 1.00 and 0.98), so it hid any model that
    placed a correct syllable a pixel off; noise still matches nothing (tests/test_hangul_study.py).
    """

    def __init__(self, cell: int, sizes: tuple[int, ...] = TARGET_SIZES, shift: int = 2):
        self.cell, self.shift = cell, shift
        feats, labels = [], []
        for font in TARGET_FONTS:
            for s in sizes:
                f = load_font(font, round(s * cell / 16))
                for k, ch in enumerate(HANGUL_SYLLABLES):
                    if font == "display" and not has_glyph(font, ch):
                        continue
                    img = Image.new("L", (cell, cell), 0)
                    ImageDraw.Draw(img).text((cell / 2, cell / 2), ch, font=f, fill=255, anchor="mm")
                    feats.append(np.frombuffer(img.tobytes(), np.uint8))
                    labels.append(k)
        self.features = self._normalise(np.stack(feats).astype(np.float32))
        self.labels = np.asarray(labels)

    @staticmethod
    def _normalise(x: np.ndarray) -> np.ndarray:
        x = x - x.mean(1, keepdims=True)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-6)

    def classify(self, cells: np.ndarray) -> list[str]:
        """Cells [n, shifts, cell*cell] (or [n, cell*cell]) -> best syllable each, best shift per template."""
        if len(cells) == 0:
            return []
        cells = cells.reshape(len(cells), -1, self.cell * self.cell).astype(np.float32)
        out = []
        for lo in range(0, len(cells), 8):  # 8 cells x 25 shifts x 40k templates at a time: ~30 MB
            chunk = cells[lo:lo + 8]
            sims = np.abs(self._normalise(chunk.reshape(-1, chunk.shape[-1])) @ self.features.T)
            best = sims.reshape(len(chunk), chunk.shape[1], -1).max(1).argmax(1)
            out += [HANGUL_SYLLABLES[self.labels[i]] for i in best]
        return out

    def read(self, img: Image.Image, title: str) -> str:
        """One syllable per non-space cell of the title (spaces kept), as a string like the title."""
        c, m = self.cell, self.shift
        grey = np.pad(np.asarray(img.convert("L"), np.float32), m, mode="edge")
        idx = [i for i, ch in enumerate(title) if ch != " "]
        cells = [np.stack([grey[m + dy:m + dy + c, m + i * c + dx:m + (i + 1) * c + dx].reshape(-1)
                           for dy in range(-m, m + 1) for dx in range(-m, m + 1)]) for i in idx]
        got = self.classify(np.stack(cells)) if cells else []
        out = list(title)
        for i, g in zip(idx, got):
            out[i] = g
        return "".join(out)


def score_images(images: list[Image.Image], titles: list[str], bank: TemplateBank, reader=None) -> dict:
    """Template top-1 (per syllable cell and per title) and, with a reader, kordiff.ocr's metrics."""
    from kordiff.ocr import score_text

    cells = right = exact = 0
    ocr = []
    for img, title in zip(images, titles):
        read = bank.read(img, title)
        ok = [a == b for a, b in zip(read, title) if a != " "]
        cells += len(ok)
        right += sum(ok)
        exact += all(ok)
        if reader is not None:
            crop = reader.crop_box(img, (0, 0, bank.cell * len(title), img.height), line=True)  # the title's cells
            ocr.append(score_text(title, reader.read_image(crop, reader.config.line_psms).text))
    n = max(1, len(titles))
    out = {"n": len(titles), "template_top1": right / max(1, cells), "template_title_acc": exact / n}
    if reader is not None:
        out.update(ocr_sentence_acc=sum(s.correct for s in ocr) / n, ocr_ned=sum(s.ned for s in ocr) / n,
                   ocr_char_acc=sum(s.char_accuracy for s in ocr) / n)
    return out


# ---------------------------------------------------------------- models


class SpaceToDepth(torch.nn.Module):
    """A fixed, lossless 'autoencoder' with the VAE interface diffusion_loss uses: 2x2 pixels <-> 12 channels."""

    class _Dist:
        def __init__(self, z):
            self.mean = z

        def sample(self, generator=None):
            return self.mean

    class _Enc:
        def __init__(self, z):
            self.latent_dist = SpaceToDepth._Dist(z)

    def __init__(self, factor: int = 2):
        super().__init__()
        self.factor = factor
        self.config = argparse.Namespace(scaling_factor=1.0)

    def encode(self, pixels: torch.Tensor):
        return self._Enc(F.pixel_unshuffle(pixels, self.factor))

    def decode(self, latents: torch.Tensor):
        return (F.pixel_shuffle(latents, self.factor),)


def noise_scheduler():
    """Cosine schedule + v-prediction: usual for small pixel-space models (SD's schedule is for latents)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction",
                         clip_sample=False)


@lru_cache(maxsize=2)
def scheme_tokenizer(scheme: str):
    """CLIP BPE + TD2 + the scheme's Hangul tokens (built once per scheme; read-only afterwards)."""
    tok = clip_tokenizer_from_assets()
    extend_tokenizer(tok, scheme)
    vocab = tok.get_vocab()
    tok.get_vocab = lambda: vocab  # kordiff.tokens.detect_scheme asks per prompt: 130 ms on a 62k vocab, same answer
    return tok


def build_arm(arm: str, s: Scale, cells: int, seed: int):
    """(tokenizer, text encoder, UNet) for an arm: the same UNet init for every arm (glyph rows start at zero)."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tok = scheme_tokenizer(arm.split("+")[-1])
    torch.manual_seed(seed)
    n = len(s.widths)
    unet = UNet2DConditionModel(
        sample_size=(s.cell // 2, cells * s.cell // 2), in_channels=12, out_channels=12, layers_per_block=s.layers,
        block_out_channels=s.widths, down_block_types=("CrossAttnDownBlock2D",) * (n - 1) + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (n - 1), cross_attention_dim=s.text_hidden,
        attention_head_dim=2, norm_num_groups=min(32, s.widths[0]),
    )
    if arm.startswith("glyph"):
        add_glyph_channels(unet, factor=2)
    torch.manual_seed(seed + 1)
    te = CLIPTextModel(CLIPTextConfig(  # kordiff.tiny's text encoder, sized by the scale
        hidden_size=s.text_hidden, intermediate_size=2 * s.text_hidden, num_hidden_layers=s.text_layers,
        num_attention_heads=4, vocab_size=len(tok), max_position_embeddings=77, bos_token_id=49406,
        eos_token_id=49407, pad_token_id=49407))
    return tok, te, unet


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# ---------------------------------------------------------------- data


class StripData:
    """In-memory training strips with the item interface of training.dataset.CoverDataset (for collate)."""

    with_latents = False

    def __init__(self, pixels: torch.Tensor, ids: torch.Tensor, glyph_index: torch.Tensor):
        self.pixels, self.input_ids, self.glyph_index = pixels, ids, glyph_index

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.input_ids[i], "pixels": self.pixels[i].float() / 127.5 - 1.0}


def make_data(titles: list[str], cells: int, cell: int, seed: int, tokenizers: dict) -> dict:
    """Rendered strips (uint8), prompt ids per scheme, glyph per unique title (kordiff.glyph, reference font)."""
    pixels, glyph_of, glyph_index = [], {}, []
    for i, t in enumerate(titles):
        pixels.append(to_tensor(render_target(t, cells, cell, random.Random(f"{seed}:{i}"),
                                              np.random.default_rng([seed, i]))))
        if t not in glyph_of:
            glyph_of[t] = len(glyph_of)
        glyph_index.append(glyph_of[t])
    glyphs = torch.stack([glyph_tensor(title_layout(t, cells), cell // 2, cells * cell // 2, 4) for t in glyph_of])
    ids = {name: torch.tensor([encode_prompt(tok, CAPTION, title_layout(t, cells), fit_layout=True) for t in titles])
           for name, tok in tokenizers.items()}
    return {"pixels": torch.stack(pixels), "ids": ids, "glyphs": glyphs, "glyph_index": torch.tensor(glyph_index)}


# ---------------------------------------------------------------- train / sample


@torch.no_grad()
def sample(unet, te, tok, titles: list[str], cells: int, s: Scale, seed: int, guidance: float, device) -> list:
    """Batched CFG sampling (uncond = all-pad prompt and a blank glyph, as KorDiffPipeline), fixed noise per title."""
    from diffusers import DDIMScheduler

    glyph = unet.config.in_channels > unet.config.out_channels
    sched = DDIMScheduler.from_config(noise_scheduler().config)
    sched.set_timesteps(s.sample_steps)
    h, w = s.cell // 2, cells * s.cell // 2
    noise = torch.stack([torch.randn(12, h, w, generator=torch.Generator().manual_seed(seed + k))
                         for k in range(len(titles))]).to(device)
    images = []
    for lo in range(0, len(titles), 64):
        chunk = titles[lo:lo + 64]
        n = len(chunk)
        ids = [encode_prompt(tok, CAPTION, title_layout(t, cells), fit_layout=True) for t in chunk]
        ids = torch.tensor([[tok.pad_token_id] * len(ids[0])] * n + ids, device=device)
        hidden = te(ids)[0]
        g = None
        if glyph:
            g = torch.stack([glyph_tensor(title_layout(t, cells), h, w, 4) for t in chunk]).to(device)
            g = torch.cat([torch.zeros_like(g), g])
        x = noise[lo:lo + n] * sched.init_noise_sigma
        for t in sched.timesteps:
            inp = torch.cat([x, x])
            if g is not None:
                inp = torch.cat([inp, g], 1)
            out = unet(inp, t.to(device), hidden, return_dict=False)[0]
            u, c = out.chunk(2)
            x = sched.step(u + guidance * (c - u), t, x, return_dict=False)[0]
        images += [to_image(p) for p in F.pixel_shuffle(x.float().cpu(), 2)]
    return images


def train_arm(arm: str, cfg: StudyConfig, data: dict, sets: dict, bank: TemplateBank, log) -> dict:
    """Train one arm for the step budget (learning curve on the way); returns the EMA model and its record."""
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel

    from training import dataset as ds
    from training.train import diffusion_loss

    s, device = cfg.preset, torch.device(cfg.device)
    scheme = arm.split("+")[-1]
    tok, te, unet = build_arm(arm, s, cfg.cells, cfg.seed)
    unet.to(device).train()
    te.to(device).train()
    ae = SpaceToDepth(2)
    sched = noise_scheduler()
    params = [p for m in (unet, te) for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=1e-2)
    lr = get_scheduler("constant_with_warmup", optimizer=opt, num_warmup_steps=cfg.warmup_steps,
                       num_training_steps=s.steps)
    unet_params = list(unet.parameters()) + list(te.parameters())
    ema = EMAModel(unet_params, decay=cfg.ema_decay, use_ema_warmup=True, power=3 / 4)
    ema.to(device)
    strips = StripData(data["pixels"], data["ids"][scheme], data["glyph_index"])
    sampler = ds.EpochSampler(len(strips), s.batch, cfg.seed, cfg_dropout=cfg.cfg_dropout)
    batches = sampler.batches(ds.DataPosition())
    glyph = arm.startswith("glyph")
    curve, losses = [], []
    torch.manual_seed(cfg.seed + 7)  # diffusion_loss's timesteps/noise: the same draws for every arm
    t0 = time.perf_counter()
    train_seconds = 0.0
    for step in range(1, s.steps + 1):
        t_step = time.perf_counter()
        idx, drop, _ = next(batches)
        batch = ds.collate(strips, idx, drop, tok.pad_token_id)  # CFG dropout: all-pad prompt ...
        if glyph:
            g = data["glyphs"][data["glyph_index"][idx]].clone()
            g[torch.tensor(drop)] = 0.0  # ... and, for a glyph arm, no glyph either (the sampler's uncond half)
            batch["glyph"] = g  # diffusion_loss feeds [noisy; glyph] to the UNet, as training.train does
        loss = diffusion_loss(batch, ae, unet, te, sched, device, torch.float32)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        lr.step()
        opt.zero_grad(set_to_none=True)
        ema.step(unet_params)
        losses.append(loss.item())
        train_seconds += time.perf_counter() - t_step
        if step % 50 == 0 or step == s.steps:
            log(f"{arm}: step {step}/{s.steps} loss {np.mean(losses[-50:]):.4f} "
                f"({train_seconds / step:.2f} s/step)")
        if step % s.eval_every == 0 or step == s.steps:
            curve.append(curve_point(arm, step, unet, te, tok, ema, unet_params, sets, cfg, bank))
            log(f"{arm}: curve {curve[-1]}")
            unet.train()
            te.train()
    ema.copy_to(unet_params)  # from here on the arm is its EMA model
    unet.eval()
    te.eval()
    return {"tok": tok, "te": te, "unet": unet, "losses": losses, "curve": curve, "train_seconds": train_seconds,
            "wall_seconds": time.perf_counter() - t0, "params_unet": n_params(unet), "params_text": n_params(te)}


def curve_point(arm, step, unet, te, tok, ema, params, sets, cfg, bank) -> dict:
    """Template top-1 of the EMA model on the first titles of the seen and unseen sets."""
    s = cfg.preset
    ema.store(params)
    ema.copy_to(params)
    unet.eval()
    te.eval()
    point = {"step": step}
    for name in ("seen", "unseen"):
        titles = sets[name][: s.curve_titles]
        imgs = sample(unet, te, tok, titles, cfg.cells, s, cfg.seed, cfg.guidance_scale, torch.device(cfg.device))
        point[name] = round(score_images(imgs, titles, bank)["template_top1"], 4)
    ema.restore(params)
    return point


# ---------------------------------------------------------------- outputs


def write_png(path: Path, rows: list[tuple[str, list[Image.Image]]], titles: list[str], zoom: int = 3) -> None:
    """Rows of strips (ground truth, glyph input, floor, arms) under the titles they should show."""
    if not rows or not rows[0][1]:
        return
    w, h = rows[0][1][0].size
    label_w, gap, head = 150, 6, 22
    cols = len(titles)
    sheet = Image.new("RGB", (label_w + cols * (w * zoom + gap), head + len(rows) * (h * zoom + gap)), "white")
    draw = ImageDraw.Draw(sheet)
    font = load_font("sans", 13)
    for c, t in enumerate(titles):
        draw.text((label_w + c * (w * zoom + gap) + 2, 3), t, fill="black", font=font)
    for r, (name, imgs) in enumerate(rows):
        y = head + r * (h * zoom + gap)
        draw.text((4, y + h * zoom // 2 - 7), name, fill="black", font=font)
        for c, img in enumerate(imgs[:cols]):
            sheet.paste(img.convert("RGB").resize((w * zoom, h * zoom), Image.Resampling.NEAREST),
                        (label_w + c * (w * zoom + gap), y))
    sheet.save(path)


def run(cfg: StudyConfig, progress=None) -> dict:
    """The whole study; returns the results dict (also written to {out}/hangul_study.json after every arm)."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    s = cfg.preset
    t_start = time.perf_counter()

    def log(msg: str) -> None:
        logger.info(msg)
        if progress is not None:
            progress(msg)

    train_syl, held = split_syllables(cfg.seed, cfg.held_out, cfg.universe)
    titles = train_titles(s.n_train, train_syl, cfg.cells, cfg.seed)
    assert not set("".join(titles)) & set(held), "a held-out syllable leaked into training titles"
    sets = eval_titles(s.n_eval, train_syl, held, cfg.cells, cfg.seed, exclude=set(titles))
    log(f"{len(train_syl)} training / {len(held)} held-out syllables; {len(titles)} training strips; "
        f"eval sets {[len(v) for v in sets.values()]}")
    schemes = sorted({a.split("+")[-1] for a in cfg.arms})
    toks = {sch: scheme_tokenizer(sch) for sch in schemes}
    data = make_data(titles, cfg.cells, s.cell, cfg.seed, toks)
    log(f"data ready ({time.perf_counter() - t_start:.0f} s)")
    bank = TemplateBank(s.cell, s.bank_sizes)
    log(f"template bank: {len(bank.labels)} renders ({time.perf_counter() - t_start:.0f} s)")
    reader = None
    if cfg.ocr:
        try:
            from kordiff.ocr import default_reader

            reader = default_reader()
        except (ImportError, FileNotFoundError) as e:
            log(f"OCR unavailable ({e}); template scores only")

    results: dict = {
        "config": dataclasses.asdict(cfg), "scale": dataclasses.asdict(s),
        "split": {"train_syllables": len(train_syl), "held_out_syllables": len(held), "seed": cfg.seed,
                  "held_out_sample": "".join(held[:40])},
        "title_sets": sets, "title_set_syllables": set_composition(sets, train_syl, held),
        "train_strips": len(titles), "arms": {}, "ceiling": {}, "floor": {},
        "sample_seeds": f"{cfg.seed} + title index", "torch_threads": cfg.threads, "device": cfg.device,
    }
    show = sets["seen"][:4] + sets["unseen"][:4] + sets["benchmark"][:2]
    rows: list[tuple[str, list[Image.Image]]] = []

    # ceiling: the target renderer itself (seeded per title), through the same scorers
    real = {}
    for name, ts in sets.items():
        real[name] = [render_target(t, cfg.cells, s.cell, random.Random(f"eval:{cfg.seed}:{name}:{k}"),
                                    np.random.default_rng([cfg.seed, 99, k])) for k, t in enumerate(ts)]
        results["ceiling"][name] = score_images(real[name], ts, bank, reader)
    first = {}
    for name in ("benchmark", "unseen", "seen"):  # `show` takes seen, unseen, then benchmark titles
        first.update({t: real[name][k] for k, t in enumerate(sets[name])})
    rows.append(("ground truth", [first[t] for t in show]))
    rows.append(("glyph input", [glyph_strip(t, cfg.cells, s.cell) for t in show]))
    log(f"ceiling {results['ceiling']}")

    # floor: an untrained model (the syllable arm's init), through the same sampler and scorers
    tok, te, unet = build_arm(cfg.arms[0], s, cfg.cells, cfg.seed)
    unet.to(cfg.device).eval()
    te.to(cfg.device).eval()
    for name, ts in sets.items():
        imgs = sample(unet, te, tok, ts, cfg.cells, s, cfg.seed, cfg.guidance_scale, torch.device(cfg.device))
        results["floor"][name] = score_images(imgs, ts, bank, reader)
    rows.append(("untrained", sample(unet, te, tok, show, cfg.cells, s, cfg.seed, cfg.guidance_scale,
                                     torch.device(cfg.device))))
    results["floor"]["arm"] = cfg.arms[0]
    log(f"floor {results['floor']}")
    save(out, results, rows, show)

    for arm in cfg.arms:
        rec = train_arm(arm, cfg, data, sets, bank, log)
        t_eval = time.perf_counter()
        res = {"steps": s.steps, "batch": s.batch, "train_seconds": round(rec["train_seconds"], 1),
               "wall_seconds": round(rec["wall_seconds"], 1), "params_unet": rec["params_unet"],
               "params_text_encoder": rec["params_text"], "final_loss_mean_50": float(np.mean(rec["losses"][-50:])),
               "curve": rec["curve"], "sets": {}}
        arm_dir = out / "samples" / arm.replace("+", "_")
        arm_dir.mkdir(parents=True, exist_ok=True)
        for name, ts in sets.items():
            imgs = sample(rec["unet"], rec["te"], rec["tok"], ts, cfg.cells, s, cfg.seed, cfg.guidance_scale,
                          torch.device(cfg.device))
            res["sets"][name] = score_images(imgs, ts, bank, reader)
            for k, img in enumerate(imgs):
                img.save(arm_dir / f"{name}-{k:02d}.png")
        res["eval_seconds"] = round(time.perf_counter() - t_eval, 1)
        results["arms"][arm] = res
        rows.append((arm, sample(rec["unet"], rec["te"], rec["tok"], show, cfg.cells, s, cfg.seed,
                                 cfg.guidance_scale, torch.device(cfg.device))))
        results["total_wall_seconds"] = round(time.perf_counter() - t_start, 1)
        save(out, results, rows, show)
        log(f"{arm}: {res['sets']}")
        del rec
    results["complete"] = True
    save(out, results, rows, show)
    return results


def set_composition(sets: dict[str, list[str]], train_syl: list[str], held: list[str]) -> dict:
    """Per title set, the share of its syllables that were trained, held out, or outside the study's universe."""
    train_set, held_set = set(train_syl), set(held)
    out = {}
    for name, ts in sets.items():
        chars = [c for t in ts for c in t if c != " "]
        n = max(1, len(chars))
        trained = sum(c in train_set for c in chars)
        held_n = sum(c in held_set for c in chars)
        out[name] = {"trained": round(trained / n, 3), "held_out": round(held_n / n, 3),
                     "outside_universe": round((len(chars) - trained - held_n) / n, 3)}
    return out


def glyph_strip(title: str, cells: int, cell: int) -> Image.Image:
    from kordiff.glyph import render_glyph

    return render_glyph(title_layout(title, cells), cells * cell, cell, GLYPH_FONT).convert("RGB")


def _slug(name: str) -> str:
    return name.replace("+", "_").replace(" ", "_")


def save(out: Path, results: dict, rows, show) -> None:
    """Results so far (atomic JSON write), each sheet row's strips (for --merge) and the comparison sheet."""
    results["sheet"] = {"titles": show, "rows": [name for name, _ in rows]}
    for name, imgs in rows:
        d = out / "rows" / _slug(name)
        d.mkdir(parents=True, exist_ok=True)
        for k, img in enumerate(imgs):
            img.save(d / f"{k:02d}.png")
    tmp = out / "hangul_study.json.tmp"
    tmp.write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(out / "hangul_study.json")
    write_png(out / "hangul_study.png", rows, show)


def merge(dirs: list[Path], out: Path) -> dict:
    """One results file and sheet from studies run side by side (same seed and scale, different arms each)."""
    import shutil

    parts = [json.loads((Path(d) / "hangul_study.json").read_text(encoding="utf-8")) for d in dirs]
    first = parts[0]
    for d, r in zip(dirs, parts):
        same = {k: r["config"][k] for k in ("seed", "scale", "universe", "cells", "held_out", "quick")}
        if same != {k: first["config"][k] for k in same} or r["title_sets"] != first["title_sets"]:
            raise ValueError(f"{d}: not the same study as {dirs[0]} (seed, scale, universe, cells or titles differ)")
    results = dict(first, arms={})
    fixed = [n for n in first["sheet"]["rows"] if n not in first["arms"]]  # ground truth, glyph input, untrained
    rows = [(n, _row_images(Path(dirs[0]), n)) for n in fixed]
    out.mkdir(parents=True, exist_ok=True)
    for d, r in zip(dirs, parts):
        for arm, res in r["arms"].items():
            results["arms"][arm] = res
            rows.append((arm, _row_images(Path(d), arm)))
            src = Path(d) / "samples" / _slug(arm)
            if src.is_dir() and Path(d).resolve() != out.resolve():
                shutil.copytree(src, out / "samples" / _slug(arm), dirs_exist_ok=True)
    results["config"] = dict(first["config"], arms=list(results["arms"]), out=str(out), jobs=len(dirs))
    results["merged_from"] = [str(d) for d in dirs]
    results["complete"] = all(r.get("complete") for r in parts)
    results["total_wall_seconds"] = max(r.get("total_wall_seconds", 0) for r in parts)  # they ran side by side
    save(out, results, rows, first["sheet"]["titles"])
    return results


def _row_images(d: Path, name: str) -> list[Image.Image]:
    files = sorted((d / "rows" / _slug(name)).glob("*.png"))
    return [Image.open(f).convert("RGB") for f in files]


def markdown_table(results: dict) -> str:
    """The README table: template top-1 / OCR sentence accuracy / OCR NED per title set, ceiling and floor too."""
    sets = ("seen", "unseen", "benchmark")
    head = "| model | steps | " + " | ".join(f"{s}: template top-1 / OCR sent. acc / OCR NED" for s in sets) + " |"
    lines = [head, "|" + "---|" * (2 + len(sets))]

    def row(name: str, steps, scores: dict) -> str:
        cells = []
        for s in sets:
            r = scores.get(s, {})
            ocr = f"{r['ocr_sentence_acc']:.2f} / {r['ocr_ned']:.2f}" if "ocr_ned" in r else "- / -"
            cells.append(f"{r.get('template_top1', 0):.2f} / {ocr}" if r else "-")
        return f"| {name} | {steps} | " + " | ".join(cells) + " |"

    lines.append(row("ceiling (real renders)", "-", results.get("ceiling", {})))
    lines.append(row("floor (untrained)", 0, results.get("floor", {})))
    for arm, r in results.get("arms", {}).items():
        lines.append(row(arm, r["steps"], r["sets"]))
    return "\n".join(lines)


def rescore(out: Path, n: int | None = None, ocr: bool = True) -> dict:
    """Score a finished study again from its saved samples with today's scorers (ceiling and floor redrawn).

    For results written before the template scorer became shift-tolerant: the arms' samples are PNGs (lossless),
    so re-reading them is the same measurement with a better ruler. The old scores are kept as `*_exact_position`.
    """
    results = json.loads((out / "hangul_study.json").read_text(encoding="utf-8"))
    cfg = StudyConfig(**{k: (tuple(v) if k == "arms" else v) for k, v in results["config"].items()
                         if k in {f.name for f in dataclasses.fields(StudyConfig)}})
    s, device = cfg.preset, torch.device("cpu")
    reader = None
    if ocr:
        from kordiff.ocr import default_reader

        reader = default_reader()
    bank = TemplateBank(s.cell, s.bank_sizes)
    first = next(iter(results["arms"]), None)
    saved = {name: len(list((out / "samples" / _slug(first)).glob(f"{name}-*.png"))) if first else len(ts)
             for name, ts in results["title_sets"].items()}
    sets = {name: ts[: min(n or len(ts), saved[name])] for name, ts in results["title_sets"].items()}
    results["rescored"] = {"scorer": f"template top-1 with +-{bank.shift} px shift search; kordiff.ocr",
                           "titles_per_set": {k: len(v) for k, v in sets.items()}}
    results["ceiling_exact_position"], results["floor_exact_position"] = results["ceiling"], results["floor"]
    results["ceiling"] = {}
    for name, ts in sets.items():
        real = [render_target(t, cfg.cells, s.cell, random.Random(f"eval:{cfg.seed}:{name}:{k}"),
                              np.random.default_rng([cfg.seed, 99, k])) for k, t in enumerate(ts)]
        results["ceiling"][name] = score_images(real, ts, bank, reader)
    arm0 = results["floor"].get("arm", cfg.arms[0])
    tok, te, unet = build_arm(arm0, s, cfg.cells, cfg.seed)
    unet.eval()
    te.eval()
    results["floor"] = {"arm": arm0}
    for name, ts in sets.items():
        imgs = sample(unet, te, tok, ts, cfg.cells, s, cfg.seed, cfg.guidance_scale, device)
        results["floor"][name] = score_images(imgs, ts, bank, reader)
    for arm, res in results["arms"].items():
        res["sets_exact_position"] = res["sets"]
        res["sets"] = {}
        for name, ts in sets.items():
            imgs = [Image.open(out / "samples" / _slug(arm) / f"{name}-{k:02d}.png").convert("RGB")
                    for k in range(len(ts))]
            res["sets"][name] = score_images(imgs, ts, bank, reader)
        logger.info("%s: %s", arm, res["sets"])
    tmp = out / "hangul_study.json.tmp"
    tmp.write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(out / "hangul_study.json")
    return results


def run_jobs(cfg: StudyConfig, argv: list[str]) -> dict:
    """The arms dealt round-robin to `cfg.jobs` processes of 1 thread (small convs scale poorly over threads, and a
    busy core stalls a 2-thread process at every barrier), each writing {out}/part-K; then merged into {out}."""
    import subprocess

    groups = [g for g in (list(cfg.arms[k::cfg.jobs]) for k in range(cfg.jobs)) if g]
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    parts, procs = [], []
    for k, arms in enumerate(groups):
        part = out / f"part-{k}"
        parts.append(part)
        log = (out / f"part-{k}.log").open("w", encoding="utf-8")
        # the caller's flags as given, then the part's own: argparse lets the last occurrence win
        cmd = [sys.executable, "-m", "bench.hangul_study", *argv, "--jobs", "1", "--out", str(part), "--threads", "1",
               "--arms", *arms]
        logger.info("job %d: %s (log: %s)", k, " ".join(arms), log.name)
        procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
    failed = [k for k, pr in enumerate(procs) if pr.wait() != 0]
    done = [pt for pt in parts if (pt / "hangul_study.json").exists()]
    if failed:
        logger.error("jobs %s failed (see %s/part-K.log); merging what they wrote", failed, out)
    if not done:
        raise RuntimeError(f"no job wrote results; see the logs in {out}")
    return merge(done, out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.hangul_study", description=__doc__.split("\n\n")[0])
    add_dataclass_args(p, StudyConfig)
    p.add_argument("--table", metavar="JSON", help="print the markdown table of a results file and exit")
    p.add_argument("--merge", metavar="DIR", nargs="+",
                   help="merge studies run side by side (one process per arm) into --out, then exit")
    p.add_argument("--rescore", action="store_true",
                   help="score the study in --out again from its saved samples (ceiling and floor redrawn), then exit")
    ns = p.parse_args(argv)
    if ns.rescore:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
        try:
            res = rescore(Path(ns.out), ocr=ns.ocr)
        except (OSError, ValueError, KeyError) as e:
            print(f"error: cannot rescore {ns.out}: {e}", file=sys.stderr)
            return 2
        print(markdown_table(res))
        return 0
    if ns.table:
        print(markdown_table(json.loads(Path(ns.table).read_text(encoding="utf-8"))))
        return 0
    if ns.merge:
        try:
            res = merge([Path(d) for d in ns.merge], Path(ns.out))
        except (OSError, ValueError, KeyError) as e:
            print(f"error: cannot merge: {e}", file=sys.stderr)
            return 2
        print(markdown_table(res))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    try:
        cfg = StudyConfig(**{f.name: getattr(ns, f.name) for f in dataclasses.fields(StudyConfig)})
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: --device cuda but no CUDA device is available", file=sys.stderr)
        return 2
    res = run_jobs(cfg, argv if argv is not None else sys.argv[1:]) if cfg.jobs > 1 else run(cfg)
    print(json.dumps({a: r["sets"] for a, r in res["arms"].items()}, ensure_ascii=False, indent=1))
    print(f"results in {Path(cfg.out) / 'hangul_study.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
