"""Training data: MARIO samples -> a one-time safetensors cache of prompt ids (and VAE latents) -> batches.

The seed re-preprocessed every sample on every run (its biggest time sink) and shuffled 500 samples at a
time. Here each sample is read once: word boxes are merged into lines as TD2 does, turned into the 77
conditioning ids, and stored in shards under `{cache_dir}/{key}/`, where `key` hashes everything the ids
and latents depend on (the data files' names, sizes and times, the tokenizer's vocabulary, the scheme,
resolution, prompt length and, for latents, the VAE weights). Change any of these and a new cache is built;
change none and nothing is recomputed. Shards are written atomically, so an interrupted build resumes.

`EpochSampler` shuffles the whole set each epoch from (seed, epoch) and decides the 10% all-pad prompts
(classifier-free guidance dropout) the same way, so the data position (epoch, batch) fully determines what
comes next: a checkpoint stores just that position. TD2 shuffles the order of a sample's text lines every time
the sample is loaded; the cache keeps each sample's caption and boxes, and `LinePrompts` builds the ids for a
line order drawn from (seed, epoch, sample index), so the augmentation is back and a resumed run still sees
exactly the prompts an uninterrupted one would.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from kordiff.layout import Box, Layout
from kordiff.tokens import detect_scheme, encode_prompt

from . import mario

logger = logging.getLogger(__name__)

CACHE_VERSION = 3  # bump when the way ids/latents are computed changes
META_FILE = "cache.json"


@dataclass(frozen=True)
class DataConfig:
    """Where the samples are and how they become training tensors."""

    data_dirs: tuple[Path, ...]
    cache_dir: Path
    resolution: int = 512
    max_length: int = 77
    shard_size: int = 512
    cache_latents: bool = True
    latent_dtype: str = "float16"  # float16 halves the cache; float32 for exact comparisons
    split: str | None = "training"  # index.jsonl split to use (None = all)
    max_samples: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dirs", tuple(Path(p) for p in self.data_dirs))
        object.__setattr__(self, "cache_dir", Path(self.cache_dir))


# ---------------------------------------------------------------- samples -> ids


def sample_layout(sample: mario.MarioSample, resolution: int):
    """Merged text lines of a sample as a kordiff Layout (boxes scaled from the image's pixel size)."""
    with Image.open(sample.image_path) as im:
        width, height = im.size
    lines = mario.merge_lines(sample.words)
    if (width, height) != (resolution, resolution):
        sx, sy = resolution / width, resolution / height
        lines = [
            mario.TextLine(ln.text, round(ln.x0 * sx), round(ln.y0 * sy), round(ln.x1 * sx), round(ln.y1 * sy))
            for ln in lines
        ]
    return mario.lines_to_layout(lines, resolution)


def sample_prompt(sample: mario.MarioSample, resolution: int) -> list:
    """[caption, [[text, l, t, r, b], ...]]: what the ids are built from, kept in the cache for line shuffling."""
    return [sample.caption, [[b.text, b.l, b.t, b.r, b.b] for b in sample_layout(sample, resolution)]]


def sample_prompt_ids(tokenizer, sample: mario.MarioSample, resolution: int, max_length: int = 77) -> list[int]:
    """The 77 conditioning ids of a sample: its caption + its merged lines (kordiff.tokens.encode_prompt)."""
    # fit_layout as at inference: a long caption never pushes the title's character tokens out
    return encode_prompt(tokenizer, sample.caption, sample_layout(sample, resolution), max_length, fit_layout=True)


def load_pixels(path: Path, resolution: int) -> torch.Tensor:
    """Image file -> float tensor [3, H, W] in [-1, 1] (no augmentation: it would move the text off its box)."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        if im.size != (resolution, resolution):
            im = im.resize((resolution, resolution), Image.Resampling.BICUBIC)
        arr = np.asarray(im, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def list_samples(cfg: DataConfig) -> list[Path]:
    """Sample folders of all data dirs (index.jsonl order, filtered by split), sorted for a stable cache key."""
    out: list[Path] = []
    for root in cfg.data_dirs:
        if not root.is_dir():
            raise FileNotFoundError(f"data dir {root} does not exist")
        for e in mario.read_index(root):
            if cfg.split is not None and e.get("split", "training") != cfg.split:
                continue
            if mario.is_complete(root / e["id"]):
                out.append(root / e["id"])
    out.sort(key=lambda p: (str(p.parent), p.name))
    if cfg.max_samples is not None:
        out = out[: cfg.max_samples]
    if not out:
        raise FileNotFoundError(f"no complete samples in {[str(d) for d in cfg.data_dirs]} (split={cfg.split!r})")
    return out


# ---------------------------------------------------------------- cache key


def _data_fingerprint(paths: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(str(p.resolve()).encode())
        for f in mario.SAMPLE_FILES:
            st = (p / f).stat()
            h.update(f"{f}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def tokenizer_fingerprint(tokenizer) -> str:
    """Hash of the full vocabulary (incl. added tokens) and the scheme."""
    vocab = sorted(tokenizer.get_vocab().items())
    h = hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode("utf-8"))
    h.update(str(detect_scheme(tokenizer)).encode())
    return h.hexdigest()


def module_fingerprint(module: torch.nn.Module) -> str:
    """Hash of a module's weights (so latents from another VAE are never reused)."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def cache_key(cfg: DataConfig, paths: Sequence[Path], tokenizer, vae: torch.nn.Module | None) -> str:
    parts = {
        "version": CACHE_VERSION,
        "data": _data_fingerprint(paths),
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "resolution": cfg.resolution,
        "max_length": cfg.max_length,
        "latents": module_fingerprint(vae) if (cfg.cache_latents and vae is not None) else None,
        "latent_dtype": cfg.latent_dtype if cfg.cache_latents else None,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


# ---------------------------------------------------------------- building


@torch.no_grad()
def encode_latent_params(vae, pixels: torch.Tensor) -> torch.Tensor:
    """VAE posterior parameters (mean and logvar, 2*C channels) for a batch of pixels in [-1, 1]."""
    p = next(vae.parameters())
    return vae.encode(pixels.to(p.device, p.dtype)).latent_dist.parameters.float().cpu()


def build_cache(
    cfg: DataConfig, tokenizer, vae=None, batch_size: int = 8, progress: Callable[[int, int], None] | None = None
) -> Path:
    """Build (or finish, or just find) the cache for these samples; returns its folder."""
    from tqdm.auto import tqdm

    paths = list_samples(cfg)
    key = cache_key(cfg, paths, tokenizer, vae if cfg.cache_latents else None)
    folder = cfg.cache_dir / key
    if (folder / META_FILE).is_file():
        logger.info("using cache %s (%d samples)", folder, len(paths))
        return folder
    if cfg.cache_latents and vae is None:
        raise ValueError("cache_latents needs the VAE")
    folder.mkdir(parents=True, exist_ok=True)
    n_shards = (len(paths) + cfg.shard_size - 1) // cfg.shard_size
    dtype = getattr(torch, cfg.latent_dtype)
    bar = tqdm(total=len(paths), desc="cache", unit="sample", disable=None)
    for s in range(n_shards):
        shard = folder / f"shard-{s:05d}.safetensors"
        chunk = paths[s * cfg.shard_size : (s + 1) * cfg.shard_size]
        if shard.is_file():
            bar.update(len(chunk))
            continue
        ids, latents, prompts = [], [], []
        for k in range(0, len(chunk), batch_size):
            part = chunk[k : k + batch_size]
            samples = [mario.read_sample(p) for p in part]
            ids += [sample_prompt_ids(tokenizer, smp, cfg.resolution, cfg.max_length) for smp in samples]
            prompts += [sample_prompt(smp, cfg.resolution) for smp in samples]
            if cfg.cache_latents:
                pixels = torch.stack([load_pixels(smp.image_path, cfg.resolution) for smp in samples])
                latents.append(encode_latent_params(vae, pixels).to(dtype))
            bar.update(len(part))
            if progress is not None:
                progress(s * cfg.shard_size + k + len(part), len(paths))
        tensors = {"input_ids": torch.tensor(ids, dtype=torch.int32)}
        if cfg.cache_latents:
            tensors["latent_params"] = torch.cat(latents).contiguous()
        tmp = shard.with_suffix(f".{os.getpid()}.tmp")
        save_file(tensors, str(tmp), metadata={"prompts": json.dumps(prompts, ensure_ascii=False)})
        os.replace(tmp, shard)
    bar.close()
    meta = {
        "version": CACHE_VERSION,
        "n": len(paths),
        "shard_size": cfg.shard_size,
        "shards": n_shards,
        "samples": [str(p) for p in paths],
        "latents": cfg.cache_latents,
        "resolution": cfg.resolution,
        "pad_id": tokenizer.pad_token_id,
        "scheme": detect_scheme(tokenizer),
    }
    tmp = folder / f".{META_FILE}.tmp"
    tmp.write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, folder / META_FILE)
    logger.info("built cache %s (%d samples, %d shards)", folder, len(paths), n_shards)
    return folder


# ---------------------------------------------------------------- reading


class CoverDataset(torch.utils.data.Dataset):
    """Items from a built cache: `input_ids` [77] and `latent_params` [2C, h, w] or `pixels` [3, H, W]."""

    def __init__(self, folder: Path, with_latents: bool | None = None):
        self.folder = Path(folder)
        self.meta = json.loads((self.folder / META_FILE).read_text(encoding="utf-8"))
        self.n = int(self.meta["n"])
        self.shard_size = int(self.meta["shard_size"])
        self.with_latents = self.meta["latents"] if with_latents is None else with_latents
        if self.with_latents and not self.meta["latents"]:
            raise ValueError(f"cache {folder} holds no latents")
        self.samples = [Path(p) for p in self.meta["samples"]]
        shards = [self.folder / f"shard-{s:05d}.safetensors" for s in range(int(self.meta["shards"]))]
        # ids are small: load them all; latents stay on disk and are sliced per item
        self.input_ids = torch.cat([_load(s, "input_ids") for s in shards]).long()
        self.prompts = [p for s in shards for p in _prompts(s)]
        self._shards = shards
        self._handles: dict[int, object] = {}

    def __len__(self) -> int:
        return self.n

    def _latent(self, i: int) -> torch.Tensor:
        s, k = divmod(i, self.shard_size)
        h = self._handles.get(s)
        if h is None:
            h = self._handles[s] = safe_open(str(self._shards[s]), framework="pt")
        return h.get_slice("latent_params")[k : k + 1][0].float()

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = {"input_ids": self.input_ids[i], "index": torch.tensor(i)}
        if self.with_latents:
            item["latent_params"] = self._latent(i)
        else:
            item["pixels"] = load_pixels(self.samples[i] / mario.IMAGE_FILE, int(self.meta["resolution"]))
        return item

    def __getstate__(self):  # DataLoader workers: reopen shard handles in each process
        d = dict(self.__dict__)
        d["_handles"] = {}
        return d


def _prompts(path: Path) -> list:
    with safe_open(str(path), framework="pt") as f:
        return json.loads((f.metadata() or {})["prompts"])


def _load(path: Path, name: str) -> torch.Tensor:
    with safe_open(str(path), framework="pt") as f:
        return f.get_tensor(name)


# ---------------------------------------------------------------- order and position


@dataclass
class DataPosition:
    """How far training has read: epoch and global batches consumed in it (saved in checkpoints)."""

    epoch: int = 0
    batch: int = 0

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "batch": self.batch}

    def load_state_dict(self, d: dict) -> None:
        self.epoch, self.batch = int(d["epoch"]), int(d["batch"])

    def advance(self, batches_per_epoch: int) -> None:
        """One batch consumed."""
        self.batch += 1
        if self.batch >= batches_per_epoch:
            self.epoch, self.batch = self.epoch + 1, 0


