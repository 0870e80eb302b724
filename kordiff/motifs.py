"""Cover motifs (drawn shapes) and the cultural rules every motif, palette and combination must keep.

RULES (what a careful Korean cover designer would flag; `check_design` enforces them, tests run it over many
descriptions and seeds):

1. No rays. No sunburst, no radial stripes, no set of lines or wedges radiating from a common centre -- alone or,
   worst of all, around a disc. Red/orange rays around a sun is the Rising Sun flag (욱일기), deeply offensive in
   Korea. There is no "rays" motif; stripes run parallel to an edge, rain falls in one direction.
2. No red disc on a light ground (the Japanese flag, 일장기). A sun is a plain disc without rays, in yellow or
   soft orange, sitting low over hills or a horizon; the backgrounds go further and never draw a red disc at all.
3. No white or yellow chrysanthemum-like flowers (국화, funeral flowers), and no flowers at all on a mourning
   palette (black and white only): that reads as a funeral wreath (조화). Blossoms are five-petal plum/cherry/azalea
   shapes in pink, coral or warm colours, and only on themes whose mood is not sombre.
4. No black mourning frame: a dark frame line on a white/grey ground with a flower or a black ribbon corner reads
   as a memorial portrait (영정). Frames are thin, coloured (ink blue, brown, gold) and never with flowers.
5. The author's name is never written in red (writing a living person's name in red is a taboo: it is how the
   names of the dead are written). Red titles are allowed; `typeset` enforces the author rule.
6. National and political symbols are not decoration: no taegeuk (red/blue split disc), no trigrams, no star in a
   disc on a red field (North Korean emblem); stars are plain dots, never five-pointed stars on red.
7. No swastika-like or cross-like pattern elements (卍 marks Buddhist temples in Korea but is misread; crosses are
   religious); patterns use dots, lines parallel to an edge, circles and waves.
8. Mood fits the title: horror and war are dark and quiet (silhouettes, fog, ash -- no blood, no fire);
   cheerful themes get no sombre palette, sombre themes get no confetti.
9. Motifs serve the text: they never cross a text box plus a margin (the background clips them there and places
   the big ones in the space the text leaves free).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import ImageDraw

RGB = tuple[int, int, int]
Rect = tuple[float, float, float, float]

# Motifs that stand on the ground of a free zone (drawn inside it) vs. small elements scattered over the cover.
ANCHORED = ("trees", "dark_trees", "waves", "skyline", "mountains", "hills_sun", "dunes")
SCATTERED = ("stars", "moon", "blossoms", "leaves", "snow", "rain", "confetti", "dotgrid", "circles", "orbit",
             "lines", "fog")
MOTIFS = ANCHORED + SCATTERED
FORBIDDEN_MOTIFS = ("rays", "sunburst", "radial_stripes", "chrysanthemum", "taegeuk", "swastika", "cross")
DISC_MOTIFS = ("hills_sun", "moon", "circles", "orbit")  # motifs that draw a filled disc
FLOWER_MOTIFS = ("blossoms",)


@dataclass(frozen=True)
class MotifSpec:
    """One motif as drawn: its name, colours, and whether its disc/flowers are present."""

    name: str
    colours: tuple[RGB, ...]


def _hue_is_red(c: RGB) -> bool:
    r, g, b = (v / 255 for v in c)
    mx, mn = max(r, g, b), min(r, g, b)
    if mx == 0 or (mx - mn) / mx < 0.5 or mx != r:  # pinks and pale roses are not the flag's red
        return False
    hue = ((g - b) / (mx - mn)) % 6 * 60
    return hue < 22 or hue > 335


def is_red(c: RGB) -> bool:
    """A saturated red/crimson (hue within ~22 degrees of red, HSV saturation >= 0.5)."""
    return _hue_is_red(tuple(int(v) for v in c[:3]))  # type: ignore[arg-type]


def _light(c: RGB) -> bool:
    return sum(c[:3]) / 3 > 170


def _white_or_yellow(c: RGB) -> bool:
    r, g, b = c[:3]
    white = min(r, g, b) > 200 and max(r, g, b) - min(r, g, b) < 30
    yellow = r > 190 and g > 160 and b < 140 and abs(r - g) < 70
    return white or yellow


def _greyscale(c: RGB) -> bool:
    return max(c[:3]) - min(c[:3]) < 18


def check_design(ground: RGB, motifs: tuple[MotifSpec, ...], mood: str, frame: RGB | None = None) -> list[str]:
    """The RULES a background design breaks (empty list = fine). `ground` is the cover's dominant colour."""
    problems = []
    names = [m.name for m in motifs]
    for n in names:
        if n in FORBIDDEN_MOTIFS or n not in MOTIFS:
            problems.append(f"rule 1/3/6/7: motif {n!r} is not allowed")
    for m in motifs:
        if m.name in DISC_MOTIFS and _light(ground) and any(is_red(c) for c in m.colours):
            problems.append(f"rule 2: red disc ({m.name}) on a light ground")
        if m.name in FLOWER_MOTIFS:
            if any(_white_or_yellow(c) for c in m.colours):
                problems.append("rule 3: white/yellow flowers read as chrysanthemums")
            if mood == "sombre" or (_greyscale(ground) and all(_greyscale(c) for c in m.colours)):
                problems.append("rule 3: flowers on a sombre/mourning palette")
        if m.name == "stars" and is_red(ground):
            problems.append("rule 6: stars on a red field")
    if frame is not None and (_light(ground) and _greyscale(frame) and sum(frame) / 3 < 90):
        problems.append("rule 4: black frame on a light ground (memorial portrait)")
    if frame is not None and any(n in FLOWER_MOTIFS for n in names):
        problems.append("rule 4: frame with flowers")
    if mood in ("sombre", "dark") and "confetti" in names:
        problems.append("rule 8: confetti on a sombre theme")
    return problems


