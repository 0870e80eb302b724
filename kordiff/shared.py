"""Heavy models loaded once per process on first use and shared by name (never by user), thread-safe.

ZeroGPU runs GPU functions in a forked worker where only plain arguments and module globals are safe, so
callers pass model names and look the models up here.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)


class Lazy:
    """A value built once on first `get()`; a failed build is retried by the next caller."""

    def __init__(self, build: Callable[[], Any]):
        self._build, self._lock, self.value = build, threading.Lock(), None

    def get(self):
        with self._lock:
            if self.value is None:
                self.value = self._build()
            return self.value


_LOCK = threading.Lock()
_MODELS: dict[str, Lazy] = {}


def shared(key: str, build: Callable[[], Any]) -> Lazy:
    """The process-wide lazy slot for `key` (built by `build` on first use)."""
    with _LOCK:
        return _MODELS.setdefault(key, Lazy(build))


def _load_pipeline(model: str):
    from .loading import load_pipeline

    pipe = load_pipeline(model)  # raises ModelUnavailableError saying what is missing
    pipe.set_progress_bar_config(disable=False)  # progress UIs (gr.Progress(track_tqdm=True)) follow this bar
    return pipe


def pipeline_for(model: str):
    """The pipeline for a model name ('td2', 'tiny-random', a directory or Hub id), loaded once."""
    return shared(f"pipeline:{model}", lambda: _load_pipeline(model)).get()


def loaded_pipeline(model: str):
    """The pipeline for `model` if it is already loaded, else None (never triggers a load)."""
    return shared(f"pipeline:{model}", lambda: _load_pipeline(model)).value


def m1_for(model: str, quantization: str | None = None):
    """The shared M1 planner (its weights load on its first plan, or on `.load()`)."""
    from .loading import hub_reachable
    from .planner import M1Planner

    local = os.path.isdir(model) or not hub_reachable()
    return shared(f"planner:{model}:{quantization}",
                  lambda: M1Planner(model, quantization=quantization, local_files_only=local)).get()


def preload(model: str, m1_model: str | None = None, quantization: str | None = None) -> None:
    """Load the pipeline (and M1, when named) now; what cannot load is logged and tried again on first use."""
    from .hub import ModelUnavailableError
    from .plan_result import PlannerUnavailableError

    try:
        pipeline_for(model)
        if m1_model:
            m1_for(m1_model, quantization).load()
    except (ModelUnavailableError, PlannerUnavailableError) as e:
        logger.error("%s", str(e).splitlines()[0])
