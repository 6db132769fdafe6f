"""The notebooks' figures: one look for all of them (resolution, font sizes) and the plots more than one chapter draws.

Only the notebooks import this (matplotlib is imported here at module level). `setup()` is called once, in each
notebook's first code cell: figures are then 110 dpi (the inline default of 72 dpi made 7-pt labels unreadable)
with tick and cell labels of at least 9 pt.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.patches import Rectangle
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator, ScalarFormatter

from . import config
from .decode import open_image

DPI = 110
LABEL_POINTS = 9  # the smallest text on any figure: ticks, cell numbers, legends
DIGITS = list(config.DIGITS)
STATUS_COLOURS = {"ok": "tab:green", "unsure": "tab:orange", "not_a_digit": "tab:red"}


def setup() -> None:
    """Resolution and font sizes for every figure that follows (the inline backend saves PNGs at figure.dpi)."""
    matplotlib.rcParams.update({
        "figure.dpi": DPI, "savefig.dpi": DPI, "font.size": 10, "axes.titlesize": 10, "axes.labelsize": 10,
        "xtick.labelsize": LABEL_POINTS, "ytick.labelsize": LABEL_POINTS, "legend.fontsize": LABEL_POINTS, "figure.titlesize": 11,
    })


def _plain(value: float, _position=None) -> str:
    if value >= 1e6:
        return f"{value / 1e6:g}M"
    if value >= 1e3:
        return f"{value / 1e3:g}k"
    return f"{value:g}"


def plain_log_axis(ax, axis: str = "y") -> None:
    """A log scale whose ticks read as plain numbers (0.01, 1, 10k, 1M) rather than small superscript exponents."""
    getattr(ax, f"set_{axis}scale")("log")
    getattr(ax, f"{axis}axis").set_major_formatter(FuncFormatter(_plain))
    getattr(ax, f"{axis}axis").set_minor_formatter(FuncFormatter(lambda value, position: ""))


def _nice_ticks(top: float) -> list[float]:
    return [tick for tick in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if tick <= max(top, 1)]


def error_matrix(matrix, ax, title: str) -> None:
    """Confusion matrix with the diagonal masked (grey, its count in small print), so that the errors stand out:
    off-diagonal counts on a log colour scale, each error cell labelled with its count."""
    matrix = np.asarray(matrix, dtype=int)
    errors = matrix.astype(float)
    np.fill_diagonal(errors, np.nan)
    errors[errors == 0] = np.nan
    top = np.nanmax(errors) if np.isfinite(errors).any() else 1.0
    norm = LogNorm(vmin=1, vmax=max(top, 2))
    cmap = matplotlib.colormaps["OrRd"].copy()
    cmap.set_bad("white")
    shown = ax.imshow(errors, cmap=cmap, norm=norm)
    for digit in DIGITS:
        ax.add_patch(Rectangle((digit - 0.5, digit - 0.5), 1, 1, color="#d9d9d9"))
        ax.text(digit, digit, str(matrix[digit, digit]), ha="center", va="center", fontsize=LABEL_POINTS - 1 if matrix[digit, digit] >= 1000 else LABEL_POINTS, color="#555555")
    for row in DIGITS:
        for col in DIGITS:
            if row != col and matrix[row, col]:
                dark = norm(matrix[row, col]) > 0.6
                ax.text(col, row, str(matrix[row, col]), ha="center", va="center", fontsize=LABEL_POINTS, color="white" if dark else "black")
    bar = ax.figure.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
    bar.ax.yaxis.set_major_locator(FixedLocator(_nice_ticks(top)))
    bar.ax.yaxis.set_minor_locator(NullLocator())
    bar.ax.yaxis.set_major_formatter(ScalarFormatter())
    bar.set_label("errors (log scale)")
    ax.set_xticks(DIGITS)
    ax.set_yticks(DIGITS)
    ax.set(xlabel="model's answer", ylabel="true digit", title=title)


def no_ticks(ax) -> None:
    """Pictures have no axis to read: no ticks on either side."""
    ax.set_xticks([])
    ax.set_yticks([])


def show_picture(ax, source) -> None:
    """A picture as a person gave it (transparent areas grey), without ticks."""
    picture = open_image(source)
    ax.set_facecolor("#999999")
    ax.imshow(picture, cmap="gray" if picture.mode in ("L", "LA") else None)
    no_ticks(ax)


def show_digit(ax, image: np.ndarray) -> None:
    """A 28x28 model input, without ticks."""
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    no_ticks(ax)


def top_two(probabilities: np.ndarray) -> str:
    """"3 61% · 9 35%": the two most probable digits and their probabilities."""
    first, second = np.argsort(-probabilities, kind="stable")[:2]
    return f"{first} {probabilities[first]:.0%} · {second} {probabilities[second]:.0%}"


def mistakes_gallery(sources: Sequence, images: np.ndarray, probabilities: np.ndarray, labels: np.ndarray, chosen: Sequence[int], title: str):
    """For each chosen index, two rows: the input as given, and the 28x28 the model saw with the true digit and its top two."""
    columns = max(len(chosen), 1)
    fig, axes = plt.subplots(2, columns, figsize=(1.55 * columns + 0.6, 4.4), squeeze=False)
    for col, index in enumerate(chosen):
        show_picture(axes[0, col], sources[index])
        show_digit(axes[1, col], images[index])
        axes[1, col].set_title(f"true {labels[index]}\n{top_two(probabilities[index])}", fontsize=LABEL_POINTS)
    for ax in axes.flat[len(chosen) * 2 :]:
        ax.set_axis_off()
    axes[0, 0].set_ylabel("as given")
    axes[1, 0].set_ylabel("28×28 seen")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def show_scene_steps(axes, pictures, image: np.ndarray) -> None:
    """One row of the scene's steps (preprocess.StepPictures) and the main digit's 28x28, on five axes."""
    titles = ("picture", "surface found", "printed lines removed", "ink", "28×28 (main digit)")
    shown = (pictures.picture, pictures.surface, pictures.lines_removed, pictures.ink)
    for ax, title, picture in zip(axes, titles, shown):
        ax.imshow(picture, cmap="gray", vmin=0, vmax=255)
        ax.set_title(title)
        no_ticks(ax)
    show_digit(axes[4], image)
    axes[4].set_title(titles[4])


def show_reading(ax, source, reading) -> None:
    """The picture with a box round every digit read, labelled with the digit and coloured by its status."""
    show_picture(ax, source)
    for digit in reading.digits:
        if digit.box is None:
            continue
        x0, y0, x1, y1 = digit.box
        colour = STATUS_COLOURS[digit.status]
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colour, linewidth=2))
        ax.text(x0, y0 - 4, f"{digit.label}", color=colour, fontsize=11, fontweight="bold", va="bottom")
