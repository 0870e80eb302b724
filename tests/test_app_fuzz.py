"""Fuzz the app's named endpoints: >= 1,000 generated inputs (lone surrogates, numbers past 1.8e308, huge rows and
tables, malformed canvas payloads) straight into the handlers, plus a sample over real HTTP. No handler may raise,
nothing may log a traceback, and a 100,000-character row must not grow the server's memory."""

import json
import logging
import random
import socket

import gradio as gr
import psutil
import pytest
import requests

import app

SKIP = gr.skip()
WORDS = ["마음의 바다", "天地", "🎉", "The Forest", "", "   ", "\ud800", "\udfff가", "\x00\x07", "가" * 300,
         "a\u200bb", "\u202e역방향", "<script>alert(1)</script>", "**bold**", "\n\n", "ㄱㄴㄷ", "각" * 10]
NUMBERS = [0, 1, -1, 5, 64, 128, 129, 500, -(10**400), 10**400, 1e308, float("inf"), float("nan"), "nan", "1e999",
           "abc", "", None, True, [], {}, 3.7, "12", 2**63, "9" * 400]


def text(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.05:
        return "가" * rng.choice([201, 1000, 100_000])
    if kind < 0.1:
        return "".join(chr(rng.randrange(0x20, 0x110000)) for _ in range(rng.randrange(1, 30)))
    return " ".join(rng.choice(WORDS) for _ in range(rng.randrange(1, 4)))


def value(rng: random.Random):
    return rng.choice([text(rng), rng.choice(NUMBERS), rng.choice(NUMBERS), rng.randrange(-10, 140)])


def row(rng: random.Random):
    if rng.random() < 0.1:
        return rng.choice([None, "row", 5, {}, [None] * 9, []])
    return [value(rng) for _ in range(rng.choice([5, 5, 5, 3, 7]))]


def table(rng: random.Random):
    kind = rng.random()
    if kind < 0.05:
        return [["가" * 100_000, 0, 0, 128, 30]] * rng.choice([1, 3000])
    if kind < 0.1:
        return rng.choice([None, "table", 7, {"data": "x"}, {"headers": []}, {"data": [[1, 2]] * 20_000}])
    rows = [row(rng) for _ in range(rng.randrange(0, 6))]
    return {"headers": ["text", "l", "t", "r", "b"], "data": rows} if rng.random() < 0.5 else rows


def box(rng: random.Random):
    if rng.random() < 0.1:
        return rng.choice([None, 1, "box", [], {"label": None}])
    b = {k: value(rng) for k in ("xmin", "ymin", "xmax", "ymax") if rng.random() < 0.95}
    b["label"] = text(rng) if rng.random() < 0.8 else value(rng)
    if rng.random() < 0.2:
        b["scaleFactor"] = rng.choice([0, -1, 2, "x", None, 10**400])
    if rng.random() < 0.2:
        b["color"] = rng.choice(["rgb(1, 2, 3)", "red", 5, None])
    return b


def canvas(rng: random.Random):
    kind = rng.random()
    if kind < 0.1:
        return rng.choice([None, {}, "canvas", 5, {"boxes": None}, {"boxes": "x"}, {"boxes": {"a": 1}}])
    if kind < 0.13:
        return {"boxes": [box(rng)] * 20_000}
    return {"image": None, "boxes": [box(rng) for _ in range(rng.randrange(0, 8))]}


def generate_args(rng: random.Random):
    mode = rng.choice(["typeset", "typeset", "diffusion", "hybrid", "bogus", None, 5])
    n = rng.choice([1, 1, 2, 0, 9, "x", 10**400, None, 1.5])
    steps = rng.choice([1, 2, 20, 150, 0, -1, "abc", 10**400])
    guidance = rng.choice([7.5, 0, 30, 31, "nan", float("inf"), None])
    scheduler = rng.choice(["ddim", "ddpm", "plms", None, 3, "\ud800"])
    seed = rng.choice([0, 1, 2**31 - 1, 2**31, -1, 10**400, "x", None])
    return (text(rng), text(rng), table(rng), n, steps, guidance, scheduler, seed, rng.random() < 0.3, mode)


@pytest.fixture(scope="module")
def cover_app():
    # A model that cannot load: diffusion requests must end in a notice, typeset ones in covers.
    return app.CoverApp(app.AppConfig(model="/nonexistent/kordiff-model", planner="heuristic"))


def drain(result):
    return list(result) if hasattr(result, "__next__") else [result]


def test_fuzz_handlers_directly(cover_app, caplog):
    rng = random.Random(1234)
    calls = 0
    generated = 0
    with caplog.at_level(logging.WARNING):
        for i in range(1100):
            which = i % 5
            if which == 0:
                args = (text(rng), text(rng), text(rng), text(rng), rng.choice(["heuristic", "m1x", None, 5]),
                        rng.choice(["typeset", "diffusion", "x", None]))
                outs = drain(cover_app.plan(*args))
            elif which == 1:
                args = (canvas(rng), table(rng), rng.choice([None, "x", "[]"]))
                outs = drain(cover_app.edit_boxes(*args))
            elif which == 2:
                args = (table(rng),)
                outs = drain(cover_app.edit_table(*args))
            else:
                args = generate_args(rng)
                if i % 50 == 4:  # a valid request around fuzzed text: it must reach the typesetter and OCR
                    args = ("제목 " + text(rng), text(rng), [[text(rng) or "가", 8, 10, 120, 40]], 1, 2, 7.5, "ddim",
                            i, False, "typeset")
                if args[-1] == "typeset" and generated >= 40:  # keep CI time modest: typesetting + OCR is ~0.3 s
                    args = args[:-1] + ("bogus",)
                outs = drain(cover_app.generate(*args))
                generated += any(o[0] != SKIP for o in outs)
            calls += 1
            assert outs, args
            for out in outs:
                notices = out[3] if which in (0, 4, 3) else out[2]
                assert notices == SKIP or isinstance(notices, str), (args, out)
    assert calls >= 1000 and generated >= 15
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged for an expected input error"


@pytest.fixture(scope="module")
def url(cover_app):
    demo = app.build_demo(cover_app.config)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.queue(max_size=64).launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True,
                                   **app.LAUNCH_KWARGS)
    yield f"http://127.0.0.1:{port}/gradio_api/call/"
    demo.close()


