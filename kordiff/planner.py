"""Layout planners: TD2's M1 prompt, a parser that never crashes on M1's output, a heuristic and the M1 LLM planner.

Every planner returns a `PlanResult` whose layout places every requested text (the title at least): boxes M1
got wrong are repaired or dropped with a warning, and whatever M1 failed to place is placed by
`HeuristicPlanner`, which measures the text in the shipped font and lays it out like a book cover.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import random
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from .assets import load_font
from .layout import GRID, Box, Layout
from .tokens import book_caption

logger = logging.getLogger(__name__)

M1_MODEL_ID = "JingyeChen22/textdiffuser2_layout_planner"
TEMPLATES = ("one_shot", "vicuna_v1.1")
PLACEMENTS = ("top", "centre", "bottom")
ROLES = ("title", "subtitle", "author")


# --------------------------------------------------------------------------------------------- results / protocol


@dataclass(frozen=True)
class PlanResult:
    """A planned layout, the planner's raw text, who planned it ("heuristic", "m1", "m1+heuristic") and warnings."""

    layout: Layout
    raw_text: str
    source: str
    warnings: tuple[str, ...] = ()


@runtime_checkable
class Planner(Protocol):
    def plan(self, title: str, description: str = "", keywords: list[str] | None = None) -> PlanResult:
        """Plan where the title (and any keywords) go on a 128x128 grid."""
        ...


class PlannerUnavailableError(RuntimeError):
    """The M1 planner's weights or libraries cannot be loaded here (offline, not downloaded, no bitsandbytes)."""


def requested_texts(title: str, keywords: Sequence[str] | None = None) -> list[str]:
    """The texts a plan must place, title first: `keywords` if given, else the title split at " / "."""
    title = " ".join(str(title or "").split())
    words = [" ".join(str(k).split()) for k in (keywords or [])]
    words = list(dict.fromkeys(k for k in words if k))
    if not words:
        return [p.strip() for p in title.split(" / ") if p.strip()]
    # Keywords may be [title, subtitle, author] or the title's own lines; a title they do not cover still comes first.
    norms = {_norm(k) for k in words}
    if title and _norm(title) not in norms and _norm(title) != _norm(" ".join(words)):
        words.insert(0, title)
    return words


# ------------------------------------------------------------------------------------------------- M1 prompt text

_M1_HEAD = (
    "Given a prompt that will be used to generate an image, plan the layout of visual text for the image. "
    "The size of the image is 128x128. Therefore, all properties of the positions should not exceed 128, "
    "including the coordinates of top, left, right, and bottom. "
)
_M1_WITH_KEYWORDS = "In addition, we also provide all keywords at random order for reference. "
_M1_WITHOUT_KEYWORDS = "All keywords are included in the caption. "
_M1_TAIL = (
    "You dont need to specify the details of font styles. At each line, the format should be keyword left, top, "
    "right, bottom. So let us begin. Prompt: "
)

# fastchat 0.2.36's conversation templates, written out (fastchat is not a runtime dependency).
_ONE_SHOT_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)
_ONE_SHOT_EXAMPLE_Q = "Got any creative ideas for a 10 year old\u2019s birthday?"
_ONE_SHOT_EXAMPLE_A = """Of course! Here are some creative ideas for a 10-year-old's birthday party:
1. Treasure Hunt: Organize a treasure hunt in your backyard or nearby park. Create clues and riddles for the kids to solve, leading them to hidden treasures and surprises.
2. Science Party: Plan a science-themed party where kids can engage in fun and interactive experiments. You can set up different stations with activities like making slime, erupting volcanoes, or creating simple chemical reactions.
3. Outdoor Movie Night: Set up a backyard movie night with a projector and a large screen or white sheet. Create a cozy seating area with blankets and pillows, and serve popcorn and snacks while the kids enjoy a favorite movie under the stars.
4. DIY Crafts Party: Arrange a craft party where kids can unleash their creativity. Provide a variety of craft supplies like beads, paints, and fabrics, and let them create their own unique masterpieces to take home as party favors.
5. Sports Olympics: Host a mini Olympics event with various sports and games. Set up different stations for activities like sack races, relay races, basketball shooting, and obstacle courses. Give out medals or certificates to the participants.
6. Cooking Party: Have a cooking-themed party where the kids can prepare their own mini pizzas, cupcakes, or cookies. Provide toppings, frosting, and decorating supplies, and let them get hands-on in the kitchen.
7. Superhero Training Camp: Create a superhero-themed party where the kids can engage in fun training activities. Set up an obstacle course, have them design their own superhero capes or masks, and organize superhero-themed games and challenges.
8. Outdoor Adventure: Plan an outdoor adventure party at a local park or nature reserve. Arrange activities like hiking, nature scavenger hunts, or a picnic with games. Encourage exploration and appreciation for the outdoors.
Remember to tailor the activities to the birthday child's interests and preferences. Have a great celebration!"""  # noqa: E501 - verbatim
_VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
# Where the assistant's turn ends in each template: generation after it is the model starting a new turn.
STOP_STRINGS = {"one_shot": "###", "vicuna_v1.1": "</s>"}


