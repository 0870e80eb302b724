"""Cover modes and best-of-N: ranking by OCR score, the tiny pipeline in every mode, hybrid's fallback."""

from dataclasses import replace
from types import SimpleNamespace

import pytest
from PIL import Image

from kordiff.covers import MODES, Cover, CoverOptions, make_covers, rank_covers
from kordiff.layout import Box, Layout
from kordiff.ocr import ImageScore, score_reads

LAYOUT = Layout.of([Box("작은 정원", 16, 20, 112, 44)])
# One UNet call, no CFG batch. A fixed face: with "auto", a misread mood face is OCR'd again in Gothic (its own
# tests below), an extra scorer call the stubbed scorers here do not plan for.
FAST = CoverOptions(num_inference_steps=1, guidance_scale=1.0, width=256, font="sans")


@pytest.fixture(scope="module")
def pipe():
    from kordiff.tiny import tiny_pipeline

    return tiny_pipeline()


def fake_score(correct: bool, ned: float) -> ImageScore:
    """An ImageScore with a chosen outcome (the read is built to have that NED against '작은정원')."""
    ref = "작은 정원"
    if correct:
        return score_reads([ref], [ref])
    keep = round(ned * 4)
    return score_reads([ref], ["작은정원"[:keep]])


def test_rank_is_by_score_then_seed():
    img = Image.new("RGB", (8, 8))
    covers = [Cover(img, 0, "typeset", fake_score(False, 0.5)), Cover(img, 1, "typeset", fake_score(True, 1.0)),
              Cover(img, 2, "typeset", fake_score(False, 0.75)), Cover(img, 3, "typeset", fake_score(True, 1.0))]
    assert [c.seed for c in rank_covers(covers)] == [1, 3, 2, 0]


def test_best_of_keeps_the_highest_scores(monkeypatch):
    """Scores are controlled per seed; make_covers must return the top n of n*best_of, best first."""
    planned = {0: 0.25, 1: 1.0, 2: 0.5, 3: 0.75, 4: 0.0, 5: 0.5}
    calls = []

    def scorer(image, layout):
        seed = len(calls)
        calls.append(seed)
        return fake_score(planned[seed] == 1.0, planned[seed])

    covers = make_covers("typeset", LAYOUT, "작은 정원", "spring", n=2, best_of=3, seed=0, options=FAST,
                         scorer=scorer)
    assert len(calls) == 6  # every candidate was scored
    assert [c.seed for c in covers] == [1, 3]
    assert covers[0].score.correct and covers[0].rank_value >= covers[1].rank_value


def test_typeset_mode_reads_back_and_is_deterministic():
    a = make_covers("typeset", LAYOUT, description="forest", n=2, seed=5, options=FAST)
    b = make_covers("typeset", LAYOUT, description="forest", n=2, seed=5, options=FAST)
    assert {c.seed for c in a} == {5, 6}
    assert all(c.mode == "typeset" and c.image.size == (256, 384) for c in a)  # portrait by default
    assert all(c.score is not None and c.score.correct for c in a)  # real OCR reads the exact title
    assert [c.image.tobytes() for c in a] == [c.image.tobytes() for c in b]


def test_scoring_can_be_switched_off():
    covers = make_covers("typeset", LAYOUT, n=1, options=CoverOptions(width=128, score=False))
    assert covers[0].score is None and covers[0].rank_value == 0.0


def test_default_cover_is_portrait_and_square_on_request():
    assert CoverOptions().size == (512, 768)
    (portrait,) = make_covers("typeset", LAYOUT, n=1, options=CoverOptions(score=False))
    (square,) = make_covers("typeset", LAYOUT, n=1, options=CoverOptions(shape="square", score=False))
    assert portrait.image.size == (512, 768) and square.image.size == (512, 512)
    with pytest.raises(ValueError, match="shape"):
        CoverOptions(shape="landscape-ish")


def _stub_scorer(reads: list[bool]):
    """Scores in order (True: read exactly), recording each image it was shown."""
    shown = []

    def scorer(image, layout):
        shown.append(image.copy())
        return fake_score(reads[len(shown) - 1], 0.5)

    return scorer, shown


def test_auto_title_misread_in_the_mood_face_is_set_in_gothic():
    """'auto' font, literary mood (Myeongjo title): OCR misreads it once -> the same ground with a Gothic title
    is scored and kept, with a note; the author keeps its face."""
    scorer, shown = _stub_scorer([False, True])
    layout = Layout.of([Box("작은 정원", 16, 20, 112, 44), Box("김하늘", 40, 110, 88, 118)])
    options = replace(FAST, font="auto")
    (cover,) = make_covers("typeset", layout, description="history", seed=3, options=options, scorer=scorer)
    assert len(shown) == 2 and cover.score.correct and "set it in Gothic" in cover.notes[0]
    assert cover.image.tobytes() == shown[1].tobytes() != shown[0].tobytes()
    foot = (0, round(shown[0].height * 100 / 128), shown[0].width, shown[0].height)  # the author line
    assert shown[0].crop(foot).tobytes() == shown[1].crop(foot).tobytes()


