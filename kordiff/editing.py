"""Layout <-> editing widgets (annotation canvas boxes in pixels, a text/l/t/r/b table on the grid), never raising.

User edits arrive half-broken (boxes dragged past the canvas, zero-size boxes, rows without text); every
conversion here returns the layout it could build plus one notice per thing it clipped or left out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageDraw

from .layout import _PREVIEW_COLOURS, GRID, Box, Layout, LayoutError
from .tokens import MAX_LENGTH, book_caption, clip_tokenizer_from_assets, encode_prompt_report, extend_tokenizer

CANVAS_SIZE = 512  # the canvas is square and 4 px per grid cell, so pixel <-> grid is exact
TABLE_COLUMNS = ("text", "l", "t", "r", "b")
MAX_TITLE_CHARS = 200  # far past the 77-token prompt; only stops pasted essays from reaching the planner
MAX_DESCRIPTION_CHARS = 1000


@dataclass(frozen=True)
class EditResult:
    """The layout built from a widget's value and what had to be clipped or left out, in words."""

    layout: Layout
    notices: tuple[str, ...] = ()


def blank_cover(size: int = CANVAS_SIZE) -> Image.Image:
    """A paper-coloured cover with a faint 16-cell grid, so the cover's edges show on the canvas."""
    img = Image.new("RGB", (size, size), "#f3efe6")
    draw = ImageDraw.Draw(img)
    for x in range(0, size + 1, size // 8):
        draw.line([(x, 0), (x, size)], fill="#e2dccd")
        draw.line([(0, x), (size, x)], fill="#e2dccd")
    draw.rectangle([0, 0, size - 1, size - 1], outline="#b9b09a", width=2)
    return img


def box_colour(index: int) -> str:
    """The canvas colour of the index-th box, as `rgb(r, g, b)` (the same palette as `render_layout`)."""
    h = _PREVIEW_COLOURS[index % len(_PREVIEW_COLOURS)].lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgb({r}, {g}, {b})"


def layout_to_boxes(layout: Layout, size: int = CANVAS_SIZE) -> list[dict]:
    """Annotation-canvas boxes (pixels on a `size` canvas) labelled with their text."""
    out = []
    for i, box in enumerate(layout):
        x0, y0, x1, y1 = box.to_pixels(size)
        out.append({"label": box.text, "xmin": x0, "ymin": y0, "xmax": x1, "ymax": y1, "color": box_colour(i)})
    return out


def _name(i: int, text: str) -> str:
    return f"box {i + 1}" + (f" ({text!r})" if text else "")


def _number(value) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def boxes_to_layout(boxes: Iterable[dict] | None, size: int = CANVAS_SIZE) -> EditResult:
    """Canvas boxes -> Layout: coordinates clipped to the canvas, boxes without text or area left out."""
    kept: list[Box] = []
    notices: list[str] = []
    for i, d in enumerate(boxes or []):
        d = d if isinstance(d, dict) else {}
        text = str(d.get("label") or "").strip()
        coords = [_number(d.get(k)) for k in ("xmin", "ymin", "xmax", "ymax")]
        if any(c is None for c in coords):
            notices.append(f"{_name(i, text)} has no usable coordinates: left out.")
            continue
        if not text:
            notices.append(f"{_name(i, text)} has no text (double-click it on the canvas to type one): left out.")
            continue
        if any(c < 0 or c > size for c in coords):
            notices.append(f"{_name(i, text)} reached past the edge of the cover: clipped to it.")
        try:
            kept.append(Box.from_pixels(text, *coords, size=size))
        except LayoutError:
            notices.append(f"{_name(i, text)} has zero width or height: left out.")
    return EditResult(Layout.of(kept), tuple(notices))


def layout_to_rows(layout: Layout) -> list[list]:
    """Table rows `[text, l, t, r, b]` on the 128 grid."""
    return [[b.text, b.l, b.t, b.r, b.b] for b in layout]


def _rows(table) -> list:
    if table is None:
        return []
    if isinstance(table, dict):  # gradio's wire format {"headers": [...], "data": [...]}
        return list(table.get("data") or [])
    if hasattr(table, "values") and hasattr(table, "columns"):  # a pandas DataFrame
        return table.values.tolist()
    return list(table)


def rows_to_layout(table) -> EditResult:
    """Table rows -> Layout: numbers rounded and clipped to 0..128, empty rows skipped, bad rows left out."""
    kept: list[Box] = []
    notices: list[str] = []
    for i, row in enumerate(_rows(table)):
        cells = list(row) if isinstance(row, Sequence) and not isinstance(row, str) else [row]
        cells = (cells + [None] * 5)[:5]
        text = "" if cells[0] is None else str(cells[0]).strip()
        if not text and all(c in (None, "") for c in cells[1:]):
            continue  # a blank row the user added and has not filled yet
        if not text:
            notices.append(f"row {i + 1} has no text: left out.")
            continue
        nums = [_number(c) for c in cells[1:]]
        if any(n is None for n in nums):
            notices.append(f"row {i + 1} ({text!r}) needs four numbers l, t, r, b: left out.")
            continue
        rounded = [int(round(n)) for n in nums]
        clipped = [min(max(n, 0), GRID) for n in rounded]
        if clipped != rounded:
            notices.append(f"row {i + 1} ({text!r}) reached past the 0..{GRID} grid: clipped to it.")
        l, r = sorted((clipped[0], clipped[2]))
        t, b = sorted((clipped[1], clipped[3]))
        try:
            kept.append(Box(text, l, t, r, b))
        except LayoutError:
            notices.append(f"row {i + 1} ({text!r}) has zero width or height: left out.")
    return EditResult(Layout.of(kept), tuple(notices))


def check_text(title: str | None, description: str | None = "") -> tuple[str, str]:
    """Stripped (title, description); raises ValueError with a user-facing message when unusable."""
    title = (title or "").strip()
    description = (description or "").strip()
    if not title:
        raise ValueError("Type a book title first (Korean or English).")
    if len(title) > MAX_TITLE_CHARS:
        raise ValueError(f"The title is {len(title)} characters long; at most {MAX_TITLE_CHARS} are accepted "
                         "(and only about 20 Korean characters fit in the 77-token prompt).")
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise ValueError(f"The description is {len(description)} characters long; at most "
                         f"{MAX_DESCRIPTION_CHARS} are accepted.")
    return title, description


@lru_cache(maxsize=1)
def assets_tokenizer():
    """SD1.5's CLIP BPE + TD2 + Hangul syllable tokens, for prompt notices before any model is loaded."""
    tok = clip_tokenizer_from_assets()
    extend_tokenizer(tok)
    return tok


def check_number(name: str, value, lo: float, hi: float, integer: bool = False) -> float | int:
    """A number from a widget or an API client within [lo, hi]; raises ValueError with a user-facing message."""
    x = _number(value)
    if x is None:
        raise ValueError(f"{name} must be a number, got {value!r}.")
    if integer:
        x = int(round(x))
    if not lo <= x <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, got {value!r}.")
    return x


def check_line(name: str, text: str | None) -> str:
    """A stripped optional line (subtitle, author); raises ValueError when it is absurdly long."""
    text = " ".join((text or "").split())
    if len(text) > MAX_TITLE_CHARS:
        raise ValueError(f"The {name} is {len(text)} characters long; at most {MAX_TITLE_CHARS} are accepted.")
    return text


def prompt_notices(tokenizer, title: str, description: str, layout: Layout) -> list[str]:
    """What will not reach the model: unsupported characters, a caption or boxes cut at the 77-token budget."""
    caption = book_caption(title, description)
    enc = encode_prompt_report(tokenizer, caption, layout, fit_layout=True)  # as the pipeline encodes it
    notices = [w[0].upper() + w[1:] + "." for w in enc.warnings]
    if enc.cut_boxes:
        notices.append(f"Only {enc.cut_kept[0]!r} of {enc.cut_boxes[0]!r} fits in the prompt.")
    if (enc.caption_shortened_from or enc.caption_length) >= MAX_LENGTH:
        kept = tokenizer.decode(enc.ids[1:enc.caption_length - 1], skip_special_tokens=True).strip()
        notices.insert(0, f"The caption is longer than the 77-token prompt: it was cut after '…{kept[-40:]}'.")
    if not len(layout):
        notices.append("No text boxes: the cover is generated without a layout, so no title text is placed.")
    return notices
