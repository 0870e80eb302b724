"""`python -m kordiff plan TITLE` prints a layout; `python -m kordiff generate --title T --out DIR` writes covers."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .config import GenerateConfig, add_dataclass_args, from_args
from .layout import Layout, LayoutError, render_layout
from .loading import ModelUnavailableError
from .pipeline import SCHEDULERS


def _planner(name: str, seed: int):
    from . import planner

    return planner.M1Planner(seed=seed) if name == "m1" else planner.HeuristicPlanner(seed=seed)


def cmd_plan(args) -> int:
    result = _planner(args.planner, args.seed).plan(args.title, args.description)
    for w in result.warnings:
        logging.warning(w)
    print(result.layout.to_json())
    return 0


def cmd_generate(args) -> int:
    from .loading import load_pipeline
    from .tokens import book_caption

    cfg = from_args(GenerateConfig, args)
    if args.layout:
        layout = Layout.from_json(Path(args.layout).read_text(encoding="utf-8"))
    else:
        layout = _planner(args.planner, cfg.seed or 0).plan(args.title, args.description).layout
    dest = Path(args.out)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "layout.json").write_text(layout.to_json(), encoding="utf-8")
    render_layout(layout, size=512).save(dest / "layout.png")
    pipe = None
    if cfg.mode != "typeset":
        pipe = load_pipeline(cfg.model, scheme=cfg.scheme)
        pipe.set_progress_bar_config(disable=False)
    if cfg.mode == "diffusion" and cfg.best_of == 1:
        out = pipe(book_caption(args.title, args.description), layout, num_images=cfg.num_images,
                   num_inference_steps=cfg.steps, guidance_scale=cfg.guidance_scale, seed=cfg.seed,
                   scheduler=cfg.scheduler)
        (dest / "prompt.txt").write_text(out.prompt_text + "\n", encoding="utf-8")
        for w in out.warnings:
            logging.warning(w)
        for image, seed in zip(out.images, out.seeds):
            image.save(dest / f"cover_seed{seed}.png")
            print(dest / f"cover_seed{seed}.png")
        return 0
    from .covers import CoverOptions, make_covers

    options = CoverOptions(num_inference_steps=cfg.steps, guidance_scale=cfg.guidance_scale, scheduler=cfg.scheduler)
    covers = make_covers(cfg.mode, layout, args.title, args.description, n=cfg.num_images, seed=cfg.seed or 0,
                         pipeline=pipe, best_of=cfg.best_of, options=options)
    for rank, cover in enumerate(covers, 1):
        path = dest / f"cover{rank}_{cover.mode}_seed{cover.seed}.png"
        cover.image.save(path)
        score = f"OCR {cover.score.hypothesis!r} NED {cover.score.ned:.2f}" if cover.score else "not scored"
        print(f"{path}  {score}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kordiff", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    plan = sub.add_parser("plan", help="print the planned layout JSON for a title")
    plan.add_argument("title")
    plan.add_argument("--description", default="")
    plan.add_argument("--planner", choices=["heuristic", "m1"], default="heuristic")
    plan.add_argument("--seed", type=int, default=0)
    plan.set_defaults(func=cmd_plan)
    gen = sub.add_parser("generate", help="generate covers (writes images, layout.json/png, prompt.txt)")
    gen.add_argument("--title", required=True)
    gen.add_argument("--description", default="")
    gen.add_argument("--layout", help="layout JSON file (default: plan one)")
    gen.add_argument("--planner", choices=["heuristic", "m1"], default="heuristic")
    gen.add_argument("--out", required=True, help="output directory")
    add_dataclass_args(gen, GenerateConfig)
    for action in gen._actions:
        if action.dest == "scheduler":
            action.choices = sorted(SCHEDULERS)
    gen.set_defaults(func=cmd_generate)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ModelUnavailableError, LayoutError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
