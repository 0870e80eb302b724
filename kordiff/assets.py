"""Where kordiff's shipped files live: fonts, tessdata, the CLIP BPE files, the benchmark titles."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
FONTS_DIR = ASSETS_DIR / "fonts"
TESSDATA_DIR = ASSETS_DIR / "tessdata"
CLIP_TOKENIZER_DIR = ASSETS_DIR / "clip_tokenizer"

# Short style names -> unmodified OFL font files (see assets/fonts/OFL.txt). sans, serif, handwriting and brush draw
# all 11,172 syllables; display (BM DoHyeon) only ~2,437, so `covering_style` falls back for the rest.
FONTS: dict[str, str] = {
    "sans": "NanumBarunGothicBold.ttf",
    "serif": "NanumMyeongjoBold.ttf",
    "handwriting": "NanumPen.ttf",
    "brush": "NanumBrush.ttf",
    "display": "BMDOHYEON_ttf.ttf",
}


def font_path(style: str = "sans") -> Path:
    """Path of a shipped font by style name (see `FONTS`)."""
    if style not in FONTS:
        raise ValueError(f"unknown font style {style!r}; choose one of {sorted(FONTS)}")
    return FONTS_DIR / FONTS[style]


@lru_cache(maxsize=256)
def load_font(style: str = "sans", size: int = 32) -> ImageFont.FreeTypeFont:
    """A cached PIL font of a shipped style at a pixel size."""
    return ImageFont.truetype(str(font_path(style)), max(1, int(size)))


@lru_cache(maxsize=65536)
def has_glyph(style: str, ch: str) -> bool:
    """Whether a shipped font draws `ch` (a font without the glyph draws nothing at all)."""
    return ch.isspace() or load_font(style, 32).getmask(ch).getbbox() is not None


def covering_style(text: str, style: str = "sans") -> str:
    """`style` if its font draws every character of `text`, else 'sans' (which draws every Hangul syllable)."""
    return style if all(has_glyph(style, c) for c in text) else "sans"
