"""Inference speed: preprocessing, the model call, and `predict` on 1,000 files.

Every figure is a median (p50) and p95 over repeated runs in this process. The serving
runtime (LiteRT, what the app and `predict` use) is measured beside the Keras paths it
replaced (the compiled direct call, and `model.predict()`) on the same images in the same
run, and `predict`'s start-up beside the same command served by Keras, because these
machines are noisy.

    .venv/bin/python -m benchmarks.bench_inference [--files 1000] [--repeats 200] [--json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.machine import describe, machine, save
from digit_classifier import config, data, realinputs
from digit_classifier.inference import load_serving_classifier
from digit_classifier.model import load_classifier
from digit_classifier.predict import predict_files, read_image
from digit_classifier.preprocess import preprocess


def timings_ms(function, repeats: int) -> dict:
    function()  # warm-up
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": round(float(np.median(samples)), 3), "p95_ms": round(float(np.percentile(samples, 95)), 3), "runs": repeats}


def sample_inputs(mnist) -> dict:
    rng = np.random.default_rng(0)
    canvas = realinputs.canvas_like(mnist.images[0], rng)
    photo = Image.new("RGB", (4000, 3000), (228, 224, 214))  # a 12-megapixel phone photo of a digit on paper
    ink = Image.fromarray(255 - mnist.images[1]).resize((600, 600), Image.Resampling.BICUBIC)
    photo.paste(Image.merge("RGB", [ink] * 3), (1700, 1200))
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", quality=90)
    small = io.BytesIO()
    Image.fromarray(255 - mnist.images[2]).save(small, format="PNG")
    # A 12-megapixel phone photo of a digit on ruled or squared notebook paper: the rendered set's picture,
    # enlarged to a phone camera's size (the scene stage works on it at 1,024 px, as on any photo).
    page = Image.open(io.BytesIO(realinputs.notebook_photo(mnist.images[3], np.random.default_rng(1))))
    size = (4000, 3000) if page.width >= page.height else (3000, 4000)
    notebook = io.BytesIO()
    page.resize(size, Image.Resampling.BICUBIC).save(notebook, format="JPEG", quality=90)
    # A 12-megapixel photo of a 6-digit number on paper: the numbers set's paper picture, enlarged the same way.
    number = Image.open(io.BytesIO(realinputs.render_number(list(mnist.images[4:10]), np.random.default_rng(2), "paper")))
    number_photo = io.BytesIO()
    number.convert("RGB").resize((4000, 3000), Image.Resampling.BICUBIC).save(number_photo, format="JPEG", quality=90)
    return {
        "canvas_280x280_rgba": canvas,
        "photo_4000x3000_jpeg": buffer.getvalue(),
        "notebook_photo_12mp_jpeg": notebook.getvalue(),
        "number_photo_6_digits_12mp_jpeg": number_photo.getvalue(),
        "png_28x28": small.getvalue(),
    }


def bench_single(classifier, keras_classifier, mnist, repeats: int) -> dict:
    results = {}
    for name, source in sample_inputs(mnist).items():
        results[f"preprocess {name}"] = timings_ms(lambda s=source: preprocess(s), max(10, repeats // (10 if "photo" in name else 1)))
        results[f"preprocess+model {name}"] = timings_ms(  # the app's path: every digit, one model call
            lambda s=source: read_image(classifier, s), max(10, repeats // (10 if "photo" in name else 1))
        )
    image, batch = data.to_model_input(mnist.images[:1]), data.to_model_input(mnist.images[:1000])
    served = timings_ms(lambda: classifier.probabilities(image), repeats)
    direct = timings_ms(lambda: keras_classifier.probabilities(image), repeats)
    keras_predict = timings_ms(lambda: keras_classifier.model.predict(image, verbose=0), max(20, repeats // 4))
    results[f"model call ({classifier.runtime}, served), 1 image"] = served
    results["model call (Keras compiled direct call, before), 1 image"] = direct
    results["model.predict, 1 image (baseline)"] = keras_predict
    results[f"model call ({classifier.runtime}, served), batch of 1,000"] = timings_ms(lambda: classifier.probabilities(batch), 10)
    results["model call (Keras compiled direct call, before), batch of 1,000"] = timings_ms(lambda: keras_classifier.probabilities(batch), 10)
    results["speed-up of the served call over the Keras direct call, 1 image"] = round(direct["p50_ms"] / served["p50_ms"], 1)
    results["speed-up of the served call over model.predict, 1 image"] = round(keras_predict["p50_ms"] / served["p50_ms"], 1)
    return results


def write_pngs(mnist, folder: Path, count: int) -> list[Path]:
    paths = []
    for i in range(count):
        path = folder / f"{i:05d}.png"
        Image.fromarray(255 - mnist.images[i]).save(path)
        paths.append(path)
    return paths


CLI_REPEATS = 3


# `predict` as it was before serving moved to LiteRT: the same steps, the model loaded by Keras.
KERAS_PREDICT = """
import json, sys
from digit_classifier.preprocess import preprocess_files
with preprocess_files(sys.argv[1:], workers=1) as prepared:
    from digit_classifier.model import load_classifier
    from digit_classifier.predict import predict_prepared
    for result in predict_prepared(load_classifier(), prepared):
        print(json.dumps(result))
