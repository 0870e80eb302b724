"""Kill a tiny training with SIGKILL at random moments (also mid-save and mid-rotation), resume each with
`--resume-from-checkpoint latest`, and check that every resumed run ends bitwise equal to an uninterrupted one.

    python bench/kill_resume.py [--kills 20] [--steps 8] [--seed 0]

Tiny random models on the CPU, a checkpoint after every step and `checkpoints_total_limit 1`, so saving and
rotating take a large share of the run. Kill moments: a third uniformly over the training phase, a third as soon as
a checkpoint's temporary folder appears (plus 0-40 ms: inside the save), a third as soon as a new checkpoint sits
next to the old one (inside the rotation window). Exit status 1 if any resume failed or differed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
STARTED = "training.train: training "  # the log line printed when the loop is about to start


def launch(cfg: Path, out: Path, *flags: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "training.train", "--config", str(cfg), "--output-dir", str(out), *flags]
    return subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def wait_for_line(proc: subprocess.Popen, needle: str, log: list[str]) -> bool:
    for line in proc.stdout:  # type: ignore[union-attr]
        log.append(line)
        if needle in line:
            return True
    return False


def snapshot(out: Path) -> str:
    """What a kill left on disk."""
    names = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    tmp = [n for n in names if n.endswith(".tmp")]
    trash = [n for n in names if n.endswith(".trash")]
    ckpts = [n for n in names if n.startswith("checkpoint-")]
    parts = []
    if tmp:
        parts.append(f"mid-save ({tmp[0]}: {len(list((out / tmp[0]).iterdir()))} files)")
    if trash:
        parts.append(f"mid-rotation ({trash[0]})")
    if len(ckpts) > 1:
        parts.append(f"before rotation ({', '.join(ckpts)})")
    if "model_index.json" in names:
        parts.append("final save started")
    return "; ".join(parts) or (f"between saves ({', '.join(ckpts)})" if ckpts else "before the first checkpoint")


def weights(d: Path) -> dict[str, torch.Tensor]:
    return {f"{sub}.{k}": v for sub in ("unet", "text_encoder")
            for f in sorted((d / sub).glob("*.safetensors")) for k, v in load_file(str(f)).items()}


def watch_and_kill(proc: subprocess.Popen, out: Path, mode: str, delay: float, rng: random.Random) -> float:
    """Kill the run's process group per `mode`; returns seconds after the loop started."""
    t0 = time.perf_counter()
    while proc.poll() is None:
        now = time.perf_counter() - t0
        names = [p.name for p in out.iterdir()] if out.is_dir() else []
        hit = (
            (mode == "uniform" and now >= delay)
            or (mode == "save" and now >= delay and any(n.endswith(".tmp") for n in names))
            or (mode == "rotation" and now >= delay and sum(n.startswith("checkpoint-") for n in names) > 1)
        )
        if hit:
            if mode == "save":
                time.sleep(rng.uniform(0, 0.04))
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return time.perf_counter() - t0
        time.sleep(0.0005)
    return -1.0  # finished before the chosen moment


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one, removed)")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    work = a.work or Path(tempfile.mkdtemp(prefix="kordiff-kill-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        from kordiff.tiny import tiny_pipeline
        from training.synth import SynthConfig, synthesize

        synthesize(SynthConfig(n=16, out=work / "covers", size=128, workers=1))
        tiny_pipeline(seed=0).save_pretrained(str(work / "base"))
        cfg = work / "cfg.json"
        cfg.write_text(json.dumps(dict(
            pretrained_model=str(work / "base"), train_data_dir=[str(work / "covers")], cache_dir=str(work / "cache"),
            max_train_steps=a.steps, train_batch_size=2, gradient_accumulation_steps=2, lr_scheduler="cosine",
            lr_warmup_steps=2, checkpointing_steps=1, checkpoints_total_limit=1, validation_steps=0, use_ema=True,
            learning_rate=1e-3, report_to=None,
        )))

        log: list[str] = []
        ref = launch(cfg, work / "reference")
        wait_for_line(ref, STARTED, log)
        t0 = time.perf_counter()
        log += ref.stdout.readlines()  # type: ignore[union-attr]
        if ref.wait() != 0:
            print("".join(log[-30:]))
            return 1
        loop_s = time.perf_counter() - t0
        reference = weights(work / "reference")
        print(f"reference: {a.steps} steps, checkpoint + rotation every step, training phase {loop_s:.1f} s\n")

        rows, failures = [], 0
        modes = ["uniform", "save", "rotation"]
        for k in range(a.kills):
            mode = modes[k % 3]
            out = work / f"trial-{k:02d}"
            for _attempt in range(4):  # a run that finished before its kill moment is redone with a new moment
                shutil.rmtree(out, ignore_errors=True)
                log = []
                proc = launch(cfg, out)
                if not wait_for_line(proc, STARTED, log):
                    print("".join(log[-30:]))
                    return 1
                delay = rng.uniform(0, loop_s * (1.0 if mode == "uniform" else 0.75))
                killed_at = watch_and_kill(proc, out, mode, delay, rng)
                if killed_at >= 0:
                    break
            left = snapshot(out) if killed_at >= 0 else "run finished before the kill"
            res = launch(cfg, out, "--resume-from-checkpoint", "latest")
            text, _ = res.communicate()
            resumed_from = next((ln.split("resumed from ")[1].split(" at ")[0] for ln in text.splitlines()
                                 if "resumed from " in ln), "nothing (new run)")
            cleaned = [ln.split("removed ")[1].split(" ")[0] for ln in text.splitlines() if "WARNING" in ln
                       and "removed ." in ln]
            if res.returncode != 0:
                verdict = f"RESUME FAILED rc={res.returncode}: {text.strip().splitlines()[-1][:100]}"
            else:
                got = weights(out)
                same = got.keys() == reference.keys() and all(torch.equal(got[n], reference[n]) for n in got)
                verdict = "bitwise equal" if same else "DIFFERENT"
            failures += verdict != "bitwise equal"
            rows.append((k, mode, killed_at, left, Path(resumed_from).name, ", ".join(cleaned) or "-", verdict))
            print(f"{k:2d} {mode:8} kill at {killed_at:6.3f}s  {left:58} resumed from {Path(resumed_from).name:16} "
                  f"cleaned {', '.join(cleaned) or '-':22} {verdict}", flush=True)
            shutil.rmtree(out, ignore_errors=True)

        print("\n| # | kill mode | s into training | left on disk at the kill | resumed from | cleaned | result |")
        print("|---|---|---|---|---|---|---|")
        for k, mode, at, left, frm, cleaned, verdict in rows:
            print(f"| {k} | {mode} | {at:.3f} | {left} | {frm} | {cleaned} | {verdict} |")
        print(f"\n{a.kills - failures}/{a.kills} killed runs resumed with `latest` and ended bitwise equal to the "
              "uninterrupted run")
        return 1 if failures else 0
    finally:
        if a.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
