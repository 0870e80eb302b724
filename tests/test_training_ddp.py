"""Two processes (DDP over gloo on the CPU), launched as the README writes it: a stopped and resumed 2-process run
ends bitwise equal to an uninterrupted 2-process run, with warm-up + cosine LR, accumulation 2 and EMA."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.skipif(shutil.which("accelerate") is None, reason="needs the accelerate CLI")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(cfg: Path, *flags: str) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "-q", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(_free_port()), "-m", "training.train", "--config", str(cfg), *flags,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1"}
    root = Path(__file__).resolve().parent.parent
    # own session: on a hang the launcher AND both ranks are killed (else orphaned ranks keep the cores busy)
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"2-process run did not finish in 300 s: {' '.join(flags)}\n{out[-1500:]}\n{err[-3000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _weights(d: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return {f"{sub}.{k}": v for sub in ("unet", "text_encoder")
            for f in sorted((d / sub).glob("*.safetensors")) for k, v in load_file(str(f)).items()}


@pytest.mark.slow
def test_two_process_ddp_stopped_and_resumed_equals_uninterrupted(tmp_path):
    from kordiff.tiny import tiny_pipeline
    from training.checkpoint import complete_checkpoints, read_manifest
    from training.synth import SynthConfig, synthesize

    synthesize(SynthConfig(n=16, out=tmp_path / "covers", size=128, workers=1))
    tiny_pipeline(seed=0).save_pretrained(str(tmp_path / "base"))
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(dict(
        pretrained_model=str(tmp_path / "base"), train_data_dir=[str(tmp_path / "covers")],
        cache_dir=str(tmp_path / "cache"), max_train_steps=3, train_batch_size=2, gradient_accumulation_steps=2,
        lr_scheduler="cosine", lr_warmup_steps=1, checkpointing_steps=2, checkpoints_total_limit=1,
        validation_steps=0, use_ema=True, learning_rate=1e-3, report_to=None,
    )))
    straight = _launch(cfg, "--output-dir", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr[-3000:]
    assert "batch 2 x 2 processes x 2 accumulation" in straight.stderr, "did not run as two processes"

    stopped = _launch(cfg, "--output-dir", str(tmp_path / "resumed"), "--stop-at-step", "1")
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    assert "stopped at step 1" in stopped.stdout and not (tmp_path / "resumed" / "model_index.json").exists()
    [ck] = complete_checkpoints(tmp_path / "resumed")
    assert ck.name == "checkpoint-1" and {"rng-0.safetensors", "rng-1.safetensors"} <= set(read_manifest(ck)["files"])

    resumed = _launch(cfg, "--output-dir", str(tmp_path / "resumed"), "--resume-from-checkpoint", "latest")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stderr
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert a.keys() == b.keys() and a
    assert all(torch.equal(a[k], b[k]) for k in a), "the resumed 2-process run differs from the uninterrupted one"
