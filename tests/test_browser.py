"""A real headless Chromium (Debian's /usr/bin/chromium via Playwright) against the app with the tiny model:
type a Korean title, plan, drag a box with the mouse, check the server got the new coordinates, generate."""

import os
import re
import socket
from pathlib import Path

import pytest
import torch

import app

CHROMIUM = "/usr/bin/chromium"
TITLE = "마음의 바다"
SCREENSHOT = Path(os.environ.get("KORDIFF_SCREENSHOT", Path(__file__).resolve().parent.parent / "outputs" / "browser"
                                 / "app.png"))

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"needs Debian's chromium at {CHROMIUM} (apt chromium)"),
]


@pytest.fixture(scope="module")
def url():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    demo = app.build_demo(app.AppConfig(model="tiny-random", planner="heuristic"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.queue(max_size=16).launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True,
                                   **app.LAUNCH_KWARGS)
    yield f"http://127.0.0.1:{port}/"
    demo.close()
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def page(url):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        pg = browser.new_page(viewport={"width": 1280, "height": 1000})
        pg.set_default_timeout(60_000)
        pg.goto(url)
        yield pg
        browser.close()


def table_rows(pg) -> list[list[str]]:
    return pg.eval_on_selector_all("#table .virtual-row", "rows => rows.map(r => [...r.querySelectorAll("
                                   "'.body-cell')].map(c => c.innerText.trim()))")


def first_row(pg) -> tuple[str, list[int]]:
    row = table_rows(pg)[0]
    return row[0], [int(v) for v in row[1:5]]


def test_plan_drag_generate(page):
    pg = page
    pg.fill("#title textarea", TITLE)
    pg.fill("#author textarea", "김하늘")
    pg.click("#plan")
    pg.wait_for_function("() => document.querySelector('#table .virtual-row .body-cell') !== null")
    text, (l, t, r, b) = first_row(pg)
    assert re.sub(r"\s+", " ", text) == TITLE and len(table_rows(pg)) == 2  # title and author
    # the shipped Hangul font is served and used for the canvas labels ("Arial") and the page
    pg.wait_for_function("document.fonts.check('12px Arial', '마') && document.fonts.check('16px \"KorDiff Hangul\"', "
                         "'마')", timeout=20_000)

    # drag the title box 40 px left and 80 px down (canvas pixels = cover pixels at scale 1) in "drag" mode
    pg.click("#canvas button[aria-label='Drag boxes']")
    canvas = pg.locator("#canvas canvas")
    bbox = canvas.bounding_box()
    width, height = pg.eval_on_selector("#canvas canvas", "c => [c.width, c.height]")
    scale = min(width, height) / 512 * bbox["width"] / width  # the 512 px cover fitted and centred in the canvas
    x0 = bbox["x"] + (bbox["width"] - 512 * scale) / 2
    y0 = bbox["y"] + (bbox["height"] - 512 * scale) / 2
    cx, cy = x0 + (l + r) * 2 * scale, y0 + (t + b) * 2 * scale  # box centre: grid * 4 px / 2
    pg.mouse.move(cx, cy)
    pg.mouse.down()
    pg.mouse.move(cx - 40 * scale, cy + 80 * scale, steps=12)
    pg.mouse.up()
    shift = max(0, 10 - l)  # a box dragged past the edge is kept whole, pushed back inside
    want = [l - 10 + shift, t + 20, r - 10 + shift, b + 20]
    pg.wait_for_function(f"() => document.querySelectorAll('#table .virtual-row .body-cell')[2]?.innerText.trim() "
                         f"!== '{t}'")
    got = first_row(pg)[1]
    assert all(abs(g - w) <= 1 for g, w in zip(got, want)), (got, want)

    # generate one image with two steps and a fixed seed; the decoded prompt shows the dragged coordinates
    for sel, value in (("#num_images input[type=number]", "1"), ("#steps input[type=number]", "2")):
        pg.fill(sel, value)
        pg.press(sel, "Enter")
    pg.uncheck("#randomise input[type=checkbox]")
    pg.fill("#seed input", "1234")
    pg.click("#generate")
    pg.wait_for_selector("#gallery img", timeout=120_000)
    pg.click("#intermediate button, #intermediate .label-wrap")
    pg.wait_for_function("() => document.querySelector('#prompt textarea')?.value.includes('[마]')")
    prompt = pg.input_value("#prompt textarea")
    assert "l{}t{}r{}b{}[마][음][의][ ][바][다]".format(*got) in prompt
    assert "seed 1234" in pg.inner_text("#gallery")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(SCREENSHOT), full_page=True)
