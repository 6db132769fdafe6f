"""Pictures that are not digits, drawn by code: what the model learns to refuse, and what measures it.

People test a digit reader by writing something else: a letter, a sign, a scribble. A model
trained only on digits must still pick one, often with 98 % confidence. Outlier exposure
(Hendrycks et al., 2019) fixes that by training on a broad set of non-digits with equal
probabilities for every digit as the target, so that a non-digit leaves no digit on top.

Nothing here is downloaded and no font file is read (fonts differ from machine to machine):
letters and signs are stroke templates, drawn as a pen would with random slant, stretch,
wobble and width; the other kinds (scribbles, ticks, arrows, smileys, stars, blobs, hatching,
dots, two MNIST digits on top of each other) are generated.

Separate sets: `training_images` draws the TRAINING glyphs with the training stream of
seeds, `validation_images` draws them with another (the status thresholds are chosen on it);
`evaluation_images` draws other drawings of the same characters (EVALUATION glyphs),
characters that training never sees, and the generated kinds with another stream of seeds, so
that the evaluation measures what the model learned about "not a digit", not the templates.
Partial digits are not used: half a 0 is a C, but a broken-off digit is also what people write.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

from . import config, data
from .digit import centre_by_mass, fit_into_box

Point = tuple[float, float]
Stroke = list[Point]  # a pen-down path in a box about 1 high, y down; a single point is a dot
Glyph = list[Stroke]


def arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float, points: int = 14) -> Stroke:
    """Points along an ellipse from angle `start` to `end` in degrees (0 = right, 90 = down)."""
    return [
        (cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a)))
        for a in np.linspace(start, end, points)
    ]


def line(*points: Point) -> Stroke:
    return list(points)


def circle(cx: float, cy: float, r: float) -> Stroke:
    return arc(cx, cy, r, r, 0, 360, 18)


def dot(x: float, y: float) -> Stroke:
    return [(x, y)]


def _infinity() -> Stroke:
    ts = np.linspace(0, 2 * math.pi, 30)
    return [(0.5 + 0.5 * math.cos(t) / (1 + math.sin(t) ** 2), 0.5 + 0.45 * math.sin(t) * math.cos(t) / (1 + math.sin(t) ** 2) * 2) for t in ts]


def _star(points: int = 5, inner: float = 0.0, turn: float = -90) -> Stroke:
    """A star drawn in one stroke: every second tip of a `points`-pointed figure (a pentagram for 5)."""
    tips = [(0.5 + 0.5 * math.cos(math.radians(turn + 360 * k * 2 / points)), 0.5 + 0.5 * math.sin(math.radians(turn + 360 * k * 2 / points))) for k in range(points + 1)]
    return tips


# Capital letters that could pass for a digit (O, I, S, Z, and B's cousin 8 is kept) are left out,
# as people who test the app leave them out: an O *is* a 0 to anyone.
TRAINING: dict[str, Glyph] = {
    "A": [line((0, 1), (0.4, 0), (0.8, 1)), line((0.18, 0.6), (0.62, 0.6))],
    "B": [line((0, 0), (0, 1)), [(0, 0), (0.4, 0)] + arc(0.4, 0.25, 0.22, 0.25, -90, 90) + [(0, 0.5), (0.45, 0.5)] + arc(0.45, 0.75, 0.27, 0.25, -90, 90) + [(0, 1)]],
    "C": [arc(0.45, 0.5, 0.45, 0.5, -40, -320)],
    "D": [[(0, 1), (0, 0), (0.2, 0)] + arc(0.2, 0.5, 0.45, 0.5, -90, 90) + [(0, 1)]],
    "E": [line((0.7, 0), (0, 0), (0, 1), (0.7, 1)), line((0, 0.5), (0.55, 0.5))],
    "F": [line((0.7, 0), (0, 0), (0, 1)), line((0, 0.48), (0.55, 0.48))],
    "G": [arc(0.45, 0.5, 0.45, 0.5, -45, -360) + [(0.5, 0.5)]],
    "H": [line((0, 0), (0, 1)), line((0.7, 0), (0.7, 1)), line((0, 0.5), (0.7, 0.5))],
    "J": [line((0.3, 0), (0.9, 0)), [(0.6, 0), (0.6, 0.72)] + arc(0.35, 0.72, 0.25, 0.28, 0, 180)],
    "K": [line((0, 0), (0, 1)), line((0.7, 0), (0, 0.55), (0.75, 1))],
    "L": [line((0, 0), (0, 1), (0.65, 1))],
    "M": [line((0, 1), (0.05, 0), (0.45, 0.65), (0.85, 0), (0.9, 1))],
    "N": [line((0, 1), (0, 0), (0.7, 1), (0.7, 0))],
    "P": [[(0, 1), (0, 0), (0.35, 0)] + arc(0.35, 0.27, 0.3, 0.27, -90, 90) + [(0, 0.54)]],
    "Q": [circle(0.45, 0.5, 0.45), line((0.5, 0.7), (0.95, 1.05))],
    "R": [[(0, 1), (0, 0), (0.35, 0)] + arc(0.35, 0.27, 0.3, 0.27, -90, 90) + [(0, 0.54), (0.75, 1)]],
    "T": [line((0, 0), (0.8, 0)), line((0.4, 0), (0.4, 1))],
    "U": [[(0, 0), (0, 0.65)] + arc(0.35, 0.65, 0.35, 0.35, 180, 0) + [(0.7, 0)]],
    "V": [line((0, 0), (0.4, 1), (0.8, 0))],
    "W": [line((0, 0), (0.22, 1), (0.45, 0.35), (0.68, 1), (0.9, 0))],
    "X": [line((0, 0), (0.8, 1)), line((0.8, 0), (0, 1))],
    "Y": [line((0, 0), (0.4, 0.5), (0.8, 0)), line((0.4, 0.5), (0.4, 1))],
    "e": [[(0.1, 0.55), (0.9, 0.55)] + arc(0.5, 0.55, 0.4, 0.45, 0, -300)],
    "h": [line((0, 0), (0, 1)), [(0, 0.65)] + arc(0.35, 0.6, 0.3, 0.2, 200, 360) + [(0.65, 1)]],
    "k": [line((0, 0), (0, 1)), line((0.55, 0.4), (0, 0.72), (0.6, 1))],
    "m": [line((0, 0.4), (0, 1)), [(0, 0.55)] + arc(0.22, 0.55, 0.22, 0.15, 180, 360) + [(0.44, 1)], [(0.44, 0.55)] + arc(0.66, 0.55, 0.22, 0.15, 180, 360) + [(0.88, 1)]],
    "n": [line((0, 0.3), (0, 1)), [(0, 0.5)] + arc(0.3, 0.5, 0.3, 0.2, 180, 360) + [(0.6, 1)]],
    "r": [line((0, 0.3), (0, 1)), [(0, 0.6)] + arc(0.35, 0.55, 0.35, 0.25, 180, 300)],
    "+": [line((0.5, 0.05), (0.5, 0.95)), line((0.05, 0.5), (0.95, 0.5))],
    "-": [line((0, 0.5), (1, 0.5))],
    "=": [line((0, 0.3), (1, 0.3)), line((0, 0.7), (1, 0.7))],
    "?": [arc(0.4, 0.28, 0.35, 0.28, -170, 60) + [(0.4, 0.72)], dot(0.4, 0.97)],
    "!": [line((0.3, 0), (0.3, 0.72)), dot(0.3, 0.97)],
    "#": [line((0.35, 0), (0.25, 1)), line((0.75, 0), (0.65, 1)), line((0, 0.33), (1, 0.33)), line((0, 0.67), (1, 0.67))],
    "%": [circle(0.2, 0.2, 0.16), line((0.9, 0), (0.1, 1)), circle(0.8, 0.8, 0.16)],
    "&": [[(0.9, 1), (0.5, 0.6), (0.25, 0.35), (0.2, 0.15), (0.35, 0), (0.5, 0.1), (0.45, 0.3), (0.1, 0.65), (0.1, 0.85), (0.3, 1), (0.55, 0.95), (0.85, 0.6)]],
    "@": [circle(0.5, 0.5, 0.18), [(0.68, 0.35), (0.7, 0.7), (0.85, 0.7)] + arc(0.5, 0.5, 0.45, 0.48, 10, -320)],
    "*": [line((0.5, 0), (0.5, 1)), line((0.07, 0.25), (0.93, 0.75)), line((0.93, 0.25), (0.07, 0.75))],
    "$": [[(0.8, 0.12), (0.5, 0), (0.15, 0.1), (0.15, 0.35), (0.5, 0.5), (0.85, 0.65), (0.85, 0.9), (0.5, 1), (0.15, 0.88)], line((0.5, -0.12), (0.5, 1.12))],
    "<": [line((0.8, 0.1), (0, 0.5), (0.8, 0.9))],
    ">": [line((0, 0.1), (0.8, 0.5), (0, 0.9))],
    "~": [[(0, 0.6), (0.25, 0.4), (0.5, 0.55), (0.75, 0.65), (1, 0.4)]],
    "÷": [line((0, 0.5), (1, 0.5)), dot(0.5, 0.15), dot(0.5, 0.85)],
    "π": [line((0, 0.1), (1, 0.1)), line((0.3, 0.1), (0.25, 1)), line((0.7, 0.1), (0.75, 0.95), (0.9, 0.9))],
    "√": [line((0, 0.6), (0.15, 0.5), (0.35, 1), (0.6, 0), (1, 0))],
    "∞": [_infinity()],
    "✓": [line((0, 0.55), (0.35, 1), (1, 0))],
    "→": [line((0, 0.5), (1, 0.5)), line((0.7, 0.25), (1, 0.5), (0.7, 0.75))],
    "↑": [line((0.5, 1), (0.5, 0)), line((0.25, 0.3), (0.5, 0), (0.75, 0.3))],
    "★": [_star()],
    "☺": [circle(0.5, 0.5, 0.5), dot(0.33, 0.35), dot(0.67, 0.35), arc(0.5, 0.55, 0.25, 0.2, 20, 160)],
    "♡": [[(0.5, 1), (0.1, 0.55)] + arc(0.27, 0.3, 0.23, 0.25, 150, 360) + arc(0.73, 0.3, 0.23, 0.25, 180, 390) + [(0.5, 1)]],
}

# Other drawings of the same characters, and characters training never sees (the last group).
EVALUATION: dict[str, Glyph] = {
    "A": [line((0, 1), (0.3, 0), (0.5, 0), (0.8, 1)), line((0.12, 0.55), (0.68, 0.55))],
    "B": [line((0, 0), (0, 1)), [(0, 0)] + arc(0.3, 0.24, 0.3, 0.24, -90, 90) + arc(0.32, 0.74, 0.36, 0.26, -90, 90)],
    "C": [arc(0.4, 0.5, 0.4, 0.5, -60, -300)],
    "D": [line((0, 0), (0, 1)), [(0, 0)] + arc(0.05, 0.5, 0.6, 0.5, -90, 90)],
    "E": [line((0, 0), (0, 1)), line((0, 0), (0.6, 0)), line((0, 0.5), (0.5, 0.5)), line((0, 1), (0.65, 1))],
    "F": [line((0, 0), (0.05, 1)), line((0, 0), (0.7, 0.02)), line((0.02, 0.45), (0.45, 0.45))],
    "G": [arc(0.45, 0.5, 0.45, 0.5, -45, -350) + [(0.9, 0.55), (0.55, 0.55)], line((0.9, 0.55), (0.9, 1))],
    "H": [line((0.05, 0), (0, 1)), line((0.75, 0), (0.7, 1)), line((0, 0.45), (0.72, 0.5))],
    "J": [[(0.6, 0), (0.6, 0.7)] + arc(0.32, 0.7, 0.28, 0.3, 0, 160)],
    "K": [line((0, 0), (0, 1)), line((0.7, 0), (0, 0.5)), line((0.2, 0.4), (0.75, 1))],
    "L": [line((0.05, 0), (0, 1), (0.5, 0.98))],
    "M": [line((0, 1), (0, 0), (0.45, 0.6), (0.9, 0), (0.9, 1))],
    "N": [line((0, 1), (0.1, 0), (0.7, 1), (0.8, 0))],
    "P": [line((0, 0), (0, 1)), [(0, 0)] + arc(0.2, 0.22, 0.35, 0.22, -90, 90) + [(0, 0.44)]],
    "Q": [arc(0.45, 0.45, 0.45, 0.45, -90, 270), line((0.6, 0.8), (0.75, 1), (0.95, 1))],
    "R": [line((0, 0), (0, 1)), [(0, 0)] + arc(0.25, 0.25, 0.35, 0.25, -90, 90) + [(0, 0.5)], line((0.15, 0.5), (0.7, 1))],
    "T": [[(0, 0.05), (0.3, 0), (0.6, 0.02), (0.85, 0)], line((0.45, 0), (0.4, 1))],
    "U": [[(0, 0), (0, 0.7)] + arc(0.33, 0.7, 0.33, 0.3, 180, 0), line((0.66, 0), (0.68, 1))],
    "V": [[(0, 0), (0.2, 0.6), (0.4, 1), (0.6, 0.5), (0.85, 0)]],
    "W": [line((0, 0), (0.25, 1), (0.45, 0)), line((0.45, 0), (0.65, 1), (0.9, 0))],
    "X": [[(0, 0), (0.35, 0.45), (0.8, 1)], [(0.85, 0), (0.45, 0.55), (0, 1)]],
    "Y": [line((0, 0), (0.4, 0.5)), line((0.8, 0), (0.2, 1))],
    "+": [line((0.45, 0), (0.55, 1)), line((0, 0.45), (1, 0.55))],
    "=": [line((0, 0.35), (0.9, 0.3)), line((0.05, 0.75), (0.95, 0.7))],
    "?": [[(0.05, 0.25)] + arc(0.45, 0.25, 0.4, 0.25, 180, 420) + [(0.45, 0.55), (0.45, 0.75)], dot(0.45, 1)],
    "#": [line((0.3, 0), (0.3, 1)), line((0.7, 0), (0.7, 1)), line((0, 0.3), (1, 0.3)), line((0, 0.7), (1, 0.7))],
    "%": [circle(0.15, 0.15, 0.15), line((0.85, 0.05), (0.15, 0.95)), circle(0.85, 0.85, 0.15)],
    "&": [[(0.9, 0.95), (0.3, 0.3), (0.3, 0.05), (0.5, 0.05), (0.5, 0.3), (0.05, 0.7), (0.2, 1), (0.5, 0.95), (0.8, 0.55)]],
    "@": [arc(0.5, 0.5, 0.2, 0.2, 0, 360) + [(0.7, 0.75), (0.9, 0.6)] + arc(0.5, 0.5, 0.45, 0.45, -20, -330)],
    "*": [line((0.5, 0), (0.5, 1)), line((0, 0.5), (1, 0.5)), line((0.15, 0.15), (0.85, 0.85)), line((0.85, 0.15), (0.15, 0.85))],
    "$": [[(0.8, 0.15), (0.5, 0.02), (0.2, 0.15), (0.25, 0.38), (0.75, 0.6), (0.8, 0.85), (0.5, 0.98), (0.15, 0.85)], line((0.4, -0.1), (0.4, 1.1)), line((0.6, -0.1), (0.6, 1.1))],
    "<": [line((0.9, 0), (0, 0.55), (0.8, 1))],
    ">": [line((0, 0), (0.9, 0.45), (0.1, 1))],
    "×": [line((0, 0), (1, 1)), line((1, 0), (0, 1))],
    "÷": [line((0, 0.5), (1, 0.5)), dot(0.45, 0.1), dot(0.55, 0.9)],
    "√": [line((0, 0.5), (0.25, 1), (0.5, 0), (1, 0))],
    "✓": [line((0, 0.7), (0.25, 1), (0.8, 0))],
    "←": [line((1, 0.5), (0, 0.5)), line((0.3, 0.2), (0, 0.5), (0.3, 0.8))],
    "☺": [circle(0.5, 0.5, 0.5), line((0.35, 0.25), (0.35, 0.4)), line((0.65, 0.25), (0.65, 0.4)), arc(0.5, 0.6, 0.28, 0.18, 10, 170)],
    # never in training
    "€": [arc(0.55, 0.5, 0.45, 0.5, -50, -310), line((0, 0.4), (0.7, 0.4)), line((0, 0.6), (0.6, 0.6))],
    "Ω": [[(0, 1), (0.3, 1), (0.3, 0.85)] + arc(0.5, 0.45, 0.42, 0.45, 130, 410) + [(0.7, 0.85), (0.7, 1), (1, 1)]],
    "λ": [line((0.1, 0), (0.9, 1)), line((0.5, 0.5), (0, 1))],
    "Σ": [line((0.8, 0), (0, 0), (0.45, 0.5), (0, 1), (0.8, 1))],
    "♪": [circle(0.2, 0.85, 0.15), line((0.35, 0.85), (0.35, 0), (0.8, 0.25))],
    "Δ": [line((0.45, 0), (0, 1), (0.9, 1), (0.45, 0))],
    "§": [[(0.7, 0.1), (0.4, 0), (0.2, 0.15), (0.4, 0.35), (0.7, 0.5), (0.5, 0.65), (0.3, 0.55)], [(0.6, 0.45), (0.3, 0.6), (0.5, 0.8), (0.6, 0.95), (0.3, 1), (0.1, 0.9)]],
}
UNSEEN = ("€", "Ω", "λ", "Σ", "♪", "Δ", "§")  # in EVALUATION only


# --- Generated kinds: a family each, with its own randomness. ---


def _scribble(rng: np.random.Generator) -> Glyph:
    """A tangle: one stroke through 6-14 random points."""
    return [[tuple(point) for point in rng.uniform(0, 1, size=(int(rng.integers(6, 15)), 2))]]


def _zigzag(rng: np.random.Generator) -> Glyph:
    teeth = int(rng.integers(3, 7))
    height = rng.uniform(0.2, 0.6)
    return [[(k / teeth, 0.5 + (height / 2) * (1 if k % 2 else -1)) for k in range(teeth + 1)]]


def _wave(rng: np.random.Generator) -> Glyph:
    turns = rng.uniform(1.5, 3.5)
    height = rng.uniform(0.15, 0.45)
    return [[(t, 0.5 + height * math.sin(2 * math.pi * turns * t)) for t in np.linspace(0, 1, 40)]]


def _spiral(rng: np.random.Generator) -> Glyph:
    turns = rng.uniform(1.6, 3.2)
    ts = np.linspace(0, turns * 2 * math.pi, int(30 * turns))
    radius = 0.05 + 0.45 * ts / ts[-1]
    return [[(0.5 + r * math.cos(t), 0.5 + r * math.sin(t)) for r, t in zip(radius, ts)]]


def _hatching(rng: np.random.Generator) -> Glyph:
    """Parallel strokes, sometimes crossed by a second set: shading, a grid, a tally."""
    count = int(rng.integers(3, 7))
    strokes = [line((k / (count - 1), 0), (k / (count - 1) + rng.uniform(-0.2, 0.2), 1)) for k in range(count)]
    if rng.random() < 0.5:
        strokes += [line((0, k / (count - 1)), (1, k / (count - 1) + rng.uniform(-0.2, 0.2))) for k in range(count)]
    return strokes


def _dots(rng: np.random.Generator) -> Glyph:
    return [dot(*rng.uniform(0, 1, 2)) for _ in range(int(rng.integers(2, 7)))]


def _lines(rng: np.random.Generator) -> Glyph:
    """One to three straight strokes, none of them upright (an upright stroke is a 1)."""
    strokes = []
    for _ in range(int(rng.integers(1, 4))):
        angle = math.radians(rng.uniform(-35, 35))
        x, y = rng.uniform(0.2, 0.8, 2)
        dx, dy = 0.5 * math.cos(angle), 0.5 * math.sin(angle)
        strokes.append(line((x - dx, y - dy), (x + dx, y + dy)))
    return strokes


def _box(rng: np.random.Generator) -> Glyph:
    """A crossed-out square (a ticked box on a form) or a triangle. A plain square is left out: drawn by hand, it is a 0."""
    if rng.random() < 0.5:
        return [[(0, 0), (1, 0), (1, 1), (0, 1), (0, 0)], line((0.1, 0.1), (0.9, 0.9)), line((0.9, 0.1), (0.1, 0.9))]
    return [[(0.5, 0), (1, 1), (0, 1), (0.5, 0)]]


GENERATED: dict[str, Callable[[np.random.Generator], Glyph]] = {
    "scribble": _scribble, "zigzag": _zigzag, "wave": _wave, "spiral": _spiral,
    "hatching": _hatching, "dots": _dots, "lines": _lines, "box": _box,
}
# Besides these: a blob of ink (`_blob`) and two MNIST digits on top of each other (`_overlaid`).
OTHER_KINDS = ("blob", "overlaid")


# --- Drawing with a pen. ---

DRAW_HEIGHT = 96  # pixels the glyph is drawn at before framing (MNIST's 20x20 box is made from it)


@dataclass(frozen=True)
class Pen:
    width: float  # as a share of the glyph's height
    slant: float  # shear, x += slant * (0.5 - y)
    rotation: float  # degrees
    stretch: float  # horizontal scale
    wobble: float  # random displacement of each point, as a share of the height


def _random_pen(rng: np.random.Generator) -> Pen:
    return Pen(
        width=float(rng.uniform(0.05, 0.16)), slant=float(rng.uniform(-0.3, 0.3)), rotation=float(rng.uniform(-12, 12)),
        stretch=float(rng.uniform(0.7, 1.3)), wobble=float(rng.uniform(0.0, 0.035)),
    )


def _catmull_rom(points: np.ndarray, per_segment: int = 6) -> np.ndarray:
    """A smooth curve through the points, as a hand draws between them."""
    if len(points) < 3:
        return points
    padded = np.vstack([points[0], points, points[-1]])
    t = np.linspace(0, 1, per_segment, endpoint=False)[:, None]
    pieces = []
    for p0, p1, p2, p3 in zip(padded[:-3], padded[1:-2], padded[2:-1], padded[3:]):
        pieces.append(
            0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3)
        )
    return np.vstack(pieces + [points[-1:]])


def draw(glyph: Glyph, pen: Pen, rng: np.random.Generator) -> np.ndarray:
    """Strokes -> ink (float32 in [0, 1], white on black), the glyph about DRAW_HEIGHT pixels high."""
    angle = math.radians(pen.rotation)
    cos, sin = math.cos(angle), math.sin(angle)
    paths = []
    for stroke in glyph:
        points = np.asarray(stroke, dtype=np.float64)
        points = points + rng.normal(0, pen.wobble, size=points.shape)
        x = (points[:, 0] + pen.slant * (0.5 - points[:, 1])) * pen.stretch
        y = points[:, 1]
        paths.append(np.stack([cos * x - sin * y, sin * x + cos * y], axis=1))
    everything = np.vstack(paths)
    low, high = everything.min(axis=0), everything.max(axis=0)
    scale = DRAW_HEIGHT / max(high[1] - low[1], 0.35 * (high[0] - low[0]), 0.2)  # a dash is not blown up to full height
    width = max(2.0, pen.width * DRAW_HEIGHT)
    margin = width + 2
    size = np.ceil((high - low) * scale + 2 * margin).astype(int)
    supersample = 2
    canvas = Image.new("L", (int(size[0]) * supersample, int(size[1]) * supersample), 0)
    ink = ImageDraw.Draw(canvas)
    radius = width * supersample / 2
    for path in paths:
        pixels = ((path - low) * scale + margin) * supersample
        if len(pixels) == 1 or np.ptp(pixels, axis=0).max() < 1:
            cx, cy = pixels[0]
            ink.ellipse([cx - radius * 1.2, cy - radius * 1.2, cx + radius * 1.2, cy + radius * 1.2], fill=255)
            continue
        smooth = _catmull_rom(pixels)
        ink.line([tuple(p) for p in smooth], fill=255, width=int(round(2 * radius)), joint="curve")
        for end in (smooth[0], smooth[-1]):
            ink.ellipse([end[0] - radius, end[1] - radius, end[0] + radius, end[1] + radius], fill=255)
    small = canvas.resize((int(size[0]), int(size[1])), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) / 255


def _blob(rng: np.random.Generator) -> np.ndarray:
    """A filled, lumpy patch of ink (a smudge, a coloured-in box)."""
    angles = np.sort(rng.uniform(0, 2 * math.pi, int(rng.integers(6, 11))))
    radii = rng.uniform(0.5, 1.0, len(angles))
    stretch = rng.uniform(0.5, 1.5)
    points = [(50 + 40 * r * math.cos(a) * stretch, 50 + 40 * r * math.sin(a)) for r, a in zip(radii, angles)]
    canvas = Image.new("L", (140, 100), 0)
    ImageDraw.Draw(canvas).polygon(points, fill=255)
    return np.asarray(canvas, dtype=np.float32) / 255


def _overlaid(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Two different MNIST digits written on top of each other, a little apart."""
    first = int(rng.integers(len(images)))
    others = np.flatnonzero(labels != labels[first])
    second = int(rng.choice(others))
    shift = rng.integers(-5, 6, size=2)
    moved = np.roll(images[second], tuple(int(s) for s in shift), axis=(0, 1))
    return np.maximum(images[first], moved).astype(np.float32) / 255


