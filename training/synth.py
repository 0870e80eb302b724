"""Synthetic Korean book covers with exact text boxes, in the same MARIO format as training.prepare_aihub.

    python -m training.synth --n 20000 --out data/synth [--backgrounds DIR] [--seed 0] [--workers 2]

For users without AIHub access (AIHub is restricted to Korean nationals) and to cover rare syllables: titles
come from the shipped word list (training/data/ko_words.txt) through title templates, and every
`rare_every`-th title takes the next three syllables of a seeded walk over all 11,172 modern syllables
(the 2,350 everyday ones first): ~3,200 covers use every everyday syllable, ~15,000 covers every syllable.
Backgrounds are procedural (gradients, colour fields, shapes, noise) or crops of images in --backgrounds.
Each text line is drawn into its own mask, and its box is the mask's ink bounding box, so boxes are exact.
Cover i depends only on (seed, i): any worker count and any resume give the same files.
`synth_report.json` reports syllable coverage (also without rendering: --coverage-only).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from kordiff.assets import FONTS, has_glyph, load_font
from kordiff.tokens import HANGUL_SYLLABLES, book_caption
from kordiff.typeset import contrast_ratio

from . import mario

logger = logging.getLogger(__name__)

WORDS_FILE = Path(__file__).resolve().parent / "data" / "ko_words.txt"
REPORT_FILE = "synth_report.json"
# The 2,350 syllables of KS X 1001 (exactly those EUC-KR can encode): the everyday set.
KS_X_1001 = frozenset(c for c in HANGUL_SYLLABLES if len(c.encode("euc-kr")) == 2)  # others: 8-byte make-up sequences
# Title font styles and how often each is drawn (only styles kordiff ships).
_WEIGHTS = {"sans": 4, "serif": 3, "display": 3, "handwriting": 1, "brush": 1}
FONT_WEIGHTS = {k: w for k, w in _WEIGHTS.items() if k in FONTS}


@dataclass(frozen=True)
class SynthConfig:
    """Settings of one synthesis run (defaults make 512x512 covers like the AIHub samples)."""

    n: int
    out: Path
    seed: int = 0
    size: int = 512
    backgrounds: Path | None = None  # folder of images to crop backgrounds from (else procedural)
    rare_every: int = 4  # every k-th title is built from the rare-syllable walk
    workers: int = max(1, os.cpu_count() or 1)
    jpeg_quality: int = 92
    id_prefix: str = "synth-"

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        if self.backgrounds is not None:
            object.__setattr__(self, "backgrounds", Path(self.backgrounds))
        if self.n < 0 or self.size < 128 or self.rare_every < 1 or self.workers < 1:
            raise ValueError("need n >= 0, size >= 128, rare_every >= 1, workers >= 1")


# ---------------------------------------------------------------- words and titles


@lru_cache(maxsize=4)
def load_words(path: Path = WORDS_FILE) -> dict[str, tuple[str, ...]]:
    """Sections of the word list: nouns, modifiers, suffixes, surnames, given_syllables, publishers."""
    sections: dict[str, list[str]] = {}
    current = None
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("## "):
            current = sections.setdefault(line[3:].strip(), [])
        elif line and not line.startswith("#") and current is not None:
            current.extend(line.split())
    need = {"nouns", "modifiers", "suffixes", "surnames", "given_syllables", "publishers"}
    if missing := need - set(sections):
        raise ValueError(f"word list {path} lacks sections {sorted(missing)}")
    return {k: tuple(v) for k, v in sections.items()}


def has_final(word: str) -> bool:
    """Whether the last syllable has a final consonant (batchim): picks 은/는, 이/가, 을/를, 과/와."""
    ch = word[-1]
    if not ("가" <= ch <= "힣"):
        return ch in "013678"  # digits read 영/일/삼/육/칠/팔 end in a consonant
    return (ord(ch) - 0xAC00) % 28 != 0


def josa(word: str, with_final: str, without_final: str) -> str:
    return word + (with_final if has_final(word) else without_final)


@lru_cache(maxsize=8)
def rare_walk(seed: int) -> tuple[str, ...]:
    """All 11,172 syllables, the 2,350 everyday ones (KS X 1001) first, each part shuffled by `seed`.

    Rare title j uses entries 3j, 3j+1, 3j+2 (cyclic), so every everyday syllable appears once 784 rare titles
    in, and every syllable once 3,724 rare titles in (about 15,000 covers at the default rare_every=4).
    """
    rng = random.Random(f"rare-walk:{seed}")
    common = sorted(KS_X_1001)
    rest = [c for c in HANGUL_SYLLABLES if c not in KS_X_1001]
    rng.shuffle(common)
    rng.shuffle(rest)
    return tuple(common + rest)


def rare_word(seed: int, j: int, k: int = 3) -> str:
    walk = rare_walk(seed)
    return "".join(walk[(j * k + t) % len(walk)] for t in range(k))


def make_title(rng: random.Random, w: dict[str, tuple[str, ...]]) -> str:
    """A plausible Korean book title from the word list."""
    n = lambda: rng.choice(w["nouns"])  # noqa: E731
    m = lambda: rng.choice(w["modifiers"])  # noqa: E731
    s = lambda: rng.choice(w["suffixes"])  # noqa: E731
    templates: list[Callable[[], str]] = [
        lambda: n(),
        lambda: f"{m()} {n()}",
        lambda: f"{n()}의 {n()}",
        lambda: f"{josa(n(), '과', '와')} {n()}",
        lambda: f"{m()} {n()}의 {s()}",
        lambda: f"{n()} {s()}",
        lambda: f"{josa(n(), '을', '를')} 위한 {s()}",
        lambda: f"{n()}, {n()}, 그리고 {n()}",
        lambda: f"{josa(n(), '이', '가')} {m()} 날",
        lambda: f"{rng.randint(2, 999)}개의 {n()}",
        lambda: f"{rng.choice((1950, 1988, 2002, 2024, 2050))}년의 {n()}",
        lambda: f"{josa(n(), '은', '는')} {m()} {n()}",
    ]
    return rng.choice(templates)()


def make_subtitle(rng: random.Random, w: dict[str, tuple[str, ...]]) -> str:
    n, m, s = rng.choice(w["nouns"]), rng.choice(w["modifiers"]), rng.choice(w["suffixes"])
    return rng.choice(
        [
            f"{n}에 관한 {m} {s}",
            f"{josa(n, '을', '를')} 찾아서",
            f"{josa(n, '과', '와')} {rng.choice(w['nouns'])} 사이",
            f"{m} {n}의 기록",
            f"{n} 이후의 {s}",
        ]
    )


def make_author(rng: random.Random, w: dict[str, tuple[str, ...]]) -> str:
    given = "".join(rng.choice(w["given_syllables"]) for _ in range(rng.choice((1, 2, 2, 2))))
    return f"{rng.choice(w['surnames'])}{given} {rng.choice(('지음', '글', '옮김', '엮음', '지음'))}"


def make_publisher(rng: random.Random, w: dict[str, tuple[str, ...]]) -> str:
    p = rng.choice(w["publishers"])
    return rng.choice((f"{p}출판사", f"{p}북스", f"도서출판 {p}", p, f"{p}사"))


@dataclass(frozen=True)
class CoverText:
    """The texts of cover i (cheap to compute: coverage is counted from these without rendering)."""

    title: str
    subtitle: str | None
    author: str | None
    publisher: str | None
    rare: bool

    @property
    def all(self) -> list[str]:
        return [t for t in (self.title, self.subtitle, self.author, self.publisher) if t]


def cover_text(seed: int, i: int, rare_every: int = 4) -> CoverText:
    """Deterministic texts of cover i."""
    rng = random.Random(f"text:{seed}:{i}")
    w = load_words()
    rare = i % rare_every == 0
    if rare:
        word = rare_word(seed, i // rare_every)
        title = rng.choice([word, f"{word}의 {rng.choice(w['nouns'])}", f"{rng.choice(w['modifiers'])} {word}"])
    else:
        title = make_title(rng, w)
    subtitle = make_subtitle(rng, w) if rng.random() < 0.45 else None
    author = make_author(rng, w) if rng.random() < 0.8 else None
    publisher = make_publisher(rng, w) if rng.random() < 0.5 else None
    return CoverText(title, subtitle, author, publisher, rare)


@dataclass
class Coverage:
    """Which Hangul syllables a set of texts uses."""

    counts: Counter = field(default_factory=Counter)

    def add(self, text: str) -> None:
        self.counts.update(c for c in unicodedata.normalize("NFC", text) if "가" <= c <= "힣")

    def summary(self, missing_sample: int = 50) -> dict:
        covered = set(self.counts)
        missing_ks = sorted(KS_X_1001 - covered)
        return {
            "syllables_covered": len(covered),
            "syllables_total": len(HANGUL_SYLLABLES),
            "ks_x_1001_covered": len(covered & KS_X_1001),
            "ks_x_1001_total": len(KS_X_1001),
            "ks_x_1001_missing_sample": "".join(missing_ks[:missing_sample]),
            "syllables_seen_once": sum(1 for v in self.counts.values() if v == 1),
            "most_common": "".join(c for c, _ in self.counts.most_common(30)),
        }


def coverage_of(seed: int, n: int, rare_every: int = 4) -> Coverage:
    """Syllable coverage of covers 0..n-1 (texts only; no rendering)."""
    cov = Coverage()
    for i in range(n):
        for t in cover_text(seed, i, rare_every).all:
            cov.add(t)
    return cov


# ---------------------------------------------------------------- backgrounds


def _random_colour(rng: random.Random) -> tuple[int, int, int]:
    h, s, v = rng.random(), rng.uniform(0.1, 0.9), rng.uniform(0.15, 1.0)
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return int(r * 255), int(g * 255), int(b * 255)


def _gradient(rng: random.Random, size: int) -> np.ndarray:
    a, b = np.array(_random_colour(rng), np.float32), np.array(_random_colour(rng), np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    # A linear ramp is computed on a 64x64 grid and upscaled: exact for a linear ramp, 50x cheaper.
    g = np.linspace(-0.5, 0.5, 64, dtype=np.float32)
    t = g[None, :] * math.cos(angle) + g[:, None] * math.sin(angle)
    t = (t - t.min()) / max(1e-6, float(t.max() - t.min()))
    small = (a + (b - a) * t[..., None]).clip(0, 255).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((size, size), Image.Resampling.BILINEAR))


def _colour_field(rng: random.Random, nrng: np.random.Generator, size: int) -> np.ndarray:
    cells = rng.choice((2, 3, 4, 6))
    small = nrng.integers(0, 256, (cells, cells, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC), np.float32)


def _shapes(img: Image.Image, rng: random.Random, size: int) -> None:
    overlay = Image.new("RGBA", img.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(overlay)
    for _ in range(rng.randint(2, 9)):
        colour = (*_random_colour(rng), rng.randint(60, 220))
        x0, y0 = rng.uniform(-0.2, 1.0) * size, rng.uniform(-0.2, 1.0) * size
        w, h = rng.uniform(0.05, 0.7) * size, rng.uniform(0.05, 0.7) * size
        kind = rng.choice(("ellipse", "rect", "polygon", "line"))
        if kind == "ellipse":
            d.ellipse((x0, y0, x0 + w, y0 + h), fill=colour)
        elif kind == "rect":
            d.rectangle((x0, y0, x0 + w, y0 + h), fill=colour)
        elif kind == "polygon":
            d.polygon([(x0 + rng.uniform(0, w), y0 + rng.uniform(0, h)) for _ in range(rng.randint(3, 6))], fill=colour)
        else:
            d.line((x0, y0, x0 + w, y0 + h), fill=colour, width=rng.randint(2, 24))
    img.paste(Image.alpha_composite(img.convert("RGBA"), overlay).convert("RGB"))


def _photo(path: Path, rng: random.Random, size: int) -> Image.Image:
    with Image.open(path) as im:
        im.draft("RGB", (size, size))
        im = im.convert("RGB")
    w, h = im.size
    side = int(min(w, h) * rng.uniform(0.6, 1.0))
    x, y = rng.randint(0, w - side), rng.randint(0, h - side)
    im = im.crop((x, y, x + side, y + side)).resize((size, size), Image.Resampling.BICUBIC)
    if rng.random() < 0.5:
        im = im.filter(ImageFilter.GaussianBlur(rng.uniform(1, 6)))
    return im


def make_background(
    rng: random.Random, nrng: np.random.Generator, size: int, photos: Sequence[Path]
) -> tuple[Image.Image, str]:
    """A background image and an English description for the caption."""
    kind = rng.choice(("photo",) * 3 if photos else ("gradient", "gradient", "field", "shapes", "shapes", "solid"))
    if kind == "photo":
        img, desc = _photo(rng.choice(photos), rng, size), "photographic background"
    elif kind == "field":
        img, desc = Image.fromarray(_colour_field(rng, nrng, size).astype(np.uint8)), "soft colour field"
    elif kind == "solid":
        img, desc = Image.new("RGB", (size, size), _random_colour(rng)), "minimal plain design"
    else:
        img = Image.fromarray(_gradient(rng, size))
        desc = "minimal gradient design"
        if kind == "shapes":
            _shapes(img, rng, size)
            desc = "abstract geometric shapes"
    if rng.random() < 0.4:  # film grain, at quarter resolution to stay cheap
        q = max(1, size // 4)
        grain = nrng.normal(0, rng.uniform(4, 14), (q, q, 1)).astype(np.float32)
        grain = np.repeat(np.repeat(grain, 4, 0), 4, 1)[:size, :size]
        img = Image.fromarray((np.asarray(img, np.float32) + grain).clip(0, 255).astype(np.uint8))
    return img, desc


# ---------------------------------------------------------------- text


def pick_text_colour(rng: random.Random, background: Sequence[float], minimum: float = 4.5) -> tuple[int, int, int]:
    """A random colour with at least `minimum` contrast against the mean background, else black or white."""
    for _ in range(12):
        c = _random_colour(rng)
        if contrast_ratio(c, background) >= minimum:
            return c
    return (
        (0, 0, 0)
        if contrast_ratio((0, 0, 0), background) >= contrast_ratio((255, 255, 255), background)
        else (255, 255, 255)
    )


def wrap_lines(text: str, max_lines: int, rng: random.Random) -> list[list[str]]:
    """Ways to break `text` at spaces into 1..max_lines lines (the first is unbroken; rest shuffled)."""
    words = text.split(" ")
    options = [[text]]
    if len(words) > 1 and max_lines > 1:
        cuts = list(range(1, len(words)))
        rng.shuffle(cuts)
        options += [[" ".join(words[:c]), " ".join(words[c:])] for c in cuts]
        if len(words) > 2 and max_lines > 2:
            options.append([" ".join(words[:1]), " ".join(words[1:-1]), words[-1]])
    return options


@dataclass(frozen=True)
class Line:
    text: str
    style: str
    size: int
    x: float  # anchor point (see align)
    y: float  # top of the line
    align: str  # 'l', 'm' or 'r'
    stroke: int


def font_covers(style: str, text: str) -> bool:
    return all(has_glyph(style, c) for c in text)


def pick_style(rng: random.Random, text: str, weights: dict[str, int]) -> str:
    """A weighted random font style among those that can draw every character of `text`."""
    ok = {k: w for k, w in weights.items() if font_covers(k, text)}
    if not ok:
        ok = {k: 1 for k in FONTS if font_covers(k, text)} or {"serif": 1}
    return rng.choices(list(ok), weights=list(ok.values()))[0]


def _fit_block(
    text: str, style: str, size: int, max_w: int, max_lines: int, rng: random.Random
) -> tuple[list[str], int]:
    """Largest size <= `size` (and a line break) at which the text fits `max_w` pixels."""
    options = wrap_lines(text, max_lines, rng)
    while size > 12:
        font = load_font(style, size)
        for lines in options:
            if all(font.getlength(t) <= max_w for t in lines):
                return lines, size
        size = size - max(2, size // 10)
    return options[-1], 12


def layout_cover(texts: CoverText, rng: random.Random, size: int) -> list[Line]:
    """Where each text line goes: title block, subtitle, author, publisher; sizes shrink until all fit."""
    margin = int(size * rng.uniform(0.05, 0.1))
    max_w = size - 2 * margin
    align = rng.choice("lmmr")
    x = {"l": margin, "m": size / 2, "r": size - margin}[align]
    title_style = pick_style(rng, texts.title, FONT_WEIGHTS)
    small_texts = " ".join(t for t in (texts.subtitle, texts.author, texts.publisher) if t)
    small_style = pick_style(rng, small_texts, {"sans": 2, "serif": 2, title_style: 1})
    title_size = int(size * rng.uniform(0.09, 0.2)) // 2 * 2
    scale = 1.0
    for _ in range(6):
        blocks: list[tuple[list[str], str, int, float]] = []
        lines, ts = _fit_block(texts.title, title_style, int(title_size * scale), max_w, 3, rng)
        blocks.append((lines, title_style, ts, 1.15))
        if texts.subtitle:
            sub, ss = _fit_block(texts.subtitle, small_style, int(size * 0.045 * scale) // 2 * 2, max_w, 2, rng)
            blocks.append((sub, small_style, ss, 1.3))
        top_h = sum(len(b[0]) * b[2] * b[3] for b in blocks) + (size * 0.03 if len(blocks) > 1 else 0)
        bottom: list[tuple[str, int]] = []
        if texts.author:
            bottom.append((texts.author, max(12, int(size * rng.uniform(0.032, 0.05) * scale) // 2 * 2)))
        if texts.publisher:
            bottom.append((texts.publisher, max(12, int(size * 0.03 * scale) // 2 * 2)))
        bottom_h = sum(s * 1.5 for _, s in bottom)
        if top_h + bottom_h + 2 * margin <= size * 0.95:
            break
        scale *= 0.8
    stroke = rng.choice((0, 0, 0, 1, 2)) if title_style != "handwriting" else 0
    # Title block at the top, centre or lower third; author/publisher at the bottom (or under the title).
    free = size - 2 * margin - bottom_h - top_h
    y = margin + free * rng.choice((0.0, 0.05, 0.35, 0.5, 0.8))
    out: list[Line] = []
    for lines, style, s, leading in blocks:
        for t in lines:
            out.append(Line(t, style, s, x, y, align, stroke if style == title_style and s == ts else 0))
            y += s * leading
        y += size * 0.03
    y_bottom = size - margin - bottom_h
    y = max(y, y_bottom) if rng.random() < 0.7 else y
    for t, s in bottom:
        out.append(Line(t, small_style, s, x, y, align, 0))
        y += s * 1.5
    return out


def line_ink(line: Line) -> tuple[Image.Image, tuple[int, int, int, int]] | None:
    """The line's ink as an 'L' mask and its exact pixel bbox (x0, y0, x1, y1) on the cover, or None if blank."""
    font = load_font(line.style, line.size)
    anchor = f"{line.align}a"
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    lx0, ly0, lx1, ly1 = probe.textbbox((line.x, line.y), line.text, font=font, anchor=anchor, stroke_width=line.stroke)
    ox, oy = math.floor(lx0) - 2, math.floor(ly0) - 2  # small canvas around the layout box, not the whole cover
    mask = Image.new("L", (math.ceil(lx1) - ox + 2, math.ceil(ly1) - oy + 2), 0)
    ImageDraw.Draw(mask).text(
        (line.x - ox, line.y - oy), line.text, font=font, fill=255, anchor=anchor, stroke_width=line.stroke
    )
    box = mask.getbbox()
    if box is None:
        return None
    mask = mask.crop(box)
    return mask, (box[0] + ox, box[1] + oy, box[2] + ox, box[3] + oy)


