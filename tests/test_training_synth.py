"""training.synth: exact boxes, glyph coverage, determinism, resume, syllable coverage."""

from __future__ import annotations

import json
import random
import shutil

import numpy as np
import pytest
from PIL import Image

from kordiff.layout import Box
from training import mario
from training.synth import (
    KS_X_1001,
    REPORT_FILE,
    SynthConfig,
    contrast_ratio,
    cover_text,
    coverage_of,
    font_covers,
    has_final,
    pick_text_colour,
    render_cover,
    synthesize,
)


def _tree(root):
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".") and p.name != REPORT_FILE
    }


@pytest.mark.parametrize("i", range(10))
def test_boxes_are_exact_ink_bounds(tmp_path, i):
    cfg = SynthConfig(n=1, out=tmp_path)
    with_text = np.asarray(render_cover(cfg, i).image, np.int16)
    cover = render_cover(cfg, i, draw_text=False)
    background = np.asarray(cover.image, np.int16)
    ink = np.abs(with_text - background).sum(-1) > 0
    inside = np.zeros_like(ink)
    assert cover.words, "every cover has text"
    for w in cover.words:
        x0, y0, x1, y1 = w.rect
        inside[y0:y1, x0:x1] = True
        region = ink[y0:y1, x0:x1]
        # tight: ink touches all four sides of its box
        assert region[0].any() and region[-1].any() and region[:, 0].any() and region[:, -1].any(), w
        Box.from_pixels(w.text, x0, y0, x1, y1)  # a valid grid box
        assert 0 <= x0 < x1 <= 512 and 0 <= y0 < y1 <= 512
    assert not (ink & ~inside).any(), "text ink outside the boxes"


def test_every_planned_line_is_drawn_with_a_font_that_has_its_glyphs(tmp_path):
    cfg = SynthConfig(n=1, out=tmp_path)
    for i in range(40):
        cover = render_cover(cfg, i)
        assert len(cover.words) == len(cover.lines)
        for line in cover.lines:
            assert font_covers(line.style, line.text), (line.style, line.text)
        assert cover.caption.startswith(f"book cover with a title of {cover.texts.title}")


def test_text_colour_contrasts_with_its_background():
    rng = random.Random(0)
    for _ in range(300):
        bg = tuple(rng.randrange(256) for _ in range(3))
        assert contrast_ratio(pick_text_colour(rng, bg), bg) >= 4.5


def test_same_seed_same_cover_other_seed_other_cover(tmp_path):
    a = render_cover(SynthConfig(n=1, out=tmp_path, seed=3), 5)
    b = render_cover(SynthConfig(n=1, out=tmp_path, seed=3), 5)
    c = render_cover(SynthConfig(n=1, out=tmp_path, seed=4), 5)
    assert a.words == b.words and np.array_equal(np.asarray(a.image), np.asarray(b.image))
    assert not np.array_equal(np.asarray(a.image), np.asarray(c.image))


def test_synthesize_writes_mario_samples_deterministically_and_resumes(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    report = synthesize(SynthConfig(n=8, out=one, workers=1))
    assert report["written"] == 8 and not report["errors"]
    synthesize(SynthConfig(n=8, out=two, workers=2))
    assert _tree(one) == _tree(two), "output must not depend on the worker count"
    index = mario.read_index(one)
    assert [e["id"] for e in index] == [f"synth-{i:07d}" for i in range(8)]
    s = mario.read_sample(one / "synth-0000003")
    assert Image.open(s.image_path).size == (512, 512)
    assert mario.merge_lines(s.words) and s.caption.startswith(f"book cover with a title of {index[3]['title']}")
    # Resume: a lost sample is remade identically, the rest are skipped.
    shutil.rmtree(one / "synth-0000005")
    again = synthesize(SynthConfig(n=8, out=one, workers=1))
    assert (again["written"], again["already_done"]) == (1, 7)
    assert _tree(one) == _tree(two)
    disk = json.loads((one / REPORT_FILE).read_text(encoding="utf-8"))
    assert disk["coverage"]["syllables_total"] == 11172


def test_backgrounds_folder(tmp_path):
    bg = tmp_path / "bg"
    bg.mkdir()
    Image.new("RGB", (300, 200), (10, 200, 10)).save(bg / "a.jpg")
    report = synthesize(SynthConfig(n=3, out=tmp_path / "o", backgrounds=bg, workers=1))
    assert report["written"] == 3
    assert "photographic background" in mario.read_sample(tmp_path / "o" / "synth-0000000").caption


def test_rare_walk_covers_every_everyday_syllable_first():
    assert len(KS_X_1001) == 2350
    cov = coverage_of(0, 784, rare_every=1).summary()
    assert cov["ks_x_1001_covered"] == 2350
    assert coverage_of(0, 3724, rare_every=1).summary()["syllables_covered"] == 11172
    assert cover_text(0, 8).rare and not cover_text(0, 9).rare


def test_josa_follows_the_final_consonant():
    assert has_final("책") and not has_final("나무") and has_final("사람") and not has_final("바다")
