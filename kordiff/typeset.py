"""Exact typesetting: a layout's text drawn into its boxes with the shipped fonts, readable colours, backgrounds."""

from __future__ import annotations

import logging
import math
import re
import zlib
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .assets import FONTS, covering_style, load_font
from .layout import Box, Layout

logger = logging.getLogger(__name__)

MIN_CONTRAST = 4.5  # WCAG AA for normal text
MIN_FONT_SIZE = 6

RGB = tuple[int, int, int]


# --- colour science -------------------------------------------------------------------------------------------


def _channel_to_linear(c: np.ndarray) -> np.ndarray:
    c = np.asarray(c, dtype=np.float64) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def relative_luminance(rgb) -> float | np.ndarray:
    """WCAG 2.x relative luminance of sRGB colour(s) in 0..255 (last axis = RGB); 0 = black, 1 = white."""
    lin = _channel_to_linear(np.asarray(rgb)[..., :3])
    lum = lin[..., 0] * 0.2126 + lin[..., 1] * 0.7152 + lin[..., 2] * 0.0722
    return float(lum) if np.ndim(lum) == 0 else lum


def contrast_ratio(a, b) -> float:
    """WCAG contrast ratio (1..21) between two colours or luminances (floats in 0..1 are taken as luminances)."""
    la = a if isinstance(a, float) else relative_luminance(a)
    lb = b if isinstance(b, float) else relative_luminance(b)
    hi, lo = max(la, lb), min(la, lb)
    return (hi + 0.05) / (lo + 0.05)


def background_luminance_range(image: Image.Image, box_px: tuple[int, int, int, int]) -> tuple[float, float]:
    """(dark, light) luminance under a pixel box: 5th and 95th percentiles, so a few stray pixels don't decide."""
    x0, y0, x1, y1 = box_px
    region = np.asarray(image.convert("RGB").crop((x0, y0, max(x1, x0 + 1), max(y1, y0 + 1))))
    lum = relative_luminance(region.reshape(-1, 3))
    lo, hi = np.percentile(lum, [5, 95])
    return float(lo), float(hi)


@dataclass(frozen=True)
class TextColour:
    """Fill colour, and a stroke colour when the fill alone can't reach the contrast target."""

    fill: RGB
    stroke: RGB | None
    contrast: float  # worst-case contrast of `fill` against the background range


def pick_text_colour(
    lum_range: tuple[float, float], palette: list[RGB] | tuple[RGB, ...] = (), min_contrast: float = MIN_CONTRAST
) -> TextColour:
    """Most contrasting palette colour (else black/white) against both ends of the background; stroke if < target."""
    lo, hi = lum_range
    candidates = list(palette) + [(0, 0, 0), (255, 255, 255)]

    def worst(c: RGB) -> float:
        lc = relative_luminance(c)
        return min(contrast_ratio(lc, lo), contrast_ratio(lc, hi))

    best_palette = max(palette, key=worst) if palette else None
    if best_palette is not None and worst(best_palette) >= min_contrast:
        return TextColour(tuple(best_palette), None, worst(best_palette))
    best = max(candidates, key=worst)
    if worst(best) >= min_contrast:
        return TextColour(tuple(best), None, worst(best))
    # Busy background: nothing is readable against both ends, so the glyphs carry their own edge.
    mid = (lo + hi) / 2
    fill = (255, 255, 255) if contrast_ratio(1.0, mid) >= contrast_ratio(0.0, mid) else (0, 0, 0)
    stroke = (0, 0, 0) if fill == (255, 255, 255) else (255, 255, 255)
    return TextColour(fill, stroke, worst(fill))


