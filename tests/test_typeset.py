"""Typesetting: text stays inside its box, readable colours (WCAG), fitting, backgrounds and themes."""

import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from kordiff.assets import FONTS
from kordiff.layout import Box, Layout
from kordiff.typeset import (
    MIN_CONTRAST,
    THEMES,
    TypesetStyle,
    background_luminance_range,
    contrast_ratio,
    fit_text,
    pick_text_colour,
    procedural_background,
    relative_luminance,
    theme_for,
    typeset_box,
    typeset_cover,
    typeset_layout,
)

# --- colour science ---------------------------------------------------------------------------------------------


def test_relative_luminance_reference_values():
    assert relative_luminance((0, 0, 0)) == 0.0
    assert relative_luminance((255, 255, 255)) == pytest.approx(1.0)
    # sRGB linearisation, not a straight average: mid grey 119 is ~0.184, pure green dominates.
    assert relative_luminance((119, 119, 119)) == pytest.approx(0.1845, abs=1e-3)
    assert relative_luminance((0, 255, 0)) == pytest.approx(0.7152)
    lum = relative_luminance(np.array([[0, 0, 0], [255, 255, 255]]))
    assert lum.shape == (2,)


def test_contrast_ratio_reference_values():
    assert contrast_ratio((0, 0, 0), (255, 255, 255)) == pytest.approx(21.0)
    assert contrast_ratio((255, 255, 255), (0, 0, 0)) == pytest.approx(21.0)
    assert contrast_ratio((118, 118, 118), (255, 255, 255)) == pytest.approx(4.54, abs=0.01)  # WCAG's #767676
    assert contrast_ratio((200, 10, 10), (200, 10, 10)) == pytest.approx(1.0)


@pytest.mark.parametrize("bg", [(255, 255, 255), (0, 0, 0), (120, 120, 120), (30, 80, 160), (250, 220, 90)])
def test_colour_meets_contrast_on_uniform_ground(bg):
    image = Image.new("RGB", (64, 64), bg)
    lum = background_luminance_range(image, (0, 0, 64, 64))
    colour = pick_text_colour(lum, palette=[(200, 40, 40), (240, 230, 200)])
    assert colour.stroke is None
    assert contrast_ratio(colour.fill, bg) >= MIN_CONTRAST


def test_palette_colour_preferred_when_it_is_readable():
    colour = pick_text_colour((0.0, 0.0), palette=[(250, 240, 160)])  # black ground, pale yellow reaches 4.5
    assert colour.fill == (250, 240, 160)


def test_busy_ground_falls_back_to_stroked_black_or_white():
    colour = pick_text_colour((0.0, 1.0), palette=[(200, 40, 40)])  # half black, half white
    assert colour.fill in ((0, 0, 0), (255, 255, 255))
    assert colour.stroke is not None
    assert contrast_ratio(colour.fill, colour.stroke) == pytest.approx(21.0)


def test_typeset_on_busy_ground_reaches_contrast_through_the_veil():
    stripes = np.zeros((256, 256, 3), np.uint8)
    stripes[:, ::8] = 255
    stripes[:, 1::8] = 255
    stripes[:, 2::8] = 255
    stripes[:, 3::8] = 255
    image = Image.fromarray(stripes)
    placed = typeset_box(image, Box("줄무늬 위의 제목", 8, 40, 120, 70))
    assert placed.colour.stroke is None and placed.colour.contrast >= MIN_CONTRAST
    # Check it independently on the box's text-free left margin: the ground there now keeps the contrast.
    x0, y0, _, y1 = placed.box_px
    margin = (x0, y0, placed.ink_px[0], y1)
    lo, hi = background_luminance_range(image, margin)
    fill = relative_luminance(placed.colour.fill)
    assert min(contrast_ratio(fill, lo), contrast_ratio(fill, hi)) >= MIN_CONTRAST


def test_procedural_covers_meet_contrast_or_stroke():
    layout = Layout.of([Box("달빛 아래 춤을", 10, 20, 118, 44), Box("지은이", 44, 100, 84, 112)])
    for i, desc in enumerate(["night", "forest", "sea", "city", "love", "autumn", "winter", "fire"]):
        image = procedural_background(desc, 256, seed=i)
        for placed in typeset_layout(image, layout, TypesetStyle(palette=THEMES[theme_for(desc).name].colours)):
            assert placed.colour.contrast >= MIN_CONTRAST or placed.colour.stroke is not None


# --- fitting and containment ------------------------------------------------------------------------------------


