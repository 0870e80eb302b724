"""Measure the OCR module: false positives on text-free images, seconds per image, typesetting speed.

    python bench/ocr.py [--n 140] [--size 512]
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as `python bench/ocr.py` from a checkout

from kordiff.evaluate import load_titles, plan_layout, text_free_set  # noqa: E402
from kordiff.layout import Box, Layout  # noqa: E402
from kordiff.ocr import OcrReader  # noqa: E402
from kordiff.typeset import typeset_cover  # noqa: E402

# Where a planner would put a title and an author line: the regions a layout-based check reads.
PROBE_LAYOUT = Layout.of([Box("제목", 8, 16, 120, 40), Box("지은이", 40, 100, 88, 112)])


def false_positives(n: int, size: int) -> None:
    reader = OcrReader()
    full_hits, box_hits, images = [], [], 0
    t0 = time.perf_counter()
    for kind, seed, image in text_free_set(n, size):
        images += 1
        full = reader.read_image(image)
        boxes = reader.read_layout(image, PROBE_LAYOUT)
        if full.text:
            full_hits.append((kind, seed, full.text, round(full.confidence)))
        hits = [r.text for r in boxes if r.text]
        if hits:
            box_hits.append((kind, seed, hits))
    dt = (time.perf_counter() - t0) / images
    print(f"text-free images: {images} ({size}px); whole-image false positives: {len(full_hits)} "
          f"({len(full_hits) / images:.1%}); images with a box false positive: {len(box_hits)} "
          f"({len(box_hits) / images:.1%}); {dt:.2f} s/image for whole + 2 box reads")
    for hit in full_hits + box_hits:
        print("  ", hit)


def speed(size: int, limit: int) -> None:
    titles = load_titles("dev")[:limit]
    covers = []
    t0 = time.perf_counter()
    for item in titles:
        layout, _ = plan_layout(item.title)
        covers.append((typeset_cover(layout, item.description, size=size), layout))
    t_typeset = (time.perf_counter() - t0) / len(titles)
    reader = OcrReader()
    t0 = time.perf_counter()
    for image, layout in covers:
        reader.score(image, layout, full_image=False)
    t_boxes = (time.perf_counter() - t0) / len(covers)
    t0 = time.perf_counter()
    for image, _ in covers:
        reader.read_image(image)
    t_full = (time.perf_counter() - t0) / len(covers)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda c: reader.score(c[0], c[1], full_image=True), covers))
    t_par = (time.perf_counter() - t0) / len(covers)
    print(f"{len(covers)} typeset covers ({size}px): typeset {t_typeset:.3f} s/image; OCR box reads "
          f"{t_boxes:.3f} s/image; whole-image read {t_full:.3f} s/image; boxes + whole on 2 threads "
          f"{t_par:.3f} s/image (wall)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--n", type=int, default=140, help="text-free images (cycling through every kind)")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--speed-titles", type=int, default=40)
    args = parser.parse_args()
    false_positives(args.n, args.size)
    speed(args.size, args.speed_titles)
