"""The demo's requests without a UI: plan a layout, check a generate request, make its covers one at a time.

Widget values in; library types (Layout, ModeDecision, images) and notice strings out. A user's mistake raises
ValueError (ModeError is one) with a message for users. Heavy models load once, on first use (`kordiff.shared`);
the app injects how covers are made (`make_cover`, `diffuse`) so it can run them on ZeroGPU's GPU.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from PIL import Image

from . import editing
from .assets import has_glyph
from .config import MAX_IMAGES, MAX_SEED
from .config import SCHEDULER_NAMES as SCHEDULERS
from .editing import CoverText
from .layout import DEFAULT_SHAPE, Layout, cover_size, render_layout
from .modes import ModeDecision, check_planner, decide
from .plan_result import PlannerUnavailableError, PlanResult
from .tokens import book_caption, decode_prompt, encode_prompt_report

MAX_STEPS, MAX_GUIDANCE = 150, 30.0  # the limits of the app's sliders

# (mode, model, title, description, layout, steps, guidance, scheduler, seed) -> [Cover]; the same without the
# mode -> the pipeline's output (`.images`).
MakeCover = Callable[..., list]
Diffuse = Callable[..., object]


@dataclass(frozen=True)
class PlanOutcome:
    """A planned layout, the planner's raw output headed by its name, and the notices for the page."""

    layout: Layout
    raw: str
    notices: tuple[str, ...]


@dataclass(frozen=True)
class CoverRequest:
    """A checked generate request: cleaned text, the table's layout, what the mode runs, the sampler settings."""

    text: CoverText
    layout: Layout
    decision: ModeDecision
    num_images: int
    steps: int
    guidance: float
    scheduler: str
    seed: int
    notices: tuple[str, ...] = ()  # what cleaning the text and the table and choosing the mode changed

    def cover_args(self, model: str) -> tuple:
        """The plain arguments of `make_cover` (after the mode) and `diffuse`, seed excluded."""
        return (model, self.text.title, self.text.description, self.layout, self.steps, self.guidance,
                self.scheduler)


@dataclass(frozen=True)
class CoverStep:
    """The covers so far as (image, caption), best first; the decoded prompt comes with the last step only."""

    gallery: list[tuple[Image.Image, str]]
    preview: Image.Image
    prompt: str | None = None

    @property
    def details(self) -> str:
        """Every caption in full, a markdown list (the gallery's own captions are hidden)."""
        return "\n".join(f"- {caption}" for _, caption in self.gallery)


def read_plan(title, subtitle, author, description, planner, mode) -> tuple[CoverText, ModeDecision]:
    """The cleaned text and the mode's decision for a plan request; ValueError says what is wrong."""
    text = editing.read_text(title, subtitle, author, description)
    check_planner(planner)
    return text, decide(mode, 1)


def plan_m1(title: str, description: str, keywords: list[str], model: str, quantization: str | None) -> PlanResult:
    """TD2's M1 planner (shared, loaded on first use); PlannerUnavailableError when it cannot load."""
    from .shared import m1_for

    return m1_for(model, quantization).plan(title, description, keywords)


def plan_layout(text: CoverText, planner: str, decision: ModeDecision, model: str, m1_model: str,
                m1_quantization: str | None = None, m1_notice: str = "") -> PlanOutcome:
    """Plan with `planner`, falling back to the heuristic planner (with a notice) when M1 cannot load."""
    from .heuristic import HeuristicPlanner

    notices, result = list(text.notices), None
    if planner == "m1":
        notices.append(m1_notice)
        try:
            keywords = [t for t in (text.title, text.subtitle, text.author) if t]
            result = plan_m1(text.title, text.description, keywords, m1_model, m1_quantization)
        except PlannerUnavailableError as e:
            notices.append(f"M1 planner unavailable ({e}); used the heuristic planner.")
    result = result or HeuristicPlanner(seed=0).plan(text.title, text.description, subtitle=text.subtitle,
                                                     author=text.author)
    notices += list(result.warnings) + mode_notices(decision, text, result.layout, model)
    return PlanOutcome(result.layout, f"# planner: {result.source}\n{result.raw_text}", tuple(notices))


def mode_notices(decision: ModeDecision, text: CoverText, layout: Layout, model: str) -> list[str]:
    """What the chosen mode loses: prompt cuts (diffusion, hybrid) or characters the cover font lacks."""
    if decision.prompt_notices_apply:
        from .shared import loaded_pipeline

        pipe = loaded_pipeline(model)
        tokenizer = pipe.tokenizer if pipe is not None else editing.assets_tokenizer()
        return editing.prompt_notices(tokenizer, text.title, text.description, layout)
    return editing.dropped_characters(layout, lambda c: has_glyph("sans", c))