# --- drawing ----------------------------------------------------------------------------------------------------
# Every drawer takes (draw, zone, colours, rng, scale, avoid) and draws on an RGBA layer. `zone` is the rectangle
# the motif may use; `avoid` are rectangles (text boxes plus margin) scattered elements must not touch; the caller
# also clips the layer there, so nothing can cross a text box whatever a drawer does.

Drawer = Callable[[ImageDraw.ImageDraw, Rect, tuple[RGB, ...], np.random.Generator, float, list[Rect]], None]


def _hits(x0: float, y0: float, x1: float, y1: float, avoid: list[Rect]) -> bool:
    return any(x0 < a[2] and x1 > a[0] and y0 < a[3] and y1 > a[1] for a in avoid)


def _rgba(c: RGB, a: int) -> tuple[int, int, int, int]:
    return (int(c[0]), int(c[1]), int(c[2]), int(a))


def _scatter(zone: Rect, n: int, rng: np.random.Generator, r: float, avoid: list[Rect]):
    x0, y0, x1, y1 = zone
    for _ in range(n * 3):
        if n <= 0:
            break
        x, y = rng.uniform(x0, x1), rng.uniform(y0, y1)
        if _hits(x - r, y - r, x + r, y + r, avoid):
            continue
        n -= 1
        yield x, y


def stars(draw, zone, cols, rng, s, avoid):
    for x, y in _scatter(zone, int(rng.integers(50, 110)), rng, 4 * s, avoid):
        r = rng.choice([0.6, 0.9, 1.3, 2.0], p=[0.45, 0.3, 0.17, 0.08]) * s
        draw.ellipse((x - r, y - r, x + r, y + r), fill=_rgba(cols[-1], int(rng.integers(140, 255))))


def moon(draw, zone, cols, rng, s, avoid):
    """A crescent (a disc with a second, ground-coloured disc cut out): never a full disc, never red."""
    x0, y0, x1, y1 = zone
    r = min(x1 - x0, y1 - y0) * rng.uniform(0.12, 0.2)
    for _ in range(20):
        cx, cy = rng.uniform(x0 + r, max(x0 + r + 1, x1 - r)), rng.uniform(y0 + r, max(y0 + r + 1, y1 - r))
        if not _hits(cx - r, cy - r, cx + r, cy + r, avoid):
            break
    else:
        return
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=_rgba(cols[-1], 235))
    dx = r * rng.choice([-0.45, 0.45])
    draw.ellipse((cx - r + dx, cy - r - r * 0.2, cx + r + dx, cy + r - r * 0.2), fill=(0, 0, 0, 0))


