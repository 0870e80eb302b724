"""Text boxes on TD2's 128x128 layout grid: `Box`, `Layout`, JSON, the one pixel<->grid conversion, previews."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from PIL import Image, ImageDraw

from .assets import load_font

GRID = 128  # TD2's layout granularity: coordinates are cells of a 128x128 grid over the image.

_PREVIEW_COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324"]


class LayoutError(ValueError):
    """A box or layout that breaks the grid rules."""


def to_grid(value: float, size: int) -> int:
    """Pixel coordinate on a `size`-pixel side -> grid coordinate in [0, GRID] (TD2: x // (512 // 128))."""
    if size <= 0:
        raise LayoutError(f"image size must be positive, got {size}")
    return int(min(max(value * GRID // size, 0), GRID))


def to_pixel(value: int, size: int) -> int:
    """Grid coordinate -> pixel coordinate on a `size`-pixel side (exact on 512: x * 4)."""
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

    def to_pixels(self, size: int = 512) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) on a square `size`-pixel image."""
        return tuple(to_pixel(v, size) for v in (self.l, self.t, self.r, self.b))  # type: ignore[return-value]

    @classmethod
    def from_pixels(cls, text: str, x0: float, y0: float, x1: float, y1: float, size: int = 512) -> Box:
        """Box from pixel corners in any order; clipped to the image, raises LayoutError if it has no area."""
        l, r = sorted((to_grid(x0, size), to_grid(x1, size)))
        t, b = sorted((to_grid(y0, size), to_grid(y1, size)))
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
    layout: Layout, size: int = 512, background: Image.Image | None = None, font: str = "sans"
) -> Image.Image:
    """Preview image: each box outlined and labelled with its text (index and Korean text)."""
    if background is None:
        img = Image.new("RGB", (size, size), "white")
    else:
        img = background.convert("RGB").resize((size, size))
    draw = ImageDraw.Draw(img)
    for i, box in enumerate(layout):
        colour = _PREVIEW_COLOURS[i % len(_PREVIEW_COLOURS)]
        x0, y0, x1, y1 = box.to_pixels(size)
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=max(1, size // 256))
        f = _fit_font(draw, box.text, max(1, x1 - x0 - 4), max(1, y1 - y0 - 4), font)
        draw.text(((x0 + x1) / 2, (y0 + y1) / 2), box.text, fill=colour, font=f, anchor="mm")
    return img
