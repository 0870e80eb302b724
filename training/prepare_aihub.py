"""AIHub "야외 실제 촬영 한글 이미지" -> MARIO-style samples (512x512 image, caption, word boxes).

    python -m training.prepare_aihub --src /data/aihub --out /data/mario_ko

`--src` may hold the downloaded zips (`[라벨]Training_책표지.zip` labels, `[원천]Training_책표지.zip` images, zips
nested in zips) and/or already extracted folders, in any mix. Only paths containing `--subset` (default: the
book covers, 책표지) are used. Each label JSON (AIHub schema: `images[0].file_name/width/height`,
`annotations[].text/bbox`, bbox = [x, y, w, h] in pixels of the original photo) becomes one sample; texts
labelled 'xxx' (unreadable) are dropped; the image is resized to 512x512 and the boxes are scaled with it.

Re-running skips finished samples; a killed run leaves no half sample (see training.mario.write_sample).
Bad zips, bad JSON, missing or broken images are counted and listed in `{out}/prepare_report.json`; the run
goes on.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import os
import re
import sys
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

from PIL import Image
from tqdm.auto import tqdm

from kordiff.tokens import book_caption

from . import mario

logger = logging.getLogger(__name__)

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
REPORT_FILE = "prepare_report.json"
NESTED_DIR = ".nested"
UNREADABLE = "xxx"  # AIHub's label for text a person could not read
_UTF8_FLAG = 0x800


@dataclass(frozen=True)
class PrepareConfig:
    """Settings of one preparation run."""

    src: Path
    out: Path
    subset: str = "책표지"  # only zip/folder/member paths containing this ("" = everything)
    size: int = 512  # output side in pixels (TD2 trains at 512)
    fit: str = "stretch"  # "stretch" to size x size like TD2/the seed, or "pad" to keep the aspect ratio
    workers: int = max(1, (os.cpu_count() or 2))
    jpeg_quality: int = 95
    chunksize: int = 8  # labels handed to a worker at once

    def __post_init__(self) -> None:
        object.__setattr__(self, "src", Path(self.src))
        object.__setattr__(self, "out", Path(self.out))
        if self.fit not in ("stretch", "pad"):
            raise ValueError(f"fit must be 'stretch' or 'pad', got {self.fit!r}")
        if self.size < 64 or self.workers < 1:
            raise ValueError("size must be >= 64 and workers >= 1")


@dataclass(frozen=True)
class Ref:
    """Where a file lives: a loose file (`zip_path` None) or a member of a zip; `logical` = readable path."""

    logical: str
    path: str  # loose file path, or the zip's path
    member: str | None = None  # the member name as zipfile knows it (undecoded form)

    @property
    def name(self) -> str:
        return PurePosixPath(self.logical).name

    @property
    def split(self) -> str:
        low = self.logical.lower()
        return "validation" if ("validation" in low or "검증" in low or "/val" in low) else "training"


@dataclass
class PrepareReport:
    """What a run did: counts and every problem, with the file it came from."""

    labels_found: int = 0
    written: int = 0
    already_done: int = 0
    problems: list[dict] = field(default_factory=list)
    bad_zips: list[dict] = field(default_factory=list)
    warnings: Counter = field(default_factory=Counter)

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(p["kind"] for p in self.problems).items()))

    def to_json(self) -> str:
        d = asdict(self)
        d["problem_counts"] = self.counts()
        d["warnings"] = dict(sorted(self.warnings.items()))
        d["problems"] = sorted(self.problems, key=lambda p: (p["kind"], p["source"]))
        d["bad_zips"] = sorted(self.bad_zips, key=lambda p: p["source"])
        return json.dumps(d, ensure_ascii=False, indent=2, sort_keys=True)


# ---------------------------------------------------------------- zip names


def decode_zip_name(info: zipfile.ZipInfo) -> str:
    """The real file name of a zip member: Korean Windows tools write cp949 without the UTF-8 flag."""
    if info.flag_bits & _UTF8_FLAG:
        return info.filename
    try:
        raw = info.filename.encode("cp437")  # zipfile decoded the raw bytes as cp437: undo that
    except UnicodeEncodeError:
        return info.filename
    # UTF-8 first: Linux/macOS zips often carry UTF-8 without the flag, and cp949 Hangul bytes are never valid
    # UTF-8 (their lead bytes 0xB0-0xC8 are UTF-8 continuation bytes), so the order cannot misread cp949.
    for encoding in ("utf-8", "cp949"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return info.filename


# ---------------------------------------------------------------- discovery


def _safe_nested_name(logical: str) -> str:
    digest = hashlib.sha1(logical.encode("utf-8")).hexdigest()[:12]
    stem = re.sub(r"[^\w.-]+", "_", PurePosixPath(logical).stem)[:60]
    return f"{stem}.{digest}.zip"


def _extract_nested(zf: zipfile.ZipFile, info: zipfile.ZipInfo, logical: str, out: Path) -> Path:
    """Copy a zip stored inside a zip to `{out}/.nested/` once (atomic), so workers can seek in it."""
    nested = out / NESTED_DIR
    nested.mkdir(parents=True, exist_ok=True)
    target = nested / _safe_nested_name(logical)
    if target.is_file() and target.stat().st_size == info.file_size:
        return target
    tmp = target.with_suffix(f".{os.getpid()}.part")
    with zf.open(info) as src, open(tmp, "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
    os.replace(tmp, target)
    return target


def _scan_zip(path: Path, logical: str, cfg: PrepareConfig, report: PrepareReport, depth: int = 0) -> Iterator[Ref]:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        report.bad_zips.append({"source": logical, "message": str(e)})
        logger.warning("bad zip %s: %s", logical, e)
        return
    with zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            name = decode_zip_name(info)
            member_logical = f"{logical}/{name}"
            if name.lower().endswith(".zip"):
                if depth >= 3:
                    report.warnings["zip_nested_too_deep"] += 1
                    continue
                try:
                    inner = _extract_nested(zf, info, member_logical, cfg.out)
                except (zipfile.BadZipFile, OSError, EOFError) as e:
                    report.bad_zips.append({"source": member_logical, "message": str(e)})
                    continue
                yield from _scan_zip(inner, member_logical, cfg, report, depth + 1)
            else:
                yield Ref(member_logical, str(path), info.filename)


def discover(cfg: PrepareConfig, report: PrepareReport) -> tuple[list[Ref], list[Ref]]:
    """All label JSONs and images under `cfg.src` (zips, nested zips, folders) that belong to the subset."""
    labels: list[Ref] = []
    images: list[Ref] = []
    src = cfg.src
    if not src.exists():
        raise FileNotFoundError(f"--src {src} does not exist")
    files = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file())
    out = cfg.out.resolve()
    for p in files:
        if out in p.resolve().parents:
            continue  # never read our own output (e.g. --out inside --src)
        logical = p.name if src.is_file() else p.relative_to(src).as_posix()
        refs = _scan_zip(p, logical, cfg, report) if p.suffix.lower() == ".zip" else iter([Ref(logical, str(p))])
        for ref in refs:
            if cfg.subset and cfg.subset not in ref.logical:
                continue
            low = ref.logical.lower()
            if low.endswith(".json"):
                labels.append(ref)
            elif low.endswith(IMAGE_EXTS):
                images.append(ref)
    return sorted(labels, key=lambda r: r.logical), sorted(images, key=lambda r: r.logical)


def assign_ids(labels: list[Ref]) -> list[tuple[str, Ref]]:
    """A stable, filesystem-safe sample id per label (its file stem; a hash suffix where stems collide)."""
    stems = [re.sub(r"[^\w.-]+", "_", PurePosixPath(r.logical).stem).strip("._") or "sample" for r in labels]
    seen = Counter(stems)
    out = []
    for stem, ref in zip(stems, labels):
        if seen[stem] > 1:
            stem = f"{stem}-{hashlib.sha1(ref.logical.encode('utf-8')).hexdigest()[:8]}"
        out.append((stem, ref))
    return out


# ---------------------------------------------------------------- per-sample work (runs in workers)

_IMAGES: dict[str, list[Ref]] = {}
_ZIPS: dict[str, zipfile.ZipFile] = {}


def _init_worker(image_index: dict[str, list[Ref]]) -> None:
    global _IMAGES
    _IMAGES = image_index
    _ZIPS.clear()


def read_ref(ref: Ref) -> bytes:
    """The bytes of a loose file or zip member (zip handles cached per process)."""
    if ref.member is None:
        return Path(ref.path).read_bytes()
    zf = _ZIPS.get(ref.path)
    if zf is None:
        if len(_ZIPS) > 16:
            for z in _ZIPS.values():
                z.close()
            _ZIPS.clear()
        zf = _ZIPS[ref.path] = zipfile.ZipFile(ref.path)
    return zf.read(ref.member)


class SampleError(Exception):
    """A label that cannot become a sample; `kind` goes into the report."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def _find_image(label: Ref, file_name: str | None) -> Ref:
    candidates: list[Ref] = []
    keys = [PurePosixPath(file_name.replace("\\", "/")).name.lower()] if file_name else []
    keys.append(PurePosixPath(label.logical).stem.lower())  # fall back to "same stem as the JSON"
    for key in keys:
        candidates = _IMAGES.get(key, [])
        if candidates:
            break
    if not candidates:
        raise SampleError("missing_image", f"no image {file_name!r} for this label")
    same_split = [c for c in candidates if c.split == label.split]
    return (same_split or candidates)[0]