def _ink_bbox(before: Image.Image, after: Image.Image):
    diff = np.any(np.asarray(before, np.int16) != np.asarray(after, np.int16), axis=-1)
    ys, xs = np.nonzero(diff)
    if len(xs) == 0:
        return None
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


HANGUL = st.integers(0xAC00, 0xD7A3).map(chr)
TITLE_CHARS = st.one_of(HANGUL, HANGUL, HANGUL, st.sampled_from(list("0123456789 ,.!?:-ABCxyz")))


@st.composite
def titled_boxes(draw):
    text = draw(st.text(TITLE_CHARS, min_size=1, max_size=40).filter(lambda s: s.strip()))
    w = draw(st.integers(6, 128))
    h = draw(st.integers(3, 64))
    l = draw(st.integers(0, 128 - w))
    t = draw(st.integers(0, 128 - h))
    return Box(text, l, t, l + w, t + h)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(box=titled_boxes(), font=st.sampled_from(sorted(FONTS)), stroke=st.sampled_from(["auto", "always"]),
       shadow=st.booleans(), align=st.sampled_from(["left", "center", "right"]))
def test_ink_stays_inside_box(box, font, stroke, shadow, align):
    ground = Image.new("RGB", (256, 256), (90, 120, 150))
    image = ground.copy()
    style = TypesetStyle(font=font, stroke=stroke, shadow=shadow, align=align, veil=False)
    placed = typeset_box(image, box, style)
    x0, y0, x1, y1 = box.to_pixels(256)
    ink = _ink_bbox(ground, image)
    assert ink is not None, "nothing was drawn"
    assert x0 <= ink[0] and y0 <= ink[1] and ink[2] <= x1 and ink[3] <= y1, (ink, (x0, y0, x1, y1))
    assert placed.fitted.size >= 6


@pytest.mark.parametrize("n", [1, 2, 5, 10, 20, 40])
def test_titles_of_1_to_40_chars_fit_a_title_box_at_a_readable_size(n):
    text = ("가나다라마바사아자차카타파하" * 3)[:n]
    fitted = fit_text(text, 432, 96)
    assert fitted.width <= 432 and fitted.height <= 96
    assert fitted.size >= 14


def test_font_fills_the_box():
    fitted = fit_text("작은 아씨들", 400, 80)
    assert fitted.width >= 0.9 * 400 or fitted.height >= 0.8 * 80


def test_tall_box_breaks_lines_at_spaces():
    fitted = fit_text("바람이 머무는 언덕 위의 집", 200, 200)
    assert len(fitted.lines) >= 2
    assert " ".join(fitted.lines) == "바람이 머무는 언덕 위의 집"  # broken at spaces, nothing lost


def test_wide_box_keeps_one_line():
    assert fit_text("바람이 머무는 언덕", 480, 60).lines == ("바람이 머무는 언덕",)


def test_exact_text_is_kept():
    fitted = fit_text("  여행의   이유:  떠나는 마음 ", 480, 60)
    assert fitted.text == "여행의 이유: 떠나는 마음"


def test_bad_style_is_a_clear_error():
    with pytest.raises(ValueError, match="font"):
        TypesetStyle(font="comic")
    with pytest.raises(ValueError, match="align"):
        TypesetStyle(align="justify")


# --- backgrounds and covers -------------------------------------------------------------------------------------


@pytest.mark.parametrize("desc,theme", [
    ("a quiet night with stars", "night"), ("숲속의 오두막", "forest"), ("푸른 바다 이야기", "sea"),
    ("autumn leaves", "autumn"), ("도시의 골목", "city"), ("", "plain"), ("수학 공부", "science"),
    ("무서운 공포 이야기", "horror"), ("dark mysterious forest, horror", "horror"), ("sea waves", "sea"),
    ("city skyline", "city"), ("봄날의 벚꽃", "spring"), ("night sky", "night"), ("슬픈 이별 이야기", "plain"),
])
def test_theme_from_description_words(desc, theme):
    assert theme_for(desc).name == theme


def test_background_is_deterministic_and_varies():
    a = procedural_background("night", 128, seed=3)
    assert a.size == (128, 128) and a.mode == "RGB"
    assert np.array_equal(np.asarray(a), np.asarray(procedural_background("night", 128, seed=3)))
    assert not np.array_equal(np.asarray(a), np.asarray(procedural_background("night", 128, seed=4)))


def test_night_is_darker_than_winter():
    night = np.mean([relative_luminance(np.asarray(procedural_background("night", 96, s))).mean() for s in range(4)])
    snow = np.mean([relative_luminance(np.asarray(procedural_background("snow", 96, s))).mean() for s in range(4)])
    assert night < snow


