"""Planner tests: TD2's exact M1 prompt, a parser that survives real and fuzzed M1 output, heuristic and M1 planners."""

from __future__ import annotations

import hashlib
import json
import random
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from kordiff.assets import load_font
from kordiff.layout import GRID, Box, Layout, cover_size
from kordiff.planner import (
    PLACEMENTS,
    HeuristicConfig,
    HeuristicPlanner,
    M1Planner,
    Planner,
    PlannerUnavailableError,
    PlanResult,
    book_caption,
    build_planner_prompt,
    complete_layout,
    m1_instruction,
    parse_planner_output,
    parse_planner_output_report,
    requested_texts,
    split_title_lines,
    text_weight,
)

FIXTURES = Path(__file__).parent / "fixtures" / "planner"
APPENDIX_A = json.loads((FIXTURES / "appendix_a.json").read_text(encoding="utf-8"))["cases"]

# ------------------------------------------------------------------------------------------------ prompt text

# REFERENCE.md section 1, written out by hand (not built from the module's pieces).
TD2_KEYWORDS = (
    "Given a prompt that will be used to generate an image, plan the layout of visual text for the image. The size of "
    "the image is 128x128. Therefore, all properties of the positions should not exceed 128, including the "
    "coordinates of top, left, right, and bottom. In addition, we also provide all keywords at random order for "
    "reference. You dont need to specify the details of font styles. At each line, the format should be keyword "
    "left, top, right, bottom. So let us begin. Prompt: {prompt}. Keywords: {keywords}"
)
TD2_NO_KEYWORDS = (
    "Given a prompt that will be used to generate an image, plan the layout of visual text for the image. The size of "
    "the image is 128x128. Therefore, all properties of the positions should not exceed 128, including the "
    "coordinates of top, left, right, and bottom. All keywords are included in the caption. You dont need to specify "
    "the details of font styles. At each line, the format should be keyword left, top, right, bottom. So let us "
    "begin. Prompt: {prompt}"
)
CAPTION = "book cover with a title of 별빛의 속삭임"


@pytest.fixture(autouse=True, scope="module")
def strict_parser():
    """Every test here fails if the parser's blanket safety net ever catches a crash (its log call fails instead)."""
    from kordiff import planner_output

    def crashed(*args, **kwargs):
        raise AssertionError("the planner output parser crashed (its safety net caught it)")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(planner_output.logger, "exception", crashed)
        yield


def test_instruction_with_keywords_is_td2s_text():
    got = m1_instruction(CAPTION, ["별빛의 속삭임", "김지영"])
    assert got == TD2_KEYWORDS.format(prompt=CAPTION, keywords="['별빛의 속삭임', '김지영']")


def test_instruction_without_keywords_is_td2s_text():
    assert m1_instruction(CAPTION) == TD2_NO_KEYWORDS.format(prompt=CAPTION)
    assert m1_instruction(CAPTION, []) == TD2_NO_KEYWORDS.format(prompt=CAPTION)


def test_keywords_are_rendered_as_a_python_list_repr():
    got = m1_instruction("p", ("it's", '별"빛'))
    assert got.endswith("""Prompt: p. Keywords: ["it's", '별"빛']""")


def test_vicuna_prompt_exact():
    got = build_planner_prompt(CAPTION, ["별빛의 속삭임"], template="vicuna_v1.1")
    assert got == (
        "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
        "detailed, and polite answers to the user's questions. USER: "
        + TD2_KEYWORDS.format(prompt=CAPTION, keywords="['별빛의 속삭임']")
        + " ASSISTANT:"
    )


