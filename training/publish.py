"""Push a trained KorDiffPipeline to the Hugging Face Hub with a model card.

    python -m training.publish --pipeline DIR --repo-id user/kordiff-ko [--private] [--dry-run]

The card (README.md in DIR) names the base models, the data, the training config and metrics (from
`kordiff_training.json`, written by training.train) and the licences involved. `--dry-run` writes the card
and lists the files that would be uploaded, without any network access.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from kordiff.loading import SD15_REPO, TD2_REPO

from .train import RUN_INFO

CARD_FILE = "README.md"
# Training state is not part of the published model.
EXCLUDE = ("checkpoint-*", "checkpoint-*/**", "cache/**", "logs/**", "validation/**", "unet_lora/**")


@dataclass(frozen=True)
class PublishConfig:
    """What to push where."""

    pipeline: Path
    repo_id: str
    private: bool = False
    dry_run: bool = False
    commit_message: str = "Upload kordiff pipeline"


def _fmt(v) -> str:
    return "—" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))


def is_hub_id(name: str) -> bool:
    """'owner/name' that is not a path on this machine (a Hub model id)."""
    parts = str(name).split("/")
    return (
        len(parts) == 2
        and all(p and p not in (".", "..") for p in parts)
        and not str(name).startswith(("/", "~", "."))
        and "\\" not in str(name)
        and not Path(name).exists()
    )


def _public(value):
    """A config value with local paths replaced by their last component (nothing of this machine is published)."""
    if isinstance(value, (list, tuple)):
        return [_public(v) for v in value]
    if isinstance(value, str) and ("/" in value or "\\" in value or Path(value).exists()) and not is_hub_id(value):
        return f"<local>/{Path(value).name}"
    return value


def public_run_info(pipeline_dir: Path) -> dict:
    """The training record with every local path reduced to its last component; base models as Hub ids only."""
    info = {}
    if (pipeline_dir / RUN_INFO).is_file():
        info = json.loads((pipeline_dir / RUN_INFO).read_text(encoding="utf-8"))
    cfg = dict(info.get("config", {}))
    base = cfg.get("pretrained_model", "td2")
    info["base_models"] = [TD2_REPO, SD15_REPO] if base == "td2" else ([base] if is_hub_id(base) else [])
    info["config"] = {k: _public(v) for k, v in cfg.items()}
    info["data"] = _public(info.get("data", []))
    for v in info.get("validation") or []:
        v["images"] = [Path(p).name for p in v.get("images", [])]
    return info


def model_card(pipeline_dir: Path, repo_id: str) -> str:
    """Model card markdown with Hub front matter, from the pipeline folder and its (public) training record."""
    info = public_run_info(pipeline_dir)
    cfg = info.get("config", {})
    base_models = info["base_models"]
    val = info.get("validation") or []
    last_ocr = val[-1].get("ocr", []) if val else []
    ocr_line = (
        f"{sum(o['correct'] for o in last_ocr)}/{len(last_ocr)} validation titles read exactly, mean NED "
        f"{sum(o['ned'] for o in last_ocr) / len(last_ocr):.3f} (Tesseract kor, kordiff.ocr)"
        if last_ocr
        else "no OCR score recorded (kordiff.ocr was not available during training)"
    )
    front = [
        "---",
        "library_name: diffusers",
        "license: other",
        "language:",
        "- ko",
        "- en",
        "tags:",
        "- text-to-image",
        "- textdiffuser-2",
        "- hangul",
        "- book-cover",
        "- kordiff",
    ]
    if base_models:  # a local starting point has no Hub id: the field is left out rather than wrong
        front += ["base_model:"] + [f"- {m}" for m in base_models]
    front += ["pipeline_tag: text-to-image", "---", ""]
    rows = "\n".join(f"| `{k}` | `{_fmt(v)}` |" for k, v in sorted(cfg.items()) if not isinstance(v, (list, tuple)))
    data = ", ".join(f"`{d}`" for d in info.get("data", [])) or "not recorded"
    mode = f"LoRA rank {cfg['lora_rank']} (fused into the UNet)" if cfg.get("lora_rank") else "full fine-tune"
    body = f"""# {repo_id.split("/")[-1]}