def _bbox_rect(bbox) -> tuple[float, float, float, float]:
    """AIHub bbox [x, y, w, h] (or a 4-point polygon, seen in some releases) -> (x0, y0, x1, y1)."""
    if isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox):
        x, y, w, h = (float(v) for v in bbox)
        return x, y, x + w, y + h
    pts = bbox
    if isinstance(pts, list) and len(pts) == 8 and all(isinstance(v, (int, float)) for v in pts):
        pts = [pts[i : i + 2] for i in range(0, 8, 2)]
    if isinstance(pts, list) and len(pts) >= 3 and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in pts):
        xs, ys = [float(p[0]) for p in pts], [float(p[1]) for p in pts]
        return min(xs), min(ys), max(xs), max(ys)
    raise ValueError(f"unknown bbox {bbox!r}")


def _fit_image(img: Image.Image, size: int, fit: str) -> tuple[Image.Image, float, float, float, float]:
    """Resized image plus the affine map original -> output: x' = x * sx + ox, y' = y * sy + oy."""
    w, h = img.size
    if fit == "stretch":
        return img.resize((size, size), Image.Resampling.BICUBIC), size / w, size / h, 0.0, 0.0
    s = size / max(w, h)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    small = img.resize((nw, nh), Image.Resampling.BICUBIC)
    mean = tuple(int(v) for v in small.resize((1, 1), Image.Resampling.BOX).getpixel((0, 0)))
    canvas = Image.new("RGB", (size, size), mean)
    ox, oy = (size - nw) // 2, (size - nh) // 2
    canvas.paste(small, (ox, oy))
    return canvas, nw / w, nh / h, float(ox), float(oy)


