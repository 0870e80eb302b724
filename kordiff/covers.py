"""Covers in three modes (diffusion, hybrid, typeset) and best-of-N reranking by OCR against the layout text."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from PIL import Image

from .layout import COVER_SIZES, DEFAULT_SHAPE, Layout, cover_size
from .modes import MODES
from .ocr import ImageScore, score_image
from .typeset import (
    FALLBACK_FONT,
    TypesetStyle,
    cover_style,
    image_palette,
    procedural_background,
    typeset_layout,
)

logger = logging.getLogger(__name__)

PIPELINE_BATCH = 8  # the pipeline's own per-call image limit

Scorer = Callable[[Image.Image, Layout], ImageScore]


@dataclass(frozen=True)
class CoverOptions:
    """Knobs shared by the modes; defaults are what the benchmark uses."""

    font: str = "auto"  # title font style (kordiff.assets.FONTS) or "auto": chosen by the description's mood
    body_font: str = "auto"  # subtitle/author font style, or "auto"
    shape: str = DEFAULT_SHAPE  # cover shape (kordiff.layout.COVER_SIZES): portrait (2:3, books) or square (TD2-native)
    width: int = 512  # typeset-mode width in pixels; the height follows the shape (diffusion: the pipeline's width)
    num_inference_steps: int = 20
    guidance_scale: float = 7.5
    scheduler: str | None = None
    harmonise: bool = True  # hybrid: low-strength image-to-image pass over the typeset title
    harmonise_strength: float = 0.25
    harmonise_max_ned_drop: float = 0.05  # hybrid keeps the harmonised image only if OCR loses no more than this
    score: bool = True  # OCR-score every candidate (needed for best-of-N ranking)

    def __post_init__(self) -> None:
        if self.shape not in COVER_SIZES:
            raise ValueError(f"unknown cover shape {self.shape!r}; choose one of {sorted(COVER_SIZES)}")

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of a typeset cover."""
        return cover_size(self.shape, self.width)


@dataclass(frozen=True)
class Cover:
    """One candidate: the image, the seed that made it, its mode and OCR score (None when scoring is off)."""

    image: Image.Image
    seed: int
    mode: str
    score: ImageScore | None = None
    harmonised: bool = False
    notes: tuple[str, ...] = field(default=())

    @property
    def rank_value(self) -> float:
        """Higher is better: exact boxes first, then edit similarity (0 when unscored)."""
        return self.score.score if self.score is not None else 0.0


def rank_covers(covers: list[Cover]) -> list[Cover]:
    """Best OCR score first; ties keep seed order (stable)."""
    return sorted(covers, key=lambda c: (-c.rank_value, c.seed))


def _diffuse(pipeline, caption: str, layout: Layout, seeds: list[int], options: CoverOptions,
             image: Image.Image | None = None, strength: float = 1.0) -> list[Image.Image]:
    images: list[Image.Image] = []
    for i in range(0, len(seeds), PIPELINE_BATCH):
        chunk = seeds[i : i + PIPELINE_BATCH]
        kwargs = dict(num_images=len(chunk), num_inference_steps=options.num_inference_steps,
                      guidance_scale=options.guidance_scale, seed=chunk, scheduler=options.scheduler)
        native = getattr(pipeline, "image_size", None)
        if native and options.shape != "square":  # the pipeline's native width, the cover's shape (512 -> 512x768)
            w, h = cover_size(options.shape, native)
            m = getattr(pipeline, "size_multiple", 8)
            kwargs.update(width=w, height=max(m, h - h % m))
        if image is not None:
            kwargs.update(image=image, strength=strength)
        images.extend(pipeline(caption, layout, **kwargs).images)
    return images


def _typeset_style(description: str, options: CoverOptions, art: Image.Image | None = None) -> TypesetStyle:
    """Fonts by role (mood or the user's); colours from the theme, or picked from the diffusion art (hybrid)."""
    palette = image_palette(art) if art is not None else None
    return cover_style(description, options.font, options.body_font, palette)


