"""kordiff demo: Korean book title -> planned text boxes on an editable canvas -> layout-conditioned covers."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from kordiff.assets import font_path
from kordiff.capabilities import startup_capabilities
from kordiff.config import add_dataclass_args, from_args
from kordiff.hub import BASELINE, M1_REPO, TINY, ModelUnavailableError
from kordiff.modes import MODES, PLANNERS, mode_help


def _lazy(name: str):
    """Import `name` on first attribute use (stdlib LazyLoader): `python app.py --help` never loads gradio (~15 s)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = sys.modules[name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gr = _lazy("gradio")
editing = _lazy("kordiff.editing")  # the CLIP tokenizer and PIL: only once a request needs them
service = _lazy("kordiff.service")  # what the handlers do, without the UI
logger = logging.getLogger("kordiff.app")
EXAMPLES = [  # the seed report's benchmark titles: (title, author, description)
    ["마음의 바다", "김하늘", "a calm sea at dawn"], ["잃어버린 시간", "", "an old clock in the fog, watercolor"],
    ["바람이 머무는 곳", "", ""], ["작은 행복의 발견", "", "warm pastel illustration"],
    ["달빛 아래 춤을", "", "night sky, dancers"], ["끝없는 여정", "", ""], ["별빛의 속삭임", "", "starry sky"],
    ["The Silent Forest", "J. Kelley", "misty forest"], ["Beyond the Horizon", "", "sunrise over the sea"],
]
FONT = font_path("sans")
# The canvas draws labels in "Arial": lend it the shipped Hangul font so labels are readable without system fonts.
CSS = "\n".join(f"@font-face {{ font-family: '{family}'; src: url('gradio_api/file={FONT}') format('truetype'); "
                "unicode-range: U+1100-11FF, U+3130-318F, U+AC00-D7A3; }" for family in ("KorDiff Hangul", "Arial"))
CSS += "\n" + (Path(__file__).parent / "app.css").read_text(encoding="utf-8")  # the styles that need no path
LAUNCH_KWARGS = {"css": CSS, "allowed_paths": [str(FONT.parent)], "max_file_size": "2mb",
                 "head": f"<link rel='preload' href='gradio_api/file={FONT}' as='font' crossorigin>"}
# The canvas starts in "create" mode when it has no boxes: every drag would draw a box. Start in move mode.
DRAG_MODE_JS = """() => { const go = (n) => {
  const b = document.querySelector("#canvas button[aria-label='Drag boxes']");
  if (b) b.click(); else if (n > 0) setTimeout(() => go(n - 1), 200); }; go(50); }"""


@dataclass(frozen=True)
class AppConfig:
    """What the app serves; each field is a `--flag` and a `KORDIFF_<FIELD>` environment variable."""

    model: str = field(default=BASELINE, metadata={
        "help": f"'{BASELINE}' (TD2 baseline), '{TINY}', a saved kordiff pipeline directory or Hub id"})
    planner: str | None = field(default=None, metadata={
        "help": "default layout planner (default: m1 with a GPU and its weights, else heuristic)",
        "choices": list(PLANNERS)})
    mode: str | None = field(default=None, metadata={
        "help": f"default cover mode (default: hybrid with a GPU and weights, else typeset). {mode_help()}",
        "choices": list(MODES)})
    m1_model: str = field(default=M1_REPO, metadata={"help": "Hub id or local directory of TD2's M1 planner"})
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


class CoverApp:
    """The UI's handlers; models are shared and loaded on first use, everything per-user lives in the UI."""

    def __init__(self, config: AppConfig):
        self.caps = startup_capabilities(config.model)
        self.config = replace(config, planner=config.planner or self.caps.default_planner,
                              mode=config.mode or self.caps.default_mode)
        self.status = _md(self.caps.status or "Everything is on: GPU, diffusion weights and the M1 planner.")

    def plan(self, title, subtitle, author, description, planner, mode="typeset"):
        """Title (+ subtitle, author) -> (canvas, table, planner output, notices, planned layout for Reset)."""
        try:
            text, decision = service.read_plan(title, subtitle, author, description, planner, mode)
        except ValueError as e:
            return gr.skip(), gr.skip(), gr.skip(), _notify([f"**Error:** {e}"]), gr.skip()
        cfg = self.config
        out = service.plan_layout(text, planner, decision, cfg.model, cfg.m1_model, cfg.m1_quantization,
                                  m1_notice=self.caps.planner_notice("m1"))
        return (_canvas(out.layout), editing.layout_to_rows(out.layout), out.raw, _notify(out.notices),
                out.layout.to_dict())

    def edit_boxes(self, canvas, table, seen=None):
        """Canvas edited -> (table, canvas, notices, seen): new boxes moved after the title, the table redrawn."""
        boxes = canvas.get("boxes") if isinstance(canvas, dict) else None
        if not isinstance(boxes, list):
            return [], gr.skip(), _notify(["The canvas is empty: plan again or add rows to the table."]), None
        edit = editing.canvas_edit(boxes, table, seen)
        canvas_out = _canvas(edit.layout) if edit.redraw else gr.skip()
        if not edit.changed:
            return gr.skip(), canvas_out, gr.skip(), edit.signature  # a no-op (e.g. Plan redrew the canvas)
        return editing.layout_to_rows(edit.layout), canvas_out, _notify(edit.notices), edit.signature

    def edit_table(self, table):
        """Table edited -> (canvas, table redrawn when it showed anything but the layout, notices)."""
        edit = editing.rows_to_layout(table)
        rows = editing.layout_to_rows(edit.layout) if editing.table_needs_redraw(table, edit.layout) else gr.skip()
        return _canvas(edit.layout), rows, _notify(edit.notices)

    def reset(self, planned: dict | None):
        """Back to the last planned layout."""
        from kordiff.layout import Layout

        layout = Layout.from_dict(planned) if planned else Layout()
        notices = [] if planned else ["Nothing planned yet: type a title and click 'Plan layout'."]
        return _canvas(layout), editing.layout_to_rows(layout), _notify(notices)

    def generate(self, title, description, table, num_images, steps, guidance, scheduler, seed, randomise,
                 mode="typeset"):
        """Title + table -> yields (gallery, layout preview, prompt, notices, seed, details, status), image by image."""
        try:
            req = service.read_request(title, description, table, num_images, steps, guidance, scheduler, seed,
                                       randomise, mode, gpu=self.caps.gpu)
        except ValueError as e:  # a ModeError too
            yield _failed([f"**Error:** {e}"])
            return
        notices = list(req.notices)
        try:
            notices += service.mode_notices(req.decision, req.text, req.layout, self.config.model)
            shown = _notify(notices)
            for step in service.cover_steps(req, self.config.model, make_cover=_make_cover, diffuse=_diffuse):
                prompt = gr.skip() if step.prompt is None else step.prompt  # the last yield carries every output
                yield step.gallery, step.preview, prompt, shown, req.seed, step.details, gr.skip(), gr.skip()
        except ModelUnavailableError as e:
            logger.warning("model unavailable: %s", str(e).splitlines()[0])
            status = _md(service.unavailable_status(e))
            yield _failed([*notices, f"**Error:** {e}"], status=status, offer_typeset=True)
        except Exception as e:  # out of memory, a broken checkpoint: the reason on the page, the trace in the log
            logger.exception("generation failed")
            yield _failed([*notices, service.failure_notice(e)])


try:  # ZeroGPU on Hugging Face Spaces: a GPU is attached only while a decorated function runs
    import spaces

    gpu = spaces.GPU(duration=120)
except ImportError:
    def gpu(fn):
        return fn


@gpu
def _diffuse(*args):  # plain arguments only: on ZeroGPU this runs in a forked worker
    return service.diffuse(*args)


@gpu
def _make_cover(*args):
    return service.make_cover(*args)


def _failed(notices: list[str], status=None, offer_typeset=False):
    out = (gr.skip(), gr.skip(), gr.skip(), _notify(notices), gr.skip(), gr.skip(), status or gr.skip())
    return out + (gr.update(visible=True),) if offer_typeset else out + (gr.skip(),)


def _canvas(layout) -> dict:
    return {"image": editing.blank_cover(), "boxes": editing.layout_to_boxes(layout)}


def _notify(notices) -> str:
    """Notices, each once, as a toast (in the UI) and a markdown list that stays until the next action."""
    notices = editing.dedupe(notices)
    for n in notices:
        gr.Warning(n.replace("**", ""))
    return "\n".join(f"- {_md(n)}" for n in notices)


def _md(text: str) -> str:
    return text.replace("~", "\\~")  # "~4 GB ... ~1 GB" is not strikethrough


def _annotator(**kwargs):
    """The canvas, reading only the boxes of its payload: no image decoding, no crash on malformed boxes."""
    from gradio_image_annotation import image_annotator

    canvas = image_annotator(**kwargs)

    def boxes_only(payload):  # an instance wrapper: a subclass would lose the component's frontend files
        if payload is None:
            return None
        boxes = payload.boxes if isinstance(payload.boxes, list) else []
        return {"image": None, "boxes": boxes[: editing.MAX_CELLS + 1], "orientation": 0}

    canvas.preprocess = boxes_only
    return canvas


def build_demo(config: AppConfig) -> gr.Blocks:
    """The Blocks app for a config; nothing is loaded until a request needs it."""
    app = CoverApp(config)
    cfg = app.config
    with gr.Blocks(title="kordiff: Korean book covers", delete_cache=(3600, 3600)) as demo:
        demo.cover_app = app  # for tests and debugging: the handlers behind this demo
        gr.Markdown("# kordiff: 한국어 책 표지\nType a title, plan the text boxes, edit them on the cover, generate.")
        status = gr.Markdown(app.status, elem_id="status")  # what works here; stays on the page
        planned, seen = gr.State(None), gr.State(None)  # per session: the last plan (Reset), a pending new box
        with gr.Row():
            with gr.Column(scale=1, min_width=320):
                title = gr.Textbox(label="Title (제목)", elem_id="title")
                with gr.Row():
                    subtitle = gr.Textbox(label="Subtitle (optional)", min_width=120)
                    author = gr.Textbox(label="Author (optional)", elem_id="author", min_width=120)
                description = gr.Textbox(label="Cover description (optional)", lines=1)
                planner = gr.Radio(list(PLANNERS), value=cfg.planner, label="Layout planner")
                plan_btn = gr.Button("Plan layout", variant="primary", elem_id="plan")
                with gr.Accordion("Example titles", open=False):
                    gr.Examples(EXAMPLES, [title, author, description], cache_examples=False,
                                examples_per_page=len(EXAMPLES), label="Titles from the seed report")
                with gr.Accordion("Planner output", open=False):
                    raw = gr.Code(label="Raw planner output", language=None, elem_id="raw")
            with gr.Column(scale=1, min_width=320):
                canvas = _annotator(value=_canvas(editing.Layout()), label="Text boxes (drag to move, C: new box, "
                                    "double-click: edit text, bin or Del: delete)", sources=[], elem_id="canvas",
                                    show_clear_button=False, show_download_button=False, show_remove_button=True,
                                    box_min_size=4, boxes_alpha=0.2)
                table = gr.Dataframe(headers=list(editing.TABLE_COLUMNS), datatype=["str"] + ["number"] * 4,
                                     type="array", column_count=5, interactive=True, elem_id="table",
                                     label=f"Boxes on the 128 grid (at most {editing.MAX_BOXES})",
                                     column_widths=["44%", "14%", "14%", "14%", "14%"])
                reset_btn = gr.Button("Reset to planned layout")
        notices = gr.Markdown(elem_id="notices")  # the last action's notices, until the next action
        with gr.Row():
            with gr.Column(scale=1, min_width=320):
                mode = gr.Radio(list(MODES), value=cfg.mode, label="Mode", info=mode_help(), elem_id="mode")
                num_images = gr.Slider(1, service.MAX_IMAGES, value=2, step=1, label="Number of images",
                                       elem_id="num_images")
                steps = gr.Slider(1, service.MAX_STEPS if app.caps.gpu else 50, value=20, step=1, label="Steps",
                                  elem_id="steps")
                guidance = gr.Slider(0, service.MAX_GUIDANCE, value=7.5, step=0.5, label="Guidance scale")
                scheduler = gr.Dropdown(list(service.SCHEDULERS), value="ddpm", label="Scheduler")
                with gr.Row():
                    seed = gr.Number(0, precision=0, minimum=0, maximum=service.MAX_SEED, label="Seed",
                                     elem_id="seed")
                    randomise = gr.Checkbox(True, label="Randomise seed", elem_id="randomise")
                typeset_btn = gr.Button("Generate", variant="primary", elem_id="generate-typeset",
                                        elem_classes="generate", visible=cfg.mode == "typeset")
                gen_btn = gr.Button("Generate", variant="primary", elem_id="generate", elem_classes="generate",
                                    visible=cfg.mode != "typeset")
                switch_btn = gr.Button("Switch to typeset mode (no weights needed) and generate", visible=False)
            with gr.Column(scale=2, min_width=320):
                gallery = gr.Gallery(label="Covers", columns=4, fit_columns=False, height=460, object_fit="contain",
                                     format="png", buttons=["download"], elem_id="gallery")
                details = gr.Markdown(elem_id="details")  # full captions: seed, mode, what OCR read
                with gr.Accordion("Intermediate results", open=False, elem_id="intermediate"):
                    preview = gr.Image(label="Layout", type="pil", format="png", height=320)
                    prompt = gr.Textbox(label="Conditioning prompt (decoded)", lines=3, elem_id="prompt")

        demo.load(None, js=DRAG_MODE_JS)
        plan_in = [title, subtitle, author, description, planner, mode]
        plan_out = [canvas, table, raw, notices, planned]
        plan_btn.click(app.plan, plan_in, plan_out, api_name="plan", concurrency_id="plan",
                       concurrency_limit=cfg.concurrency)
        title.submit(app.plan, plan_in, plan_out, api_visibility="private", concurrency_id="plan")
        canvas.change(app.edit_boxes, [canvas, table, seen], [table, canvas, notices, seen], api_name="edit_boxes",
                      trigger_mode="always_last", show_progress="hidden", concurrency_limit=None)
        table.input(app.edit_table, [table], [canvas, table, notices], api_name="edit_table",
                    trigger_mode="always_last", show_progress="hidden", concurrency_limit=None)
        reset_btn.click(app.reset, [planned], [canvas, table, notices], api_name="reset")
        gen_in = [title, description, table, num_images, steps, guidance, scheduler, seed, randomise, mode]
        gen_out = [gallery, preview, prompt, notices, seed, details, status, switch_btn]
        # Typeset covers take ~0.1 s: their own queue, never behind a diffusion job.
        typeset_btn.click(app.generate, gen_in, gen_out, api_name="generate_typeset", concurrency_id="typeset",
                          concurrency_limit=4, trigger_mode="once")
        gen_btn.click(app.generate, gen_in, gen_out, api_name="generate", concurrency_id="gpu",
                      concurrency_limit=cfg.concurrency, trigger_mode="once")
        mode.change(lambda m: (gr.update(visible=m == "typeset"), gr.update(visible=m != "typeset")), [mode],
                    [typeset_btn, gen_btn], api_visibility="private", queue=False)
        switch_btn.click(lambda: ("typeset", gr.update(visible=False)), None, [mode, switch_btn],
                         api_visibility="private", queue=False).then(
            app.generate, gen_in, gen_out, api_visibility="private", concurrency_id="typeset")
        gallery.select(_selected, None, details, api_visibility="private", queue=False)
    return demo


def _selected(evt: gr.SelectData) -> str:
    return f"**Selected:** {(evt.value or {}).get('caption') or ''}"


def main(argv: list[str] | None = None) -> None:
    p = add_dataclass_args(argparse.ArgumentParser(description=__doc__), AppConfig)
    p.set_defaults(**asdict(AppConfig.from_env()))
    p.add_argument("--tiny", action="store_true", help=f"same as --model {TINY} (UI development, smoke tests)")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"), help="address to serve on")
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)), help="port")
    p.add_argument("--share", action="store_true", help="a temporary public gradio.live link")
    args = p.parse_args(argv)  # before gradio is imported: --help answers at once
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = replace(from_args(AppConfig, args), model=TINY if args.tiny else args.model,
                     concurrency=max(1, args.concurrency))
    if os.environ.get("SPACES_ZERO_GPU"):  # ZeroGPU forks per call: load in the main process or reload every call
        from kordiff.shared import preload

        preload(config.model, config.m1_model if config.planner == "m1" else None, config.m1_quantization)
    demo = build_demo(config)
    demo.queue(max_size=64).launch(server_name=args.host, server_port=args.port, share=args.share, **LAUNCH_KWARGS)


def __getattr__(name: str):
    """`app.demo` (for `gradio app.py` and Spaces), built on first use so importing app.py stays fast."""
    if name == "demo":
        globals()["demo"] = build_demo(AppConfig.from_env())
        return globals()["demo"]
    raise AttributeError(name)


if __name__ == "__main__":
    main()
