import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import kordiff.__main__ as cli
from kordiff.__main__ import build_parser, main
from kordiff.capabilities import detect_capabilities
from kordiff.layout import Layout
from kordiff.modes import MODES, PLANNERS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def cpu_without_weights(monkeypatch):
    """Every test sees this machine as it is for the CI: no GPU, nothing cached (no probe touches the network)."""
    def fake(model):
        return detect_capabilities(model, gpu=lambda: False, cached=lambda repo: False, reachable=lambda: False)

    monkeypatch.setattr(cli, "startup_capabilities", fake)


def test_plan_prints_layout_json(capsys):
    assert main(["plan", "별빛의 속삭임", "--seed", "1"]) == 0
    layout = Layout.from_json(capsys.readouterr().out)
    assert layout.texts == ["별빛의 속삭임"]


def test_plan_places_subtitle_and_author(capsys):
    assert main(["plan", "별빛의 속삭임", "--subtitle", "밤하늘 이야기", "--author", "김하늘"]) == 0
    assert Layout.from_json(capsys.readouterr().out).texts == ["별빛의 속삭임", "밤하늘 이야기", "김하늘"]


def test_plan_follows_the_cover_shape(capsys):
    """--shape reaches the heuristic planner: a square cover's title box is taller in grid cells (a cell is 4 px
    high there, 6 px on a 512x768 portrait), exactly as HeuristicConfig(shape=...) plans it."""
    from kordiff.planner import HeuristicConfig, HeuristicPlanner

    layouts = {}
    for shape in ("square", "portrait"):
        assert main(["plan", "별빛의 속삭임", "--shape", shape]) == 0
        layouts[shape] = Layout.from_json(capsys.readouterr().out)
        expected = HeuristicPlanner(seed=0, config=HeuristicConfig(shape=shape)).plan("별빛의 속삭임").layout
        assert layouts[shape] == expected, shape
    assert layouts["square"][0].height > layouts["portrait"][0].height
    assert main(["plan", "별빛"]) == 0  # portrait is the default
    assert Layout.from_json(capsys.readouterr().out) == HeuristicPlanner(seed=0).plan("별빛").layout
    with pytest.raises(SystemExit):
        build_parser().parse_args(["plan", "별빛", "--shape", "landscape"])


def test_generate_writes_covers_in_the_chosen_shape(tmp_path, capsys):
    from PIL import Image

    for shape, size in (("square", (512, 512)), ("portrait", (512, 768))):
        out = tmp_path / shape
        assert main(["generate", "--title", "마음의 바다", "--mode", "typeset", "--seed", "0", "--shape", shape,
                     "--out", str(out)]) == 0
        with Image.open(out / "cover1_typeset_seed0.png") as cover, Image.open(out / "layout.png") as preview:
            assert cover.size == preview.size == size, shape


def test_plan_imports_no_torch_diffusers_or_transformers():
    code = ("import sys; from kordiff.__main__ import main; assert main(['plan', '제목']) == 0; "
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'diffusers', 'transformers')); "
            "assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr


