"""TD2's tokenizer extension (coordinates + characters) with Hangul appended, and the 77-id conditioning prompt.

Order matters: TD2's text encoder learned rows for 49408 + 2080 coordinate tokens + 95 `[c]` tokens, in that
order, so Hangul tokens go after them and TD2's ids never move.
"""

from __future__ import annotations

import logging
import string
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .assets import CLIP_TOKENIZER_DIR
from .layout import GRID, Layout

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

MAX_LENGTH = 77
N_COORD = 520  # TD2 adds l0..l519 etc. although the grid only reaches 128
TD2_ALPHABET = string.digits + string.ascii_lowercase + string.ascii_uppercase + string.punctuation + " "
SCHEMES = ("syllable", "jamo")

HANGUL_FIRST, HANGUL_LAST = 0xAC00, 0xD7A3  # 가 .. 힣: all 11,172 modern syllables (the seed stopped at 힝)
HANGUL_SYLLABLES = "".join(chr(c) for c in range(HANGUL_FIRST, HANGUL_LAST + 1))
# Conjoining jamo, exactly what NFD produces for a modern syllable: 19 initials, 21 medials, 27 finals.
JAMO_INITIALS = "".join(chr(c) for c in range(0x1100, 0x1113))
JAMO_MEDIALS = "".join(chr(c) for c in range(0x1161, 0x1176))
JAMO_FINALS = "".join(chr(c) for c in range(0x11A8, 0x11C3))
HANGUL_JAMO = JAMO_INITIALS + JAMO_MEDIALS + JAMO_FINALS

# Typographic characters common in Korean titles that have an ASCII twin in TD2's alphabet.
_TYPOGRAPHIC = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-", "〈": "<", "〉": ">",
                              "「": '"', "」": '"', "『": '"', "』": '"', "·": "-", "～": "~"})


def clip_tokenizer_from_assets(max_length: int = MAX_LENGTH):
    """SD1.5's CLIP tokenizer (49,408 tokens) built offline from the BPE files shipped in assets/."""
    from transformers import CLIPTokenizer

    return CLIPTokenizer(str(CLIP_TOKENIZER_DIR / "vocab.json"), str(CLIP_TOKENIZER_DIR / "merges.txt"),
                         model_max_length=max_length)


def coordinate_tokens() -> list[str]:
    """TD2's 2,080 coordinate tokens in TD2's order: l0 t0 r0 b0 l1 ..."""
    return [f"{side}{i}" for i in range(N_COORD) for side in "ltrb"]


def hangul_alphabet(scheme: str) -> str:
    """The characters a scheme adds after TD2's alphabet."""
    if scheme == "syllable":
        return HANGUL_SYLLABLES
    if scheme == "jamo":
        return HANGUL_JAMO
    raise ValueError(f"unknown scheme {scheme!r}; choose one of {SCHEMES}")


def extend_tokenizer(tokenizer, scheme: str = "syllable") -> int:
    """Add TD2's coordinate and `[c]` tokens, then the scheme's Hangul tokens; idempotent. Returns tokens added."""
    alphabet = hangul_alphabet(scheme)
    other = "jamo" if scheme == "syllable" else "syllable"
    vocab = tokenizer.get_vocab()
    if f"[{hangul_alphabet(other)[0]}]" in vocab:
        raise ValueError(f"tokenizer already carries the {other!r} scheme; cannot add {scheme!r} as well")
    before = len(tokenizer)
    groups = [coordinate_tokens(), [f"[{c}]" for c in TD2_ALPHABET], [f"[{c}]" for c in alphabet]]
    for group in groups:
        missing = [t for t in group if t not in vocab]
        if missing and len(missing) != len(group):
            have = len(group) - len(missing)
            raise ValueError(f"tokenizer has a partial TD2/Hangul extension ({have} of {len(group)})")
        if missing:
            tokenizer.add_tokens(missing)
            vocab = tokenizer.get_vocab()
    # TD2's learned rows are addressed by id: refuse a tokenizer where they would land elsewhere.
    if tokenizer.convert_tokens_to_ids("l0") != 49408 or tokenizer.convert_tokens_to_ids("[ ]") != 49408 + 2080 + 94:
        raise ValueError("tokenizer is not SD1.5's CLIP tokenizer: TD2 token ids would not match TD2's text encoder")
    added = len(tokenizer) - before
    if added:
        logger.info("extended tokenizer with %d tokens (scheme=%s, now %d)", added, scheme, len(tokenizer))
    return added


