"""Frozen dataclass configs and the one helper that turns them into argparse CLIs."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass, field

from .modes import MODES, mode_help

# Torch-free copies of the pipeline's limits, so CLIs and the app can build their flags without importing torch;
# tests/test_cli.py checks they equal kordiff.pipeline's.
SCHEDULER_NAMES = ("ddpm", "ddim", "dpm++", "euler", "euler_a", "unipc")
MAX_IMAGES = 8
MAX_SEED = 2**31 - 1  # seeds a torch.Generator takes on every platform


def add_dataclass_args(parser: argparse.ArgumentParser, cls, *, suppress_defaults: bool = False,
                       choices: dict | None = None) -> argparse.ArgumentParser:
    """One flag per field of a dataclass, typed and documented from the field's metadata.

    Every kordiff CLI spells flags in kebab-case (`--train-batch-size`); the snake_case spelling of diffusers'
    scripts (`--train_batch_size`) is accepted as a hidden alias so their users' muscle memory still works.
    `suppress_defaults` leaves unset flags out of the namespace, so a config file can supply them; `choices` adds
    per-field choices to those in the fields' metadata.
    """
    choices = choices or {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        kind = hints[f.name]
        args = typing.get_args(kind)
        if args and type(None) in args:  # Optional[X] -> X
            kind = next(a for a in args if a is not type(None))
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        shown = f.metadata.get("default_help", repr(default))  # e.g. "detected at start-up" for a None default
        kw: dict = {"help": (f.metadata.get("help", "") + f" (default: {shown})").strip(), "dest": f.name,
                    "default": argparse.SUPPRESS if suppress_defaults else default}
        if kind is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(kind) is tuple:
            kw.update(nargs="*", type=typing.get_args(kind)[0])
        else:
            kw.update(type=kind, choices=choices.get(f.name, f.metadata.get("choices")))
        parser.add_argument(flag, **kw)
        if "_" in f.name:
            parser.add_argument("--" + f.name, **{**kw, "help": argparse.SUPPRESS, "default": argparse.SUPPRESS})
    return parser


def from_args(cls, ns: argparse.Namespace):
    """Build the dataclass from parsed args (extra namespace entries are ignored)."""
    return cls(**{f.name: getattr(ns, f.name) for f in dataclasses.fields(cls)})


@dataclass(frozen=True)
class GenerateConfig:
    """How to sample covers; defaults follow TD2's demo (DDPM, 20 steps, CFG 7.5)."""

    model: str = field(default="td2", metadata={
        "help": "'td2' (TD2 baseline, needs its weights), 'tiny-random' (random tiny model, smoke runs), "
                "'busy-art' (text-free stand-in art, no weights), a saved kordiff pipeline directory or Hub id"})
    scheme: str = field(default="syllable", metadata={"help": "Hangul token scheme for the td2 baseline",
                                                      "choices": ["syllable", "jamo"]})
    num_images: int = field(default=1, metadata={"help": f"covers to write (1-{MAX_IMAGES})"})
    steps: int = field(default=20, metadata={"help": "denoising steps"})
    guidance_scale: float = field(default=7.5, metadata={"help": "classifier-free guidance scale"})
    scheduler: str = field(default="ddpm", metadata={"help": "sampler (ddpm as TD2)", "choices": list(SCHEDULER_NAMES)})
    seed: int | None = field(default=None, metadata={"help": "seed of the first image (next images: seed+1, ...)",
                                                     "default_help": "random"})
    mode: str | None = field(default=None, metadata={
        "help": mode_help(), "choices": list(MODES),
        "default_help": "detected at start-up: hybrid with a GPU and the model's weights, else typeset"})
    best_of: int = field(default=1, metadata={"help": "generate num_images x best_of candidates, keep the best by OCR"})