def test_typeset_cover_is_fast_and_sized():
    layout = Layout.of([Box("밤하늘의 별을 세는 법", 8, 20, 120, 44), Box("김하늘 지음", 40, 100, 88, 112)])
    typeset_cover(layout, "forest", seed=1)  # warm the font caches (the first cover loads the faces)
    t = time.perf_counter()
    image = typeset_cover(layout, "night", seed=0)
    assert time.perf_counter() - t < 1.0
    assert image.size == (512, 768)  # portrait by default
    assert typeset_cover(layout, "night", size="square").size == (512, 512)


def test_typeset_cover_on_given_background_keeps_its_size():
    bg = Image.new("RGB", (256, 256), "white")
    image = typeset_cover(Layout.of([Box("하늘", 32, 32, 96, 64)]), background=bg, size=256)
    assert image.size == (256, 256)
    assert bg.getpixel((128, 96)) == (255, 255, 255)  # the caller's image is not drawn on


# --- covers a Korean reader would pick up: shape, hierarchy, fonts by role ----------------------------------------

from kordiff.assets import has_glyph  # noqa: E402
from kordiff.planner import PLACEMENTS, HeuristicConfig, HeuristicPlanner  # noqa: E402
from kordiff.typeset import _runs, _text_mask, cover_style, infer_roles, mood_fonts  # noqa: E402


def _ink_height(before: np.ndarray, after: np.ndarray, box_px) -> int:
    """Rows of a box whose pixels the typesetter changed: the rendered text's real height."""
    x0, y0, x1, y1 = box_px
    changed = np.abs(after[y0:y1, x0:x1].astype(int) - before[y0:y1, x0:x1].astype(int)).max(axis=2) > 40
    rows = np.where(changed.any(axis=1))[0]
    return int(rows[-1] - rows[0] + 1) if len(rows) else 0


@pytest.mark.parametrize("shape", ["portrait", "square"])
@pytest.mark.parametrize("title", ["별빛", "밤하늘의 별을 세는 법", "작은 행복의 발견을 위한 아주 긴 여행의 기록",
                                   "나의 첫 번째 요리책"])
def test_title_dominates_subtitle_and_author_in_rendered_ink(title, shape):
    """Measured on the pixels: title >= 1.8x the subtitle's height and >= 2.5x the author's, every placement."""
    for placement in PLACEMENTS:
        planner = HeuristicPlanner(placement=placement, config=HeuristicConfig(shape=shape))
        plan = planner.plan(title, subtitle="어느 천문학자의 기록", author="김하늘")
        layout = plan.layout
        roles = ["title"] * (len(layout) - 2) + ["subtitle", "author"]
        assert infer_roles(layout) == roles  # the typesetter sees the planner's hierarchy
        for desc in ("night sky", "조선 역사", "아이들 동화"):
            background = procedural_background(desc, shape, seed=0, quiet=layout)
            image = background.copy()
            placed = typeset_layout(image, layout, cover_style(desc))
            before, after = np.asarray(background), np.asarray(image)
            heights = [_ink_height(before, after, p.box_px) for p in placed]
            title_h = min(h for h, r in zip(heights, roles) if r == "title")
            assert title_h >= 1.8 * heights[-2], (placement, desc, heights)
            assert title_h >= 2.5 * heights[-1], (placement, desc, heights)


def test_fonts_follow_the_mood_or_the_user():
    assert mood_fonts("조선 역사")["title"] == "serif"
    assert mood_fonts("rainy city street")["title"] == "sans"
    assert mood_fonts("아이들 동화")["title"] == "sans"  # the child theme's display face is not OCR-readable
    assert mood_fonts("아이들 동화", title_font="display")["title"] == "display"  # the user's pick is kept
    assert mood_fonts("night", title_font="brush") == {"title": "brush", "subtitle": "sans", "author": "sans"}
    style = cover_style("night", font="serif")
    assert style.font_for("title") == style.font_for("subtitle") == "serif"
    assert cover_style("night", font="serif", body_font="handwriting").font_for("author") == "handwriting"


def test_auto_fonts_are_only_ocr_readable_faces():
    """`auto` never sets a face Tesseract misreads (display 0.57, brush 0.55 on the benchmark): every theme's
    mood fonts, for every role, are readable; a readable face passes through; the rest fall back to Gothic."""
    from kordiff.typeset import OCR_READABLE_FONTS, THEMES, readable_font

    assert {readable_font(f) for f in ("display", "brush", "handwriting")} == {"sans"}
    assert readable_font("serif") == "serif"
    assert {t.title_font for t in THEMES.values()} - set(OCR_READABLE_FONTS)  # some mood asks for an unreadable face
    for name in THEMES:
        assert set(mood_fonts(name).values()) <= set(OCR_READABLE_FONTS), name
        assert set(dict(cover_style(name).role_fonts).values()) <= set(OCR_READABLE_FONTS), name


