"""Command line: python -m digit_classifier train | evaluate | predict

    python -m digit_classifier train [--epochs N] [--out DIR]
    python -m digit_classifier evaluate [--model PATH] [--json] [--real] [--confusion-png FILE]
    python -m digit_classifier predict IMAGE_OR_FOLDER... [--model PATH]

`predict` prints one JSON object per line; `evaluate --json` prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path



def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m digit_classifier", description="MNIST digit classifier.")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train the CNN from scratch on MNIST")
    train.add_argument("--epochs", type=int, default=None, help="epochs (default: the value in train.py)")
    train.add_argument("--out", type=Path, default=None, help="folder for model.keras and metadata.json (default: model/)")

    evaluate = commands.add_parser("evaluate", help="accuracy, per-class report and confusion matrix on MNIST test")
    evaluate.add_argument("--model", type=Path, default=None, help="model file (default: model/model.keras)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--real", action="store_true", help="also measure the realistic input sets (about a minute)")
    evaluate.add_argument("--real-size", type=int, default=1000, help="inputs per realistic set (default 1000)")
    evaluate.add_argument("--confusion-png", type=Path, default=None, help="save the confusion matrix figure here")

    predict = commands.add_parser("predict", help="classify image files; one JSON line per image")
    predict.add_argument("images", nargs="+", type=Path, help="image files, or folders of images")
    predict.add_argument("--model", type=Path, default=None, help="model file (default: model/model.keras)")
    return parser


def _expand(paths: list[Path]) -> list[Path]:
    expanded = []
    for path in paths:
        if path.is_dir():
            expanded.extend(sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")))
        else:
            expanded.append(path)
    return expanded


def run_train(args) -> int:
    from .train import EPOCHS, train

    _, metadata = train(out_dir=args.out, epochs=args.epochs or EPOCHS)
    summary = {key: metadata[key] for key in ("version", "epochs", "parameters", "training_seconds", "test_accuracy")}
    print(json.dumps(summary))
    return 0


def run_evaluate(args) -> int:
    from .evaluate import evaluate, plot_confusion_matrix, real_input_accuracy
    from .model import load_classifier

    classifier = load_classifier(args.model)
    report = evaluate(classifier)
    if args.real:
        report["real_inputs"] = real_input_accuracy(classifier, n=args.real_size)
    if args.confusion_png:
        plot_confusion_matrix(report["confusion_matrix"], args.confusion_png, title=f"MNIST test, model {classifier.version}")
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"model {classifier.version}: accuracy {report['accuracy']:.4%} on {report['n']} MNIST test images ({report['errors']} errors)")
    print("digit  precision  recall  f1      support")
    for digit, row in report["per_class"].items():
        print(f"{digit:>5}  {row['precision']:.4f}     {row['recall']:.4f}  {row['f1']:.4f}  {row['support']}")
    for kind, result in report.get("real_inputs", {}).items():
        print(f"{kind:>12}: {result['accuracy']:.2%} of {result['n']} ({result['refused']} refused)")
    return 0


def run_predict(args) -> int:
    from .model import load_classifier
    from .predict import predict_files

    classifier = load_classifier(args.model)
    failed = False
    for result in predict_files(classifier, _expand(args.images)):
        failed |= "error" in result
        print(json.dumps(result), flush=False)
    sys.stdout.flush()
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handlers = {"train": run_train, "evaluate": run_evaluate, "predict": run_predict}
    try:
        return handlers[args.command](args)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
