"""HeuristicPlanner: book-cover typography on the 128 grid, measured in the shipped font, deterministic, ~0.1 ms."""

from __future__ import annotations

import logging
import math
import random
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

from .assets import load_font
from .layout import DEFAULT_SHAPE, GRID, Box, Layout, cover_size
from .plan_result import PLACEMENTS, ROLES, PlanResult, requested_texts

logger = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------------------ heuristic planner


@dataclass(frozen=True)
class HeuristicConfig:
    """Book-cover typography on the 128 grid, per axis over the cover's width and height.

    Heights below are in WIDTH cells (1 cell = 4 px on a 512-wide cover), so a line keeps its proportions on a
    portrait cover, where a vertical grid cell is 1.5x taller. The title dominates: the subtitle is at most
    1/1.9 and the author at most 1/2.6 of the title's height, whatever clamping the width forced."""

    margin: int = 8  # grid cells kept clear on every side (each axis)
    max_line_syllables: float = 8.0  # a title line holds at most this many Hangul syllables (Latin letters ~0.55)
    title_height: float = 20.0  # tallest title line (width cells: 80 px at 512); long lines shrink to fit the width
    subtitle_scale: float = 0.45  # subtitle line height relative to the title's
    author_scale: float = 0.34  # author line height relative to the title's
    min_height: float = 3.5  # no line smaller than this (OCR/diffusion cannot draw smaller text legibly)
    line_gap: float = 0.3  # gap between lines of one block, relative to the line height
    font: str = "sans"  # shipped font used to measure text widths
    shape: str = DEFAULT_SHAPE  # cover shape (kordiff.layout.COVER_SIZES): portrait (2:3) or square
    vertical_max_syllables: int = 6  # the vertical (세로쓰기) placement takes Hangul titles of 2..this syllables

    @property
    def aspect(self) -> float:
        """Cover height / width."""
        w, h = cover_size(self.shape)
        return h / w


@dataclass
class _Block:
    role: str
    lines: list[str]
    height: float
    widths: list[float] = field(default_factory=list)