def _ground_band(zone: Rect, rng, lo: float = 0.35, hi: float = 0.8) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = zone
    return x0, y0 + (y1 - y0) * (1 - rng.uniform(lo, hi)), x1, y1


def trees(draw, zone, cols, rng, s, avoid):
    """Layered conifer silhouettes standing on the zone's floor."""
    x0, top, x1, y1 = _ground_band(zone, rng, 0.5, 0.95)
    for layer in range(2):
        c = cols[layer % len(cols)]
        n = int(rng.integers(6, 12))
        for x in np.sort(rng.uniform(x0 - 20 * s, x1 + 20 * s, n)):
            h = (y1 - top) * rng.uniform(0.45, 1.0) * (0.75 if layer else 1.0)
            w = h * rng.uniform(0.28, 0.42)
            for k in range(3):  # three stacked triangles make a fir
                tt = y1 - h + k * h * 0.22
                ww = w * (0.55 + 0.22 * k)
                draw.polygon([(x, tt), (x - ww / 2, tt + h * 0.45), (x + ww / 2, tt + h * 0.45)], fill=_rgba(c, 255))
            draw.rectangle((x - w * 0.05, y1 - h * 0.15, x + w * 0.05, y1), fill=_rgba(c, 255))


def dark_trees(draw, zone, cols, rng, s, avoid):
    """Bare, leaning trunks with a few branches (horror, winter): thin dark lines, no leaves."""
    x0, top, x1, y1 = _ground_band(zone, rng, 0.6, 1.0)

    def branch(x, y, angle, length, width, depth):
        if depth == 0 or length < 4 * s:
            return
        nx, ny = x + length * np.cos(angle), y - length * np.sin(angle)
        draw.line((x, y, nx, ny), fill=_rgba(cols[0], 255), width=max(1, int(width)))
        for _ in range(2):
            branch(nx, ny, angle + rng.uniform(-0.7, 0.7), length * rng.uniform(0.55, 0.75), width * 0.65, depth - 1)

    for x in rng.uniform(x0, x1, int(rng.integers(4, 8))):
        branch(x, y1, np.pi / 2 + rng.uniform(-0.15, 0.15), (y1 - top) * rng.uniform(0.3, 0.5), 5 * s, 5)


def waves(draw, zone, cols, rng, s, avoid):
    x0, top, x1, y1 = _ground_band(zone, rng, 0.45, 0.8)
    n = int(rng.integers(3, 6))
    for k in range(n):
        base = top + (y1 - top) * k / n
        amp, freq, ph = rng.uniform(0.015, 0.04) * (x1 - x0), rng.uniform(1.5, 3.5), rng.uniform(0, 6.3)
        pts = [(x, base + amp * np.sin(freq * 2 * np.pi * (x - x0) / (x1 - x0) + ph))
               for x in np.linspace(x0, x1, 64)]
        draw.polygon(pts + [(x1, y1), (x0, y1)], fill=_rgba(cols[k % len(cols)], 255))


def skyline(draw, zone, cols, rng, s, avoid):
    x0, top, x1, y1 = _ground_band(zone, rng, 0.5, 0.95)
    for layer in range(2):
        c = cols[layer % len(cols)]
        x = x0 - rng.uniform(0, 20) * s
        while x < x1:
            w = rng.uniform(0.07, 0.15) * (x1 - x0)
            h = (y1 - top) * rng.uniform(0.3, 1.0) * (1.0 if layer == 0 else 0.7)
            draw.rectangle((x, y1 - h, x + w, y1), fill=_rgba(c, 255))
            if layer == 1:
                for wy in np.arange(y1 - h + 6 * s, y1 - 6 * s, 9 * s):
                    for wx in np.arange(x + 4 * s, x + w - 6 * s, 8 * s):
                        if rng.random() < 0.35:
                            draw.rectangle((wx, wy, wx + 3 * s, wy + 4 * s), fill=_rgba(cols[-1], 220))
            x += w + rng.uniform(0, 6) * s