def call(url: str, api: str, data: list) -> tuple[str, object]:
    """POST raw JSON (lone surrogates travel as \\ud800 escapes) and read the event stream: (event, data)."""
    body = json.dumps({"data": data})  # ensure_ascii: surrogates are escaped, as a hostile client would send them
    event_id = requests.post(url + api, data=body, headers={"Content-Type": "application/json"}, timeout=30)
    event_id.raise_for_status()
    stream = requests.get(f"{url}{api}/{event_id.json()['event_id']}", timeout=60, stream=True)
    event, payload = None, None
    for line in stream.iter_lines(decode_unicode=True):
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event in ("complete", "error"):
            payload = json.loads(line[6:])
            return event, payload
    return event, payload


def test_fuzz_over_http_and_memory_stays_bounded(url):
    rng = random.Random(99)
    def frame(rows):
        return {"headers": ["text", "l", "t", "r", "b"], "data": rows}

    # Warm up with the largest request the limits allow (a 200-character box): OCR, fonts and their size caches load
    # once. The 100,000-character row must then cost nothing more: it is cut before any work.
    warm = call(url, "generate_typeset", ["마음의 바다", "", frame([["가" * 200, 0, 0, 128, 30]]), 1, 2, 7.5, "ddim",
                                          1, False, "typeset"])
    assert warm[0] == "complete"
    rss = psutil.Process().memory_info().rss

    huge = [["가" * 100_000, 0, 0, 128, 30]]
    for _ in range(3):
        event, out = call(url, "generate_typeset", ["마음의 바다", "", frame(huge), 1, 2, 7.5, "ddim", 1, False,
                                                    "typeset"])
        assert event == "complete" and "trimmed to 200" in out[3]
    assert psutil.Process().memory_info().rss - rss < 300 * 2**20  # the 100,000-character row: < +300 MB
    many = frame([["가나다", 0, 0, 128, 30]] * 3000)  # (3,000 x 100,000 characters: the direct fuzz test)
    event, out = call(url, "generate", ["마음의 바다", "", many, 1, 2, 7.5, "ddim", 1, False, "typeset"])
    assert event == "complete" and "3,000 rows" in out[3]
    event, out = call(url, "plan", ["\ud800", "", "", "", "heuristic", "diffusion"])
    assert event == "complete" and "Type a book title" in out[3]
    surrogates = frame([["바다\ud800", 0, 0, 128, 30]])
    event, out = call(url, "generate", ["마음\ud800", "\udfff", surrogates, 1, 2, 7.5, "ddim", 1, False, "diffusion"])
    assert event == "complete" and "invalid characters" in out[3]
    assert call(url, "generate", ["제목", "", frame([]), 1, 2, 7.5, "ddim", 1e309, False, "typeset"])[0] in ("complete",
                                                                                                      "error")
    for _ in range(40):  # malformed canvases: answered (gradio may refuse the payload itself), never a hang
        event, out = call(url, "edit_boxes", [canvas(rng), table(rng)])
        assert event in ("complete", "error")
    for _ in range(30):
        event, out = call(url, "edit_table", [table(rng)])
        assert event in ("complete", "error")
    assert call(url, "plan", ["마음의 바다", "", "", "", "heuristic", "typeset"])[0] == "complete"  # still serving
