"""Parsing M1's `text l,t,r,b` output into a Layout: never raises, repairs what it can, reports what it drops."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .layout import GRID, Box, Layout
from .plan_result import _EDGE_JUNK, _norm

logger = logging.getLogger(__name__)

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