def detect_scheme(tokenizer) -> str | None:
    """'syllable', 'jamo', or None for a tokenizer without Hangul tokens."""
    vocab = tokenizer.get_vocab()
    for scheme in SCHEMES:
        if f"[{hangul_alphabet(scheme)[0]}]" in vocab:
            return scheme
    return None


def normalize_text(text: str) -> str:
    """NFKC plus typographic quotes/dashes mapped to their ASCII twins in TD2's alphabet."""
    return unicodedata.normalize("NFKC", text).translate(_TYPOGRAPHIC)


def _chars(text: str, scheme: str | None) -> list[str]:
    out: list[str] = []
    for ch in normalize_text(text):
        if scheme == "jamo" and HANGUL_FIRST <= ord(ch) <= HANGUL_LAST:
            out.extend(unicodedata.normalize("NFD", ch))
        else:
            out.append(ch)
    return out


def _supported(scheme: str | None) -> frozenset[str]:
    return frozenset(TD2_ALPHABET + (hangul_alphabet(scheme) if scheme else ""))


def unsupported_chars(text: str, scheme: str | None) -> list[str]:
    """Characters of `text` with no token in the scheme (Hanja, emoji, ...), in order, without repeats."""
    ok = _supported(scheme)
    return list(dict.fromkeys(c for c in _chars(text, scheme) if c not in ok))


def char_tokens(text: str, scheme: str | None) -> list[str]:
    """`[c]` tokens for the characters of `text`; characters without a token are left out (see unsupported_chars)."""
    ok = _supported(scheme)
    return [f"[{c}]" for c in _chars(text, scheme) if c in ok]


def book_caption(title: str, description: str = "") -> str:
    """The CLIP caption the seed trained on: 'book cover with a title of {title}', then the description."""
    caption = f"book cover with a title of {title.strip()}"
    description = description.strip()
    return f"{caption}. {description}" if description else caption


@dataclass(frozen=True)
class PromptEncoding:
    """The 77 ids plus what did not fit or had no token, so a UI can say what was cut."""

    ids: list[int]
    caption_length: int
    truncated: bool = False
    dropped_boxes: list[str] = field(default_factory=list)
    cut_boxes: list[str] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)
    caption_shortened_from: int = 0  # caption ids before `fit_layout` shortened it (0: not shortened)
    cut_kept: list[str] = field(default_factory=list)  # for each cut box, the part of its text that made it

    @property
    def warnings(self) -> list[str]:
        w = []
        if self.caption_shortened_from:
            w.append(f"caption shortened from {self.caption_shortened_from} to {self.caption_length} tokens "
                     "so the text boxes fit in the 77-token prompt")
        if self.unsupported:
            w.append("no token for " + " ".join(self.unsupported) + " (left out of the prompt)")
        if self.cut_boxes:
            w.append("prompt full (77 tokens): cut " + ", ".join(repr(t) for t in self.cut_boxes))
        if self.dropped_boxes:
            w.append("prompt full (77 tokens): left out " + ", ".join(repr(t) for t in self.dropped_boxes))
        return w


def encode_prompt_report(tokenizer, caption: str, layout: Layout, max_length: int = MAX_LENGTH,
                         fit_layout: bool = False) -> PromptEncoding:
    """TD2's conditioning ids: caption BOS..EOS, then BOS, per box `l t r b` + chars + EOS, EOS; cut/padded to 77.

    `fit_layout=True` (kordiff's pipeline and training) shortens the caption when it would push the boxes out:
    CLIP spells Hangul in byte-level BPE, so a 20-syllable title in the caption alone can fill the prompt, leaving
    the model no character tokens to draw. With everything fitting, the ids are TD2's exactly.
    """
    scheme = detect_scheme(tokenizer)
    bos, eos, pad = tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
    caption_ids = tokenizer(caption, truncation=True, max_length=max_length).input_ids
    lines, unsupported = [], []
    for box in layout:
        unsupported += [c for c in unsupported_chars(box.text, scheme) if c not in unsupported]
        line = [f"l{box.l}", f"t{box.t}", f"r{box.r}", f"b{box.b}"] + char_tokens(box.text, scheme)
        lines.append((box, tokenizer.convert_tokens_to_ids(line) + [eos]))
    shortened_from = 0
    if fit_layout and lines:
        room = max(2, max_length - 2 - sum(len(line_ids) for _, line_ids in lines))
        if len(caption_ids) > room:
            shortened_from = len(caption_ids)
            caption_ids = caption_ids[:room - 1] + [eos]
    ids = list(caption_ids)
    dropped, cut, cut_kept = [], [], []
    if lines:
        ids.append(bos)
        for box, line_ids in lines:
            room = max_length - len(ids)
            if room <= 4:
                dropped.append(box.text)
            elif room < len(line_ids):
                cut.append(box.text)
                cut_kept.append(_text_within(box.text, scheme, room - 4))
            ids.extend(line_ids)
        ids.append(eos)
    truncated = len(ids) > max_length
    ids = ids[:max_length] + [pad] * max(0, max_length - len(ids))
    return PromptEncoding(ids, len(caption_ids), truncated, dropped, cut, unsupported, shortened_from, cut_kept)