def convert_label(
    label: dict, image: Image.Image, size: int, fit: str = "stretch", original_size: tuple[int, int] | None = None
) -> tuple[Image.Image, list[mario.OcrWord], list[str]]:
    """One AIHub label + its photo -> (size x size image, words in output pixels, warnings). Pure.

    `original_size` is the photo's size before any reduced-scale (draft) decoding of `image`.
    """
    warnings: list[str] = []
    info = (label.get("images") or [{}])[0]
    lw, lh = info.get("width"), info.get("height")
    w, h = image.size
    ow, oh = original_size or image.size
    if not (isinstance(lw, (int, float)) and isinstance(lh, (int, float)) and lw > 0 and lh > 0):
        lw, lh = ow, oh
    elif abs(lw - ow) > 1 or abs(lh - oh) > 1:
        warnings.append("label_size_differs_from_image")
    # bbox is in the label's pixel frame; map it onto the decoded (maybe draft-reduced) image's frame first
    fx, fy = w / float(lw), h / float(lh)
    resized, sx, sy, ox, oy = _fit_image(image.convert("RGB"), size, fit)
    words: list[mario.OcrWord] = []
    for ann in label.get("annotations") or []:
        text = ann.get("text") if isinstance(ann, dict) else None
        if not isinstance(text, str) or not text.strip():
            warnings.append("empty_text")
            continue
        text = " ".join(text.split())
        if text.lower() == UNREADABLE:
            warnings.append("dropped_xxx")
            continue
        try:
            x0, y0, x1, y1 = _bbox_rect(ann.get("bbox"))
        except (ValueError, TypeError):
            warnings.append("bad_bbox")
            continue
        # Scale the box with the image (the seed scaled only the corners it then ignored).
        px = [min(max(round(x * fx * sx + ox), 0), size) for x in (x0, x1)]
        py = [min(max(round(y * fy * sy + oy), 0), size) for y in (y0, y1)]
        if px[1] - px[0] < 1 or py[1] - py[0] < 1:
            warnings.append("degenerate_bbox")
            continue
        words.append(mario.OcrWord.from_rect(text, px[0], py[0], px[1], py[1], 1.0))
    return resized, words, warnings


