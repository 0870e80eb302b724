"""kordiff.editing: canvas boxes / table rows <-> Layout with clipping and notices, and prompt-budget notices."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kordiff import editing
from kordiff.layout import GRID, Box, Layout


@pytest.fixture
def tokenizer(syllable_tokenizer):
    return syllable_tokenizer


boxes = st.builds(
    lambda text, l, t, w, h: Box(text, l, t, min(GRID, l + w), min(GRID, t + h)),
    st.text("가나다라 abc", min_size=1, max_size=8).filter(str.strip).map(str.strip),
    st.integers(0, GRID - 1), st.integers(0, GRID - 1), st.integers(1, GRID), st.integers(1, GRID),
)


@given(st.lists(boxes, max_size=6))
def test_canvas_and_table_round_trip_exactly(bs):
    layout = Layout.of(bs)
    assert editing.boxes_to_layout(editing.layout_to_boxes(layout)) == editing.EditResult(layout, ())
    assert editing.rows_to_layout(editing.layout_to_rows(layout)) == editing.EditResult(layout, ())


def test_canvas_boxes_carry_text_labels_and_rgb_colours():
    out = editing.layout_to_boxes(Layout((Box("마음의 바다", 8, 10, 120, 34),)))
    assert editing.CANVAS_SIZE == (512, 768)  # the default (portrait) cover: 4 x 6 px per grid cell
    assert out == [{"label": "마음의 바다", "xmin": 32, "ymin": 60, "xmax": 480, "ymax": 204,
                    "color": "rgb(230, 25, 75)"}]


def test_box_dragged_off_canvas_is_clipped_with_a_notice():
    edit = editing.boxes_to_layout([{"label": "제목", "xmin": -40, "ymin": 750, "xmax": 100, "ymax": 900}])
    assert edit.layout == Layout((Box("제목", 0, 125, 25, 128),))
    assert edit.notices == ("box 1 ('제목') reached past the edge of the cover: clipped to it.",)


def test_zero_size_unlabelled_and_broken_boxes_are_left_out_with_notices():
    edit = editing.boxes_to_layout([
        {"label": "a", "xmin": 10, "ymin": 10, "xmax": 10, "ymax": 90},  # zero width
        {"label": "  ", "xmin": 0, "ymin": 0, "xmax": 100, "ymax": 100},  # new box, no text yet
        {"label": "b", "xmin": "x", "ymin": 0, "xmax": 1, "ymax": 1},
        {"label": "c", "xmin": float("nan"), "ymin": 0, "xmax": 1, "ymax": 1},
        "not a box",
        {"label": "ok", "xmin": 400, "ymin": 600, "xmax": 0, "ymax": 0},  # corners in any order
    ])
    assert edit.layout == Layout((Box("ok", 0, 0, 100, 100),))
    assert [n.split(" ", 2)[1] for n in edit.notices] == ["1", "2", "3", "4", "5"]
    assert "zero width or height" in edit.notices[0] and "no text" in edit.notices[1]
    assert "no usable coordinates" in edit.notices[2]


def test_table_rows_are_clipped_rounded_sorted_and_bad_rows_explained():
    edit = editing.rows_to_layout({"headers": list(editing.TABLE_COLUMNS), "data": [
        ["제목", -5, "3", 200, 20.6],
        ["", None, None, None, None],  # blank row being typed: skipped silently
        ["", 1, 2, 3, 4],
        ["저자", 50, 100, 10, 90],
        ["x", 5, 5, 5, 9],
        ["y", "a", 1, 2, 3],
    ]})
    assert edit.layout == Layout((Box("제목", 0, 3, 128, 21), Box("저자", 10, 90, 50, 100)))
    assert edit.notices == (
        "row 1 ('제목') reached past the 0..128 grid: clipped to it.",
        "row 3 has no text: left out.",
        "row 5 ('x') has zero width or height: left out.",
        "row 6 ('y') needs four numbers l, t, r, b: left out.",
    )
    assert editing.rows_to_layout(None).layout == Layout()


def test_read_text_refuses_no_title_and_trims_with_notices():
    for empty in ("", "   ", None, "\ud800"):
        with pytest.raises(ValueError, match="Type a book title"):
            editing.read_text(empty)
    text = editing.read_text("  마음의 바다 ", None, "김\x07하늘", "가" * 1500)
    assert (text.title, text.subtitle, text.author, len(text.description)) == ("마음의 바다", "", "김하늘", 1000)
    assert text.notices == ("The author: invalid characters (lone surrogates, control codes) were removed.",
                            "The description: it was 1,500 characters long: trimmed to the first 1000.")


@pytest.mark.parametrize("value", [10**400, -(10**400), "1e999", "nan", "x" * 10**6, True, None, [], {}])
def test_numbers_that_are_not_finite_floats_are_not_numbers(value):
    assert editing._number(value) is None
    with pytest.raises(ValueError, match="Seed must be a number"):
        editing.check_number("Seed", value, 0, 10)


def test_rows_limits_new_rows_and_redraw():
    rows = [[f"줄{i}", 0, i, 128, i + 1] for i in range(20)]
    edit = editing.rows_to_layout(rows)
    assert len(edit.layout) == 16 and "row 17 ('줄16') and the 3 rows after it left out" in edit.notices[-1]
    with pytest.raises(ValueError, match="20 rows; a cover takes at most 16"):
        editing.check_table(rows)
    editing.check_table(rows[:16] + [["", None, None, None, None]] * 50)  # blank rows do not count
    placed = editing.rows_to_layout([["제목", 8, 8, 120, 30], ["새 줄", None, None, None, None]]).layout
    assert placed.texts == ["제목", "새 줄"] and placed.boxes[1].width > 0
    clipped = [["제목", 8, 8, 500, 30]]
    assert editing.table_needs_redraw(clipped, editing.rows_to_layout(clipped).layout)
    assert not editing.table_needs_redraw([["제목", 8, 8, 120, 30], ["", None, None, None, None]],
                                          Layout((Box("제목", 8, 8, 120, 30),)))


def test_new_canvas_boxes_go_after_the_title():
    old = Layout((Box("제목", 8, 8, 120, 30), Box("저자", 40, 100, 88, 118)))
    boxes = [{"label": "부제", "xmin": 0, "ymin": 0, "xmax": 100, "ymax": 100}, *editing.layout_to_boxes(old)]
    assert editing.new_box_first(boxes, old)
    assert editing.append_new_box(editing.boxes_to_layout(boxes).layout).texts == ["제목", "저자", "부제"]
    assert not editing.new_box_first(editing.layout_to_boxes(old), old)


def test_captions_say_why_a_cover_cannot_be_scored():
    from kordiff.ocr import ImageScore, score_text

    korean = ImageScore((score_text("마음의 바다", "마음의 바다"),))
    assert editing.cover_caption(3, "typeset", korean) == "seed 3 · typeset · OCR read '마음의 바다', similarity 1.00"
    latin = ImageScore((score_text("The Forest", ""),))
    assert editing.cover_caption(3, "typeset", latin) == ("seed 3 · typeset · not scorable (no Hangul: the OCR "
                                                          "reads Korean)")
    hanja = editing.cover_caption(3, "typeset", ImageScore((score_text("天地 바다", ""),)))
    assert "not scorable (天 地: the OCR cannot read it)" in hanja and "0.00" not in hanja


def test_budget_is_per_device():
    editing.check_budget(8, 150, "typeset", gpu=False)  # no denoising at all
    editing.check_budget(2, 20, "diffusion", gpu=False)
    with pytest.raises(ValueError, match="at most 40"):
        editing.check_budget(3, 20, "hybrid", gpu=False)
    editing.check_budget(8, 50, "diffusion", gpu=True)


def test_notices_say_which_characters_have_no_token(tokenizer):
    layout = Layout((Box("天地 🎉 하늘", 0, 0, 128, 30),))
    assert editing.prompt_notices(tokenizer, "天地 🎉 하늘", "", layout) == [
        "No token for 天 地 🎉 (left out of the prompt)."]


def test_notices_say_what_was_cut_from_a_long_title(tokenizer):
    title = "바람이 머무는 곳에서 우리는 다시 만나게 될 것이다"
    layout = Layout((Box(title, 0, 0, 128, 30), Box("저자", 0, 100, 128, 120)))
    assert editing.prompt_notices(tokenizer, title, "", layout) == [
        "Caption shortened from 48 to 35 tokens so the text boxes fit in the 77-token prompt."]
    title = " ".join([title] * 3)  # 80 characters: more than the prompt holds even with a 2-token caption
    layout = Layout((Box(title, 0, 0, 128, 30), Box("저자", 0, 100, 128, 120)))
    notices = editing.prompt_notices(tokenizer, title, "", layout)
    assert f"Prompt full (77 tokens): cut '{title}'." in notices
    assert "Prompt full (77 tokens): left out '저자'." in notices
    kept = notices[-1].split("'")[1]
    assert title.startswith(kept) and 0 < len(kept) < len(title)


def test_notices_for_caption_overflow_many_boxes_and_no_boxes(tokenizer):
    long = "an extremely long description " * 25
    notices = editing.prompt_notices(tokenizer, "제목", long, Layout((Box("제목", 0, 0, 128, 30),)))
    assert notices[0].startswith("The caption is longer than the 77-token prompt: it was cut after")
    many = Layout(tuple(Box(f"줄{i}", 0, i * 10, 128, i * 10 + 9) for i in range(12)))
    assert any("left out" in n and "'줄11'" in n for n in editing.prompt_notices(tokenizer, "제목", "", many))
    assert editing.prompt_notices(tokenizer, "제목", "", Layout()) == [
        "No text boxes: the cover is generated without a layout, so no title text is placed."]
    assert editing.prompt_notices(tokenizer, "제목", "", Layout((Box("제목", 0, 0, 128, 30),))) == []


def test_canvas_edit_moves_a_new_box_and_waits_for_a_pending_one():
    old = Layout((Box("제목", 8, 8, 120, 30), Box("저자", 40, 100, 88, 118)))
    rows, shown = editing.layout_to_rows(old), editing.layout_to_boxes(old)
    same = editing.canvas_edit(shown, rows)
    assert (same.layout, same.changed, same.redraw, same.signature) == (old, False, False, None)
    added = editing.canvas_edit([{"label": "부제", "xmin": 0, "ymin": 0, "xmax": 100, "ymax": 100}, *shown], rows)
    assert added.layout.texts == ["제목", "저자", "부제"] and added.changed and added.redraw
    blank = [{"label": "", "xmin": 0, "ymin": 0, "xmax": 100, "ymax": 100}, *shown]
    pending = editing.canvas_edit(blank, rows)  # the canvas's text dialog is still open: no notice, no redraw
    assert pending.signature == repr(blank[:1]) and not pending.notices and not pending.redraw
    closed = editing.canvas_edit(blank, rows, seen=pending.signature)  # the same box again: closed without text
    assert closed.notices and closed.changed and closed.layout == old
