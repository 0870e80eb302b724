"""training.prepare_aihub on small AIHub-format zips: Korean names, broken inputs, box scaling, kill + resume."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import signal
import time
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from training import mario
from training.prepare_aihub import REPORT_FILE, PrepareConfig, decode_zip_name, prepare


class _Cp949Info(zipfile.ZipInfo):
    """Writes its name as raw cp949 bytes without the UTF-8 flag, as Korean Windows zip tools do."""

    def _encodeFilenameFlags(self):  # noqa: N802 - zipfile's private hook
        return self.filename.encode("cp949"), self.flag_bits & ~0x800


def _jpeg(w: int, h: int, colour=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), colour).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _label(file_name: str, w: int, h: int, annotations: list[tuple[str, list[float]]]) -> bytes:
    data = {
        "info": {"name": "야외 실제 촬영 한글 이미지", "date_created": "2020-01-01", "weather": "맑음", "sun": "낮"},
        "images": [{"id": file_name, "width": w, "height": h, "file_name": file_name, "license": "AIHub"}],
        "annotations": [
            {"id": str(i), "image_id": file_name, "text": t, "attributes": {}, "bbox": b}
            for i, (t, b) in enumerate(annotations)
        ],
        "licenses": [{"name": "AIHub", "url": "https://aihub.or.kr"}],
    }
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


def _write_zip(path: Path, members: dict[str, bytes], cp949: bool, compression: int = zipfile.ZIP_DEFLATED) -> None:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            info = _Cp949Info(name) if cp949 else zipfile.ZipInfo(name)
            info.compress_type = compression
            zf.writestr(info, data)


ANNOTATIONS = [("나의 라임", [100, 200, 300, 100]), ("오렌지나무", [450, 210, 300, 90]), ("xxx", [10, 10, 50, 50])]


def build_aihub(src: Path) -> dict:
    """A small AIHub-like download: cp949 zips, a nested zip, an extracted folder, and broken inputs."""
    src.mkdir(parents=True)
    # 1) Training zips with cp949 names and no UTF-8 flag.
    labels = {
        "책표지/책표지_총류_000001.json": _label("책표지_총류_000001.jpg", 1024, 768, ANNOTATIONS),
        "책표지/책표지_총류_000002.json": _label("책표지_총류_000002.jpg", 600, 900, [("한글 제목", [0, 0, 600, 90])]),
        "책표지/책표지_총류_000003.json": b'{"images": [{"file_name": ',  # malformed JSON
        "책표지/책표지_총류_000004.json": _label("책표지_총류_없음.jpg", 100, 100, [("가", [1, 1, 50, 50])]),
        "책표지/책표지_총류_000005.json": _label("책표지_총류_000005.jpg", 64, 64, [("xxx", [1, 1, 50, 50])]),
    }
    images = {
        "책표지/책표지_총류_000001.jpg": _jpeg(1024, 768),
        "책표지/책표지_총류_000002.jpg": _jpeg(600, 900, (20, 20, 200)),
        "책표지/책표지_총류_000005.jpg": _jpeg(64, 64),
    }
    _write_zip(src / "[라벨]Training_책표지.zip", labels, cp949=True)
    _write_zip(src / "[원천]Training_책표지.zip", images, cp949=True)
    # 2) A corrupted zip (truncated download).
    good = io.BytesIO()
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("책표지_x.jpg", _jpeg(32, 32))
    (src / "[원천]Training_책표지_2.zip").write_bytes(good.getvalue()[:40])
    # 3) Validation shipped as one zip holding the label and image zips (UTF-8 flagged names).
    inner_l, inner_i = io.BytesIO(), io.BytesIO()
    with zipfile.ZipFile(inner_l, "w") as zf:
        zf.writestr(
            "책표지_문학_000010.json", _label("책표지_문학_000010.jpg", 512, 512, [("봄봄", [64, 64, 128, 64])])
        )
    with zipfile.ZipFile(inner_i, "w") as zf:
        zf.writestr("책표지_문학_000010.jpg", _jpeg(512, 512))
    with zipfile.ZipFile(src / "Validation.zip", "w") as zf:
        zf.writestr("[라벨]Validation_책표지.zip", inner_l.getvalue())
        zf.writestr("[원천]Validation_책표지.zip", inner_i.getvalue())
    # 4) An already extracted folder.
    ext = src / "extracted" / "책표지"
    ext.mkdir(parents=True)
    (ext / "책표지_철학_000020.json").write_bytes(
        _label("책표지_철학_000020.jpg", 256, 256, [("별", [10, 10, 20, 20])])
    )
    (ext / "책표지_철학_000020.jpg").write_bytes(_jpeg(256, 256))
    # 5) Another subset (signboards) that the default run must ignore.
    _write_zip(src / "[라벨]Training_간판.zip", {"간판_000001.json": _label("간판_000001.jpg", 10, 10, [])}, cp949=True)
    return {"ok": {"책표지_총류_000001", "책표지_총류_000002", "책표지_문학_000010", "책표지_철학_000020"}}


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".") and ".nested" not in p.parts and p.name != REPORT_FILE
    }


def _assert_no_half_samples(out: Path) -> list[str]:
    ids = [p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]
    for sid in ids:
        assert mario.is_complete(out / sid), f"half-written sample {sid}"
        mario.read_sample(out / sid)
        Image.open(out / sid / mario.IMAGE_FILE).verify()
    return ids


def test_decode_zip_name_reads_cp949_without_utf8_flag(tmp_path):
    path = tmp_path / "k.zip"
    _write_zip(path, {"책표지/가나다.json": b"{}"}, cp949=True)
    with zipfile.ZipFile(path) as zf:
        (info,) = zf.infolist()
        assert info.flag_bits & 0x800 == 0
        assert info.filename != "책표지/가나다.json"  # zipfile alone gets it wrong (cp437 mojibake)
        assert decode_zip_name(info) == "책표지/가나다.json"
    _write_zip(path, {"책표지/가나다.json": b"{}"}, cp949=False)  # UTF-8 flagged names pass through
    with zipfile.ZipFile(path) as zf:
        assert decode_zip_name(zf.infolist()[0]) == "책표지/가나다.json"


def test_prepare_writes_samples_report_and_scaled_boxes(tmp_path):
    expected = build_aihub(tmp_path / "src")
    out = tmp_path / "out"
    report = prepare(PrepareConfig(tmp_path / "src", out, workers=2))
    ids = set(_assert_no_half_samples(out))
    assert ids == expected["ok"]
    assert report.written == 4 and report.labels_found == 7
    assert report.counts() == {"bad_json": 1, "missing_image": 1, "no_text": 1}
    assert [b["source"] for b in report.bad_zips] == ["[원천]Training_책표지_2.zip"]
    on_disk = json.loads((out / REPORT_FILE).read_text(encoding="utf-8"))
    assert on_disk["problem_counts"] == report.counts() and on_disk["warnings"]["dropped_xxx"] == 1

    # 1024x768 photo -> 512x512: x scales by 1/2, y by 2/3; 'xxx' is dropped.
    s = mario.read_sample(out / "책표지_총류_000001")
    assert [w.text for w in s.words] == ["나의 라임", "오렌지나무"]
    assert s.words[0].rect == (50, 133, 200, 200)
    assert s.words[1].rect == (225, 140, 375, 200)
    assert Image.open(s.image_path).size == (512, 512)
    # TD2 merges the two words into one line; the caption names the tallest line as the title.
    assert [ln.text for ln in mario.merge_lines(s.words)] == ["나의 라임 오렌지나무"]
    assert s.caption == "book cover with a title of 나의 라임 오렌지나무"
    # Every row parses as TD2's MARIO format.
    row = (out / "책표지_총류_000001" / mario.OCR_FILE).read_text(encoding="utf-8").splitlines()[0]
    assert row == "나의 라임 50,133,200,133,200,200,50,200 1.00"

    index = mario.read_index(out)
    assert [e["id"] for e in index] == sorted(expected["ok"])
    assert {e["id"]: e["split"] for e in index}["책표지_문학_000010"] == "validation"

    # Re-running is idempotent: nothing rewritten, same files.
    before = _tree(out)
    again = prepare(PrepareConfig(tmp_path / "src", out, workers=1))
    assert again.written == 0 and again.already_done == 4
    assert _tree(out) == before


def test_prepare_pad_keeps_aspect(tmp_path):
    build_aihub(tmp_path / "src")
    out = tmp_path / "out"
    prepare(PrepareConfig(tmp_path / "src", out, workers=1, fit="pad"))
    # 600x900 -> 341x512 centred (x offset 85): the full-width box spans the picture, not the canvas.
    s = mario.read_sample(out / "책표지_총류_000002")
    assert s.words[0].rect == (85, 0, 426, 51)


def test_interrupt_in_process_then_resume(tmp_path):
    build_aihub(tmp_path / "src")
    out = tmp_path / "out"

    def stop_after_two(done, total):
        if done >= 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prepare(PrepareConfig(tmp_path / "src", out, workers=1, chunksize=1), progress=stop_after_two)
    partial = _assert_no_half_samples(out)
    assert 1 <= len(partial) < 4
    assert (out / REPORT_FILE).is_file() and (out / mario.INDEX_FILE).is_file()
    prepare(PrepareConfig(tmp_path / "src", out, workers=2))
    fresh = tmp_path / "fresh"
    prepare(PrepareConfig(tmp_path / "src", fresh, workers=2))
    assert _tree(out) == _tree(fresh)


def _slow_src(src: Path, n: int) -> None:
    # PNG (no reduced-scale decoding) and large enough that a 1-worker run takes about a second or more.
    noise = Image.effect_noise((1000, 1000), 64).convert("RGB")
    buf = io.BytesIO()
    noise.save(buf, format="PNG", compress_level=1)
    png = buf.getvalue()
    labels = {
        f"책표지_{i:04d}.json": _label(f"책표지_{i:04d}.png", 1000, 1000, [(f"제목{i}", [100, 100, 800, 200])])
        for i in range(n)
    }
    images = {f"책표지_{i:04d}.png": png for i in range(n)}
    src.mkdir()
    _write_zip(src / "[라벨]Training_책표지.zip", labels, cp949=True)
    _write_zip(src / "[원천]Training_책표지.zip", images, cp949=True, compression=zipfile.ZIP_STORED)


def _run_in_new_session(argv: list[str]) -> None:
    os.setsid()  # own process group, so the test can SIGKILL the driver and its workers together
    from training.prepare_aihub import main

    os._exit(main(argv))


def test_kill_mid_run_leaves_no_half_sample_and_resume_matches_fresh_run(tmp_path):
    n = 16
    _slow_src(tmp_path / "src", n)
    out = tmp_path / "out"
    argv = ["--src", str(tmp_path / "src"), "--out", str(out), "--workers", "1"]
    # fork (not a fresh interpreter): the child starts in milliseconds, as the CLI would after its imports
    proc = multiprocessing.get_context("fork").Process(target=_run_in_new_session, args=(argv,))
    proc.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.is_alive():
        if out.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in out.iterdir()):
            break
        time.sleep(0.002)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.join()
    assert proc.exitcode == -signal.SIGKILL
    partial = _assert_no_half_samples(out)
    assert 1 <= len(partial) < n, "the kill should land mid-run"

    report = prepare(PrepareConfig(tmp_path / "src", out, workers=2))
    assert (report.written, report.already_done) == (n - len(partial), len(partial))
    fresh = tmp_path / "fresh"
    prepare(PrepareConfig(tmp_path / "src", fresh, workers=2))
    assert _tree(out) == _tree(fresh)
    assert len(mario.read_index(out)) == n
    assert not any((out / mario.TMP_DIR).iterdir())


def test_missing_src_is_a_clear_error(tmp_path, capsys):
    from training.prepare_aihub import main

    assert main(["--src", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