class EpochSampler:
    """Full shuffle per epoch from (seed, epoch); global batches split across processes; CFG-dropout flags."""

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int,
        num_processes: int = 1,
        process_index: int = 0,
        cfg_dropout: float = 0.1,
    ):
        if n < batch_size * num_processes:
            raise ValueError(f"{n} samples cannot fill one global batch of {batch_size} x {num_processes}")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.num_processes, self.process_index, self.cfg_dropout = num_processes, process_index, cfg_dropout

    @property
    def batches_per_epoch(self) -> int:
        return self.n // (self.batch_size * self.num_processes)  # the ragged tail is dropped (it differs per epoch)

    def epoch_order(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=g), torch.rand(self.n, generator=g) < self.cfg_dropout

    def batches(self, position: DataPosition) -> Iterator[tuple[list[int], list[bool], int]]:
        """This process's (indices, drop flags, epoch) from `position` on, forever (`position` is not changed)."""
        epoch, start = position.epoch, position.batch
        while True:
            order, drop = self.epoch_order(epoch)
            g = self.batch_size * self.num_processes
            for b in range(start, self.batches_per_epoch):
                lo = b * g + self.process_index * self.batch_size
                yield order[lo : lo + self.batch_size].tolist(), drop[lo : lo + self.batch_size].tolist(), epoch
            epoch, start = epoch + 1, 0