A kordiff pipeline: TextDiffuser-2 (SD1.5 UNet conditioned on a CLIP prompt with
per-line box tokens and per-character tokens) fine-tuned so that Korean (Hangul) titles on book covers are
readable. Hangul scheme: **{cfg.get("scheme", "syllable")}**, Hangul rows initialised with
**{cfg.get("init", "mean")}**, {mode}.

```python
from kordiff import load_pipeline, Layout, Box
pipe = load_pipeline("{repo_id}")
layout = Layout((Box("별빛의 속삭임", 16, 20, 112, 44),))
image = pipe("book cover with a title of 별빛의 속삭임", layout, seed=0).images[0]
```

## Base models
{chr(10).join(f"- [{m}](https://huggingface.co/{m})" for m in base_models) or "a local pipeline (not on the Hub)"}

## Training data
{data}; {info.get("samples", "?")} samples, {info.get("steps", "?")} optimisation steps.
Data prepared with `training.prepare_aihub` (AIHub 야외 실제 촬영 한글 이미지, book covers) and/or
`training.synth` (synthetic covers set in the OFL Nanum and BM DoHyeon fonts).

## Metrics
- final training loss: {_fmt(info.get("final_loss"))}; mean of the last 50 steps: {_fmt(info.get("mean_loss_last_50"))}
- {ocr_line}

## Training config
| field | value |
|---|---|
{rows}

## Licences and terms
- Weights derive from Stable Diffusion 1.5 (CreativeML OpenRAIL-M: its use restrictions apply to this model
  and must be passed on) and from TextDiffuser-2 (microsoft/unilm, MIT code; check the model repo's terms).
- AIHub data may only be used under AIHub's terms (Korean nationals, research use; redistribution of the
  images is not allowed). Say in this card whether AIHub data was used before publishing.
- Fonts used for synthetic data: SIL Open Font License 1.1. kordiff code: MIT.
"""
    return "\n".join(front) + body


def files_to_upload(pipeline_dir: Path) -> list[str]:
    """Relative paths that would be uploaded (training state excluded; RUN_INFO goes up in its public form)."""
    import fnmatch

    out = []
    for p in sorted(pipeline_dir.rglob("*")):
        if not p.is_file():
            continue
        rel = p.relative_to(pipeline_dir).as_posix()
        if not any(fnmatch.fnmatch(rel, pat) for pat in EXCLUDE):
            out.append(rel)
    return out


def publish(cfg: PublishConfig) -> list[str]:
    """Write the card, then upload (unless dry_run); returns the uploaded (or would-be) file list."""
    d = Path(cfg.pipeline)
    if not (d / "model_index.json").is_file():
        raise FileNotFoundError(f"{d} is not a saved pipeline (no model_index.json)")
    (d / CARD_FILE).write_text(model_card(d, cfg.repo_id), encoding="utf-8")
    files = files_to_upload(d)
    if cfg.dry_run:
        return files
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(cfg.repo_id, private=cfg.private, exist_ok=True, repo_type="model")
    api.upload_folder(
        folder_path=str(d),
        repo_id=cfg.repo_id,
        commit_message=cfg.commit_message,
        ignore_patterns=[*EXCLUDE, RUN_INFO],
    )
    if (d / RUN_INFO).is_file():
        public = json.dumps(public_run_info(d), ensure_ascii=False, indent=2).encode("utf-8")
        api.upload_file(path_or_fileobj=public, path_in_repo=RUN_INFO, repo_id=cfg.repo_id,
                        commit_message=cfg.commit_message)
    return files


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.publish", description=__doc__.split("\n\n")[0])
    p.add_argument("--pipeline", type=Path, required=True)
    p.add_argument("--repo-id", required=True)
    p.add_argument("--private", action="store_true")
    p.add_argument("--dry-run", action="store_true", help="write the card and list files; no network")
    a = p.parse_args(argv)
    try:
        files = publish(PublishConfig(a.pipeline, a.repo_id, a.private, a.dry_run))
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - the Hub client raises many types; show one line
        print(f"error: upload failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    verb = "would upload" if a.dry_run else "uploaded"
    print(f"{verb} {len(files)} files to {a.repo_id}:")
    for f in files:
        print(f"  {f}")
    print(f"model card: {a.pipeline / CARD_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
