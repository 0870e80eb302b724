import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kordiff.layout import GRID, Box, Layout, LayoutError, render_layout, to_grid, to_pixel


def test_box_validation():
    Box("별빛", 0, 0, GRID, GRID)
    for bad in [("", 0, 0, 10, 10), ("  ", 0, 0, 10, 10), ("a", 10, 0, 10, 5), ("a", 0, 5, 10, 5),
                ("a", -1, 0, 10, 10), ("a", 0, 0, 129, 10), ("a", 20, 0, 10, 10), ("a", 0.5, 0, 10, 10)]:
        with pytest.raises(LayoutError):
            Box(*bad)


def test_box_is_frozen():
    b = Box("a", 0, 0, 1, 1)
    with pytest.raises(AttributeError):
        b.l = 3


def test_pixel_grid_conversion_matches_td2_on_512():
    # TD2: x // (512 // 128), clipped to [0, 128]
    for x in [0, 1, 3, 4, 5, 255, 511, 512, 600, -7]:
        assert to_grid(x, 512) == min(max(x // 4, 0), 128)
    assert to_pixel(32, 512) == 128
    assert to_grid(to_pixel(77, 512), 512) == 77


def test_from_pixels_sorts_and_clips():
    b = Box.from_pixels("제목", 600, 300, -20, 100, size=512)
    assert (b.l, b.t, b.r, b.b) == (0, 25, 128, 75)
    with pytest.raises(LayoutError):
        Box.from_pixels("제목", 100, 100, 101, 300, size=512)  # zero width on the grid


@given(st.lists(st.tuples(st.text(min_size=1).filter(str.strip), st.integers(0, 127), st.integers(0, 127),
                          st.integers(1, 128), st.integers(1, 128)), max_size=6))
def test_json_round_trip(items):
    boxes = [Box(t, l, tp, max(r, l + 1), max(b, tp + 1)) for t, l, tp, r, b in items if max(r, l + 1) <= 128
             and max(b, tp + 1) <= 128]
    layout = Layout(tuple(boxes))
    assert Layout.from_json(layout.to_json()) == layout
    assert Layout.from_dict(json.loads(layout.to_json())["boxes"]) == layout


def test_from_json_rejects_garbage():
    for bad in ["not json", "{\"grid\": 64, \"boxes\": []}", "[{\"text\": \"a\"}]", "42"]:
        with pytest.raises(LayoutError):
            Layout.from_json(bad)


def test_render_layout_draws_boxes():
    layout = Layout((Box("별빛의 속삭임", 10, 10, 118, 40),))
    img = render_layout(layout, size=256)
    assert img.size == (256, 256)
    x0, y0, x1, y1 = layout[0].to_pixels(256)
    assert img.getpixel((x0, (y0 + y1) // 2)) != (255, 255, 255)  # outline drawn
    assert img.getpixel((5, 250)) == (255, 255, 255)  # outside untouched


def test_cover_sizes_are_one_api():
    from kordiff.layout import COVER_SIZES, DEFAULT_SHAPE, cover_size

    assert DEFAULT_SHAPE == "portrait" and cover_size() == (512, 768) == COVER_SIZES["portrait"]
    assert cover_size("square") == (512, 512) and cover_size("portrait", width=256) == (256, 384)
    assert cover_size(300) == (300, 300) and cover_size((200, 300)) == (200, 300)
    w, h = cover_size()
    assert abs(h / w - 225 / 152) < 0.05  # 신국판 152x225 mm is about 2:3
    with pytest.raises(LayoutError, match="shape"):
        cover_size("poster")


def test_grid_spans_each_axis_of_a_portrait_cover():
    box = Box("제목", 32, 32, 96, 64)
    assert box.to_pixels((512, 768)) == (128, 192, 384, 384)  # 4 px per column, 6 px per row
    assert box.to_pixels(512) == box.to_pixels((512, 512)) == (128, 128, 384, 256)
    assert Box.from_pixels("제목", 128, 192, 384, 384, size=(512, 768)) == box
    full = Box("제목", 0, 0, GRID, GRID)
    assert full.to_pixels((512, 768)) == (0, 0, 512, 768)


def test_render_layout_defaults_to_portrait():
    layout = Layout((Box("별빛의 속삭임", 10, 10, 118, 40),))
    assert render_layout(layout).size == (512, 768)
    assert render_layout(layout, size="square").size == (512, 512)
