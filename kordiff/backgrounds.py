"""Procedural cover backgrounds: description words -> theme (palette, motifs, mood, fonts) -> a composition.

Compositions serve the text: a flat field, a solid band or a panel behind the text, or a thin frame; motifs stand
in the space the text leaves free and are clipped out of every text box plus a margin. The cultural rules the
themes and motifs keep are written (and checked) in `kordiff.motifs`.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from .layout import DEFAULT_SHAPE, Layout, Size, cover_size
from .motifs import ANCHORED, DISC_MOTIFS, DRAWERS, MotifSpec, check_design, is_red

RGB = tuple[int, int, int]
Rect = tuple[float, float, float, float]
COMPOSITIONS = ("field", "band", "panel", "frame")


def _hex(*codes: str) -> tuple[RGB, ...]:
    return tuple(tuple(int(c[i : i + 2], 16) for i in (1, 3, 5)) for c in codes)  # type: ignore[misc]


@dataclass(frozen=True)
class Theme:
    """A palette (dark to light), the motifs that fit, the mood, the grounds allowed and the fonts by role."""

    name: str
    colours: tuple[RGB, ...]  # four tones, darkest first
    motifs: tuple[str, ...]  # candidates; a design uses one or two of them
    mood: str = "calm"  # cheerful | calm | sombre | dark
    grounds: str = "both"  # dark | light | both: which end of the palette may be the ground
    title_font: str = "serif"
    body_font: str = "sans"
    compositions: tuple[str, ...] = COMPOSITIONS
    sun: RGB = (255, 200, 70)  # the sun disc of hills_sun: yellow, never red (motifs rule 2)
    dusk: tuple[RGB, ...] = ()  # dim sky colours for a dark ground lit from the top (behind black silhouettes)


THEMES: dict[str, Theme] = {
    "night": Theme("night", _hex("#0a1230", "#1e2f66", "#5a6fb0", "#f4ecc2"), ("stars", "moon", "mountains"),
                   "calm", "dark"),
    "forest": Theme("forest", _hex("#10291b", "#2f5d3a", "#7ea86a", "#eef2df"), ("trees", "mountains", "leaves"),
                    "calm"),
    "sea": Theme("sea", _hex("#06304a", "#1a6f8f", "#7cc3d3", "#eef7f7"), ("waves", "dunes", "dotgrid"), "calm"),
    "city": Theme("city", _hex("#14181e", "#39434f", "#8795a3", "#f1c75a"), ("skyline", "rain", "lines"), "calm",
                  "dark", "sans"),
    "horror": Theme("horror", _hex("#0b0a0a", "#2a2322", "#6a625e", "#d9d2c5"), ("dark_trees", "fog", "rain"),
                    "dark", "dark", "sans", compositions=("field", "band", "frame"),
                    dusk=_hex("#5e5652", "#3f4c58", "#4d4b37", "#4a3440")),
    "mystery": Theme("mystery", _hex("#121019", "#2e2742", "#6b5d8f", "#e3dcef"), ("rain", "skyline", "fog",
                     "lines"), "dark", "dark", "sans"),
    "spring": Theme("spring", _hex("#6b2f4a", "#e07a9c", "#f6c9d8", "#fbf6ee"), ("blossoms", "hills_sun"),
                    "cheerful", "light"),
    "summer": Theme("summer", _hex("#0e5a78", "#2aa6c4", "#9fdcea", "#fdf8e6"), ("hills_sun", "waves", "confetti"),
                    "cheerful", "light", "display"),
    "autumn": Theme("autumn", _hex("#3e2312", "#a5481d", "#e39a3b", "#f7ead3"), ("leaves", "mountains"), "calm"),
    "winter": Theme("winter", _hex("#1d2c3d", "#5f7e9e", "#c9dbea", "#f8fbfd"), ("snow", "mountains", "trees"),
                    "calm"),
    "love": Theme("love", _hex("#5a1630", "#c2456e", "#f2a7bd", "#fff3f5"), ("blossoms", "circles"), "cheerful",
                  "light"),
    "dream": Theme("dream", _hex("#3d3470", "#8a7fcf", "#e6bfd9", "#fbf7ff"), ("stars", "circles", "moon"),
                   "calm"),
    "child": Theme("child", _hex("#1f4e9c", "#ef6a5a", "#ffd23f", "#fffaf0"), ("confetti", "hills_sun", "circles"),
                   "cheerful", "light", "display", "display"),
    "science": Theme("science", _hex("#07131f", "#0f3b62", "#2aa3c9", "#e3f6fb"), ("dotgrid", "orbit", "stars"),
                     "calm", "dark", "sans"),
    "history": Theme("history", _hex("#2d2118", "#6d4c33", "#c9ad84", "#f3ead8"), ("mountains", "lines"), "calm",
                     "light", "serif", "serif", ("field", "band", "frame")),
    "war": Theme("war", _hex("#1c1e1a", "#434a3d", "#8b8f7e", "#e6e2d6"), ("mountains", "fog"), "sombre", "both",
                 "sans", compositions=("field", "band", "frame")),
    "red": Theme("red", _hex("#3d0a12", "#8f1d2c", "#d9707a", "#f7ece4"), ("leaves", "lines", "dotgrid"), "calm",
                 "dark"),
    "desert": Theme("desert", _hex("#5a3514", "#c27c3a", "#e9c58a", "#fbf0dc"), ("dunes", "hills_sun"), "calm",
                    "light", sun=(247, 160, 72)),
    "rain": Theme("rain", _hex("#1b2630", "#4a5b6b", "#9fb0bf", "#eef2f5"), ("rain", "skyline", "mountains"),
                  "calm", "dark"),
    "plain": Theme("plain", _hex("#1f2a36", "#4d6175", "#c6ced6", "#f6f3ec"), ("lines", "circles", "dotgrid"),
                   "calm"),
}

# Description words -> theme. English words match whole tokens; Korean keys match inside words (Korean attaches
# particles and compounds: 밤하늘의, 숲속). _NOT_THEMES strips compounds that contain a key but mean something else.
_THEME_WORDS: dict[str, tuple[str, ...]] = {
    "night": ("night", "moon", "star", "stars", "starry", "midnight", "밤", "달빛", "별", "한밤", "새벽", "은하"),
    "forest": ("forest", "tree", "trees", "wood", "woods", "nature", "green", "숲", "나무", "초록", "자연"),
    "sea": ("sea", "ocean", "wave", "waves", "island", "lighthouse", "beach", "bay", "바다", "파도", "섬", "등대",
            "해변", "항구"),
    "city": ("city", "urban", "street", "streets", "office", "subway", "도시", "거리", "서울", "회사", "골목",
             "지하철"),
    "horror": ("horror", "ghost", "haunted", "creepy", "scary", "curse", "공포", "호러", "유령", "귀신", "저주",
               "괴담"),
    "mystery": ("mystery", "mysterious", "thriller", "crime", "detective", "secret", "murder", "추리", "미스터리",
                "스릴러", "범죄", "탐정", "비밀", "살인"),
    "spring": ("spring", "blossom", "blossoms", "flower", "flowers", "garden", "pink", "rose", "roses", "봄", "꽃",
               "벚꽃", "정원", "분홍", "진달래", "장미"),
    "summer": ("summer", "sun", "sunny", "morning", "hope", "hopeful", "yellow", "bright", "여름", "햇살", "맑음",
               "태양", "아침", "희망", "노란"),
    "autumn": ("autumn", "fall", "harvest", "leaf", "leaves", "maple", "가을", "낙엽", "단풍"),
    "winter": ("winter", "snow", "snowy", "ice", "cold", "겨울", "눈송이", "눈꽃", "눈보라", "얼음", "추위"),
    "love": ("love", "romance", "romantic", "heart", "letter", "사랑", "연애", "로맨스", "설렘", "편지"),
    "dream": ("dream", "dreams", "fantasy", "magic", "pastel", "fairy", "꿈", "환상", "마법", "판타지"),
    "child": ("child", "children", "kids", "picture", "toy", "play", "아이", "어린이", "동화", "그림책", "아기"),
    "science": ("science", "space", "future", "robot", "technology", "universe", "planet", "과학", "우주", "미래",
                "로봇", "기술", "수학", "행성"),
    "history": ("history", "historical", "old", "classic", "ancient", "dynasty", "vintage", "역사", "옛", "고전",
                "조선", "고려", "시대", "왕"),
    "war": ("war", "battle", "soldier", "army", "전쟁", "전투", "군인", "피난", "전장"),
    "red": ("red", "crimson", "passion", "fire", "빨간", "붉은", "열정", "불꽃"),
    "desert": ("desert", "sand", "travel", "journey", "road", "사막", "모래", "여행", "길"),
    "rain": ("rain", "rainy", "storm", "grey", "gray", "fog", "foggy", "mist", "비", "장마", "안개", "회색"),
}
_DARK_WORDS = ("dark", "black", "어둠", "어두운", "검은", "캄캄")
_NOT_THEMES = ("이별", "달리", "달콤", "산책", "비밀", "비행", "비누", "길이", "왕복")


def theme_scores(description: str) -> dict[str, int]:
    """How many of each theme's words occur in `description` (themes with none are left out)."""
    text = description.lower()
    tokens = set(re.findall(r"[a-z]+", text))
    korean = text
    for w in _NOT_THEMES:
        if w != "비밀":
            korean = korean.replace(w, " ")
    scores: dict[str, int] = {}
    for name, words in _THEME_WORDS.items():
        n = sum((w in tokens) if w.isascii() else korean.count(w) for w in words)
        if n:
            scores[name] = n
    return scores