# --- fitting text into a box ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TypesetStyle:
    """How text is drawn: font style, alignment, padding, stroke/shadow, line spacing, palette for the fill."""

    font: str = "sans"
    align: str = "center"  # left | center | right
    padding: float = 0.06  # fraction of the box's smaller side kept clear on each side
    stroke: str = "auto"  # auto (only when contrast needs it) | always | never
    stroke_ratio: float = 0.07  # stroke width as a fraction of the font size
    shadow: bool = False
    veil: bool = True  # on busy ground, fade a soft band under the text until a fill colour reaches the target
    # ... and until the ground's own dark/light contrast is at most this: WCAG contrast alone leaves texture
    # (a checkerboard at 35% veil) that breaks glyph edges for readers and OCR alike.
    max_ground_contrast: float = 2.0
    shadow_ratio: float = 0.06  # shadow offset as a fraction of the font size
    line_spacing: float = 0.15  # extra space between lines, fraction of the font size
    max_lines: int = 4
    palette: tuple[RGB, ...] = ()

    def __post_init__(self) -> None:
        if self.font not in FONTS:
            raise ValueError(f"unknown font style {self.font!r}; choose one of {sorted(FONTS)}")
        if self.align not in ("left", "center", "right"):
            raise ValueError(f"align must be left, center or right, got {self.align!r}")
        if self.stroke not in ("auto", "always", "never"):
            raise ValueError(f"stroke must be auto, always or never, got {self.stroke!r}")


@dataclass(frozen=True)
class FittedText:
    """Text broken into lines at a font size, with its ink extent (pixels, relative to the draw origin)."""

    lines: tuple[str, ...]
    size: int
    ink: tuple[int, int, int, int]
    stroke_width: int
    spacing: int

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def width(self) -> int:
        return self.ink[2] - self.ink[0]

    @property
    def height(self) -> int:
        return self.ink[3] - self.ink[1]


def _ink_bbox(lines: tuple[str, ...], size: int, style: TypesetStyle, stroke_width: int, spacing: int):
    """Exact ink bbox of the text drawn at the origin (a rendered mask, so glyph overhangs count)."""
    font = load_font(style.font, size)
    text = "\n".join(lines)
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    x0, y0, x1, y1 = probe.multiline_textbbox(
        (0, 0), text, font=font, spacing=spacing, align=style.align, stroke_width=stroke_width
    )
    x0, y0, x1, y1 = math.floor(x0), math.floor(y0), math.ceil(x1), math.ceil(y1)
    pad = 2 + stroke_width
    w, h = x1 - x0 + 2 * pad, y1 - y0 + 2 * pad
    mask = Image.new("L", (max(1, w), max(1, h)), 0)
    ImageDraw.Draw(mask).multiline_text(
        (pad - x0, pad - y0), text, font=font, fill=255, spacing=spacing, align=style.align,
        stroke_width=stroke_width, stroke_fill=255,
    )
    bb = mask.getbbox()
    if bb is None:
        return (0, 0, 0, 0)
    return (bb[0] - pad + x0, bb[1] - pad + y0, bb[2] - pad + x0, bb[3] - pad + y0)


