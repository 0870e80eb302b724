"""MARIO-style samples on disk: `{root}/{id}/image.jpg, caption.txt, ocr.txt` plus `index.jsonl`.

ocr.txt holds one word (or line) per row in TextDiffuser-2's MARIO format, space separated:

    {text} {x1},{y1},{x2},{y2},{x3},{y3},{x4},{y4} {score}

four corners clockwise from top-left in pixels of the 512x512 image.jpg, score in [0, 1] (1.0 for human
labels and synthetic text). TD2 parses it with `line.split()`; our reader splits from the right, so a text
that contains spaces (AIHub labels sometimes do) still round-trips.

Every writer goes through `write_sample`: files land in a temporary folder that is renamed into place, so a
sample folder either exists complete or not at all, whatever kills the process.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from kordiff.layout import Box, Layout

IMAGE_FILE = "image.jpg"
CAPTION_FILE = "caption.txt"
OCR_FILE = "ocr.txt"
SAMPLE_FILES = (IMAGE_FILE, CAPTION_FILE, OCR_FILE)
INDEX_FILE = "index.jsonl"
TMP_DIR = ".tmp"


class MarioFormatError(ValueError):
    """A sample folder or ocr.txt line that does not follow the MARIO format."""


@dataclass(frozen=True)
class OcrWord:
    """One labelled text region: its text, four corners (x1, y1, ..., x4, y4) in pixels, and a score."""

    text: str
    quad: tuple[int, int, int, int, int, int, int, int]
    score: float = 1.0

    @classmethod
    def from_rect(cls, text: str, x0: int, y0: int, x1: int, y1: int, score: float = 1.0) -> OcrWord:
        """Axis-aligned rectangle -> quad, clockwise from top-left."""
        return cls(text, (x0, y0, x1, y0, x1, y1, x0, y1), score)

    @property
    def rect(self) -> tuple[int, int, int, int]:
        """(x_min, y_min, x_max, y_max) of the four corners."""
        xs, ys = self.quad[0::2], self.quad[1::2]
        return min(xs), min(ys), max(xs), max(ys)

    def to_line(self) -> str:
        """The ocr.txt row for this word."""
        if "\n" in self.text or "\r" in self.text:
            raise MarioFormatError(f"ocr text may not contain a newline: {self.text!r}")
        return f"{self.text} {','.join(str(int(v)) for v in self.quad)} {self.score:.2f}"

    @classmethod
    def from_line(cls, line: str) -> OcrWord:
        """Parse one ocr.txt row (text may contain spaces)."""
        parts = line.rstrip("\r\n").rsplit(" ", 2)
        if len(parts) != 3 or not parts[0]:
            raise MarioFormatError(f"not an ocr.txt line: {line!r}")
        text, coords, score = parts
        try:
            quad = tuple(int(float(v)) for v in coords.split(","))
            score_f = float(score)
        except ValueError:
            raise MarioFormatError(f"bad numbers in ocr.txt line: {line!r}") from None
        if len(quad) != 8:
            raise MarioFormatError(f"need 8 coordinates in ocr.txt line: {line!r}")
        return cls(text, quad, score_f)  # type: ignore[arg-type]


@dataclass(frozen=True)
class TextLine:
    """A line of text after merging words: text and (x_min, y_min, x_max, y_max) in pixels."""

    text: str
    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def cx(self) -> int:
        return (self.x0 + self.x1) // 2

    @property
    def cy(self) -> int:
        return (self.y0 + self.y1) // 2

    def to_box(self, size: int = 512) -> Box:
        """The line as a kordiff grid Box (the one pixel->grid conversion)."""
        return Box.from_pixels(self.text, self.x0, self.y0, self.x1, self.y1, size=size)


@dataclass(frozen=True)
class MarioSample:
    """A sample folder read back: id, image path, caption and words."""

    id: str
    path: Path
    caption: str
    words: tuple[OcrWord, ...]

    @property
    def image_path(self) -> Path:
        return self.path / IMAGE_FILE


def _same_line(a: TextLine, b: TextLine) -> bool:
    # TD2's rule: each box's vertical centre lies inside the other's vertical extent ...
    if not (b.y0 <= a.cy <= b.y1 and a.y0 <= b.cy <= a.y1):
        return False
    # ... and the pair is horizontally close: the two widths cover >= 80% of the joint span.
    left, right = (a, b) if a.x0 <= b.x0 else (b, a)
    span = max(right.x1, left.x1) - left.x0
    return span <= 0 or (a.x1 - a.x0 + b.x1 - b.x0) / span >= 0.8


def merge_lines(words: Iterable[OcrWord]) -> list[TextLine]:
    """Merge word boxes into text lines as TD2 does for MARIO; result sorted top to bottom, then left to right."""
    pending = sorted((TextLine(w.text, *w.rect) for w in words), key=lambda t: (t.cx, t.cy, t.text))
    done: list[TextLine] = []
    while pending:
        first = pending.pop(0)
        for i, other in enumerate(pending):
            if _same_line(first, other):
                left, right = (first, other) if first.x0 < other.x0 else (other, first)
                merged = TextLine(
                    f"{left.text} {right.text}",
                    min(first.x0, other.x0),
                    min(first.y0, other.y0),
                    max(first.x1, other.x1),
                    max(first.y1, other.y1),
                )
                del pending[i]
                pending.append(merged)
                pending.sort(key=lambda t: (t.cx, t.cy, t.text))
                break
        else:
            done.append(first)
    return sorted(done, key=lambda t: (t.cy, t.cx, t.text))


def lines_to_layout(lines: Sequence[TextLine], size: int = 512) -> Layout:
    """Lines -> kordiff Layout on the 128 grid (lines too small to have grid area are dropped)."""
    boxes = []
    for line in lines:
        try:
            boxes.append(line.to_box(size))
        except ValueError:
            continue
    return Layout(tuple(boxes))


def title_of(lines: Sequence[TextLine]) -> str:
    """The tallest line: on a book cover the title is set in the largest type."""
    if not lines:
        return ""
    return max(lines, key=lambda t: (t.y1 - t.y0, -t.y0)).text


def encode_jpeg(image: Image.Image, quality: int = 95) -> bytes:
    """Deterministic JPEG bytes (same image, same bytes)."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=quality, optimize=False, progressive=False)
    return buf.getvalue()