_GENRE_WEIGHT = {"horror": 2, "mystery": 2, "war": 2}  # a genre word outweighs a scene word (horror forest)


def theme_for(description: str) -> Theme:
    """The theme whose words occur most in `description` (genre words count double; ties: first listed);
    'plain' when none do."""
    scores = {k: v * _GENRE_WEIGHT.get(k, 1) for k, v in theme_scores(description).items()}
    if not scores:
        return THEMES["plain"]
    return THEMES[max(scores, key=lambda k: (scores[k], -list(_THEME_WORDS).index(k)))]


def wants_dark(description: str) -> bool:
    """Whether the description asks for a dark cover ('dark', '어두운' ...)."""
    text = description.lower()
    return any((w in set(re.findall(r"[a-z]+", text))) if w.isascii() else w in text for w in _DARK_WORDS)


def theme_palette(description: str) -> tuple[RGB, ...]:
    """Text colour candidates that belong to the description's theme."""
    return theme_for(description).colours


# --- design ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Design:
    """What a background is made of: theme, ground, composition, motifs, and the rectangles kept clear for text."""

    theme: Theme
    size: tuple[int, int]
    dark: bool
    ground: tuple[RGB, RGB]  # top and bottom of a gentle vertical gradient
    composition: str
    motifs: tuple[MotifSpec, ...]
    keep_out: tuple[Rect, ...]  # text boxes plus margin, in pixels
    plates: tuple[Rect, ...] = ()  # bands/panels drawn behind the text
    plate_colour: RGB | None = None
    frame: RGB | None = None
    salt: int = 0  # from the description: different books with the same seed still get different motif positions

    @property
    def motif_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.motifs)

    def problems(self) -> list[str]:
        """The motif RULES this design breaks (see kordiff.motifs)."""
        return check_design(self.ground[0], self.motifs, self.theme.mood, self.frame)


