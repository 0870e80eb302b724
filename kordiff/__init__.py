"""kordiff: readable Korean titles on generated book covers (TextDiffuser-2 extended to Hangul)."""

from .layout import GRID, Box, Layout, LayoutError, render_layout, to_grid, to_pixel

__all__ = ["GRID", "Box", "Layout", "LayoutError", "render_layout", "to_grid", "to_pixel"]

from .planner import (  # noqa: E402 - appended by the planner helper
    HeuristicPlanner,
    M1Planner,
    Planner,
    PlannerUnavailableError,
    PlanResult,
    build_planner_prompt,
    parse_planner_output,
    parse_planner_output_report,
)

__all__ += [
    "HeuristicPlanner",
    "M1Planner",
    "Planner",
    "PlannerUnavailableError",
    "PlanResult",
    "build_planner_prompt",
    "parse_planner_output",
    "parse_planner_output_report",
]