def test_one_shot_prompt_exact():
    got = build_planner_prompt(CAPTION, ["별빛의 속삭임"])
    assert got == build_planner_prompt(CAPTION, ["별빛의 속삭임"], template="one_shot")
    head = (
        "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, "
        "detailed, and polite answers to the human's questions.\n### Human: Got any creative ideas for a 10 year "
        "old\u2019s birthday?\n### Assistant: Of course! Here are some creative ideas for a 10-year-old's birthday "
        "party:\n1. Treasure Hunt: Organize a treasure hunt"
    )
    tail = (
        "Remember to tailor the activities to the birthday child's interests and preferences. Have a great "
        "celebration!\n### Human: "
        + TD2_KEYWORDS.format(prompt=CAPTION, keywords="['별빛의 속삭임']")
        + "\n### Assistant:"
    )
    assert got.startswith(head) and got.endswith(tail)
    assert got.count("\n### ") == 4 and got.count("\n") == 13
    # The whole text, checked once against fastchat 0.2.36's get_conv_template('one_shot').get_prompt().
    assert hashlib.sha256(got.encode()).hexdigest() == ONE_SHOT_SHA256
    no_kw = build_planner_prompt(CAPTION)
    assert no_kw.endswith("\n### Human: " + TD2_NO_KEYWORDS.format(prompt=CAPTION) + "\n### Assistant:")


ONE_SHOT_SHA256 = "7b5db5ed749a6335af3e174df7979965531a3bc899a70140e072d0394116d76c"


# sha256 of the whole M1 input per (template, keywords), from fastchat 0.2.36 (fschat, pinned): a fastchat that
# changed TD2's conversation text would change what M1 sees, so it must fail here, not silently.
FASTCHAT_SHA256 = {
    ("one_shot", False): "51f482bfb119388e06f505b3d6a2552f6ce8dc67f6281b191a2ffbb0e17c1880",
    ("one_shot", True): "8e7dc18d6f49577490736fc5d51f0444e9b323364ede064b294a5255b7670809",
    ("vicuna_v1.1", False): "4e7fc7b40900a8d498022611550a44df2e83b63f01e58dfb829a09adc8873844",
    ("vicuna_v1.1", True): "edbbbed03f7ee90668771dea6925e6fd977f1cc0376da3b559c3845d3999a6bc",
}


@pytest.mark.parametrize("template", ["one_shot", "vicuna_v1.1"])
@pytest.mark.parametrize("keywords", [None, ["별빛의 속삭임", "김지영"]])
def test_prompt_matches_fastchat(template, keywords):
    from fastchat.conversation import get_conv_template  # fschat is a requirement: never skipped

    conv = get_conv_template(template)  # TD2's inference code, step by step
    conv.append_message(conv.roles[0], m1_instruction(CAPTION, keywords))
    conv.append_message(conv.roles[1], None)
    got = build_planner_prompt(CAPTION, keywords, template)
    assert got == conv.get_prompt()
    assert hashlib.sha256(got.encode()).hexdigest() == FASTCHAT_SHA256[template, bool(keywords)]
    assert build_planner_prompt(CAPTION, keywords, template) == got  # the shared template is not mutated


def test_unknown_template_is_refused():
    with pytest.raises(ValueError, match="template"):
        build_planner_prompt("p", template="alpaca")


# ------------------------------------------------------------------------------------------------ parsing


def boxes(layout: Layout) -> list[tuple]:
    return [(b.text, b.l, b.t, b.r, b.b) for b in layout]


@pytest.mark.parametrize(
    ("text", "keywords", "expected"),
    [
        ("별빛의 속삭임 13,3,113,29", None, [("별빛의 속삭임", 13, 3, 113, 29)]),
        ("Beyond the Horizon 10,92,118,110;", None, [("Beyond the Horizon", 10, 92, 118, 110)]),
        ("마음의 바다 5, 52, 121, 80.", None, [("마음의 바다", 5, 52, 121, 80)]),
        ("마음의 바다 5 52 121 80", None, [("마음의 바다", 5, 52, 121, 80)]),
        ("마음의 바다 121,80,5,52", None, [("마음의 바다", 5, 52, 121, 80)]),  # inverted: swapped
        ("마음의 바다 -5,52,300,80", None, [("마음의 바다", 0, 52, 128, 80)]),  # clipped
        ("마음의 바다 5.4,52.6,120.5,80", None, [("마음의 바다", 5, 53, 121, 80)]),  # rounded
        ("1984 5,10,100,30", None, [("1984", 5, 10, 100, 30)]),  # a number in the text stays text
        ("The Silent Forest 4", None, []),  # fewer than four numbers
        ("The Silent Forest 4,5,100", None, []),
        ("마음의 바다 130,5,140,20", None, []),  # no area left after clipping
        ("5,52,121,80", None, []),  # no text
        ("### Human: 마음의 바다 5,52,121,80", None, []),
        ("www.example.com 1,2,30,40", None, []),
        ("Keywords: ['마음의 바다'] 5,52,121,80", ["마음의 바다"], [("마음의 바다", 5, 52, 121, 80)]),
        ("A 1,1,20,20\nA 30,30,60,60", None, [("A", 1, 1, 20, 20)]),  # duplicate: first kept
        ("(If I Had) 20,35,106,50", None, [("If I Had", 20, 35, 106, 50)]),
        ("", None, []),
        ("\n\n   \n", None, []),
    ],
)
def test_parse_salvage_rules(text, keywords, expected):
    assert boxes(parse_planner_output(text, keywords=keywords)) == expected