class HeuristicPlanner:
    """Deterministic CPU planner following cover conventions, placement by seed (see `PLACEMENTS`):

    top / centre / bottom: centred title block (top: in the upper third), author at the foot (bottom: at the head);
    top-left / bottom-left: the same, flush left; vertical: a short Hangul title set top to bottom (세로쓰기) in a
    column at the right, subtitle and author flush left at the foot (other titles fall back to top-left)."""

    source = "heuristic"

    def __init__(self, seed: int = 0, placement: str | None = None, config: HeuristicConfig | None = None):
        if placement is not None and placement not in PLACEMENTS:
            raise ValueError(f"unknown placement {placement!r}; choose one of {PLACEMENTS}")
        self.seed = seed
        self.placement = placement
        self.config = config or HeuristicConfig()

    def plan(
        self,
        title: str,
        description: str = "",
        keywords: list[str] | None = None,
        *,
        subtitle: str | None = None,
        author: str | None = None,
        seed: int | None = None,
    ) -> PlanResult:
        """Place title (then subtitle, author: from the arguments, or `keywords` as [title, subtitle, author])."""
        texts = requested_texts(title, keywords)
        if subtitle or author:
            texts = (texts[:1] or [""]) + [subtitle or "", author or ""]
        roles = [(text, _role(i)) for i, text in enumerate(texts) if text and text.strip()]
        if not roles:
            return PlanResult(Layout(), "", self.source, ("nothing to place: the title is empty",))
        placement = self.choose_placement(seed, roles[0][0] if roles[0][1] == "title" else "")
        layout = self.layout_texts(roles, placement)
        return PlanResult(layout, layout.to_planner_text(), self.source, ())

    def choose_placement(self, seed: int | None = None, title: str = "") -> str:
        """The forced placement, else one of PLACEMENTS picked by the seed (vertical only for a short Hangul title)."""
        if self.placement is not None:
            return self.placement
        options = [p for p in PLACEMENTS if p != "vertical" or self.can_set_vertically(title)]
        return options[random.Random(self.seed if seed is None else seed).randrange(len(options))]

    def placement_order(self, seed: int | None = None) -> list[str]:
        """All placements, the seed's (or forced) one first: the order the fallback tries them in."""
        first = self.choose_placement(seed)
        return [first] + [p for p in PLACEMENTS if p != first]

    def can_set_vertically(self, title: str) -> bool:
        """A title of 2..vertical_max_syllables Hangul syllables without spaces (세로쓰기 suits short titles)."""
        t = title.strip()
        return 2 <= len(t) <= self.config.vertical_max_syllables and all("\uac00" <= ch <= "\ud7a3" for ch in t)

    def layout_texts(self, texts: Sequence[tuple[str, str]], placement: str) -> Layout:
        """Boxes for (text, role) pairs, role in ROLES (or anything else: a small extra line), at a placement."""
        return Layout.of(box for group in self.place_texts(texts, placement) for box in group)

    def place_texts(self, texts: Sequence[tuple[str, str]], placement: str) -> list[list[Box]]:
        """Like `layout_texts`, grouped: the boxes (one per line) of each input text, in input order."""
        if placement not in PLACEMENTS:
            raise ValueError(f"unknown placement {placement!r}; choose one of {PLACEMENTS}")
        c = self.config
        asp = c.aspect
        titles = [t for t, r in texts if r == "title"]
        if placement == "vertical" and not (len(titles) == 1 and self.can_set_vertically(titles[0])):
            placement = "top-left"
        blocks = [self._block(text, role) for text, role in texts]
        self._cap_roles(blocks)
        if placement == "vertical":
            return self._place_vertical(blocks)
        main = [b for b in blocks if b.role != "author"]
        authors = [b for b in blocks if b.role == "author"]
        # Vertical positions below are in width cells (square units); `_boxes` converts them to grid rows.
        lo, hi = c.margin * asp, (GRID - c.margin) * asp
        author_h = _stack_height(authors, c.line_gap)
        room = (hi - lo) - 8 - (author_h + author_h * c.line_gap if authors else 0)
        main_h = _stack_height(main, c.line_gap)
        if main_h > room:  # a long title: shrink the title block until it fits above/below the author line
            factor = room / main_h
            for b in main:
                b.height *= factor
                b.widths = [w * factor for w in b.widths]
            main_h = room
            self._cap_roles(blocks)
            author_h = _stack_height(authors, c.line_gap)
        full = GRID * asp
        if placement in ("top", "top-left"):  # title block starts in the upper third
            main_top, author_top = lo + min(full * 0.06, max(0.0, room - main_h)), hi - author_h
        elif placement == "bottom":
            main_top, author_top = hi - 4 - main_h, lo
        elif placement == "bottom-left":  # scene above, title low, author at the very foot
            main_top, author_top = max(lo, hi - author_h - author_h * 1.5 - 4 - main_h), hi - author_h
        else:  # centre: optical centre, a little above the middle
            main_top, author_top = max(lo, min(full * 0.42 - main_h / 2, hi - author_h * 2.5 - main_h)), hi - author_h
        left = placement.endswith("-left")
        placed: dict[int, list[Box]] = {}
        for group, top in ((main, main_top), (authors, author_top)):
            y = top
            for block in group:
                placed[id(block)] = self._boxes(block, y, left)
                y += _stack_height([block], c.line_gap) + block.height * c.line_gap
        return [placed[id(b)] for b in blocks]

    def _cap_roles(self, blocks: list[_Block]) -> None:
        """The title dominates, whatever the width clamping or shrinking did to its lines: subtitle <= 1/2 and
        author <= 1/2.8 of the title's line height (kept >= min_height)."""
        c = self.config
        titles = [b for b in blocks if b.role == "title"]
        if not titles:
            return
        th = min(b.height for b in titles)
        for b in blocks:
            if b.role == "title":
                continue
            cap = max(th / (2.8 if b.role == "author" else 2.0), c.min_height)
            if b.height > cap:
                f = cap / b.height
                b.height *= f
                b.widths = [w * f for w in b.widths]

    def _place_vertical(self, blocks: list[_Block]) -> list[list[Box]]:
        """Title in one column at the right, top to bottom; the rest flush left at the foot."""
        c = self.config
        asp = c.aspect
        lo_y, hi_y = c.margin * asp, (GRID - c.margin) * asp
        title = next(b for b in blocks if b.role == "title")
        n = len(title.lines[0])
        cell = min(c.title_height * 1.15, (hi_y - lo_y) * 0.62 / n)  # one syllable's square, in width cells
        r = GRID - c.margin - 2
        col = Box(title.lines[0], int(round(r - cell)), int(round((lo_y + 2) / asp)), r,
                  int(round((lo_y + 2 + cell * n * 1.04) / asp)))
        placed: dict[int, list[Box]] = {id(title): [col]}
        rest = [b for b in blocks if b is not title]
        y = hi_y - _stack_height(rest, c.line_gap)
        for block in rest:
            placed[id(block)] = self._boxes(block, y, True)
            y += _stack_height([block], c.line_gap) + block.height * c.line_gap
        return [placed[id(b)] for b in blocks]

    def _block(self, text: str, role: str) -> _Block:
        c = self.config
        lines = split_title_lines(text, c.max_line_syllables) if role == "title" else [" ".join(text.split())]
        scale = {"title": 1.0, "subtitle": c.subtitle_scale}.get(role, c.author_scale)
        aspects = [self._aspect(line) for line in lines]
        width_room = GRID - 2 * c.margin
        height = max(c.min_height, min(c.title_height * scale, width_room / max(aspects)))
        widths = [min(width_room, a * height) for a in aspects]
        return _Block(role, lines, height, widths)

    def _aspect(self, line: str) -> float:
        """Width / height of `line` in the shipped font, height = the ink height of a Hangul syllable."""
        font = load_font(self.config.font, 64)
        return max(font.getlength(line), 1.0) / _ref_height(self.config.font)

    def _boxes(self, block: _Block, top: float, left: bool = False) -> list[Box]:
        """One box per line from `top` (width cells); centred, or flush left at the margin."""
        c = self.config
        asp = c.aspect
        lo, hi = c.margin, GRID - c.margin
        boxes = []
        y = top
        for line, width in zip(block.lines, block.widths):
            t = int(round(min(max(y / asp, lo), hi - 1)))
            # Title rows round to nearest; smaller roles round down, so grid rounding never erodes the hierarchy.
            rows = block.height / asp
            rows = round(rows) if block.role == "title" else math.floor(rows + 0.2)
            b = int(min(max(t + rows, t + 1), hi))
            if left:
                l, r = lo, int(round(min(hi, lo + width)))
            else:
                l = int(round(max(lo, GRID / 2 - width / 2)))
                r = int(round(min(hi, GRID / 2 + width / 2)))
            boxes.append(Box(line, l, t, max(r, l + 1), max(b, t + 1)))
            y += block.height * (1 + c.line_gap)
        return boxes


