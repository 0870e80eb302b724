"""Checkpoints: atomic writing, `latest` = newest complete one, leftovers cleaned, every bad part one clear line, and
no pickled code ever runs (tiny models, CPU)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from training import checkpoint as ckpt
from training.synth import SynthConfig, synthesize

pytestmark = pytest.mark.usefixtures("fresh_accelerate")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict]:
    """A finished 4-step run with EMA and checkpoints 2 and 4; returns (output dir, config kwargs)."""
    from kordiff.tiny import tiny_pipeline
    from training.train import TrainConfig, train

    root = tmp_path_factory.mktemp("ckpt")
    synthesize(SynthConfig(n=8, out=root / "covers", size=128, workers=1))
    tiny_pipeline(seed=0).save_pretrained(str(root / "base"))
    kw = dict(
        pretrained_model=str(root / "base"),
        train_data_dir=(str(root / "covers"),),
        cache_dir=str(root / "cache"),
        max_train_steps=4,
        train_batch_size=2,
        checkpointing_steps=2,
        checkpoints_total_limit=2,
        validation_steps=0,
        use_ema=True,
        report_to=None,
    )
    out = train(TrainConfig(output_dir=str(root / "run"), **kw))
    return out, kw


def _copy(trained, tmp_path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(trained[0], out)
    return out


def _rehash(folder: Path) -> None:
    """Rewrite the manifest to match the files (what a crafted, 'valid-looking' checkpoint would do)."""
    m = json.loads((folder / ckpt.MANIFEST).read_text())
    m["files"] = {
        f.name: {"bytes": f.stat().st_size, "sha256": ckpt._sha256(f)}
        for f in folder.iterdir()
        if f.is_file() and f.name != ckpt.MANIFEST
    }
    (folder / ckpt.MANIFEST).write_text(json.dumps(m))


def _resume(trained, out: Path, spec: str = "latest", **kw):
    from training.train import TrainConfig, train

    return train(TrainConfig(output_dir=str(out), **{**trained[1], "resume_from_checkpoint": spec, **kw}))


def test_checkpoint_has_a_manifest_of_every_file_and_no_pickle_but_the_optimizer(trained):
    out = trained[0]
    assert [p.name for p in ckpt.complete_checkpoints(out)] == ["checkpoint-2", "checkpoint-4"]
    files = set(ckpt.read_manifest(out / "checkpoint-4")["files"])
    assert files == {
        ckpt.UNET_FILE,
        ckpt.TEXT_ENCODER_FILE,
        ckpt.OPTIMIZER_FILE,
        ckpt.SCHEDULER_FILE,
        ckpt.EMA_FILE,
        ckpt.STATE_FILE,
        ckpt.rng_file(0),
    }
    assert not list(out.glob(".checkpoint-*")), "no temporary folder survives a finished run"


def test_latest_skips_an_incomplete_checkpoint_and_cleans_leftovers(trained, tmp_path, caplog):
    out = _copy(trained, tmp_path)
    (out / "checkpoint-4" / ckpt.MANIFEST).unlink()  # killed before the manifest: incomplete
    (out / ".checkpoint-6.tmp").mkdir()  # killed mid-save
    (out / ".checkpoint-1.trash").mkdir()  # killed mid-rotation
    (out / "checkpoint-8").mkdir()  # an empty folder named like a checkpoint
    with caplog.at_level("WARNING"):
        got = ckpt.resolve(out, "latest", num_processes=1, clean=True)
    assert got == out / "checkpoint-2"
    assert "skipping incomplete checkpoint-4" in caplog.text and "skipping incomplete checkpoint-8" in caplog.text
    assert not (out / ".checkpoint-6.tmp").exists() and not (out / ".checkpoint-1.trash").exists()
    assert ckpt.resolve(tmp_path / "empty", "latest", 1, clean=True) is None  # nothing yet: a new run


@pytest.mark.parametrize(
    "name",
    [ckpt.UNET_FILE, ckpt.TEXT_ENCODER_FILE, ckpt.OPTIMIZER_FILE, ckpt.SCHEDULER_FILE, ckpt.EMA_FILE,
     ckpt.STATE_FILE, ckpt.rng_file(0)],
)
def test_each_truncated_or_missing_part_is_one_line_naming_it_and_the_previous_checkpoint(trained, tmp_path, name):
    out = _copy(trained, tmp_path)
    f = out / "checkpoint-4" / name
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(ckpt.CheckpointError) as e:
        ckpt.resolve(out, str(out / "checkpoint-4"), 1, clean=True)
    msg = str(e.value)
    assert "\n" not in msg and name in msg and "corrupt" in msg and str(out / "checkpoint-2") in msg
    f.unlink()
    with pytest.raises(ckpt.CheckpointError, match=f"{name}: missing.*checkpoint-2"):
        ckpt.verify(out / "checkpoint-4")


def test_a_folder_that_is_not_a_checkpoint_is_refused_before_any_model_loads(trained, tmp_path):
    out = _copy(trained, tmp_path)
    for spec in (str(tmp_path), str(out / "cache"), "checkpoint-99"):
        # a missing base model proves nothing was loaded: the checkpoint check failed first
        with pytest.raises(ckpt.CheckpointError, match="not found|not a complete kordiff checkpoint"):
            _resume(trained, out, spec, pretrained_model=str(tmp_path / "no-such-model"))
    with pytest.raises(ckpt.CheckpointError, match="written by 1 processes and this run has 2"):
        ckpt.verify(out / "checkpoint-4", num_processes=2)


class _Boom:
    """Unpickling this creates a file: the proof that code ran."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_crafted_pickles_never_run_and_crafted_parts_give_one_line(trained, tmp_path):
    out = _copy(trained, tmp_path)
    marker = tmp_path / "pwned"
    last = out / "checkpoint-4"
    torch.save({"state": _Boom(str(marker))}, last / "ema.pt")  # the old EMA file name: never read now
    torch.save({"state": _Boom(str(marker))}, last / ckpt.OPTIMIZER_FILE)
    _rehash(last)
    with pytest.raises(ckpt.CheckpointError, match=f"{ckpt.OPTIMIZER_FILE}: unreadable.*checkpoint-2"):
        _resume(trained, out)
    assert not marker.exists(), "a pickled object ran code while loading a checkpoint"

    out = _copy(trained, tmp_path / "b")
    from safetensors.torch import save_file

    save_file({}, str(out / "checkpoint-4" / ckpt.EMA_FILE))  # an empty EMA must not be accepted silently
    _rehash(out / "checkpoint-4")
    with pytest.raises(ckpt.CheckpointError, match=f"{ckpt.EMA_FILE}: holds 0 tensors.*checkpoint-2"):
        _resume(trained, out)

    out = _copy(trained, tmp_path / "c")
    (out / "checkpoint-4" / ckpt.UNET_FILE).write_bytes(b"garbage" * 100)
    _rehash(out / "checkpoint-4")
    with pytest.raises(ckpt.CheckpointError, match=f"{ckpt.UNET_FILE}: unreadable.*checkpoint-2"):
        _resume(trained, out)


