"""Any picture a person gives -> MNIST-like 28x28 inputs. The only preprocessing path.

MNIST digits are white on black, fitted into a 20x20 box (aspect ratio kept)
and centred by centre of mass in a 28x28 field. People's pictures are not:
dark ink on light paper, unevenly lit, tinted, on a desk, on ruled or squared
notebook paper, transparent, tiny or huge, with the digit anywhere. Reading a
picture takes three stages, each in its own module:

1. `decode`: open safely (size checked before decoding, first frame, EXIF
   orientation, every mode), reduced to at most 1024 pixels a side;
2. `scene`: the writing surface, its printed rulings removed, the ink, the digit;
3. `digit`: crop, fit into 20x20, centre by mass in 28x28, as MNIST was made.

The app, the CLI, fine-tuning and the notebooks all call `preprocess()` (or
`preprocess_steps()` to see every intermediate image). Nothing here writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from . import worker
from .decode import ImageSource, open_reduced, working_arrays
from .errors import ImageTooLargeError, NoDigitFoundError, PreprocessError, UnreadableImageError

# The scene and digit stages (and OpenCV) are imported where a picture is read, not here: SciPy's
# ndimage and OpenCV took 0.3-0.8 s to import on two cores, and the app, feedback and training import
# this module for PREPROCESSING_VERSION and the error types long before (or without) reading a picture.

__all__ = [
    "PREPROCESSING_VERSION", "DigitSteps", "Halves", "ImageSource", "PreparedFile", "ImageTooLargeError", "NoDigitFoundError", "PreprocessError",
    "StepPictures", "Steps", "UnreadableImageError", "step_pictures", "preprocess", "preprocess_file", "preprocess_files", "preprocess_steps",
]

PREPROCESSING_VERSION = "3"  # 2: the writing surface is found and printed rulings are removed; 3: every digit of a number


@dataclass(frozen=True)
class DigitSteps:
    """One digit's framing, at working resolution."""

    mask: np.ndarray  # pixels kept as the digit
    bbox: tuple[int, int, int, int]  # top, left, bottom, right of the digit in the ink map
    crop: np.ndarray  # cleaned ink inside bbox
    box: np.ndarray  # fitted into 20x20 (aspect kept, so one side may be shorter)
    image: np.ndarray  # 28x28 float32 in [0, 1], white digit on black: the model's input
    stroke_level: float  # a typical stroke's ink value, which scales it to full intensity (scene.DigitRegion)


@dataclass(frozen=True)
class Halves:
    """A digit of a number cut in two, in case it is two digits pressed together: what the model needs to decide."""

    images: np.ndarray  # (2, 28, 28), left then right
    boxes: tuple[tuple[int, int, int, int], tuple[int, int, int, int]]  # x0, y0, x1, y1 in the original picture