def _text_within(text: str, scheme: str | None, n_tokens: int) -> str:
    """The longest start of `text` whose character tokens all fit in `n_tokens` (jamo: a syllable is 2-3)."""
    ok, kept, used = _supported(scheme), [], 0
    for ch in normalize_text(text):
        cost = (len(unicodedata.normalize("NFD", ch)) if scheme == "jamo" and HANGUL_FIRST <= ord(ch) <= HANGUL_LAST
                else int(ch in ok))
        if used + cost > n_tokens:
            break
        kept.append(ch)
        used += cost
    return "".join(kept)


def encode_prompt(tokenizer, caption: str, layout: Layout, max_length: int = MAX_LENGTH,
                  fit_layout: bool = False) -> list[int]:
    """The `max_length` conditioning ids for a caption and a layout (TD2's contract; see encode_prompt_report)."""
    return encode_prompt_report(tokenizer, caption, layout, max_length, fit_layout).ids


def uncond_prompt(tokenizer, max_length: int = MAX_LENGTH) -> list[int]:
    """TD2's unconditional prompt: `max_length` pad ids."""
    return [tokenizer.pad_token_id] * max_length


def decode_prompt(tokenizer, ids: list[int]) -> str:
    """Readable conditioning prompt (TD2's 'intermediate result'), trailing padding dropped."""
    ids = list(ids)
    while len(ids) > 1 and ids[-1] == tokenizer.pad_token_id and ids[-2] == tokenizer.pad_token_id:
        ids.pop()
    # transformers' decode lowercases added tokens ("[T]" -> "[t]"); spell them from the added-token table instead.
    added = tokenizer.added_tokens_decoder
    parts: list[str] = []
    run: list[int] = []
    for i in ids:
        if i in added:
            if run:
                parts.append(tokenizer.decode(run))
                run = []
            parts.append(added[i].content)
        else:
            run.append(i)
    if run:
        parts.append(tokenizer.decode(run))
    return "".join(parts)


def extend_text_encoder(text_encoder, tokenizer, init: str | torch.Tensor = "mean") -> int:
    """Grow the token embedding to the tokenizer; only new rows are set (mean of old rows, or given rows)."""
    import torch

    with torch.no_grad():
        return _extend_rows(text_encoder, tokenizer, init)


def _extend_rows(text_encoder, tokenizer, init) -> int:
    import torch

    emb = text_encoder.get_input_embeddings()
    old, new = emb.weight.shape[0], len(tokenizer)
    if new < old:
        raise ValueError(f"text encoder has {old} token rows but the tokenizer only {new} tokens")
    if new == old:
        return 0
    text_encoder.resize_token_embeddings(new, mean_resizing=False)
    weight = text_encoder.get_input_embeddings().weight
    if isinstance(init, torch.Tensor):
        if tuple(init.shape) != (new - old, weight.shape[1]):
            raise ValueError(f"init rows must have shape {(new - old, weight.shape[1])}, got {tuple(init.shape)}")
        weight[old:] = init.to(weight)
    elif init == "mean":
        weight[old:] = weight[:old].float().mean(0).to(weight)
    else:
        raise ValueError(f"unknown init {init!r}: 'mean' or a tensor of rows")
    text_encoder.config.vocab_size = new
    logger.info("text encoder grown from %d to %d token rows (init=%s)", old, new,
                init if isinstance(init, str) else "given")
    return new - old


__all__ = [
    "GRID", "MAX_LENGTH", "SCHEMES", "TD2_ALPHABET", "HANGUL_SYLLABLES", "HANGUL_JAMO", "PromptEncoding",
    "book_caption", "char_tokens", "clip_tokenizer_from_assets", "coordinate_tokens", "decode_prompt",
    "detect_scheme", "encode_prompt", "encode_prompt_report", "extend_text_encoder", "extend_tokenizer",
    "hangul_alphabet", "normalize_text", "uncond_prompt", "unsupported_chars",
]