"""


def run_cli(*args: str) -> tuple[float, subprocess.CompletedProcess]:
    """Wall seconds of `python -m digit_classifier ...`, and its outcome."""
    return run_python("-m", "digit_classifier", *args)


def run_python(*args: str) -> tuple[float, subprocess.CompletedProcess]:
    """Wall seconds of `python ARGS`, and its outcome."""
    started = time.perf_counter()
    process = subprocess.run([sys.executable, *args], cwd=config.REPO_ROOT, capture_output=True, text=True)
    return time.perf_counter() - started, process


def peak_rss_of_command(*args: str) -> float:
    """Peak RSS (MB) of one `python ARGS` process, as GNU time reports it.

    Not from this process' wait4: a child's ru_maxrss keeps the high-water mark of the memory it was
    forked from (this process, with TensorFlow loaded: 1,339 MB for every command measured that way)."""
    process = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, *args], cwd=config.REPO_ROOT, capture_output=True, text=True)
    assert process.returncode == 0, process.stderr[-500:]
    return round(int(process.stderr.strip().splitlines()[-1]) / 1024, 1)


def bench_batch(classifier, mnist, count: int) -> dict:
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = write_pngs(mnist, folder, count)
        list(predict_files(classifier, paths[:50]))  # warm-up
        in_process = {}
        for workers in (1, cores):
            started = time.perf_counter()
            results = list(predict_files(classifier, paths, workers=workers))
            in_process[workers] = count / (time.perf_counter() - started)
        correct = sum(r.get("label") == int(mnist.labels[i]) for i, r in enumerate(results))

        # Medians of three interleaved runs: a command's start-up alone varies by a few tenths of a second.
        runs: dict[str, list[float]] = {"startup": [], "startup keras": [], "one worker": [], "default": []}
        for _ in range(CLI_REPEATS):
            runs["startup"].append(run_cli("predict", str(paths[0]))[0])
            seconds, keras_process = run_python("-c", KERAS_PREDICT, str(paths[0]))
            assert keras_process.returncode == 0, keras_process.stderr[-500:]
            runs["startup keras"].append(seconds)
            runs["one worker"].append(run_cli("predict", str(folder), "--workers", "1")[0])
            seconds, process = run_cli("predict", str(folder))
            runs["default"].append(seconds)
        startup, startup_keras, one_worker, default = (
            float(np.median(runs[key])) for key in ("startup", "startup keras", "one worker", "default")
        )
        rss_one = peak_rss_of_command("-m", "digit_classifier", "predict", str(paths[0]))
        rss_one_keras = peak_rss_of_command("-c", KERAS_PREDICT, str(paths[0]))
        rss_all = peak_rss_of_command("-m", "digit_classifier", "predict", str(folder))
    assert process.returncode == 0, process.stderr[-500:]
    return {
        "files": count,
        "accuracy on these files": round(correct / count, 4),
        "in-process predict_files, 1 process, images/s": round(in_process[1], 1),
        f"in-process predict_files, {cores} worker processes (their start-up included), images/s": round(in_process[cores], 1),
        "CLI start-up + one file (s)": round(startup, 2),
        "CLI start-up + one file, served by Keras as before (s)": round(startup_keras, 2),
        "CLI --workers 1, all files (s)": round(one_worker, 2),
        f"CLI default ({cores} workers), all files (s)": round(default, 2),
        "CLI --workers 1, images/s excluding start-up": round(count / max(one_worker - startup, 1e-9), 1),
        "CLI default, images/s excluding start-up": round(count / max(default - startup, 1e-9), 1),
        "CLI speed-up of the default over --workers 1 (whole command)": round(one_worker / default, 2),
        "CLI peak RSS, one file (MB)": rss_one,
        "CLI peak RSS, one file, served by Keras as before (MB)": rss_one_keras,
        "CLI peak RSS, all files (MB)": rss_all,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    classifier, keras_classifier = load_serving_classifier(), load_classifier()
    mnist = data.load_split("test")
    report = {
        "machine": machine(),
        "single image": bench_single(classifier, keras_classifier, mnist, args.repeats),
        "predict on many files": bench_batch(classifier, mnist, args.files),
    }
    save("bench_inference", report)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(describe(report["machine"]))
    for section in ("single image", "predict on many files"):
        print(f"\n{section}")
        for name, value in report[section].items():
            shown = f"p50 {value['p50_ms']:.2f} ms, p95 {value['p95_ms']:.2f} ms" if isinstance(value, dict) else value
            print(f"  {name}: {shown}")
    print()
    for name, met in verdicts(report).items():
        print(f"target: {name}: {'met' if met else 'MISSED'}")


def verdicts(report: dict) -> dict[str, bool]:
    single, batch = report["single image"], report["predict on many files"]
    return {
        "model call, one image, p50 <= 1 ms": single["model call (litert, served), 1 image"]["p50_ms"] <= 1,
        "predict start-up + one file <= 1.5 s": batch["CLI start-up + one file (s)"] <= 1.5,
        "preprocessing + model, 280x280 canvas, p50 <= 10 ms": single["preprocess+model canvas_280x280_rgba"]["p50_ms"] <= 10,
        "preprocessing + model, 12 MP photo, p50 <= 150 ms": single["preprocess+model photo_4000x3000_jpeg"]["p50_ms"] <= 150,
        "preprocessing + model, 12 MP notebook photo, p50 <= 200 ms": single["preprocess+model notebook_photo_12mp_jpeg"]["p50_ms"]
        <= 200,
        "preprocessing + model, 12 MP photo of a 6-digit number, p50 <= 200 ms":
        single["preprocess+model number_photo_6_digits_12mp_jpeg"]["p50_ms"] <= 200,
        "predict on small PNGs >= 500 images/s (CLI, start-up excluded)": batch["CLI default, images/s excluding start-up"] >= 500,
    }


if __name__ == "__main__":
    main()
