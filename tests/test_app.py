"""app.py handlers called directly with the tiny random pipeline (no server, no browser)."""

import gradio as gr
import numpy as np
import pytest

import app
from kordiff import editing, service
from kordiff.layout import Layout

TITLE = "마음의 바다"
SKIP = gr.skip()
OUT = ("gallery", "preview", "prompt", "notices", "seed", "details", "status", "switch")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def cover_app():
    return app.CoverApp(app.AppConfig(model="tiny-random", planner="heuristic"))


@pytest.fixture(scope="module")
def planned(cover_app):
    return cover_app.plan(TITLE, "", "", "", "heuristic", "diffusion")


def final(outputs) -> dict:
    """What the page shows after a generator handler: the last value yielded for each output (skips aside)."""
    shown = {}
    for values in outputs:
        shown.update({k: v for k, v in zip(OUT, values) if v != SKIP})
    return shown


def gen(cover_app, table, seed=3, n=1, randomise=False, title=TITLE, mode="diffusion", **kw):
    args = dict(num_images=n, steps=1, guidance=7.5, scheduler="ddim", seed=seed, randomise=randomise, mode=mode)
    args.update(kw)
    return final(cover_app.generate(title, "", table, **args))


def test_plan_fills_canvas_table_raw_output_and_state(planned):
    canvas, rows, raw, notices, state = planned
    layout = Layout.from_dict(state)
    assert layout.texts[0] == TITLE
    assert rows == [[b.text, b.l, b.t, b.r, b.b] for b in layout]
    assert [b["label"] for b in canvas["boxes"]] == layout.texts
    assert canvas["image"].size == editing.CANVAS_SIZE
    assert raw.startswith("# planner: heuristic\n")
    assert notices == ""


def test_defaults_follow_what_this_machine_can_do():
    """No GPU and no TD2 weights here: typeset mode, heuristic planner, and a status line saying why."""
    plain = app.CoverApp(app.AppConfig())
    assert (plain.config.mode, plain.config.planner) == ("typeset", "heuristic")
    assert "typeset mode" in plain.status and "hf download" in plain.status
    assert app.CoverApp(app.AppConfig(mode="diffusion")).config.mode == "diffusion"  # an explicit choice wins


def test_plan_places_subtitle_and_author_and_announces_trimming(cover_app):
    _, rows, *_ = cover_app.plan(TITLE, "바다 이야기", "김하늘", "", "heuristic", "typeset")
    assert [r[0] for r in rows] == [TITLE, "바다 이야기", "김하늘"]
    _, rows, _, notices, _ = cover_app.plan("가" * 300, "", "", "", "heuristic", "typeset")
    assert sum(len(r[0]) for r in rows) <= 200
    assert "The title: it was 300 characters long: trimmed to the first 200." in notices


def test_plan_refuses_an_empty_title_with_a_notice_and_changes_nothing(cover_app):
    out = cover_app.plan("  ", "", "", "", "heuristic", "typeset")
    assert out[3] == "- **Error:** Type a book title first (Korean or English)."
    assert [o for i, o in enumerate(out) if i != 3] == [SKIP] * 4


def test_surrogates_and_control_codes_are_removed_with_a_notice(cover_app):
    _, rows, _, notices, _ = cover_app.plan("마음\ud800의\x00 바다", "", "", "", "heuristic", "typeset")
    assert rows[0][0] == TITLE and "invalid characters" in notices
    shown = gen(cover_app, [["바다\udfff", 8, 10, 120, 40]], mode="typeset", title="\ud83d")
    assert "Type a book title" in shown["notices"]


def test_m1_unavailable_falls_back_to_heuristic_with_a_notice(cover_app, monkeypatch):
    from kordiff.planner import PlannerUnavailableError

    def unavailable(*a):
        raise PlannerUnavailableError("no M1 weights here")

    monkeypatch.setattr(service, "plan_m1", unavailable)
    _, rows, raw, notices, _ = cover_app.plan(TITLE, "", "", "", "m1", "typeset")
    assert rows and "heuristic" in raw
    assert "M1 planner unavailable (no M1 weights here)" in notices and "27 GB of RAM" in notices


