"""Benchmark titles, placement, text-free images and an end-to-end run of `python -m kordiff.evaluate`."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from kordiff.evaluate import (
    BENCHMARK,
    TEXT_FREE_KINDS,
    EvalConfig,
    EvalRow,
    build_parser,
    contact_sheet,
    load_titles,
    main,
    plan_layout,
    simple_layout,
    text_free_image,
)
from kordiff.ocr import is_scorable


def _syllables(text: str) -> int:
    return sum(0xAC00 <= ord(c) <= 0xD7A3 for c in text)


def test_benchmark_titles_meet_the_spec():
    titles = load_titles("all")
    assert len(titles) >= 200
    assert len({t.id for t in titles}) == len(titles)
    assert {t.split for t in titles} == {"dev", "test"}
    assert len(load_titles("dev")) + len(load_titles("test")) == len(titles)
    assert all(2 <= _syllables(t.title) <= 20 for t in titles)
    assert sum(any(c.isdigit() for c in t.title) for t in titles) >= 10
    assert sum(any(c.isascii() and c.isalpha() for c in t.title) for t in titles) >= 5
    assert sum(any(c in ",.!?:" for c in t.title) for t in titles) >= 10
    assert sum(len(t.lines) == 2 for t in titles) >= 10
    assert all(t.description for t in titles)
    # Most titles must be readable by the OCR model, or the benchmark measures nothing.
    assert sum(is_scorable(t.title) for t in load_titles("test")) >= 0.9 * len(load_titles("test"))


def test_benchmark_file_is_plain_jsonl():
    for line in BENCHMARK.read_text(encoding="utf-8").splitlines():
        d = json.loads(line)
        assert set(d) == {"id", "title", "split", "description"}


def test_bad_split_is_a_clear_error():
    with pytest.raises(ValueError, match="split"):
        load_titles("train")


@pytest.mark.parametrize("title", ["모순", "우리가 빛의 속도로 갈 수 없다면", "마음의 지도\n나를 찾아 떠나는 여행",
                                   "오늘 밤 세계에서 이 사랑이 사라진다 해도"])
def test_layout_holds_the_title_exactly(title):
    layout, _ = plan_layout(title)
    assert "".join(layout.texts).replace(" ", "") == title.replace("\n", "").replace(" ", "")
    tops = [b.t for b in layout]
    assert tops == sorted(tops)  # reading order top to bottom


def test_simple_layout_keeps_explicit_lines():
    layout = simple_layout("숲의 시간\n나무가 가르쳐 준 것")
    assert layout.texts == ["숲의 시간", "나무가 가르쳐 준 것"]
    assert all(b.b <= layout[i + 1].t for i, b in enumerate(layout.boxes[:-1]))  # no overlap


@pytest.mark.parametrize("kind", TEXT_FREE_KINDS)
def test_text_free_images(kind):
    a = text_free_image(kind, 3, 64)
    assert a.size == (64, 64) and a.mode == "RGB"
    assert np.array_equal(np.asarray(a), np.asarray(text_free_image(kind, 3, 64)))


def test_cli_flags_come_from_the_config():
    args = build_parser().parse_args(["--mode", "hybrid", "--limit", "3", "--no-harmonise", "--best-of", "4"])
    cfg = EvalConfig(**vars(args))
    assert cfg.mode == "hybrid" and cfg.limit == 3 and cfg.harmonise is False and cfg.best_of == 4
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--mode", "painting"])


def test_cli_evaluates_the_fonts_users_get_by_default():
    assert EvalConfig().font == build_parser().parse_args([]).font == "auto"
    assert build_parser().parse_args(["--font", "display"]).font == "display"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--font", "comic"])


def test_contact_sheet_keeps_portrait_covers_upright():
    """A 2:3 cover becomes a 128x192 thumbnail, not a squashed square: its top and bottom halves land where the
    aspect ratio puts them."""
    cover = Image.new("RGB", (512, 768), (255, 0, 0))
    cover.paste((0, 0, 255), (0, 384, 512, 768))
    row = EvalRow("kt000", "제목", "heuristic", True, True, 1.0, 1.0, "제목", 0, 0.1, 0.1)
    sheet = contact_sheet([cover, cover], [row, row], thumb=128, cols=2)
    assert sheet.size == (2 * 134, 192 + 6 + 14)
    assert sheet.getpixel((3 + 64, 3 + 48)) == (255, 0, 0) and sheet.getpixel((3 + 64, 3 + 144)) == (0, 0, 255)
    square = contact_sheet([Image.new("RGB", (512, 512))], [row], thumb=128)
    assert square.size == (134, 128 + 6 + 14)


def test_typeset_run_writes_the_report(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["--mode", "typeset", "--split", "test", "--limit", "4", "--out", str(out), "--workers", "2"]) == 0
    with open(out / "results.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    assert {"id", "title", "correct", "ned", "char_accuracy", "read", "seconds"} <= set(rows[0])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["titles"] == 4 and summary["scorable"] + summary["unscorable"] == 4
    assert summary["sentence_accuracy"] >= 0.75
    assert "sentence_accuracy" in (out / "summary.md").read_text(encoding="utf-8")
    assert (out / "contact_sheet.png").stat().st_size > 0
    assert len(list((out / "images").glob("*.png"))) == 4
    assert "sentence_accuracy" in capsys.readouterr().out


def test_cli_reports_errors_without_traceback(tmp_path, capsys):
    code = main(["--mode", "diffusion", "--limit", "1", "--out", str(tmp_path), "--model", str(tmp_path / "none")])
    assert code == 1
    assert capsys.readouterr().err.startswith("error:")


def test_hybrid_on_busy_art_stand_in(tmp_path):
    """Hybrid mode without weights: exact titles typeset onto busy 512 px art still read back."""
    out = tmp_path / "busy"
    assert main(["--mode", "hybrid", "--model", "busy-art", "--no-harmonise", "--split", "dev", "--limit", "5",
                 "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["titles"] == 5 and summary["sentence_accuracy"] >= 0.6