def m1_instruction(prompt: str, keywords: Sequence[str] | None = None) -> str:
    """TD2's M1 instruction text (the user turn), with or without the keywords sentence."""
    if keywords:
        return f"{_M1_HEAD}{_M1_WITH_KEYWORDS}{_M1_TAIL}{prompt}. Keywords: {str(list(keywords))}"
    return f"{_M1_HEAD}{_M1_WITHOUT_KEYWORDS}{_M1_TAIL}{prompt}"


def build_planner_prompt(prompt: str, keywords: Sequence[str] | None = None, template: str = "one_shot") -> str:
    """The full M1 input: TD2's instruction in a fastchat conversation, rendered as fastchat 0.2.36 does."""
    message = m1_instruction(prompt, keywords)
    if template == "one_shot":  # SeparatorStyle.ADD_COLON_SINGLE, sep "\n### ", with the canned example exchange
        sep = "\n### "
        turns = [("Human", _ONE_SHOT_EXAMPLE_Q), ("Assistant", _ONE_SHOT_EXAMPLE_A), ("Human", message)]
        return _ONE_SHOT_SYSTEM + sep + "".join(f"{role}: {text}{sep}" for role, text in turns) + "Assistant:"
    if template == "vicuna_v1.1":  # SeparatorStyle.ADD_COLON_TWO, sep " ", sep2 "</s>"
        return f"{_VICUNA_SYSTEM} USER: {message} ASSISTANT:"
    raise ValueError(f"unknown planner template {template!r}; choose one of {TEMPLATES}")


# ------------------------------------------------------------------------------------------------- output parsing


@dataclass(frozen=True)
class DroppedLine:
    """One line of planner output that did not become a box, and why (`kind` is a short category)."""

    line: str
    kind: str
    reason: str

    def __str__(self) -> str:
        return f"{self.reason}: {_excerpt(self.line)}"


@dataclass(frozen=True)
class ParseReport:
    """What `parse_planner_output_report` salvaged (`layout`), dropped, and repaired on the way."""

    layout: Layout
    dropped: tuple[DroppedLine, ...] = ()
    repairs: tuple[str, ...] = ()

    def warnings(self) -> list[str]:
        """Short human-readable notes: repairs, then drops (prose lines counted, not listed)."""
        notes = list(self.repairs)
        prose = [d for d in self.dropped if d.kind == "prose"]
        notes += [str(d) for d in self.dropped if d.kind != "prose"]
        if prose:
            notes.append(f"ignored {len(prose)} planner line(s) without a box (prose, echoed prompt, '###' chatter)")
        return notes


_MAX_TEXT_CHARS = 60  # longer "text lines" are sentences of prose that happen to end in numbers
_MAX_DIGITS = 9  # int() of a very long digit string is slow and capped by Python; such values clip anyway
_EDGE_JUNK = " \t\"'`\u201c\u201d\u2018\u2019,:;-\u2013\u2014*\u2022\u00b7|"
_BRACKETS = {"(": ")", "[": "]", "{": "}", "<": ">", "\u300c": "\u300d", "\u300e": "\u300f"}
_ECHO_MARKERS = ("keywords:", "prompt:")


