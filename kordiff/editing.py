"""Layout <-> editing widgets (annotation canvas boxes in pixels, a text/l/t/r/b table on the grid), never raising.

User edits arrive half-broken (boxes dragged past the canvas, zero-size boxes, rows without text); every
conversion here returns the layout it could build plus one notice per thing it clipped or left out.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageDraw

from .layout import _PREVIEW_COLOURS, DEFAULT_SHAPE, GRID, Box, Layout, LayoutError, Size, cover_size, image_wh
from .tokens import MAX_LENGTH, book_caption, clip_tokenizer_from_assets, encode_prompt_report, extend_tokenizer

# The ONE place the canvas shape is chosen: the default cover (portrait 512x768: 4 x 6 px per grid cell, so
# pixel <-> grid is exact on both axes). Square covers: cover_size("square").
CANVAS_SIZE: tuple[int, int] = cover_size(DEFAULT_SHAPE)
TABLE_COLUMNS = ("text", "l", "t", "r", "b")
MAX_TITLE_CHARS = 200  # far past the 77-token prompt; only stops pasted essays from reaching the planner
MAX_DESCRIPTION_CHARS = 1000
MAX_ROW_CHARS = MAX_TITLE_CHARS  # a box's text, like the title
MAX_BOXES = 16  # a cover has a handful of text boxes; more only slow typesetting and OCR down
GPU_STEP_BUDGET, CPU_STEP_BUDGET = 8 * 50, 2 * 20  # images x denoising steps per request
MAX_CELLS = 10_000  # table/canvas entries looked at at all (a 3,000-row paste is refused, not parsed)


@dataclass(frozen=True)
class EditResult:
    """The layout built from a widget's value and what had to be clipped or left out, in words."""

    layout: Layout
    notices: tuple[str, ...] = ()