def text_margin(box_px: tuple[int, int, int, int], size: tuple[int, int]) -> int:
    """The clear margin kept around a text box: a third of its height, at least 2% of the cover's width."""
    return max(round(size[0] * 0.02), round((box_px[3] - box_px[1]) * 0.33))


def keep_out_rects(layout: Layout | None, size: tuple[int, int]) -> tuple[Rect, ...]:
    """Every text box of `layout` plus `text_margin`, in pixels of a `size` cover."""
    rects = []
    for box in layout or ():
        x0, y0, x1, y1 = box.to_pixels(size)
        m = text_margin((x0, y0, x1, y1), size)
        rects.append((x0 - m, y0 - m, x1 + m, y1 + m))
    return tuple(rects)


def _free_zones(keep: tuple[Rect, ...], size: tuple[int, int]) -> list[Rect]:
    """Full-width horizontal strips no text touches, tallest first."""
    w, h = size
    busy = np.zeros(h, bool)
    for _, y0, _, y1 in keep:
        busy[max(0, int(y0)) : max(0, min(h, int(np.ceil(y1))))] = True
    zones, start = [], None
    for y in range(h + 1):
        free = y < h and not busy[y]
        if free and start is None:
            start = y
        elif not free and start is not None:
            zones.append((0.0, float(start), float(w), float(y)))
            start = None
    return sorted(zones, key=lambda z: -(z[3] - z[1]))