def parse_planner_output(text: str, grid: int = GRID, keywords: Sequence[str] | None = None) -> Layout:
    """M1's `text l,t,r,b` lines -> Layout, salvaging what can be; never raises on any string."""
    return parse_planner_output_report(text, grid, keywords).layout


def parse_planner_output_report(text: str, grid: int = GRID, keywords: Sequence[str] | None = None) -> ParseReport:
    """Like `parse_planner_output`, also saying which lines were dropped and what was repaired.

    Salvage rules (TD2's own parser crashes on most of these):
    - blank lines are skipped; lines with '###' or '.com' are dropped (TD2's rule), as is any line that does not
      end in numbers (prose) or whose text is empty or longer than 60 characters;
    - the box is the run of numbers at the end of the line, separated by commas, ';' or spaces (spaces after
      commas, a trailing ';' or '.' are fine). Fewer than 4 numbers: dropped. More than 4: numbers that are
      separated from the rest by a space only are given back to the text (a title ending in a number, "1984
      5,5,100,20"); if still more than 4, the first 4 are the box (M1 writes the box right after the text and runs
      on), noted as a repair;
    - decimals are rounded, inverted sides swapped, values clipped to [0, grid] and scaled to the 128 grid;
      a box with no area left is dropped;
    - an echoed instruction ("... Keywords: 마음의 바다 5,52,121,80") keeps only what follows the last
      "Keywords:"/"Prompt:"; quotes, brackets and bullets around the text are removed;
    - with `keywords`, each box is matched to a requested text: exact match (case/space-insensitive), else the
      text ends with the keyword (an echoed prefix such as "Book cover of"), else it starts with the keyword as a
      whole word (a run-on), else the keyword is at least half of the text; the box then carries the keyword
      exactly. Boxes matching no keyword (an English translation, an invented author) are dropped. Without
      keywords every text is kept;
    - a text seen before (a repeated keyword) keeps its first box.
    """
    try:
        return _parse(text, grid, keywords)
    except Exception as e:  # a parser bug must not take planning down; the caller still places the title
        logger.exception("planner output parser failed; treating the output as empty")
        return ParseReport(Layout(), (DroppedLine(str(text)[:200], "error", f"parser error {type(e).__name__}"),))


def _parse(text: Any, grid: Any, keywords: Sequence[str] | None) -> ParseReport:
    text = text if isinstance(text, str) else ("" if text is None else str(text))
    try:
        grid = int(grid)
    except (TypeError, ValueError):
        grid = GRID
    grid = grid if grid > 0 else GRID
    wanted = [k for k in (" ".join(str(k).split()) for k in (keywords or [])) if k]
    boxes: list[Box] = []
    seen: set[str] = set()
    dropped: list[DroppedLine] = []
    repairs: list[str] = []
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line:
            continue
        if "###" in line or ".com" in line:
            dropped.append(DroppedLine(line, "prose", "separator or web address line"))
            continue
        body = _after_echo(line)
        box_text, numbers = _split_box(body)
        if len(numbers) < 4:
            kind = "prose" if len(numbers) <= 1 else "few_numbers"
            dropped.append(DroppedLine(line, kind, "no box" if kind == "prose" else f"only {len(numbers)} numbers"))
            continue
        if len(numbers) > 4:
            repairs.append(f"used the first 4 of {len(numbers)} numbers: {_excerpt(line)}")
            numbers = numbers[:4]
        box_text = _clean_text(box_text)
        if not box_text:
            dropped.append(DroppedLine(line, "no_text", "box without text"))
            continue
        if len(box_text) > _MAX_TEXT_CHARS:
            dropped.append(DroppedLine(line, "prose", "text too long for a text line"))
            continue
        if wanted:
            match = _match_keyword(box_text, wanted)
            if match is None:
                dropped.append(DroppedLine(line, "not_requested", f"dropped {box_text!r}, not a requested text"))
                continue
            if match != box_text:
                repairs.append(f"read {box_text!r} as the requested {match!r}")
            box_text = match
        key = _norm(box_text)
        if key in seen:
            dropped.append(DroppedLine(line, "duplicate", f"dropped a repeated box for {box_text!r}"))
            continue
        coords, fixes = _fix_coords(numbers, grid)
        if coords is None:
            dropped.append(DroppedLine(line, "zero_area", f"box of {box_text!r} has no area"))
            continue
        if fixes:
            repairs.append(f"box of {box_text!r}: {', '.join(fixes)}")
        seen.add(key)
        boxes.append(Box(box_text, *coords))
    return ParseReport(Layout.of(boxes), tuple(dropped), tuple(repairs))


