"""Where preprocessing spends its time: each step of the one path, per kind of input.

Times every step of `preprocess_steps` separately (median over repeated runs)
for a 28x28 PNG file, a 280x280 canvas drawing and a 12-megapixel JPEG photo.
With --pyinstrument KIND it also prints pyinstrument's call tree for that input.

    .venv/bin/python -m benchmarks.profile_preprocess [--repeats 300] [--pyinstrument png_28x28]
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_inference import sample_inputs
from benchmarks.machine import describe
from digit_classifier import data
from digit_classifier import decode, digit, scene
from digit_classifier.preprocess import preprocess


def median_us(function, repeats: int):
    result = function()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return result, float(np.median(samples)) * 1e6


def profile_steps(source, repeats: int) -> dict[str, float]:
    steps = {}
    (image, size), steps["decode (open, EXIF, reduce)"] = median_us(lambda: decode.open_reduced(source), repeats)
    arrays, steps["working arrays"] = median_us(lambda: decode.working_arrays(image, size), repeats)
    found, steps["scene: surface"] = median_us(lambda: scene.find_surface(arrays.luminance, arrays.rgb), repeats)
    found_scene, steps["scene: surface, ink, rulings"] = median_us(lambda: scene.find_scene(arrays), repeats)
    regions, steps["scene: locate digits"] = median_us(
        lambda: scene.locate_digits(found_scene.ink, found_scene.surface, found_scene.rulings, found_scene.shadowed), repeats
    )
    _, steps["digit: crop, 20x20, centre (each digit)"] = median_us(
        lambda: [digit.frame_digit(found_scene.ink, r.mask, r.bbox, r.stroke_level) for r in regions], repeats
    )
    _, steps["whole preprocess()"] = median_us(lambda: preprocess(source), repeats)
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--pyinstrument", metavar="KIND", help="also print a pyinstrument call tree for this input kind")
    args = parser.parse_args()

    print(describe(), flush=True)
    inputs = sample_inputs(data.load_split("test"))
    with tempfile.TemporaryDirectory() as folder:
        small = Path(folder) / "digit.png"
        small.write_bytes(inputs["png_28x28"])
        inputs["png_28x28"] = small  # a file, as `predict` reads it
        for kind, source in inputs.items():
            repeats = max(10, args.repeats // (30 if "photo" in kind else 1))
            print(f"\n{kind} (median of {repeats} runs)")
            for step, micros in profile_steps(source, repeats).items():
                print(f"  {step:<30} {micros / 1000:8.3f} ms")
        if args.pyinstrument:
            from pyinstrument import Profiler

            source = inputs[args.pyinstrument]
            profiler = Profiler(interval=0.0002)
            with profiler:
                for _ in range(args.repeats):
                    preprocess(io.BytesIO(source) if isinstance(source, bytes) else source)
            print(profiler.output_text(unicode=False, color=False))


if __name__ == "__main__":
    main()
