"""kordiff: readable Korean titles on generated book covers (TextDiffuser-2 extended to Hangul)."""

from .layout import GRID, Box, Layout, LayoutError, render_layout, to_grid, to_pixel

__all__ = ["GRID", "Box", "Layout", "LayoutError", "render_layout", "to_grid", "to_pixel"]