def _after_echo(line: str) -> str:
    lower = line.lower()
    for marker in _ECHO_MARKERS:
        i = lower.rfind(marker)
        if i >= 0:
            return line[i + len(marker) :]
    return line


def _split_box(line: str) -> tuple[str, list[str]]:
    """Split a line into (text, trailing numbers as strings), scanning from the end (no regex backtracking)."""
    s = line.rstrip(" \t;.,)]}>\"'")
    found: list[tuple[str, int, str]] = []  # (number, where it starts, separator after it), right to left
    end = len(s)
    while True:
        j = end
        while j > 0 and s[j - 1] in " \t,;":
            j -= 1
        k = j
        while k > 0 and s[k - 1] in "0123456789.":
            k -= 1
        token = s[k:j].strip(".")
        if not _is_number(token):
            break
        if k > 0 and s[k - 1] == "-" and (k == 1 or s[k - 2] in " \t,;("):
            k -= 1
            token = "-" + token
        found.append((token, k, s[j:end]))
        end = k
    found.reverse()
    # Leading numbers joined to the box by a space only belong to the text ("1984 5,5,100,20").
    while len(found) > 4 and "," not in found[0][2] and ";" not in found[0][2]:
        found.pop(0)
    text_end = found[0][1] if found else len(s)
    return s[:text_end], [f[0] for f in found]


def _is_number(token: str) -> bool:
    if not token:
        return False
    head, _, tail = token.partition(".")
    return head.isdigit() and (not tail or tail.isdigit()) and token.count(".") <= 1


def _to_int(token: str) -> int:
    neg = token.startswith("-")
    head, _, tail = token.lstrip("-").partition(".")
    if len(head) > _MAX_DIGITS:
        value = 10**_MAX_DIGITS
    else:
        value = int(head) + (1 if tail and tail[0] >= "5" else 0)
    return -value if neg else value


def _fix_coords(numbers: list[str], grid: int) -> tuple[tuple[int, int, int, int] | None, list[str]]:
    l, t, r, b = (_to_int(n) for n in numbers)
    fixes = []
    if l > r or t > b:
        l, r = min(l, r), max(l, r)
        t, b = min(t, b), max(t, b)
        fixes.append("swapped inverted sides")
    clipped = [min(max(v, 0), grid) for v in (l, t, r, b)]
    if clipped != [l, t, r, b]:
        fixes.append(f"clipped to [0, {grid}]")
    if grid != GRID:
        clipped = [int(round(v * GRID / grid)) for v in clipped]
    l, t, r, b = clipped
    if l >= r or t >= b:
        return None, fixes
    return (l, t, r, b), fixes


def _clean_text(text: str) -> str:
    text = " ".join(text.split())
    while True:
        before = text
        text = text.strip(_EDGE_JUNK)
        if text[:1] in _BRACKETS and text.endswith(_BRACKETS[text[:1]]):
            text = text[1:-1]
        text = text.rstrip("([{<").lstrip(")]}>")
        if text == before:
            return text


def _norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).casefold().split()).strip(_EDGE_JUNK + ".")


def _match_keyword(text: str, keywords: Sequence[str]) -> str | None:
    t = _norm(text)
    normed = [(_norm(k), k) for k in keywords]
    for nk, k in normed:
        if nk and nk == t:
            return k
    by_length = sorted((p for p in normed if p[0]), key=lambda p: -len(p[0]))
    for nk, k in by_length:
        if t.endswith(nk) and (len(t) == len(nk) or not t[-len(nk) - 1].isalnum()):
            return k
    for nk, k in by_length:
        if t.startswith(nk) and not t[len(nk)].isalnum():
            return k
    for nk, k in by_length:
        if nk in t and 2 * len(nk) >= len(t):
            return k
    return None


def _excerpt(line: str, limit: int = 60) -> str:
    line = " ".join(line.split())
    return repr(line if len(line) <= limit else line[: limit - 1] + "\u2026")


