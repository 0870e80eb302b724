"""What every layout planner returns, the Planner protocol, and which texts a plan must place."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .layout import Layout

# Heuristic placements (kordiff.heuristic): cover conventions, the title in the upper third by default.
PLACEMENTS = ("top", "centre", "bottom", "top-left", "bottom-left", "vertical")
ROLES = ("title", "subtitle", "author")
# Punctuation/quotes M1 wraps texts in; ignored when comparing texts.
_EDGE_JUNK = " \t\"'`\u201c\u201d\u2018\u2019,:;-\u2013\u2014*\u2022\u00b7|"

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



def _norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).casefold().split()).strip(_EDGE_JUNK + ".")
