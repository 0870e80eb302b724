"""Exact typesetting: a layout's text drawn into its boxes by role (title, subtitle, author) with the shipped fonts,
per-syllable font fallback, readable colours, and a solid panel where the ground is busy.

Backgrounds live in `kordiff.backgrounds`, motifs and their cultural rules in `kordiff.motifs`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from .assets import FONTS, has_glyph, load_font
from .backgrounds import THEMES, Theme, procedural_background, theme_for, theme_palette
from .layout import DEFAULT_SHAPE, GRID, Box, Layout, Size, cover_size
from .motifs import is_red

__all__ = [
    "FALLBACK_FONT", "MIN_CONTRAST", "OCR_READABLE_FONTS", "ROLE_FONTS", "THEMES", "FittedText", "PlacedText",
    "TextColour", "Theme", "TypesetStyle", "background_luminance_range", "contrast_ratio", "fit_text",
    "image_palette", "infer_roles", "mood_fonts", "pick_text_colour", "procedural_background", "readable_font",
    "relative_luminance", "theme_for", "theme_palette", "typeset_box", "typeset_cover", "typeset_layout",
]

logger = logging.getLogger(__name__)

MIN_CONTRAST = 4.5  # WCAG AA for normal text
MIN_FONT_SIZE = 6
# Hairline faces (Myeongjo's thin strokes, pen and brush) break up below this size, for readers and OCR alike:
# smaller text in them is set in the Gothic fallback instead.
THIN_FONTS = ("serif", "handwriting", "brush")
MIN_THIN_FONT_SIZE = 22

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
    lum_range: tuple[float, float], palette: list[RGB] | tuple[RGB, ...] = (), min_contrast: float = MIN_CONTRAST,
    avoid_red: bool = False,
) -> TextColour:
    """Most contrasting palette colour (else black/white) against both ends of the background; stroke if < target.

    `avoid_red` drops red candidates (an author's name is never written in red: kordiff.motifs rule 5)."""
    lo, hi = lum_range
    if avoid_red:
        palette = [c for c in palette if not is_red(c)]
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



# --- fonts and roles ------------------------------------------------------------------------------------------

ROLE_FONTS = ("title", "subtitle", "author")
FALLBACK_FONT = "sans"  # NanumBarunGothic draws all 11,172 Hangul syllables


# Faces that "auto" may pick: the ones Tesseract reads at cover sizes, so a cover's exact-text check (OCR) means
# something. Sentence accuracy over all 229 benchmark titles, one face for every box (`python -m kordiff.evaluate
# --split all --font F`): sans 0.995, serif 0.991, handwriting 0.836, display 0.570 (BM DoHyeon's square ㅇ
# reads as ㅁ), brush 0.551. The others stay one click away (`font="display"`) but are never chosen for the user.
OCR_READABLE_FONTS = ("sans", "serif")


def readable_font(style: str) -> str:
    """`style` if OCR reads it reliably (OCR_READABLE_FONTS), else the Gothic fallback: what "auto" sets."""
    return style if style in OCR_READABLE_FONTS else FALLBACK_FONT


def mood_fonts(description: str = "", title_font: str | None = None, body_font: str | None = None) -> dict[str, str]:
    """Font style per role for a description's mood (Myeongjo for literary, Gothic for thrillers, cities and
    children, ...); `title_font`/`body_font` (a FONTS style) override the mood. The mood's own choice is limited to
    OCR_READABLE_FONTS (a children's theme's display face becomes Gothic); the user's choice is kept as given."""
    theme = theme_for(description)
    title = title_font or readable_font(theme.title_font)
    body = body_font or readable_font(theme.body_font)
    sub = title if title in ("serif", "sans") else body  # brush/display/pen subtitles read as clutter
    return {"title": title, "subtitle": sub, "author": body}


def infer_roles(layout: Layout) -> list[str]:
    """Role of each box from its size: the tallest lines are the title, the smallest later ones the author."""
    if not len(layout):
        return []
    hmax = max(b.height for b in layout)
    roles = ["title" if b.height >= 0.72 * hmax else "" for b in layout]
    others = sorted({b.height for b, r in zip(layout, roles) if not r})
    if others:
        small = others[0]
        two_levels = others[-1] > small * 1.15
        for i, b in enumerate(layout):
            if roles[i]:
                continue
            at_edge = b.b > 100 or b.t < 28
            if two_levels:
                roles[i] = "author" if b.height < small * 1.15 else "subtitle"
            else:
                roles[i] = "author" if (at_edge and i == len(layout) - 1 and b.height <= 0.45 * hmax) else "subtitle"
    return roles


def _runs(line: str, font: str) -> list[tuple[str, str]]:
    """(font style, text) runs: each character in `font` where it has the glyph, else in the fallback face."""
    runs: list[tuple[str, str]] = []
    for ch in line:
        style = font if has_glyph(font, ch) else FALLBACK_FONT
        if runs and (runs[-1][0] == style or ch.isspace()):
            runs[-1] = (runs[-1][0], runs[-1][1] + ch)
        else:
            runs.append((style, ch))
    return runs


# --- fitting text into a box ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TypesetStyle:
    """How text is drawn: font style, alignment, padding, stroke/shadow, line spacing, palette for the fill.

    `role_fonts` maps roles (title/subtitle/author) to font styles; `font` is used for the rest. A character a
    font lacks is drawn in the fallback face (per syllable, not the whole line)."""

    font: str = "sans"
    align: str = "center"  # left | center | right | auto (left for a box flush with the left margin, else centre)
    padding: float = 0.06  # fraction of the box's smaller side kept clear on each side
    stroke: str = "auto"  # auto (only when contrast needs it) | always | never
    stroke_ratio: float = 0.07  # stroke width as a fraction of the font size
    shadow: bool = False
    veil: bool = True  # on busy ground, lay a solid panel under the text until a fill colour reaches the target
    # ... and until the ground's own dark/light contrast is at most this: WCAG contrast alone leaves texture
    # that breaks glyph edges for readers and OCR alike.
    max_ground_contrast: float = 2.0
    shadow_ratio: float = 0.06  # shadow offset as a fraction of the font size
    line_spacing: float = 0.15  # extra space between lines, fraction of the font size
    max_lines: int = 4
    palette: tuple[RGB, ...] = ()
    role_fonts: tuple[tuple[str, str], ...] = ()  # ((role, font style), ...), e.g. from `mood_fonts`
    vertical: str = "auto"  # auto: a tall narrow box with a short title is set top to bottom (세로쓰기) | never

    def __post_init__(self) -> None:
        for f in (self.font, *(f for _, f in self.role_fonts)):
            if f not in FONTS:
                raise ValueError(f"unknown font style {f!r}; choose one of {sorted(FONTS)}")
        if self.align not in ("left", "center", "right", "auto"):
            raise ValueError(f"align must be left, center, right or auto, got {self.align!r}")
        if self.stroke not in ("auto", "always", "never"):
            raise ValueError(f"stroke must be auto, always or never, got {self.stroke!r}")
        if self.vertical not in ("auto", "never"):
            raise ValueError(f"vertical must be auto or never, got {self.vertical!r}")

    def font_for(self, role: str) -> str:
        return dict(self.role_fonts).get(role, self.font)


@dataclass(frozen=True)
class FittedText:
    """Text broken into lines at a font size, with its ink extent (pixels, relative to the draw origin)."""

    lines: tuple[str, ...]
    size: int
    ink: tuple[int, int, int, int]
    stroke_width: int
    spacing: int
    font: str = "sans"
    vertical: bool = False

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def width(self) -> int:
        return self.ink[2] - self.ink[0]

    @property
    def height(self) -> int:
        return self.ink[3] - self.ink[1]


@lru_cache(maxsize=4096)
def _text_mask(lines: tuple[str, ...], font: str, size: int, spacing: int, align: str, stroke: int) -> Image.Image:
    """The lines drawn white on black, run by run (per-syllable fallback), origin at (0, 0) = the canvas corner."""
    pitch = size + spacing
    widths = []
    for line in lines:
        widths.append(sum(load_font(f, size).getlength(t) for f, t in _runs(line, font)))
    pad = 2 + stroke + size // 4
    w = int(math.ceil(max(widths or [1]))) + 2 * pad
    h = pitch * len(lines) + size // 2 + 2 * pad
    mask = Image.new("L", (max(1, w), max(1, h)), 0)
    draw = ImageDraw.Draw(mask)
    full = max(widths or [0])
    for i, (line, lw) in enumerate(zip(lines, widths)):
        x = pad + {"left": 0, "right": full - lw}.get(align, (full - lw) / 2)
        y = pad + round(size * 0.9) + i * pitch  # baseline
        for f, t in _runs(line, font):
            fnt = load_font(f, size)
            draw.text((x, y), t, font=fnt, fill=255, anchor="ls", stroke_width=stroke, stroke_fill=255)
            x += fnt.getlength(t)
    return mask


def _ink_bbox(lines: tuple[str, ...], size: int, style: TypesetStyle, stroke_width: int, spacing: int,
              font: str | None = None) -> tuple[int, int, int, int]:
    """Exact ink bbox of the text in mask coordinates (a rendered mask, so glyph overhangs count)."""
    bb = _text_mask(lines, font or style.font, size, spacing, style.align, stroke_width).getbbox()
    return bb if bb is not None else (0, 0, 0, 0)


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


def is_vertical_candidate(text: str, width: int, height: int) -> bool:
    """A box at least 1.8x taller than wide holding 2-8 characters without spaces: set top to bottom."""
    return height >= 1.8 * width and 2 <= len(text) <= 8 and " " not in text.strip()


def fit_text(text: str, width: int, height: int, style: TypesetStyle = TypesetStyle(),
             font: str | None = None) -> FittedText:
    """Largest font size (and line count, when the box is tall enough) whose ink fits width x height pixels."""
    text = " ".join(text.split())
    if not text:
        raise ValueError("nothing to typeset: empty text")
    font = font or style.font
    vertical = style.vertical == "auto" and is_vertical_candidate(text, width, height)
    if vertical:
        style = replace(style, align="center")
    options = [tuple(text)] if vertical else []
    max_lines = min(style.max_lines, max(1, len(text.replace(" ", ""))))
    if not vertical:
        options = [_line_breaks(text, n) for n in range(1, max_lines + 1)]
        options = [o for n, o in enumerate(options, 1) if len(o) == n]
    best: FittedText | None = None
    for lines in options:
        lo, hi = MIN_FONT_SIZE, max(MIN_FONT_SIZE, int(height * 1.5 / len(lines)) + 2, int(width * 1.5) + 2)
        found = None
        while lo <= hi:  # binary search on the font size; ink extent is monotone in size
            mid = (lo + hi) // 2
            stroke, shadow = _extra(style, mid)
            spacing = round(mid * (0.02 if vertical else style.line_spacing))
            ink = _ink_bbox(lines, mid, style, stroke, spacing, font)
            if ink[2] - ink[0] + shadow <= width and ink[3] - ink[1] + shadow <= height:
                found = FittedText(lines, mid, ink, stroke, spacing, font, vertical)
                lo = mid + 1
            else:
                hi = mid - 1
        if found is not None and (best is None or found.size > best.size * 1.08):
            best = found
    if best is None:  # not even the smallest size fits: draw it smallest and let the caller clip
        stroke, shadow = _extra(style, MIN_FONT_SIZE)
        spacing = round(MIN_FONT_SIZE * style.line_spacing)
        best = FittedText((text,), MIN_FONT_SIZE, _ink_bbox((text,), MIN_FONT_SIZE, style, stroke, spacing, font),
                          stroke, spacing, font)
        logger.warning("text %r does not fit a %dx%d box even at %d px", text, width, height, MIN_FONT_SIZE)
    return best


# --- drawing --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlacedText:
    """Where one box's text went: the box in pixels, the ink bbox in pixels, the fitted text, colour and role."""

    box: Box
    box_px: tuple[int, int, int, int]
    ink_px: tuple[int, int, int, int]
    fitted: FittedText
    colour: TextColour
    role: str = "title"


def typeset_box(image: Image.Image, box: Box, style: TypesetStyle = TypesetStyle(), role: str = "title",
                font: str | None = None, panel_dark: bool | None = None) -> PlacedText:
    """Draw `box.text` into `image` (in place, RGB) so that all ink stays inside the box."""
    font = font or style.font_for(role)
    if font not in FONTS:
        raise ValueError(f"unknown font style {font!r}; choose one of {sorted(FONTS)}")
    if style.align == "auto":  # a lone box: flush left when it hugs the left margin
        style = replace(style, align="left" if box.l <= 12 and box.l + box.r < 120 else "center")
    bx0, by0, bx1, by1 = box.to_pixels(image.size)
    pad = max(1, round(min(bx1 - bx0, by1 - by0) * style.padding))
    inner_w, inner_h = max(1, bx1 - bx0 - 2 * pad), max(1, by1 - by0 - 2 * pad)
    fitted = fit_text(box.text, inner_w, inner_h, style, font)
    if font in THIN_FONTS and fitted.size < MIN_THIN_FONT_SIZE:
        fitted = fit_text(box.text, inner_w, inner_h, style, FALLBACK_FONT)
    ground = background_luminance_range(image, (bx0, by0, bx1, by1))
    avoid_red = role == "author"
    colour = pick_text_colour(ground, list(style.palette), avoid_red=avoid_red)
    if style.veil and (colour.stroke is not None or contrast_ratio(*ground) > style.max_ground_contrast):
        colour = _apply_panel(image, (bx0, by0, bx1, by1), list(style.palette), style.max_ground_contrast, avoid_red,
                              panel_dark)
    stroke_fill = colour.stroke
    stroke_width = fitted.stroke_width
    if style.stroke == "always" and stroke_fill is None:
        stroke_fill = (0, 0, 0) if relative_luminance(colour.fill) > 0.18 else (255, 255, 255)
    if stroke_fill is None:
        stroke_width = 0  # ink only shrinks, so it still fits
    _, shadow = _extra(style, fitted.size)

    ix0, iy0, ix1, iy1 = fitted.ink
    ink_w, ink_h = fitted.width + shadow, fitted.height + shadow
    align = "center" if fitted.vertical else style.align
    if align == "left":
        ox = bx0 + pad
    elif align == "right":
        ox = bx1 - pad - ink_w
    else:
        ox = bx0 + pad + (inner_w - ink_w) // 2
    oy = by0 + pad + (inner_h - ink_h) // 2
    bw, bh = bx1 - bx0, by1 - by0
    # The (stroked) mask's ink corner goes to (ox, oy); a mask drawn with a thinner stroke shares its origin.
    base = (ox - ix0 - bx0, oy - iy0 - by0)

    def paste(colour_rgb: RGB, offset: tuple[int, int], stroke: int) -> None:
        # Glyphs go through a mask the size of the box, so no pixel can land outside it, and anti-aliased
        # edges blend with the real background.
        glyphs = _text_mask(fitted.lines, fitted.font, fitted.size, fitted.spacing, align, stroke)
        shift = fitted.stroke_width - stroke  # thinner strokes sit further in on a canvas padded for the stroke
        mask = Image.new("L", (bw, bh), 0)
        mask.paste(glyphs, (base[0] + offset[0] + shift, base[1] + offset[1] + shift))
        image.paste(colour_rgb, (bx0, by0, bx1, by1), mask)

    if shadow:
        shade = (0, 0, 0) if relative_luminance(colour.fill) > 0.18 else (255, 255, 255)
        paste(shade, (shadow, shadow), stroke_width)
    if stroke_width and stroke_fill is not None:
        paste(tuple(stroke_fill), (0, 0), stroke_width)
    paste(colour.fill, (0, 0), 0)
    ink = (ox, oy, ox + ink_w, oy + ink_h)
    return PlacedText(box, (bx0, by0, bx1, by1), ink, fitted, colour, role)


def _apply_panel(image: Image.Image, box_px: tuple[int, int, int, int], palette: list[RGB],
                 max_ground_contrast: float = 2.0, avoid_red: bool = False, dark: bool | None = None) -> TextColour:
    """Lay a solid panel (a colour taken from the image itself, pushed dark or light) under the box and a margin
    around it, as opaque as makes a fill colour reach the contrast target and the ground calm; returns the colour.
    Clean edges, no blur: a label on the art, not a smudge."""
    x0, y0, x1, y1 = box_px
    m = max(3, round((y1 - y0) * 0.3))
    panel_px = (max(0, x0 - m), max(0, y0 - m), min(image.width, x1 + m), min(image.height, y1 + m))
    lo, hi = background_luminance_range(image, box_px)
    region = np.asarray(image.crop(box_px).convert("RGB"), np.float32).reshape(-1, 3)
    mean = region.mean(0) if len(region) else np.array([128.0, 128.0, 128.0])
    dark = (lo + hi) / 2 < 0.35 if dark is None else dark
    target = np.array([12, 12, 16] if dark else [248, 246, 240], np.float32)
    tint = tuple(int(v) for v in mean * 0.15 + target * 0.85)  # keeps a hint of the art's hue
    colour = pick_text_colour((lo, hi), palette, avoid_red=avoid_red)
    crop = image.crop(panel_px).convert("RGB")
    inner = (x0 - panel_px[0], y0 - panel_px[1], x1 - panel_px[0], y1 - panel_px[1])
    for alpha in (0.96, 1.0):  # nearly opaque: a hint of the art shows through, its texture does not
        trial = Image.blend(crop, Image.new("RGB", crop.size, tint), alpha)
        ground = background_luminance_range(trial, inner)
        colour = pick_text_colour(ground, palette, avoid_red=avoid_red)
        if (colour.stroke is None and contrast_ratio(*ground) <= max_ground_contrast) or alpha == 1.0:
            image.paste(trial, panel_px[:2])
            break
    return colour


def typeset_layout(image: Image.Image, layout: Layout, style: TypesetStyle = TypesetStyle(),
                   roles: Sequence[str] | None = None, fonts: Sequence[str | None] | None = None) -> list[PlacedText]:
    """Draw every box of `layout` into `image` in place; returns where each went.

    `roles` (default: `infer_roles`) pick each box's font from `style.role_fonts`; `fonts` overrides per box."""
    roles = list(roles) if roles is not None else infer_roles(layout)
    if style.align == "auto":
        style = replace(style, align=layout_alignment(layout))
    fonts = list(fonts) if fonts is not None else [None] * len(layout)
    if len(roles) != len(layout) or len(fonts) != len(layout):
        raise ValueError(f"need one role and one font per box ({len(layout)}), got {len(roles)} and {len(fonts)}")
    # One panel tone for the whole cover (where panels are needed), from the ground under all the boxes together.
    lums = [background_luminance_range(image, b.to_pixels(image.size)) for b in layout]
    panel_dark = float(np.mean([(lo + hi) / 2 for lo, hi in lums])) < 0.35 if lums else None
    return [typeset_box(image, box, style, role, font, panel_dark) for box, role, font in zip(layout, roles, fonts)]


def layout_alignment(layout: Layout) -> str:
    """'left' when every horizontal box starts at the same column and some box stops short of mirroring it (the
    planner's flush-left placements keep a ragged right edge), else 'center'."""
    rows = [b for b in layout if b.width >= b.height]
    if rows and len({b.l for b in rows}) == 1 and any(b.l + b.r < GRID - 8 for b in rows):
        return "left"
    return "center"


def image_palette(image: Image.Image, n: int = 6) -> tuple[RGB, ...]:
    """The `n` dominant colours of an image (hybrid covers take their text colours from the art)."""
    small = image.convert("RGB").resize((64, 64))
    q = small.quantize(colors=n, method=Image.Quantize.MEDIANCUT)
    pal = q.getpalette()[: 3 * n]
    return tuple(tuple(pal[i : i + 3]) for i in range(0, len(pal), 3))  # type: ignore[misc]


def cover_style(description: str = "", font: str = "auto", body_font: str = "auto",
                palette: Sequence[RGB] | None = None) -> TypesetStyle:
    """The typeset style of a cover: fonts by mood (or the user's: `font` for the title, `body_font` for the rest)
    and the theme's palette (or `palette`, e.g. `image_palette` of diffusion art)."""
    fonts = mood_fonts(description, None if font == "auto" else font, None if body_font == "auto" else body_font)
    if font != "auto" and body_font == "auto":
        fonts["subtitle"] = font
    pal = tuple(palette) if palette is not None else theme_palette(description)
    return TypesetStyle(font=fonts["title"], palette=pal, role_fonts=tuple(fonts.items()), align="auto")


def typeset_cover(
    layout: Layout,
    description: str = "",
    seed: int = 0,
    font: str = "auto",
    size: Size | str = DEFAULT_SHAPE,
    background: Image.Image | None = None,
    style: TypesetStyle | None = None,
) -> Image.Image:
    """A finished cover (default portrait 512x768; `size="square"` or a pixel size): procedural (or given)
    background with every box's text typeset exactly, fonts by role and mood; CPU, offline."""
    wh = cover_size(size)
    if background is None:
        image = procedural_background(description, size=wh, seed=seed, quiet=layout)
    else:
        image = background.convert("RGB").resize(wh) if background.size != wh else background.convert("RGB").copy()
    if style is None:
        style = cover_style(description, font)
    typeset_layout(image, layout, style)
    return image
