"""Offline Korean OCR (Tesseract `kor` through tesserocr) and the text-accuracy scores kordiff is judged by."""

from __future__ import annotations

import logging
import os
import struct
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from .assets import TESSDATA_DIR
from .layout import Layout

logger = logging.getLogger(__name__)

# An OpenMP build of libtesseract (the Debian CLI's) runs ~5x slower on small images with its default threads;
# kordiff parallelises across boxes/images instead. The tesserocr 2.13 wheel's bundled libtesseract has no
# OpenMP, so this only matters when tesserocr is built against a system library. Set before the first API.
os.environ.setdefault("OMP_THREAD_LIMIT", "1")

LANG = "kor"
_LSTM_UNICHARSET = 21  # TessdataType index of "lstm-unicharset" in a .traineddata file


# --- what the model can read ----------------------------------------------------------------------------------


def _traineddata_component(path: Path, index: int) -> bytes:
    """One component of a .traineddata archive (header: int32 count, then int64 offsets, -1 = absent)."""
    data = path.read_bytes()
    (count,) = struct.unpack_from("<i", data, 0)
    offsets = struct.unpack_from(f"<{count}q", data, 4)
    if index >= count or offsets[index] < 0:
        raise ValueError(f"{path} has no component {index}")
    later = [o for o in offsets if o > offsets[index]]
    return data[offsets[index] : min(later) if later else len(data)]


@lru_cache(maxsize=4)
def known_charset(tessdata_dir: str = str(TESSDATA_DIR), lang: str = LANG) -> frozenset[str]:
    """Every character the recogniser can output (parsed from the traineddata's LSTM unicharset)."""
    raw = _traineddata_component(Path(tessdata_dir) / f"{lang}.traineddata", _LSTM_UNICHARSET)
    lines = raw.decode("utf-8").splitlines()
    chars = set()
    for line in lines[1:]:  # first line is the count; then "<unichar> <props> ..." per entry
        uni = line.split(" ", 1)[0]
        if uni and uni not in ("NULL", "Joined") and not uni.startswith("|Broken|"):
            chars.add(uni)
    return frozenset(chars)


def known_hangul(tessdata_dir: str = str(TESSDATA_DIR), lang: str = LANG) -> frozenset[str]:
    """The precomposed Hangul syllables the recogniser knows (kor: 1,076 of 11,172)."""
    return frozenset(c for c in known_charset(tessdata_dir, lang) if len(c) == 1 and 0xAC00 <= ord(c) <= 0xD7A3)


def unreadable_chars(text: str) -> list[str]:
    """Characters of `text` (whitespace aside) the OCR model can never output, in order, without repeats."""
    known = known_charset()
    out: list[str] = []
    for ch in unicodedata.normalize("NFC", text):
        if not ch.isspace() and ch not in known and ch not in out:
            out.append(ch)
    return out


def is_scorable(text: str) -> bool:
    """True when OCR could in principle read `text` exactly (every character is in the model's set)."""
    return not unreadable_chars(text)


# --- scores (pure) --------------------------------------------------------------------------------------------


def normalise(text: str) -> str:
    """Compare form: NFKC (full-width forms fold to ASCII) and no whitespace (Tesseract kor spacing is unreliable)."""
    return "".join(unicodedata.normalize("NFKC", text).split())


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (unit insert/delete/substitute) between two strings."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def sentence_correct(reference: str, hypothesis: str) -> bool:
    """Exact match after normalisation."""
    return normalise(reference) == normalise(hypothesis)


def ned(reference: str, hypothesis: str) -> float:
    """Normalised edit similarity: 1 - edit distance / longer length (1 = identical; two empties = 1)."""
    r, h = normalise(reference), normalise(hypothesis)
    longest = max(len(r), len(h))
    return 1.0 if longest == 0 else 1.0 - edit_distance(r, h) / longest


def char_accuracy(reference: str, hypothesis: str) -> float:
    """1 - character error rate against the reference, floored at 0 (1 = every reference character right)."""
    r, h = normalise(reference), normalise(hypothesis)
    if not r:
        return 1.0 if not h else 0.0
    return max(0.0, 1.0 - edit_distance(r, h) / len(r))