def _role(index: int) -> str:
    return ROLES[index] if index < len(ROLES) else "extra"


def _stack_height(blocks: Sequence[_Block], gap: float) -> float:
    """Height of blocks stacked with a gap of `gap` x line height between lines and after each block."""
    lines = sum(b.height * len(b.lines) + b.height * gap * (len(b.lines) - 1) for b in blocks)
    return lines + sum(b.height * gap for b in blocks[:-1])


_REF_HEIGHTS: dict[str, float] = {}


def _ref_height(font_style: str) -> float:
    if font_style not in _REF_HEIGHTS:
        x0, y0, x1, y1 = load_font(font_style, 64).getbbox("\ud55c")  # 한: a full-height Hangul syllable
        _REF_HEIGHTS[font_style] = float(max(y1 - y0, 1))
    return _REF_HEIGHTS[font_style]


def char_weight(ch: str) -> float:
    """How much of a title line one character uses: a Hangul/CJK syllable 1, a Latin letter or digit ~0.55."""
    if ch.isspace():
        return 0.0
    if unicodedata.east_asian_width(ch) in ("W", "F"):
        return 1.0
    return 0.55


def text_weight(text: str) -> float:
    """Sum of `char_weight` (roughly: syllables)."""
    return sum(char_weight(ch) for ch in text)


_SPACE_WEIGHT = 0.3  # a space is about a third of a syllable wide


def split_title_lines(text: str, max_syllables: float = 10.0) -> list[str]:
    """Split a title into the fewest balanced lines of at most `max_syllables`, at spaces only.

    A single word longer than a line is cut into equal pieces (the only split inside a word).
    """
    limit = max(float(max_syllables), 1.0)
    tokens: list[tuple[str, bool]] = []  # (piece, glued to the previous piece without a space)
    for word in text.split():
        w = text_weight(word)
        pieces = [word] if w <= limit else _cut_word(word, math.ceil(w / limit))
        tokens += [(p, i > 0) for i, p in enumerate(pieces)]
    if not tokens:
        return []
    weights = [text_weight(p) for p, _ in tokens]
    n = max(1, math.ceil(sum(weights) / limit))
    while True:
        groups = _balanced_partition(tokens, weights, n)
        if n >= len(tokens) or all(sum(weights[i] for i in g) <= limit + 1e-9 for g in groups):
            break
        n += 1
    lines = []
    for g in groups:
        line = ""
        for i in g:
            piece, glued = tokens[i]
            line += piece if (not line or glued) else " " + piece
        lines.append(line)
    return lines


def _cut_word(word: str, parts: int) -> list[str]:
    size = math.ceil(len(word) / parts)
    return [word[i : i + size] for i in range(0, len(word), size)]


def _balanced_partition(tokens: list[tuple[str, bool]], weights: list[float], n: int) -> list[list[int]]:
    """Contiguous partition of tokens into n lines minimising the widest line, then the spread (linear partition)."""
    m = len(tokens)
    n = min(n, m)
    gaps = [_SPACE_WEIGHT if i > 0 and not tokens[i][1] else 0.0 for i in range(m)]
    prefix = [0.0]
    for w, g in zip(weights, gaps):
        prefix.append(prefix[-1] + w + g)

    def width(i: int, j: int) -> float:  # tokens i..j-1 on one line; token i's leading space is not on the line
        return prefix[j] - prefix[i] - gaps[i]

    inf = (float("inf"), float("inf"))
    best = [[inf] * (m + 1) for _ in range(n + 1)]  # best[k][j]: (widest, sum of squares) for j tokens in k lines
    cut = [[0] * (m + 1) for _ in range(n + 1)]
    best[0][0] = (0.0, 0.0)
    for k in range(1, n + 1):
        for j in range(k, m + 1):
            for i in range(k - 1, j):
                prev = best[k - 1][i]
                if prev == inf:
                    continue
                w = width(i, j)
                cand = (max(prev[0], w), prev[1] + w * w)
                if cand < best[k][j]:
                    best[k][j], cut[k][j] = cand, i
    groups = []
    j = m
    for k in range(n, 0, -1):
        i = cut[k][j]
        groups.append(list(range(i, j)))
        j = i
    return groups[::-1]