def test_m1_planner_path_with_a_tiny_llama(tiny_llama_dir, tmp_path):
    m1_app = app.CoverApp(app.AppConfig(model="tiny-random", planner="m1", m1_model=str(tiny_llama_dir)))
    canvas, rows, raw, notices, state = m1_app.plan(TITLE, "", "김하늘", "", "m1", "typeset")
    assert raw.startswith("# planner: m1")  # "m1" or "m1+heuristic" when the random LLM's answer is repaired
    assert {r[0] for r in rows} == {TITLE, "김하늘"} and "M1 planner unavailable" not in notices
    missing = app.CoverApp(app.AppConfig(model="tiny-random", planner="m1", m1_model=str(tmp_path / "no-m1")))
    _, rows, raw, notices, _ = missing.plan(TITLE, "", "", "", "m1", "typeset")
    assert raw.startswith("# planner: heuristic")
    assert "M1 planner unavailable (Could not load the M1 layout planner" in notices


def test_notices_apply_to_the_chosen_mode(cover_app):
    """Prompt notices only where a prompt conditions the image; typeset names what its font cannot draw."""
    diffusion = cover_app.plan("天地 🎉", "", "", "", "heuristic", "diffusion")[3]
    assert "No token for 天 地 🎉" in diffusion
    typeset = cover_app.plan("바다 🎉", "", "", "", "heuristic", "typeset")[3]
    assert "No token" not in typeset and "🎉 in '바다 🎉' cannot be drawn by the cover font" in typeset


def test_dragging_a_box_updates_the_table_and_a_no_op_keeps_the_notices(cover_app, planned):
    canvas, rows = planned[0], planned[1]
    assert cover_app.edit_boxes(canvas, rows, None)[:3] == (SKIP, SKIP, SKIP)  # Plan's notices stay
    moved = {"boxes": [dict(canvas["boxes"][0], xmin=100, xmax=300)] + canvas["boxes"][1:]}
    new_rows, new_canvas, notices, _ = cover_app.edit_boxes(moved, rows, None)
    assert new_rows[0] == [TITLE, 25, rows[0][2], 75, rows[0][4]] and new_rows[1:] == rows[1:]
    off = {"boxes": [dict(canvas["boxes"][0], xmin=-50, ymax=5000)]}
    new_rows, new_canvas, notices, _ = cover_app.edit_boxes(off, rows, None)
    assert "clipped" in notices and new_canvas["boxes"][0]["xmin"] == 0  # the canvas shows the clipped box


def test_a_new_box_is_appended_and_its_missing_text_reported_once_the_dialog_closed(cover_app, planned):
    canvas, rows = planned[0], planned[1]
    new = {"label": "", "xmin": 40, "ymin": 600, "xmax": 300, "ymax": 700, "color": "rgb(0, 0, 0)"}
    first = cover_app.edit_boxes({"boxes": [new, *canvas["boxes"]]}, rows, None)  # dialog open
    assert first[0] == SKIP and first[2] == SKIP
    again = cover_app.edit_boxes({"boxes": [new, *canvas["boxes"]]}, rows, first[3])  # closed without text
    assert "box 1 has no text" in again[2]
    named = cover_app.edit_boxes({"boxes": [dict(new, label="부제"), *canvas["boxes"]]}, rows, first[3])
    assert [r[0] for r in named[0]] == [*(r[0] for r in rows), "부제"]  # after the title, not before
    assert [b["label"] for b in named[1]["boxes"]] == [*(r[0] for r in rows), "부제"]


@pytest.mark.parametrize("payload", [None, {}, {"boxes": "x"}, {"boxes": [None, 5, "a", {"xmin": 10**400}]},
                                     {"boxes": [{"label": "a", "xmin": 1, "ymin": 1, "xmax": 9, "ymax": 9,
                                                 "scaleFactor": 0}]}])
