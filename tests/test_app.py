"""app.py handlers called directly with the tiny random pipeline (no server, no browser)."""

import gradio as gr
import numpy as np
import pytest
import torch

import app
from kordiff.layout import Layout

TITLE = "마음의 바다"


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models run ~5x faster on one thread than on two contended ones."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def cover_app():
    return app.CoverApp(app.AppConfig(model="tiny-random", planner="heuristic"))


@pytest.fixture(scope="module")
def planned(cover_app):
    return cover_app.plan(TITLE, "", "", "", "heuristic")


def gen(cover_app, table, seed=3, n=1, randomise=False, title=TITLE, **kw):
    args = dict(num_images=n, steps=1, guidance=7.5, scheduler="ddim", seed=seed, randomise=randomise)
    args.update(kw)
    return cover_app.generate(title, "", table, **args)


def test_plan_fills_canvas_table_raw_output_and_state(planned):
    canvas, rows, raw, notices, state = planned
    layout = Layout.from_dict(state)
    assert layout.texts[0] == TITLE
    assert rows == [[b.text, b.l, b.t, b.r, b.b] for b in layout]
    assert [b["label"] for b in canvas["boxes"]] == layout.texts
    assert canvas["image"].size == (512, 512)
    assert raw.startswith("# planner: heuristic\n")
    assert notices == ""


def test_plan_places_subtitle_and_author(cover_app):
    _, rows, *_ = cover_app.plan(TITLE, "바다 이야기", "김하늘", "", "heuristic")
    assert [r[0] for r in rows] == [TITLE, "바다 이야기", "김하늘"]
    with pytest.raises(gr.Error, match="The author is 201 characters long"):
        cover_app.plan(TITLE, "", "가" * 201, "", "heuristic")


def test_plan_refuses_an_empty_title(cover_app):
    with pytest.raises(gr.Error, match="Type a book title"):
        cover_app.plan("  ", "", "", "", "heuristic")


def test_m1_unavailable_falls_back_to_heuristic_with_a_notice(cover_app, monkeypatch):
    def unavailable(*a):
        raise app.PlannerUnavailableError("no M1 weights here")

    monkeypatch.setattr(app, "_plan_m1", unavailable)
    _, rows, raw, notices, _ = cover_app.plan(TITLE, "", "", "", "m1")
    assert rows and "heuristic" in raw
    assert "M1 planner unavailable (no M1 weights here)" in notices


def test_m1_planner_path_with_a_tiny_llama(tiny_llama_dir, tmp_path):
    m1_app = app.CoverApp(app.AppConfig(model="tiny-random", planner="m1", m1_model=str(tiny_llama_dir)))
    canvas, rows, raw, notices, state = m1_app.plan(TITLE, "", "김하늘", "", "m1")
    assert raw.startswith("# planner: m1")  # "m1" or "m1+heuristic" when the random LLM's answer is repaired
    assert {r[0] for r in rows} == {TITLE, "김하늘"} and "M1 planner unavailable" not in notices
    missing = app.CoverApp(app.AppConfig(model="tiny-random", planner="m1", m1_model=str(tmp_path / "no-m1")))
    _, rows, raw, notices, _ = missing.plan(TITLE, "", "", "", "m1")
    assert raw.startswith("# planner: heuristic") and "(Could not load the M1 layout planner" in notices


def test_plan_of_hanja_and_emoji_title_says_what_has_no_token(cover_app):
    notices = cover_app.plan("天地 🎉", "", "", "", "heuristic")[3]
    assert "No token for 天 地 🎉" in notices


def test_dragging_a_box_updates_the_table_and_a_no_op_leaves_it_alone(cover_app, planned):
    canvas, rows = planned[0], planned[1]
    assert cover_app.edit_boxes(canvas, rows)[0] == gr.skip()
    moved = {"image": canvas["image"], "boxes": [dict(canvas["boxes"][0], xmin=100, xmax=300)] + canvas["boxes"][1:]}
    new_rows, notices = cover_app.edit_boxes(moved, rows)
    assert new_rows[0] == [TITLE, 25, rows[0][2], 75, rows[0][4]] and new_rows[1:] == rows[1:]
    off = {"image": canvas["image"], "boxes": [dict(canvas["boxes"][0], xmin=-50, ymax=900)]}
    assert "clipped" in cover_app.edit_boxes(off, rows)[1]
    assert cover_app.edit_boxes(None, rows)[0] == []


def test_table_edit_redraws_the_canvas_and_reset_restores_the_plan(cover_app, planned):
    canvas, rows, _, _, state = planned
    new_canvas, notices = cover_app.edit_table([[TITLE, 0, 0, 64, 200], ["", 1, 1, 1, 1]])
    assert new_canvas["boxes"][0] | {} == {"label": TITLE, "xmin": 0, "ymin": 0, "xmax": 256, "ymax": 512,
                                           "color": "rgb(230, 25, 75)"}
    assert "clipped" in notices and "row 2 has no text" in notices
    assert cover_app.reset(state)[1] == rows
    assert cover_app.reset(None)[1] == [] and "Nothing planned" in cover_app.reset(None)[2]


