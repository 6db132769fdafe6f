"""Find the scene in a picture: the writing surface, its printed rulings, the ink, the digits.

The second stage of reading a picture (after `decode`, before `digit`). People
photograph digits where they wrote them: a note lying on a desk, a page of a
ruled or squared school notebook, under the shadow of a hand. The steps:

1. surface: where the writing surface is. A picture that is all paper (or a
   drawing, or a transparent cut-out) is its own surface; a note on a desk is
   the large, bright, flat region inside a darker or textured surround.
2. ink: brightness against the paper's own background, which removes uneven
   lighting, tint and shadows; polarity (dark ink on light paper, or light
   ink on a dark board) is read from the surface, not from the picture's edge.
3. rulings: printed lines (ruled, squared, dotted) are long, thin, straight,
   periodic and span the paper, where strokes are not; they are found by
   geometry, told from ink by colour where they differ in hue, and removed
   while ink that crosses them is kept.
4. locate: the digits, left to right along one line of writing. Strokes are
   grouped into digits (a 5's detached bar, a 4 in two strokes or a pencil
   gap stay one digit), digits that touch are cut at a thin join, specks and
   stray marks are dropped. A single digit is the main stroke with those
   near it. Blank pictures, noise, lines only, several lines of writing, more
   than 12 digits and pages full of writing are refused with a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from scipy import ndimage

from .decode import WorkingArrays
from .errors import NoDigitFoundError, TooMuchWritingError

MIN_CONTRAST = 0.08  # brightness range (0-1) below which an image counts as blank
MIN_INK = 0.06  # weakest stroke (0-1 contrast against the background) taken as ink
MIN_SIGNAL_TO_NOISE = 6.0  # strongest (smoothed) ink over pixel noise; pure noise scores below 2, digits above 40
INK_THRESHOLD = 0.15  # share of the peak ink that marks a stroke pixel (low: faint parts of blurry digits count)
KEEP_COMPONENT = 0.08  # strokes lighter than this share of the main stroke are specks
MAX_INK_COVERAGE = 0.6  # an image more than this much strong ink (over half the peak) is texture, not a digit
MIN_STROKE_TO_NOISE = 3.5  # a digit's typical stroke (not only its darkest pixel) stands this far above the noise
LINE_TRACE = 0.05  # removed ink above this marks where a printed line ran
MAX_ON_LINES = 0.75  # a stroke with this share of its pixels on printed lines is what is left of them
COMPARABLE = 0.25  # strokes with at least this share of the main stroke's ink count as writing ...
MAX_COMPARABLE = 15  # ... and more of them than a number and a stray mark or two is a page of writing
LINE_LENGTH = 2.5  # a straight stroke this many times as long as the digits are tall is a line, not a digit ...
LINE_SPREAD = 0.06  # ... straight: its pixels stray from their axis by at most this share of the digit height (sd)
LINE_END = 0.25  # on a ruled page or a note on a desk, a stroke this thin (short side over long) that the frame cuts is no digit


@dataclass(frozen=True)
class Scene:
    """What the scene stage found, at working resolution."""

    surface: np.ndarray  # bool: the writing surface (all True when the whole picture is paper)
    surface_kind: str  # "whole picture" or "paper on a surface"
    rulings: np.ndarray  # the printed lines removed from the ink map, in ink units (0 where there are none)
    ink: np.ndarray  # 1 = ink, 0 = background, printed lines removed; only inside the surface
    ink_source: str  # "alpha", "dark ink on light background" or "light ink on dark background"
    shadowed: bool = False  # a shadow (or a reflection) lies over part of the paper


@dataclass(frozen=True)
class DigitRegion:
    """One digit's pixels in the ink map."""

    mask: np.ndarray  # bool, the digit's pixels
    bbox: tuple[int, int, int, int]  # top, left, bottom, right
    stroke_level: float  # a typical stroke's ink value (90th percentile), so strokes can be scaled to full intensity


def find_scene(arrays: WorkingArrays) -> Scene:
    """The writing surface, the ink on it and the printed rulings removed from it."""
    luminance, alpha = arrays.luminance, arrays.alpha
    whole = np.ones(luminance.shape, dtype=bool)
    if alpha is not None and alpha.min() < 0.9:  # a drawing or cut-out: its opaque part is the surface
        ink, ink_source = ink_map(luminance, alpha)
        return Scene(whole, "whole picture", np.zeros_like(ink), ink, ink_source)
    drawn = _drawn(luminance)
    photo = max(luminance.shape) / arrays.scale >= MIN_PHOTO_SIDE and not drawn
    found = find_surface(luminance, arrays.rgb) if photo else None
    surface = whole if found is None else found
    ink, ink_source, shadowed = _ink_from_luminance(luminance, found, photo)
    ink, rulings = (ink, np.zeros_like(ink)) if drawn else remove_rulings(ink, surface)
    return Scene(surface, "whole picture" if found is None else "paper on a surface", rulings, ink, ink_source, shadowed)


def _drawn(luminance: np.ndarray) -> bool:
    """A drawing made on a screen (the app's canvas, a paint program): most of it is pure black or pure white,
    which no camera gives. It has no paper edge, printed lines or shadows to look for (that search took
    50-70 ms of a 280x280 canvas drawing's 75 ms)."""
    return max(np.mean(luminance == 0.0), np.mean(luminance == 1.0)) > DRAWN_SHARE


def _reduced_size(height: int, width: int, side: int) -> tuple[float, tuple[int, int]]:
    """The scale and the (width, height) at which the longest side is `side` pixels (8 at least)."""
    factor = side / max(height, width)
    return factor, (max(8, round(width * factor)), max(8, round(height * factor)))


# 1. Surface ------------------------------------------------------------------------------

SURFACE_SIDE = 256  # the surface is looked for at this size: paper edges stay sharp, ink and rulings vanish
EDGE_STEP = 0.03  # colour change per pixel (0-1, after smoothing) that separates two surfaces
MIN_PAPER = 0.08  # a writing surface covers at least this share of the picture ...
MIN_SURROUND = 0.03  # ... and leaves at least this much of it around (or it is the whole picture)
MIN_SOLIDITY = 0.85  # paper is a convex quadrilateral, seen in perspective: its area over its convex hull's
MIN_OWN_SHARE = 0.7  # the paper's own flat pixels over its filled outline: the rest is ink, a digit is not paper
MAX_CORNERS = 8  # the outline of paper, seen in perspective and cut by the frame, straightened at 3 % of its length
MIN_PAPER_SIDE = 0.2  # the paper's narrow side, as a share of the picture's: strokes are narrower
MIN_PAPER_LIFT = 0.04  # paper is at least this much brighter (0-1) than the band just outside it
MIN_EDGE_SUPPORT = 0.6  # share of the paper's outline (inside the frame) that is a sharp edge
SURFACE_MARGIN = 0.012  # the surface is shrunk by this share of the picture's side: its edge is never ink
SHADOW_HUE = 0.006  # a shadow changes the paper's chromaticity (each channel's share of the sum) by less than this ...
SHADOW_GRAIN = 0.03  # ... and its fine texture (median, relative to its brightness) stays under this