def blank_cover(size: Size = CANVAS_SIZE) -> Image.Image:
    """A paper-coloured cover with a faint 8x8 grid, so the cover's edges show on the canvas."""
    w, h = image_wh(size)
    img = Image.new("RGB", (w, h), "#f3efe6")
    draw = ImageDraw.Draw(img)
    for i in range(9):
        draw.line([(i * w // 8, 0), (i * w // 8, h)], fill="#e2dccd")
        draw.line([(0, i * h // 8), (w, i * h // 8)], fill="#e2dccd")
    draw.rectangle([0, 0, w - 1, h - 1], outline="#b9b09a", width=2)
    return img


def box_colour(index: int) -> str:
    """The canvas colour of the index-th box, as `rgb(r, g, b)` (the same palette as `render_layout`)."""
    h = _PREVIEW_COLOURS[index % len(_PREVIEW_COLOURS)].lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgb({r}, {g}, {b})"


def layout_to_boxes(layout: Layout, size: Size = CANVAS_SIZE) -> list[dict]:
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
    if isinstance(value, str) and len(value) > 64:  # no number is that long; float() of a huge string is slow
        return None
    try:
        x = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int past 1.8e308
        return None
    return x if math.isfinite(x) else None


def clean_text(text, limit: int) -> tuple[str, list[str]]:
    """`text` as one line without lone surrogates or control characters, cut to `limit` characters; what changed."""
    raw = text if isinstance(text, str) else ("" if text is None else str(text))
    notes = []
    scan = raw[: 4 * limit + 1000]  # never scan a pasted megabyte: only the start can be kept anyway
    cleaned = "".join(c for c in scan if c in "\t\n" or not (0xD800 <= ord(c) <= 0xDFFF
                                                           or unicodedata.category(c) == "Cc"))
    if len(cleaned) != len(scan):
        notes.append("invalid characters (lone surrogates, control codes) were removed")
    cleaned = cleaned.strip()
    if len(raw) > len(scan) or len(cleaned) > limit:
        notes.append(f"it was {len(raw):,} characters long: trimmed to the first {limit}")
        cleaned = cleaned[:limit].rstrip()
    return cleaned, notes


def _coord(d: dict, key: str) -> float | None:
    x = _number(d.get(key))
    scale = _number(d.get("scaleFactor", 1))  # the canvas's own payload may carry its display scale
    if x is None or scale is None or scale <= 0:
        return None
    return min(max(x / scale, -1e6), 1e6)  # far off the canvas is as good as at its edge (and no inf // size)


def boxes_to_layout(boxes: Iterable[dict] | None, size: Size = CANVAS_SIZE, pending_ok: bool = False) -> EditResult:
    """Canvas boxes -> Layout: coordinates clipped to the canvas, boxes without text or area left out.

    With `pending_ok`, a text-less FIRST box (the canvas puts a new box first and asks for its text in a dialog)
    is left out silently: its notice would appear while the dialog is still open."""
    w, h = image_wh(size)
    kept: list[Box] = []
    notices: list[str] = []
    trimmed: list[int] = []
    boxes = boxes if isinstance(boxes, list | tuple) else []
    if len(boxes) > MAX_CELLS:
        return EditResult(Layout(), (f"The canvas sent {len(boxes):,} boxes; at most {MAX_BOXES} are used.",))
    for i, d in enumerate(boxes):
        d = d if isinstance(d, dict) else {}
        text, notes = clean_text(d.get("label"), MAX_ROW_CHARS)
        notices += [f"{_name(i, text[:20])}: {n}." for n in notes if "invalid" in n]
        trimmed += [i + 1] if len(notes) > sum("invalid" in n for n in notes) else []
        coords = [_coord(d, k) for k in ("xmin", "ymin", "xmax", "ymax")]
        if any(c is None for c in coords):
            notices.append(f"{_name(i, text)} has no usable coordinates: left out.")
            continue
        if not text:
            if not (pending_ok and i == 0):
                notices.append(f"{_name(i, text)} has no text (double-click it on the canvas to type one): left out.")
            continue
        if len(kept) == MAX_BOXES:
            notices.append(f"Only {MAX_BOXES} text boxes fit on a cover: {_name(i, text[:20])} and the "
                           f"{len(boxes) - i - 1} after it left out.")
            break
        if coords[0] < 0 or coords[1] < 0 or coords[2] > w or coords[3] > h or coords[0] > w or coords[1] > h:
            notices.append(f"{_name(i, text)} reached past the edge of the cover: clipped to it.")
        try:
            kept.append(Box.from_pixels(text, *coords, size=(w, h)))
        except LayoutError:
            notices.append(f"{_name(i, text)} has zero width or height: left out.")
    return EditResult(Layout.of(kept), tuple(_trim_notice("box", trimmed) + notices))


def _trim_notice(what: str, numbers: list[int]) -> list[str]:
    if not numbers:
        return []
    listed = ", ".join(map(str, numbers[:8])) + (", ..." if len(numbers) > 8 else "")
    return [f"The text of {what} {listed} was longer than {MAX_ROW_CHARS} characters: trimmed to {MAX_ROW_CHARS}."]


def pending_new_box(boxes, previous: Layout) -> bool:
    """Whether the canvas holds one box more than `previous`, first and without text: a new box whose text the
    canvas is still asking for in its dialog."""
    first = boxes[0] if isinstance(boxes, list) and boxes else None
    return (len(boxes) == len(previous) + 1 and isinstance(first, dict)
            and not clean_text(first.get("label"), MAX_ROW_CHARS)[0])


def new_box_first(boxes, previous: Layout) -> bool:
    """Whether the canvas just added a box: the canvas prepends new boxes, the rest are `previous` unchanged."""
    edit = boxes_to_layout(boxes)
    return len(edit.layout) == len(previous) + 1 and edit.layout.boxes[1:] == previous.boxes


def append_new_box(layout: Layout) -> Layout:
    """The layout with its first box (the canvas's new one) moved to the end, after the title."""
    return Layout.of([*layout.boxes[1:], layout.boxes[0]])


@dataclass(frozen=True)
class CanvasEdit:
    """A canvas edit read against the table's layout: what to show, and the pending new box's signature."""

    layout: Layout
    notices: tuple[str, ...]
    redraw: bool  # the canvas must be redrawn from `layout` (a new box moved, boxes clipped or dropped)
    changed: bool  # False for a no-op (e.g. Plan redrew the canvas): the table and the notices stay
    signature: str | None  # the pending new box, so a dialog still open is told from one closed without text


def canvas_edit(boxes: list, table, seen: str | None = None) -> CanvasEdit:
    """Canvas boxes against the table's layout: a new box moved after the title, clipped or dropped ones redrawn."""
    previous = rows_to_layout(table).layout
    pending = pending_new_box(boxes, previous)
    signature = repr(boxes[:1]) if pending else None
    # A new box's text is asked for in a dialog: say it has none only when the dialog closed without one.
    edit = boxes_to_layout(boxes, pending_ok=pending and signature != seen)
    moved = not pending and new_box_first(boxes, previous)
    layout = append_new_box(edit.layout) if moved else edit.layout
    redraw = moved or (bool(edit.notices) and not pending)  # show the clipped boxes, drop the dropped ones
    return CanvasEdit(layout, edit.notices, redraw, layout != previous or bool(edit.notices), signature)


def layout_to_rows(layout: Layout) -> list[list]:
    """Table rows `[text, l, t, r, b]` on the 128 grid."""
    return [[b.text, b.l, b.t, b.r, b.b] for b in layout]


def _rows(table) -> list:
    if table is None:
        return []
    if isinstance(table, dict):  # gradio's wire format {"headers": [...], "data": [...]}
        table = table.get("data") or []
    elif hasattr(table, "values") and hasattr(table, "columns"):  # a pandas DataFrame
        table = table.values.tolist()
    return table if isinstance(table, list | tuple) else []


def _blank(cells) -> bool:
    return all(c is None or (isinstance(c, str) and not c.strip()) for c in cells)


def rows_to_layout(table) -> EditResult:
    """Table rows -> Layout: numbers rounded and clipped to 0..128, empty rows skipped, bad rows left out.

    A row with text and no numbers yet (a row being added) gets a box along the bottom of the cover."""
    kept: list[Box] = []
    notices: list[str] = []
    trimmed: list[int] = []
    rows = _rows(table)
    if len(rows) > MAX_CELLS:
        return EditResult(Layout(), (f"The table has {len(rows):,} rows; at most {MAX_BOXES} boxes are used.",))
    for i, row in enumerate(rows):
        cells = list(row[:5]) if isinstance(row, list | tuple) else [row]
        cells = (cells + [None] * 5)[:5]
        if _blank(cells):
            continue  # a blank row the user added and has not filled yet
        text, notes = clean_text(cells[0], MAX_ROW_CHARS)
        notices += [f"row {i + 1}: {n}." for n in notes if "invalid" in n]
        trimmed += [i + 1] if len(notes) > sum("invalid" in n for n in notes) else []
        if not text:
            notices.append(f"row {i + 1} has no text: left out.")
            continue
        if len(kept) == MAX_BOXES:
            notices.append(f"Only {MAX_BOXES} text boxes fit on a cover: row {i + 1} ({text[:20]!r}) and the "
                           f"{len(rows) - i - 1} rows after it left out.")
            break
        if _blank(cells[1:]):  # text typed into a new row: place it where nothing usually is, the user moves it
            top = min(GRID - 12, 8 + 12 * len(kept))
            cells[1:] = [16, top, GRID - 16, top + 10]
        nums = [_number(c) for c in cells[1:]]
        if any(n is None for n in nums):
            notices.append(f"row {i + 1} ({text[:20]!r}) needs four numbers l, t, r, b: left out.")
            continue
        rounded = [int(round(min(max(n, -1), GRID + 1))) for n in nums]
        clipped = [min(max(n, 0), GRID) for n in rounded]
        if clipped != rounded:
            notices.append(f"row {i + 1} ({text[:20]!r}) reached past the 0..{GRID} grid: clipped to it.")
        l, r = sorted((clipped[0], clipped[2]))
        t, b = sorted((clipped[1], clipped[3]))
        try:
            kept.append(Box(text, l, t, r, b))
        except LayoutError:
            notices.append(f"row {i + 1} ({text[:20]!r}) has zero width or height: left out.")
    return EditResult(Layout.of(kept), tuple(_trim_notice("row", trimmed) + notices))


def check_table(table) -> None:
    """Refuse (ValueError) a table with more text rows than a cover has boxes, before any of them is parsed."""
    rows = _rows(table)
    n = len(rows) if len(rows) > MAX_CELLS else sum(
        not _blank(list(r[:5]) if isinstance(r, list | tuple) else [r]) for r in rows)
    if n > MAX_BOXES:
        raise ValueError(f"The table has {n:,} rows; a cover takes at most {MAX_BOXES} text boxes. "
                         "Delete some rows and generate again.")


def table_needs_redraw(table, layout: Layout) -> bool:
    """Whether the table shows anything but `layout` (clipped, dropped or cleaned rows), blank rows aside."""
    rows = [list(r[:5]) if isinstance(r, list | tuple) else [r] for r in _rows(table)[: MAX_CELLS + 1]]
    shown = [r for r in rows if not _blank((r + [None] * 5)[:5])]
    want = layout_to_rows(layout)
    if len(shown) != len(want):
        return True
    return any(str(a[0]) != b[0] or [_number(x) for x in a[1:5]] != b[1:] for a, b in zip(shown, want))


@dataclass(frozen=True)
class CoverText:
    """The request's text fields, cleaned and cut to their limits, and what that changed, in words."""

    title: str
    subtitle: str = ""
    author: str = ""
    description: str = ""
    notices: tuple[str, ...] = ()


def read_text(title, subtitle="", author="", description="") -> CoverText:
    """Cleaned fields (surrogates and control codes removed, over-long ones trimmed with a notice); raises
    ValueError with a user-facing message when there is no title."""
    fields, notices = {}, []
    for name, value, limit in (("title", title, MAX_TITLE_CHARS), ("subtitle", subtitle, MAX_TITLE_CHARS),
                               ("author", author, MAX_TITLE_CHARS), ("description", description,
                                                                     MAX_DESCRIPTION_CHARS)):
        fields[name], notes = clean_text(value, limit)
        notices += [f"The {name}: {n}." for n in notes]
    if not fields["title"]:
        raise ValueError("Type a book title first (Korean or English).")
    return CoverText(**fields, notices=tuple(notices))


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
        raise ValueError(f"{name} must be a number, got {_short(value)}.")
    if integer:
        x = int(round(x))
    if not lo <= x <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, got {_short(value)}.")
    return x


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


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_budget(num_images: int, steps: int, mode: str, gpu: bool) -> None:
    """Refuse requests too slow for this device (images x denoising steps); ValueError says what fits."""
    if mode == "typeset":
        return  # no denoising: ~0.1 s an image
    budget = GPU_STEP_BUDGET if gpu else CPU_STEP_BUDGET
    if num_images * steps > budget:
        where = "a GPU" if gpu else "this CPU-only server"
        raise ValueError(f"{num_images} images x {steps} steps = {num_images * steps} denoising steps; on {where} a "
                         f"request may have at most {budget} (e.g. {max(1, budget // 20)} images x 20 steps). "
                         "The 'typeset' mode needs none.")


def dropped_characters(layout: Layout, has_glyph) -> list[str]:
    """Notices naming the characters of each box that the cover font cannot draw (emoji, rare symbols)."""
    out = []
    for box in layout:
        missing = list(dict.fromkeys(c for c in box.text if not c.isspace() and not has_glyph(c)))
        if missing:
            out.append(f"{' '.join(missing)} in {box.text[:20]!r} cannot be drawn by the cover font: left out "
                       "of the cover.")
    return out


def cover_caption(seed: int, mode: str, score, notes=()) -> str:
    """One gallery caption: seed, mode and what OCR read, or why the cover cannot be scored."""
    from .ocr import unreadable_chars

    parts = [f"seed {seed}", mode]
    if score is not None:
        if not any(0xAC00 <= ord(c) <= 0xD7A3 for c in score.reference):
            parts.append("not scorable (no Hangul: the OCR reads Korean)")
        elif not score.scorable:
            parts.append(f"not scorable ({' '.join(unreadable_chars(score.reference)[:8])}: the OCR cannot read it)")
        else:
            parts.append(f"OCR read {score.hypothesis.strip()!r}, similarity {score.ned:.2f}")
    return " · ".join([*parts, *notes])


def dedupe(notices) -> list[str]:
    """Notices in order, each once."""
    return list(dict.fromkeys(n for n in notices if n))