def process_label(task: tuple[str, Ref], out: str, size: int, fit: str, quality: int) -> dict:
    """Worker: one label -> one sample folder. Returns a result record; never raises."""
    sample_id, label_ref = task
    result: dict = {"id": sample_id, "source": label_ref.logical}
    try:
        try:
            raw = read_ref(label_ref)
        except (zipfile.BadZipFile, OSError, EOFError, zipfile.LargeZipFile) as e:
            raise SampleError("unreadable_label", str(e)) from None
        try:
            label = json.loads(raw.decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SampleError("bad_json", str(e)) from None
        if not isinstance(label, dict) or not isinstance(label.get("annotations", []), list):
            raise SampleError("bad_label", "label is not an AIHub annotation object")
        images = label.get("images")
        info = images[0] if isinstance(images, list) and images and isinstance(images[0], dict) else {}
        image_ref = _find_image(label_ref, info.get("file_name"))
        try:
            img = Image.open(io.BytesIO(read_ref(image_ref)))
            original_size = img.size
            img.draft("RGB", (size, size))  # JPEG: decode at 1/2..1/8 scale when still >= size (big speed-up)
            img.load()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, Image.DecompressionBombError) as e:
            raise SampleError("bad_image", f"{image_ref.logical}: {e}") from None
        resized, words, warnings = convert_label(label, img, size, fit, original_size)
        if not words:
            raise SampleError("no_text", "no readable text annotation left")
        lines = mario.merge_lines(words)
        caption = book_caption(mario.title_of(lines))
        mario.write_sample(Path(out), sample_id, mario.encode_jpeg(resized, quality), caption, words)
        result.update(status="ok", image=image_ref.logical, warnings=warnings, n_words=len(words), caption=caption)
    except SampleError as e:
        result.update(status=e.kind, message=str(e))
    except Exception as e:  # noqa: BLE001 - one odd file must never stop a 50k-sample run
        result.update(status="unexpected_error", message=f"{type(e).__name__}: {e}")
    return result


# ---------------------------------------------------------------- driver


def _index_entry(sample_id: str, source: str, split: str, out: Path) -> dict:
    s = mario.read_sample(out / sample_id)
    return {"id": sample_id, "split": split, "caption": s.caption, "n_words": len(s.words), "source": source}


