"""The app served on 127.0.0.1 with the tiny model, driven through gradio_client: named endpoints, per-session
state, validation, and concurrent generations that equal the same requests run one at a time."""

import hashlib
import socket

import numpy as np
import pytest
import torch
from PIL import Image

import app

gradio_client = pytest.importorskip("gradio_client")
TITLE = "마음의 바다"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def url():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread per request is fastest and keeps results batch-exact
    demo = app.build_demo(app.AppConfig(model="tiny-random", planner="heuristic", concurrency=2))
    port = free_port()
    demo.queue(max_size=16).launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True,
                                   **app.LAUNCH_KWARGS)
    yield f"http://127.0.0.1:{port}/"
    demo.close()
    torch.set_num_threads(before)


@pytest.fixture
def client(url, tmp_path):
    return gradio_client.Client(url, verbose=False, download_files=str(tmp_path))


def pixels_hash(path) -> str:
    return hashlib.sha256(np.asarray(Image.open(path).convert("RGB")).tobytes()).hexdigest()


def generate(client, table, seed, n=1, title=TITLE):
    return client.predict(title, "", table, n, 2, 7.5, "ddim", seed, False, "diffusion", api_name="/generate")


def test_named_endpoints(client):
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/plan", "/edit_boxes", "/edit_table", "/reset", "/generate"} <= set(api)


def test_plan_edit_generate(client):
    canvas, table, raw, notices = client.predict(TITLE, "", "", "", "heuristic", api_name="/plan")
    assert canvas["boxes"][0]["label"] == TITLE and table["data"][0][0] == TITLE
    assert raw.startswith("# planner: heuristic")
    moved = [dict(canvas["boxes"][0], xmin=0, xmax=256, ymin=-20, ymax=80)] + canvas["boxes"][1:]
    canvas_in = {"image": gradio_client.handle_file(canvas["image"]), "boxes": moved}
    new_table, notices = client.predict(canvas_in, table, api_name="/edit_boxes")
    assert new_table["data"][0] == [TITLE, 0, 0, 64, 20]
    assert "clipped" in notices
    redrawn, _ = client.predict(new_table, api_name="/edit_table")
    assert [redrawn["boxes"][0][k] for k in ("xmin", "ymin", "xmax", "ymax")] == [0, 0, 256, 80]
    gallery, preview, prompt, notices, seed = generate(client, new_table, seed=7, n=2)
    assert sorted(g["caption"].split(" · ")[0] for g in gallery) == ["seed 7", "seed 8"] and seed == 7
    assert "l0t0r64b20[마][음][의][ ][바][다]" in prompt
    assert Image.open(preview).size == (512, 512)


def test_reset_state_is_per_session(url, tmp_path):
    a = gradio_client.Client(url, verbose=False, download_files=str(tmp_path / "a"))
    b = gradio_client.Client(url, verbose=False, download_files=str(tmp_path / "b"))
    a.predict("바람이 머무는 곳", "", "", "", "heuristic", api_name="/plan")
    b.predict("The Silent Forest", "", "", "", "heuristic", api_name="/plan")
    assert a.predict(api_name="/reset")[1]["data"][0][0] == "바람이 머무는 곳"
    assert b.predict(api_name="/reset")[1]["data"][0][0].startswith("The Silent")  # may break into two lines


@pytest.mark.parametrize("args,msg", [
    (("", "", {"headers": ["text", "l", "t", "r", "b"], "data": []}, 1, 2, 7.5, "ddim", 1, False, "diffusion"),
     "Type a book title"),
    ((TITLE, "", {"headers": ["text", "l", "t", "r", "b"], "data": []}, 9, 2, 7.5, "ddim", 1, False, "diffusion"),
     "greater than maximum value 8"),
    ((TITLE, "", {"headers": ["text", "l", "t", "r", "b"], "data": []}, 1, 2, 7.5, "plms", 1, False, "diffusion"),
     "plms"),
])
def test_api_validation_matches_the_ui(client, args, msg):
    with pytest.raises(Exception, match=msg):
        client.predict(*args, api_name="/generate")


def test_concurrent_generations_equal_sequential_ones(client):
    tables = [{"headers": ["text", "l", "t", "r", "b"], "data": rows} for rows in (
        [[TITLE, 8, 10, 120, 34]],
        [["별빛의 속삭임", 10, 80, 118, 110], ["저자", 40, 112, 88, 124]],
        [],
        [["The Silent Forest", 0, 0, 128, 20]],
    )]
    requests = list(zip(tables, [101, 202, 303, 404]))
    sequential = [pixels_hash(generate(client, t, s)[0][0]["image"]) for t, s in requests]
    jobs = [client.submit(TITLE, "", t, 1, 2, 7.5, "ddim", s, False, "diffusion", api_name="/generate")
            for t, s in requests]
    results = [job.result(timeout=120) for job in jobs]
    assert [r[0][0]["caption"].split(" · ")[0] for r in results] == ["seed 101", "seed 202", "seed 303", "seed 404"]
    assert [pixels_hash(r[0][0]["image"]) for r in results] == sequential
    assert len(set(sequential)) == 4  # the four requests really differ


def test_cli_starts_offline_without_weights_and_explains(tmp_path):
    """`python app.py` with the default TD2 model and no weights: it serves, plans, and Generate explains."""
    import os
    import subprocess
    import sys
    import time

    port = free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), KORDIFF_PLANNER="heuristic")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 90
        while True:
            try:
                c = gradio_client.Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=str(tmp_path))
                break
            except Exception:
                if proc.poll() is not None or time.time() > deadline:
                    pytest.fail(f"app.py did not start:\n{proc.stdout.read() if proc.poll() is not None else ''}")
                time.sleep(1)
        table = c.predict(TITLE, "", "", "", "heuristic", api_name="/plan")[1]
        with pytest.raises(Exception, match="Could not load the TD2 UNet.*Planning and editing still work"):
            generate(c, table, seed=1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
