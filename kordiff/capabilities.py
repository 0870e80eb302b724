"""What works here, found at start-up without torch or weights: GPU, cached weights, Hub reachable -> defaults.

Policy (the app and the CLIs share it): a GPU plus the pipeline's weights (cached, or the Hub reachable to fetch
them) -> `hybrid` mode; a GPU plus M1's weights -> the `m1` planner. Anything less -> `typeset` mode and the
`heuristic` planner, which need neither, and `status` says in one line what is off, why and how to turn it on.
M1 on a CPU only when asked for explicitly (`M1_CPU_COST` says what it costs).

The GPU probe does not import torch (2-10 s): it reads the NVIDIA driver's /proc entries and device nodes,
then asks `nvidia-smi -L` (2 s timeout). CUDA_VISIBLE_DEVICES="" or "-1" hides GPUs, as torch would;
SPACES_ZERO_GPU (ZeroGPU Spaces, where a GPU is attached per call) counts as a GPU. The weights probe reads the
Hub cache layout (`models--ORG--NAME/snapshots/REV/...`, documented by huggingface_hub) for the files each load
reads. Every probe is injectable, so tests fake them.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

from .hub import (
    BASELINE,
    CPU_MODELS,
    M1_CPU_COST,
    M1_REPO,
    SD15_REPO,
    TD2_REPO,
    download_hint,
    hub_offline_flag,
    looks_local,
    repos_for_model,
)
from .hub import hub_reachable as _hub_reachable

logger = logging.getLogger(__name__)

# Files a load reads, per repo: a config and one of the weight files (any of the globs).
REQUIRED_FILES: dict[str, tuple[tuple[str, ...], ...]] = {
    TD2_REPO: (("unet/config.json",),
               ("unet/diffusion_pytorch_model*.safetensors", "unet/diffusion_pytorch_model*.bin"),
               ("text_encoder/config.json",), ("text_encoder/model*.safetensors", "text_encoder/pytorch_model*.bin")),
    SD15_REPO: (("vae/config.json",), ("vae/diffusion_pytorch_model*.safetensors", "vae/diffusion_pytorch_model*.bin"),
                ("scheduler/scheduler_config.json",), ("tokenizer/vocab.json",), ("tokenizer/merges.txt",)),
    M1_REPO: (("config.json",), ("model*.safetensors", "pytorch_model*.bin"),
              ("tokenizer.model", "tokenizer.json")),
}
GENERIC_FILES = (("model_index.json", "config.json"),)  # another Hub id: a saved pipeline (or model) repo


def gpu_present() -> bool:
    """An NVIDIA GPU visible to this process (no torch import; see the module docstring)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    if os.environ.get("SPACES_ZERO_GPU"):
        return True
    if glob.glob("/proc/driver/nvidia/gpus/*") or os.path.exists("/dev/nvidia0"):
        return True
    smi = shutil.which("nvidia-smi")
    if not smi:
        return False
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=2)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def hub_cache_dir() -> str:
    """huggingface_hub's cache folder (HF_HUB_CACHE / HF_HOME / ~/.cache/huggingface/hub)."""
    from huggingface_hub import constants  # a 2 ms import, unlike the client

    return constants.HF_HUB_CACHE


def weights_cached(repo: str, cache_dir: str | None = None) -> bool:
    """Whether the local Hub cache (or the directory `repo`) holds the files a load of `repo` reads."""
    if looks_local(repo):
        path = os.path.expanduser(repo)
        return any(os.path.isfile(os.path.join(path, name)) for name in ("model_index.json", "config.json"))
    root = os.path.join(cache_dir or hub_cache_dir(), "models--" + repo.replace("/", "--"))
    snapshots = []
    ref = os.path.join(root, "refs", "main")
    if os.path.isfile(ref):
        with open(ref, encoding="utf-8") as f:
            snapshots.append(os.path.join(root, "snapshots", f.read().strip()))
    snapshots += sorted(glob.glob(os.path.join(root, "snapshots", "*")))
    required = REQUIRED_FILES.get(repo, GENERIC_FILES)
    return any(all(any(glob.glob(os.path.join(snap, pattern)) for pattern in options) for options in required)
               for snap in dict.fromkeys(snapshots) if os.path.isdir(snap))