# ------------------------------------------------------------------------------------------------ heuristic planner


@dataclass(frozen=True)
class HeuristicConfig:
    """Book-cover typography on the 128 grid (units are grid cells; 1 cell = 4 px at 512)."""

    margin: int = 8  # kept clear on every side
    max_line_syllables: float = 10.0  # a title line holds at most this many Hangul syllables (Latin letters ~0.55)
    title_height: float = 20.0  # tallest title line; long lines shrink to fit the width
    subtitle_scale: float = 0.5  # subtitle line height relative to the title's
    author_scale: float = 0.4  # author line height relative to the title's
    min_height: float = 4.0  # no line smaller than this (OCR/diffusion cannot draw smaller text legibly)
    line_gap: float = 0.3  # gap between lines of one block, relative to the line height
    font: str = "sans"  # shipped font used to measure text widths


@dataclass
class _Block:
    role: str
    lines: list[str]
    height: float
    widths: list[float] = field(default_factory=list)


class HeuristicPlanner:
    """Deterministic CPU planner: balanced title lines sized from the shipped font, top/centre/bottom by seed."""

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
        placement = self.choose_placement(seed)
        layout = self.layout_texts(roles, placement)
        return PlanResult(layout, layout.to_planner_text(), self.source, ())

    def choose_placement(self, seed: int | None = None) -> str:
        """The forced placement, else one of PLACEMENTS picked by the seed."""
        if self.placement is not None:
            return self.placement
        return PLACEMENTS[random.Random(self.seed if seed is None else seed).randrange(len(PLACEMENTS))]

    def placement_order(self, seed: int | None = None) -> list[str]:
        """All placements, the seed's (or forced) one first: the order the fallback tries them in."""
        first = self.choose_placement(seed)
        return [first] + [p for p in PLACEMENTS if p != first]

    def layout_texts(self, texts: Sequence[tuple[str, str]], placement: str) -> Layout:
        """Boxes for (text, role) pairs, role in ROLES (or anything else: a small extra line), at a placement."""
        return Layout.of(box for group in self.place_texts(texts, placement) for box in group)

    def place_texts(self, texts: Sequence[tuple[str, str]], placement: str) -> list[list[Box]]:
        """Like `layout_texts`, grouped: the boxes (one per line) of each input text, in input order."""
        if placement not in PLACEMENTS:
            raise ValueError(f"unknown placement {placement!r}; choose one of {PLACEMENTS}")
        c = self.config
        blocks = [self._block(text, role) for text, role in texts]
        main = [b for b in blocks if b.role != "author"]
        authors = [b for b in blocks if b.role == "author"]
        lo, hi = c.margin, GRID - c.margin
        author_h = _stack_height(authors, c.line_gap)
        room = (hi - lo) - 8 - (author_h + author_h * c.line_gap if authors else 0)
        main_h = _stack_height(main, c.line_gap)
        if main_h > room:  # a long title: shrink the title block until it fits above/below the author line
            factor = room / main_h
            for b in main:
                b.height *= factor
                b.widths = [w * factor for w in b.widths]
            main_h = room
        if placement == "top":
            main_top, author_top = lo + 4, hi - author_h
        elif placement == "bottom":
            main_top, author_top = hi - 4 - main_h, lo
        else:
            main_top, author_top = (GRID - main_h) / 2, hi - author_h
        placed: dict[int, list[Box]] = {}
        for group, top in ((main, main_top), (authors, author_top)):
            y = top
            for block in group:
                placed[id(block)] = self._boxes(block, y)
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

    def _boxes(self, block: _Block, top: float) -> list[Box]:
        c = self.config
        lo, hi = c.margin, GRID - c.margin
        boxes = []
        y = top
        for line, width in zip(block.lines, block.widths):
            t = int(round(min(max(y, lo), hi - 1)))
            b = int(round(min(max(y + block.height, t + 1), hi)))
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


# ----------------------------------------------------------------------------------- completing an M1 layout


