"""Korean title benchmark: plan a layout per title, make the cover in a mode, score it with OCR, write a report.

    python -m kordiff.evaluate --mode typeset --split test --out runs/typeset
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import logging
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .assets import ASSETS_DIR, FONTS, load_font
from .config import add_dataclass_args
from .covers import CoverOptions, make_covers
from .hub import BUSY_ART, first_line
from .layout import GRID, Box, Layout
from .modes import MODES, PLANNERS, mode_help, planner_help
from .ocr import ImageScore, OcrReader, is_scorable
from .typeset import THEMES, procedural_background

logger = logging.getLogger(__name__)

BENCHMARK = ASSETS_DIR / "benchmark" / "titles.jsonl"
SPLITS = ("dev", "test", "all")


@dataclass(frozen=True)
class BenchTitle:
    """One benchmark entry; a newline in `title` marks where a two-line title breaks."""

    id: str
    title: str
    split: str
    description: str = ""

    @property
    def lines(self) -> list[str]:
        return [line.strip() for line in self.title.split("\n") if line.strip()]


def load_titles(split: str = "test", path: Path = BENCHMARK) -> list[BenchTitle]:
    """Benchmark titles of a split ('all' = every split), in file order."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                item = BenchTitle(d["id"], d["title"], d["split"], d.get("description", ""))
            except (json.JSONDecodeError, KeyError) as e:
                raise ValueError(f"{path}:{n}: not a benchmark entry ({e})") from None
            if split == "all" or item.split == split:
                out.append(item)
    return out


# --- layout -----------------------------------------------------------------------------------------------------


def _split_line(text: str) -> list[str]:
    """Two balanced lines at a space for long one-line titles; short ones stay whole."""
    words = text.split()
    if len(text.replace(" ", "")) <= 10 or len(words) < 2:
        return [text]
    best = min(range(1, len(words)), key=lambda i: abs(len(" ".join(words[:i])) - len(" ".join(words[i:]))))
    return [" ".join(words[:best]), " ".join(words[best:])]


def simple_layout(title: str) -> Layout:
    """Centred title lines in the upper third: the benchmark's placement when no planner is available."""
    lines = [part for line in title.split("\n") if line.strip() for part in _split_line(line.strip())]
    n = len(lines)
    line_h = 18 if n <= 2 else 14
    top = 18
    boxes = []
    for i, line in enumerate(lines):
        chars = len(line.replace(" ", "")) + 0.4 * line.count(" ")
        width = int(min(116, max(24, chars * line_h * 0.95)))
        l = (GRID - width) // 2
        t = top + i * (line_h + 4)
        boxes.append(Box(line, l, t, l + width, t + line_h))
    return Layout.of(boxes)


def plan_layout(title: str, description: str = "", seed: int = 0, planner: str = "heuristic") -> tuple[Layout, str]:
    """Layout for a benchmark title (a second line is its subtitle); returns (layout, source).

    planner: 'heuristic' (kordiff.planner.HeuristicPlanner, placement from the seed), 'm1' (TD2's M1, loaded
    once) or 'simple' (centred lines in the upper third, independent of any planner: a fixed reference placement)."""
    if planner == "simple":
        return simple_layout(title), "simple"
    if planner not in PLANNERS:
        raise ValueError(f"planner must be one of {PLANNERS} or 'simple', got {planner!r}")
    lines = [line.strip() for line in title.split("\n") if line.strip()]
    subtitle = " ".join(lines[1:]) or None
    if planner == "m1":
        result = _m1_planner(seed).plan(lines[0], description, [lines[0], *([subtitle] if subtitle else [])])
    else:
        from .planner import HeuristicPlanner

        result = HeuristicPlanner(seed=seed).plan(lines[0], description, subtitle=subtitle)
    return result.layout, result.source


_M1: dict = {}


def _m1_planner(seed: int):
    """One M1 planner per process (its 7B weights load once)."""
    from .planner import M1Planner

    if "m1" not in _M1:
        _M1["m1"] = M1Planner(seed=seed)
    return _M1["m1"]


# --- text-free images (OCR false positives) -----------------------------------------------------------------------

TEXT_FREE_KINDS = ("noise", "clouds", "gradient", "shapes", "lines", "pattern", "procedural")