def mountains(draw, zone, cols, rng, s, avoid):
    """Layered ridges, lighter at the back (ink-wash 산수화 depth)."""
    x0, top, x1, y1 = _ground_band(zone, rng, 0.45, 0.9)
    n = int(rng.integers(2, 4))
    for k in range(n):
        base = top + (y1 - top) * k / (n + 0.5)
        xs = np.linspace(x0, x1, 48)
        ys = base + (y1 - base) * 0.5 * (1 - np.abs(np.sin(xs / (x1 - x0) * np.pi * rng.uniform(1, 2.5)
                                                             + rng.uniform(0, 6))))
        pts = list(zip(xs, np.minimum(ys, y1)))
        draw.polygon(pts + [(x1, y1), (x0, y1)], fill=_rgba(cols[min(k, len(cols) - 1)], 255))


def hills_sun(draw, zone, cols, rng, s, avoid):
    """Rolling hills with a plain sun disc low above them: no rays, never red (rules 1 and 2)."""
    x0, top, x1, y1 = _ground_band(zone, rng, 0.45, 0.8)
    r = (x1 - x0) * rng.uniform(0.07, 0.12)
    cx, cy = rng.uniform(x0 + 2 * r, x1 - 2 * r), top + (y1 - top) * 0.35
    if not _hits(cx - r, cy - r, cx + r, cy + r, avoid):
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=_rgba(cols[-1], 255))
    for k in range(2):
        base = top + (y1 - top) * (0.45 + 0.2 * k)
        xs = np.linspace(x0, x1, 48)
        ys = base + (y1 - top) * 0.08 * np.sin(xs / (x1 - x0) * np.pi * rng.uniform(1, 2) + rng.uniform(0, 6))
        draw.polygon(list(zip(xs, ys)) + [(x1, y1), (x0, y1)], fill=_rgba(cols[k % (len(cols) - 1)], 255))


def dunes(draw, zone, cols, rng, s, avoid):
    x0, top, x1, y1 = _ground_band(zone, rng, 0.35, 0.7)
    for k in range(3):
        base = top + (y1 - top) * k / 3
        xs = np.linspace(x0, x1, 48)
        ys = base + (y1 - top) * 0.12 * np.sin(xs / (x1 - x0) * np.pi * rng.uniform(0.7, 1.4) + rng.uniform(0, 6))
        draw.polygon(list(zip(xs, ys)) + [(x1, y1), (x0, y1)], fill=_rgba(cols[k % len(cols)], 255))


def fog(draw, zone, cols, rng, s, avoid):
    x0, y0, x1, y1 = zone
    for _ in range(int(rng.integers(3, 6))):
        y = rng.uniform(y0, y1)
        h = rng.uniform(4, 14) * s
        draw.rectangle((x0, y, x1, y + h), fill=_rgba(cols[-1], int(rng.integers(25, 60))))


def blossoms(draw, zone, cols, rng, s, avoid):
    """Five-petal plum/cherry/azalea flowers in pink or coral (never white or yellow: rule 3)."""
    for x, y in _scatter(zone, int(rng.integers(10, 26)), rng, 16 * s, avoid):
        r = rng.uniform(5, 13) * s
        c = cols[int(rng.integers(0, len(cols)))]
        a0 = rng.uniform(0, 2 * np.pi)
        for k in range(5):
            a = a0 + k * 2 * np.pi / 5
            px, py = x + r * 0.6 * np.cos(a), y + r * 0.6 * np.sin(a)
            draw.ellipse((px - r * 0.5, py - r * 0.5, px + r * 0.5, py + r * 0.5), fill=_rgba(c, 235))
        draw.ellipse((x - r * 0.18, y - r * 0.18, x + r * 0.18, y + r * 0.18), fill=_rgba(cols[0], 255))


def leaves(draw, zone, cols, rng, s, avoid):
    for x, y in _scatter(zone, int(rng.integers(14, 30)), rng, 14 * s, avoid):
        r = rng.uniform(5, 12) * s
        a = rng.uniform(0, np.pi)
        pts = [(x + r * np.cos(a + t) * (1 if k % 2 == 0 else 0.35),
                y + r * np.sin(a + t) * (1 if k % 2 == 0 else 0.35))
               for k, t in enumerate(np.linspace(0, 2 * np.pi, 4, endpoint=False))]
        draw.polygon(pts, fill=_rgba(cols[int(rng.integers(0, len(cols)))], 230))