def test_generate_shows_seeds_preview_prompt_and_is_deterministic(cover_app, planned):
    rows = planned[1]
    gallery, preview, prompt, notices, seed = gen(cover_app, rows, seed=11, n=2)
    assert sorted(c.split(" · ")[0] for _, c in gallery) == ["seed 11", "seed 12"] and seed == 11
    size = app.pipeline_for("tiny-random").image_size
    assert gallery[0][0].size == (size, size) and preview.size == (512, 512)
    assert "[마][음][의][ ][바][다]" in prompt and "book cover with a title of 마음의 바다" in prompt
    again = gen(cover_app, rows, seed=11, n=2)[0]
    assert all(np.array_equal(np.asarray(a[0]), np.asarray(b[0])) for a, b in zip(again, gallery))
    alone = np.asarray(gen(cover_app, rows, seed=12)[0][0][0], dtype=int)  # seed 12 alone: same image up to
    by_seed = {c.split(" · ")[0]: img for img, c in gallery}
    assert np.abs(alone - np.asarray(by_seed["seed 12"], dtype=int)).max() <= 3  # batch-size rounding


def test_randomise_draws_a_seed_and_reports_it(cover_app, planned):
    gallery, *_, seed = gen(cover_app, planned[1], seed=0, randomise=True)
    assert gallery[0][1].split(" · ")[0] == f"seed {seed}"


def test_generate_without_boxes_explains(cover_app):
    gallery, _, prompt, notices, _ = gen(cover_app, [])
    assert len(gallery) == 1 and "No text boxes" in notices


def test_generate_with_a_long_title_says_what_was_cut(cover_app):
    title = "바람이 머무는 곳에서 우리는 다시 만나게 될 것이다 그리고"
    # the caption gives way so the title's own tokens fit ...
    notices = gen(cover_app, [[title, 0, 0, 128, 30], ["저자", 0, 100, 128, 120]], title=title)[3]
    assert "Caption shortened from" in notices and "cut" not in notices and "left out" not in notices
    # ... and boxes that cannot fit even then are reported
    lines = [[f"{title} {i}", 0, 10 * i, 128, 10 * i + 9] for i in range(3)]
    notices = gen(cover_app, lines + [["저자", 0, 100, 128, 120]], title=title)[3]
    assert "cut" in notices and "left out" in notices and "'저자'." in notices and "fits in the prompt" in notices


@pytest.mark.parametrize("change,msg", [
    ({"num_images": 9}, "Number of images must be between 1 and 8"),
    ({"num_images": "many"}, "Number of images must be a number"),
    ({"steps": 0}, "Steps must be between"),
    ({"guidance": -1}, "Guidance scale must be between"),
    ({"scheduler": "lms"}, "Unknown scheduler"),
    ({"seed": -5}, "Seed must be between"),
    ({"title": ""}, "Type a book title"),
    ({"mode": "watercolour"}, "Unknown mode 'watercolour'"),
])
def test_generate_validates_before_loading_anything(change, msg):
    never_loaded = app.CoverApp(app.AppConfig(model="/nonexistent/kordiff", planner="heuristic"))
    with pytest.raises(gr.Error, match=msg):
        gen(never_loaded, [[TITLE, 0, 0, 128, 30]], **change)


def test_missing_weights_give_one_clear_message(tmp_path):
    missing = app.CoverApp(app.AppConfig(model=str(tmp_path / "no-model"), planner="heuristic"))
    assert missing.plan(TITLE, "", "", "", "heuristic")[1]  # planning still works
    with pytest.raises(gr.Error) as e:
        gen(missing, [[TITLE, 0, 0, 128, 30]])
    assert e.value.title == "Model unavailable"
    assert "Could not load the kordiff pipeline" in e.value.message and "Planning and editing still work" in \
        e.value.message


def test_demo_has_named_endpoints_and_offers_the_three_modes():
    api = app.demo.get_api_info()["named_endpoints"]
    assert {"/plan", "/generate", "/edit_boxes", "/edit_table"} <= set(api)
    mode = next(p for p in api["/generate"]["parameters"] if p["parameter_name"] == "mode")
    assert mode["type"]["enum"] == ["diffusion", "hybrid", "typeset"]


def test_covers_modes_typeset_without_weights_hybrid_explains(tmp_path):
    no_weights = app.CoverApp(app.AppConfig(model=str(tmp_path / "no-model"), planner="heuristic"))
    rows = [[TITLE, 8, 10, 120, 40], ["김하늘", 40, 100, 88, 118]]
    gallery = gen(no_weights, rows, seed=5, n=2, mode="typeset")[0]
    assert [c.split(" · ")[:2] for _, c in gallery] == [["seed 5", "typeset"], ["seed 6", "typeset"]]
    assert all("OCR read" in c for _, c in gallery)
    with pytest.raises(gr.Error, match="mode works without weights"):
        gen(no_weights, rows, mode="hybrid")
    with pytest.raises(gr.Error, match="plan a layout or add a row"):
        gen(no_weights, [], mode="typeset")