@pytest.mark.parametrize("reads, font, calls", [
    ([True], "auto", 1),  # read: nothing to fix
    ([False], "serif", 1),  # the user's own face is never swapped
    ([False, False], "auto", 2),  # Gothic reads no better: the mood face stays
])
def test_auto_gothic_retry_only_where_it_helps(reads, font, calls):
    scorer, shown = _stub_scorer(reads)
    (cover,) = make_covers("typeset", LAYOUT, description="history", options=replace(FAST, font=font),
                           scorer=scorer)
    assert len(shown) == calls and not cover.notes
    assert cover.image.tobytes() == shown[0].tobytes()


def test_auto_title_that_ocr_misreads_reads_back_exactly():
    """The benchmark's '강물처럼' (like a river), planned as the benchmark plans it: Tesseract reads the Myeongjo
    title as 강물처렴 (shipped tessdata, deterministic); the cover users get ('auto') reads exactly."""
    from kordiff.planner import HeuristicPlanner

    layout = HeuristicPlanner(seed=0).plan("강물처럼", "like a river").layout
    (serif,) = make_covers("typeset", layout, description="like a river", options=CoverOptions(font="serif"))
    (cover,) = make_covers("typeset", layout, description="like a river", options=CoverOptions())
    assert not serif.score.correct and serif.score.hypothesis == "강물처렴"
    assert cover.score.correct and "set it in Gothic" in cover.notes[0]


def test_diffusion_mode_runs_the_pipeline(pipe):
    covers = make_covers("diffusion", LAYOUT, "작은 정원", n=2, seed=3, pipeline=pipe, options=FAST)
    assert sorted(c.seed for c in covers) == [3, 4]
    # The pipeline's native width at the cover's shape: latents 4 x 96 x 64 for SD1.5 at 512x768.
    assert all(c.image.size == (pipe.image_size, pipe.image_size * 3 // 2) for c in covers)
    square = make_covers("diffusion", LAYOUT, "작은 정원", n=1, pipeline=pipe, options=replace(FAST, shape="square"))
    assert square[0].image.size == (pipe.image_size, pipe.image_size)
    assert all(c.score is not None and not c.score.correct for c in covers)  # random weights draw no text


def test_hybrid_mode_puts_the_exact_title_on_the_diffusion_image(pipe):
    covers = make_covers("hybrid", LAYOUT, "작은 정원", seed=0, pipeline=pipe,
                         options=replace(FAST, harmonise=False))
    assert covers[0].score.correct
    assert not covers[0].harmonised


class StubPipeline:
    """Stands in for KorDiffPipeline where only the call contract matters: grey images, calls recorded."""

    image_size = 128

    def __init__(self):
        self.calls = []

    def __call__(self, caption, layout, num_images=1, seed=None, image=None, strength=None, **kwargs):
        self.calls.append({"caption": caption, "image": image, "strength": strength, "seed": seed, **kwargs})
        shade = 60 if image is None else 200
        return SimpleNamespace(images=[Image.new("RGB", (128, 128), (shade,) * 3) for _ in range(num_images)])


def test_hybrid_falls_back_when_harmonising_breaks_the_title():
    stub = StubPipeline()
    scores = iter([fake_score(True, 1.0), fake_score(False, 0.25)])  # plain reads, harmonised doesn't
    covers = make_covers("hybrid", LAYOUT, "작은 정원", "spring", seed=7, pipeline=stub, options=FAST,
                         scorer=lambda image, layout: next(scores))
    assert not covers[0].harmonised
    assert covers[0].score.correct
    assert covers[0].notes and "kept the plain one" in covers[0].notes[0]
    base, harmonise = stub.calls
    assert base["image"] is None and harmonise["image"] is not None
    assert harmonise["strength"] == FAST.harmonise_strength and harmonise["seed"] == [7]
    assert harmonise["caption"] == base["caption"] == "book cover with a title of 작은 정원. spring"
    assert covers[0].image.getpixel((0, 0)) == (60, 60, 60)  # the un-harmonised picture came back


def test_hybrid_keeps_plain_when_ocr_cannot_confirm_either():
    stub = StubPipeline()
    scores = iter([fake_score(False, 0.0), fake_score(False, 0.0)])
    covers = make_covers("hybrid", LAYOUT, "작은 정원", seed=0, pipeline=stub, options=FAST,
                         scorer=lambda image, layout: next(scores))
    assert not covers[0].harmonised


def test_hybrid_keeps_harmonised_when_the_title_survives(pipe):
    seen = []

    def scorer(image, layout):
        seen.append(image)
        return fake_score(True, 1.0)

    covers = make_covers("hybrid", LAYOUT, "작은 정원", seed=0, pipeline=pipe, options=FAST, scorer=scorer)
    assert covers[0].harmonised
    assert len(seen) == 2 and covers[0].image is seen[1]  # the harmonised (second) image is returned
    assert seen[0].tobytes() != seen[1].tobytes()  # the img2img pass changed the picture


def test_bad_requests_are_clear_errors(pipe):
    with pytest.raises(ValueError, match="mode"):
        make_covers("photo", LAYOUT)
    with pytest.raises(ValueError, match="pipeline"):
        make_covers("diffusion", LAYOUT)
    with pytest.raises(ValueError, match="no text boxes"):
        make_covers("typeset", Layout())
    with pytest.raises(ValueError, match="best_of"):
        make_covers("typeset", LAYOUT, best_of=0)
    assert set(MODES) == {"diffusion", "hybrid", "typeset"}
