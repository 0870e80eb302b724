"""Training checkpoints that a kill can never half-write, and that load without running any pickled code.

A checkpoint is written into `.checkpoint-N.tmp/`, every file is fsynced, `manifest.json` (each file's size and
sha256) is written last, and only then is the folder renamed to `checkpoint-N` (and the parent directory fsynced).
Old checkpoints are rotated only after that rename, and by renaming them to `.checkpoint-M.trash/` before deleting,
so a kill at any moment leaves the previous complete checkpoint intact. A checkpoint is *complete* when its
manifest parses; `latest` is the newest complete one, verified (sizes and hashes) before anything loads. Leftover `.tmp`
and `.trash` folders are reported and removed.

Every part is safetensors or JSON, except the optimizer state, which is read with `torch.load(weights_only=True)`
(no code runs from it). A missing or corrupt part raises `CheckpointError` with one line naming the file and the
previous complete checkpoint to resume from instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

logger = logging.getLogger(__name__)

FORMAT = 1
MANIFEST = "manifest.json"
PREFIX = "checkpoint-"
UNET_FILE = "unet.safetensors"
TEXT_ENCODER_FILE = "text_encoder.safetensors"
OPTIMIZER_FILE = "optimizer.pt"
SCHEDULER_FILE = "scheduler.json"
EMA_FILE = "ema.safetensors"
SCALER_FILE = "scaler.json"
STATE_FILE = "state.json"


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message is one line meant for the user."""


def step_of(path: Path) -> int | None:
    """N for a folder named checkpoint-N, else None."""
    name = Path(path).name
    tail = name[len(PREFIX) :] if name.startswith(PREFIX) else ""
    return int(tail) if tail.isdigit() else None


def rng_file(rank: int) -> str:
    return f"rng-{rank}.safetensors"


# ---------------------------------------------------------------- finding checkpoints


def checkpoint_dirs(output_dir: Path) -> list[Path]:
    """checkpoint-N folders (complete or not), oldest first."""
    if not Path(output_dir).is_dir():
        return []
    found = [p for p in Path(output_dir).iterdir() if p.is_dir() and step_of(p) is not None]
    return sorted(found, key=step_of)