def test_cli_reports_a_corrupt_checkpoint_in_one_line(trained, tmp_path, capsys):
    from training.train import main

    out = _copy(trained, tmp_path)
    (out / "checkpoint-4" / ckpt.rng_file(0)).write_bytes(b"x")
    argv = ["--output-dir", str(out), "--resume-from-checkpoint", "latest", "--report-to", ""]
    for k, v in trained[1].items():
        flag = "--" + k.replace("_", "-")
        if isinstance(v, bool):
            argv.append(flag if v else "--no-" + k.replace("_", "-"))
        elif isinstance(v, tuple):
            argv += [flag, *v]
        elif v is not None:
            argv += [flag, str(v)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "rng-0.safetensors" in err[0] and "checkpoint-2" in err[0] and "Traceback" not in err[0]


def test_rotation_happens_only_after_the_new_checkpoint_is_complete(tmp_path, monkeypatch):
    out = tmp_path
    for step in (2, 4):
        tmp = ckpt.begin(out, step)
        (tmp / "x.bin").write_bytes(b"abc")
        ckpt.commit(tmp, step, 1)
    tmp = ckpt.begin(out, 6)
    (tmp / "x.bin").write_bytes(b"abc")
    # a kill after commit and before rotation leaves 3 complete checkpoints; rotation then keeps the newest
    real_replace = ckpt.os.replace
    order = []
    monkeypatch.setattr(ckpt.os, "replace", lambda a, b: (order.append(Path(b).name), real_replace(a, b)))
    ckpt.commit(tmp, 6, 1)
    assert ckpt.rotate(out, 1) == ["checkpoint-2", "checkpoint-4"]
    assert order[-3:] == ["checkpoint-6", ".checkpoint-2.trash", ".checkpoint-4.trash"]
    assert [p.name for p in ckpt.complete_checkpoints(out)] == ["checkpoint-6"]