def test_more_than_four_numbers_takes_the_first_four_and_says_so():
    report = parse_planner_output_report(
        "별빛의 속삭임 13, 속삭임 50, 11, 119, 108, 123, 127", keywords=["별빛의 속삭임"]
    )
    assert boxes(report.layout) == [("별빛의 속삭임", 50, 11, 119, 108)]
    assert any("first 4 of 6" in w for w in report.warnings())


def test_echoed_instruction_keeps_the_box_at_the_end():
    line = (
        "Given a prompt that will be used to generate an image, plan the layout of visual text for the image. "
        "So let us begin. Prompt: ('Generate a book cover with a title ', '마음의 바다'). "
        "Keywords: 마음의 바다 5,52,121,80"
    )
    assert boxes(parse_planner_output(line, keywords=["마음의 바다"])) == [("마음의 바다", 5, 52, 121, 80)]
    assert boxes(parse_planner_output(line)) == [("마음의 바다", 5, 52, 121, 80)]


def test_translation_is_dropped_when_keywords_are_given():
    text = "The Sea of My Mind 15,3,107,21\n Kim Ridley 17,103,106,122"
    report = parse_planner_output_report(text, keywords=["마음의 바다"])
    assert len(report.layout) == 0
    assert {d.kind for d in report.dropped} == {"not_requested"}
    assert any("The Sea of My Mind" in w for w in report.warnings())
    assert len(parse_planner_output(text)) == 2  # without keywords every text is kept


def test_keyword_matching_rules():
    kw = ["별빛", "별빛의 속삭임"]
    got = parse_planner_output(
        "Book cover of 별빛의 속삭임 1,1,50,20\n별빛 1,30,50,50\nSTARLIGHT 1,60,50,80", keywords=kw
    )
    assert boxes(got) == [("별빛의 속삭임", 1, 1, 50, 20), ("별빛", 1, 30, 50, 50)]
    # case and spacing do not matter; the box carries the requested spelling
    assert parse_planner_output("the  SECRET garden 8,42,96,57", keywords=["The Secret Garden"]).texts == [
        "The Secret Garden"
    ]


def test_grid_other_than_128_is_scaled():
    assert boxes(parse_planner_output("A 0,0,256,128", grid=256)) == [("A", 0, 0, 128, 64)]


@pytest.mark.parametrize("case", APPENDIX_A, ids=[f"{c['section']}-{c['title'][:12]}" for c in APPENDIX_A])
def test_appendix_a_outputs_always_give_the_title_a_box(case):
    prompts = []

    def canned(prompt: str) -> str:
        prompts.append(prompt)
        return case["output"]

    title = case["title"]
    result = M1Planner(generate_fn=canned).plan(title)
    assert prompts == [build_planner_prompt(book_caption(title), [title])]
    assert result.raw_text == case["output"]
    assert_valid(result.layout)
    assert "".join("".join(result.layout.texts).split()) == "".join(title.split())  # only the title, all of it
    if case["m1_title_box"] is not None:
        assert result.source == "m1"
        assert [[b.l, b.t, b.r, b.b] for b in result.layout] == [case["m1_title_box"]]
    else:
        assert result.source == "m1+heuristic"
        assert any(title in w and "heuristic" in w for w in result.warnings)


