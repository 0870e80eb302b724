import json

from kordiff.__main__ import main
from kordiff.layout import Layout


def test_plan_prints_layout_json(capsys):
    assert main(["plan", "별빛의 속삭임", "--seed", "1"]) == 0
    layout = Layout.from_json(capsys.readouterr().out)
    assert layout.texts == ["별빛의 속삭임"]


def test_generate_tiny_writes_covers_layout_and_prompt(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["generate", "--title", "별빛의 속삭임", "--model", "tiny-random", "--steps", "2", "--seed", "5",
                 "--num-images", "2", "--out", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["cover_seed5.png", "cover_seed6.png", "layout.json", "layout.png", "prompt.txt"]
    assert "[별][빛][의]" in (out / "prompt.txt").read_text(encoding="utf-8")


def test_generate_typeset_needs_no_weights_and_ranks_by_ocr(tmp_path, capsys):
    layout = tmp_path / "layout.json"
    box = {"text": "마음의 바다", "l": 10, "t": 20, "r": 118, "b": 44}
    layout.write_text(json.dumps({"grid": 128, "boxes": [box]}), encoding="utf-8")
    out = tmp_path / "out"
    assert main(["generate", "--title", "마음의 바다", "--layout", str(layout), "--mode", "typeset", "--seed", "0",
                 "--out", str(out), "--model", "./no/such/model"]) == 0
    printed = capsys.readouterr().out
    assert "cover1_typeset_seed0.png" in printed and "OCR '마음의 바다'" in printed


def test_errors_are_one_line_not_tracebacks(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("[{\"text\": \"x\", \"l\": 5, \"t\": 0, \"r\": 5, \"b\": 9}]", encoding="utf-8")
    assert main(["generate", "--title", "x", "--layout", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert main(["generate", "--title", "x", "--model", "./no/such/model", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "need 0 <= l < r <= 128, got l=5 r=5" in err and "there is no directory './no/such/model'" in err
    assert "Traceback" not in err
