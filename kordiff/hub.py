"""Hub repos, what each load needs, and the one error type for weights that cannot be loaded here (torch-free leaf).

`loading`, `pipeline`, `tiny`, `capabilities`, the CLIs and the app import their repo ids, download commands and
`ModelUnavailableError` from here, so none of them needs another (and nothing here imports torch).
"""

from __future__ import annotations

import os
import socket
import threading
import warnings
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlparse

TD2_REPO = "JingyeChen22/textdiffuser2-full-ft"  # UNet + fine-tuned text encoder
SD15_REPO = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # VAE, scheduler, tokenizer (runwayml's copy is gone)
M1_REPO = "JingyeChen22/textdiffuser2_layout_planner"  # TD2's Vicuna-7B layout planner
BASELINE = "td2"
TINY = "tiny-random"
BUSY_ART = "busy-art"  # kordiff.evaluate's text-free stand-in "pipeline"
CPU_MODELS = (TINY, BUSY_ART)  # built in memory: no weights, no GPU


@dataclass(frozen=True)
class RepoNeed:
    """A Hub repo (or the part of it) a load reads: subfolders, approximate download size, what it is for."""

    repo: str
    subfolders: tuple[str, ...]
    size: str
    what: str

    def command(self) -> str:
        """The `hf download` command (huggingface_hub >= 1.0; `huggingface-cli` is gone) for just these parts."""
        return " ".join(["hf download", self.repo, *(f"{s}/" for s in self.subfolders)])


# Sizes are the files those commands fetch (fp32 .bin/.safetensors as published), rounded up.
NEEDS = {
    TD2_REPO: RepoNeed(TD2_REPO, ("unet", "text_encoder"), "~4 GB", "TD2 UNet + text encoder"),
    SD15_REPO: RepoNeed(SD15_REPO, ("vae", "scheduler", "tokenizer"), "~1 GB", "SD1.5 VAE, scheduler, tokenizer"),
    M1_REPO: RepoNeed(M1_REPO, (), "13.5 GB", "M1 layout planner (Vicuna-7B)"),
}
M1_CPU_COST = ("M1 on the CPU loads a 7B model in fp32: ~27 GB of RAM (13.5 GB download) and minutes per plan")


class ModelUnavailableError(RuntimeError):
    """Weights that cannot be loaded here; the message says why (offline, missing repo, memory) and how to fix it."""


def repos_for_model(model: str) -> tuple[str, ...]:
    """The Hub repos a pipeline name needs: both TD2 repos for 'td2', none for 'tiny-random' or a directory."""
    if model == BASELINE:
        return (TD2_REPO, SD15_REPO)
    if model in CPU_MODELS or looks_local(model):
        return ()
    return (model,)


def download_hint(repos) -> str:
    """`hf download ...` (size) for every repo, joined with ' and '."""
    parts = []
    for repo in repos:
        need = NEEDS.get(repo)
        parts.append(f"`{need.command()}` ({need.size})" if need else f"`hf download {repo}`")
    return " and ".join(parts)


def hub_offline_flag() -> bool:
    """HF_HUB_OFFLINE set to a true value (huggingface_hub's own switch)."""
    return os.environ.get("HF_HUB_OFFLINE", "0").strip().lower() not in ("0", "", "false", "no", "off")


@lru_cache(maxsize=1)
def hub_reachable(timeout: float = 1.5) -> bool:
    """Whether the Hub answers a TCP connect (so offline users get a message now, not after minutes of retries)."""
    if hub_offline_flag():
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    answer: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            answer.append(True)
        except OSError:
            answer.append(False)

    # A thread, because name resolution (getaddrinfo) ignores socket timeouts and can hang for tens of seconds.
    probe = threading.Thread(target=connect, name="kordiff-hub-probe", daemon=True)
    probe.start()
    probe.join(timeout + 0.5)
    return bool(answer and answer[0])