def complete_layout(
    layout: Layout,
    texts: Sequence[str],
    heuristic: HeuristicPlanner | None = None,
    seed: int | None = None,
) -> tuple[Layout, list[str]]:
    """Give every requested text that `layout` lacks a box from the heuristic planner, avoiding kept boxes.

    The heuristic lays out all `texts` at each placement (the seed's first) and the placement whose boxes for
    the missing texts overlap the kept boxes least wins. Returns the layout in the order of `texts` (title first,
    so it survives the 77-token prompt), then any unrequested kept boxes, and one warning per filled text.
    """
    heuristic = heuristic or HeuristicPlanner()
    texts = [" ".join(t.split()) for t in texts if t and t.strip()]
    kept = list(layout)
    present = {_norm(b.text) for b in kept}
    missing = [i for i, t in enumerate(texts) if _norm(t) not in present]
    if not missing:
        return layout, []
    roles = [(t, _role(i)) for i, t in enumerate(texts)]
    best: tuple[float, str, list[list[Box]]] | None = None
    for placement in heuristic.placement_order(seed):
        groups = heuristic.place_texts(roles, placement)
        overlap = sum(_overlap(a, b) for i in missing for a in groups[i] for b in kept)
        if best is None or overlap < best[0]:
            best = (overlap, placement, groups)
        if overlap == 0:
            break
    assert best is not None
    overlap, placement, groups = best
    warnings = [
        f"the planner gave the {_role(i) if i else 'title'} {texts[i]!r} no usable box; "
        f"placed it with the heuristic planner ({placement})"
        for i in missing
    ]
    if overlap > 0:
        warnings.append("the heuristic boxes overlap boxes kept from the planner output (no free placement)")
    ordered: list[Box] = []
    for i, t in enumerate(texts):
        ordered += groups[i] if i in missing else [b for b in kept if _norm(b.text) == _norm(t)]
    rest = [b for b in kept if _norm(b.text) not in {_norm(t) for t in texts}]
    return Layout.of(ordered + rest), warnings


def _overlap(a: Box, b: Box) -> float:
    w = min(a.r, b.r) - max(a.l, b.l)
    h = min(a.b, b.b) - max(a.t, b.t)
    return float(w * h) if w > 0 and h > 0 else 0.0


# ------------------------------------------------------------------------------------------------------ M1 planner