def find_surface(luminance: np.ndarray, rgb: np.ndarray | None) -> np.ndarray | None:
    """The paper when it lies on a different surround (desk, cloth, a dark table), else None (all paper).

    Paper is flat; its edge is a sharp step in colour or brightness. At a small
    size, after a closing has removed the ink and printed lines, pixels on a
    step are edges; the paper is a large region of non-edge pixels, solid
    (its filled outline is close to its convex hull), that leaves a surround
    and is mostly its own colour inside. A shadow's edge is soft (no step), so
    the shadowed part of a page stays part of the page, and an outline that
    is mostly soft is refused; a sharp shadow is told from a desk by what
    lies around the bright region: the page's own colour, dimmed, and as
    smooth as paper (then the picture is all paper). Among candidates the
    largest is the paper. The surface returned is that region with its holes
    (the ink) filled, shrunk by a margin, at working resolution; a hand or an
    object reaching over the paper's edge stays outside it.
    """
    height, width = luminance.shape
    factor, size = _reduced_size(height, width, SURFACE_SIDE)
    colour = rgb if rgb is not None else luminance[..., None]
    small = cv2.resize(colour, size, interpolation=cv2.INTER_AREA)
    if small.ndim == 2:
        small = small[..., None]
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
    wide = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15))
    wider = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (31, 31))
    closed = _closed(small, 7, soften=1.0)  # ink and rulings gone, paper edges kept
    if closed.ndim == 2:
        closed = closed[..., None]
    step = np.zeros(closed.shape[:2], dtype=np.float32)
    for channel in range(closed.shape[2]):
        gx = cv2.Sobel(closed[..., channel], cv2.CV_32F, 1, 0, ksize=3) / 8
        gy = cv2.Sobel(closed[..., channel], cv2.CV_32F, 0, 1, ksize=3) / 8
        step = np.maximum(step, np.hypot(gx, gy))
    small_luminance = cv2.resize(luminance, size, interpolation=cv2.INTER_AREA)
    closed_luminance = closed.mean(axis=2)
    # Paper is the bright side of the picture: splitting by brightness too keeps a gap in its edge
    # (a soft shadow along one side, a corner cut by the frame) from joining it to the desk.
    level, _ = cv2.threshold(np.clip(closed_luminance * 255, 0, 255).astype(np.uint8), 0, 255, cv2.THRESH_OTSU)
    edges = cv2.dilate((step >= EDGE_STEP).astype(np.uint8), np.ones((3, 3), np.uint8), iterations=2)
    flat = ((step < EDGE_STEP) & (closed_luminance * 255 > level)).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(flat, connectivity=4)
    total = flat.size
    inner = np.zeros(flat.shape, dtype=bool)
    inner[3:-3, 3:-3] = True  # the outline along the frame is no edge of the paper
    best, best_area = None, 0
    for index in np.flatnonzero(stats[:, cv2.CC_STAT_AREA] >= MIN_PAPER * total):
        if index == 0 and not flat[labels == 0].any():
            continue
        region = (labels == index).astype(np.uint8)
        filled = _filled(region)
        area = int(filled.sum())
        if area > (1 - MIN_SURROUND) * total or stats[index, cv2.CC_STAT_AREA] < MIN_OWN_SHARE * area:
            continue
        hull, corners = _hull_mask(filled)
        if hull.sum() > (1 - MIN_SURROUND) * total or area < MIN_SOLIDITY * hull.sum() or corners > MAX_CORNERS:
            continue
        (_, _), (side_a, side_b), _ = cv2.minAreaRect(cv2.findNonZero(filled))
        if min(side_a, side_b) < MIN_PAPER_SIDE * min(size):  # a long thick stroke is no sheet of paper
            continue
        brightness = float(np.median(small_luminance[region > 0]))
        near = cv2.dilate(hull, wide) > 0
        ring = near & (cv2.dilate(hull, kernel) == 0)  # beyond the edge's own blur
        if not ring.any() or brightness < float(np.median(small_luminance[ring])) + MIN_PAPER_LIFT:
            continue  # paper is brighter than what it lies on; the inside of a loop of ink is not
        beyond = (cv2.dilate(hull, wider) > 0) & ~near  # clear of the edge itself
        if _in_shadow(small, small_luminance, region > 0, beyond if beyond.any() else ring):
            return None  # what lies around it is the same page in a shadow, not a desk: the picture is all paper
        outline = (filled > 0) & (cv2.erode(filled, np.ones((3, 3), np.uint8)) == 0) & inner
        if outline.any() and edges[outline].mean() < MIN_EDGE_SUPPORT:
            continue  # its outline is mostly soft: lighting or a shadow, not the edge of a sheet
        if area > best_area:  # the filled outline, not the hull: a hand over the edge stays out
            best, best_area = filled, area
    if best is None:
        return None
    margin = max(1, round(SURFACE_MARGIN * SURFACE_SIDE))
    best = cv2.erode(best, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1)))
    return cv2.resize(best, (width, height), interpolation=cv2.INTER_NEAREST) > 0


def _in_shadow(colour: np.ndarray, luminance: np.ndarray, paper: np.ndarray, surround: np.ndarray) -> bool:
    """Whether what lies around a bright region is the same page in a shadow rather than a desk: the paper's own
    colour (a shadow dims every channel alike), not far darker than shadows get, and as smooth as paper (wood,
    cloth and most desks have a grain). A smooth grey desk (or any desk in a greyscale picture, which has no hue)
    can pass too: the note is then read as a page with a shadow around it, which fails now and then."""
    paper_colour, surround_colour = np.median(colour[paper], axis=0), np.median(colour[surround], axis=0)
    level = max(float(surround_colour.mean()), 1e-3)
    darkening = level / max(float(paper_colour.mean()), 1e-3)
    hue = np.abs(surround_colour / max(float(surround_colour.sum()), 1e-3) - paper_colour / max(float(paper_colour.sum()), 1e-3))
    fine = luminance - cv2.GaussianBlur(luminance, (0, 0), 1.5)
    grain = float(np.median(np.abs(fine[surround]))) / level
    return darkening >= 1 - MAX_SHADOW_DEPTH and float(hue.max()) < SHADOW_HUE and grain < SHADOW_GRAIN


def _filled(region: np.ndarray) -> np.ndarray:
    """A binary region with its holes filled (the ink and whatever lies inside the paper)."""
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(region)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled


def _hull_mask(region: np.ndarray) -> tuple[np.ndarray, int]:
    """The region's convex hull, and its number of corners (a sheet of paper, even cut by the frame, has few)."""
    hull_points = cv2.convexHull(cv2.findNonZero(region))
    hull = np.zeros_like(region)
    cv2.fillConvexPoly(hull, hull_points, 1)
    corners = len(cv2.approxPolyDP(hull_points, 0.03 * cv2.arcLength(hull_points, True), True))
    return hull, corners


# 3. Rulings ------------------------------------------------------------------------------

RULING_SIDE = 384  # rulings are looked for at this size (lines stay at least a pixel wide)
RULING_ANGLES = np.arange(-15.0, 15.01, 0.5)  # degrees from the row direction: a page (or a note on a desk) tilted by up to 15 degrees
SEGMENTS = 16  # a line is followed in this many pieces along its length (curved pages, converging lines)
MIN_LINE_CONTRAST = 0.015  # mean ink along a line above its surroundings (0-1): faint blue rulings pass
MIN_SPAN = 0.6  # a printed line is seen in at least this share of the pieces it crosses; strokes are shorter
MIN_FAMILY = 2  # rulings come several at a time (a lone long stroke is not a ruling)
MAX_LINE_WOBBLE = 1.0  # median distance (pixels at RULING_SIDE) of a line's pieces from its fitted curve
FAMILY_ROUNDS = 6  # converging lines of one family are found in up to this many rounds
LINE_SWAY = 2.0  # a line is at most this much darker in one stretch than over a third of its length (a stroke along it is not the line)
LINE_RESIDUE = 0.25  # ink left on a line weaker than this share of the line's own darkness is the line's
CROSSING_INK = 0.1  # ink this dark just above and below a line is a stroke crossing it, however much darker the line


@dataclass(frozen=True)
class _Line:
    centre: np.ndarray  # row of the line's centre at every column (working resolution)
    half_width: float  # pixels either side of the centre that the line covers


