"""Text boxes on TD2's 128x128 layout grid: `Box`, `Layout`, JSON, cover sizes, the one pixel<->grid conversion.

The grid is 128 cells PER AXIS over the whole cover, whatever its shape: on a 512x768 portrait cover a cell is
4 px wide and 6 px tall. `to_grid`/`to_pixel` (and `Box.to_pixels`/`Box.from_pixels`, which call them) are the
only place pixels and grid cells are converted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from PIL import Image, ImageDraw

from .assets import load_font

GRID = 128  # TD2's layout granularity: coordinates are cells of a 128x128 grid over the image (per axis).

# Cover shapes as (width, height) in pixels. Korean books (신국판 152x225 mm, 46판 128x188 mm) are about 2:3, so
# portrait is the default; square is TD2's native training shape (its best choice for diffusion-only covers).
COVER_SIZES: dict[str, tuple[int, int]] = {"portrait": (512, 768), "square": (512, 512)}
DEFAULT_SHAPE = "portrait"

Size = int | tuple[int, int]  # a square side, or (width, height) like PIL


def cover_size(shape: str | Size = DEFAULT_SHAPE, width: int | None = None) -> tuple[int, int]:
    """(width, height) in pixels of a cover shape name ("portrait", "square") or a size; `width` rescales it."""
    if isinstance(shape, str):
        if shape not in COVER_SIZES:
            raise LayoutError(f"unknown cover shape {shape!r}; choose one of {sorted(COVER_SIZES)}")
        w, h = COVER_SIZES[shape]
    else:
        w, h = image_wh(shape)
    if width is not None:
        w, h = int(width), int(round(h * width / w))
    if w <= 0 or h <= 0:
        raise LayoutError(f"cover size must be positive, got {w}x{h}")
    return w, h


def image_wh(size: Size) -> tuple[int, int]:
    """(width, height) from a square side or a (width, height) pair."""
    if isinstance(size, tuple | list):
        w, h = size
        return int(w), int(h)
    return int(size), int(size)


def shape_of(size: Size) -> str:
    """"square" for a square size, else "portrait" (taller) or "landscape"."""
    w, h = image_wh(size)
    return "square" if w == h else ("portrait" if h > w else "landscape")

_PREVIEW_COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324"]


class LayoutError(ValueError):
    """A box or layout that breaks the grid rules."""


def to_grid(value: float, size: int) -> int:
    """Pixel coordinate along an axis of `size` pixels (the cover's width for x, height for y) -> grid [0, GRID].

    On 512 this is TD2's x // (512 // 128)."""
    if size <= 0:
        raise LayoutError(f"image size must be positive, got {size}")
    return int(min(max(value * GRID // size, 0), GRID))


def to_pixel(value: int, size: int) -> int:
    """Grid coordinate -> pixel coordinate along an axis of `size` pixels (width for x, height for y; 512: x * 4)."""
    return int(round(value * size / GRID))


@dataclass(frozen=True)
class Box:
    """One line of text and where it goes: left, top, right, bottom on the GRID."""

    text: str
    l: int  # noqa: E741 - TD2's own names for the four sides
    t: int
    r: int
    b: int

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or not self.text.strip():
            raise LayoutError(f"box text must be a non-empty string, got {self.text!r}")
        for name in ("l", "t", "r", "b"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise LayoutError(f"box coordinate {name} must be an int, got {v!r}")
        if not (0 <= self.l < self.r <= GRID):
            raise LayoutError(f"need 0 <= l < r <= {GRID}, got l={self.l} r={self.r} for {self.text!r}")
        if not (0 <= self.t < self.b <= GRID):
            raise LayoutError(f"need 0 <= t < b <= {GRID}, got t={self.t} b={self.b} for {self.text!r}")

    @property
    def width(self) -> int:
        return self.r - self.l

    @property
    def height(self) -> int:
        return self.b - self.t

    def to_pixels(self, size: Size = 512) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) on an image of `size` (a square side, or (width, height))."""
        w, h = image_wh(size)
        return (to_pixel(self.l, w), to_pixel(self.t, h), to_pixel(self.r, w), to_pixel(self.b, h))

    @classmethod
    def from_pixels(cls, text: str, x0: float, y0: float, x1: float, y1: float, size: Size = 512) -> Box:
        """Box from pixel corners in any order on an image of `size`; clipped, raises LayoutError if it has no area."""
        w, h = image_wh(size)
        l, r = sorted((to_grid(x0, w), to_grid(x1, w)))
        t, b = sorted((to_grid(y0, h), to_grid(y1, h)))
        return cls(text, l, t, r, b)

    def with_text(self, text: str) -> Box:
        return Box(text, self.l, self.t, self.r, self.b)

    def to_dict(self) -> dict:
        return {"text": self.text, "l": self.l, "t": self.t, "r": self.r, "b": self.b}

    @classmethod
    def from_dict(cls, d: dict) -> Box:
        try:
            return cls(d["text"], int(d["l"]), int(d["t"]), int(d["r"]), int(d["b"]))
        except (KeyError, TypeError, ValueError) as e:
            raise LayoutError(f"not a box: {d!r} ({e})") from None

    def to_planner_line(self) -> str:
        """The M1 planner's output format: `text l,t,r,b`."""
        return f"{self.text} {self.l},{self.t},{self.r},{self.b}"


@dataclass(frozen=True)
class Layout:
    """An ordered tuple of boxes (order = reading order = order in the prompt)."""

    boxes: tuple[Box, ...] = ()

    def __post_init__(self) -> None:
        boxes = tuple(self.boxes)
        for b in boxes:
            if not isinstance(b, Box):
                raise LayoutError(f"layout items must be Box, got {type(b).__name__}")
        object.__setattr__(self, "boxes", boxes)

    def __len__(self) -> int:
        return len(self.boxes)

    def __iter__(self) -> Iterator[Box]:
        return iter(self.boxes)

    def __getitem__(self, i: int) -> Box:
        return self.boxes[i]

    @property
    def texts(self) -> list[str]:
        return [b.text for b in self.boxes]

    def to_dict(self) -> dict:
        return {"grid": GRID, "boxes": [b.to_dict() for b in self.boxes]}

    def to_json(self, indent: int | None = 2) -> str:
        """JSON text (UTF-8 Hangul kept readable)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)

    @classmethod
    def from_dict(cls, d: dict | list) -> Layout:
        """From `{"grid": 128, "boxes": [...]}` or a bare list of box dicts."""
        if isinstance(d, dict):
            grid = d.get("grid", GRID)
            if grid != GRID:
                raise LayoutError(f"layout grid {grid} is not kordiff's {GRID}")
            d = d.get("boxes", [])
        if not isinstance(d, list):
            raise LayoutError("layout must be a list of boxes or {'grid':..., 'boxes': [...]}")
        return cls(tuple(Box.from_dict(b) for b in d))

    @classmethod
    def from_json(cls, text: str) -> Layout:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise LayoutError(f"layout is not valid JSON: {e}") from None
        return cls.from_dict(data)

    @classmethod
    def of(cls, boxes: Iterable[Box]) -> Layout:
        return cls(tuple(boxes))

    def to_planner_text(self) -> str:
        """The layout as M1 would have written it, one `text l,t,r,b` line per box."""
        return "\n".join(b.to_planner_line() for b in self.boxes)


def _fit_font(draw: ImageDraw.ImageDraw, text: str, width: int, height: int, style: str):
    size = max(8, min(height, 48))
    while size > 8:
        font = load_font(style, size)
        x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
        if x1 - x0 <= width and y1 - y0 <= height:
            return font
        size -= 2
    return load_font(style, 8)


def render_layout(
    layout: Layout, size: Size | str = DEFAULT_SHAPE, background: Image.Image | None = None, font: str = "sans"
) -> Image.Image:
    """Preview image (default: a portrait cover): each box outlined and labelled with its text."""
    wh = cover_size(size)
    if background is None:
        img = Image.new("RGB", wh, "white")
    else:
        img = background.convert("RGB").resize(wh)
    draw = ImageDraw.Draw(img)
    for i, box in enumerate(layout):
        colour = _PREVIEW_COLOURS[i % len(_PREVIEW_COLOURS)]
        x0, y0, x1, y1 = box.to_pixels(wh)
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=max(1, min(wh) // 256))
        f = _fit_font(draw, box.text, max(1, x1 - x0 - 4), max(1, y1 - y0 - 4), font)
        draw.text(((x0 + x1) / 2, (y0 + y1) / 2), box.text, fill=colour, font=f, anchor="mm")
    return img
