"""kordiff: readable Korean titles on generated book covers (TextDiffuser-2 extended to Hangul).

The diffusion side (torch, diffusers) is imported on first use, so planning, layouts and tokens load in a blink.
"""

import importlib

from .layout import (
    COVER_SIZES,
    DEFAULT_SHAPE,
    GRID,
    Box,
    Layout,
    LayoutError,
    cover_size,
    render_layout,
    to_grid,
    to_pixel,
)
from .planner import (
    HeuristicPlanner,
    M1Planner,
    Planner,
    PlannerUnavailableError,
    PlanResult,
    build_planner_prompt,
    parse_planner_output,
    parse_planner_output_report,
)
from .tokens import (
    SCHEMES,
    PromptEncoding,
    book_caption,
    clip_tokenizer_from_assets,
    decode_prompt,
    detect_scheme,
    encode_prompt,
    encode_prompt_report,
    extend_text_encoder,
    extend_tokenizer,
    uncond_prompt,
    unsupported_chars,
)

__all__ = [
    "GRID", "Box", "Layout", "LayoutError", "render_layout", "to_grid", "to_pixel",
    "COVER_SIZES", "DEFAULT_SHAPE", "cover_size",
    "ModelUnavailableError", "from_textdiffuser2", "load_pipeline", "resolve_device_dtype",
    "SCHEDULERS", "KorDiffOutput", "KorDiffPipeline",
    "SCHEMES", "PromptEncoding", "book_caption", "clip_tokenizer_from_assets", "decode_prompt", "detect_scheme",
    "encode_prompt", "encode_prompt_report", "extend_text_encoder", "extend_tokenizer", "uncond_prompt",
    "unsupported_chars",
    "HeuristicPlanner",
    "M1Planner",
    "Planner",
    "PlannerUnavailableError",
    "PlanResult",
    "build_planner_prompt",
    "parse_planner_output",
    "parse_planner_output_report",
]

_LAZY = {
    "ModelUnavailableError": ".hub", "from_textdiffuser2": ".loading", "load_pipeline": ".loading",
    "resolve_device_dtype": ".loading", "SCHEDULERS": ".pipeline", "KorDiffOutput": ".pipeline",
    "KorDiffPipeline": ".pipeline",
}
# Korean text accuracy: OCR scores, exact typesetting, cover modes with best-of-N.
_LAZY.update({name: ".ocr" for name in (
    "ImageScore", "OcrConfig", "OcrRead", "OcrReader", "TextScore", "char_accuracy", "is_scorable", "known_hangul",
    "ned", "read_text", "score_image", "sentence_correct", "unreadable_chars")})
_LAZY.update({name: ".typeset" for name in (
    "TypesetStyle", "contrast_ratio", "cover_style", "mood_fonts", "procedural_background", "relative_luminance",
    "typeset_cover", "typeset_layout")})
_LAZY.update({name: ".modes" for name in ("MODES", "PLANNERS")})
_LAZY.update({name: ".capabilities" for name in ("Capabilities", "detect_capabilities")})
_LAZY.update({name: ".covers" for name in ("Cover", "CoverOptions", "make_covers", "rank_covers")})
__all__ += [name for name in _LAZY if name not in __all__]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'kordiff' has no attribute {name!r}")
