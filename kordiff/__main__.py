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
    caption = book_caption(args.title, args.description)
    pipe = load_pipeline(cfg.model, scheme=cfg.scheme)
    pipe.set_progress_bar_config(disable=False)
    out = pipe(caption, layout, num_images=cfg.num_images, num_inference_steps=cfg.steps,
               guidance_scale=cfg.guidance_scale, seed=cfg.seed, scheduler=cfg.scheduler)
    dest = Path(args.out)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "layout.json").write_text(layout.to_json(), encoding="utf-8")
    (dest / "prompt.txt").write_text(out.prompt_text + "\n", encoding="utf-8")
    render_layout(layout, size=512).save(dest / "layout.png")
    for image, seed in zip(out.images, out.seeds):
        image.save(dest / f"cover_seed{seed}.png")
        print(dest / f"cover_seed{seed}.png")
    for w in out.warnings:
        logging.warning(w)
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