def remove_rulings(ink: np.ndarray, surface: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ink with printed lines removed, and what was removed (same shape; 0 where there are no lines).

    Lines running across the page (ruled paper, the rows of a grid) are found
    first; then lines running down it (a grid's columns, a margin line), which
    on their own must be several, or accompany lines across.
    """
    cleaned = ink.copy()
    across, angle = _erase_family(cleaned, surface, MIN_FAMILY)
    # Lines down the page run about square to those across it (a perspective view turns them a little), so
    # they are first looked for there: a lone thin margin line is missed by the coarse search over all angles.
    down, _ = _erase_family(cleaned.T, surface.T, 1 if across else MIN_FAMILY, near=-angle if across else None)
    if not across and not down:
        return ink, np.zeros_like(ink)
    return cleaned, np.clip(ink - cleaned, 0, None)


def _erase_family(ink: np.ndarray, surface: np.ndarray, min_family: int, near: float | None = None) -> tuple[int, float | None]:
    """Find and erase lines along the rows of `ink`, in place; a few rounds, because in perspective the
    lines of one family converge and each round finds those that share its dominant angle. Each round looks
    near the angle the last one found, so the rounds walk one way from the first angle; when that finds
    nothing more, the lines on its other side are looked for once near the first. `near`: the angle to look
    at first (all angles when nothing is found there). -> (lines erased, the angle of the first found)."""
    erased, first = 0, None
    for _ in range(FAMILY_ROUNDS):
        lines, angle = _find_lines(ink, surface, min_family if not erased else 1, near=near)
        if not lines and not erased and near is not None:
            lines, angle = _find_lines(ink, surface, min_family)
        if not lines and erased and near != first:  # converging lines on the first angle's other side
            lines, angle = _find_lines(ink, surface, 1, near=first)
        if not lines:
            break
        _erase(ink, lines, surface)
        erased += len(lines)
        first = angle if first is None else first
        near = angle
    return erased, first


def _find_lines(
    ink: np.ndarray, surface: np.ndarray, min_family: int, near: float | None = None
) -> tuple[list[_Line], float | None]:
    """Printed lines running along the rows of `ink` (within RULING_ANGLES), as fitted curves, and their
    angle in degrees. `near`: the angle a previous round found; the lines it left converge close to it."""
    height, width = ink.shape
    factor, size = _reduced_size(height, width, RULING_SIDE)
    small = cv2.resize(np.clip(ink, 0, 1) * surface, size, interpolation=cv2.INTER_AREA)
    paper = cv2.resize(surface.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0.5
    paper[:, 1::2] = False  # every other column is enough to find lines along the rows, and twice as fast
    ys, xs = np.nonzero(paper)
    values = small[ys, xs]
    if len(values) < 32:
        return [], None
    ys, xs = ys.astype(np.float32), xs.astype(np.float32)

    def projection(degrees: float):
        theta = np.deg2rad(degrees)
        offsets = ys * np.cos(theta) - xs * np.sin(theta)
        bins = np.round(offsets - offsets.min()).astype(np.int64)
        counts = np.bincount(bins)
        mean = np.bincount(bins, values) / np.maximum(counts, 1)
        lift = mean - ndimage.median_filter(mean, 9, mode="nearest")
        # only offsets that cross much of the paper count: a few pixels in a corner make a noisy mean
        score = float(np.sum(np.clip(lift[counts >= 0.3 * counts.max()], 0, None) ** 2))
        return score, (theta, offsets, bins, counts, lift)

    # Coarse to fine: a sharp peak appears within a degree of the lines' angle.
    if near is None:
        coarse = max((projection(d) for d in RULING_ANGLES[::3]), key=lambda found: found[0])
    else:
        coarse = max((projection(d) for d in np.arange(near - 2.0, near + 2.01, 1.0)), key=lambda found: found[0])
    centre = np.rad2deg(coarse[1][0])
    fine = [projection(d) for d in np.arange(centre - 1.0, centre + 1.01, 0.25) if d != centre]
    theta, offsets, bins, counts, lift = max([coarse, *fine], key=lambda found: found[0])[1]
    peaks = np.flatnonzero(
        (lift > MIN_LINE_CONTRAST) & (lift >= np.roll(lift, 1)) & (lift > np.roll(lift, -1)) & (counts >= 0.3 * counts.max())
    )
    along = xs * np.cos(theta) + ys * np.sin(theta)
    pieces = np.minimum((SEGMENTS * (along - along.min()) / max(float(np.ptp(along)), 1.0)).astype(np.int64), SEGMENTS - 1)
    lines = []
    for peak in peaks:
        line = _follow(peak, bins, pieces, values, along, offsets.min(), lift, theta, factor, width)
        if line is not None:
            lines.append(line)
    return (lines if len(lines) >= min_family else []), float(np.rad2deg(theta))


def _follow(peak, bins, pieces, values, along, offset0, lift, theta, factor, width) -> _Line | None:
    """Follow one candidate line piece by piece, letting it drift (a curved page, converging lines);
    None when it is not seen along most of its length."""
    reach = 9
    close = np.abs(bins - peak) <= reach
    offsets = (bins[close] - peak + reach).astype(np.int64)
    piece_of, values_close, along_close = pieces[close], values[close], along[close]
    cells = piece_of * (2 * reach + 1) + offsets
    size = SEGMENTS * (2 * reach + 1)
    counts = np.bincount(cells, minlength=size).reshape(SEGMENTS, -1)
    profile = np.bincount(cells, values_close, minlength=size).reshape(SEGMENTS, -1) / np.maximum(counts, 1)
    positions = np.bincount(cells, along_close, minlength=size).reshape(SEGMENTS, -1) / np.maximum(counts, 1)
    crossed = np.flatnonzero(counts.sum(1) >= 4 * (2 * reach + 1) // 3)
    if len(crossed) == 0:
        return None

    def found(piece: int, expected: int) -> tuple[float, float, float] | None:
        """(position along, offset, contrast) of the line in one piece, near `expected`."""
        window = np.arange(max(1, expected - 2), min(2 * reach, expected + 2) + 1)
        best = int(window[np.argmax(profile[piece, window])])
        paper = np.r_[profile[piece, : max(0, best - 3)], profile[piece, best + 4 :]]
        paper_level = float(np.median(paper))
        noise = 1.4826 * float(np.median(np.abs(paper - paper_level)))
        contrast = float(profile[piece, best]) - paper_level
        if contrast <= max(MIN_LINE_CONTRAST / 2, 3 * noise):
            return None
        around = np.arange(max(0, best - 1), min(2 * reach, best + 1) + 1)
        excess = np.clip(profile[piece, around] - paper_level, 0, None) + 1e-6
        return float(positions[piece, best]), float(np.average(around, weights=excess)) + peak - reach, contrast

    def walk(start: int) -> tuple[list, list]:
        """The line's centre in each piece, followed both ways from `start`."""
        centres, weights = [], []
        for direction in (-1, 1):
            expected = reach
            piece = start if direction == -1 else start + 1
            while 0 <= piece < SEGMENTS:
                if counts[piece].sum() >= 4 * (2 * reach + 1) // 3:
                    seen = found(piece, expected)
                    if seen is not None:
                        centres.append(seen[:2])
                        weights.append(seen[2])
                        expected = int(round(seen[1] - peak + reach))
                piece += direction
        return centres, weights

    # From the piece where the line is darkest; where that is a stroke lying on the line (it can lead the walk
    # astray), again from a piece of typical darkness.
    darkness = profile[crossed, reach]
    typical = crossed[np.argsort(darkness)[len(crossed) // 2]]
    for start in dict.fromkeys((int(crossed[np.argmax(darkness)]), int(typical))):
        centres, weights = walk(start)
        if len(centres) >= max(3, MIN_SPAN * len(crossed)):
            break
    else:
        return None
    u, r = np.array(centres).T
    degree = 2 if len(centres) >= 6 else 1
    fit = np.polyfit(u, r, degree, w=np.sqrt(weights))
    residual = np.abs(np.polyval(fit, u) - r)
    keep = residual <= max(1.5, 2.5 * float(np.median(residual)))
    if keep.sum() >= 3:
        fit = np.polyfit(u[keep], r[keep], degree if keep.sum() >= 6 else 1, w=np.sqrt(np.array(weights)[keep]))
    if float(np.median(np.abs(np.polyval(fit, u) - r))) > MAX_LINE_WOBBLE or np.median(weights) < MIN_LINE_CONTRAST:
        return None  # printed lines are straight or gently bent, and as dark all along; strokes are neither
    level = lift[peak]
    span = 1
    while peak - span >= 0 and peak + span < len(lift) and max(lift[peak - span], lift[peak + span]) > level / 2:
        span += 1
    # Back to working pixels: points along the fitted curve, then the centre row at every column.
    samples = np.linspace(along.min() - 5, along.max() + 5, 64)
    rows_small = np.polyval(fit, samples) + offset0
    x_small = samples * np.cos(theta) - rows_small * np.sin(theta)
    y_small = samples * np.sin(theta) + rows_small * np.cos(theta)
    order = np.argsort(x_small)
    columns = np.arange(width, dtype=np.float32)
    centre = np.interp((columns + 0.5) * factor - 0.5, x_small[order], y_small[order])
    return _Line(((centre + 0.5) / factor - 0.5).astype(np.float32), max(1.0, span / factor))


def _running_low(values: np.ndarray, block: int, span: tuple[int, int]) -> np.ndarray:
    """The 30th percentile of each row of `values` in blocks of `block` along it, interpolated between block centres,
    read within columns [start, end) of `span` and carried on from its ends to the rest of the row."""
    rows, length = values.shape
    start, end = span
    count = -(-(end - start) // block)
    inside = values[:, start:end]
    padded = np.pad(inside, ((0, 0), (0, count * block - inside.shape[1])), mode="edge").reshape(rows, count, block)
    levels = np.percentile(padded, 30, axis=2)
    centres = start + (np.arange(count) + 0.5) * block
    return np.stack([np.interp(np.arange(length), centres, row) for row in levels])


def _erase(ink: np.ndarray, lines: list[_Line], surface: np.ndarray) -> None:
    """Remove each line's own darkness from `ink` (in place), keeping the ink of strokes that cross it.

    Along a line, the line's darkness is a running low percentile of each row
    across it (its own profile: dark at its centre, paper a few rows away, so
    a stroke running beside it keeps its ink): strokes that cross are short,
    so they do not move it. It is read on the `surface` only: off the paper
    there is no ink, and counting it would leave the line's last stretch
    before the paper's edge as a stub of ink. Darkness combines multiplicatively
    (1 - total = (1 - line)(1 - stroke)),
    so dividing the line out leaves a crossing stroke's ink. Where the line was
    darker than the stroke, nothing is left of the stroke inside the band; it
    is bridged from the ink just above and below the band.
    """
    height, width = ink.shape
    columns = np.arange(width)
    for line in lines:
        reach = int(np.ceil(line.half_width + 2.0))
        offsets = np.arange(-reach, reach + 1)[:, None]
        centre = np.round(line.centre).astype(np.int64)[None, :]
        rows = centre + offsets
        valid = (rows >= 0) & (rows < height)
        rows_c = np.clip(rows, 0, height - 1)
        band = np.where(valid, ink[rows_c, columns], 0)
        on_paper = np.flatnonzero(surface[rows_c[reach], columns])
        if not on_paper.size:
            continue
        span = (int(on_paper[0]), int(on_paper[-1]) + 1)
        local = _running_low(band, max(15, width // 12), span)
        wide = _running_low(band, max(45, width // 3), span)
        profile = np.clip(np.minimum(local, LINE_SWAY * wide), 0, 0.95)  # the line's darkness row by row across it
        # a row is as dark as its neighbours' darkest: the fitted centre may be a pixel off the line
        padded = np.pad(profile, ((1, 1), (0, 0)))
        profile = np.maximum(profile, np.maximum(padded[:-2], padded[2:]))
        line_level = profile.max(0)
        stroke = 1 - (1 - np.clip(band, None, 1)) / (1 - profile)
        stroke = np.where(stroke > LINE_RESIDUE * line_level, stroke, 0)
        above = ink[np.clip(centre[0] - reach - 2, 0, height - 1), columns]
        below = ink[np.clip(centre[0] + reach + 2, 0, height - 1), columns]
        bridge = np.minimum(above, below)
        crossing = bridge > CROSSING_INK
        stroke = np.where(crossing[None, :], np.maximum(stroke, bridge[None, :]), stroke)
        ink[rows_c[valid], np.broadcast_to(columns, rows.shape)[valid]] = stroke[valid]


# 2. Ink ----------------------------------------------------------------------------------


def _border(values: np.ndarray) -> np.ndarray:
    width = max(1, min(values.shape) // 50)
    return np.concatenate(
        [values[:width].ravel(), values[-width:].ravel(), values[:, :width].ravel(), values[:, -width:].ravel()]
    )


def ink_map(luminance: np.ndarray, alpha: np.ndarray | None) -> tuple[np.ndarray, str]:
    """Where the ink is (1 = ink, 0 = background) and how it was found."""
    if alpha is not None and alpha.min() < 0.9:
        if np.mean(_border(alpha) < 0.5) >= 0.5:  # the background is transparent
            opaque = alpha > 0.5
            paper_inside = opaque.mean() > 0.3 and np.ptp(np.percentile(luminance[opaque], [5, 95])) > 0.3
            if not paper_inside:
                return alpha.astype(np.float32), "alpha"
            # A cut-out of paper with ink on it: fill the transparent surround with paper colour.
            luminance = np.where(opaque, luminance, np.median(luminance[opaque]))
        else:  # opaque background with transparent holes: show them as white paper
            luminance = luminance * alpha + (1.0 - alpha)
    return _ink_from_luminance(luminance)[:2]


def _ink_from_luminance(
    luminance: np.ndarray, surface: np.ndarray | None = None, photo: bool = False
) -> tuple[np.ndarray, str, bool]:
    """Ink against the paper's background, how it was found, and whether a shadow lies over part of the paper;
    with a `surface`, read only inside it (0 outside).

    `photo`: the picture is large enough to be a photograph, where shadows fall
    on the paper (thumbnails and small scans are left to the lighting fit).
    """
    smooth = _smoothed(luminance)
    inside = smooth[surface] if surface is not None else smooth
    low, high = float(inside.min()), float(inside.max())
    if high - low < MIN_CONTRAST:
        raise NoDigitFoundError("The image is blank or nearly uniform: no digit was found. Draw or photograph a digit.")
    # Polarity from the paper itself: its edge when the picture is all paper, else its typical brightness.
    background_level = float(np.median(_border(smooth) if surface is None else inside))
    dark_ink = background_level - low > high - background_level
    if photo and surface is None and not dark_ink:
        # A shadow over the page's edge darkens the edge; chalk on a board is thin, lit paper is not.
        dark_ink = float(np.mean(smooth > (background_level + high) / 2)) >= MIN_LIT_PAPER
    fitted = _background(luminance, dark_ink, surface)
    background = _under_shadows(luminance, fitted, surface) if photo and dark_ink else fitted
    # Signed on purpose: the noise level is read from both sides of the background.
    if dark_ink:  # relative darkness, which cancels uneven lighting and paper tone
        ink = (background - luminance) / np.maximum(background, 0.05)
        source = "dark ink on light background"
    else:
        ink = (luminance - background) / np.maximum(1.0 - background, 0.05)
        source = "light ink on dark background"
    if surface is not None:
        ink = np.where(surface, ink, 0.0)
    return ink.astype(np.float32), source, background is not fitted


DRAWN_SHARE = 0.5  # a picture more than this much pure black or pure white was drawn, not photographed
MIN_PHOTO_SIDE = 256  # pictures at least this long (original pixels) may be photos: paper on a desk, shadows
SHADOW_DEPTH = 0.93  # paper darker than this share of the fitted lighting, over a region, is in a shadow
SHADOW_SIDE = 256  # shadows are mapped at this size: they are large and soft
SHADOW_REACH = 15  # pixels at SHADOW_SIDE: wider than strokes there, narrower than a shadow
SHADOW_NARROW = 9  # ... and this narrower one follows a finger's shadow, ...
STROKE_NOT_SHADOW = 0.65  # ... except where it is this much darker than the wider one: a thick stroke
SHADOW_CORE = 31  # a shadow holds a disc this wide (pixels at SHADOW_SIDE); strokes, even thick ones, do not
MIN_SHADOW = 0.08  # share of the picture a shadow covers at least
MAX_SHADOW_DEPTH = 0.65  # a shadow on paper takes away at most this share of the light; ink takes more
LIT_ROUNDS = 3  # the lit paper's level is refitted this many times to the paper above the last fit ...
LIT_STEP = 4  # ... sampled every this many pixels (at SHADOW_SIDE)
MIN_LIT_PAPER = 0.25  # a photo this much brighter than its edge is paper with a shadow over its edge, not a dark board


def _under_shadows(luminance: np.ndarray, background: np.ndarray, surface: np.ndarray | None) -> np.ndarray:
    """The background to use when a shadow (or a reflection) lies over part of the paper, else `background`.

    The quadratic lighting fit cannot follow a shadow's edge. A grey closing
    (the brightest value nearby, then the darkest) removes strokes narrower
    than its reach and keeps the paper's own brightness, shadow included. It
    replaces the fit only where the two disagree over a large region, so a
    picture without shadows keeps the fit exactly. It is nowhere darker than
    the deepest shadow paper takes: a stroke too thick for the closings, where
    it meets a shadow, is taken for part of it, and is ink.
    """
    height, width = luminance.shape
    factor, size = _reduced_size(height, width, SHADOW_SIDE)
    small = cv2.resize(luminance, size, interpolation=cv2.INTER_AREA)
    fitted = cv2.resize(background, size, interpolation=cv2.INTER_AREA)
    inside = None
    if surface is not None:
        inside = cv2.resize(surface.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
        small = np.where(inside, small, fitted)
    local = _closed(small, SHADOW_REACH)
    ratio = local / np.maximum(fitted, 0.02)
    # Darker than the lit paper: when a shadow covers much of the page, the fit follows it and only this sees it.
    depth = local / np.maximum(np.maximum(fitted, _lit_level(local, fitted, inside)), 0.02)
    shadowed, lit = depth < SHADOW_DEPTH, ratio > 2 - SHADOW_DEPTH
    if inside is not None:  # off the paper the lit level is an extrapolation, and no shadow is looked for
        shadowed &= inside
    shadowed, lit = shadowed.astype(np.uint8), lit.astype(np.uint8)
    if np.mean(shadowed | lit) < MIN_SHADOW:
        return background
    core = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (SHADOW_CORE, SHADOW_CORE))
    # What casts a shadow (a hand, an arm, a phone) reaches in from outside the picture or the paper, so a
    # shadow meets the frame or the paper's edge; a thick stroke, far inside, does not. A reflection lies anywhere.
    edge = np.ones(shadowed.shape, dtype=np.uint8) if inside is None else inside.astype(np.uint8)
    edge = cv2.erode(edge, np.ones((5, 5), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0) == 0
    cast = (cv2.morphologyEx(shadowed, cv2.MORPH_OPEN, core) > 0) & edge
    if not cast.any() and not cv2.erode(lit, core).any():  # only strokes depart from the fit: no shadow
        return background
    if shadowed.any() and float(np.median(depth[shadowed > 0])) < 1 - MAX_SHADOW_DEPTH:
        return background  # far darker than shadows on paper get: that is ink (a large, blurred digit)
    # A narrower closing follows the edges of narrow shadows (a finger's) that the wider one takes for ink;
    # where it is far darker than the wider one, it has followed a thick stroke instead, which is ink.
    closer = _closed(small, SHADOW_NARROW)
    local = np.where(closer >= STROKE_NOT_SHADOW * local, closer, local)
    local = np.maximum(local, (1 - MAX_SHADOW_DEPTH) * fitted)
    return cv2.resize(local, (width, height), interpolation=cv2.INTER_LINEAR).astype(np.float32)


def _lit_level(local: np.ndarray, fitted: np.ndarray, inside: np.ndarray | None) -> np.ndarray:
    """The lit paper's brightness: a quadratic refitted, a few times, to the part of `local` (the paper, strokes
    closed away) at or above the last fit, starting from the lighting `fitted` to all of the paper."""
    height, width = local.shape
    step = LIT_STEP  # light varies slowly: a sparse grid of samples is enough
    terms = _grid_terms(height, width, step)
    values, level = local[::step, ::step].ravel(), fitted[::step, ::step].ravel()
    on_paper = inside[::step, ::step].ravel() if inside is not None else np.ones(values.shape, dtype=bool)
    coefficients = None
    for _ in range(LIT_ROUNDS):
        above = (values >= level) & on_paper
        if above.sum() < 2 * terms.shape[1]:
            break
        coefficients = np.linalg.lstsq(terms[above], values[above], rcond=None)[0]
        level = terms @ coefficients
    if coefficients is None:
        return fitted
    return (_grid_terms(height, width, 1) @ coefficients).reshape(height, width).astype(np.float32)


def _closed(values: np.ndarray, side: int, soften: float = 1.5) -> np.ndarray:
    """A grey closing by a disc `side` pixels wide (the brightest value nearby, then the darkest), softened by a
    Gaussian blur of `soften` pixels: dark strokes narrower than the disc are gone, wider dark regions stay.
    `values`: luminance, or colour channels closed each on its own."""
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
    return cv2.GaussianBlur(cv2.morphologyEx(values, cv2.MORPH_CLOSE, disc), (0, 0), soften)


def _quadratic_terms(ys: np.ndarray, xs: np.ndarray) -> list[np.ndarray]:
    return list(np.broadcast_arrays(np.ones_like(xs * ys), xs, ys, xs * xs, xs * ys, ys * ys))


@lru_cache(maxsize=32)
def _grid_terms(height: int, width: int, step: int) -> np.ndarray:
    """The six quadratic terms at every sample of the fitting grid, one row per sample (cached: most inputs share a few sizes)."""
    ys = (np.arange(0, height, step, dtype=np.float32) / height - 0.5)[:, None]
    xs = (np.arange(0, width, step, dtype=np.float32) / width - 0.5)[None, :]
    terms = np.stack([t.ravel() for t in _quadratic_terms(ys, xs)], axis=1)
    terms.flags.writeable = False
    return terms


def _background(luminance: np.ndarray, dark_ink: bool, surface: np.ndarray | None = None) -> np.ndarray:
    """The paper's brightness at every pixel: a smooth quadratic surface fitted to the non-ink pixels.

    Lighting gradients and vignetting are smooth, so a quadratic captures them
    whatever the stroke width; ink pixels are excluded by refitting a few times
    on the pixels that lie on the paper's side of the current estimate.
    """
    height, width = luminance.shape
    step = max(1, -(-max(height, width) // 32))  # lighting varies slowly: fit on a grid of at most 32x32
    sample = luminance[::step, ::step]
    terms = _grid_terms(height, width, step)
    values = sample.ravel()
    if surface is not None:  # fit the paper only, never the desk around it
        on_paper = surface[::step, ::step].ravel()
        terms, values = terms[on_paper], values[on_paper]
    coefficients = np.array([np.median(_border(sample)), 0, 0, 0, 0, 0], dtype=np.float32)
    extreme = values.min() if dark_ink else values.max()
    sign = 1.0 if dark_ink else -1.0  # ink lies on this side of the paper: darker (+) or brighter (-)
    for _ in range(3):
        fitted = terms @ coefficients
        paper = sign * (values - fitted) > -0.5 * sign * (fitted - extreme)
        if paper.sum() < 2 * len(coefficients):
            break
        chosen = terms[paper]
        normal = chosen.T @ chosen + 1e-6 * np.eye(len(coefficients), dtype=np.float32)  # least squares, 6 unknowns
        coefficients = np.linalg.solve(normal, chosen.T @ values[paper]).astype(np.float32)
    full_ys = (np.arange(height, dtype=np.float32) / height - 0.5)[:, None]
    full_xs = (np.arange(width, dtype=np.float32) / width - 0.5)[None, :]
    c = coefficients
    return (c[0] + c[1] * full_xs + c[2] * full_ys + c[3] * full_xs**2 + c[4] * full_xs * full_ys + c[5] * full_ys**2).astype(np.float32)


def locate_digits(
    ink: np.ndarray, surface: np.ndarray | None = None, rulings: np.ndarray | None = None, shadowed: bool = False
) -> list[DigitRegion]:
    """The digits in an ink map, left to right along one line of writing: each one's pixels, box and stroke level.
    `shadowed`: a shadow lies over part of the paper (what the lighting could not cancel is faint).

    Refuses (NoDigitFoundError, with a message for a person): faint or blank
    pictures, noise and texture, ink covering most of the picture, what is
    left of printed lines once they are removed, specks; and (TooMuchWritingError)
    several lines of writing, more than MAX_DIGITS digits, or a page so full of
    writing that nothing stands out.
    """
    smooth = _smoothed(ink)
    peak = float(smooth.max())
    detail = ink - smooth  # pixel-to-pixel noise; smooth strokes leave almost nothing here
    on_a_surface = surface is not None and not surface.all()  # paper found on a desk, not a picture all paper
    on_paper = detail[surface] if on_a_surface else detail
    noise = 1.4826 * float(np.median(np.abs(on_paper - np.median(on_paper))))
    if peak < MIN_INK:
        raise NoDigitFoundError("The strokes are too faint: no digit was found.")
    if peak < MIN_SIGNAL_TO_NOISE * noise:
        raise NoDigitFoundError("The image looks like noise or texture: no digit stands out from the background.")
    strokes = smooth > max(INK_THRESHOLD * peak, 4 * noise)
    if np.mean(smooth > 0.5 * peak) > MAX_INK_COVERAGE:
        raise NoDigitFoundError("Ink covers most of the image: no single digit stands out. Crop to one digit on a plain background.")
    labels, count = ndimage.label(strokes, structure=np.ones((3, 3)))
    lined = rulings is not None and bool(rulings.any())
    residue = np.zeros(count, dtype=bool)
    if lined:
        # What is left of a printed line lies along it, or is its thin end where the frame cuts it; a digit
        # that crosses lines mostly does not. A stroke that a darker line cut in two is one stroke again.
        band = _dilate_mask(rulings > LINE_TRACE, 1)
        on_lines = np.bincount(labels.ravel(), weights=band.ravel(), minlength=count + 1)[1:]
        sizes = np.maximum(np.bincount(labels.ravel(), minlength=count + 1)[1:], 1)
        residue = on_lines / sizes >= MAX_ON_LINES
        labels, count, residue = _joined_across_lines(labels, residue, strokes, band)
    masses = np.bincount(labels[strokes], weights=smooth[strokes], minlength=count + 1)[1:]  # ink per component
    boxes = [_box_of(box) for box in ndimage.find_objects(labels)]
    if lined or on_a_surface:
        stubs = np.array([_line_end(box, ink.shape) for box in boxes])
        masses = np.where(residue | stubs, 0.0, masses)
        if not masses.any():
            found = "the paper's printed lines were" if lined else "the edge of the paper was"
            raise NoDigitFoundError(f"Only {found} found: no digit. Write or draw a digit and try again.")
    masses = np.where(_lines(labels, boxes, masses), 0.0, masses)
    main = int(np.argmax(masses))
    if np.count_nonzero(masses >= COMPARABLE * masses[main]) > MAX_COMPARABLE:
        raise TooMuchWritingError(
            "The picture holds a lot of writing: no single number stands out. Crop it to the digits you want read."
        )
    parts = [index for index in range(count) if masses[index] > 0 and masses[index] >= KEEP_COMPONENT * masses[main]]
    kept = np.zeros(count + 1, dtype=bool)
    kept[[index + 1 for index in parts]] = True
    tall = [index for index in parts if masses[index] >= COMPARABLE * masses[main]]
    pieces = _digit_pieces(labels, parts, boxes, tall)
    faint = None  # the pixels of marks too faint to be writing (off the line, or under a shadow), when any were dropped
    owned = None  # the pixels each digit owns, when they are more than its piece (found on cores, with a halo)
    if any(piece.width > SPLIT_WIDTH * piece.height for piece in pieces):  # digits merged by their blurred edges?
        on_cores, owned_on_cores = _core_pieces(kept[labels], smooth, _stroke_level(main, labels, boxes, smooth))
        heights = [piece.height for piece in on_cores]
        if len(on_cores) > len(pieces) and min(heights) >= FULL_HEIGHT * float(np.median(heights)):
            pieces, owned = on_cores, owned_on_cores
    if len(pieces) > 1:  # a stray mark or what is left of a printed line, beside real digits, is not one
        inks = [float(smooth[mask].sum()) for mask in owned] if owned else [_ink_of(piece, smooth) for piece in pieces]
        heavy = [amount >= COMPARABLE * max(inks) for amount in inks]
        writing = [piece for piece, is_heavy in zip(pieces, heavy) if is_heavy]
        height = float(np.median([piece.height for piece in writing]))
        chosen = [index for index, is_heavy in enumerate(heavy) if is_heavy or _light_digit(pieces[index], writing, height)]
        pieces = [pieces[index] for index in chosen]
        owned = [owned[index] for index in chosen] if owned else None
        if shadowed or not _one_line(pieces):
            # The edge of a shadow or a smudge off the line is far fainter than the digits; another line of writing
            # is not. Under a shadow, what the lighting could not cancel (a finger's shadow) lies on the line too.
            own = owned or [_full_mask(piece, ink.shape) for piece in pieces]
            levels = [float(np.percentile(smooth[mask], 90)) for mask in own]
            chosen = [index for index, level in enumerate(levels) if level >= FAINT_MARK * max(levels)]
            if len(chosen) < len(own):
                faint = np.logical_or.reduce([mask for index, mask in enumerate(own) if index not in chosen])
            pieces = [pieces[index] for index in chosen]
            owned = [owned[index] for index in chosen] if owned else None
            if not _one_line(pieces):
                raise TooMuchWritingError("The picture holds several lines of writing. Crop it to one line of digits.")
        if len(pieces) > MAX_DIGITS:
            raise TooMuchWritingError(f"The picture holds more than {MAX_DIGITS} digits. Crop it to a shorter number.")
    if len(pieces) == 1:
        # One digit: the main stroke and every stroke near it (a detached bar, a serif, a pencil gap), as MNIST's
        # writers drew it.
        if faint is not None:  # the main stroke may have been a faint mark off the line: the digit's own heaviest leads
            strokes_in = np.unique(labels[owned[0] if owned else _full_mask(pieces[0], ink.shape)]) - 1
            main = int(strokes_in[np.argmax(masses[strokes_in])])
        top, left, bottom, right = boxes[main]
        reach = 0.6 * max(bottom - top, right - left)
        keep = np.zeros(count + 1, dtype=bool)
        near = [index for index in parts if _near(boxes[index], boxes[main], reach)]
        if shadowed:  # what the shadow of a finger left beside the digit is far fainter than its strokes
            level = _stroke_level(main, labels, boxes, smooth)
            near = [index for index in near if _stroke_level(index, labels, boxes, smooth) >= FAINT_MARK * level]
        keep[[index + 1 for index in near]] = True
        masks = [keep[labels] if faint is None else keep[labels] & ~faint]
    else:
        masks = owned or [_full_mask(piece, ink.shape) for piece in pieces]
    regions = [_region(mask, smooth) for mask in masks]
    if max(max(r.bbox[2] - r.bbox[0], r.bbox[3] - r.bbox[1]) for r in regions) < 0.025 * max(ink.shape):
        raise NoDigitFoundError("Only specks were found, too small to be a digit. Draw the digit larger.")
    main_region = max(regions, key=lambda region: float(smooth[region.mask].sum()))
    if main_region.stroke_level < max(MIN_INK, MIN_STROKE_TO_NOISE * noise):  # grain that merely crosses the threshold
        raise NoDigitFoundError("The image looks like noise or texture: no digit stands out from the background.")
    return regions


def _stroke_level(index: int, labels: np.ndarray, boxes: list, smooth: np.ndarray) -> float:
    """A typical stroke value (90th percentile) of stroke component `index` (labelled index + 1)."""
    top, left, bottom, right = boxes[index]
    return float(np.percentile(smooth[top:bottom, left:right][labels[top:bottom, left:right] == index + 1], 90))


def _smoothed(values: np.ndarray) -> np.ndarray:
    """A Gaussian blur of sigma 1 px: SciPy's `gaussian_filter(values, 1.0)` (9 taps, mirrored edges), 3x faster
    (within 2e-7)."""
    return cv2.GaussianBlur(values.astype(np.float32, copy=False), (9, 9), 1.0, sigmaY=1.0, borderType=cv2.BORDER_REFLECT)


def _light_digit(piece: "_Piece", writing: list["_Piece"], height: float) -> bool:
    """A 1 has a fraction of an 8's ink, yet it is as tall as the digits of its line (`height`) and stands on that line."""
    return piece.height >= FULL_HEIGHT * height and any(_rows_shared(piece, other) >= FULL_HEIGHT * piece.height for other in writing)


def _near(box: tuple[int, int, int, int], other: tuple[int, int, int, int], reach: float) -> bool:
    return box[0] < other[2] + reach and box[2] > other[0] - reach and box[1] < other[3] + reach and box[3] > other[1] - reach


def _full_mask(piece: "_Piece", shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    top, left, bottom, right = piece.box
    mask[top:bottom, left:right] = piece.mask
    return mask


def _ink_of(piece: "_Piece", smooth: np.ndarray) -> float:
    top, left, bottom, right = piece.box
    return float(smooth[top:bottom, left:right][piece.mask].sum())


def _core_pieces(strokes: np.ndarray, smooth: np.ndarray, level: float) -> tuple[list["_Piece"], list[np.ndarray]]:
    """The digits in the stroke mask, found on the strokes' cores, then every stroke pixel given to the nearest.

    The stroke mask is generous (faint edges of blurry digits count), so two
    digits written close together often share a blurred edge; their cores,
    above half the stroke level, do not.
    """
    rows, cols = np.flatnonzero(strokes.any(1)), np.flatnonzero(strokes.any(0))
    window = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    core = strokes[window] & (smooth[window] > CORE * level)
    labels, count = ndimage.label(core, structure=np.ones((3, 3)))
    masses = np.bincount(labels.ravel(), weights=smooth[window].ravel(), minlength=count + 1)[1:]
    boxes = [_box_of(box) for box in ndimage.find_objects(labels)]
    parts = [index for index in range(count) if masses[index] >= KEEP_COMPONENT * masses.max()]
    pieces = _digit_pieces(labels, parts, boxes, [index for index in parts if masses[index] >= COMPARABLE * masses.max()])
    if len(pieces) == 1:
        return pieces, []
    owner = np.zeros(core.shape, dtype=np.int32)
    for number, piece in enumerate(pieces, start=1):
        top, left, bottom, right = piece.box
        owner[top:bottom, left:right][piece.mask] = number
    distance, (near_rows, near_cols) = ndimage.distance_transform_edt(owner == 0, return_indices=True)
    nearest = owner[near_rows, near_cols]
    halo = HALO * float(np.median([piece.height for piece in pieces]))
    masks = []
    for number in range(1, len(pieces) + 1):
        mask = np.zeros(strokes.shape, dtype=bool)
        mask[window] = strokes[window] & (nearest == number) & (distance <= halo)
        masks.append(mask)
    return pieces, masks


def _region(mask: np.ndarray, smooth: np.ndarray) -> DigitRegion:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    bbox = (int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1)
    return DigitRegion(mask, bbox, float(np.percentile(smooth[mask], 90)))


CORE = 0.5  # digits are told apart on their cores: stroke pixels above this share of the main stroke's level
HALO = 0.1  # ... and each digit then takes the stroke pixels this close to its core (share of the digit height)
MAX_DIGITS = 12  # a longer number, or a line of text, is more than this reader is for
STACKED = 0.5  # pieces sharing this share of the narrower one's columns are parts of one digit (a 5's bar, a 4 in two strokes)
STACK_GAP = 0.35  # ... when the gap between them is under this share of the line's digit height
MIN_DIGIT_HEIGHT = 0.5  # a piece shorter than this share of the digit height joins its nearest digit, or is a speck
JOIN_REACH = 0.3  # ... when it is within this share of the digit height; further away it is dropped
TOUCHING = 0.04  # pieces this close (share of the digit height) are one digit broken by a pencil gap
ONE_DIGIT_WIDTH = 1.3  # parts of one digit together are at most this many digit heights wide (MNIST: 99 % of digits)
SPLIT_WIDTH = 1.0  # a piece wider than this many digit heights may be touching digits ...
THIN_JOIN = 1.6  # ... and is cut where a column holds at most this many stroke widths of ink,
MAX_JOIN = 0.15  # ... in a stretch of such columns at most this share of the digit height wide (a 4's bar is longer),
TWO_WIDE = 1.3  # ... unless the piece is this many digit heights wide (MNIST: 1 % of digits are)
SURELY_TWO = 1.45  # a piece this many digit heights wide is two, beside other digits however they touch (MNIST: 0.7 % of digits are)
MIN_SIDE = 0.12  # ... leaving on each side at least this share of the digit height in width ...
MIN_SIDE_HEIGHT = 0.75  # ... and this share in height; the join is not in the top or bottom JOIN_BAND of the piece
JOIN_BAND = 0.2  # (where a 0, 4 or 6 left open at the top or bottom has its single stroke)
FULL_HEIGHT = 0.75  # digits on two lines are both at least this share of the digit height
ONE_LINE = 0.3  # neighbouring digits on one line share at least this share of the shorter one's rows
FAINT_MARK = 0.4  # off the line (or under a shadow), a piece whose strokes are under this share as dark as the darkest piece's is no writing


@dataclass
class _Piece:
    mask: np.ndarray  # bool, in the piece's box
    box: tuple[int, int, int, int]  # top, left, bottom, right in the ink map

    @property
    def height(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def width(self) -> int:
        return self.box[3] - self.box[1]

    def joined(self, other: "_Piece") -> "_Piece":
        box = _box_around(self.box, other.box)
        mask = np.zeros((box[2] - box[0], box[3] - box[1]), dtype=bool)
        for piece in (self, other):
            top, left = piece.box[0] - box[0], piece.box[1] - box[1]
            mask[top : top + piece.height, left : left + piece.width] |= piece.mask
        return _Piece(mask, box)


def _digit_pieces(labels: np.ndarray, parts: list[int], boxes: list, tall: list[int]) -> list[_Piece]:
    """The strokes in `parts` (component indices) grouped into digits, left to right.

    `tall` are the strokes that set the digit height (those with ink comparable to the main one).
    """
    height = float(max(boxes[index][2] - boxes[index][0] for index in tall))
    pieces = []
    for index in parts:
        top, left, bottom, right = boxes[index]
        pieces.append(_Piece(labels[top:bottom, left:right] == index + 1, boxes[index]))
    pieces = _merge(pieces, lambda a, b: _stacked(a, b, height))
    tallest = max(piece.height for piece in pieces)
    height = float(np.median([piece.height for piece in pieces if piece.height >= MIN_DIGIT_HEIGHT * tallest]))
    pieces = _merge(pieces, lambda a, b: _one_width(a, b, height) and _gap(a, b) <= TOUCHING * height)
    pieces = _join_small(pieces, height)
    pieces = [part for piece in pieces for part in _split_touching(piece, height, len(pieces) > 1)]
    pieces.sort(key=lambda piece: (piece.box[1] + piece.box[3]) / 2)
    index = 0
    while index < len(pieces) - 1:
        a, b = pieces[index], pieces[index + 1]
        if _same_line(a, b):
            index += 1
        elif min(a.height, b.height) >= FULL_HEIGHT * height:
            index += 1  # two lines, unless one of them is only a stray mark (see locate_digits)
        else:  # a part above or below its neighbour (a 5's bar drawn off to the side) is part of it
            pieces[index : index + 2] = [a.joined(b)]
    return pieces


def _same_line(a: _Piece, b: _Piece) -> bool:
    return _rows_shared(a, b) >= ONE_LINE * min(a.height, b.height)


def _one_line(pieces: list[_Piece]) -> bool:
    """Neighbours (left to right) share rows: the pieces stand on one line of writing."""
    return all(_same_line(a, b) for a, b in zip(pieces, pieces[1:]))


def _rows_shared(a: _Piece, b: _Piece) -> int:
    return min(a.box[2], b.box[2]) - max(a.box[0], b.box[0])


def _merge(pieces: list[_Piece], belong) -> list[_Piece]:
    """Join pieces pairwise while `belong(a, b)` holds for some pair."""
    pieces = list(pieces)
    merged = True
    while merged:
        merged = False
        for i in range(len(pieces)):
            for j in range(i + 1, len(pieces)):
                if belong(pieces[i], pieces[j]):
                    pieces[i] = pieces[i].joined(pieces.pop(j))
                    merged = True
                    break
            if merged:
                break
    return pieces


def _stacked(a: _Piece, b: _Piece, height: float) -> bool:
    shared = min(a.box[3], b.box[3]) - max(a.box[1], b.box[1])
    vertical_gap = max(a.box[0], b.box[0]) - min(a.box[2], b.box[2])
    return shared >= STACKED * min(a.width, b.width) and vertical_gap < STACK_GAP * height and _one_width(a, b, height)


def _one_width(a: _Piece, b: _Piece, height: float) -> bool:
    """Whether the two pieces together are no wider than one digit."""
    width = max(a.box[3], b.box[3]) - min(a.box[1], b.box[1])
    return width <= ONE_DIGIT_WIDTH * max(height, max(a.box[2], b.box[2]) - min(a.box[0], b.box[0]))


def _gap(a: _Piece, b: _Piece) -> float:
    """Distance between the two pieces' nearest pixels (boxes first: most pairs are far apart)."""
    dy = max(a.box[0], b.box[0]) - min(a.box[2], b.box[2])
    dx = max(a.box[1], b.box[1]) - min(a.box[3], b.box[3])
    if max(dx, dy) > 4:
        return float(np.hypot(max(dx, 0), max(dy, 0)))
    both = a.joined(b)
    only_a = np.zeros_like(both.mask)
    top, left = a.box[0] - both.box[0], a.box[1] - both.box[1]
    only_a[top : top + a.height, left : left + a.width] = a.mask
    distance = ndimage.distance_transform_edt(~only_a)
    only_b = both.mask & ~only_a
    return float(distance[only_b].min()) - 1 if only_b.any() else 0.0


def _join_small(pieces: list[_Piece], height: float) -> list[_Piece]:
    """Short pieces (a serif, a detached bar, a broken-off end) join the nearest digit; lone ones are specks."""
    digits = [piece for piece in pieces if piece.height >= MIN_DIGIT_HEIGHT * height]
    if not digits:
        return [max(pieces, key=lambda piece: piece.mask.sum())]
    for piece in pieces:
        if piece.height >= MIN_DIGIT_HEIGHT * height:
            continue
        gaps = [_box_gap(piece, digit) for digit in digits]
        nearest = int(np.argmin(gaps))
        if gaps[nearest] <= JOIN_REACH * height:
            digits[nearest] = digits[nearest].joined(piece)
    return digits


def _box_gap(a: _Piece, b: _Piece) -> float:
    dy = max(a.box[0], b.box[0]) - min(a.box[2], b.box[2])
    dx = max(a.box[1], b.box[1]) - min(a.box[3], b.box[3])
    return float(np.hypot(max(dx, 0), max(dy, 0)))


def _split_touching(piece: _Piece, height: float, among_others: bool) -> list[_Piece]:
    """Cut a piece as wide as two digits where a short stretch of columns crosses only a thin join.

    A digit seldom has such a place: a 4's bar is thin but long, a 0 or 8 has
    two strokes in every inner column, and a 7's bar leaves one side too short.
    Alone in the picture (not `among_others`), a piece is cut only when it is
    wider than SURELY_TWO digit heights: a lone wide 0, or a 4 drawn in two
    strokes, is one digit more often than a narrower piece is two, and two
    digits drawn touching get the model's second look (`cuts_in_two`).
    """
    if piece.width <= (SPLIT_WIDTH if among_others else SURELY_TWO) * height:
        return [piece]
    columns = piece.mask.sum(axis=0).astype(float)
    stroke = 2 * piece.mask.sum() / max(1, _perimeter(piece.mask))
    runs = np.count_nonzero(piece.mask[1:] & ~piece.mask[:-1], axis=0) + piece.mask[0]
    thin = (runs == 1) & (columns <= THIN_JOIN * stroke)  # one stroke crossing, and a thin one
    margin = max(1, round(MIN_SIDE * height))
    best = None
    for cut in range(margin, piece.width - margin):
        if not thin[cut] and columns[cut] > 0:
            continue
        if columns[cut] > 0 and not _mid_height(piece.mask[:, cut]):  # a loop open at the top or bottom, not a join
            continue
        start, end = cut, cut
        while start > 0 and thin[start - 1]:
            start -= 1
        while end < piece.width - 1 and thin[end + 1]:
            end += 1
        long_join = columns[cut] > 0 and end - start + 1 > MAX_JOIN * height  # an empty column is always a fair cut
        if long_join and piece.width <= TWO_WIDE * height:
            continue
        if min(_rows_spanned(piece.mask[:, :cut]), _rows_spanned(piece.mask[:, cut:])) < MIN_SIDE_HEIGHT * height:
            continue
        cost = (columns[cut], abs(cut - (start + end) / 2))
        if best is None or cost < best[0]:
            best = (cost, cut)
    path = None
    if best is not None:
        path = np.full(piece.height, best[1])
    elif among_others and piece.width > SURELY_TWO * height and piece.height >= FULL_HEIGHT * height:
        # Two digits pressed together (thick strokes overlapping): no column crosses a thin join, so cut
        # along the path from top to bottom that crosses the least ink, in the middle part of the piece.
        path = _cheapest_path(piece.mask, round(0.3 * piece.width), round(0.7 * piece.width))
    halves = _cut_along(piece, path) if path is not None else None
    if halves is None:
        return [piece]
    return [smaller for half in halves for smaller in _split_touching(half, height, among_others)]


def _cut_along(piece: _Piece, path: np.ndarray) -> tuple[_Piece, _Piece] | None:
    """`piece` cut along `path` (for each row, the first column of the right part): the left and right parts,
    each cropped to its ink; None when one of them is empty."""
    top, left = piece.box[0], piece.box[1]
    on_left = np.arange(piece.width)[None, :] < path[:, None]
    halves = []
    for mask in (piece.mask & on_left, piece.mask & ~on_left):
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        if rows.size == 0:
            return None
        part = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        box = (top + int(rows[0]), left + int(cols[0]), top + int(rows[-1]) + 1, left + int(cols[-1]) + 1)
        halves.append(_Piece(part, box))
    return halves[0], halves[1]


SECOND_LOOK_WIDTH = 0.6  # a digit of a number at least this wide (share of its height) may be two pressed together ...
LONE_WIDTH = 1.2  # ... and the only piece in a picture, this wide (3.8 % of MNIST's digits are), two written touching
CUT_CENTRES = (0.3, 0.4, 0.5, 0.6, 0.7)  # ... so it is also cut in two, near each of these shares of its width, ...
CUT_REACH = 0.12  # ... along the path that crosses the least ink within this share of the width either side, ...
MIN_HALF = 0.1  # ... each half keeping at least this share of its pixels; the model decides which reading stands (predict.py)


def cuts_in_two(
    mask: np.ndarray, bbox: tuple[int, int, int, int], alone: bool = False
) -> list[list[tuple[np.ndarray, tuple[int, int, int, int]]]]:
    """The ways to cut a wide digit's mask in two, each along the top-to-bottom path that crosses the least ink
    near one of CUT_CENTRES: [[(mask, bbox)] * 2] (left then right, in the ink map's coordinates), without
    repeats; none for a digit too narrow to hold two (`alone`, the only piece in the picture: narrower than
    LONE_WIDTH), or where no cut is fair.

    Two digits pressed together, such as a 1 leaning on a 6, join in a run of ink that `locate_digits`
    takes for one digit when the pair is no wider than one (a 1 is narrow). Only the model can tell, and
    the path of least ink across the whole middle of the pair often cuts through one of the digits instead
    of between them, so it is asked about several cuts.
    """
    top, left, bottom, right = bbox
    piece = _Piece(mask[top:bottom, left:right], bbox)
    if piece.width < (LONE_WIDTH if alone else SECOND_LOOK_WIDTH) * piece.height:
        return []
    cuts, paths = [], set()
    for centre in CUT_CENTRES:
        low, high = round((centre - CUT_REACH) * piece.width), round((centre + CUT_REACH) * piece.width)
        path = _cheapest_path(piece.mask, max(low, 1), min(high, piece.width - 1))
        if path is None or tuple(path) in paths:
            continue
        paths.add(tuple(path))
        halves = _cut_along(piece, path)
        if halves is not None and min(half.mask.sum() for half in halves) >= MIN_HALF * piece.mask.sum():
            cuts.append([(_full_mask(half, mask.shape), half.box) for half in halves])
    return cuts


def side_by_side_touch(first: tuple[int, int, int, int], second: tuple[int, int, int, int]) -> bool:
    """Two digits' boxes (top, left, bottom, right) touch or overlap from left to right: their ink may be one
    run that the scene shared out between them (`cuts_anew`)."""
    return second[1] <= first[3] and first[1] <= second[3]


def cuts_anew(
    first: tuple[np.ndarray, tuple[int, int, int, int]], second: tuple[np.ndarray, tuple[int, int, int, int]]
) -> list[list[tuple[np.ndarray, tuple[int, int, int, int]]]]:
    """Two neighbouring digits (mask, bbox) whose boxes touch side to side: the ways to cut their ink, taken
    together, in two anew (`cuts_in_two`); none when there is a gap between them. The scene may share the ink
    of two touching digits out wrongly: a 4 written in two strokes, its bar joined to the digit before it and
    its stem left alone, reads as that digit and a 1."""
    if not side_by_side_touch(first[1], second[1]):
        return []
    return cuts_in_two(first[0] | second[0], _box_around(first[1], second[1]))


def _box_around(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """The box (top, left, bottom, right) around two boxes."""
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


STEP_COST = 0.3  # a cut path pays this (in pixels of ink crossed) for each step sideways: it stays straight unless ink is in the way


def _cheapest_path(mask: np.ndarray, low: int, high: int) -> np.ndarray | None:
    """Column of a top-to-bottom path within columns [low, high) that crosses the least ink (one column sideways per row at most)."""
    if high - low < 2:
        return None
    ink = mask[:, low:high].astype(np.float64)
    cost = ink[0].copy()
    came_from = np.zeros(ink.shape, dtype=np.int8)
    for row in range(1, len(ink)):
        left = np.concatenate([[np.inf], cost[:-1]]) + STEP_COST
        right = np.concatenate([cost[1:], [np.inf]]) + STEP_COST
        options = np.stack([left, cost, right])
        choice = np.argmin(options, axis=0)
        cost = options[choice, np.arange(len(cost))] + ink[row]
        came_from[row] = choice.astype(np.int8) - 1  # -1: came from the column to the left
    path = np.empty(len(ink), dtype=np.int64)
    path[-1] = int(np.argmin(cost))
    for row in range(len(ink) - 1, 0, -1):
        path[row - 1] = path[row] + came_from[row, path[row]]
    return path + low


def _mid_height(column: np.ndarray) -> bool:
    rows = np.flatnonzero(column)
    centre = (rows[0] + rows[-1]) / 2 / len(column)
    return JOIN_BAND < centre < 1 - JOIN_BAND


def _rows_spanned(mask: np.ndarray) -> int:
    rows = np.flatnonzero(mask.any(1))
    return int(rows[-1] - rows[0] + 1) if rows.size else 0


def _perimeter(mask: np.ndarray) -> int:
    """Pixels of the mask with a 4-neighbour outside it."""
    padded = np.pad(mask, 1)
    inner = padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return int(np.count_nonzero(mask & ~inner))


def _joined_across_lines(
    labels: np.ndarray, residue: np.ndarray, strokes: np.ndarray, band: np.ndarray
) -> tuple[np.ndarray, int, np.ndarray]:
    """Strokes (`labels`, numbered from 1) that a removed printed line cut apart, numbered as one; what is left
    of the lines themselves (`residue`, per stroke) keeps its own number. -> labels, count, residue."""
    if not band.any():
        return labels, len(residue), residue
    inside = cv2.distanceTransform(band.astype(np.uint8), cv2.DIST_L2, 3)
    side = 2 * int(np.ceil(np.percentile(inside[band], 95))) + 5  # a little more than the lines are thick
    closed = cv2.morphologyEx(strokes.astype(np.uint8), cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side)))
    groups, group_count = ndimage.label(strokes | (band & (closed > 0)), structure=np.ones((3, 3)))
    group_of = np.zeros(len(residue) + 1, dtype=np.int64)
    group_of[labels[strokes]] = groups[strokes]  # a stroke lies in one group: every pixel writes the same number
    group_of = np.where(residue, group_count + 1 + np.arange(len(residue)), group_of[1:])
    numbers, renumbered = np.unique(group_of, return_inverse=True)
    mapping = np.concatenate([[0], renumbered + 1])
    joined_residue = np.zeros(len(numbers), dtype=bool)
    joined_residue[renumbered[residue]] = True
    return mapping[labels], len(numbers), joined_residue


def _dilate_mask(mask: np.ndarray, steps: int) -> np.ndarray:
    return cv2.dilate(mask.astype(np.uint8), np.ones((2 * steps + 1, 2 * steps + 1), np.uint8)) > 0


def _lines(labels: np.ndarray, boxes: list[tuple[int, int, int, int]], masses: np.ndarray) -> np.ndarray:
    """Which strokes are lines beside the writing, not digits: a printed line the rulings step missed, an
    underline. Each is straight and far longer than the other strokes that count as writing are tall (the
    median of their heights); a digit is not both (a 1 is straight, but as tall as its neighbours). Every
    stroke that would be kept is looked at, not only those that count as writing: a faint margin line the
    length of the page would otherwise set the height of the digits. With no other stroke to compare with,
    nothing is a line."""
    writing = np.flatnonzero(masses >= COMPARABLE * masses.max())
    heights = {index: boxes[index][2] - boxes[index][0] for index in writing}
    lines = np.zeros(len(masses), dtype=bool)
    for index in np.flatnonzero(masses >= KEEP_COMPONENT * masses.max()):
        others = [height for other, height in heights.items() if other != index]
        if not others:
            continue
        top, left, bottom, right = boxes[index]
        rows, cols = np.nonzero(labels[top:bottom, left:right] == index + 1)
        if len(rows) < 3:
            continue
        points = np.stack([rows, cols]).astype(np.float64)
        variances, axes = np.linalg.eigh(np.cov(points))
        along = axes[:, 1] @ points  # position along the stroke's main axis
        length, spread = float(along.max() - along.min() + 1), float(np.sqrt(max(variances[0], 0.0)))  # sd across it
        height = float(np.median(others))
        lines[index] = length >= LINE_LENGTH * height and spread <= LINE_SPREAD * height
    return lines


def _line_end(box: tuple[int, int, int, int], shape: tuple[int, int]) -> bool:
    """A thin stroke that the frame cuts: the end of a printed line, left where the rulings step stops, or a
    sliver of desk between the frame and a note that nearly touches it (too thin to be seen as desk)."""
    top, left, bottom, right = box
    touches = top == 0 or left == 0 or bottom == shape[0] or right == shape[1]
    return touches and min(bottom - top, right - left) <= LINE_END * max(bottom - top, right - left)


def _box_of(slices: tuple[slice, slice]) -> tuple[int, int, int, int]:
    return slices[0].start, slices[1].start, slices[0].stop, slices[1].stop