def read_manifest(path: Path) -> dict | None:
    """The manifest of a checkpoint folder, or None when it is missing or unreadable."""
    try:
        m = json.loads((Path(path) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(m, dict) or m.get("format") != FORMAT or not isinstance(m.get("files"), dict):
        return None
    return m


def size_problem(path: Path) -> str | None:
    """A listed file missing or of the wrong size (a damaged checkpoint), or None."""
    m = read_manifest(path) or {"files": {}}
    for name, info in m["files"].items():
        f = Path(path) / name
        if not f.is_file():
            return f"{name} is missing"
        if f.stat().st_size != info.get("bytes"):
            return f"{name} has {f.stat().st_size} bytes, the manifest says {info.get('bytes')}"
    return None


def complete_checkpoints(output_dir: Path) -> list[Path]:
    """checkpoint-N folders with a manifest (the last thing a save writes), oldest first."""
    return [p for p in checkpoint_dirs(output_dir) if read_manifest(p) is not None]


def clean_leftovers(output_dir: Path) -> list[str]:
    """Remove `.checkpoint-*.tmp` / `.trash` folders a kill left behind; returns what was removed."""
    removed = []
    if not Path(output_dir).is_dir():
        return removed
    for p in sorted(Path(output_dir).iterdir()):
        if p.name.startswith("." + PREFIX) and p.name.endswith((".tmp", ".trash")):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p.name)
    for name in removed:
        logger.warning("removed %s (left by an interrupted save or rotation)", name)
    return removed


def previous_complete(path: Path) -> Path | None:
    """The newest complete checkpoint older than `path` in the same folder."""
    n = step_of(path)
    older = [
        p
        for p in complete_checkpoints(Path(path).parent)
        if (n is None or step_of(p) < n) and size_problem(p) is None
    ]
    return older[-1] if older else None


def advice(path: Path) -> str:
    prev = previous_complete(path)
    if prev is None:
        return "there is no earlier complete checkpoint: start over without --resume-from-checkpoint"
    return f"resume from the previous complete checkpoint instead: --resume-from-checkpoint {prev}"


def fail(path: Path, name: str, problem: str) -> CheckpointError:
    """The one-line error for a bad part of a checkpoint, naming the file and what to resume from instead."""
    return CheckpointError(f"{Path(path) / name}: {problem}; {advice(path)}")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, num_processes: int | None = None, hashes: bool = True) -> dict:
    """Check a checkpoint folder against its manifest (sizes, and sha256 with `hashes`); returns it or raises."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path} not found")
    m = read_manifest(path)
    if m is None or step_of(path) is None:
        raise CheckpointError(
            f"{path} is not a complete kordiff checkpoint (a checkpoint-N folder with a valid {MANIFEST}); "
            f"{advice(path)}"
        )
    for name, info in m["files"].items():
        f = path / name
        if not f.is_file():
            raise fail(path, name, "missing")
        if f.stat().st_size != info.get("bytes") or (hashes and _sha256(f) != info.get("sha256")):
            raise fail(path, name, "corrupt (size or sha256 differs from the manifest)")
    if num_processes is not None and m.get("num_processes") != num_processes:
        raise CheckpointError(
            f"{path} was written by {m.get('num_processes')} processes and this run has {num_processes}: "
            "resume with the same number of processes (the data order and RNG streams are per process)"
        )
    return m


def resolve(output_dir: Path, spec: str | None, num_processes: int, clean: bool, hashes: bool = True) -> Path | None:
    """The checkpoint to resume from: 'latest' = newest complete one (None if there is none), or a path; verified.

    Incomplete checkpoint-N folders (no manifest: a save was killed) are reported and skipped; a complete one that
    fails verification is an error, not skipped (the disk or someone changed it). With `clean` (main process)
    leftovers of killed saves and rotations are removed; `hashes=False` (other processes) checks sizes only, so a
    multi-process run reads and hashes the checkpoint once, not once per process.
    """
    if not spec:
        return None
    output_dir = Path(output_dir)
    if clean:
        clean_leftovers(output_dir)
    if spec == "latest":
        chosen = None
        for p in reversed(checkpoint_dirs(output_dir)):
            if read_manifest(p) is not None:
                chosen = p
                break
            logger.warning("skipping incomplete %s (no valid %s: its save was interrupted)", p.name, MANIFEST)
        if chosen is None:
            logger.info("no complete checkpoint in %s: starting a new run", output_dir)
            return None
    else:
        chosen = Path(spec)
        if not chosen.exists() and (output_dir / spec).exists():
            chosen = output_dir / spec
    verify(chosen, num_processes, hashes)
    return chosen


# ---------------------------------------------------------------- writing


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_dir(output_dir: Path, step: int) -> Path:
    return Path(output_dir) / f".{PREFIX}{step}.tmp"


def begin(output_dir: Path, step: int) -> Path:
    """A fresh, empty temporary folder for checkpoint `step` (main process only)."""
    tmp = temp_dir(output_dir, step)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def commit(tmp: Path, step: int, num_processes: int) -> Path:
    """fsync every file, write the manifest last, rename to checkpoint-N, fsync the parent (main process only)."""
    files = {}
    for f in sorted(p for p in tmp.iterdir() if p.is_file()):
        _fsync(f)
        files[f.name] = {"bytes": f.stat().st_size, "sha256": _sha256(f)}
    manifest = {"format": FORMAT, "step": step, "num_processes": num_processes, "files": files}
    part = tmp / f".{MANIFEST}.part"
    part.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    _fsync(part)
    os.replace(part, tmp / MANIFEST)
    _fsync(tmp)
    final = tmp.parent / f"{PREFIX}{step}"
    old = None
    if final.exists():  # a checkpoint of the same step from an earlier session: replace it
        old = tmp.parent / f".{PREFIX}{step}.old.trash"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    _fsync(tmp.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final


def rotate(output_dir: Path, limit: int | None) -> list[str]:
    """Keep the newest `limit` complete checkpoints: older ones are renamed away, then deleted."""
    if not limit:
        return []
    found = complete_checkpoints(output_dir)
    removed = []
    for old in found[: max(0, len(found) - limit)]:
        trash = Path(output_dir) / f".{old.name}.trash"
        shutil.rmtree(trash, ignore_errors=True)
        os.replace(old, trash)
        shutil.rmtree(trash, ignore_errors=True)
        removed.append(old.name)
    return removed


def write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict | None = None) -> None:
    save_file(
        {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()},
        str(path),
        metadata={"kordiff": json.dumps(meta or {})},
    )


# ---------------------------------------------------------------- parts: save and load


def _read(path: Path, name: str, reader: Callable[[Path], object]):
    """Run `reader` on one part; any failure becomes a one-line CheckpointError naming the file."""
    f = Path(path) / name
    if not f.is_file():
        raise fail(path, name, "missing")
    try:
        return reader(f)
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - safetensors/json/torch raise many types for a bad file
        first = str(e).splitlines()[0][:160] if str(e) else ""
        raise fail(path, name, f"unreadable ({type(e).__name__}: {first})") from None


def load_tensors(path: Path, name: str) -> tuple[dict[str, torch.Tensor], dict]:
    def reader(f: Path):
        with safe_open(str(f), framework="pt") as h:
            meta = json.loads((h.metadata() or {}).get("kordiff", "{}"))
            return {k: h.get_tensor(k) for k in h.keys()}, meta

    return _read(path, name, reader)


def load_json(path: Path, name: str):
    return _read(path, name, lambda f: json.loads(f.read_text(encoding="utf-8")))


def load_module(path: Path, name: str, module: torch.nn.Module) -> None:
    """Load a module's full state dict from a safetensors part (strict: every key, every shape)."""
    tensors, _ = load_tensors(path, name)
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        first = str(e).replace("\n", " ").replace("\t", "")[:200]
        raise fail(path, name, f"does not fit the model ({first})") from None