def frame(ink: np.ndarray) -> np.ndarray:
    """Ink of any size -> MNIST's 28x28 frame (20x20 box, centre of mass in the middle), as the reader frames a digit."""
    rows, columns = np.nonzero(ink > 0.05)
    crop = ink[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]
    return centre_by_mass(fit_into_box(crop.astype(np.float32)))


# --- The two sets. ---

# Shares of each family in a set; the rest are letters and signs (TRAINING or EVALUATION glyphs).
GENERATED_SHARE = 0.35
BLOB_SHARE = 0.03
OVERLAID_SHARE = 0.07
_TRAINING_STREAM, _EVALUATION_STREAM, _VALIDATION_STREAM = 0, 1, 2


@dataclass(frozen=True)
class NonDigits:
    images: np.ndarray  # (n, 28, 28) float32 in [0, 1], framed as MNIST
    kinds: list[str]  # what each one is: a character, or a generated family's name


def _make(n: int, glyphs: dict[str, Glyph], digits_split: str, stream: int, seed: int) -> NonDigits:
    rng = np.random.default_rng([seed, stream])
    mnist = data.load_split(digits_split)
    characters = list(glyphs)
    families = list(GENERATED)
    images, kinds = [], []
    for _ in range(n):
        roll = rng.random()
        if roll < BLOB_SHARE:
            kind, ink = "blob", _blob(rng)
        elif roll < BLOB_SHARE + OVERLAID_SHARE:
            kind, ink = "overlaid", _overlaid(mnist.images, mnist.labels, rng)
        elif roll < BLOB_SHARE + OVERLAID_SHARE + GENERATED_SHARE:
            kind = families[int(rng.integers(len(families)))]
            ink = draw(GENERATED[kind](rng), _random_pen(rng), rng)
        else:
            kind = characters[int(rng.integers(len(characters)))]
            ink = draw(glyphs[kind], _random_pen(rng), rng)
        images.append(frame(ink))
        kinds.append(kind)
    return NonDigits(np.stack(images).astype(np.float32), kinds)


def training_images(n: int, seed: int = config.SEED) -> NonDigits:
    """`n` non-digits to train on: TRAINING glyphs and generated kinds, two-digit overlays from MNIST train."""
    return _make(n, TRAINING, "train", _TRAINING_STREAM, seed)


def validation_images(n: int, seed: int = config.SEED) -> NonDigits:
    """`n` non-digits to choose the status thresholds on: drawn as `training_images` draws, other seeds."""
    return _make(n, TRAINING, "train", _VALIDATION_STREAM, seed)


def evaluation_images(n: int, seed: int = config.SEED) -> NonDigits:
    """`n` non-digits to measure with: other drawings (EVALUATION glyphs, some characters never trained on),
    other seeds, two-digit overlays from MNIST test."""
    return _make(n, EVALUATION, "test", _EVALUATION_STREAM, seed)
