"""Where kordiff's shipped files live: fonts, tessdata, the CLIP BPE files, the benchmark titles."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
FONTS_DIR = ASSETS_DIR / "fonts"
TESSDATA_DIR = ASSETS_DIR / "tessdata"
CLIP_TOKENIZER_DIR = ASSETS_DIR / "clip_tokenizer"

# Short style names -> unmodified OFL font files (see assets/fonts/OFL.txt).
FONTS: dict[str, str] = {
    "sans": "NanumSquareB.ttf",
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