TRANSLATIONS = {
    "마음의 바다": "The Sea of My Mind",
    "바람이 머무는 곳": "Where the Wind Dwells",
    "작은 행복의 발견": "The Discovery of Small Happiness",
    "끝없는 여정": "Endless",
    "별빛의 속삭임": "Moonlight's Temptation",
}


def test_appendix_a_translations_are_reported():
    cases = [c for c in APPENDIX_A if c["section"] == "A.2" and c["title"] in TRANSLATIONS]
    assert len(cases) == len(TRANSLATIONS)
    for case in cases:
        result = M1Planner(generate_fn=lambda _p, c=case: c["output"]).plan(case["title"])
        assert any(TRANSLATIONS[case["title"]] in w and "not a requested text" in w for w in result.warnings)
        assert result.layout.texts == [case["title"]]


def test_m1_output_after_the_stop_string_is_ignored():
    out = "마음의 바다 5,52,121,80\n### Human: again\n### Assistant: 마음의 바다 1,1,50,50"
    result = M1Planner(generate_fn=lambda _p: out).plan("마음의 바다")
    assert boxes(result.layout) == [("마음의 바다", 5, 52, 121, 80)]
    assert result.warnings == ()


def test_keywords_plan_title_subtitle_author_in_order():
    out = "김지영 40,110,88,120\n별빛의 속삭임 13,3,113,29"
    result = M1Planner(generate_fn=lambda _p: out).plan(
        "별빛의 속삭임", keywords=["별빛의 속삭임", "밤의 이야기", "김지영"]
    )
    assert result.layout.texts[0] == "별빛의 속삭임"  # title first: it must survive the 77-token prompt
    assert result.layout.texts[-1] == "김지영"
    assert "밤의 이야기" in result.layout.texts and result.source == "m1+heuristic"
    assert any("subtitle" in w for w in result.warnings)


def test_complete_layout_avoids_kept_boxes_when_it_can():
    kept = Layout.of([Box("김지영", 10, 60, 118, 70)])
    for seed in range(6):
        layout, warnings = complete_layout(kept, ["별빛의 속삭임", "김지영"], HeuristicPlanner(seed=seed))
        assert layout.texts == ["별빛의 속삭임", "김지영"] and len(warnings) == 1
        assert not overlaps(layout[0], kept[0])


def assert_valid(layout: Layout, keywords=None) -> None:
    assert isinstance(layout, Layout)
    for b in layout:
        assert isinstance(b, Box) and b.text.strip()
        assert 0 <= b.l < b.r <= GRID and 0 <= b.t < b.b <= GRID
        assert all(type(v) is int for v in (b.l, b.t, b.r, b.b))
    if keywords is not None:
        assert set(layout.texts) <= set(keywords)
        assert len(set(layout.texts)) == len(layout.texts)


def overlaps(a: Box, b: Box) -> bool:
    return min(a.r, b.r) > max(a.l, b.l) and min(a.b, b.b) > max(a.t, b.t)


# ------------------------------------------------------------------------------------------------ fuzzing

KEYWORDS = ["별빛의 속삭임", "마음의 바다", "The Secret Garden", "김지영"]
REAL_OUTPUTS = [c["output"] for c in APPENDIX_A] + [
    "별빛의 속삭임 13,3,113,29\n김지영 40,110,88,120",
    "마음의 바다 5, 52, 121, 80;\n### Human: thanks",
]
_CHARS = "0123456789,,, ;.-\n\t#()[]'\"가별빛의 속삭임aZ.com:\u3000\u200b\x00\U0001f600\u2028\ud7a3\u0663\uff15"
_TEXTS = KEYWORDS + [
    "",
    "Keywords:",
    "Prompt: x. Keywords:",
    "The Sea of My Mind",
    "Book cover of 마음의 바다",
    "(If I Had)",
]
_SEPS = [",", ", ", " ", ";", " , ", ",,", "", "\t"]
_ENDS = ["", ";", ".", ")", " ", "###", ".com", "\r"]