@dataclass(frozen=True)
class TextScore:
    """How well one read matches one reference."""

    reference: str
    hypothesis: str
    scorable: bool
    correct: bool
    ned: float
    char_accuracy: float


def score_text(reference: str, hypothesis: str) -> TextScore:
    """All metrics for one reference/read pair (unscorable references are still scored, but flagged)."""
    return TextScore(reference, hypothesis, is_scorable(reference), sentence_correct(reference, hypothesis),
                     ned(reference, hypothesis), char_accuracy(reference, hypothesis))


@dataclass(frozen=True)
class ImageScore:
    """Per-box scores, the whole-image score (boxes joined in reading order) and the whole-image read."""

    boxes: tuple[TextScore, ...]
    full_read: str = ""
    full_confidence: float = 0.0

    @property
    def reference(self) -> str:
        return " ".join(b.reference for b in self.boxes)

    @property
    def hypothesis(self) -> str:
        return " ".join(b.hypothesis for b in self.boxes)

    @property
    def scorable(self) -> bool:
        return all(b.scorable for b in self.boxes)

    @property
    def correct(self) -> bool:
        return bool(self.boxes) and all(b.correct for b in self.boxes)

    @property
    def ned(self) -> float:
        return ned(self.reference, self.hypothesis)

    @property
    def char_accuracy(self) -> float:
        return char_accuracy(self.reference, self.hypothesis)

    @property
    def score(self) -> float:
        """One number for ranking candidates: exact boxes first, then edit similarity."""
        if not self.boxes:
            return 0.0
        return sum(b.correct for b in self.boxes) / len(self.boxes) + self.ned


def score_reads(references: Sequence[str], reads: Sequence[str], full_read: str = "", full_confidence: float = 0.0):
    """ImageScore from box references and their reads (pure: no OCR)."""
    if len(references) != len(reads):
        raise ValueError(f"{len(references)} references but {len(reads)} reads")
    return ImageScore(tuple(score_text(r, h) for r, h in zip(references, reads)), full_read, full_confidence)


# --- reading --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OcrConfig:
    """How the multi-pass reader works (REFERENCE.md section 3); defaults tuned on the benchmark's dev split and
    the text-free set of bench/ocr.py."""

    # Gates against hallucinated text (measured on typeset covers vs 140 text-free images): exact reads scored
    # >= 88, hallucinations <= 76 except one- and two-letter reads, which reached 93.
    min_confidence: float = 70.0  # mean word confidence gate; below it the read is discarded as a hallucination
    # One box = one line: single-line mode first. Sparse mode (11) on a line crop measured no gain, and it
    # sometimes reads one glyph twice with high confidence, so it is kept for whole images and tall boxes.
    line_psms: tuple[int, ...] = (7, 6)
    block_psms: tuple[int, ...] = (6, 11, 7)  # boxes at least half as tall as wide (stacked lines)
    page_psms: tuple[int, ...] = (11, 6)  # whole image: sparse text, then uniform block
    preprocess: tuple[str, ...] = ("raw", "median")  # raw grey, grey + 3x3 median
    binarise: tuple[str, ...] = ("otsu", "sauvola")
    word_min_confidence: float = 50.0  # punctuation-only words below this (edge specks: '_', ',') are dropped
    min_confidence_short: float = 90.0  # reads with fewer than 3 letters/digits hallucinate more: stricter gate
    max_transitions: float = 0.12  # binarised variants busier than this (ink/ground flips per pixel) are noise
    margin: float = 0.08  # crop margin around a box, fraction of the box's smaller side
    rescale_tolerance: float = 1.3  # crops within this factor of the target height are read as they are
    line_height: int = 40  # box crops are rescaled so their height is near this (Tesseract's sweet spot)
    give_up_below: float = 40.0  # after the first preprocessing's passes, stop if nothing reached this
    good_enough: float = 92.0  # stop trying variants once a read is this confident
    retry_scales: tuple[float, ...] = (0.6,)  # unsure reads (give_up_below..good_enough) are retried at these
    tessdata_dir: str = str(TESSDATA_DIR)
    lang: str = LANG


