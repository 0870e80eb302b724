"""OCR module: exact scores on hand cases, the model's character set, reading rendered titles, silence on no text."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

from kordiff.evaluate import TEXT_FREE_KINDS, text_free_image
from kordiff.layout import Box, Layout
from kordiff.ocr import (
    OcrConfig,
    OcrReader,
    char_accuracy,
    content_chars,
    edit_distance,
    is_scorable,
    known_charset,
    known_hangul,
    ned,
    normalise,
    score_reads,
    score_text,
    sentence_correct,
    unreadable_chars,
)
from kordiff.planner import HeuristicPlanner
from kordiff.typeset import TypesetStyle, typeset_cover, typeset_layout

# --- pure scores ------------------------------------------------------------------------------------------------


def test_edit_distance_hand_cases():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3
    assert edit_distance("가나다", "가나다") == 0
    assert edit_distance("가나다", "가다") == 1
    assert edit_distance("밤하늘", "밤하늘의") == 1


def test_normalise_ignores_spacing_and_width():
    assert normalise(" 작은  아씨들\n") == "작은아씨들"
    assert normalise("ＡＢ１") == "AB1"  # full-width forms fold (NFKC)
    assert sentence_correct("우리 동네 빵집", "우리동네 빵집")
    assert not sentence_correct("우리 동네 빵집", "우리 동네 빵")


def test_ned_and_char_accuracy_hand_cases():
    assert ned("가나다", "가나라") == pytest.approx(2 / 3)
    assert ned("가나다", "") == 0.0
    assert ned("", "") == 1.0
    assert ned("가나", "가나다라") == pytest.approx(0.5)  # distance 2 over the longer length 4
    assert char_accuracy("가나다라", "가나다") == pytest.approx(0.75)
    assert char_accuracy("가나", "가나다라마바") == 0.0  # floored, not negative
    assert char_accuracy("사랑의 기술", "사랑의기술") == 1.0


def test_score_reads_per_box_and_per_image():
    score = score_reads(["마음의 지도", "나를 찾아"], ["마음의 지도", "나를 찾이"])
    assert [b.correct for b in score.boxes] == [True, False]
    assert not score.correct
    assert score.ned == pytest.approx(1 - 1 / 9)
    assert score.reference == "마음의 지도 나를 찾아"
    assert score_reads(["하늘"], ["하늘"]).score > score.score
    with pytest.raises(ValueError):
        score_reads(["a", "b"], ["a"])


def test_score_text_flags_unscorable():
    s = score_text("할머니의 부엌", "할머니의 부억")
    assert not s.scorable and not s.correct
    assert score_text("모순", "모순").scorable


# --- what the model can read ------------------------------------------------------------------------------------


def test_charset_is_extracted_from_traineddata():
    hangul = known_hangul()
    assert len(hangul) == 1076
    assert {"가", "나", "사", "랑"} <= hangul
    assert set("0123456789") <= known_charset()
    assert "엌" not in hangul


def test_unscorable_detection():
    assert unreadable_chars("할머니의 부엌") == ["엌"]
    assert unreadable_chars("AI 시대의 글쓰기") == ["A", "I"]  # kor has no Latin letters
    assert unreadable_chars("서울 1988") == []
    assert unreadable_chars("괜찮아, 다 괜찮아") == []
    assert is_scorable("정말 그럴까?")
    assert not is_scorable("왜 나는 늘 바쁠까?")


def test_content_chars_drops_punctuation_and_jamo():
    assert content_chars("ㆍ3월의 눈'") == "3월의눈"
    assert content_chars("~ | ㅋ") == ""


# --- reading ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reader():
    r = OcrReader()
    yield r
    r.close()


TITLES = ["작은 아씨들", "사랑의 기술", "바다가 들려준 이야기", "서울 1988", "괜찮아, 다 괜찮아",
          "내일은 맑음", "별이 빛나는 밤", "우리 동네 빵집"]
DESCRIPTIONS = ["night", "forest", "sea", "city", "love", "", "spring", "winter"]


def _title_layout(title: str) -> Layout:
    return Layout.of([Box(title, 10, 20, 118, 42)])


def test_reads_rendered_titles(reader):
    correct = 0
    for i, (title, desc) in enumerate(zip(TITLES, DESCRIPTIONS)):
        layout = _title_layout(title)
        image = typeset_cover(layout, desc, seed=i)
        score = reader.score(image, layout, full_image=False)
        correct += score.correct
    assert correct >= 7, f"only {correct}/8 rendered titles read exactly"


def test_reads_two_boxes_in_order(reader):
    layout = Layout.of([Box("고요한 밤", 24, 16, 104, 36), Box("거룩한 별빛", 16, 44, 112, 64)])
    image = typeset_cover(layout, "winter", seed=1)
    reads = reader.read_layout(image, layout)
    assert [normalise(r.text) for r in reads] == ["고요한밤", "거룩한별빛"]


def test_whole_image_read_finds_the_title(reader):
    layout = _title_layout("사랑의 기술")
    image = typeset_cover(layout, "love", seed=0)
    assert "사랑의기술" in normalise(reader.read_image(image).text)


@pytest.mark.parametrize("kind", TEXT_FREE_KINDS)
def test_nothing_read_on_text_free_images(reader, kind):
    probe = Layout.of([Box("제목", 8, 16, 120, 40), Box("지은이", 40, 100, 88, 112)])
    for seed in (1, 2):
        image = text_free_image(kind, seed, 512)
        assert reader.read_image(image).text == "", (kind, seed)
        assert [r.text for r in reader.read_layout(image, probe)] == ["", ""], (kind, seed)


def test_confidence_gate_is_what_rejects(reader):
    """The same hallucination-prone image passes with the gate off, so the gate is doing the work."""
    image = text_free_image("shapes", 12, 512)
    ungated = OcrReader(OcrConfig(min_confidence=0, min_confidence_short=0, give_up_below=0))
    assert ungated.read_image(image).text != ""
    assert reader.read_image(image).text == ""


def test_threads_agree_with_sequential(reader):
    images = [(typeset_cover(_title_layout(t), d, seed=i), _title_layout(t))
              for i, (t, d) in enumerate(zip(TITLES[:4], DESCRIPTIONS))]
    sequential = [reader.score(im, lay, full_image=False).hypothesis for im, lay in images]
    with ThreadPoolExecutor(2) as pool:
        parallel = list(pool.map(lambda x: reader.score(x[0], x[1], full_image=False).hypothesis, images))
    assert parallel == sequential


def test_crop_stays_inside_image(reader):
    image = Image.new("RGB", (512, 512), "white")
    crop = reader.crop_box(image, Box("가", 0, 0, 128, 10).to_pixels(512))
    assert crop.width > 0 and crop.height > 0


def test_portrait_and_square_covers_read_at_their_boxes(reader):
    """The grid spans each axis: the same layout reads on 512x768 and 512x512 covers."""
    layout = Layout.of([Box("바다가 들려준 이야기", 8, 16, 120, 30), Box("김하늘", 48, 110, 80, 118)])
    for shape in ("portrait", "square"):
        image = typeset_cover(layout, "sea", seed=0, size=shape)
        assert [normalise(r.text) for r in reader.read_layout(image, layout)] == ["바다가들려준이야기", "김하늘"]


def test_vertical_titles_read_top_to_bottom(reader):
    for title, desc in [("불꽃처럼", "war"), ("별빛", "night"), ("고양이", "forest"), ("첫눈", "winter")]:
        layout = HeuristicPlanner(placement="vertical").plan(title, author="김하늘").layout
        assert layout[0].height > layout[0].width
        image = typeset_cover(layout, desc, seed=0)
        assert reader.score(image, layout, full_image=False).correct, title


def test_read_on_small_pipeline_size(reader):
    """Tiny-pipeline covers are 256 px: typeset titles there still read."""
    layout = _title_layout("작은 정원의 계절")
    image = Image.new("RGB", (256, 256), (30, 60, 90))
    typeset_layout(image, layout, TypesetStyle())
    assert reader.score(image, layout, full_image=False).correct