@dataclass(frozen=True)
class RenderedCover:
    image: Image.Image
    words: list[mario.OcrWord]
    lines: list[Line]
    caption: str
    texts: CoverText
    title_style: str


def render_cover(cfg: SynthConfig, i: int, photos: Sequence[Path] = (), draw_text: bool = True) -> RenderedCover:
    """Cover i of a run: background, then each line drawn through its own mask; boxes = mask ink bounds."""
    texts = cover_text(cfg.seed, i, cfg.rare_every)
    rng = random.Random(f"render:{cfg.seed}:{i}")
    nrng = np.random.default_rng([cfg.seed, i])
    size = cfg.size
    img, desc = make_background(rng, nrng, size, photos)
    lines = layout_cover(texts, rng, size)
    if rng.random() < 0.25 and lines:  # a solid band behind the title, as many covers have
        t0 = lines[0].y - lines[0].size * 0.4
        n_title = sum(1 for ln in lines if ln.style == lines[0].style and ln.size == lines[0].size)
        t1 = lines[n_title - 1].y + lines[0].size * 1.5
        ImageDraw.Draw(img).rectangle((0, t0, size, t1), fill=_random_colour(rng))
    words: list[mario.OcrWord] = []
    for line in lines:
        ink = line_ink(line)
        if ink is None:
            continue
        mask, (x0, y0, x1, y1) = ink
        # Ink outside the cover is clipped by paste; the box is clipped the same way.
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, size), min(y1, size)
        if cx1 <= cx0 or cy1 <= cy0:
            continue
        mask = mask.crop((cx0 - x0, cy0 - y0, cx1 - x0, cy1 - y0))
        box = mask.getbbox()
        if box is None:
            continue
        mask = mask.crop(box)
        x0, y0, x1, y1 = cx0 + box[0], cy0 + box[1], cx0 + box[2], cy0 + box[3]
        region = img.crop((x0, y0, x1, y1)).resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
        colour = pick_text_colour(rng, region)
        if draw_text:
            img.paste(colour, (x0, y0, x1, y1), mask)
        words.append(mario.OcrWord.from_rect(line.text, x0, y0, x1, y1, 1.0))
    caption = book_caption(texts.title, desc)
    return RenderedCover(img, words, lines, caption, texts, lines[0].style if lines else "sans")