@dataclass(frozen=True)
class OcrRead:
    """One accepted (or rejected) read: text, mean confidence 0..100 and the variant that produced it."""

    text: str
    confidence: float
    variant: str = ""
    rejected: str = field(default="", compare=False)  # the gated-out text, for diagnosis


def content_chars(text: str) -> str:
    """The letters and digits of a read (Hangul syllables, digits, Latin); punctuation and lone jamo dropped."""
    out = []
    for ch in unicodedata.normalize("NFKC", text):
        if 0xAC00 <= ord(ch) <= 0xD7A3 or (ch.isascii() and ch.isalnum()):
            out.append(ch)
    return "".join(out)


def _transitions(mask: np.ndarray) -> float:
    """Fraction of horizontally adjacent pixel pairs that flip between ink and ground (text ~0.02-0.1, noise ~0.5)."""
    m = np.asarray(mask, dtype=bool)
    return float((m[:, 1:] != m[:, :-1]).mean()) if m.shape[1] > 1 else 0.0


def _otsu_threshold(grey: np.ndarray) -> int:
    hist = np.bincount(grey.ravel(), minlength=256).astype(np.float64)
    total = hist.sum()
    if total == 0:
        return 128
    omega = np.cumsum(hist) / total
    mu = np.cumsum(hist * np.arange(256)) / total
    mu_t = mu[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma_b = (mu_t * omega - mu) ** 2 / (omega * (1 - omega))
    if np.all(np.isnan(sigma_b)):  # a single grey level
        return int(grey.flat[0]) if grey.size else 128
    return int(np.nanargmax(sigma_b))


def _box_mean(a: np.ndarray, r: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window via an integral image (edges replicated)."""
    p = np.pad(a, r + 1, mode="edge").astype(np.float64)
    s = p.cumsum(0).cumsum(1)
    k = 2 * r + 1
    tot = s[k:, k:] - s[:-k, k:] - s[k:, :-k] + s[:-k, :-k]
    return tot[: a.shape[0], : a.shape[1]] / (k * k)


def _sauvola(grey: np.ndarray, window: int, k: float = 0.2, r: float = 128.0) -> np.ndarray:
    g = grey.astype(np.float64)
    half = max(1, window // 2)
    mean = _box_mean(g, half)
    sq = _box_mean(g * g, half)
    std = np.sqrt(np.maximum(sq - mean * mean, 0))
    return g > mean * (1 + k * (std / r - 1))


def _binarise(grey: np.ndarray, method: str, window: int, max_transitions: float = 1.0) -> Image.Image | None:
    """Black text on white whatever the polarity: the minority class is taken as ink."""
    if method == "otsu":
        mask = grey > _otsu_threshold(grey)
    elif method == "sauvola":
        mask = _sauvola(grey, window)
    else:
        raise ValueError(f"unknown binarisation {method!r}")
    if mask.mean() < 0.5:  # light text on dark ground: flip so that background is white
        mask = ~mask
    if _transitions(mask) > max_transitions:
        return None  # speckle, not strokes: Tesseract would spend seconds hallucinating on it
    # Tesseract misreads glyphs that touch the image edge: give it a quiet white border.
    border = max(4, min(mask.shape) // 8)
    mask = np.pad(mask, border, constant_values=True)
    return Image.fromarray((mask * 255).astype(np.uint8), "L")


def _variants(image: Image.Image, config: OcrConfig, window: int):
    grey = image.convert("L")
    for pre in config.preprocess:
        g = grey if pre == "raw" else grey.filter(ImageFilter.MedianFilter(3))
        arr = np.asarray(g)
        for method in config.binarise:
            binary = _binarise(arr, method, window, config.max_transitions)
            if binary is not None:
                yield f"{pre}+{method}", binary


class OcrReader:
    """Multi-pass Tesseract reader; one tesserocr API per thread, so it can be shared by worker threads."""

    def __init__(self, config: OcrConfig = OcrConfig()):
        self.config = config
        self._local = threading.local()
        path = Path(config.tessdata_dir) / f"{config.lang}.traineddata"
        if not path.exists():
            raise FileNotFoundError(f"Tesseract model not found: {path}")

    def _api(self):
        api = getattr(self._local, "api", None)
        if api is None:
            import tesserocr  # imported lazily: the rest of kordiff works without it

            api = tesserocr.PyTessBaseAPI(path=self.config.tessdata_dir, lang=self.config.lang)
            self._local.api = api
        return api

    def _read_once(self, image: Image.Image, psm: int) -> tuple[str, float]:
        """One Tesseract pass: the text and its mean word confidence, after dropping unsure punctuation-only words."""
        import tesserocr

        api = self._api()
        api.SetPageSegMode(psm)
        api.SetImage(image)
        if not api.Recognize():  # tesserocr returns True on success
            return "", 0.0
        it = api.GetIterator()
        level = tesserocr.RIL.WORD
        words: list[tuple[str, float]] = []
        if it is not None and not it.Empty(level):
            while True:
                word = (it.GetUTF8Text(level) or "").strip()
                if word:
                    words.append((word, float(it.Confidence(level))))
                if not it.Next(level):
                    break
        kept = [(w, c) for w, c in words if c >= self.config.word_min_confidence or content_chars(w)]
        if not kept:
            return "", 0.0
        text = " ".join((api.GetUTF8Text() or "").split()) if len(kept) == len(words) else " ".join(w for w, _ in kept)
        return text, float(np.mean([c for _, c in kept]))

    def read_image(self, image: Image.Image, psms: Sequence[int] | None = None) -> OcrRead:
        """Best read over preprocessing x binarisation x page-segmentation variants, gated by confidence."""
        cfg = self.config
        psms = tuple(psms or cfg.page_psms)
        best = self._best_read(image, psms)
        if cfg.give_up_below <= best.confidence < cfg.good_enough:
            # Tesseract kor sometimes drops or invents a line at one scale and reads it cleanly at another.
            for scale in cfg.retry_scales:
                size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
                retry = self._best_read(image.resize(size, Image.LANCZOS), psms)
                if retry.confidence > best.confidence:
                    best = OcrRead(retry.text, retry.confidence, f"{retry.variant}@x{scale:g}")
        gate = cfg.min_confidence if len(content_chars(best.text)) >= 3 else max(cfg.min_confidence,
                                                                                   cfg.min_confidence_short)
        if best.text and best.confidence < gate:
            return OcrRead("", best.confidence, best.variant, rejected=best.text)
        return best

    def _best_read(self, image: Image.Image, psms: tuple[int, ...]) -> OcrRead:
        cfg = self.config
        window = max(15, (min(image.size) // 16) | 1)
        best = OcrRead("", 0.0)
        first_pre = cfg.preprocess[0] if cfg.preprocess else ""
        for name, binary in _variants(image, cfg, window):
            if not name.startswith(first_pre + "+") and best.confidence < cfg.give_up_below:
                break  # the un-filtered variants found nothing text-like: filtered ones only add hallucinations
            for psm in psms:
                text, conf = self._read_once(binary, psm)
                if content_chars(text) and conf > best.confidence:
                    best = OcrRead(text, conf, f"{name}+psm{psm}")
                if best.confidence >= cfg.good_enough:
                    break
            if best.confidence >= cfg.good_enough:
                break
        return best

    def crop_box(self, image: Image.Image, box_px: tuple[int, int, int, int], line: bool = True) -> Image.Image:
        """The box region plus a margin, rescaled so that its height suits Tesseract (one line, or several)."""
        x0, y0, x1, y1 = box_px
        m = round(min(x1 - x0, y1 - y0) * self.config.margin)
        crop = image.crop((max(0, x0 - m), max(0, y0 - m), min(image.width, x1 + m), min(image.height, y1 + m)))
        h = crop.height
        target = self.config.line_height * 1.6  # the box holds the line plus padding
        tol = self.config.rescale_tolerance
        high = tol * target if line else 4 * target  # a tall box may hold several lines: shrink only huge ones
        if h > 0 and (h > high or h < target / tol):
            scale = target / h
            crop = crop.resize((max(1, round(crop.width * scale)), max(1, round(h * scale))), Image.LANCZOS)
        return crop

    def read_layout(self, image: Image.Image, layout: Layout) -> list[OcrRead]:
        """One read per box (in layout order) from the box's own region."""
        reads = []
        for box in layout:
            x0, y0, x1, y1 = box.to_pixels(image.size)  # the grid spans width and height, whatever the shape
            if y1 - y0 >= 1.8 * (x1 - x0):  # a column: text set top to bottom (세로쓰기)
                row = vertical_to_line(image.crop((x0, y0, x1, y1)))
                reads.append(self.read_image(self.crop_box(row, (0, 0, row.width, row.height)),
                                             self.config.line_psms))
                continue
            line = (y1 - y0) * 2 < (x1 - x0)
            crop = self.crop_box(image, (x0, y0, x1, y1), line=line)
            reads.append(self.read_image(crop, self.config.line_psms if line else self.config.block_psms))
        return reads

    def score(self, image: Image.Image, layout: Layout, full_image: bool = True) -> ImageScore:
        """Read every box (and optionally the whole image) and score the reads against the layout's text."""
        reads = self.read_layout(image, layout)
        full = self.read_image(image) if full_image else OcrRead("", 0.0)
        return score_reads(layout.texts, [r.text for r in reads], full.text, full.confidence)

    def close(self) -> None:
        """End this thread's Tesseract instance (others end with their threads)."""
        api = getattr(self._local, "api", None)
        if api is not None:
            api.End()
            self._local.api = None


def vertical_to_line(column: Image.Image) -> Image.Image:
    """A column of text set top to bottom (세로쓰기) re-laid as one horizontal line, for a horizontal-only OCR.

    Hangul syllables are square, so the column's ink width is one syllable's pitch: cuts go at the emptiest row
    near each multiple of it (a syllable's own gaps, like the one inside 별, sit away from those rows)."""
    grey = np.asarray(column.convert("L"), np.float32)
    if grey.size == 0:
        return column
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    bg = float(np.median(border))
    ink = np.abs(grey - bg) > max(40.0, 0.35 * float(np.abs(grey - bg).max()))
    rows, cols = np.where(ink.any(1))[0], np.where(ink.any(0))[0]
    if len(rows) == 0:
        return column
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    pitch = max(1.0, (right - left) * 1.06)
    n = max(1, int(round((bottom - top) / pitch)))
    profile = ink[top:bottom].sum(1)
    cuts = [0]
    for k in range(1, n):
        ideal = round(k * (bottom - top) / n)
        lo, hi = max(cuts[-1] + 1, ideal - int(pitch * 0.25)), min(bottom - top - 1, ideal + int(pitch * 0.25))
        cuts.append(lo + int(np.argmin(profile[lo:hi + 1])) if hi >= lo else ideal)
    cuts.append(bottom - top)
    pieces = [column.crop((left, top + a, right, top + b)) for a, b in zip(cuts, cuts[1:]) if b > a]
    gap = max(2, (right - left) // 8)
    h = max(p.height for p in pieces) + 2 * gap
    fill = tuple(int(v) for v in np.asarray(column.convert("RGB")).reshape(-1, 3)[0])
    line = Image.new("RGB", (sum(p.width for p in pieces) + gap * (len(pieces) + 1), h), fill)
    x = gap
    for p in pieces:
        line.paste(p.convert("RGB"), (x, (h - p.height) // 2))
        x += p.width + gap
    return line


_default_reader: OcrReader | None = None
_default_lock = threading.Lock()


def default_reader() -> OcrReader:
    """A process-wide reader with the default config (thread-safe: APIs are per thread)."""
    global _default_reader
    with _default_lock:
        if _default_reader is None:
            _default_reader = OcrReader()
        return _default_reader


def read_text(image: Image.Image) -> str:
    """Gated whole-image read with the default reader ('' when nothing is read confidently)."""
    return default_reader().read_image(image).text


def score_image(image: Image.Image, layout: Layout, reader: OcrReader | None = None, full_image: bool = False):
    """OCR scores of an image against its layout's text (see `ImageScore`)."""
    return (reader or default_reader()).score(image, layout, full_image=full_image)