def prepare(cfg: PrepareConfig, progress: Callable[[int, int], None] | None = None) -> PrepareReport:
    """Run (or resume) a preparation; writes samples, `index.jsonl` and `prepare_report.json` under cfg.out."""
    cfg.out.mkdir(parents=True, exist_ok=True)
    if n := mario.clean_tmp(cfg.out):
        logger.info("removed %d half-written samples of an interrupted run", n)
    report = PrepareReport()
    labels, images = discover(cfg, report)
    report.labels_found = len(labels)
    tasks = assign_ids(labels)
    todo = [(sid, ref) for sid, ref in tasks if not mario.is_complete(cfg.out / sid)]
    report.already_done = len(tasks) - len(todo)
    logger.info("%d labels, %d images, %d samples already done", len(labels), len(images), report.already_done)

    image_index: dict[str, list[Ref]] = {}
    for ref in images:
        image_index.setdefault(ref.name.lower(), []).append(ref)
        image_index.setdefault(PurePosixPath(ref.name).stem.lower(), []).append(ref)

    bar = tqdm(total=len(tasks), initial=report.already_done, desc="prepare", unit="sample", disable=None)
    pool = ProcessPoolExecutor(cfg.workers, initializer=_init_worker, initargs=(image_index,))
    finished = False
    try:
        results = pool.map(
            _process_star,
            [(t, str(cfg.out), cfg.size, cfg.fit, cfg.jpeg_quality) for t in todo],
            chunksize=cfg.chunksize,
        )
        for i, r in enumerate(results, 1):
            if r["status"] == "ok":
                report.written += 1
                report.warnings.update(r.get("warnings", []))
            else:
                report.problems.append({"kind": r["status"], "source": r["source"], "message": r.get("message", "")})
            bar.update(1)
            if progress is not None:
                progress(report.already_done + i, len(tasks))
        finished = True
    finally:
        # On Ctrl-C stop handing out work; samples in flight finish (or vanish) atomically either way.
        pool.shutdown(wait=True, cancel_futures=not finished)
        bar.close()
        _write_outputs(cfg, tasks, report)
    return report


def _process_star(args: tuple) -> dict:
    return process_label(*args)


def _write_outputs(cfg: PrepareConfig, tasks: list[tuple[str, Ref]], report: PrepareReport) -> None:
    # The index lists every finished sample, whichever run wrote it, so it is the same after kill + resume.
    entries = [
        _index_entry(sid, ref.logical, ref.split, cfg.out) for sid, ref in tasks if mario.is_complete(cfg.out / sid)
    ]
    mario.write_index(cfg.out, entries)
    tmp = cfg.out / f".{REPORT_FILE}.tmp"
    tmp.write_text(report.to_json(), encoding="utf-8")
    os.replace(tmp, cfg.out / REPORT_FILE)


def build_parser() -> argparse.ArgumentParser:
    d = PrepareConfig(src=Path("."), out=Path("."))
    p = argparse.ArgumentParser(prog="python -m training.prepare_aihub", description=__doc__.split("\n\n")[0])
    p.add_argument("--src", type=Path, required=True, help="folder with the AIHub zips and/or extracted folders")
    p.add_argument("--out", type=Path, required=True, help="output folder of MARIO-style samples")
    p.add_argument("--subset", default=d.subset, help=f"path filter (default {d.subset!r}; '' = all)")
    p.add_argument("--size", type=int, default=d.size)
    p.add_argument("--fit", choices=("stretch", "pad"), default=d.fit)
    p.add_argument("--workers", type=int, default=d.workers)
    p.add_argument("--jpeg-quality", type=int, default=d.jpeg_quality)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = PrepareConfig(args.src, args.out, args.subset, args.size, args.fit, args.workers, args.jpeg_quality)
    try:
        report = prepare(cfg)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished samples are kept; run the same command again to resume", file=sys.stderr)
        return 130
    print(
        f"{report.labels_found} labels: {report.written} written, {report.already_done} already done, "
        f"{len(report.problems)} problems {report.counts()}, {len(report.bad_zips)} bad zips "
        f"-> {cfg.out / mario.INDEX_FILE}, {cfg.out / REPORT_FILE}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