def _line_breaks(text: str, n_lines: int) -> tuple[str, ...]:
    """Split into n lines of similar length, preferring spaces; long words break between characters."""
    if n_lines <= 1:
        return (text,)
    words = text.split()
    if len(words) >= n_lines:
        # Greedy balanced split on word boundaries.
        target = len(text) / n_lines
        lines, cur = [], ""
        for i, w in enumerate(words):
            left_words = len(words) - i
            left_lines = n_lines - len(lines)
            cand = f"{cur} {w}".strip()
            if cur and (len(cand) > target * 1.15 or left_words < left_lines) and left_lines > 1:
                lines.append(cur)
                cur = w
            else:
                cur = cand
        lines.append(cur)
        if len(lines) == n_lines:
            return tuple(lines)
    compact = text.replace(" ", "")
    step = -(-len(compact) // n_lines)
    return tuple(compact[i : i + step] for i in range(0, len(compact), step))


def _extra(style: TypesetStyle, size: int) -> tuple[int, int]:
    stroke = max(1, round(size * style.stroke_ratio)) if style.stroke != "never" else 0
    shadow = max(1, round(size * style.shadow_ratio)) if style.shadow else 0
    return stroke, shadow


def fit_text(text: str, width: int, height: int, style: TypesetStyle = TypesetStyle()) -> FittedText:
    """Largest font size (and line count, when the box is tall enough) whose ink fits width x height pixels."""
    text = " ".join(text.split())
    if not text:
        raise ValueError("nothing to typeset: empty text")
    best: FittedText | None = None
    max_lines = min(style.max_lines, max(1, len(text.replace(" ", ""))))
    for n_lines in range(1, max_lines + 1):
        lines = _line_breaks(text, n_lines)
        if len(lines) != n_lines:
            continue
        lo, hi = MIN_FONT_SIZE, max(MIN_FONT_SIZE, int(height * 1.5 / n_lines) + 2)
        found = None
        while lo <= hi:  # binary search on the font size; ink extent is monotone in size
            mid = (lo + hi) // 2
            stroke, shadow = _extra(style, mid)
            spacing = round(mid * style.line_spacing)
            ink = _ink_bbox(lines, mid, style, stroke, spacing)
            if ink[2] - ink[0] + shadow <= width and ink[3] - ink[1] + shadow <= height:
                found = FittedText(lines, mid, ink, stroke, spacing)
                lo = mid + 1
            else:
                hi = mid - 1
        if found is not None and (best is None or found.size > best.size * 1.08):
            best = found
    if best is None:  # not even the smallest size fits: draw it smallest and let the caller clip
        stroke, shadow = _extra(style, MIN_FONT_SIZE)
        spacing = round(MIN_FONT_SIZE * style.line_spacing)
        best = FittedText((text,), MIN_FONT_SIZE, _ink_bbox((text,), MIN_FONT_SIZE, style, stroke, spacing),
                          stroke, spacing)
        logger.warning("text %r does not fit a %dx%d box even at %d px", text, width, height, MIN_FONT_SIZE)
    return best


# --- drawing --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlacedText:
    """Where one box's text went: the box in pixels, the ink bbox in pixels, the fitted text and its colour."""

    box: Box
    box_px: tuple[int, int, int, int]
    ink_px: tuple[int, int, int, int]
    fitted: FittedText
    colour: TextColour


def typeset_box(image: Image.Image, box: Box, style: TypesetStyle = TypesetStyle()) -> PlacedText:
    """Draw `box.text` into `image` (in place, RGB) so that all ink stays inside the box."""
    font_style = covering_style(box.text, style.font)
    if font_style != style.font:  # a display/handwriting font without some glyph would draw nothing for it
        logger.info("font %r lacks glyphs of %r; using %r", style.font, box.text, font_style)
        style = replace(style, font=font_style)
    size = image.width
    bx0, by0, bx1, by1 = box.to_pixels(size)
    pad = max(1, round(min(bx1 - bx0, by1 - by0) * style.padding))
    inner_w, inner_h = max(1, bx1 - bx0 - 2 * pad), max(1, by1 - by0 - 2 * pad)
    fitted = fit_text(box.text, inner_w, inner_h, style)
    ground = background_luminance_range(image, (bx0, by0, bx1, by1))
    colour = pick_text_colour(ground, list(style.palette))
    if style.veil and (colour.stroke is not None or contrast_ratio(*ground) > style.max_ground_contrast):
        colour = _apply_veil(image, (bx0, by0, bx1, by1), list(style.palette), style.max_ground_contrast)
    stroke_fill = colour.stroke
    stroke_width = fitted.stroke_width
    if style.stroke == "always" and stroke_fill is None:
        stroke_fill = (0, 0, 0) if relative_luminance(colour.fill) > 0.18 else (255, 255, 255)
    if stroke_fill is None:
        stroke_width = 0  # ink only shrinks, so it still fits
    _, shadow = _extra(style, fitted.size)

    ix0, iy0, ix1, iy1 = fitted.ink
    ink_w, ink_h = fitted.width + shadow, fitted.height + shadow
    if style.align == "left":
        ox = bx0 + pad
    elif style.align == "right":
        ox = bx1 - pad - ink_w
    else:
        ox = bx0 + pad + (inner_w - ink_w) // 2
    oy = by0 + pad + (inner_h - ink_h) // 2
    origin = (ox - ix0, oy - iy0)

    font = load_font(style.font, fitted.size)
    bw, bh = bx1 - bx0, by1 - by0
    local = (origin[0] - bx0, origin[1] - by0)

    def paste(colour_rgb: RGB, offset: tuple[int, int], stroke: int) -> None:
        # Glyphs go through a mask the size of the box, so no pixel can land outside it, and anti-aliased
        # edges blend with the real background instead of a transparent layer.
        mask = Image.new("L", (bw, bh), 0)
        ImageDraw.Draw(mask).multiline_text(
            (local[0] + offset[0], local[1] + offset[1]), fitted.text, font=font, fill=255,
            spacing=fitted.spacing, align=style.align, stroke_width=stroke, stroke_fill=255,
        )
        image.paste(colour_rgb, (bx0, by0, bx1, by1), mask)

    if shadow:
        shade = (0, 0, 0) if relative_luminance(colour.fill) > 0.18 else (255, 255, 255)
        paste(shade, (shadow, shadow), stroke_width)
    if stroke_width and stroke_fill is not None:
        paste(tuple(stroke_fill), (0, 0), stroke_width)
    paste(colour.fill, (0, 0), 0)
    ink = (ox, oy, ox + ink_w, oy + ink_h)
    return PlacedText(box, (bx0, by0, bx1, by1), ink, fitted, colour)


def _apply_veil(image: Image.Image, box_px: tuple[int, int, int, int], palette: list[RGB],
                max_ground_contrast: float = 2.0) -> TextColour:
    """Blend a soft dark or light band under the box, as little as makes a fill colour reach the contrast target
    and the ground calm (its own light/dark contrast <= max_ground_contrast); returns the colour."""
    x0, y0, x1, y1 = box_px
    lo, hi = background_luminance_range(image, box_px)
    dark = (lo + hi) / 2 < 0.35
    tint = Image.new("RGB", image.size, (8, 8, 12) if dark else (250, 250, 246))
    feather = max(2, round(min(x1 - x0, y1 - y0) * 0.25))
    colour = pick_text_colour((lo, hi), palette)
    for alpha in (0.35, 0.5, 0.65, 0.8, 0.92):
        mask = Image.new("L", image.size, 0)
        ImageDraw.Draw(mask).rounded_rectangle(
            (x0 - feather, y0 - feather // 2, x1 + feather, y1 + feather // 2), radius=feather, fill=round(255 * alpha)
        )
        mask = mask.filter(ImageFilter.GaussianBlur(feather / 2))
        trial = Image.composite(tint, image, mask)
        ground = background_luminance_range(trial, box_px)
        colour = pick_text_colour(ground, palette)
        if (colour.stroke is None and contrast_ratio(*ground) <= max_ground_contrast) or alpha == 0.92:
            image.paste(trial)
            break
    return colour


def typeset_layout(image: Image.Image, layout: Layout, style: TypesetStyle = TypesetStyle()) -> list[PlacedText]:
    """Draw every box of `layout` into `image` in place; returns where each went."""
    return [typeset_box(image, box, style) for box in layout]


# --- procedural backgrounds -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Theme:
    """A background palette (dark to light) and the motif drawn over its gradient."""

    name: str
    colours: tuple[RGB, ...]
    motif: str  # stars | trees | waves | buildings | petals | blobs | stripes | snow | rays


def _hex(*codes: str) -> tuple[RGB, ...]:
    return tuple(tuple(int(c[i : i + 2], 16) for i in (1, 3, 5)) for c in codes)  # type: ignore[misc]


THEMES: dict[str, Theme] = {
    "night": Theme("night", _hex("#0b1026", "#1b2a5a", "#3a4f9a", "#f3e6a1"), "stars"),
    "forest": Theme("forest", _hex("#0f2a1a", "#2e6b3a", "#7fb069", "#e8f1d6"), "trees"),
    "sea": Theme("sea", _hex("#04283f", "#0f6e8c", "#5cc2d6", "#e6f7fa"), "waves"),
    "autumn": Theme("autumn", _hex("#3b1f0e", "#a3431a", "#e08a2c", "#f7e3c0"), "petals"),
    "spring": Theme("spring", _hex("#5a2a45", "#e58fb0", "#f9d3e0", "#f4fbe9"), "petals"),
    "summer": Theme("summer", _hex("#07506b", "#13a3c2", "#ffd35c", "#fff8e1"), "rays"),
    "winter": Theme("winter", _hex("#1c2b3a", "#6b8aa8", "#cfe0ee", "#fafcff"), "snow"),
    "fire": Theme("fire", _hex("#2a0505", "#8e1010", "#e4471b", "#ffd08a"), "rays"),
    "love": Theme("love", _hex("#4a0d24", "#b3264f", "#f28bab", "#fff0f4"), "blobs"),
    "mystery": Theme("mystery", _hex("#0d0a14", "#2e1a47", "#6b3fa0", "#d9c8f0"), "blobs"),
    "sunset": Theme("sunset", _hex("#2b1840", "#9c3d6b", "#f0793c", "#ffd9a0"), "rays"),
    "desert": Theme("desert", _hex("#5a3514", "#c27c3a", "#e9c58a", "#fbf0dc"), "waves"),
    "city": Theme("city", _hex("#101418", "#3a4450", "#8a96a3", "#f2c14e"), "buildings"),
    "vintage": Theme("vintage", _hex("#3d2b1f", "#8b6b4a", "#d8c3a0", "#f5ecd9"), "stripes"),
    "dream": Theme("dream", _hex("#5c4b8a", "#a59ad6", "#f2c6de", "#fdf7ff"), "blobs"),
    "child": Theme("child", _hex("#1f4e9c", "#f25c54", "#ffd23f", "#fffdf5"), "blobs"),
    "science": Theme("science", _hex("#06141f", "#0d3b66", "#1fa2c4", "#e0fbfc"), "stripes"),
    "plain": Theme("plain", _hex("#22303c", "#5b6f82", "#c9d3dc", "#f6f4ef"), "stripes"),
}

# Description words -> theme. English words match whole tokens; Korean keys match inside words (Korean attaches
# particles and compounds: 밤하늘, 숲속의).
_THEME_WORDS: dict[str, tuple[str, ...]] = {
    "night": ("night", "moon", "star", "stars", "dark", "midnight", "밤", "달", "별", "어둠", "한밤", "새벽"),
    "forest": ("forest", "tree", "trees", "green", "wood", "woods", "nature",
               "숲", "나무", "초록", "녹색", "자연", "산"),
    "sea": ("sea", "ocean", "blue", "water", "wave", "waves", "island",
            "바다", "파도", "섬", "파란", "푸른", "강", "물"),
    "autumn": ("autumn", "fall", "brown", "harvest", "leaf", "leaves", "가을", "낙엽", "단풍", "갈색"),
    "spring": ("spring", "pink", "flower", "flowers", "blossom", "봄", "꽃", "벚꽃", "분홍"),
    "summer": ("summer", "sun", "sunny", "yellow", "beach", "여름", "햇살", "태양", "노란", "해변"),
    "winter": ("winter", "snow", "ice", "white", "cold", "겨울", "눈송이", "눈꽃", "얼음", "하얀", "흰", "추위"),
    "fire": ("fire", "red", "war", "battle", "passion", "blood", "불꽃", "빨간", "붉은", "전쟁", "열정", "피"),
    "love": ("love", "romance", "romantic", "heart", "사랑", "연애", "로맨스", "마음", "설렘"),
    "mystery": ("mystery", "horror", "thriller", "crime", "ghost", "purple", "black", "추리", "공포", "미스터리",
                "스릴러", "범죄", "유령", "보라", "검은", "비밀"),
    "sunset": ("sunset", "dusk", "evening", "orange", "노을", "저녁", "황혼", "주황"),
    "desert": ("desert", "sand", "travel", "journey", "사막", "모래", "여행", "길"),
    "city": ("city", "urban", "street", "grey", "gray", "office", "business", "도시", "거리", "회색", "서울", "회사"),
    "vintage": ("vintage", "history", "old", "classic", "historical", "역사", "옛날", "고전", "조선", "시대"),
    "dream": ("dream", "fantasy", "magic", "pastel", "꿈", "환상", "마법", "판타지"),
    "child": ("child", "children", "kids", "fairy", "picture", "아이", "어린이", "동화", "그림책", "아기"),
    "science": ("science", "space", "future", "robot", "technology", "과학", "우주", "미래", "로봇", "기술", "수학"),
}


def theme_for(description: str) -> Theme:
    """The theme whose words occur most in `description` (ties: first listed); 'plain' when none do."""
    text = description.lower()
    tokens = set(re.findall(r"[a-z]+", text))
    scores: dict[str, int] = {}
    for name, words in _THEME_WORDS.items():
        n = 0
        for w in words:
            if w.isascii():
                n += w in tokens
            else:
                n += text.count(w)
        if n:
            scores[name] = n
    if not scores:
        return THEMES["plain"]
    return THEMES[max(scores, key=lambda k: (scores[k], -list(_THEME_WORDS).index(k)))]


def _gradient(size: int, c0: RGB, c1: RGB, rng: np.random.Generator) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / max(1, size - 1)
    if rng.random() < 0.6:
        angle = rng.uniform(0, np.pi)
        t = (x - 0.5) * np.cos(angle) + (y - 0.5) * np.sin(angle)
        t = (t - t.min()) / max(1e-6, t.max() - t.min())
    else:
        cx, cy = rng.uniform(0.2, 0.8, 2)
        t = np.clip(np.hypot(x - cx, y - cy) / 0.9, 0, 1)
    a, b = np.array(c0, np.float32), np.array(c1, np.float32)
    return a + (b - a) * t[..., None]


def _draw_motif(draw: ImageDraw.ImageDraw, theme: Theme, size: int, rng: np.random.Generator) -> None:
    cols = theme.colours
    s = size

    def col(i: int, alpha: int) -> tuple[int, int, int, int]:
        return (*cols[i % len(cols)], alpha)

    if theme.motif == "stars":
        for _ in range(int(rng.integers(60, 140))):
            x, y, r = rng.uniform(0, s), rng.uniform(0, s), rng.uniform(0.5, 2.2) * s / 512
            draw.ellipse((x - r, y - r, x + r, y + r), fill=col(3, int(rng.integers(120, 255))))
        cx, cy, r = rng.uniform(0.15, 0.85) * s, rng.uniform(0.1, 0.4) * s, rng.uniform(0.06, 0.12) * s
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=col(3, 230))
    elif theme.motif == "trees":
        for _ in range(int(rng.integers(8, 16))):
            x, w = rng.uniform(-0.1, 1.1) * s, rng.uniform(0.08, 0.2) * s
            top = rng.uniform(0.35, 0.75) * s
            draw.polygon([(x, top), (x - w / 2, s), (x + w / 2, s)], fill=col(int(rng.integers(0, 2)), 200))
    elif theme.motif == "waves":
        for k in range(5):
            base = s * (0.55 + 0.09 * k)
            amp, freq, ph = rng.uniform(0.01, 0.04) * s, rng.uniform(2, 5), rng.uniform(0, 6.3)
            pts = [(x, base + amp * np.sin(freq * 2 * np.pi * x / s + ph)) for x in range(0, s + 8, 8)]
            draw.polygon(pts + [(s, s), (0, s)], fill=col(k % 3, 90))
    elif theme.motif == "buildings":
        x = 0.0
        while x < s:
            w, h = rng.uniform(0.06, 0.14) * s, rng.uniform(0.2, 0.55) * s
            draw.rectangle((x, s - h, x + w, s), fill=col(int(rng.integers(0, 2)), 230))
            for _ in range(int(rng.integers(2, 8))):
                wx, wy = rng.uniform(x + 2, x + w - 6), rng.uniform(s - h + 4, s - 6)
                draw.rectangle((wx, wy, wx + 4 * s / 512, wy + 5 * s / 512), fill=col(3, 200))
            x += w + rng.uniform(0, 0.02) * s
    elif theme.motif == "petals":
        for _ in range(int(rng.integers(25, 60))):
            x, y = rng.uniform(0, s), rng.uniform(0, s)
            rx, ry = rng.uniform(4, 14) * s / 512, rng.uniform(2, 7) * s / 512
            fill = col(int(rng.integers(1, 4)), int(rng.integers(90, 200)))
            draw.ellipse((x - rx, y - ry, x + rx, y + ry), fill=fill)
    elif theme.motif == "snow":
        for _ in range(int(rng.integers(80, 160))):
            x, y, r = rng.uniform(0, s), rng.uniform(0, s), rng.uniform(1, 4) * s / 512
            draw.ellipse((x - r, y - r, x + r, y + r), fill=col(3, int(rng.integers(120, 230))))
    elif theme.motif == "rays":
        cx, cy = rng.uniform(0.2, 0.8) * s, rng.uniform(0.6, 1.0) * s
        for k in range(12):
            a0 = k * np.pi / 6 + rng.uniform(0, 0.2)
            pts = [(cx, cy), (cx + 2 * s * np.cos(a0), cy - 2 * s * np.sin(a0)),
                   (cx + 2 * s * np.cos(a0 + 0.18), cy - 2 * s * np.sin(a0 + 0.18))]
            draw.polygon(pts, fill=col(3, 40))
        r = rng.uniform(0.08, 0.16) * s
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=col(3, 170))
    elif theme.motif == "stripes":
        for _ in range(int(rng.integers(3, 7))):
            y, h = rng.uniform(0, s), rng.uniform(0.01, 0.06) * s
            draw.rectangle((0, y, s, y + h), fill=col(int(rng.integers(0, 4)), 70))
        r = rng.uniform(0.1, 0.25) * s
        cx, cy = rng.uniform(0.2, 0.8) * s, rng.uniform(0.5, 0.8) * s
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=col(3, 140), width=max(1, s // 128))
    else:  # blobs
        for _ in range(int(rng.integers(5, 10))):
            x, y, r = rng.uniform(0, s), rng.uniform(0, s), rng.uniform(0.05, 0.22) * s
            draw.ellipse((x - r, y - r, x + r, y + r), fill=col(int(rng.integers(0, 4)), int(rng.integers(60, 150))))


def _quiet_mask(layout: Layout, size: int) -> Image.Image:
    """255 where the motif may show, fading to ~0 over the title boxes (designers keep title areas calm)."""
    mask = Image.new("L", (size, size), 255)
    draw = ImageDraw.Draw(mask)
    for box in layout:
        x0, y0, x1, y1 = box.to_pixels(size)
        pad = max(2, (y1 - y0) // 4)
        draw.rectangle((x0 - pad, y0 - pad, x1 + pad, y1 + pad), fill=20)
    return mask.filter(ImageFilter.GaussianBlur(max(2, size // 64)))


def procedural_background(description: str = "", size: int = 512, seed: int = 0,
                          quiet: Layout | None = None) -> Image.Image:
    """A cover background from the description's colour/mood words: gradient, a themed motif, soft grain.

    With `quiet`, the motif fades out under that layout's boxes so the title sits on calm ground."""
    theme = theme_for(description)
    # Seed mixes in the description so different books with the same seed still differ.
    rng = np.random.default_rng([seed & 0xFFFFFFFF, zlib.crc32(description.encode("utf-8"))])
    dark, light = theme.colours[0], theme.colours[-1]
    c0, c1 = (dark, theme.colours[1]) if rng.random() < 0.5 else (theme.colours[2], light)
    base = _gradient(size, c0, c1, rng)
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB").convert("RGBA")
    layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    _draw_motif(ImageDraw.Draw(layer), theme, size, rng)
    if quiet is not None and len(quiet):
        alpha = np.asarray(layer.getchannel("A"), np.float32) * (np.asarray(_quiet_mask(quiet, size), np.float32) / 255)
        layer.putalpha(Image.fromarray(alpha.astype(np.uint8), "L"))
    img = Image.alpha_composite(img, layer.filter(ImageFilter.GaussianBlur(radius=size / 512 * 0.8)))
    grain = rng.normal(0, 4.0, (size, size, 1)).astype(np.float32)
    out = np.clip(np.asarray(img.convert("RGB"), np.float32) + grain, 0, 255).astype(np.uint8)
    return Image.fromarray(out, "RGB")


def theme_palette(description: str) -> tuple[RGB, ...]:
    """Text colour candidates that belong to the description's theme."""
    return theme_for(description).colours


def typeset_cover(
    layout: Layout,
    description: str = "",
    seed: int = 0,
    font: str = "sans",
    size: int = 512,
    background: Image.Image | None = None,
    style: TypesetStyle | None = None,
) -> Image.Image:
    """A finished cover: procedural (or given) background with every box's text typeset exactly; CPU, offline."""
    if background is None:
        image = procedural_background(description, size=size, seed=seed, quiet=layout)
    else:
        image = background.convert("RGB").resize((size, size)) if background.size != (size, size) else \
            background.convert("RGB").copy()
    if style is None:
        style = TypesetStyle(font=font, palette=theme_palette(description))
    typeset_layout(image, layout, style)
    return image