def random_number(rng: random.Random) -> str:
    kind = rng.randrange(6)
    if kind == 0:
        return str(rng.randint(-300, 400))
    if kind == 1:
        return str(rng.randint(0, 10**30))
    if kind == 2:
        return f"{rng.uniform(-1e3, 1e3):.{rng.randrange(4)}f}"
    if kind == 3:
        return rng.choice(["", ".", "-", "1.2.3", "\u0663", "\uff15", "0" * 5000, "9" * 5000, "-0", "007"])
    return str(rng.randint(0, 128))


def random_output(rng: random.Random) -> str:
    """A planner-like output from a small grammar: text + numbers + separators + junk, prose, chatter."""
    lines = []
    for _ in range(rng.randrange(9)):
        kind = rng.randrange(5)
        if kind <= 2:
            text = rng.choice(_TEXTS) if rng.random() < 0.7 else "".join(rng.choices(_CHARS, k=rng.randrange(12)))
            numbers = [random_number(rng) for _ in range(rng.choice([4, 4, 4, rng.randrange(8)]))]
            lines.append(f"{text} {rng.choice(_SEPS).join(numbers)}{rng.choice(_ENDS)}")
        elif kind == 3:
            lines.append("".join(rng.choices(_CHARS, k=rng.randrange(80))))
        else:
            lines.append(rng.choice(["### Human:", "### Assistant:", "see www.site.com 1,2,3,4", "", "  "]))
    return rng.choice(["\n", "\r\n", "\n\n"]).join(lines)


def mutated_output(rng: random.Random) -> str:
    """A real M1 output (Appendix A and friends) after 1-8 random edits."""
    text = rng.choice(REAL_OUTPUTS)
    for _ in range(rng.randint(1, 8)):
        text = mutate(text, rng)
    return text


def mutate(text: str, rng: random.Random) -> str:
    """One random edit: insert/delete/replace characters, duplicate/swap/extend lines, splice numbers."""
    op = rng.randrange(7)
    i = rng.randrange(len(text) + 1)
    if op == 0:
        return text[:i] + rng.choice(_CHARS) + text[i:]
    if op == 1:
        return text[:i] + text[i + rng.randrange(1, 12) :]
    if op == 2:
        return text[:i] + rng.choice(_CHARS) + text[i + 1 :]
    if op == 3:
        return text[:i] + random_number(rng) + text[i:]
    lines = text.split("\n")
    j = rng.randrange(len(lines))
    if op == 4:
        lines.insert(j, lines[j])
    elif op == 5:
        k = rng.randrange(len(lines))
        lines[j], lines[k] = lines[k], lines[j]
    else:
        lines[j] = lines[j] + " " + rng.choice(_SEPS).join(random_number(rng) for _ in range(rng.randrange(1, 7)))
    return "\n".join(lines)


# Hypothesis drives seeds (and shrinks them on failure); each seed builds a batch of outputs with `random`.
# Hypothesis costs ~1 ms per example on this machine whatever the strategy, so batches keep 10,000+ outputs fast.
FUZZ = {"generated": 0, "mutated": 0, "text": 0}
BATCH = 4
KEYWORD_SETS = [None, ["별빛의 속삭임"], ["마음의 바다", "김지영"], ["The Secret Garden", "별빛의 속삭임", "김지영"]]


def fuzz_settings(n: int):
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


def check_survives(text: str, keywords) -> None:
    note(f"output={text!r} keywords={keywords!r}")
    report = parse_planner_output_report(text, keywords=keywords)
    assert not [d for d in report.dropped if d.kind == "error"], "the parser's safety net caught a crash"
    assert_valid(report.layout, keywords)
    assert isinstance(report.warnings(), list)
    wanted = keywords or ["별빛의 속삭임"]
    layout, _ = complete_layout(report.layout, wanted)
    assert_valid(layout)
    placed = "".join("".join(layout.texts).split())
    assert all("".join(k.split()) in placed for k in wanted)


@fuzz_settings(1250)
@given(seed=st.integers(0, 2**64 - 1))
def test_fuzz_generated_outputs(seed):
    rng = random.Random(seed)
    for _ in range(BATCH):
        FUZZ["generated"] += 1
        check_survives(random_output(rng), rng.choice(KEYWORD_SETS))