def test_empty_title_is_a_clear_error(tmp_path, capsys):
    assert main(["plan", "  "]) == 2
    assert main(["generate", "--title", "", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("error: the title is empty") == 2 and "no text boxes" not in err
    assert not (tmp_path / "o").exists()


def test_generate_without_gpu_defaults_to_typeset_and_never_loads_a_model(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "_load", lambda *a: pytest.fail("a model was loaded"))
    out = tmp_path / "out"
    assert main(["generate", "--title", "별빛의 속삭임", "--subtitle", "밤하늘 이야기", "--author", "김하늘",
                 "--seed", "2", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["cover1_typeset_seed2.png", "layout.json", "layout.png"]
    layout = Layout.from_json((out / "layout.json").read_text(encoding="utf-8"))
    assert layout.texts == ["별빛의 속삭임", "밤하늘 이야기", "김하늘"]
    assert "OCR '별빛의 속삭임" in capsys.readouterr().out


def test_generate_tiny_writes_scored_covers_layout_and_prompt(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["generate", "--title", "별빛의 속삭임", "--model", "tiny-random", "--steps", "2", "--seed", "5",
                 "--num-images", "2", "--mode", "diffusion", "--out", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    covers = sorted(n for n in names if n.startswith("cover"))
    assert [n for n in names if not n.startswith("cover")] == ["layout.json", "layout.png", "prompt.txt"]
    assert len(covers) == 2 and {n.rsplit("_seed", 1)[1] for n in covers} == {"5.png", "6.png"}
    assert all("_diffusion_" in n for n in covers)
    assert "[별][빛][의]" in (out / "prompt.txt").read_text(encoding="utf-8")


def test_tiny_random_defaults_to_hybrid_on_a_cpu(tmp_path):
    out = tmp_path / "out"
    assert main(["generate", "--title", "별빛", "--model", "tiny-random", "--steps", "1", "--seed", "0",
                 "--out", str(out)]) == 0
    assert (out / "cover1_hybrid_seed0.png").exists()


def test_busy_art_works_in_generate(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["generate", "--title", "마음의 바다", "--model", "busy-art", "--mode", "hybrid", "--seed", "3",
                 "--out", str(out)]) == 0
    assert (out / "cover1_hybrid_seed3.png").exists() and not (out / "prompt.txt").exists()


def test_generate_typeset_needs_no_weights_and_ranks_by_ocr(tmp_path, capsys):
    layout = tmp_path / "layout.json"
    box = {"text": "마음의 바다", "l": 10, "t": 20, "r": 118, "b": 44}
    layout.write_text(json.dumps({"grid": 128, "boxes": [box]}), encoding="utf-8")
    out = tmp_path / "out"
    assert main(["generate", "--title", "마음의 바다", "--layout", str(layout), "--mode", "typeset", "--seed", "0",
                 "--out", str(out), "--model", "./no/such/model"]) == 0
    printed = capsys.readouterr().out
    assert "cover1_typeset_seed0.png" in printed and "OCR '마음의 바다'" in printed


def test_mode_policy_without_boxes(tmp_path, capsys, caplog):
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"grid": 128, "boxes": []}), encoding="utf-8")
    args = ["generate", "--title", "별빛", "--layout", str(empty), "--seed", "4"]
    assert main([*args, "--mode", "typeset", "--out", str(tmp_path / "t")]) == 2
    assert "'typeset' mode sets the text of the boxes" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()
    assert main([*args, "--mode", "hybrid", "--model", "busy-art", "--out", str(tmp_path / "h")]) == 0
    assert "generated with 'diffusion' instead" in caplog.text
    assert sorted(p.name for p in (tmp_path / "h").iterdir()) == ["cover_seed4.png", "layout.json", "layout.png"]


def test_failed_generate_leaves_no_output_folder(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["generate", "--title", "x", "--mode", "hybrid", "--model", "./no/such/model", "--out", str(out)]) == 2
    assert not out.exists()
    assert "there is no directory './no/such/model'" in capsys.readouterr().err


def test_errors_are_one_line_not_tracebacks(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("[{\"text\": \"x\", \"l\": 5, \"t\": 0, \"r\": 5, \"b\": 9}]", encoding="utf-8")
    assert main(["generate", "--title", "x", "--layout", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert main(["generate", "--title", "x", "--model", "./no/such/model", "--mode", "diffusion",
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "need 0 <= l < r <= 128, got l=5 r=5" in err and "there is no directory './no/such/model'" in err
    assert "Traceback" not in err and not (tmp_path / "o").exists()


def test_status_line_is_logged_once_per_process(caplog):
    from kordiff import capabilities

    capabilities._DETECTED.clear()
    try:
        status = [capabilities.startup_capabilities("td2").status for _ in range(3)]
    finally:
        capabilities._DETECTED.clear()
    logged = [r.getMessage() for r in caplog.records if "Defaults here:" in r.getMessage()]
    assert logged == ([status[0]] if status[0] else [])


def test_offline_load_is_one_line_without_library_noise(tmp_path):
    """The real process: HF_HUB_OFFLINE, TD2 asked for explicitly -> one error line, no warnings, no traceback."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "default"}
    done = subprocess.run([sys.executable, "-m", "kordiff", "generate", "--title", "별빛", "--mode", "hybrid",
                           "--out", str(tmp_path / "o")], cwd=ROOT, capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: Could not load the TD2 UNet: HF_HUB_OFFLINE=1 is set")
    assert "hf download JingyeChen22/textdiffuser2-full-ft" in lines[-1]
    assert "hf download stable-diffusion-v1-5/stable-diffusion-v1-5" in lines[-1]
    assert all(line.startswith(("WARNING Defaults here:", "error:")) for line in lines), lines
    assert not (tmp_path / "o").exists()


# --- flags ---------------------------------------------------------------------------------------------------------


def _parsers():
    from kordiff.evaluate import build_parser as eval_parser

    top = build_parser()
    sub = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    return {"plan": sub.choices["plan"], "generate": sub.choices["generate"], "evaluate": eval_parser()}


def test_every_flag_has_help_kebab_case_and_shared_choices():
    for name, parser in _parsers().items():
        for action in parser._actions:
            if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
                continue
            assert action.help and len(action.help) > 10, (name, action.dest)
            for flag in action.option_strings:
                assert "_" not in flag, (name, flag)  # snake_case only as hidden aliases
            if action.dest == "planner":
                assert tuple(action.choices) == PLANNERS, name
            if action.dest == "mode":
                assert tuple(action.choices) == MODES, name
            if action.dest in ("scheduler", "scheme", "split", "font"):
                assert action.choices, (name, action.dest)


def test_torch_free_constants_match_the_pipeline():
    from kordiff import config, pipeline

    assert config.SCHEDULER_NAMES == tuple(pipeline.SCHEDULERS) and config.MAX_IMAGES == pipeline.MAX_IMAGES


def test_generate_checks_numbers_before_doing_anything(tmp_path, capsys):
    for flags in (["--num-images", "9"], ["--num-images", "0"], ["--steps", "0"], ["--best-of", "0"]):
        assert main(["generate", "--title", "별빛", "--out", str(tmp_path / "o"), *flags]) == 2
    err = capsys.readouterr().err
    assert "--num-images must be 1-8, got 9" in err and "--steps and --best-of must be >= 1" in err
    assert not (tmp_path / "o").exists()


def test_evaluate_plans_with_m1_when_asked(monkeypatch):
    from kordiff import evaluate
    from kordiff.planner import M1Planner

    fake = M1Planner(generate_fn=lambda prompt: "마음의 바다 10,20,118,44")
    monkeypatch.setattr(evaluate, "_m1_planner", lambda seed: fake)
    layout, source = evaluate.plan_layout("마음의 바다", planner="m1")
    assert source == "m1" and [(b.text, b.l, b.t, b.r, b.b) for b in layout] == [("마음의 바다", 10, 20, 118, 44)]
    assert evaluate.build_parser().parse_args(["--guidance", "3"]).guidance_scale == 3.0  # old spelling, hidden
