"""Training speed on this machine: seconds per epoch, total time and the accuracy reached.

Runs the full recipe of digit_classifier/train.py (by default all its epochs,
55,000 training digits, augmentation, validation every epoch) into a temporary
folder: model/ is never touched. The first epoch also builds the graph, so it
is reported apart from the median of the others. The committed model's own
figures (model/metadata.json) are printed alongside for reference.

    .venv/bin/python -m benchmarks.bench_train [--epochs N] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.machine import describe, machine, save
from digit_classifier import config
from digit_classifier.train import EPOCHS, train


def run(epochs: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-train-") as folder:
        _, metadata = train(out_dir=Path(folder), epochs=epochs, verbose=2)
    per_epoch = metadata["epoch_seconds"]
    return {
        "epochs": epochs,
        "train_samples": metadata["train_samples"],
        "first_epoch_s": per_epoch[0],
        "epoch_s_median": round(float(np.median(per_epoch[1:] or per_epoch)), 1),
        "epoch_s": per_epoch,
        "total_s": metadata["training_seconds"],
        "test_accuracy": metadata["test_accuracy"],
        "validation_accuracy": metadata["validation_accuracy"],
        "parameters": metadata["parameters"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=EPOCHS, help=f"epochs (default {EPOCHS}, the committed model's recipe)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    info = machine()
    print(describe(info), flush=True)
    result = run(args.epochs)
    committed = json.loads(config.metadata_path().read_text()) if config.metadata_path().is_file() else {}
    keys = ("version", "epochs", "training_seconds", "seconds_per_epoch", "test_accuracy")
    save("bench_train", {"machine": info, "training": result, "committed_model": {key: committed.get(key) for key in keys}})
    if args.json:
        print(json.dumps(result))
        return
    print(f"epochs: {result['epochs']} over {result['train_samples']:,} training digits ({result['parameters']:,} parameters)")
    print(f"seconds per epoch: median {result['epoch_s_median']:.1f} s (first epoch, graph building included: {result['first_epoch_s']:.1f} s)")
    print(f"total training time: {result['total_s']:.0f} s ({result['total_s'] / 60:.1f} min)")
    print(f"MNIST test accuracy: {result['test_accuracy']:.2%} (validation {result['validation_accuracy']:.2%})")
    if committed:
        print(
            f"committed model {committed.get('version')}: {committed.get('epochs')} epochs, "
            f"{committed.get('training_seconds')} s, test accuracy {committed.get('test_accuracy', 0):.2%}"
        )
    print(f"load average at the end: {machine()['load_average'][0]:.2f}")


if __name__ == "__main__":
    main()
