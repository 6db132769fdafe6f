"""Command line: python -m digit_classifier train | evaluate | predict | finetune | models | rollback | finetune-demo

    python -m digit_classifier train [--epochs N] [--out DIR]
    python -m digit_classifier evaluate [--model PATH] [--json] [--real] [--confusion-png FILE] [--reliability-png FILE] [--scores]
    python -m digit_classifier predict IMAGE_OR_FOLDER... [--model PATH] [--workers N]
    python -m digit_classifier finetune [--feedback-dir DIR] [--epochs N] [--dry-run] [--json]
                                        [--max-mnist-drop PP] [--min-holdout-gain PP]
    python -m digit_classifier models [--json]
    python -m digit_classifier rollback [--to VERSION]
    python -m digit_classifier finetune-demo [--json] [--work-dir DIR]

`predict` prints one JSON object per line; `evaluate --json`, `finetune --json`
and `finetune-demo --json` print one JSON object. `finetune`, `models` and
`rollback` also take --model-dir (default: model/, or DIGIT_MODEL_DIR).
A model that is missing or damaged is one `error:` line and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m digit_classifier", description="MNIST digit classifier.")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train the CNN from scratch on MNIST")
    train.add_argument("--epochs", type=int, default=None, help="epochs (default: the value in train.py)")
    train.add_argument("--out", type=Path, default=None, help="folder for model.keras and metadata.json (default: model/)")

    evaluate = commands.add_parser("evaluate", help="accuracy, per-class report and confusion matrix on MNIST test")
    evaluate.add_argument("--model", type=Path, default=None, help="model file or version folder (default: the current version)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--real", action="store_true", help="also measure the realistic input sets (about a minute)")
    evaluate.add_argument("--real-size", type=int, default=1000, help="inputs per realistic set (default 1000)")
    evaluate.add_argument("--confusion-png", type=Path, default=None, help="save the confusion matrix figure here")
    evaluate.add_argument("--reliability-png", type=Path, default=None, help="save the reliability diagram (MNIST test, before and after the temperature) here")
    evaluate.add_argument("--scores", action="store_true", help="also measure a score alone (max softmax, energy) as a not-a-digit detector")

    predict = commands.add_parser("predict", help="classify image files; one JSON line per image")
    predict.add_argument("images", nargs="+", type=Path, help="image files, or folders of images")
    predict.add_argument("--model", type=Path, default=None, help="model file or version folder (default: the current version)")
    predict.add_argument("--workers", type=_positive_int, default=os.cpu_count() or 1,
                         help="processes that preprocess large batches; 1 = none (default: one per core, here %(default)s)")

    finetune = commands.add_parser("finetune", help="fine-tune on wrong_predictions/, compare before/after, promote if better")
    finetune.add_argument("--feedback-dir", type=Path, default=None, help="the corrections (default: wrong_predictions/)")
    finetune.add_argument("--model-dir", type=Path, default=None, help="model folder (default: model/)")
    finetune.add_argument("--epochs", type=int, default=None, help="epochs (default: the value in finetune.py)")
    finetune.add_argument("--steps-per-epoch", type=int, default=None, help="batches per epoch (default: from the number of samples)")
    finetune.add_argument("--max-mnist-drop", type=float, default=None, metavar="PP",
                          help="promote only if MNIST test accuracy falls by at most this many percentage points (default 0.2)")
    finetune.add_argument("--min-holdout-gain", type=float, default=None, metavar="PP",
                          help="promote only if feedback hold-out accuracy rises by at least this many points (default 0: no drop)")
    finetune.add_argument("--dry-run", action="store_true", help="train and evaluate, but save and promote nothing")
    finetune.add_argument("--json", action="store_true", help="print one JSON object")

    models = commands.add_parser("models", help="list the saved model versions; * marks the current one")
    models.add_argument("--model-dir", type=Path, default=None, help="model folder (default: model/)")
    models.add_argument("--json", action="store_true", help="print one JSON list")

    rollback = commands.add_parser("rollback", help="make the version the current model replaced current again")
    rollback.add_argument("--model-dir", type=Path, default=None, help="model folder (default: model/)")
    rollback.add_argument("--to", default=None, metavar="VERSION", help="make this version (one that `models` lists) current instead")

    demo = commands.add_parser("finetune-demo", help="the fine-tuning loop on optdigits (other writers), in temporary folders")
    demo.add_argument("--work-dir", type=Path, default=None, help="keep the demo's model and feedback folders here (must not exist yet)")
    demo.add_argument("--epochs", type=int, default=None, help="epochs (default: the value in finetune.py)")
    demo.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


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
    # The metadata's single values; the per-epoch history, times and data checksums stay in metadata.json.
    print(json.dumps({key: value for key, value in metadata.items() if not isinstance(value, (dict, list))}))
    return 0


def run_evaluate(args) -> int:
    _check_model(args.model)
    from .calibration import Calibration
    from .data import load_split, to_model_input
    from .evaluate import evaluate, non_digit_flagging, plot_confusion_matrix, plot_reliability, real_input_accuracy, score_baselines
    from .model import load_classifier, logits

    classifier = load_classifier(args.model)
    report = evaluate(classifier)
    report["calibration"] = Calibration.of(classifier).as_json()
    if args.real:
        report["real_inputs"] = real_input_accuracy(classifier, n=args.real_size, numbers=True)
        report["non_digits"] = non_digit_flagging(classifier)
    if args.scores:
        report["score_baselines"] = score_baselines(classifier, lambda images: logits(classifier.model, images))
    if args.confusion_png:
        plot_confusion_matrix(report["confusion_matrix"], args.confusion_png, title=f"MNIST test, model {classifier.version}")
    if args.reliability_png:
        test = load_split("test")
        plot_reliability(
            classifier.probabilities(to_model_input(test.images)), test.labels, Calibration.of(classifier).temperature,
            args.reliability_png, title=f"MNIST test, model {classifier.version}",
        )
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"model {classifier.version}: accuracy {report['accuracy']:.4%} on {report['n']} MNIST test images ({report['errors']} errors)")
    print(f"flagged (unsure or not a digit): {report['flagged']:.2%}; accuracy of the rest {report['accuracy_not_flagged']:.4%}; "
          f"ECE {report['ece_before']:.2%} before the temperature, {report['ece_after']:.2%} after")
    print("digit  precision  recall  f1      support")
    for digit, row in report["per_class"].items():
        print(f"{digit:>5}  {row['precision']:.4f}     {row['recall']:.4f}  {row['f1']:.4f}  {row['support']}")
    for kind, result in report.get("real_inputs", {}).items():
        if kind == "numbers":
            print(f"{kind:>12}: {result['exact']:.2%} of {result['n']} read exactly, {result['per_digit']:.2%} of digits "
                  f"({result['wrong_count']} with the wrong count, {result['refused']} refused)")
            continue
        one = f", {result['one_digit']:.1%} read as one digit" if "one_digit" in result else ""
        print(f"{kind:>12}: {result['accuracy']:.2%} of {result['n']} ({result['refused']} refused{one}), {result['flagged']:.1%} flagged, "
              f"ECE {result['ece_before']:.2%} -> {result['ece_after']:.2%}")
    for style, result in report.get("non_digits", {}).items():
        groups = ", ".join(f"{group} {share:.0%}" for group, share in result["by_group"].items())
        print(f"{'not digits, ' + style:>22}: {result['flagged']:.1%} of {result['n']} flagged ({groups})")
    for name, result in report.get("score_baselines", {}).items():
        print(f"{name + ' alone':>22}: {result['non_digits_flagged']:.1%} of non-digits flagged, {result['digits_flagged_mnist_test']:.2%} of MNIST test")
    return 0


def _check_model(path: Path | None) -> None:
    """A missing or damaged current model is reported before TensorFlow spends seconds loading."""
    from .versions import resolve_current

    if path is None:
        resolve_current()


def run_predict(args) -> int:
    from .preprocess import preprocess_files

    _check_model(args.model)

    # Preprocessing starts first, so worker processes read the images while the model loads.
    with preprocess_files(_expand(args.images), workers=args.workers) as prepared:
        from .inference import load_serving_classifier
        from .predict import predict_prepared

        classifier = load_serving_classifier(args.model)
        failed = False
        for result in predict_prepared(classifier, prepared):
            failed |= "error" in result
            print(json.dumps(result), flush=False)
    sys.stdout.flush()
    return 1 if failed else 0


def _without_defaults(**options) -> dict:
    return {key: value for key, value in options.items() if value is not None}


def run_finetune(args) -> int:
    from .finetune import finetune
    from .versions import ModelStoreError

    options = _without_defaults(
        epochs=args.epochs, steps=args.steps_per_epoch, max_mnist_drop=args.max_mnist_drop, min_holdout_gain=args.min_holdout_gain
    )
    try:
        result = finetune(args.feedback_dir, args.model_dir, dry_run=args.dry_run, verbose=0 if args.json else 2, **options)
    except ModelStoreError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(json.dumps(result.as_json()) if args.json else "\n".join(report_lines(result)))
    return 0


def run_models(args) -> int:
    from .versions import list_versions

    entries = list_versions(args.model_dir)
    if not entries:
        raise FileNotFoundError(f"No model versions in {args.model_dir or 'model/'}. Train one with `python -m digit_classifier train`.")
    print(json.dumps([entry.as_json() for entry in entries]) if args.json else "\n".join(version_lines(entries)))
    if not any(entry.current for entry in entries):
        print("warning: no version is current and usable: `rollback --to VERSION` installs one", file=sys.stderr)
    return 0


def run_rollback(args) -> int:
    from .versions import ModelStoreError, rollback

    try:
        change = rollback(args.model_dir, to=args.to)
    except ModelStoreError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"The current model is now {change.current} (was {change.previous or 'none'}).")
    return 0


def run_finetune_demo(args) -> int:
    from .finetune_demo import DemoFolderError, simulate
    from .versions import ModelStoreError

    try:
        summary = simulate(args.work_dir, **_without_defaults(epochs=args.epochs), verbose=0 if args.json else 2)
    except (DemoFolderError, ModelStoreError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(summary.as_json()) if args.json else "\n".join(demo_lines(summary)))
    return 0


# Reports as text (the only place that formats them) --------------------------------------


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"


def report_lines(result) -> list[str]:
    """`finetune`: the feedback found, the before/after table and the decision."""
    summary = result.feedback
    lines = [
        f"Feedback in {result.feedback_dir}: {summary.count} usable images "
        f"({summary.train} for training, {summary.holdout} held out; "
        f"{summary.duplicates} duplicates, {len(summary.skipped)} skipped)"
    ]
    if summary.holdout_note:
        lines.append(summary.holdout_note)
    before, after = result.before, result.after
    if before and after:
        rows = (
            (f"MNIST test ({before.mnist_test_samples})", before.mnist_test_accuracy, after.mnist_test_accuracy),
            (f"feedback hold-out ({before.feedback_holdout_samples})", before.feedback_holdout_accuracy, after.feedback_holdout_accuracy),
            (f"feedback training part ({before.feedback_train_samples})", before.feedback_train_accuracy, after.feedback_train_accuracy),
        )
        if before.feedback_holdout_non_digits:
            rows += ((f"hold-out non-digits flagged ({before.feedback_holdout_non_digits})",
                      before.feedback_holdout_not_a_digit_rate, after.feedback_holdout_not_a_digit_rate),)
        lines.append(f"{'':32}  {'before':28}  after")
        lines.append(f"{'model':32}  {before.model_version:28}  {after.model_version}")
        lines.extend(f"{label:32}  {_percent(was):28}  {_percent(now)}" for label, was, now in rows)
    lines.append(result.message)
    return lines


def demo_lines(summary) -> list[str]:
    """`finetune-demo`: the fine-tuning report between what was collected and what it achieved."""
    from .finetune import MAX_MNIST_DROP_PP
    from .finetune_demo import DEMO_TARGET_ERROR_REDUCTION

    held, mnist = summary.heldout, summary.mnist_test
    return [
        f"Source: {summary.source}",
        f"Feedback pool {summary.feedback_pool} images -> {summary.mistakes_saved} mistakes saved as corrections",
        *report_lines(summary.finetune),
        f"Held-out optdigits ({held.n}): {100 * held.before:.2f} % -> {100 * held.after:.2f} % "
        f"(error {100 * summary.heldout_error_reduction:.0f} % lower; target {100 * DEMO_TARGET_ERROR_REDUCTION:.0f} %)",
        f"MNIST test: {_percent(mnist.before)} -> {_percent(mnist.after)} (drop {mnist.drop_pp:.2f} pp; limit {MAX_MNIST_DROP_PP:.2f} pp)",
        "Acceptance: " + ("passed" if summary.accepted else "NOT passed"),
    ]


def version_lines(entries) -> list[str]:
    """`models`: one line per version, the current one marked with *, damaged ones say why."""
    from .metadata import ListedVersion

    lines = [f"  {'version':30} {'kind':10} {'parent':22} {'created':27} {'MNIST test':>10}  feedback"]
    for entry in entries:
        listed = ListedVersion.from_json(entry.metadata)
        accuracy = listed.test_accuracy
        shown = f"{100 * accuracy:8.2f} %" if isinstance(accuracy, (int, float)) and not isinstance(accuracy, bool) else f"{'-':>10}"
        count = "-" if listed.feedback_count is None else listed.feedback_count
        marker = "*" if entry.current else " "
        note = "  (not promoted)" if listed.kind == "finetuned" and not listed.promoted else ""
        if entry.problem:
            note = f"  (unusable: {entry.problem})"
        lines.append(
            f"{marker} {entry.name:30} {str(listed.kind or '?'):10} {str(listed.parent or '-'):22} "
            f"{str(listed.created or '-'):27} {shown}  {count}{note}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handlers = {
        "train": run_train, "evaluate": run_evaluate, "predict": run_predict,
        "finetune": run_finetune, "models": run_models, "rollback": run_rollback, "finetune-demo": run_finetune_demo,
    }
    from .versions import ModelUnavailableError
    from .worker import WorkerFailed

    try:
        return handlers[args.command](args)
    except (FileNotFoundError, ModelUnavailableError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except WorkerFailed as error:  # a preprocessing process was killed (out of memory, say)
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
