"""kordiff demo: Korean book title -> planned text boxes on an editable canvas -> layout-conditioned covers."""

from __future__ import annotations

import argparse
import logging
import os
import random
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace

import gradio as gr
from gradio_image_annotation import image_annotator

import kordiff
from kordiff import editing
from kordiff.assets import font_path
from kordiff.config import add_dataclass_args, from_args
from kordiff.loading import BASELINE, TINY
from kordiff.pipeline import MAX_IMAGES, SCHEDULERS
from kordiff.planner import M1_MODEL_ID, HeuristicPlanner, PlannerUnavailableError
from kordiff.shared import loaded_pipeline, m1_for, pipeline_for

try:  # ZeroGPU on Hugging Face Spaces: a GPU is attached only while a decorated function runs
    import spaces

    gpu = spaces.GPU(duration=120)
except ImportError:
    def gpu(fn):
        return fn

logger = logging.getLogger("kordiff.app")

PLANNERS = ("m1", "heuristic")
MODES = ("diffusion", "hybrid", "typeset")  # kordiff.covers: OCR-scored covers; typeset needs no weights
MAX_STEPS, MAX_GUIDANCE, MAX_SEED = 150, 30.0, 2**31 - 1
EXAMPLES = [  # the seed report's benchmark titles: (title, author, description)
    ["마음의 바다", "김하늘", "a calm sea at dawn"], ["잃어버린 시간", "", "an old clock in the fog, watercolor"],
    ["바람이 머무는 곳", "", ""], ["작은 행복의 발견", "", "warm pastel illustration"],
    ["달빛 아래 춤을", "", "night sky, dancers"], ["끝없는 여정", "", ""], ["별빛의 속삭임", "", "starry sky"],
    ["The Silent Forest", "J. Kelley", "misty forest"], ["Whispering Shadows", "T.F. Powys", ""],
    ["The Forgotten Key", "", ""], ["Echoes of the Past", "", ""], ["Beyond the Horizon", "", "sunrise over the sea"],
]
TRACK_TQDM = gr.Progress(track_tqdm=True)  # gradio gives each request its own tracker modelled on this default


BLANK = editing.blank_cover()
FONT = font_path("sans")
HANGUL_RANGE = "U+1100-11FF, U+3130-318F, U+AC00-D7A3"
# The canvas draws labels in "Arial": lend it the shipped Hangul font so labels are readable without system fonts.
CSS = "\n".join(f"@font-face {{ font-family: '{family}'; src: url('gradio_api/file={FONT}') format('truetype'); "
                f"unicode-range: {HANGUL_RANGE}; }}" for family in ("KorDiff Hangul", "Arial")) + """
.gradio-container { font-family: 'KorDiff Hangul', var(--font), 'NanumSquare', 'Noto Sans CJK KR', sans-serif; }
"""
LAUNCH_KWARGS = {"css": CSS, "allowed_paths": [str(FONT.parent)],
                 "head": f"<link rel='preload' href='gradio_api/file={FONT}' as='font' crossorigin>"}


@dataclass(frozen=True)
class AppConfig:
    """What the app serves; each field is a `--flag` and a `KORDIFF_<FIELD>` environment variable."""

    model: str = field(default=BASELINE, metadata={
        "help": f"'{BASELINE}' (TD2 baseline), '{TINY}', a saved kordiff pipeline directory or Hub id"})
    planner: str = field(default="m1", metadata={"help": "default layout planner", "choices": list(PLANNERS)})
    m1_model: str = field(default=M1_MODEL_ID, metadata={"help": "Hub id or local directory of TD2's M1 planner"})
    m1_quantization: str | None = field(default=None, metadata={
        "help": "load M1 in 8/4 bit (bitsandbytes) to leave GPU memory for the pipeline (fp16 M1: 13.5 GB)",
        "choices": ["8bit", "4bit"]})
    concurrency: int = field(default=1, metadata={
        "help": "generations at once: one batch of 8 fits a 24 GB GPU beside an fp16 M1"})

    @classmethod
    def from_env(cls) -> AppConfig:
        values = {f.name: os.environ.get(f"KORDIFF_{f.name.upper()}") for f in fields(cls)}
        values = {k: (int(v) if k == "concurrency" else v) for k, v in values.items() if v}
        return cls(**values)


@gpu
def _plan_m1(title: str, description: str, keywords: list[str], model: str, quantization: str | None):
    return m1_for(model, quantization).plan(title, description, keywords)