def write_sample(root: Path, sample_id: str, jpeg: bytes, caption: str, words: Sequence[OcrWord]) -> Path:
    """Write one sample folder atomically (temp folder + rename); returns its path. Existing samples are kept."""
    root = Path(root)
    final = root / sample_id
    tmp = root / TMP_DIR / f"{sample_id}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True, exist_ok=False)
    try:
        (tmp / IMAGE_FILE).write_bytes(jpeg)
        (tmp / CAPTION_FILE).write_text(caption.replace("\n", " ") + "\n", encoding="utf-8")
        (tmp / OCR_FILE).write_text("".join(w.to_line() + "\n" for w in words), encoding="utf-8")
        try:
            os.rename(tmp, final)
        except OSError:
            if not is_complete(final):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def is_complete(sample_dir: Path) -> bool:
    """True when a sample folder holds all three files (only complete folders are ever renamed into place)."""
    return all((Path(sample_dir) / f).is_file() for f in SAMPLE_FILES)


def clean_tmp(root: Path) -> int:
    """Remove temp folders a killed run left behind; returns how many."""
    tmp = Path(root) / TMP_DIR
    if not tmp.is_dir():
        return 0
    n = 0
    for p in tmp.iterdir():
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        n += 1
    return n


def read_sample(sample_dir: Path) -> MarioSample:
    """Read a sample folder back (raises MarioFormatError on a broken one)."""
    sample_dir = Path(sample_dir)
    if not is_complete(sample_dir):
        raise MarioFormatError(f"incomplete sample folder {sample_dir}")
    caption = (sample_dir / CAPTION_FILE).read_text(encoding="utf-8").splitlines()
    ocr = (sample_dir / OCR_FILE).read_text(encoding="utf-8").splitlines()
    words = tuple(OcrWord.from_line(line) for line in ocr if line.strip())
    return MarioSample(sample_dir.name, sample_dir, caption[0] if caption else "", words)


def write_index(root: Path, entries: Iterable[dict]) -> Path:
    """Write `index.jsonl` (sorted by id, one JSON object a line) atomically."""
    root = Path(root)
    rows = sorted(entries, key=lambda e: e["id"])
    tmp = root / f".{INDEX_FILE}.{os.getpid()}.tmp"
    tmp.write_text("".join(json.dumps(e, ensure_ascii=False, sort_keys=True) + "\n" for e in rows), encoding="utf-8")
    os.replace(tmp, root / INDEX_FILE)
    return root / INDEX_FILE


def read_index(root: Path) -> list[dict]:
    """Entries of `index.jsonl`; without one, every complete sample folder under `root` (sorted)."""
    root = Path(root)
    index = root / INDEX_FILE
    if index.is_file():
        return [json.loads(line) for line in index.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [
        {"id": p.name} for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".") and is_complete(p)
    ]