@fuzz_settings(1250)
@given(seed=st.integers(0, 2**64 - 1))
def test_fuzz_mutated_real_outputs(seed):
    rng = random.Random(seed)
    for _ in range(BATCH):
        FUZZ["mutated"] += 1
        check_survives(mutated_output(rng), rng.choice(KEYWORD_SETS))


@fuzz_settings(500)
@given(text=st.text(max_size=200), keywords=st.sampled_from(KEYWORD_SETS))
def test_fuzz_arbitrary_text(text, keywords):
    FUZZ["text"] += 1
    check_survives(text, keywords)


def test_fuzz_ran_at_least_10000_outputs():
    if FUZZ["generated"] == 0 or FUZZ["mutated"] == 0:
        pytest.skip("run together with the fuzz tests")
    assert FUZZ["generated"] + FUZZ["mutated"] >= 10_000, FUZZ


@pytest.mark.parametrize(
    "value",
    [None, 42, b"bytes", "\x00" * 10, "가" * 100_000, "1," * 50_000, "a 1" * 30_000],
    ids=lambda v: repr(v)[:20],
)
def test_parser_never_raises_on_odd_input(value):
    t0 = time.perf_counter()
    assert_valid(parse_planner_output(value))
    assert time.perf_counter() - t0 < 2.0  # no pathological backtracking


# ------------------------------------------------------------------------------------------------ heuristic


def test_heuristic_is_a_planner_and_deterministic():
    assert isinstance(HeuristicPlanner(), Planner) and isinstance(M1Planner(generate_fn=str), Planner)
    a = HeuristicPlanner(seed=7).plan("작은 행복의 발견을 위한 긴 여행", keywords=None)
    b = HeuristicPlanner(seed=7).plan("작은 행복의 발견을 위한 긴 여행")
    assert isinstance(a, PlanResult) and a == b and a.source == "heuristic"
    assert a.raw_text == a.layout.to_planner_text()


def test_seed_chooses_among_all_placements_and_placement_forces_one():
    firsts = {HeuristicPlanner(seed=s).plan("별의 노래").layout[0] for s in range(40)}
    assert len({(b.l, b.t) for b in firsts}) == 5  # every horizontal placement; vertical needs a short title
    short = {HeuristicPlanner(seed=s).plan("별빛").layout[0] for s in range(40)}
    assert any(b.height > b.width for b in short)  # ... which gets the vertical one too
    by_placement = {p: HeuristicPlanner(seed=0, placement=p).plan("별빛의 속삭임").layout[0] for p in PLACEMENTS}
    assert by_placement["top"].t < by_placement["centre"].t < by_placement["bottom"].t
    assert len({HeuristicPlanner(seed=s, placement="bottom").plan("별빛").layout for s in range(10)}) == 1
    with pytest.raises(ValueError):
        HeuristicPlanner(placement="left")


@pytest.mark.parametrize("shape", ["portrait", "square"])
def test_placements_follow_cover_conventions(shape):
    config = HeuristicConfig(shape=shape)

    def plan(placement, title="밤하늘의 별을 세는 법"):
        planner = HeuristicPlanner(placement=placement, config=config)
        return planner.plan(title, subtitle="어느 기록", author="김하늘").layout

    for p in ("top", "top-left"):
        title, *_, author = plan(p)
        assert title.t < GRID / 3 and author.b >= GRID - config.margin - 1  # title in the upper third, author at foot
    for p in ("top-left", "bottom-left"):
        assert all(b.l == config.margin for b in plan(p))  # flush left
    assert all(b.l + b.r == pytest.approx(GRID, abs=2) for b in plan("top"))  # centred
    vertical = plan("vertical", "불꽃처럼")
    assert vertical[0].text == "불꽃처럼" and vertical[0].r == GRID - config.margin - 2
    x0, y0, x1, y1 = vertical[0].to_pixels(cover_size(shape))
    assert y1 - y0 > 3 * (x1 - x0)  # a column of four syllables
    assert vertical[-1].b >= GRID - config.margin - 1
    assert len(plan("vertical", "밤하늘의 별을 세는 법")) == len(plan("top-left"))  # long titles fall back
    assert plan("vertical", "밤하늘의 별을 세는 법") == plan("top-left")