@dataclass(frozen=True)
class Capabilities:
    """What works here and the defaults that follow; `status` is one line for users ('' when nothing is off)."""

    gpu: bool
    weights: dict[str, bool] = field(default_factory=dict)  # repo -> in the local cache
    hub_reachable: bool | None = None  # None: not asked (offline flag set, or everything cached)
    model: str = BASELINE
    default_mode: str = "typeset"
    default_planner: str = "heuristic"
    status: str = ""

    @property
    def pipeline_ready(self) -> bool:
        """The chosen model's weights are here or can be fetched, and there is a device to run them."""
        return self.default_mode == "hybrid"

    def planner_notice(self, planner: str) -> str:
        """What choosing `planner` costs here ('' when nothing to say): M1 on a CPU is slow and memory-hungry."""
        if planner == "m1" and not self.gpu:
            return f"M1 planner requested without a GPU: {M1_CPU_COST}."
        return ""


def detect_capabilities(model: str = BASELINE, *, planner_repo: str = M1_REPO, gpu: Callable[[], bool] = gpu_present,
           cached: Callable[[str], bool] = weights_cached, reachable: Callable[[], bool] = _hub_reachable,
           ) -> Capabilities:
    """Probe GPU, cache and Hub for `model` and the M1 planner, and pick the defaults (see the module docstring)."""
    repos = repos_for_model(model)
    has_gpu = bool(gpu())
    weights = {repo: bool(cached(repo)) for repo in (*repos, planner_repo)}
    if model not in CPU_MODELS and looks_local(model):
        weights[model] = bool(cached(model))
    missing = [r for r, ok in weights.items() if not ok]
    online: bool | None = None
    # The Hub only changes the defaults where there is a GPU to run what it would download: elsewhere no probe,
    # so a CPU start-up never waits on the network.
    if missing and has_gpu and not hub_offline_flag():
        online = bool(reachable())
    available = {r: ok or bool(online) for r, ok in weights.items()}
    pipeline_weights = all(available[r] for r in repos) and weights.get(model, True)
    # tiny-random and busy-art are built in memory: they run anywhere, so they never need a GPU.
    pipeline_ok = pipeline_weights and (has_gpu or model in CPU_MODELS)
    planner_ok = has_gpu and available[planner_repo]
    mode = "hybrid" if pipeline_ok else "typeset"
    planner = "m1" if planner_ok else "heuristic"
    return Capabilities(has_gpu, weights, online, model, mode, planner,
                        _status(model, has_gpu, weights, online, pipeline_ok, planner_ok, planner_repo))


def _status(model: str, gpu: bool, weights: dict[str, bool], online: bool | None, pipeline_ok: bool,
            planner_ok: bool, planner_repo: str) -> str:
    """One line: what is off, why, how to turn it on."""
    if pipeline_ok and planner_ok:
        return ""
    off = []
    if not pipeline_ok:
        off.append("the diffusion model")
    if not planner_ok:
        off.append("the M1 planner")
    reasons = []
    if not gpu:
        reasons.append("no GPU")
    missing = [r for r, ok in weights.items() if not ok]
    if missing and not online:
        why = "" if online is None else " and the Hub is unreachable"
        why = " and HF_HUB_OFFLINE=1" if hub_offline_flag() else why
        reasons.append(f"weights not in the local Hub cache{why}")
    using = "typeset mode" if not pipeline_ok else "hybrid mode"
    using += " + heuristic planner" if not planner_ok else " + M1 planner"
    verb = "is" if len(off) == 1 else "are"
    line = f"Defaults here: {using}; {' and '.join(off)} {verb} off ({'; '.join(reasons) or 'unavailable'})."
    fixes = []
    hub_missing = [r for r in missing if not looks_local(r)]
    if hub_missing and not online:
        fixes.append(f"download with network access: {download_hint(hub_missing)}")
    local_missing = [r for r in missing if looks_local(r)]
    if local_missing:
        fixes.append(f"no saved pipeline in {local_missing[0]!r}")
    if not gpu:
        fixes.append("use a machine with an NVIDIA GPU (on this CPU, --planner m1 costs "
                     f"{M1_CPU_COST.split(': ', 1)[1]})")
    return line + (" To turn it on: " + "; ".join(fixes) + "." if fixes else "")


_DETECTED: dict[tuple, Capabilities] = {}


def startup_capabilities(model: str = BASELINE) -> Capabilities:
    """`detect_capabilities(model)` once per process, with its status logged once (a warning) when something is off."""
    key = (model,)
    if key not in _DETECTED:
        caps = _DETECTED[key] = detect_capabilities(model)
        if caps.status:
            logger.warning("%s", caps.status)
    return _DETECTED[key]