def _typeset_checked(ground: Image.Image, layout: Layout, style: TypesetStyle, options: CoverOptions,
                     scorer: Scorer | None) -> tuple[Image.Image, ImageScore | None, tuple[str, ...]]:
    """`layout` typeset over a copy of `ground`, and its OCR score. Where OCR misreads a title in the face the mood
    picked ("auto": Myeongjo reads 0.99, yet 갑 -> 감), the title and subtitle are set again in the Gothic fallback
    and that cover is kept if it reads better: the exact-text check then confirms the cover instead of flagging a
    correct one. A face the user chose is never swapped; the author keeps its face."""
    image = ground.copy()
    typeset_layout(image, layout, style)
    score = scorer(image, layout) if scorer else None
    title_font = style.font_for("title")
    if (score is None or score.correct or not score.scorable or options.font != "auto"
            or title_font == FALLBACK_FONT):
        return image, score, ()
    fonts = tuple((r, FALLBACK_FONT if r in ("title", "subtitle") else f) for r, f in style.role_fonts)
    retry = ground.copy()
    typeset_layout(retry, layout, replace(style, font=FALLBACK_FONT, role_fonts=fonts))
    retry_score = scorer(retry, layout)
    if retry_score.score <= score.score:
        return image, score, ()
    note = f"OCR read the {title_font} title as {score.hypothesis!r}: set it in Gothic ({FALLBACK_FONT}) instead"
    logger.info(note)
    return retry, retry_score, (note,)


def _hybrid(pipeline, caption: str, layout: Layout, base: Image.Image, seed: int, description: str,
            options: CoverOptions, scorer: Scorer | None) -> Cover:
    """Exact title over a diffusion image (the typeset mode's typography; a solid panel where the art is busy);
    harmonised only when OCR says the title survived."""
    ground = base.convert("RGB")
    typeset, plain_score, notes = _typeset_checked(ground, layout, _typeset_style(description, options, ground),
                                                   options, scorer)
    if not options.harmonise:
        return Cover(typeset, seed, "hybrid", plain_score, notes=notes)
    # img2img runs steps * strength denoising steps: make sure that is at least one.
    steps = max(options.num_inference_steps, math.ceil(1 / options.harmonise_strength))
    harmonised = _diffuse(pipeline, caption, layout, [seed], replace(options, num_inference_steps=steps),
                          image=typeset, strength=options.harmonise_strength)[0]
    if scorer is None:
        return Cover(harmonised, seed, "hybrid", None, harmonised=True, notes=notes)
    new_score = scorer(harmonised, layout)
    kept_boxes = sum(b.correct for b in new_score.boxes) >= sum(b.correct for b in plain_score.boxes)
    # No evidence is no pass: if OCR cannot read the plain title either, the harmonised picture might have
    # erased it, while the plain one certainly holds the exact text.
    if plain_score.ned > 0 and kept_boxes and new_score.ned >= plain_score.ned - options.harmonise_max_ned_drop:
        return Cover(harmonised, seed, "hybrid", new_score, harmonised=True, notes=notes)
    note = f"harmonising broke the OCR check (NED {plain_score.ned:.2f} -> {new_score.ned:.2f}); kept the plain one"
    logger.info(note)
    return Cover(typeset, seed, "hybrid", plain_score, notes=(*notes, note))


def make_covers(
    mode: str,
    layout: Layout,
    title: str | None = None,
    description: str = "",
    n: int = 1,
    seed: int = 0,
    pipeline=None,
    best_of: int = 1,
    options: CoverOptions = CoverOptions(),
    scorer: Scorer | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Cover]:
    """`n` covers, the best of `n * best_of` candidates (seeds seed, seed+1, ...), ranked by OCR score."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
    if n < 1 or best_of < 1:
        raise ValueError(f"n and best_of must be >= 1, got n={n} best_of={best_of}")
    if not len(layout):
        raise ValueError("the layout has no text boxes: nothing to check the title against")
    if mode != "typeset" and pipeline is None:
        raise ValueError(f"mode {mode!r} needs a pipeline (weights); 'typeset' works without one")
    total = n * best_of
    seeds = [seed + i for i in range(total)]
    title = title if title is not None else " ".join(layout.texts)
    if scorer is None and options.score:
        scorer = score_image
    if not options.score:
        scorer = None

    covers: list[Cover] = []
    if mode == "typeset":
        style = _typeset_style(description, options)
        for i, s in enumerate(seeds):
            ground = procedural_background(description, size=options.size, seed=s, quiet=layout)
            image, score, notes = _typeset_checked(ground, layout, style, options, scorer)
            covers.append(Cover(image, s, mode, score, notes=notes))
            if progress:
                progress(i + 1, total)
    else:
        from .tokens import book_caption

        caption = book_caption(title, description)
        bases = _diffuse(pipeline, caption, layout, seeds, options)
        for i, (s, base) in enumerate(zip(seeds, bases)):
            if mode == "diffusion":
                covers.append(Cover(base, s, mode, scorer(base, layout) if scorer else None))
            else:
                covers.append(_hybrid(pipeline, caption, layout, base, s, description, options, scorer))
            if progress:
                progress(i + 1, total)
    ranked = rank_covers(covers) if scorer else covers
    return ranked[:n]
