"""Fine-tuning speed: the whole `finetune()` call on 100, 500 and 2,000 feedback images.

Each run fills a feedback store in a temporary folder through the store's API,
the way the app saves corrections: canvas drawings, phone photos, transparent
PNGs and low-resolution thumbnails rendered from MNIST *training* digits, plus
optdigits. It copies the current model folder and times `finetune()` end to
end: retrieval and preprocessing, evaluation of the current model (MNIST test,
hold-out, training part), training, the same evaluation of the result, saving
and promotion. The 500-image run is also timed as the CLI command, process
start and TensorFlow import included. Target: 500 images in at most 60 s
(an earlier target allowed 90 s).

    .venv/bin/python -m benchmarks.bench_finetune [--sizes 100 500 2000] [--no-cli] [--json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.machine import describe, machine, save
from digit_classifier import config, feedback, realinputs

SIZES = (100, 500, 2000)
TARGET_SECONDS = {500: 60.0}
MIX = {"canvas": 0.5, "photo": 0.15, "transparent": 0.1, "lowres": 0.1, "optdigits": 0.15}  # shares of the store
CLI_SIZE = 500


def as_file_bytes(source) -> bytes:
    if isinstance(source, bytes):
        return source
    buffer = io.BytesIO()
    Image.fromarray(source).save(buffer, format="PNG")
    return buffer.getvalue()


def feedback_sources(n: int) -> list[tuple[bytes, int]]:
    """`n` (image file bytes, true label) in the proportions of MIX."""
    counts = {kind: int(n * share) for kind, share in MIX.items()}
    counts["canvas"] += n - sum(counts.values())
    sources = []
    for kind, count in counts.items():
        if kind == "optdigits":
            images, labels = realinputs.optdigits_set()
            picked = [(images[i % len(images)], int(labels[i % len(labels)])) for i in range(count)]
        else:
            images, labels = realinputs.make_set(kind, count, split="train")
            picked = list(zip(images, labels.tolist()))
        sources.extend((as_file_bytes(image), label) for image, label in picked)
    return sources


def fill_store(root: Path, n: int) -> None:
    for image, label in feedback_sources(n):
        probabilities = np.full(10, 0.05)
        probabilities[(label + 1) % 10] = 0.55
        feedback.save_correction(
            image, label, predicted_label=(label + 1) % 10, confidence=0.55, probabilities=probabilities, source="upload", root=root
        )


def time_function(store: Path, model_dir: Path) -> dict:
    from digit_classifier.finetune import finetune

    started, cpu_started = time.perf_counter(), time.process_time()
    result = finetune(store, model_dir)
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "cpu_seconds": round(time.process_time() - cpu_started, 1),
        "parts": result.seconds,
        "usable": result.feedback.count,
        "train": result.feedback.train,
        "holdout": result.feedback.holdout,
        "promoted": result.promoted,
        "mnist_before": result.before.mnist_test_accuracy,
        "mnist_after": result.after.mnist_test_accuracy,
    }


def time_cli(store: Path, model_dir: Path) -> float:
    env = {**os.environ, "DIGIT_MODEL_DIR": str(model_dir), "DIGIT_FEEDBACK_DIR": str(store)}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "digit_classifier", "finetune", "--json"], cwd=config.REPO_ROOT, env=env, check=True, capture_output=True)
    return round(time.perf_counter() - started, 1)


def run(sizes: list[int], cli: bool) -> dict:
    results = {"machine": machine(), "runs": []}
    print(describe(results["machine"]), flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-finetune-") as tmp:
        for n in sizes:
            store, model_dir = Path(tmp) / f"store-{n}", Path(tmp) / f"model-{n}"
            fill_store(store, n)
            shutil.copytree(config.model_dir(), model_dir, symlinks=True)
            run_result = {"n": n, **time_function(store, model_dir)}
            if cli and n == CLI_SIZE:
                shutil.rmtree(model_dir)
                shutil.copytree(config.model_dir(), model_dir, symlinks=True)
                run_result["cli_seconds"] = time_cli(store, model_dir)
            results["runs"].append(run_result)
            print_run(run_result)
    return results


def print_run(run_result: dict) -> None:
    parts = ", ".join(f"{name} {seconds:.1f}" for name, seconds in run_result["parts"].items())
    target = TARGET_SECONDS.get(run_result["n"])
    verdict = "" if target is None else f"  (target <= {target:.0f} s: {'met' if run_result['seconds'] <= target else 'MISSED'})"
    print(
        f"{run_result['n']:>5} images: finetune() {run_result['seconds']:.1f} s wall, {run_result['cpu_seconds']:.1f} s CPU "
        f"[{parts}]{verdict}  load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    if "cli_seconds" in run_result:
        print(f"{'':>5}         `python -m digit_classifier finetune --json`: {run_result['cli_seconds']:.1f} s wall clock", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--no-cli", action="store_true", help="skip timing the CLI command")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object at the end")
    args = parser.parse_args()
    results = run(args.sizes, cli=not args.no_cli)
    save("bench_finetune", results)
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