def line_order_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of a sample's line order in an epoch (a pure function: resuming draws the same order)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{epoch}:{index}".encode()).digest()[:8], "little")


class LinePrompts:
    """Prompt ids with the sample's text lines in a random order per (epoch, sample), as TD2's loader does."""

    def __init__(self, dataset: CoverDataset, tokenizer, seed: int, max_length: int = 77):
        self.dataset, self.tokenizer, self.seed, self.max_length = dataset, tokenizer, seed, max_length

    def order(self, index: int, epoch: int) -> list[int]:
        n = len(self.dataset.prompts[index][1])
        g = torch.Generator().manual_seed(line_order_seed(self.seed, epoch, index))
        return torch.randperm(n, generator=g).tolist()

    def ids(self, index: int, epoch: int) -> list[int]:
        caption, boxes = self.dataset.prompts[index]
        layout = Layout(tuple(Box(*boxes[k]) for k in self.order(index, epoch)))
        return encode_prompt(self.tokenizer, caption, layout, self.max_length, fit_layout=True)


def collate(
    dataset: CoverDataset,
    indices: list[int],
    drop: list[bool],
    pad_id: int,
    input_ids: list[list[int]] | None = None,
) -> dict[str, torch.Tensor]:
    """A batch; rows flagged for CFG dropout get the all-pad prompt (TD2's unconditional prompt).

    `input_ids`: prompt ids to use instead of the cached ones (LinePrompts' shuffled lines).
    """
    items = [dataset[i] for i in indices]
    if input_ids is None:
        ids = torch.stack([it["input_ids"] for it in items])
    else:
        ids = torch.tensor(input_ids, dtype=torch.long)
    if any(drop):
        ids[torch.tensor(drop)] = pad_id
    batch = {"input_ids": ids, "index": torch.tensor(indices)}
    key = "latent_params" if dataset.with_latents else "pixels"
    batch[key] = torch.stack([it[key] for it in items])
    return batch