# ---------------------------------------------------------------- driver

_PHOTOS: tuple[Path, ...] = ()


def _init_worker(photos: tuple[Path, ...]) -> None:
    global _PHOTOS
    _PHOTOS = photos


def _make_one(args: tuple[SynthConfig, int]) -> dict:
    cfg, i = args
    sid = f"{cfg.id_prefix}{i:07d}"
    try:
        cover = render_cover(cfg, i, _PHOTOS)
        mario.write_sample(cfg.out, sid, mario.encode_jpeg(cover.image, cfg.jpeg_quality), cover.caption, cover.words)
        return {"id": sid, "status": "ok", "style": cover.title_style}
    except Exception as e:  # noqa: BLE001 - one bad background image must not stop the run
        return {"id": sid, "status": "error", "message": f"{type(e).__name__}: {e}"}


def list_backgrounds(folder: Path | None) -> tuple[Path, ...]:
    if folder is None:
        return ()
    if not folder.is_dir():
        raise FileNotFoundError(f"--backgrounds {folder} is not a folder")
    photos = tuple(sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp")))
    if not photos:
        raise FileNotFoundError(f"no images in --backgrounds {folder}")
    return photos


def synthesize(cfg: SynthConfig, progress: Callable[[int, int], None] | None = None) -> dict:
    """Make (or finish) covers 0..n-1 under cfg.out; returns the report also written to synth_report.json."""
    from tqdm.auto import tqdm

    cfg.out.mkdir(parents=True, exist_ok=True)
    mario.clean_tmp(cfg.out)
    photos = list_backgrounds(cfg.backgrounds)
    todo = [i for i in range(cfg.n) if not mario.is_complete(cfg.out / f"{cfg.id_prefix}{i:07d}")]
    done_before = cfg.n - len(todo)
    errors: list[dict] = []
    styles: Counter = Counter()
    t0 = time.perf_counter()
    bar = tqdm(total=cfg.n, initial=done_before, desc="synth", unit="cover", disable=None)
    pool = ProcessPoolExecutor(cfg.workers, initializer=_init_worker, initargs=(photos,)) if cfg.workers > 1 else None
    finished = False
    try:
        if pool is None:
            _init_worker(photos)
            results = map(_make_one, ((cfg, i) for i in todo))
        else:
            results = pool.map(_make_one, [(cfg, i) for i in todo], chunksize=16)
        for k, r in enumerate(results, 1):
            if r["status"] == "ok":
                styles[r["style"]] += 1
            else:
                errors.append(r)
            bar.update(1)
            if progress is not None:
                progress(done_before + k, cfg.n)
        finished = True
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=not finished)
        bar.close()
    elapsed = time.perf_counter() - t0
    written = len(todo) - len(errors)
    entries = []
    for i in range(cfg.n):
        sid = f"{cfg.id_prefix}{i:07d}"
        if mario.is_complete(cfg.out / sid):
            texts = cover_text(cfg.seed, i, cfg.rare_every)
            entries.append(
                {"id": sid, "split": "training", "source": "synth", "title": texts.title, "rare": texts.rare}
            )
    mario.write_index(cfg.out, entries)
    report = {
        "n": cfg.n,
        "seed": cfg.seed,
        "written": written,
        "already_done": done_before,
        "errors": errors,
        "seconds": round(elapsed, 3),
        "covers_per_second": round(written / elapsed, 2) if written and elapsed > 0 else None,
        "workers": cfg.workers,
        "title_fonts": dict(sorted(styles.items())),
        "coverage": coverage_of(cfg.seed, cfg.n, cfg.rare_every).summary(),
    }
    tmp = cfg.out / f".{REPORT_FILE}.tmp"
    tmp.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    os.replace(tmp, cfg.out / REPORT_FILE)
    return report