def test_per_box_fonts_override_roles():
    layout = Layout.of([Box("별빛의 속삭임", 8, 10, 120, 40), Box("김하늘", 40, 106, 88, 118)])
    placed = typeset_layout(Image.new("RGB", (512, 512), "white"), layout, cover_style("night"),
                            fonts=["brush", None])
    assert placed[0].fitted.font == "brush" and placed[1].role == "author"
    with pytest.raises(ValueError, match="one role"):
        typeset_layout(Image.new("RGB", (64, 64)), layout, roles=["title"])


def test_a_syllable_the_display_font_lacks_falls_back_alone():
    missing = next(ch for ch in "뷁똠쀍햏꽑" if not has_glyph("display", ch))
    assert _runs(f"가{missing}나", "display") == [("display", "가"), ("sans", missing), ("display", "나")]
    mask = np.asarray(_text_mask((f"가{missing}나",), "display", 48, 0, "center", 0))
    cols = np.where(mask.max(axis=0) > 0)[0]
    third = (cols[-1] - cols[0]) / 3
    middle = mask[:, int(cols[0] + third) : int(cols[0] + 2 * third)]
    assert middle.max() > 0  # the missing syllable is drawn (in the fallback face), not left blank
    image = Image.new("RGB", (512, 512), "white")
    (placed,) = typeset_layout(image, Layout.of([Box(f"가{missing}나", 8, 10, 120, 40)]), TypesetStyle(font="display"))
    assert placed.fitted.font == "display"  # the line keeps its face; only the syllable falls back


def test_author_name_is_never_red():
    reds = ((200, 20, 30), (170, 10, 40))
    layout = Layout.of([Box("붉은 노을", 8, 10, 120, 40), Box("김하늘", 40, 110, 88, 120)])
    placed = typeset_layout(Image.new("RGB", (512, 512), "white"), layout, TypesetStyle(palette=reds))
    from kordiff.motifs import is_red

    assert is_red(placed[0].colour.fill)  # red titles are fine
    assert not is_red(placed[1].colour.fill) and placed[1].role == "author"


def test_short_korean_title_in_a_column_is_set_vertically():
    box = Box("불꽃처럼", 100, 8, 120, 60)
    image = Image.new("RGB", (512, 768), "white")
    placed = typeset_box(image, box, TypesetStyle())
    assert placed.fitted.vertical and placed.fitted.lines == ("불", "꽃", "처", "럼")
    x0, y0, x1, y1 = placed.ink_px
    assert y1 - y0 > 3 * (x1 - x0)  # a column, not a squeezed line
    assert not typeset_box(image, Box("불꽃처럼", 8, 70, 120, 90), TypesetStyle()).fitted.vertical
    assert not typeset_box(image, box, TypesetStyle(vertical="never")).fitted.vertical


def test_thin_faces_switch_to_gothic_when_small():
    image = Image.new("RGB", (512, 512), "white")
    small = typeset_box(image, Box("김하늘 지음", 50, 120, 78, 124), TypesetStyle(font="serif"))
    big = typeset_box(image, Box("별빛의 속삭임", 8, 10, 120, 40), TypesetStyle(font="serif"))
    assert small.fitted.font == "sans" and big.fitted.font == "serif"


def test_hybrid_text_colours_come_from_the_art_and_busy_ground_gets_a_solid_panel():
    from kordiff.typeset import image_palette

    art = Image.new("RGB", (512, 768), (20, 40, 120))
    art.paste((240, 200, 60), (0, 384, 512, 768))
    palette = image_palette(art, 4)
    assert (20, 40, 120) in palette and (240, 200, 60) in palette
    busy = Image.fromarray(((np.indices((768, 512)).sum(0) // 8) % 2 * 255).astype(np.uint8)).convert("RGB")
    box = Box("작은 정원", 16, 20, 112, 36)
    placed = typeset_box(busy, box, cover_style("", palette=image_palette(busy)))
    x0, y0, x1, y1 = placed.box_px
    m = (y1 - y0) // 4
    band = np.asarray(busy)[y0 - m : y0, x0:x1]  # the panel reaches past the box: no checkerboard at its edge
    assert band.std() < 10 and placed.colour.contrast >= MIN_CONTRAST