class M1Planner:
    """TD2's M1 layout planner (Vicuna-7B fine-tune), loaded lazily once; its output is repaired and completed.

    `generate_fn(prompt) -> text` replaces the LLM entirely (tests, remote endpoints); `model` and `tokenizer`
    inject already-loaded transformers objects. `seed` makes sampling repeatable (TD2's was not).
    """

    def __init__(
        self,
        model_id: str = M1_MODEL_ID,
        generate_fn: Callable[[str], str] | None = None,
        *,
        model: Any = None,
        tokenizer: Any = None,
        device: str | None = None,
        dtype: Any = None,
        quantization: str | None = None,
        temperature: float = 0.7,
        max_new_tokens: int = 512,
        template: str = "one_shot",
        seed: int | None = None,
        local_files_only: bool = False,
        heuristic: HeuristicPlanner | None = None,
    ):
        if template not in TEMPLATES:
            raise ValueError(f"unknown planner template {template!r}; choose one of {TEMPLATES}")
        if quantization not in (None, "8bit", "4bit"):
            raise ValueError(f"quantization must be None, '8bit' or '4bit', got {quantization!r}")
        if (model is None) != (tokenizer is None):
            raise ValueError("pass both model and tokenizer, or neither")
        self.model_id = model_id
        self.generate_fn = generate_fn
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.dtype = dtype
        self.quantization = quantization
        self.temperature = temperature
        self.max_new_tokens = max_new_tokens
        self.template = template
        self.seed = seed
        self.local_files_only = local_files_only
        self.heuristic = heuristic or HeuristicPlanner(seed=seed or 0)

    def plan(
        self, title: str, description: str = "", keywords: list[str] | None = None, *, seed: int | None = None
    ) -> PlanResult:
        """Ask M1 for a layout of the requested texts (always the keyword variant), then repair and complete it."""
        texts = requested_texts(title, keywords)
        if not texts:
            return PlanResult(Layout(), "", "m1", ("nothing to place: the title is empty",))
        prompt = build_planner_prompt(book_caption(title, description), texts, self.template)
        raw = self.generate(prompt, seed=seed)
        answer = raw.split(STOP_STRINGS[self.template], 1)[0]  # the rest is the model writing the next turn
        report = parse_planner_output_report(answer, GRID, texts)
        layout, filled = complete_layout(report.layout, texts, self.heuristic, seed=seed)
        warnings = report.warnings() + filled
        for w in warnings:
            logger.info("M1 plan: %s", w)
        return PlanResult(layout, raw, "m1+heuristic" if filled else "m1", tuple(warnings))

    def generate(self, prompt: str, seed: int | None = None) -> str:
        """The planner's raw answer to a full prompt (only the new tokens, special tokens skipped)."""
        if self.generate_fn is not None:
            return str(self.generate_fn(prompt))
        self.load()
        import torch

        seed = self.seed if seed is None else seed
        tok, model = self.tokenizer, self.model
        device = _model_device(model)
        inputs = tok([prompt], return_token_type_ids=False, return_tensors="pt")
        inputs = {k: v.to(device) for k, v in inputs.items()}
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        sampling = self.temperature is not None and self.temperature > 0
        kwargs: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "do_sample": sampling, "pad_token_id": pad}
        if sampling:
            # TD2 passes only these; top-k/top-p stay at the model's generation_config defaults, as in TD2.
            kwargs.update(temperature=float(self.temperature), repetition_penalty=1.0)
        rng_devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=rng_devices), torch.inference_mode():
            if seed is not None:
                torch.manual_seed(seed)  # HF generate has no generator argument; fork_rng keeps global state intact
            out = model.generate(**inputs, **kwargs)
        new_tokens = out[0, inputs["input_ids"].shape[1] :]
        return tok.decode(new_tokens, skip_special_tokens=True)

    def load(self) -> None:
        """Load tokenizer and model once (fp16 on CUDA, fp32 on CPU, 8/4-bit with bitsandbytes, safetensors first)."""
        if self.model is not None:
            return
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as e:
            raise PlannerUnavailableError(f"the M1 planner needs torch and transformers ({e})") from None
        device = torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        dtype = self.dtype or (torch.float16 if device.type == "cuda" else torch.float32)
        # transformers 5 always loads weights lazily (low_cpu_mem_usage is gone), so it is not passed.
        kwargs: dict[str, Any] = {"dtype": dtype, "local_files_only": self.local_files_only}
        if self.quantization:
            if importlib.util.find_spec("bitsandbytes") is None:
                raise PlannerUnavailableError(
                    f"{self.quantization} loading of {self.model_id} needs bitsandbytes: pip install bitsandbytes"
                )
            from transformers import BitsAndBytesConfig

            if self.quantization == "8bit":
                kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
            else:
                kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=dtype)
            kwargs["device_map"] = {"": str(device)}
        logger.info("loading M1 layout planner %s on %s (%s)", self.model_id, device, self.quantization or dtype)
        try:
            tokenizer = AutoTokenizer.from_pretrained(self.model_id, local_files_only=self.local_files_only)
            try:
                model = AutoModelForCausalLM.from_pretrained(self.model_id, use_safetensors=True, **kwargs)
            except Exception as e:  # no .safetensors in the repo: fall back to the (slow) .bin shards
                logger.info("no safetensors weights for %s (%s); trying .bin", self.model_id, _first_line(e))
                model = AutoModelForCausalLM.from_pretrained(self.model_id, use_safetensors=False, **kwargs)
        except Exception as e:
            raise PlannerUnavailableError(
                f"cannot load the M1 layout planner {self.model_id!r}: {type(e).__name__}: {_first_line(e)}. "
                f"It needs the model files (~13.5 GB in fp16) from the Hugging Face Hub: download them once with "
                f"network access (`hf download {M1_MODEL_ID}`) or pass a local directory as model_id; "
                f"HeuristicPlanner plans without it."
            ) from None
        if not self.quantization:
            model = model.to(device)
        model.eval()
        self.tokenizer, self.model = tokenizer, model


def _model_device(model: Any):
    import torch

    device = getattr(model, "device", None)
    if device is None:
        device = next(model.parameters()).device
    return torch.device(device)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__