@contextmanager
def _failures_explained():
    try:
        yield
    except Exception as e:  # out of memory, a broken checkpoint, ...: one message in the UI, the trace in the log
        logger.exception("generation failed")
        hint = " Try fewer images." if "out of memory" in str(e).lower() else ""
        reason = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
        raise gr.Error(f"Generation failed: {reason}.{hint}", print_exception=False) from None


@gpu
def _generate(model, title, description, layout, num_images, steps, guidance, scheduler, seed):
    pipe = pipeline_for(model)
    with _failures_explained():
        return pipe(kordiff.book_caption(title, description), layout, num_images=num_images,
                    num_inference_steps=steps, guidance_scale=guidance, seed=seed, scheduler=scheduler)


@gpu
def _covers(mode, model, title, description, layout, num_images, steps, guidance, scheduler, seed):
    from kordiff.covers import CoverOptions, make_covers

    pipe = None if mode == "typeset" else pipeline_for(model)
    options = CoverOptions(num_inference_steps=steps, guidance_scale=guidance, scheduler=scheduler)
    with _failures_explained():
        return make_covers(mode, layout, title, description, n=num_images, seed=seed, pipeline=pipe, options=options)


class CoverApp:
    """The UI's handlers; models are shared and loaded on first use, everything per-user lives in the UI."""

    def __init__(self, config: AppConfig):
        self.config = config

    def tokenizer(self):
        """The loaded pipeline's tokenizer, else the shipped CLIP BPE with Hangul (notices before loading)."""
        pipe = loaded_pipeline(self.config.model)
        return pipe.tokenizer if pipe is not None else editing.assets_tokenizer()

    def plan(self, title: str, subtitle: str, author: str, description: str, planner: str):
        """Title (+ subtitle, author) -> (canvas, table, planner output, notices, planned layout for Reset)."""
        with _explained():
            title, description = editing.check_text(title, description)
            subtitle, author = editing.check_line("subtitle", subtitle), editing.check_line("author", author)
        notices, result = [], None
        if planner == "m1":
            try:
                keywords = [t for t in (title, subtitle, author) if t]
                result = _plan_m1(title, description, keywords, self.config.m1_model, self.config.m1_quantization)
            except PlannerUnavailableError as e:
                notices.append(f"M1 planner unavailable ({e}); used the heuristic planner.")
        result = result or HeuristicPlanner(seed=0).plan(title, description, subtitle=subtitle, author=author)
        layout = result.layout
        notices += list(result.warnings) + editing.prompt_notices(self.tokenizer(), title, description, layout)
        raw = f"# planner: {result.source}\n{result.raw_text}"
        return (_canvas(layout), editing.layout_to_rows(layout), raw, _notify(notices), layout.to_dict())

    def edit_boxes(self, canvas: dict | None, table):
        """Canvas edited -> table (left alone when it already holds the same layout, so half-typed rows survive)."""
        if canvas is None:
            return [], _notify(["The canvas was cleared: no text boxes. Plan again or add rows to the table."])
        edit = editing.boxes_to_layout(canvas.get("boxes"))
        if edit.layout == editing.rows_to_layout(table).layout:
            return gr.skip(), _notify(edit.notices)
        return editing.layout_to_rows(edit.layout), _notify(edit.notices)

    def edit_table(self, table):
        """Table edited -> canvas."""
        edit = editing.rows_to_layout(table)
        return _canvas(edit.layout), _notify(edit.notices)

    def reset(self, planned: dict | None):
        """Back to the last planned layout."""
        layout = kordiff.Layout.from_dict(planned) if planned else kordiff.Layout()
        notices = [] if planned else ["Nothing planned yet: type a title and click 'Plan layout'."]
        return _canvas(layout), editing.layout_to_rows(layout), _notify(notices)

    def generate(self, title, description, table, num_images, steps, guidance, scheduler, seed, randomise,
                 mode="diffusion", progress=TRACK_TQDM):
        """Title + table of boxes -> (gallery of (image, caption with seed), layout preview, prompt, notices, seed)."""
        with _explained():
            title, description = editing.check_text(title, description)
            num_images = editing.check_number("Number of images", num_images, 1, MAX_IMAGES, integer=True)
            steps = editing.check_number("Steps", steps, 1, MAX_STEPS, integer=True)
            guidance = editing.check_number("Guidance scale", guidance, 0.0, MAX_GUIDANCE)
            if scheduler not in SCHEDULERS:
                raise ValueError(f"Unknown scheduler {scheduler!r}; choose one of {', '.join(SCHEDULERS)}.")
            if mode not in MODES:
                raise ValueError(f"Unknown mode {mode!r}; choose one of {', '.join(MODES)}.")
            seed = random.randint(0, MAX_SEED) if randomise else editing.check_number("Seed", seed, 0, MAX_SEED, True)
        edit = editing.rows_to_layout(table)
        notices = list(edit.notices)
        if mode == "typeset" and not len(edit.layout):
            raise gr.Error("The 'typeset' mode sets the text of the boxes: plan a layout or add a row to the table.",
                           print_exception=False)
        if mode == "hybrid" and not len(edit.layout):
            notices.append("The 'hybrid' mode needs text boxes; generated with 'diffusion' instead.")
            mode = "diffusion"
        tokenizer = editing.assets_tokenizer()
        if mode != "typeset":
            progress(0, desc="Loading the model (first request only)")
            try:
                tokenizer = pipeline_for(self.config.model).tokenizer
            except kordiff.ModelUnavailableError as e:
                hint = " The 'typeset' mode works without weights."
                raise gr.Error(f"{e} Planning and editing still work without it.{hint}", title="Model unavailable",
                               print_exception=False) from None
        notices += editing.prompt_notices(tokenizer, title, description, edit.layout)
        args = (self.config.model, title, description, edit.layout, num_images, steps, guidance, scheduler, seed)
        if mode == "diffusion" and not len(edit.layout):  # nothing for OCR to score
            out = _generate(*args)
            gallery = [(img, f"seed {s}") for img, s in zip(out.images, out.seeds)]
        else:  # kordiff.covers: OCR-scored covers, and the typeset/hybrid modes
            gallery = [(c.image, _cover_caption(c)) for c in _covers(mode, *args)]
        enc = kordiff.encode_prompt_report(tokenizer, kordiff.book_caption(title, description), edit.layout,
                                           fit_layout=True)
        preview = kordiff.render_layout(edit.layout, size=editing.CANVAS_SIZE)
        return gallery, preview, kordiff.decode_prompt(tokenizer, enc.ids), _notify(notices), seed