def _clusters(keep: tuple[Rect, ...], gap: float) -> list[Rect]:
    """Union rectangles of text boxes that are vertically close (one panel per group)."""
    out: list[list[float]] = []
    for r in sorted(keep, key=lambda r: r[1]):
        if out and r[1] - out[-1][3] < gap:
            c = out[-1]
            c[0], c[1], c[2], c[3] = min(c[0], r[0]), min(c[1], r[1]), max(c[2], r[2]), max(c[3], r[3])
        else:
            out.append(list(r))
    return [tuple(c) for c in out]  # type: ignore[misc]


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(int(round(a[i] + (b[i] - a[i]) * t)) for i in range(3))  # type: ignore[return-value]


def design_background(description: str = "", size: Size | str = DEFAULT_SHAPE, seed: int = 0,
                      quiet: Layout | None = None, theme: Theme | None = None) -> Design:
    """Pick ground, composition and motifs for a description and seed, keeping clear of `quiet`'s text boxes."""
    wh = cover_size(size)
    theme = theme or theme_for(description)
    c = theme.colours
    keep = keep_out_rects(quiet, wh)
    first = theme.motifs[0]  # the signature motif (sea -> waves, forest -> trees ...) is always there
    extras: list[str | None] = [None] + [n for n in theme.motifs[1:] if not (n in ANCHORED and first in ANCHORED)]
    grounds = {"dark": [True], "light": [False]}.get(theme.grounds, [True, False])
    if wants_dark(description):
        grounds = [True]
    # Consecutive seeds step through accent motifs and compositions together (offsets fixed per description), so
    # covers of one book differ across seeds by construction.
    k = seed + zlib.crc32(("order" + description).encode("utf-8")) % 997
    comps = theme.compositions
    extra = extras[k % len(extras)]
    composition = comps[(k * 5) % len(comps)]
    dark = grounds[(k // 2) % len(grounds)]
    if dark:
        ground = (theme.dusk[k % len(theme.dusk)], c[0]) if theme.dusk else (c[0], _mix(c[0], c[1], 0.35))
    else:
        ground = (c[3], _mix(c[3], c[2], 0.3))
    chosen = [first] + ([extra] if extra else [])
    if first in ANCHORED and extra in ANCHORED:
        chosen = [first]
    specs = []
    for name in chosen:
        if dark:  # on a dark ground motifs are mid tones with a light highlight
            cols = (c[1], _mix(c[1], c[2], 0.5), c[2], c[3])
        else:  # on a light ground, mid to dark tones
            cols = (c[2], c[1], _mix(c[1], c[0], 0.5), c[1])
        if name == "dark_trees":
            cols = (c[0],)
        if name == "hills_sun":
            cols = (cols[0], cols[1], theme.sun)
        if name == "blossoms":
            cols = (c[1], c[2], _mix(c[1], c[2], 0.5)) if not dark else (c[2], _mix(c[1], c[2], 0.5), c[1])
        if name in DISC_MOTIFS:  # motifs rule 2 (no red disc on a light ground), kept on any ground to be safe
            cols = tuple(x for x in cols if not is_red(x)) or ((200, 200, 200),)
        specs.append(MotifSpec(name, tuple(cols)))

    plates: tuple[Rect, ...] = ()
    plate_colour, frame = None, None
    w, h = wh
    if composition == "band" and keep:
        # One solid full-width band behind the largest text group (the title): a classic literary cover.
        groups = _clusters(keep, h * 0.06)
        g = max(groups, key=lambda r: r[3] - r[1])
        pad = h * 0.015
        plates = ((0.0, g[1] - pad, float(w), g[3] + pad),)
        plate_colour = c[1] if not dark else c[3]
    elif composition == "panel" and keep:
        # A card behind the title group only; the small author line sits on the clean ground.
        pad = w * 0.02
        g = max(_clusters(keep, h * 0.06), key=lambda r: (r[2] - r[0]) * (r[3] - r[1]))
        plates = ((max(w * 0.03, g[0] - pad), g[1] - pad, min(w * 0.97, g[2] + pad), g[3] + pad),)
        plate_colour = c[3] if dark else c[0]
    elif composition == "frame":
        frame = c[2] if dark else _mix(c[1], c[2], 0.3)
        if "blossoms" in [s.name for s in specs]:  # motifs rule 4: no frame with flowers
            frame = None
            composition = "field"
    salt = zlib.crc32(description.encode("utf-8"))
    design = Design(theme, wh, dark, ground, composition, tuple(specs), keep, plates, plate_colour, frame, salt)
    return design


def render_background(design: Design, seed: int = 0, motifs: bool = True) -> Image.Image:
    """Draw a design; `motifs=False` draws the same cover without its motifs (tests compare the two)."""
    w, h = design.size
    rng = np.random.default_rng([seed & 0xFFFFFFFF, 7919])
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    top, bottom = (np.array(c, np.float32) for c in design.ground)
    base = np.broadcast_to(top + (bottom - top) * t, (h, w, 3))
    grain = rng.normal(0, 2.0, (h, w, 1)).astype(np.float32)  # a faint paper grain, identical with or without motifs
    img = Image.fromarray(np.clip(base + grain, 0, 255).astype(np.uint8), "RGB").convert("RGBA")
    s = w / 512
    avoid = list(design.keep_out) + list(design.plates)
    if motifs and design.motifs:
        layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
        draw = ImageDraw.Draw(layer)
        zones = _free_zones(tuple(avoid), (w, h))
        inset = (w * 0.04, w * 0.04, w * 0.96, h - w * 0.04) if design.frame else (0.0, 0.0, float(w), float(h))
        big = [z for z in zones if z[3] - z[1] >= h * 0.18]
        lowest = max(big, key=lambda z: z[3]) if big else None
        for i, spec in enumerate(design.motifs):
            mrng = np.random.default_rng([seed & 0xFFFFFFFF, design.salt, i, zlib.crc32(spec.name.encode())])
            if spec.name in ANCHORED:
                if lowest is None:
                    continue  # no room for a scene: the text owns the cover
                zone = lowest
            else:
                zone = inset
            zone = (max(zone[0], inset[0]), max(zone[1], inset[1]), min(zone[2], inset[2]), min(zone[3], inset[3]))
            if zone[2] - zone[0] < 8 or zone[3] - zone[1] < 8:
                continue
            DRAWERS[spec.name](draw, zone, spec.colours, mrng, s, avoid)
        # Rule 9: nothing crosses a text box plus its margin, whatever a drawer did.
        clip = Image.new("L", (w, h), 255)
        cd = ImageDraw.Draw(clip)
        for r in avoid:
            cd.rectangle(r, fill=0)
        alpha = np.minimum(np.asarray(layer.getchannel("A")), np.asarray(clip))
        layer.putalpha(Image.fromarray(alpha, "L"))
        img = Image.alpha_composite(img, layer)
    draw = ImageDraw.Draw(img)
    if design.frame is not None:
        # Close to the edge, well outside the text margins (a line near a box edge reads as "|" to OCR).
        m = round(w * 0.022)
        draw.rectangle((m, m, w - 1 - m, h - 1 - m), outline=design.frame, width=max(1, round(2 * s)))
        draw.rectangle((m + 4 * s, m + 4 * s, w - 1 - m - 4 * s, h - 1 - m - 4 * s), outline=design.frame,
                       width=max(1, round(s)))
    for r in design.plates:
        draw.rectangle(r, fill=design.plate_colour)
    return img.convert("RGB")


def procedural_background(description: str = "", size: Size | str = DEFAULT_SHAPE, seed: int = 0,
                          quiet: Layout | None = None, motifs: bool = True) -> Image.Image:
    """A cover background from the description's words (default portrait): ground, bands/panels, fitting motifs.

    With `quiet`, motifs stay out of that layout's boxes plus a margin, and bands/panels sit behind them."""
    return render_background(design_background(description, size, seed, quiet), seed, motifs)
