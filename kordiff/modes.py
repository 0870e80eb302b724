"""The cover modes, the planners, and the one policy for what a request runs (used by the app, the CLIs, covers).

- `diffusion`: the model draws the whole cover, title included (needs weights).
- `hybrid`: a diffusion image with the exact title typeset into its boxes (needs weights and boxes; without
  boxes it falls back to `diffusion`, with a notice).
- `typeset`: a procedural background with the exact title (no weights, CPU; needs boxes).
Without boxes nothing can be OCR-scored, so the pipeline is called directly ("raw"), unscored.
"""

from __future__ import annotations

from dataclasses import dataclass

MODES = ("diffusion", "hybrid", "typeset")
MODE_HELP = {
    "diffusion": "the model draws the title (needs weights; slow on a CPU)",
    "hybrid": "exact title typeset into a diffusion image (needs weights)",
    "typeset": "procedural cover + exact title (no weights, CPU, ~0.1 s)",
}
PLANNERS = ("heuristic", "m1")
PLANNER_HELP = {
    "heuristic": "measures the text in the shipped font, ~0.1 ms on a CPU, no weights",
    "m1": "TD2's Vicuna-7B layout planner (13.5 GB; a GPU, or ~27 GB of RAM on a CPU)",
}
# Notices about the 77-token prompt (cut boxes, shortened caption, characters without a token) only matter where
# the prompt conditions an image; typeset mode never encodes one.
PROMPT_MODES = frozenset({"diffusion", "hybrid"})


class ModeError(ValueError):
    """A request a mode cannot serve (unknown mode, typeset without boxes); the message is for users."""


@dataclass(frozen=True)
class ModeDecision:
    """What a request runs: the effective mode, whether it needs the pipeline, whether it calls it raw, notices."""

    requested: str
    mode: str
    needs_pipeline: bool
    raw_pipeline: bool  # diffusion without boxes: no layout, nothing to OCR-score
    notices: tuple[str, ...] = ()

    @property
    def prompt_notices_apply(self) -> bool:
        """Whether notices about the 77-token prompt concern this request."""
        return self.mode in PROMPT_MODES


def check_mode(mode: str) -> str:
    """`mode` if it is one of MODES, else a ModeError naming the choices."""
    if mode not in MODES:
        raise ModeError(f"Unknown mode {mode!r}; choose one of {', '.join(MODES)}.")
    return mode


def check_planner(planner: str) -> str:
    """`planner` if it is one of PLANNERS, else a ModeError naming the choices."""
    if planner not in PLANNERS:
        raise ModeError(f"Unknown planner {planner!r}; choose one of {', '.join(PLANNERS)}.")
    return planner


def decide(mode: str, n_boxes: int) -> ModeDecision:
    """The policy: typeset needs boxes; hybrid without boxes falls back to diffusion; no boxes -> raw pipeline."""
    check_mode(mode)
    if n_boxes > 0:
        return ModeDecision(mode, mode, mode != "typeset", False)
    if mode == "typeset":
        raise ModeError("The 'typeset' mode sets the text of the boxes, and there are none: "
                        "plan a layout or add a text box.")
    notices = ("The 'hybrid' mode needs text boxes; generated with 'diffusion' instead.",) if mode == "hybrid" else ()
    return ModeDecision(mode, "diffusion", True, True, notices)


def mode_help() -> str:
    """One help string listing every mode."""
    return "; ".join(f"{m}: {MODE_HELP[m]}" for m in MODES)


def planner_help() -> str:
    """One help string listing every planner."""
    return "; ".join(f"{p}: {PLANNER_HELP[p]}" for p in PLANNERS)