def snow(draw, zone, cols, rng, s, avoid):
    for x, y in _scatter(zone, int(rng.integers(60, 130)), rng, 4 * s, avoid):
        r = rng.uniform(1, 3.2) * s
        draw.ellipse((x - r, y - r, x + r, y + r), fill=_rgba(cols[-1], int(rng.integers(150, 240))))


def rain(draw, zone, cols, rng, s, avoid):
    """Short parallel slanted strokes (all one direction: nothing radiates)."""
    slant = rng.uniform(0.15, 0.35)
    for x, y in _scatter(zone, int(rng.integers(70, 140)), rng, 12 * s, avoid):
        h = rng.uniform(8, 18) * s
        draw.line((x, y, x - h * slant, y + h), fill=_rgba(cols[-1], int(rng.integers(90, 170))), width=max(1, int(s)))


def confetti(draw, zone, cols, rng, s, avoid):
    for x, y in _scatter(zone, int(rng.integers(20, 40)), rng, 10 * s, avoid):
        r = rng.uniform(3, 8) * s
        c = _rgba(cols[int(rng.integers(0, len(cols)))], 255)
        if rng.random() < 0.5:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=c)
        else:
            draw.rectangle((x - r, y - r * 0.6, x + r, y + r * 0.6), fill=c)


def dotgrid(draw, zone, cols, rng, s, avoid):
    x0, y0, x1, y1 = zone
    step = rng.uniform(14, 24) * s
    r = rng.uniform(1.2, 2.4) * s
    for y in np.arange(y0 + step / 2, y1, step):
        for x in np.arange(x0 + step / 2, x1, step):
            if not _hits(x - r, y - r, x + r, y + r, avoid):
                draw.ellipse((x - r, y - r, x + r, y + r), fill=_rgba(cols[-1], 150))


def circles(draw, zone, cols, rng, s, avoid):
    """A few large soft overlapping circles (abstract): tinted, translucent, never red on light ground (rule 2)."""
    x0, y0, x1, y1 = zone
    for _ in range(int(rng.integers(2, 5))):
        r = rng.uniform(0.08, 0.25) * (x1 - x0)
        for _ in range(12):  # whole circles in the free space, not circles cut by a text margin
            cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
            if not _hits(cx - r, cy - r, cx + r, cy + r, avoid):
                draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=_rgba(cols[int(rng.integers(0, len(cols)))], 150))
                break


def orbit(draw, zone, cols, rng, s, avoid):
    """A small planet with one tilted ring, plus a few dots: a science/space accent."""
    x0, y0, x1, y1 = zone
    r = min(x1 - x0, y1 - y0) * rng.uniform(0.1, 0.18)
    cx, cy = rng.uniform(x0 + 2 * r, max(x0 + 2 * r + 1, x1 - 2 * r)), rng.uniform(y0 + r, max(y0 + r + 1, y1 - r))
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=_rgba(cols[-2], 255))
    draw.ellipse((cx - 2 * r, cy - r * 0.45, cx + 2 * r, cy + r * 0.45), outline=_rgba(cols[-1], 220),
                 width=max(1, int(2 * s)))


def lines(draw, zone, cols, rng, s, avoid):
    """Thin rules parallel to the top edge that frame the title group (letterpress feel): never radial."""
    x0, y0, x1, y1 = zone
    c = cols[int(rng.integers(0, len(cols)))]
    width = max(1, round(rng.uniform(1, 2.5) * s))
    if avoid:
        title = max(avoid, key=lambda r: (r[2] - r[0]) * (r[3] - r[1]))
        gap = rng.uniform(3, 10) * s
        ys = [title[1] - gap - width, title[3] + gap]
        if rng.random() < 0.5:  # a double rule
            ys += [ys[0] - 4 * s, ys[1] + 4 * s]
    else:
        ys = list(rng.uniform(y0, y1, int(rng.integers(2, 4))))
    for y in ys:
        if y0 <= y <= y1 - width:
            draw.rectangle((x0, y, x1, y + width), fill=_rgba(c, 220))


DRAWERS: dict[str, Drawer] = {name: globals()[name] for name in MOTIFS}