@contextmanager
def _explained():
    """Invalid input (ValueError with a user-facing message) -> one gr.Error for the UI and API clients."""
    try:
        yield
    except ValueError as e:
        raise gr.Error(str(e), print_exception=False) from None


def _cover_caption(cover) -> str:
    score = cover.score
    if score is None:
        return f"seed {cover.seed} · {cover.mode}"
    return f"seed {cover.seed} · {cover.mode} · OCR read {score.hypothesis.strip()!r}, similarity {score.ned:.2f}"


def _canvas(layout: kordiff.Layout) -> dict:
    return {"image": BLANK, "boxes": editing.layout_to_boxes(layout)}


def _notify(notices) -> str:
    """Notices as a toast each (in the UI) and a markdown list (in the UI and for API clients)."""
    for n in notices:
        gr.Warning(n)
    return "\n".join(f"- {n}" for n in notices)


def build_demo(config: AppConfig) -> gr.Blocks:
    """The Blocks app for a config; nothing is loaded until a request needs it."""
    app = CoverApp(config)
    with gr.Blocks(title="kordiff: Korean book covers") as demo:
        demo.cover_app = app  # for tests and debugging: the handlers behind this demo
        gr.Markdown("# kordiff: 한국어 책 표지\nType a title, plan the text boxes, edit them on the cover, generate.")
        planned = gr.State(None)  # per session: the last plan, for "Reset to planned layout"
        with gr.Row():
            with gr.Column(scale=1):
                title = gr.Textbox(label="Title (제목)", max_length=editing.MAX_TITLE_CHARS, elem_id="title")
                with gr.Row():
                    subtitle = gr.Textbox(label="Subtitle (optional)", max_length=editing.MAX_TITLE_CHARS)
                    author = gr.Textbox(label="Author (optional)", max_length=editing.MAX_TITLE_CHARS,
                                        elem_id="author")
                description = gr.Textbox(label="Cover description (optional)", lines=2,
                                         max_length=editing.MAX_DESCRIPTION_CHARS)
                planner = gr.Radio(list(PLANNERS), value=config.planner, label="Layout planner")
                plan_btn = gr.Button("Plan layout", variant="primary", elem_id="plan")
                gr.Examples(EXAMPLES, [title, author, description], cache_examples=False,
                            examples_per_page=len(EXAMPLES), label="Titles from the seed report")
                with gr.Accordion("Planner output and warnings", open=False):
                    raw = gr.Code(label="Raw planner output", language=None, elem_id="raw")
            with gr.Column(scale=1):
                canvas = image_annotator(_canvas(kordiff.Layout()), label="Text boxes (drag, resize, C: new box, "
                                         "double-click: edit text, Del: delete)", sources=[], show_clear_button=False,
                                         show_download_button=False, box_min_size=4, boxes_alpha=0.2, elem_id="canvas")
                table = gr.Dataframe(headers=list(editing.TABLE_COLUMNS), datatype=["str"] + ["number"] * 4,
                                     type="array", column_count=5, interactive=True, label="Boxes on the 128 grid",
                                     elem_id="table")
                reset_btn = gr.Button("Reset to planned layout")
        notices = gr.Markdown(elem_id="notices")  # what was clipped, cut or left out, for the last action
        with gr.Row():
            with gr.Column(scale=1):
                num_images = gr.Slider(1, MAX_IMAGES, value=2, step=1, label="Number of images", elem_id="num_images")
                steps = gr.Slider(1, MAX_STEPS, value=20, step=1, label="Steps", elem_id="steps")
                guidance = gr.Slider(0, MAX_GUIDANCE, value=7.5, step=0.5, label="Guidance scale")
                scheduler = gr.Dropdown(list(SCHEDULERS), value="ddpm", label="Scheduler")
                with gr.Row():
                    seed = gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed", elem_id="seed")
                    randomise = gr.Checkbox(True, label="Randomise seed", elem_id="randomise")
                mode = gr.Radio(list(MODES), value="diffusion", label="Mode (typeset: exact title, no weights)")
                gen_btn = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Column(scale=2):
                gallery = gr.Gallery(label="Covers", columns=4, fit_columns=False, height=420, object_fit="contain",
                                     format="png", buttons=["download"], elem_id="gallery")
                with gr.Accordion("Intermediate results", open=False, elem_id="intermediate"):
                    preview = gr.Image(label="Layout", type="pil", format="png", height=320)
                    prompt = gr.Textbox(label="Conditioning prompt (decoded)", lines=3, elem_id="prompt")

        plan_in, plan_out = [title, subtitle, author, description, planner], [canvas, table, raw, notices, planned]
        plan_btn.click(app.plan, plan_in, plan_out, api_name="plan", concurrency_limit=config.concurrency,
                       concurrency_id="plan")
        title.submit(app.plan, plan_in, plan_out, api_visibility="private", concurrency_id="plan")
        canvas.change(app.edit_boxes, [canvas, table], [table, notices], api_name="edit_boxes",
                      trigger_mode="always_last", show_progress="hidden")
        table.input(app.edit_table, [table], [canvas, notices], api_name="edit_table", trigger_mode="always_last",
                    show_progress="hidden")
        reset_btn.click(app.reset, [planned], [canvas, table, notices], api_name="reset")
        gen_btn.click(app.generate, [title, description, table, num_images, steps, guidance, scheduler, seed,
                                     randomise, mode], [gallery, preview, prompt, notices, seed], api_name="generate",
                      concurrency_limit=config.concurrency, concurrency_id="gpu")
    return demo


demo = build_demo(AppConfig.from_env())


def main(argv: list[str] | None = None) -> None:
    p = add_dataclass_args(argparse.ArgumentParser(description=__doc__), AppConfig)
    p.set_defaults(**asdict(AppConfig.from_env()))
    p.add_argument("--tiny", action="store_true", help=f"same as --model {TINY} (UI development, smoke tests)")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    p.add_argument("--share", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = replace(from_args(AppConfig, args), model=TINY if args.tiny else args.model,
                     concurrency=max(1, args.concurrency))
    if os.environ.get("SPACES_ZERO_GPU"):  # ZeroGPU forks per call: load in the main process or reload every call
        try:
            pipeline_for(config.model)
            if config.planner == "m1":
                m1_for(config.m1_model, config.m1_quantization).load()
        except (kordiff.ModelUnavailableError, PlannerUnavailableError) as e:
            logger.error("%s", e)
    app = build_demo(config)
    app.queue(max_size=64).launch(server_name=args.host, server_port=args.port, share=args.share, **LAUNCH_KWARGS)


if __name__ == "__main__":
    main()
