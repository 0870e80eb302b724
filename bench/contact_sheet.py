"""Contact sheet of typeset covers: benchmark titles, varied descriptions (Korean and English), both shapes.

    python bench/contact_sheet.py [--out docs/covers.png] [--n 32] [--thumb 200]

Every cover is `kordiff.typeset.typeset_cover` over a `HeuristicPlanner` layout (placement by seed), CPU only.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kordiff.assets import load_font
from kordiff.evaluate import load_titles
from kordiff.layout import cover_size
from kordiff.planner import HeuristicConfig, HeuristicPlanner
from kordiff.typeset import typeset_cover

# Descriptions a user might type, Korean and English; cycled over the titles so every theme shows.
DESCRIPTIONS = [
    "밤하늘 가득한 별, 고요한 밤", "dark mysterious forest, horror", "푸른 바다와 파도", "rainy city street at night",
    "봄날의 벚꽃 정원", "빨간 장미", "전쟁과 피난의 기억", "minimal", "", "old clock in the fog",
    "가을 단풍 산", "겨울 눈 내리는 마을", "아이들을 위한 동화 그림책", "우주와 로봇의 미래", "조선 시대 역사",
    "사랑의 편지", "사막을 건너는 여행", "추리 스릴러, 비밀", "sunny morning after rain, hopeful", "꿈과 환상의 마법",
]
AUTHORS = ["김하늘", "이서준", "박지민", "최유진", "정민호", "한소희", "오세영", "윤재희"]


def make_sheet(n: int = 32, thumb: int = 200, seed: int = 0) -> Image.Image:
    """`n` covers in a grid (every third one square), each labelled with its description."""
    titles = load_titles("all")
    step = max(1, len(titles) // n)
    picks = titles[::step][:n]
    cols = 8
    cell_w, cell_h = thumb + 12, int(thumb * 1.5) + 30
    rows = -(-len(picks) // cols)
    sheet = Image.new("RGB", (cols * cell_w + 12, rows * cell_h + 12), (236, 234, 229))
    draw = ImageDraw.Draw(sheet)
    label = load_font("sans", 11)
    for i, item in enumerate(picks):
        shape = "square" if i % 3 == 2 else "portrait"
        desc = DESCRIPTIONS[i % len(DESCRIPTIONS)] if i % 4 else item.description
        lines = item.lines
        subtitle = lines[1] if len(lines) > 1 else ("어느 계절의 기록" if i % 5 == 1 else None)
        planner = HeuristicPlanner(seed=seed + i, config=HeuristicConfig(shape=shape))
        layout = planner.plan(lines[0], desc, subtitle=subtitle, author=AUTHORS[i % len(AUTHORS)]).layout
        cover = typeset_cover(layout, desc, seed=seed + i, size=shape)
        w, h = cover_size(shape)
        im = cover.resize((thumb, round(thumb * h / w)), Image.LANCZOS)
        x, y = 12 + (i % cols) * cell_w, 12 + (i // cols) * cell_h
        sheet.paste(im, (x, y + (int(thumb * 1.5) - im.height) // 2))
        draw.text((x, y + int(thumb * 1.5) + 4), (desc or "(no description)")[:28], fill=(60, 60, 60), font=label)
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/covers.png")
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--thumb", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    sheet = make_sheet(args.n, args.thumb, args.seed)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    logging.getLogger(__name__).warning("wrote %s (%dx%d)", args.out, *sheet.size)


if __name__ == "__main__":
    main()
