"""`python -m kordiff plan TITLE` prints a layout; `python -m kordiff generate --title T --out DIR` writes covers.

Defaults follow what works here (kordiff.capabilities: GPU, cached weights): without a GPU or weights, the
heuristic planner and the typeset mode, with one status line on stderr saying what is off and how to turn it on.
Planning never imports torch; models load only when a mode needs them.
"""

from __future__ import annotations

import argparse
import logging
import random
import shutil
import sys
import tempfile
from pathlib import Path

from .capabilities import Capabilities, startup_capabilities
from .config import MAX_IMAGES, MAX_SEED, GenerateConfig, add_dataclass_args, from_args
from .hub import BUSY_ART, ModelUnavailableError, first_line
from .layout import COVER_SIZES, DEFAULT_SHAPE, Layout, LayoutError, cover_size
from .modes import PLANNERS, decide, planner_help
from .plan_result import PlannerUnavailableError

logger = logging.getLogger("kordiff")


def _check_title(title: str, example: str) -> str:
    title = " ".join((title or "").split())
    if not title:
        raise ValueError(f"the title is empty: pass the book's title, e.g. python -m kordiff {example}")
    return title


def _caps(model: str = "td2") -> Capabilities:
    return startup_capabilities(model)  # logs its status line once per process when something is off


def _plan(planner: str | None, caps: Capabilities, title: str, description: str, subtitle: str, author: str,
          seed: int, shape: str = DEFAULT_SHAPE):
    """Plan with the chosen planner (default: what works here) for a cover of `shape`."""
    planner = planner or caps.default_planner
    if planner == "m1":
        from .planner import M1Planner  # warns what M1 costs on a CPU before loading it

        keywords = [t for t in (title, subtitle, author) if t]
        return M1Planner(seed=seed).plan(title, description, keywords)
    from .planner import HeuristicConfig, HeuristicPlanner

    # Grid cells are per axis, so line heights depend on the cover's aspect: the planner must know the shape.
    return HeuristicPlanner(seed=seed, config=HeuristicConfig(shape=shape)).plan(
        title, description, subtitle=subtitle or None, author=author or None)


def cmd_plan(args) -> int:
    title = _check_title(args.title, 'plan "별빛의 속삭임"')
    result = _plan(args.planner, _caps(), title, args.description, args.subtitle, args.author, args.seed, args.shape)
    for w in result.warnings:
        logger.warning("%s", w)
    print(result.layout.to_json())
    return 0


def _load(model: str, scheme: str):
    if model == BUSY_ART:
        from .evaluate import BusyArtPipeline

        return BusyArtPipeline()
    from .loading import load_pipeline

    pipe = load_pipeline(model, scheme=scheme)
    pipe.set_progress_bar_config(disable=False)
    return pipe


def _prompt_file(pipe, caption: str, layout: Layout) -> str | None:
    """The decoded conditioning prompt, and its warnings logged (None for stand-ins without a tokenizer)."""
    tokenizer = getattr(pipe, "tokenizer", None)
    if tokenizer is None:
        return None
    from .tokens import decode_prompt, encode_prompt_report

    enc = encode_prompt_report(tokenizer, caption, layout, fit_layout=True)  # as the pipeline encodes it
    for w in enc.warnings:
        logger.warning("%s", w)
    return decode_prompt(tokenizer, enc.ids) + "\n"