def test_malformed_canvas_payloads_give_notices(cover_app, planned, payload):
    rows, _, notices, _ = cover_app.edit_boxes(payload, planned[1], None)
    assert isinstance(notices, str | dict)


def test_table_edit_redraws_canvas_and_table_and_reset_restores_the_plan(cover_app, planned):
    canvas, rows, _, _, state = planned
    new_canvas, new_rows, notices = cover_app.edit_table([[TITLE, 0, 0, 64, 500], ["", 1, 1, 1, 1], ["부제", "", "", "",
                                                                                                      ""]])
    w, h = editing.CANVAS_SIZE
    assert new_canvas["boxes"][0] | {} == {"label": TITLE, "xmin": 0, "ymin": 0, "xmax": w // 2, "ymax": h,
                                           "color": "rgb(230, 25, 75)"}
    assert new_rows[0] == [TITLE, 0, 0, 64, 128] and new_rows[1][0] == "부제"  # no stale 500, the new row placed
    assert "clipped" in notices and "row 2 has no text" in notices
    assert cover_app.edit_table(new_rows)[1] == SKIP  # nothing to redraw
    assert cover_app.reset(state)[1] == rows
    assert cover_app.reset(None)[1] == [] and "Nothing planned" in cover_app.reset(None)[2]


def test_generate_shows_seeds_preview_prompt_and_is_deterministic(cover_app, planned):
    rows = planned[1]
    shown = gen(cover_app, rows, seed=11, n=2)
    gallery = shown["gallery"]
    assert sorted(c.split(" · ")[0] for _, c in gallery) == ["seed 11", "seed 12"] and shown["seed"] == 11
    assert shown["preview"].size == editing.CANVAS_SIZE
    assert "[마][음][의][ ][바][다]" in shown["prompt"] and "book cover with a title of 마음의 바다" in shown["prompt"]
    assert all(caption in shown["details"] for _, caption in gallery)
    again = gen(cover_app, rows, seed=11, n=2)["gallery"]
    from kordiff.shared import pipeline_for

    size = pipeline_for("tiny-random").image_size
    assert gallery[0][0].size == (size, size * 3 // 2)  # covers: portrait default
    assert all(np.array_equal(np.asarray(a[0]), np.asarray(b[0])) for a, b in zip(again, gallery))


def test_randomise_draws_a_seed_and_reports_it(cover_app, planned):
    shown = gen(cover_app, planned[1], seed=0, randomise=True)
    assert shown["gallery"][0][1].split(" · ")[0] == f"seed {shown['seed']}"


def test_generate_without_boxes_explains(cover_app):
    shown = gen(cover_app, [])
    assert len(shown["gallery"]) == 1 and "No text boxes" in shown["notices"]
    image = shown["gallery"][0][0]
    assert image.height > image.width  # the canvas's (portrait) shape at the model's width


def test_typeset_shows_no_prompt_notices_and_says_what_is_not_scorable(cover_app):
    title = "바람이 머무는 곳에서 우리는 다시 만나게 될 것이다 그리고"
    rows = [[f"{title} {i}", 0, 10 * i, 128, 10 * i + 9] for i in range(3)]
    assert "Prompt full" in gen(cover_app, rows, title=title)["notices"]
    assert "Prompt full" not in gen(cover_app, rows, title=title, mode="typeset")["notices"]
    latin = gen(cover_app, [["The Silent Forest", 8, 10, 120, 40]], title="The Silent Forest", mode="typeset")
    assert "not scorable (no Hangul" in latin["gallery"][0][1] and "similarity" not in latin["gallery"][0][1]


@pytest.mark.parametrize("change,msg", [
    ({"num_images": 9}, "Number of images must be between 1 and 8"),
    ({"num_images": "many"}, "Number of images must be a number"),
    ({"num_images": 10**400}, "Number of images must be a number"),
    ({"steps": 0}, "Steps must be between"),
    ({"guidance": -1}, "Guidance scale must be between"),
    ({"scheduler": "lms"}, "Unknown scheduler"),
    ({"seed": -5}, "Seed must be between"),
    ({"title": ""}, "Type a book title"),
    ({"mode": "watercolour"}, "Unknown mode 'watercolour'"),
    ({"num_images": 8, "steps": 50}, "at most 40"),
])
def test_generate_validates_before_loading_anything(change, msg):
    never_loaded = app.CoverApp(app.AppConfig(model="/nonexistent/kordiff", planner="heuristic"))
    shown = gen(never_loaded, [[TITLE, 0, 0, 128, 30]], **change)
    assert msg in shown["notices"] and "gallery" not in shown


def test_huge_tables_are_refused_and_huge_rows_cut_before_any_work(cover_app):
    import time

    start = time.perf_counter()
    shown = gen(cover_app, [["가" * 100_000, 0, 0, 128, 30]] * 3000, mode="typeset")
    assert time.perf_counter() - start < 1 and "gallery" not in shown
    assert "The table has 3,000 rows; a cover takes at most 16 text boxes" in shown["notices"]
    shown = gen(cover_app, [["가" * 100_000, 0, 0, 128, 30]], mode="typeset")
    assert "longer than 200 characters: trimmed to 200" in shown["notices"] and len(shown["gallery"]) == 1
    notices = cover_app.edit_table([[f"줄{i}", 0, i, 128, i + 1] for i in range(20)])[2]
    assert "Only 16 text boxes fit on a cover: row 17" in notices


def test_missing_weights_keep_a_status_and_offer_typeset(tmp_path):
    missing = app.CoverApp(app.AppConfig(model=str(tmp_path / "no-model"), planner="heuristic"))
    assert missing.config.mode == "typeset" and "no saved pipeline" in missing.status
    assert missing.plan(TITLE, "", "", "", "heuristic", "typeset")[1]  # planning still works
    shown = gen(missing, [[TITLE, 0, 0, 128, 30]], mode="hybrid")
    assert "Could not load the kordiff pipeline" in shown["notices"] and "gallery" not in shown
    assert "typeset' mode works without weights" in shown["status"] and shown["switch"]["visible"] is True
    typeset = gen(missing, [[TITLE, 8, 10, 120, 40], ["김하늘", 40, 100, 88, 118]], seed=5, n=2, mode="typeset")
    assert sorted(c.split(" · ")[:2] for _, c in typeset["gallery"]) == [["seed 5", "typeset"], ["seed 6", "typeset"]]
    assert "plan a layout or add a text box" in gen(missing, [], mode="typeset")["notices"]


def test_demo_has_named_endpoints_and_offers_the_three_modes():
    api = app.demo.get_api_info()["named_endpoints"]
    assert {"/plan", "/generate", "/generate_typeset", "/edit_boxes", "/edit_table"} <= set(api)
    mode = next(p for p in api["/generate"]["parameters"] if p["parameter_name"] == "mode")
    assert mode["type"]["enum"] == ["diffusion", "hybrid", "typeset"]


def test_schedulers_match_the_pipeline():
    from kordiff.pipeline import MAX_IMAGES, SCHEDULERS

    assert service.SCHEDULERS == tuple(SCHEDULERS) and service.MAX_IMAGES == MAX_IMAGES


def test_help_does_not_import_gradio_or_torch():
    import subprocess
    import sys

    code = ("import sys, runpy; sys.argv = ['app.py', '--help']\ntry: runpy.run_path('app.py', run_name='__main__')\n"
            "except SystemExit: pass\nassert 'torch' not in sys.modules, 'torch'\n"
            "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))")
    root = app.__file__.rsplit("/", 1)[0]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=60)
    assert out.returncode == 0 and out.stdout.strip().endswith("[]"), out.stderr


def test_an_unexpected_failure_is_reported_on_the_page(cover_app, monkeypatch):
    def broken(*a):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2 GiB")

    monkeypatch.setattr(app, "_make_cover", broken)
    shown = gen(cover_app, [[TITLE, 8, 10, 120, 40]], mode="typeset")
    assert "**Generation failed:** CUDA out of memory. Tried to allocate 2 GiB. Try fewer images" in shown["notices"]