def read_request(title, description, table, num_images, steps, guidance, scheduler, seed, randomise, mode,
                 gpu: bool) -> CoverRequest:
    """Every generate input checked, cheapest first (nothing tokenized or typeset yet); ValueError says why not."""
    text = editing.read_text(title, "", "", description)
    num_images = editing.check_number("Number of images", num_images, 1, MAX_IMAGES, integer=True)
    steps = editing.check_number("Steps", steps, 1, MAX_STEPS, integer=True)
    guidance = editing.check_number("Guidance scale", guidance, 0.0, MAX_GUIDANCE)
    if scheduler not in SCHEDULERS:
        raise ValueError(f"Unknown scheduler {str(scheduler)[:40]!r}; choose one of {', '.join(SCHEDULERS)}.")
    editing.check_table(table)
    edit = editing.rows_to_layout(table)  # bounded: at most MAX_BOXES boxes of MAX_ROW_CHARS characters
    decision = decide(mode if isinstance(mode, str) else repr(mode)[:40], len(edit.layout))
    editing.check_budget(num_images, steps, decision.mode, gpu)
    seed = random.randint(0, MAX_SEED) if randomise else editing.check_number("Seed", seed, 0, MAX_SEED, True)
    return CoverRequest(text, edit.layout, decision, num_images, steps, guidance, scheduler, seed,
                        (*text.notices, *edit.notices, *decision.notices))


def cover_steps(request: CoverRequest, model: str, make_cover: MakeCover, diffuse: Diffuse) -> Iterator[CoverStep]:
    """One step per image, so a closed page stops the job at the next image; ranked by OCR as covers arrive."""
    from .covers import rank_covers

    args, decision, n = request.cover_args(model), request.decision, request.num_images
    preview = render_layout(request.layout, size=editing.CANVAS_SIZE)
    gallery, covers = [], []
    for i, s in enumerate(range(request.seed, request.seed + n)):
        if decision.raw_pipeline:  # diffusion without boxes: nothing for OCR to score
            gallery.append((diffuse(*args, s).images[0], f"seed {s} · {decision.mode}"))
        else:
            covers += make_cover(decision.mode, *args, s)
            gallery = [(c.image, editing.cover_caption(c.seed, c.mode, c.score, c.notes))
                       for c in rank_covers(covers)]
        yield CoverStep(list(gallery), preview, decoded_prompt(request, model) if i == n - 1 else None)


def decoded_prompt(request: CoverRequest, model: str) -> str:
    """The conditioning prompt as the pipeline encodes it, decoded by the tokenizer that will read it."""
    if request.decision.needs_pipeline:
        from .shared import pipeline_for

        tokenizer = pipeline_for(model).tokenizer
    else:
        tokenizer = editing.assets_tokenizer()
    caption = book_caption(request.text.title, request.text.description)
    enc = encode_prompt_report(tokenizer, caption, request.layout, fit_layout=True)
    return decode_prompt(tokenizer, enc.ids)


def diffuse(model, title, description, layout, steps, guidance, scheduler, seed):
    """One image from the shared pipeline, no typesetting (diffusion without boxes), at the canvas's shape."""
    from .shared import pipeline_for

    pipe = pipeline_for(model)
    w, h = cover_size(DEFAULT_SHAPE, pipe.image_size)  # the canvas's shape at the model's width
    h -= h % pipe.size_multiple
    return pipe(book_caption(title, description), layout, num_images=1, num_inference_steps=steps,
                guidance_scale=guidance, seed=seed, scheduler=scheduler, width=w, height=h)


def make_cover(mode, model, title, description, layout, steps, guidance, scheduler, seed) -> list:
    """One OCR-scored cover in `mode` (typeset never loads the pipeline)."""
    from .covers import CoverOptions, make_covers
    from .shared import pipeline_for

    pipe = None if mode == "typeset" else pipeline_for(model)
    options = CoverOptions(num_inference_steps=steps, guidance_scale=guidance, scheduler=scheduler)
    return make_covers(mode, layout, title, description, n=1, seed=seed, pipeline=pipe, options=options)


def unavailable_status(error: Exception) -> str:
    """The status line when the diffusion model cannot load: the cause and the mode that needs no weights."""
    return f"**The diffusion model could not be loaded:** {error} The 'typeset' mode works without weights."


def failure_notice(error: Exception) -> str:
    """One line for an unexpected failure (out of memory, a broken checkpoint), with a hint where one helps."""
    hint = " Try fewer images or steps." if "out of memory" in str(error).lower() else ""
    reason = str(error).splitlines()[0][:300] if str(error) else type(error).__name__
    return f"**Generation failed:** {reason}.{hint}"