def build_parser() -> argparse.ArgumentParser:
    d = SynthConfig(n=0, out=Path("."))
    p = argparse.ArgumentParser(prog="python -m training.synth", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, required=True, help="number of covers")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--size", type=int, default=d.size)
    p.add_argument("--backgrounds", type=Path, default=None, help="folder of background images (else procedural)")
    p.add_argument("--rare-every", type=int, default=d.rare_every, help="every k-th title walks the rare syllables")
    p.add_argument("--workers", type=int, default=d.workers)
    p.add_argument("--coverage-only", action="store_true", help="print the syllable coverage of --n covers and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.coverage_only:
        print(json.dumps(coverage_of(args.seed, args.n, args.rare_every).summary(), ensure_ascii=False, indent=2))
        return 0
    cfg = SynthConfig(args.n, args.out, args.seed, args.size, args.backgrounds, args.rare_every, args.workers)
    try:
        report = synthesize(cfg)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished covers are kept; run the same command again to resume", file=sys.stderr)
        return 130
    cov = report["coverage"]
    print(
        f"{report['written']} covers written ({report['already_done']} already there, {len(report['errors'])} errors) "
        f"at {report['covers_per_second']} covers/s; syllables {cov['syllables_covered']}/{cov['syllables_total']}, "
        f"KS X 1001 {cov['ks_x_1001_covered']}/{cov['ks_x_1001_total']} -> {cfg.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