def _write_covers(args, cfg: GenerateConfig, title: str, work: Path) -> list[str]:
    """Everything `generate` writes, into `work`; returns the lines to print (file name + score)."""
    caps = _caps(cfg.model)
    mode = cfg.mode or caps.default_mode
    seed = cfg.seed if cfg.seed is not None else random.randint(0, MAX_SEED)
    if args.layout:
        layout = Layout.from_json(Path(args.layout).read_text(encoding="utf-8"))
    else:
        layout = _plan(args.planner, caps, title, args.description, args.subtitle, args.author, seed,
                       args.shape).layout
    decision = decide(mode, len(layout))
    for notice in decision.notices:
        logger.warning("%s", notice)
    (work / "layout.json").write_text(layout.to_json(), encoding="utf-8")
    from .layout import render_layout

    render_layout(layout, size=cover_size(args.shape)).save(work / "layout.png")
    pipe = _load(cfg.model, cfg.scheme) if decision.needs_pipeline else None
    from .tokens import book_caption

    caption = book_caption(title, args.description)
    if pipe is not None and decision.prompt_notices_apply:
        prompt = _prompt_file(pipe, caption, layout)
        if prompt:
            (work / "prompt.txt").write_text(prompt, encoding="utf-8")
    if decision.raw_pipeline:  # no boxes: nothing to place or OCR-score
        logger.warning("no text boxes: the cover is generated without a layout, so no title text is placed")
        out = pipe(caption, layout, num_images=cfg.num_images, num_inference_steps=cfg.steps,
                   guidance_scale=cfg.guidance_scale, seed=seed, scheduler=cfg.scheduler)
        seeds = getattr(out, "seeds", None) or [seed + i for i in range(len(out.images))]
        lines = []
        for image, s in zip(out.images, seeds):
            image.save(work / f"cover_seed{s}.png")
            lines.append(f"cover_seed{s}.png  not scored (no text boxes)")
        return lines
    from .covers import CoverOptions, make_covers

    options = CoverOptions(shape=args.shape, num_inference_steps=cfg.steps, guidance_scale=cfg.guidance_scale,
                           scheduler=cfg.scheduler)
    covers = make_covers(decision.mode, layout, title, args.description, n=cfg.num_images, seed=seed, pipeline=pipe,
                         best_of=cfg.best_of, options=options)
    lines = []
    for rank, cover in enumerate(covers, 1):
        name = f"cover{rank}_{cover.mode}_seed{cover.seed}.png"
        cover.image.save(work / name)
        score = f"OCR {cover.score.hypothesis!r} NED {cover.score.ned:.2f}" if cover.score else "not scored"
        lines.append(f"{name}  {score}")
        for note in cover.notes:
            logger.info("%s: %s", name, note)
    return lines


def cmd_generate(args) -> int:
    """Plan (or read) a layout and write covers; files appear in --out only when everything succeeded."""
    title = _check_title(args.title, 'generate --title "별빛의 속삭임" --out out/')
    cfg = from_args(GenerateConfig, args)
    if not 1 <= cfg.num_images <= MAX_IMAGES:
        raise ValueError(f"--num-images must be 1-{MAX_IMAGES}, got {cfg.num_images}")
    if cfg.steps < 1 or cfg.best_of < 1 or cfg.guidance_scale < 0:
        raise ValueError("--steps and --best-of must be >= 1 and --guidance-scale >= 0")
    dest = Path(args.out)
    if dest.exists() and not dest.is_dir():
        raise ValueError(f"--out {str(dest)!r} is a file, not a directory")
    work = Path(tempfile.mkdtemp(prefix="kordiff-generate-"))
    try:
        lines = _write_covers(args, cfg, title, work)
        dest.mkdir(parents=True, exist_ok=True)
        for path in sorted(work.iterdir()):
            shutil.move(str(path), dest / path.name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for line in lines:
        print(dest / line)
    return 0


def _text_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--description", default="", help="what the cover shows, English or Korean (default: none)")
    p.add_argument("--subtitle", default="", help="subtitle placed under the title (default: none)")
    p.add_argument("--author", default="", help="author line (default: none)")
    p.add_argument("--planner", choices=PLANNERS, default=None,
                   help=f"layout planner: {planner_help()} (default: detected at start-up: m1 with a GPU and its "
                        "weights, else heuristic)")
    p.add_argument("--shape", choices=sorted(COVER_SIZES), default=DEFAULT_SHAPE,
                   help=f"cover shape: portrait (2:3, {'x'.join(map(str, COVER_SIZES['portrait']))}, a Korean book) "
                        f"or square ({'x'.join(map(str, COVER_SIZES['square']))}, TD2's native shape) "
                        f"(default: {DEFAULT_SHAPE})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kordiff", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="{plan,generate}")
    plan = sub.add_parser("plan", help="print the planned layout JSON for a title",
                          description="Print the planned layout (JSON, 128x128 grid) for a title.")
    plan.add_argument("title", help="the book's title (Korean or Latin)")
    _text_args(plan)
    plan.add_argument("--seed", type=int, default=0, help="placement seed (top / centre / bottom) (default: 0)")
    plan.set_defaults(func=cmd_plan)
    gen = sub.add_parser("generate", help="generate covers (writes images, layout.json/png, prompt.txt)",
                         description="Generate covers into --out (written only when every cover succeeded).")
    gen.add_argument("--title", required=True, help="the book's title (Korean or Latin)")
    _text_args(gen)
    gen.add_argument("--layout", help="layout JSON file to use instead of planning one (default: plan)")
    gen.add_argument("--out", required=True, help="output directory (created; files of the same name are replaced)")
    add_dataclass_args(gen, GenerateConfig)
    gen.set_defaults(func=cmd_generate)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ModelUnavailableError, PlannerUnavailableError, LayoutError, ValueError, OSError, MemoryError) as e:
        print(f"error: {first_line(e, 1000)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