def save_optimizer(path: Path, optimizer) -> None:
    torch.save(optimizer.state_dict(), path)


def load_optimizer(path: Path, optimizer) -> None:
    sd = _read(path, OPTIMIZER_FILE, lambda f: torch.load(f, map_location="cpu", weights_only=True))
    try:
        optimizer.load_state_dict(sd)
    except (ValueError, KeyError, TypeError, RuntimeError) as e:
        raise fail(path, OPTIMIZER_FILE, f"does not fit the optimizer ({str(e)[:160]})") from None


def load_scheduler(path: Path, scheduler) -> None:
    sd = load_json(path, SCHEDULER_FILE)
    if not isinstance(sd, dict) or "last_epoch" not in sd:
        raise fail(path, SCHEDULER_FILE, "is not an LR scheduler state")
    scheduler.load_state_dict(sd)


def ema_parts(ema) -> tuple[dict[str, torch.Tensor], dict]:
    sd = ema.state_dict()
    tensors = {f"shadow.{i:05d}": p for i, p in enumerate(sd.pop("shadow_params"))}
    return tensors, sd


def load_ema(path: Path, ema) -> None:
    tensors, meta = load_tensors(path, EMA_FILE)
    shadow = [tensors[k] for k in sorted(tensors)]
    want = [p.shape for p in ema.shadow_params]
    if [t.shape for t in shadow] != want:
        raise fail(path, EMA_FILE, f"holds {len(shadow)} tensors that do not match the model's {len(want)} parameters")
    try:
        ema.load_state_dict({**meta, "shadow_params": shadow})
    except ValueError as e:
        raise fail(path, EMA_FILE, f"bad EMA settings ({e})") from None


def rng_parts() -> tuple[dict[str, torch.Tensor], dict]:
    """This process's RNG states (torch CPU and CUDA, numpy, Python) as tensors + JSON."""
    np_state = np.random.get_state()
    tensors = {"torch": torch.get_rng_state(), "numpy": torch.from_numpy(np_state[1].astype(np.int64))}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = s
    py = random.getstate()
    meta = {"python": [py[0], list(py[1]), py[2]], "numpy": [np_state[0], *[float(x) for x in np_state[2:]]]}
    return tensors, meta


def load_rng(path: Path, rank: int) -> None:
    name = rng_file(rank)
    tensors, meta = load_tensors(path, name)
    try:
        torch.set_rng_state(tensors["torch"])
        kind, pos, has_gauss, cached = meta["numpy"]
        np.random.set_state((kind, tensors["numpy"].numpy().astype(np.uint32), int(pos), int(has_gauss), cached))
        v, state, gauss = meta["python"]
        random.setstate((v, tuple(state), gauss))
        cuda = sorted(k for k in tensors if k.startswith("cuda."))
        if cuda and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([tensors[k] for k in cuda])
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        raise fail(path, name, f"is not an RNG state ({type(e).__name__})") from None