def looks_local(name: str) -> bool:
    """A filesystem path rather than a Hub id ('org/name')."""
    return os.path.exists(name) or name.startswith(("/", "./", "../", "~")) or name.count("/") > 1


def first_line(err: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, cut at a word boundary, or its type name."""
    text = (str(err).strip().splitlines() or [""])[0].rstrip(". ")
    if len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0] + " ..."
    return text or type(err).__name__


def is_out_of_memory(err: BaseException) -> bool:
    """CPU MemoryError or a CUDA/MPS out-of-memory error (matched by name, so torch need not be imported)."""
    return isinstance(err, MemoryError) or "OutOfMemory" in type(err).__name__ or "out of memory" in str(err).lower()


def _repo_missing(err: BaseException) -> bool:
    names = {type(e).__name__ for e in (err, err.__cause__, err.__context__) if e is not None}
    return bool(names & {"RepositoryNotFoundError", "GatedRepoError", "RevisionNotFoundError"}) or (
        "is not a valid model identifier" in str(err) or "Repository Not Found" in str(err))


def unavailable_message(what: str, repo: str, err: BaseException, *, needed: tuple[str, ...] | None = None,
                        online: bool | None = None) -> str:
    """One line: what could not be loaded, the real cause (offline / no such repo / out of memory / ...), the fix.

    `needed` lists every repo the whole load needs (the download hint names all of them, not just the failing one);
    `online` says whether the Hub was reachable (None: look now).
    """
    needed = needed or (repo,)
    if is_out_of_memory(err):
        return (f"Not enough memory to load the {what} ({first_line(err, 120)}). Close other programs, use fewer "
                "images, or use the 'typeset' mode, which needs no weights.")
    if looks_local(repo):
        if not os.path.isdir(os.path.expanduser(repo)):
            return f"Could not load the {what}: there is no directory {repo!r}."
        return (f"Could not load the {what} from the directory {repo!r}: {first_line(err)}. "
                "Check that it holds a saved model (model_index.json for a kordiff pipeline, config.json for M1).")
    fix = f"download once with network access: {download_hint(needed)}"
    if online is None:
        online = hub_reachable()
    if not online:
        cause = ("HF_HUB_OFFLINE=1 is set" if hub_offline_flag() else "the Hugging Face Hub is unreachable (offline)")
        return (f"Could not load the {what}: {cause} and {repo!r} is not in the local Hub cache; {fix} "
                "(the cache is used offline), or pass a local directory.")
    if _repo_missing(err):
        return f"Could not load the {what}: the Hub has no repo {repo!r} (check the name), or pass a local directory."
    return (f"Could not load the {what} from the Hub repo {repo!r}: {first_line(err)}. If a download was cut off, "
            f"fetch it again: {download_hint(needed)}.")


# huggingface_hub 1.x warns that diffusers' (ignored) `local_dir_use_symlinks` argument is deprecated on every
# load, cached or not; the argument is diffusers', not ours, so only that message is silenced.
warnings.filterwarnings("ignore", message=r"The `local_dir_use_symlinks` argument is deprecated", category=UserWarning)


def load_component(what: str, repo: str, load, *, needed: tuple[str, ...] | None = None, **kwargs):
    """Call `load(repo, **kwargs)`, offline-aware; any failure becomes one ModelUnavailableError with its cause.

    Offline (HF_HUB_OFFLINE or the Hub unreachable), only the local cache is read, so a missing repo fails at
    once instead of after minutes of retries. `needed` lists every repo the whole load needs, for the message.
    """
    online = True
    if not looks_local(repo):
        online = hub_reachable()
        if not online:
            kwargs["local_files_only"] = True  # use the cache if it is there; fail fast if not
    try:
        return load(repo, **kwargs)
    except Exception as e:  # the Hub client raises many types; users need one message
        raise ModelUnavailableError(unavailable_message(what, repo, e, needed=needed, online=online)) from None