@dataclass
class Steps:
    """The intermediate images of one preprocessing run (for notebooks and the app), at working resolution.

    `digits` are the digits found, left to right. `mask`, `bbox`, `crop`, `box`
    and `image` are those of the main digit: the only one, or in a number the
    one with the most ink.
    """

    picture: np.ndarray  # the decoded picture's luminance, 0-1
    surface: np.ndarray  # bool: the writing surface found (all True when the picture is all paper)
    rulings: np.ndarray  # the printed lines removed from the ink map (0 where there are none)
    ink: np.ndarray  # ink map after rulings are removed, 1 = ink, 0 = background (noise makes it dip below 0)
    digits: tuple[DigitSteps, ...]  # left to right
    main: int  # index in `digits` of the digit with the most ink
    ink_source: str  # "alpha", "dark ink on light background" or "light ink on dark background"
    surface_kind: str  # "whole picture" or "paper on a surface"
    original_size: tuple[int, int]  # width, height

    @property
    def images(self) -> np.ndarray:
        """(digits, 28, 28): every digit's model input, left to right."""
        return np.stack([digit.image for digit in self.digits])

    def box_in_picture(self, index: int) -> tuple[int, int, int, int]:
        """Digit `index`'s box as x0, y0, x1, y1 in the original picture's pixels."""
        return self._in_picture(self.digits[index].bbox)

    def cuts_in_picture(self, index: int) -> tuple[Halves, ...]:
        """The ways digit `index` can be cut in two (`scene.cuts_in_two`): none unless it is a wide digit of a
        number, or a very wide lone one. Framed when asked for, since the model only asks about digits it doubts."""
        from .scene import cuts_in_two

        digit = self.digits[index]
        return self._halves(cuts_in_two(digit.mask, digit.bbox, alone=len(self.digits) < 2), digit.stroke_level)

    def regroupings_in_picture(self, index: int) -> tuple[Halves, ...]:
        """Digits `index` and `index + 1` taken together, when their boxes touch side to side: the ways to cut
        their ink in two anew (`scene.cuts_anew`). None for the last digit, or for neighbours with a gap between them."""
        from .scene import cuts_anew

        if index + 1 >= len(self.digits):
            return ()
        first, second = self.digits[index], self.digits[index + 1]
        level = max(first.stroke_level, second.stroke_level)
        return self._halves(cuts_anew((first.mask, first.bbox), (second.mask, second.bbox)), level)

    def _halves(self, cuts: list, stroke_level: float) -> tuple[Halves, ...]:
        framed = []
        for cut in cuts:
            halves = [_framed(self.ink, mask, bbox, stroke_level) for mask, bbox in cut]
            boxes = tuple(self._in_picture(half.bbox) for half in halves)
            framed.append(Halves(np.stack([half.image for half in halves]), boxes))
        return tuple(framed)

    def _in_picture(self, bbox: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        top, left, bottom, right = bbox
        sx, sy = self.original_size[0] / self.ink.shape[1], self.original_size[1] / self.ink.shape[0]
        return (int(left * sx), int(top * sy), min(self.original_size[0], int(np.ceil(right * sx))),
                min(self.original_size[1], int(np.ceil(bottom * sy))))

    mask = property(lambda self: self.digits[self.main].mask)
    bbox = property(lambda self: self.digits[self.main].bbox)
    crop = property(lambda self: self.digits[self.main].crop)
    box = property(lambda self: self.digits[self.main].box)
    image = property(lambda self: self.digits[self.main].image)


@dataclass(frozen=True)
class StepPictures:
    """Small 8-bit copies of the steps a person can look at (the app's "How the picture was read")."""

    picture: np.ndarray
    surface: np.ndarray
    lines_removed: np.ndarray
    ink: np.ndarray


def step_pictures(steps: Steps, side: int = 240) -> StepPictures:
    """`steps` as pictures at most `side` pixels long: the app keeps these, not the working-size arrays."""
    import cv2

    height, width = steps.ink.shape
    size = (max(1, round(width * side / max(height, width))), max(1, round(height * side / max(height, width))))

    def small(values: np.ndarray) -> np.ndarray:
        scaled = cv2.resize(np.clip(values.astype(np.float32), 0, 1), size, interpolation=cv2.INTER_AREA)
        return np.round(scaled * 255).astype(np.uint8)

    return StepPictures(small(steps.picture), small(steps.surface), small(steps.rulings * 4), small(steps.ink))


def preprocess(source: ImageSource) -> np.ndarray:
    """Image (path, bytes, PIL image or numpy array) -> 28x28 float32 in [0, 1], white on black.

    The picture's digit; in a picture of a number, its main digit (the most
    ink). `preprocess_steps(source).images` has every digit, left to right.
    """
    return preprocess_steps(source).image


def preprocess_steps(source: ImageSource) -> Steps:
    from .scene import find_scene, locate_digits

    image, original_size = open_reduced(source)
    arrays = working_arrays(image, original_size)
    scene = find_scene(arrays)
    regions = locate_digits(scene.ink, scene.surface, scene.rulings, scene.shadowed)
    digits = [_framed(scene.ink, region.mask, region.bbox, region.stroke_level) for region in regions]
    main = int(np.argmax([float(scene.ink[region.mask].sum()) for region in regions]))
    return Steps(
        arrays.luminance, scene.surface, scene.rulings, scene.ink, tuple(digits), main,
        scene.ink_source, scene.surface_kind, original_size,
    )


def _framed(ink: np.ndarray, mask: np.ndarray, bbox: tuple[int, int, int, int], stroke_level: float) -> DigitSteps:
    from .digit import frame_digit

    result = frame_digit(ink, mask, bbox, stroke_level)
    return DigitSteps(mask, bbox, result.crop, result.box, result.image, stroke_level)


@dataclass(frozen=True)
class PreparedFile:
    """One file of a batch: its digits' 28x28 inputs and boxes, or the message saying why it has none."""

    path: str
    images: np.ndarray | None  # (digits, 28, 28), left to right
    boxes: tuple[tuple[int, int, int, int], ...] = ()  # x0, y0, x1, y1 of each digit in the original picture
    error: str | None = None
    cuts: tuple[tuple[Halves, ...], ...] = ()  # each digit's ways to be cut in two (see Steps.cuts_in_picture)
    regroupings: tuple[tuple[Halves, ...], ...] = ()  # each digit's and the next one's (Steps.regroupings_in_picture)


def preprocess_file(path: str | os.PathLike) -> PreparedFile:
    """For batches, where one bad file must not stop the rest: a bad file gives its message, not an exception."""
    try:
        steps = preprocess_steps(Path(path))
    except PreprocessError as error:
        return PreparedFile(str(path), None, (), str(error))
    indices = range(len(steps.digits))
    boxes = tuple(steps.box_in_picture(i) for i in indices)
    return PreparedFile(
        str(path), steps.images, boxes, cuts=tuple(steps.cuts_in_picture(i) for i in indices),
        regroupings=tuple(steps.regroupings_in_picture(i) for i in indices),
    )


PARALLEL_FROM = 200  # files; below this, starting worker processes costs more than it saves


def preprocess_files(paths: Iterable[str | os.PathLike], workers: int = 1) -> "PreprocessedFiles":
    """`preprocess_file` on each path, results in order; in `workers` processes when there are many files.

    Processes, not threads: for small images the work is mostly Python
    bytecode, so threads wait for each other on the GIL (measured: two threads
    were slower than one). The work is handed out when this function is
    called, not when the first result is read, so a caller can load the model
    meanwhile (see `worker`). Use it in a `with` block, or read it to the end,
    so the workers stop.
    """
    return PreprocessedFiles([str(path) for path in paths], workers)


class PreprocessedFiles(Iterator[PreparedFile]):
    """The results of `preprocess_files`, in order; closing it (or reaching the end) stops the workers.

    File i goes to worker i % workers and results are read back in the same
    rotation, so the order is kept and every worker's output keeps flowing.
    """

    def __init__(self, paths: list[str], workers: int):
        self.workers = max(1, min(workers, os.cpu_count() or 1)) if len(paths) >= PARALLEL_FROM else 1
        self._count, self._next = len(paths), 0
        self._pool: list[worker.Worker] = []
        if self.workers < 2:
            self._results = map(preprocess_file, paths)
            return
        self._pool = [worker.Worker(preprocess_file, paths[k :: self.workers]) for k in range(self.workers)]
        self._results = None

    def __next__(self) -> PreparedFile:
        if self._results is not None:
            return next(self._results)
        if self._next == self._count:
            self.close()
            raise StopIteration
        try:
            result = next(self._pool[self._next % self.workers])
        except BaseException:  # a worker that died: stop the others too
            self.close()
            raise
        self._next += 1
        return result

    @property
    def processes(self) -> list:
        """The worker processes (subprocess.Popen), none when the files are read in this process."""
        return [process.process for process in self._pool]

    def close(self) -> None:
        for process in self._pool:
            process.close()

    def __enter__(self) -> "PreprocessedFiles":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