def text_free_image(kind: str, seed: int = 0, size: int = 512) -> Image.Image:
    """An image with no text in it: noise, colour clouds, gradients, busy shapes, line tangles, stripes, backgrounds."""
    rng = np.random.default_rng(seed)

    def colour() -> tuple[int, int, int]:
        return tuple(int(v) for v in rng.integers(0, 256, 3))  # type: ignore[return-value]

    if kind == "noise":
        return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    if kind == "clouds":
        small = rng.integers(0, 256, (max(2, size // 8), max(2, size // 8), 3), dtype=np.uint8)
        return Image.fromarray(small).resize((size, size), Image.BICUBIC)
    if kind == "gradient":
        y, x = np.mgrid[0:size, 0:size] / size
        a, b = np.array(colour(), float), np.array(colour(), float)
        ang = rng.uniform(0, 2 * np.pi)
        t = x * np.cos(ang) + y * np.sin(ang)
        t = (t - t.min()) / max(1e-6, t.max() - t.min())
        return Image.fromarray((a + (b - a) * t[..., None]).astype(np.uint8))
    if kind == "shapes":
        img = Image.new("RGB", (size, size), colour())
        d = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(30, 120))):
            x0, y0 = rng.uniform(-size / 10, size, 2)
            w, h = rng.uniform(size / 100, size / 3.4, 2)
            k = int(rng.integers(0, 4))
            if k == 0:
                d.ellipse((x0, y0, x0 + w, y0 + h), fill=colour())
            elif k == 1:
                d.rectangle((x0, y0, x0 + w, y0 + h), fill=colour())
            elif k == 2:
                d.line((x0, y0, x0 + rng.uniform(-size / 2.5, size / 2.5), y0 + rng.uniform(-size / 2.5, size / 2.5)),
                       fill=colour(), width=int(rng.integers(1, 8)))
            else:
                d.polygon([tuple(rng.uniform(0, size, 2)) for _ in range(3)], fill=colour())
        return img
    if kind == "lines":
        img = Image.new("RGB", (size, size), colour())
        d = ImageDraw.Draw(img)
        ink = colour()
        for _ in range(int(rng.integers(50, 200))):
            d.line(tuple(rng.uniform(0, size, 4)), fill=ink, width=int(rng.integers(1, 5)))
        return img
    if kind == "pattern":
        y, x = np.mgrid[0:size, 0:size]
        fx, fy = rng.uniform(0.02, 0.3, 2) * 512 / size
        v = np.sin(x * fx + rng.uniform(0, 6)) * np.sin(y * fy + rng.uniform(0, 6))
        return Image.fromarray(((v > 0) * 255).astype(np.uint8)).convert("RGB")
    if kind == "procedural":
        names = list(THEMES)
        return procedural_background(names[seed % len(names)], size=size, seed=seed)
    raise ValueError(f"unknown text-free kind {kind!r}; choose one of {TEXT_FREE_KINDS}")


def text_free_set(n: int = 105, size: int = 512, seed: int = 0) -> Iterator[tuple[str, int, Image.Image]]:
    """`n` text-free images cycling through every kind: (kind, seed, image)."""
    for i in range(n):
        kind = TEXT_FREE_KINDS[i % len(TEXT_FREE_KINDS)]
        yield kind, seed + i, text_free_image(kind, seed + i, size)


class BusyArtPipeline:
    """A stand-in for the diffusion pipeline (model 'busy-art'): busy text-free 512 px art per seed, so hybrid mode
    can be measured without weights on backgrounds harder than a cover's. img2img returns its input unchanged."""

    KINDS = ("clouds", "shapes", "lines", "pattern", "noise")
    image_size = 512

    def __call__(self, caption: str, layout: Layout, num_images: int = 1, seed=0, image=None, **kwargs):
        from types import SimpleNamespace

        seeds = seed if isinstance(seed, list) else [int(seed or 0) + i for i in range(num_images)]
        if image is not None:
            return SimpleNamespace(images=[image.copy() for _ in seeds])
        # The kind follows the caption too, so one seed over many titles still covers every kind.
        salt = sum(map(ord, caption))
        return SimpleNamespace(images=[
            text_free_image(self.KINDS[(s + salt) % len(self.KINDS)], s + salt, self.image_size) for s in seeds])


# --- running the benchmark ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalConfig:
    """One benchmark run (every field is a CLI flag)."""

    mode: str = field(default="typeset", metadata={"help": mode_help(), "choices": list(MODES)})
    split: str = field(default="test", metadata={"help": "benchmark split ('all': every split)",
                                                 "choices": list(SPLITS)})
    out: str = field(default="runs/eval", metadata={
        "help": "output folder: results.csv, summary.md/json, contact_sheet.png, images/"})
    limit: int = field(default=0, metadata={"help": "only the first N titles (0: all)"})
    model: str = field(default="", metadata={
        "help": "diffusion/hybrid: 'td2', 'tiny-random', 'busy-art' (text-free stand-in art, no weights), "
                "a saved pipeline directory or Hub id ('': td2)"})
    device: str = field(default="", metadata={"help": "torch device for the model ('': CUDA when available)"})
    font: str = field(default="auto", metadata={
        "help": "title font style ('auto': by the description's mood, what users get)",
        "choices": ["auto", *sorted(FONTS)]})
    seed: int = field(default=0, metadata={"help": "seed of every title's first candidate (and its placement)"})
    planner: str = field(default="heuristic", metadata={"help": "layout planner: " + planner_help(),
                                                        "choices": list(PLANNERS)})
    simple_layout: bool = field(default=False, metadata={
        "help": "use a fixed centred placement instead of the planner (a planner-independent reference)"})
    best_of: int = field(default=1, metadata={"help": "candidates per title; the best by OCR is kept"})
    steps: int = field(default=20, metadata={"help": "denoising steps (diffusion/hybrid)"})
    guidance_scale: float = field(default=7.5, metadata={"help": "classifier-free guidance scale (diffusion/hybrid)"})
    harmonise: bool = field(default=True, metadata={
        "help": "hybrid: low-strength image-to-image pass over the typeset title, kept only if OCR still reads it"})
    workers: int = field(default=2, metadata={"help": "parallel titles in typeset mode (Tesseract releases the GIL)"})
    save_images: bool = field(default=True, metadata={"help": "write every cover to images/"})


@dataclass(frozen=True)
class EvalRow:
    """One title's outcome."""

    id: str
    title: str
    layout: str
    scorable: bool
    correct: bool
    ned: float
    char_accuracy: float
    read: str
    seed: int
    seconds: float
    ocr_seconds: float
    notes: str = ""


def _one_title(item: BenchTitle, cfg: EvalConfig, pipeline, reader: OcrReader, out: Path):
    layout, source = plan_layout(item.title, item.description, seed=cfg.seed,
                                 planner="simple" if cfg.simple_layout else cfg.planner)
    ocr_time = [0.0]

    def scorer(image: Image.Image, lay: Layout) -> ImageScore:
        t = time.perf_counter()
        try:
            return reader.score(image, lay, full_image=False)
        finally:
            ocr_time[0] += time.perf_counter() - t

    options = CoverOptions(font=cfg.font, num_inference_steps=cfg.steps, guidance_scale=cfg.guidance_scale,
                           harmonise=cfg.harmonise)
    t0 = time.perf_counter()
    cover = make_covers(cfg.mode, layout, " ".join(item.lines), item.description, n=1, seed=cfg.seed,
                        pipeline=pipeline, best_of=cfg.best_of, options=options, scorer=scorer)[0]
    seconds = time.perf_counter() - t0
    score = cover.score
    assert score is not None
    if cfg.save_images:
        cover.image.save(out / "images" / f"{item.id}.png")
    row = EvalRow(item.id, item.title.replace("\n", " / "), source, is_scorable(item.title), score.correct,
                  round(score.ned, 4), round(score.char_accuracy, 4), score.hypothesis, cover.seed,
                  round(seconds, 3), round(ocr_time[0], 3), "; ".join(cover.notes))
    return row, cover.image, score


def summarise(rows: list[EvalRow], cfg: EvalConfig) -> dict:
    """Headline numbers: accuracy over scorable titles, unscorable count, seconds per image."""
    scorable = [r for r in rows if r.scorable]

    def mean(xs):
        return round(statistics.fmean(xs), 4) if xs else float("nan")

    return {
        "mode": cfg.mode, "split": cfg.split, "titles": len(rows), "scorable": len(scorable),
        "unscorable": len(rows) - len(scorable),
        "sentence_accuracy": mean([float(r.correct) for r in scorable]),
        "ned": mean([r.ned for r in scorable]),
        "char_accuracy": mean([r.char_accuracy for r in scorable]),
        "ned_all": mean([r.ned for r in rows]),
        "seconds_per_image": mean([r.seconds for r in rows]),
        "ocr_seconds_per_image": mean([r.ocr_seconds for r in rows]),
    }


def summary_markdown(summary: dict, rows: list[EvalRow], cfg: EvalConfig) -> str:
    lines = [
        f"# kordiff benchmark: mode `{cfg.mode}`, split `{cfg.split}`",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    for k, v in summary.items():
        lines.append(f"| {k} | {v} |")
    lines += ["", f"Config: `{json.dumps(dataclasses.asdict(cfg), ensure_ascii=False)}`", ""]
    wrong = [r for r in rows if r.scorable and not r.correct]
    if wrong:
        lines += ["## Misread scorable titles", "", "| id | title | read | NED |", "|---|---|---|---|"]
        lines += [f"| {r.id} | {r.title} | {r.read} | {r.ned} |" for r in wrong]
    return "\n".join(lines) + "\n"


def _thumb_size(image: Image.Image, thumb: int) -> tuple[int, int]:
    """`thumb` pixels wide, the height keeping the image's aspect ratio (a 2:3 portrait cover: 128x192)."""
    return thumb, max(1, round(thumb * image.height / max(1, image.width)))


def contact_sheet(images: list[Image.Image], rows: list[EvalRow], thumb: int = 128, cols: int = 10) -> Image.Image:
    """Thumbnails `thumb` px wide in their own aspect ratio, framed green (read exactly), red (misread) or grey
    (unscorable), with the id under each."""
    n = len(images)
    cols = max(1, min(cols, n))
    rows_n = max(1, -(-n // cols))
    cell_w = thumb + 6
    cell_h = max((_thumb_size(img, thumb)[1] for img in images), default=thumb) + 6
    label = 14
    sheet = Image.new("RGB", (cols * cell_w, rows_n * (cell_h + label)), "white")
    draw = ImageDraw.Draw(sheet)
    font = load_font("sans", 11)
    for i, (img, row) in enumerate(zip(images, rows)):
        x, y = (i % cols) * cell_w, (i // cols) * (cell_h + label)
        tw, th = _thumb_size(img, thumb)
        frame = (150, 150, 150) if not row.scorable else ((40, 170, 60) if row.correct else (220, 40, 40))
        draw.rectangle((x, y, x + cell_w - 1, y + th + 5), fill=frame)
        sheet.paste(img.convert("RGB").resize((tw, th), Image.LANCZOS), (x + 3, y + 3))
        draw.text((x + 3, y + th + 6), row.id, fill="black", font=font)
    return sheet


def run(cfg: EvalConfig, pipeline=None, progress: Callable | None = None) -> dict:
    """Run the benchmark, write results.csv, boxes-free summary.md, contact_sheet.png; return the summary."""
    if cfg.mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {cfg.mode!r}")
    if cfg.font != "auto" and cfg.font not in FONTS:
        raise ValueError(f"font must be 'auto' or one of {sorted(FONTS)}, got {cfg.font!r}")
    titles = load_titles(cfg.split)
    if cfg.limit:
        titles = titles[: cfg.limit]
    if not titles:
        raise ValueError(f"no titles in split {cfg.split!r}")
    out = Path(cfg.out)
    if cfg.mode != "typeset" and pipeline is None:
        if cfg.model == BUSY_ART:
            pipeline = BusyArtPipeline()
        else:
            from .loading import load_pipeline

            pipeline = load_pipeline(cfg.model or "td2", device=cfg.device or None)
    (out / "images").mkdir(parents=True, exist_ok=True)  # after loading: a failed load leaves no empty folders
    reader = OcrReader()
    workers = cfg.workers if cfg.mode == "typeset" or isinstance(pipeline, BusyArtPipeline) else 1

    results: dict[int, tuple] = {}
    csv_path = out / "results.csv"
    fields = [f.name for f in dataclasses.fields(EvalRow)]
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        bar = _progress_bar(len(titles), f"{cfg.mode}/{cfg.split}") if progress is None else None
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = [pool.submit(_one_title, item, cfg, pipeline, reader, out) for item in titles]
            for i, fut in enumerate(futures):
                try:
                    results[i] = fut.result()
                except Exception as e:  # one broken title must not lose the rest of the run
                    logger.error("title %s failed: %s", titles[i].id, e)
                    continue
                # Rows are flushed as they finish so a crash half-way leaves a usable CSV.
                writer.writerow(dataclasses.asdict(results[i][0]))
                f.flush()
                if bar is not None:
                    bar.update()
                if progress is not None:
                    progress(i + 1, len(titles))
        if bar is not None:
            bar.close()
    rows = [results[i][0] for i in sorted(results)]
    images = [results[i][1] for i in sorted(results)]
    summary = summarise(rows, cfg)
    (out / "summary.md").write_text(summary_markdown(summary, rows, cfg), encoding="utf-8")
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    contact_sheet(images, rows).save(out / "contact_sheet.png")
    return summary


def _progress_bar(total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="title", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    """CLI flags generated from EvalConfig's fields and defaults."""
    parser = argparse.ArgumentParser(prog="python -m kordiff.evaluate", description=__doc__.strip().splitlines()[0])
    add_dataclass_args(parser, EvalConfig)
    # The flag was --guidance before all CLIs used `python -m kordiff generate`'s spelling: still accepted, hidden.
    parser.add_argument("--guidance", type=float, dest="guidance_scale", help=argparse.SUPPRESS,
                        default=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = EvalConfig(**vars(args))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        summary = run(cfg)
    except KeyboardInterrupt:
        print(f"interrupted: the rows finished so far are in {Path(cfg.out) / 'results.csv'}", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - a CLI prints one clear line instead of a traceback
        print(f"error: {first_line(e, 1000)}", file=sys.stderr)
        return 1
    for k, v in summary.items():
        print(f"{k}: {v}")
    print(f"wrote {Path(cfg.out) / 'summary.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