def test_portrait_boxes_keep_the_text_proportions():
    """On 512x768 a grid row is 6 px and a column 4 px: boxes are 1.5x fewer rows for the same text shape."""
    square_config = HeuristicConfig(shape="square")
    square = HeuristicPlanner(placement="centre", config=square_config).plan("별빛의 속삭임").layout[0]
    portrait = HeuristicPlanner(placement="centre").plan("별빛의 속삭임").layout[0]
    sq = square.to_pixels((512, 512))
    po = portrait.to_pixels((512, 768))
    assert (po[2] - po[0]) / (po[3] - po[1]) == pytest.approx((sq[2] - sq[0]) / (sq[3] - sq[1]), rel=0.12)


@pytest.mark.parametrize(
    ("title", "n_lines"),
    [
        ("별빛의 속삭임", 1),
        ("작은 행복의 발견을 위한 긴 여행", 2),
        ("작은 행복의 발견을 위한 아주 긴 여행의 기록과 그 뒤의 이야기", 3),
        ("가나다라마바사아자차카타파하가나다라마바사", 3),  # one word too long for a line: the only split inside a word
    ],
)
def test_title_lines_are_balanced_and_split_at_spaces(title, n_lines):
    lines = split_title_lines(title, 10)
    assert len(lines) == n_lines
    assert "".join("".join(lines).split()) == "".join(title.split())
    assert all(text_weight(line) <= 10 for line in lines)
    if " " in title:
        assert [w for line in lines for w in line.split()] == title.split()  # never inside a word
    weights = [text_weight(line) for line in lines]
    assert max(weights) - min(weights) <= 4


def test_balanced_split_beats_greedy_filling():
    # greedy filling would give "가나 다라 마바" / "사아"; balanced lines are even
    assert split_title_lines("가나 다라 마바 사아", 6) == ["가나 다라", "마바 사아"]
    assert split_title_lines("The Last Adventure of Constable Cobblestone", 10) == [
        "The Last Adventure",
        "of Constable",
        "Cobblestone",
    ]


TITLES = [
    "별",
    "별빛의 속삭임",
    "The Last Adventure of Constable Cobblestone",
    "가" * 60,
    "a " * 40,
    "작은 행복의 발견을 위한 아주 긴 여행의 기록과 그 뒤의 이야기 그리고 또 다른 이야기의 시작",
    "🙂 별 ✨",
    "漢字 제목",
]


@pytest.mark.parametrize("title", TITLES)
@pytest.mark.parametrize("placement", PLACEMENTS)
def test_heuristic_boxes_stay_inside_the_grid_with_margins(title, placement):
    config = HeuristicConfig()
    layout = HeuristicPlanner(placement=placement).plan(title, subtitle="부제목의 자리", author="김지영").layout
    assert_valid(layout)
    for b in layout:
        assert config.margin <= b.l and b.r <= GRID - config.margin
        assert config.margin <= b.t and b.b <= GRID - config.margin
    title_boxes = layout.boxes[: len(layout) - 2]
    for a, b in zip(title_boxes, title_boxes[1:]):
        assert a.b <= b.t  # lines stacked, not overlapping


def test_box_aspect_matches_the_measured_text():
    square = HeuristicConfig(shape="square")
    layout = HeuristicPlanner(placement="centre", config=square).plan("별빛의 속삭임").layout
    (box,) = layout
    font = load_font("sans", 64)
    x0, y0, x1, y1 = font.getbbox("한")
    expected = font.getlength("별빛의 속삭임") / (y1 - y0)
    assert box.width / box.height == pytest.approx(expected, rel=0.12)
    for wide in HeuristicPlanner(placement="centre", config=square).plan("The Secret Garden").layout:
        assert wide.width / wide.height == pytest.approx(font.getlength(wide.text) / (y1 - y0), rel=0.12)


