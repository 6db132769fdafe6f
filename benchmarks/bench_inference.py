"""Inference speed: preprocessing, the model call, and `predict` on 1,000 files.

Every figure is a median (p50) and p95 over repeated runs in this process, and
the project's single-image path is compared with `model.predict()` on the same
image in the same run, as a ratio, because these machines are noisy.

    python benchmarks/bench_inference.py [--files 1000] [--repeats 200] [--json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from digit_classifier import config, data, realinputs  # noqa: E402
from digit_classifier.model import load_classifier  # noqa: E402
from digit_classifier.predict import predict_files  # noqa: E402
from digit_classifier.preprocess import preprocess  # noqa: E402


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
    return {"canvas_280x280_rgba": canvas, "photo_4000x3000_jpeg": buffer.getvalue(), "png_28x28": small.getvalue()}


def bench_single(classifier, mnist, repeats: int) -> dict:
    results = {}
    for name, source in sample_inputs(mnist).items():
        results[f"preprocess {name}"] = timings_ms(lambda s=source: preprocess(s), max(10, repeats // (10 if "photo" in name else 1)))
        results[f"preprocess+model {name}"] = timings_ms(
            lambda s=source: classifier.probabilities(preprocess(s)), max(10, repeats // (10 if "photo" in name else 1))
        )
    image = data.to_model_input(mnist.images[:1])
    direct = timings_ms(lambda: classifier.probabilities(image), repeats)
    keras_predict = timings_ms(lambda: classifier.model.predict(image, verbose=0), max(20, repeats // 4))
    results["model call (compiled direct call), 1 image"] = direct
    results["model.predict, 1 image (baseline)"] = keras_predict
    results["speed-up of direct call over model.predict"] = round(keras_predict["p50_ms"] / direct["p50_ms"], 1)
    return results


def write_pngs(mnist, folder: Path, count: int) -> list[Path]:
    paths = []
    for i in range(count):
        path = folder / f"{i:05d}.png"
        Image.fromarray(255 - mnist.images[i]).save(path)
        paths.append(path)
    return paths


def bench_batch(classifier, mnist, count: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_pngs(mnist, Path(tmp), count)
        list(predict_files(classifier, paths[:50]))  # warm-up
        started = time.perf_counter()
        results = list(predict_files(classifier, paths))
        seconds = time.perf_counter() - started
        correct = sum(r.get("label") == int(mnist.labels[i]) for i, r in enumerate(results))

        started = time.perf_counter()
        process = subprocess.run(
            [sys.executable, "-m", "digit_classifier", "predict", *map(str, paths)],
            cwd=config.REPO_ROOT, capture_output=True, text=True,
        )
        cli_seconds = time.perf_counter() - started
        cli_peak_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        cli_start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "digit_classifier", "predict", str(paths[0])], cwd=config.REPO_ROOT, capture_output=True)
        startup_seconds = time.perf_counter() - cli_start
    assert process.returncode == 0, process.stderr[-500:]
    return {
        "files": count,
        "in-process images/s (start-up excluded)": round(count / seconds, 1),
        "accuracy on these files": round(correct / count, 4),
        "CLI wall time for all files (s)": round(cli_seconds, 2),
        "CLI start-up + one file (s)": round(startup_seconds, 2),
        "CLI images/s excluding start-up": round(count / max(cli_seconds - startup_seconds, 1e-9), 1),
        "CLI peak RSS (MB)": round(cli_peak_rss_mb, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    classifier = load_classifier()
    mnist = data.load_split("test")
    report = {
        "machine": {"cpu": _cpu_model(), "cores": os.cpu_count()},
        "single image": bench_single(classifier, mnist, args.repeats),
        "predict on many files": bench_batch(classifier, mnist, args.files),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"machine: {report['machine']['cpu']}, {report['machine']['cores']} cores")
    for section in ("single image", "predict on many files"):
        print(f"\n{section}")
        for name, value in report[section].items():
            shown = f"p50 {value['p50_ms']:.2f} ms, p95 {value['p95_ms']:.2f} ms" if isinstance(value, dict) else value
            print(f"  {name}: {shown}")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    main()