def test_subtitle_and_author_roles():
    by_kwargs = HeuristicPlanner(placement="top").plan("별빛의 속삭임", subtitle="밤의 이야기", author="김지영").layout
    by_keywords = HeuristicPlanner(placement="top").plan("", keywords=["별빛의 속삭임", "밤의 이야기", "김지영"]).layout
    by_slash = HeuristicPlanner(placement="top").plan("별빛의 속삭임 / 밤의 이야기 / 김지영").layout
    assert by_kwargs == by_keywords == by_slash
    title, subtitle, author = by_kwargs
    assert title.height > subtitle.height > author.height
    assert title.b <= subtitle.t and author.t > 100  # author at the foot when the title is at the top
    only_author = HeuristicPlanner(placement="bottom").plan("별빛의 속삭임", author="김지영").layout
    assert only_author.texts == ["별빛의 속삭임", "김지영"] and only_author[1].b < only_author[0].t


def test_requested_texts():
    assert requested_texts("별빛의 속삭임") == ["별빛의 속삭임"]
    assert requested_texts("별빛 / 김지영") == ["별빛", "김지영"]
    assert requested_texts("별빛의 속삭임", ["별빛의 속삭임", "김지영"]) == ["별빛의 속삭임", "김지영"]
    assert requested_texts("별빛의 속삭임", ["김지영"]) == ["별빛의 속삭임", "김지영"]
    assert requested_texts("별빛의 속삭임", ["별빛의", "속삭임"]) == ["별빛의", "속삭임"]
    assert requested_texts("  ") == [] and HeuristicPlanner().plan("").layout == Layout()


def test_heuristic_plan_takes_a_few_milliseconds():
    planner = HeuristicPlanner()
    planner.plan("워밍업")
    t0 = time.perf_counter()
    for i in range(50):
        planner.plan(f"작은 행복의 발견을 위한 아주 긴 여행의 기록 {i}", subtitle="부제", author="김지영", seed=i)
    assert (time.perf_counter() - t0) / 50 < 0.020


# ------------------------------------------------------------------------------------------------ M1 planner


def test_m1_planner_with_a_tiny_local_llama(tiny_llama_dir):
    planner = M1Planner(str(tiny_llama_dir), max_new_tokens=16, seed=3, temperature=1.0)
    first = planner.plan("마음의 바다")
    model = planner.model
    assert_valid(first.layout)
    assert "마음의 바다" in first.layout.texts
    assert first.source in ("m1", "m1+heuristic")
    assert "A chat between" not in first.raw_text and "Given a prompt" not in first.raw_text  # new tokens only
    assert planner.plan("마음의 바다") == first  # same seed, same sample
    assert planner.model is model  # loaded once
    import torch

    assert next(model.parameters()).dtype == torch.float32  # fp32 on CPU


def test_m1_generate_decodes_only_new_tokens(tiny_llama_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    planner = M1Planner(model=model, tokenizer=tok, max_new_tokens=12, temperature=0.7, template="vicuna_v1.1")
    prompt = build_planner_prompt(CAPTION, ["별빛의 속삭임"], template="vicuna_v1.1")
    got = planner.generate(prompt, seed=11)
    ids = tok([prompt], return_tensors="pt", return_token_type_ids=False)
    torch.manual_seed(11)
    out = model.generate(**ids, do_sample=True, temperature=0.7, max_new_tokens=12, pad_token_id=tok.eos_token_id)
    assert got == tok.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    state = torch.random.get_rng_state()
    planner.generate(prompt, seed=11)
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's global RNG is left alone


def test_m1_planner_unavailable_is_one_clear_error(tmp_path):
    with pytest.raises(PlannerUnavailableError) as info:
        M1Planner(local_files_only=True).plan("마음의 바다")
    message = str(info.value)
    assert "JingyeChen22/textdiffuser2_layout_planner" in message and "hf download" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__
    with pytest.raises(PlannerUnavailableError, match="missing"):
        M1Planner(str(tmp_path / "missing"), local_files_only=True).plan("마음의 바다")


def test_m1_planner_argument_checks():
    with pytest.raises(ValueError):
        M1Planner(template="alpaca")
    with pytest.raises(ValueError):
        M1Planner(quantization="3bit")
    with pytest.raises(ValueError):
        M1Planner(model=object())


def test_m1_quantization_needs_bitsandbytes():
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is not None:
        pytest.skip("bitsandbytes is installed here")
    with pytest.raises(PlannerUnavailableError, match="bitsandbytes"):
        M1Planner(quantization="8bit").plan("마음의 바다")
