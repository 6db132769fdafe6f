"""The wrong_predictions/ store, on real files in a temporary folder."""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import threading
import zipfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digit_classifier import config, feedback
from digit_classifier.feedback import InvalidLabelError
from digit_classifier.decode import WORK_MAX_SIDE
from digit_classifier.preprocess import PREPROCESSING_VERSION, UnreadableImageError, preprocess

METADATA_KEYS = {
    "format_version", "true_label", "predicted_label", "confidence", "probabilities", "source",
    "original_filename", "model_version", "preprocessing_version", "saved_at", "sha256",
}
BAD_LABELS = [
    "../3", "3/", "10", -1, True, 3.5, None, "7/../x", "", " 3", "03", "\u0663", 11, 10.0,
    "Not a digit", "NOT_A_DIGIT", "not_a_digit/", "../not_a_digit", b"not_a_digit",
]


def digit_image(seed: int, channels: int = 4) -> np.ndarray:
    """A distinct small uint8 image (alpha varies when channels == 4)."""
    return np.random.default_rng(seed).integers(0, 256, size=(20, 30, channels), dtype=np.uint8)


def probabilities_for(label: int) -> list[float]:
    probabilities = [0.01] * 10
    probabilities[label] = 0.91
    return probabilities


def save(image, true_label, root: Path, **overrides) -> feedback.SaveResult:
    arguments = dict(predicted_label=1, confidence=0.91, probabilities=probabilities_for(1), source="draw", root=root)
    return feedback.save_correction(image, true_label, **{**arguments, **overrides})


def all_files(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")} if root.exists() else set()


def sidecar(item: feedback.FeedbackItem) -> dict:
    return json.loads(item.path.with_suffix(".json").read_text())


def jpeg_bytes(seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(digit_image(seed, channels=3)).save(buffer, format="JPEG")
    return buffer.getvalue()


# Round trip ------------------------------------------------------------------------------


def test_round_trip_keeps_pixels_alpha_and_metadata(tmp_path):
    image = digit_image(1)
    probabilities = probabilities_for(2)
    before = datetime.now(timezone.utc)
    result = save(
        image, 7, tmp_path, predicted_label=2, confidence=0.91, probabilities=probabilities,
        source="upload", original_filename="../my digit.png", model_version="v3",
    )

    assert result.created
    [item] = feedback.list_items(tmp_path)
    assert item == result.item
    png = item.path.read_bytes()
    sha256 = hashlib.sha256(png).hexdigest()
    assert item.path == tmp_path / "7" / f"{sha256[:16]}.png"
    assert item.id == f"7/{sha256[:16]}.png"
    assert item.label == 7
    with Image.open(item.path) as stored:
        assert stored.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(stored), image)
    metadata = json.loads(item.path.with_suffix(".json").read_text())
    assert metadata["undo_tokens"] == [result.undo_token]
    del metadata["undo_tokens"]  # bookkeeping for Undo, not part of what an item says
    assert metadata == item.metadata
    assert set(metadata) == METADATA_KEYS
    assert metadata["format_version"] == 1
    assert metadata["true_label"] == 7
    assert metadata["predicted_label"] == 2
    assert metadata["confidence"] == pytest.approx(0.91)
    assert metadata["probabilities"] == pytest.approx(probabilities)
    assert metadata["source"] == "upload"
    assert metadata["original_filename"] == "my_digit.png"
    assert metadata["model_version"] == "v3"
    assert metadata["preprocessing_version"] == PREPROCESSING_VERSION
    assert metadata["sha256"] == sha256
    assert metadata["saved_at"].endswith("Z")
    assert before - timedelta(seconds=1) <= item.saved_at <= datetime.now(timezone.utc)


def test_encode_png_accepts_file_bytes_and_keeps_only_the_first_frame():
    frames = [Image.fromarray(np.full((8, 8), value, dtype=np.uint8)) for value in (40, 200)]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:])

    png = feedback.encode_png(gif.getvalue())

    with Image.open(io.BytesIO(png)) as decoded:
        assert decoded.format == "PNG"
        assert getattr(decoded, "n_frames", 1) == 1
        assert np.asarray(decoded.convert("L")).max() == 40


def test_a_large_picture_is_stored_at_the_size_preprocessing_uses(tmp_path):
    picture = Image.new("RGB", (3000, 2000), (235, 230, 220))
    picture.paste((20, 20, 30), (1300, 600, 1500, 1500))  # a thick "1"
    original = io.BytesIO()
    picture.save(original, format="PNG")
    item = save(original.getvalue(), 1, tmp_path, source="upload").item
    stored = Image.open(item.path)
    assert stored.size == (WORK_MAX_SIDE, round(2000 * WORK_MAX_SIDE / 3000))
    assert np.array_equal(preprocess(item.path), preprocess(original.getvalue()))


def test_list_items_is_newest_first(tmp_path):
    first = save(digit_image(1), 3, tmp_path).item
    second = save(digit_image(2), 3, tmp_path).item
    assert [item.id for item in feedback.list_items(tmp_path)] == [second.id, first.id]


# Duplicates ------------------------------------------------------------------------------


def test_same_image_under_same_label_is_stored_once(tmp_path):
    first = save(digit_image(1), 4, tmp_path)
    image_bytes = first.item.path.read_bytes()

    again = save(digit_image(1), 4, tmp_path, predicted_label=9, source="upload")

    assert first.created and not again.created
    assert again.item == first.item  # the first save's description stands
    assert len(feedback.list_items(tmp_path)) == 1
    assert sorted(path.name for path in (tmp_path / "4").iterdir()) == sorted([first.item.path.name, first.item.path.with_suffix(".json").name])
    assert first.item.path.read_bytes() == image_bytes
    assert sidecar(first.item)["undo_tokens"] == [first.undo_token, again.undo_token]


def test_different_images_or_labels_give_different_items(tmp_path):
    paths = {
        save(digit_image(1), 4, tmp_path).item.path,
        save(digit_image(2), 4, tmp_path).item.path,
        save(digit_image(1), 5, tmp_path).item.path,
    }
    assert len(paths) == 3
    assert len(feedback.list_items(tmp_path)) == 3


# Atomicity -------------------------------------------------------------------------------


def test_saves_leave_no_temporary_files(tmp_path):
    for seed in range(5):
        save(digit_image(seed), seed, tmp_path)
    assert not [name for name in all_files(tmp_path) if Path(name).name.startswith(".")]
    assert len(all_files(tmp_path)) == 5 + 10  # five label folders, five images, five sidecars


@pytest.mark.parametrize("failing", ["link", "replace"], ids=["png-write", "json-write"])
def test_failed_write_leaves_nothing_visible(tmp_path, monkeypatch, failing):
    save(digit_image(0), 3, tmp_path)
    files_before, items_before = all_files(tmp_path), feedback.list_items(tmp_path)

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, failing, fail)  # the image appears by os.link, its sidecar by os.replace
    with pytest.raises(OSError, match="disk full"):
        save(digit_image(1), 3, tmp_path)
    monkeypatch.undo()

    assert all_files(tmp_path) == files_before
    assert feedback.list_items(tmp_path) == items_before


# Validation and path safety --------------------------------------------------------------


@pytest.mark.parametrize("label", BAD_LABELS, ids=repr)
def test_bad_label_is_rejected_and_nothing_written(tmp_path, label):
    with pytest.raises(InvalidLabelError):
        save(digit_image(0), label, tmp_path)
    with pytest.raises(InvalidLabelError):
        feedback.validate_label(label)
    assert all_files(tmp_path) == set()


@pytest.mark.parametrize(
    "label, expected",
    [(0, 0), (9, 9), ("0", 0), ("9", 9), (np.int64(5), 5), ("not_a_digit", 10), (10, 10), (np.int64(10), 10)],
)
def test_valid_labels(label, expected):
    assert feedback.validate_label(label) == expected


@pytest.mark.parametrize("label", ["not_a_digit", 10])
def test_not_a_digit_is_refused_where_only_a_digit_makes_sense(tmp_path, label):
    with pytest.raises(InvalidLabelError):
        feedback.validate_digit(label)
    with pytest.raises(InvalidLabelError):  # what the model answered is always one of its ten digits
        save(digit_image(0), 3, tmp_path, predicted_label=label)
    assert all_files(tmp_path) == set()


@pytest.mark.parametrize(
    "change, error",
    [
        (dict(predicted_label="x"), InvalidLabelError),
        (dict(source="camera"), ValueError),
        (dict(probabilities=[0.1] * 9), ValueError),
        (dict(probabilities=[float("nan")] * 10), ValueError),
        (dict(confidence=97.0), ValueError),
    ],
    ids=["predicted_label", "source", "nine-probabilities", "nan-probabilities", "confidence"],
)
def test_bad_prediction_details_are_rejected_and_nothing_written(tmp_path, change, error):
    with pytest.raises(error):
        save(digit_image(0), 3, tmp_path, **change)
    assert all_files(tmp_path) == set()


@pytest.mark.parametrize("data", [b"", b"not an image", jpeg_bytes()[:200]], ids=["empty", "text", "truncated-jpeg"])
def test_undecodable_image_is_rejected_and_nothing_written(tmp_path, data):
    with pytest.raises(UnreadableImageError):
        save(data, 3, tmp_path)
    assert all_files(tmp_path) == set()


@pytest.mark.parametrize(
    "name, expected",
    [
        ("../../etc/passwd", "passwd"),
        ("a\\b.png", "b.png"),
        ("C:\\Users\\me\\seven.jpg", "seven.jpg"),
        ("my digit (1).png", "my_digit__1_.png"),
        ("a\x00b.png", "a_b.png"),
        ("..", None),
        ("uploads/", None),
        ("", None),
        (None, None),
    ],
)
def test_sanitize_filename(name, expected):
    assert feedback.sanitize_filename(name) == expected


def test_sanitize_filename_shortens_long_names_and_keeps_the_suffix():
    name = feedback.sanitize_filename("x" * 300 + ".png")
    assert len(name) == 100
    assert name.endswith(".png")


@pytest.mark.parametrize("name", ["../../etc/passwd", "a\\b.png", "\x00/..\\.x", "." * 200, "/" * 5 + "é.png"])
def test_sanitized_filename_is_never_a_path(name):
    safe = feedback.sanitize_filename(name)
    assert safe is None or (
        len(safe) <= 100 and not safe.startswith(".") and not set(safe) & {"/", "\\", "\x00"}
    )


# Hand-dropped files ----------------------------------------------------------------------


def test_hand_dropped_image_is_listed_and_other_files_are_ignored(tmp_path):
    folder = tmp_path / "4"
    folder.mkdir()
    (folder / "photo.JPG").write_bytes(jpeg_bytes())
    (folder / "notes.txt").write_text("not an image")
    (folder / ".tmp123").write_bytes(b"half a file")
    (folder / ".tmp123.png").write_bytes(jpeg_bytes())
    (folder / "folder.png").mkdir()
    (tmp_path / "12").mkdir()
    (tmp_path / "12" / "photo.jpg").write_bytes(jpeg_bytes())
    (tmp_path / "x.png").write_bytes(jpeg_bytes())

    [item] = feedback.list_items(tmp_path)

    assert (item.id, item.label, item.metadata) == ("4/photo.JPG", 4, {})
    assert item.saved_at == datetime.fromtimestamp(item.path.stat().st_mtime, timezone.utc)
    assert feedback.counts(tmp_path)[4] == 1


def test_unreadable_sidecar_counts_as_no_metadata(tmp_path):
    item = save(digit_image(0), 2, tmp_path).item
    item.path.with_suffix(".json").write_text("{ half")
    [listed] = feedback.list_items(tmp_path)
    assert listed.path == item.path and listed.metadata == {}


# Delete, relabel, undo, counts, export ---------------------------------------------------


def test_delete_removes_image_and_sidecar(tmp_path):
    kept = save(digit_image(1), 3, tmp_path).item
    deleted = save(digit_image(2), 3, tmp_path).item
    feedback.delete_item(deleted)
    assert not deleted.path.exists()
    assert not deleted.path.with_suffix(".json").exists()
    assert feedback.list_items(tmp_path) == [kept]


def test_relabel_moves_files_and_updates_true_label(tmp_path):
    saved = save(digit_image(1), 3, tmp_path)
    item = saved.item

    moved = feedback.relabel(item, "5")

    assert moved.path == tmp_path / "5" / item.path.name
    assert not item.path.exists() and not item.path.with_suffix(".json").exists()
    on_disk = json.loads(moved.path.with_suffix(".json").read_text())
    assert on_disk.pop("undo_tokens") == [saved.undo_token]  # an Undo of that save still finds its token
    assert on_disk == moved.metadata == {**item.metadata, "true_label": 5}
    assert feedback.list_items(tmp_path) == [moved]


def test_relabel_onto_the_same_content_keeps_one_copy(tmp_path):
    source = save(digit_image(1), 3, tmp_path).item
    existing = save(digit_image(1), 5, tmp_path).item

    moved = feedback.relabel(source, 5)

    assert moved == existing
    assert not source.path.exists() and not source.path.with_suffix(".json").exists()
    assert feedback.list_items(tmp_path) == [existing]


def test_relabel_hand_dropped_image_moves_it_without_inventing_metadata(tmp_path):
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "photo.jpg").write_bytes(jpeg_bytes())
    [item] = feedback.list_items(tmp_path)

    moved = feedback.relabel(item, 7)

    assert moved.id == "7/photo.jpg" and moved.metadata == {}
    assert all_files(tmp_path) == {"1", "7", str(Path("7", "photo.jpg"))}


def test_relabel_to_a_bad_label_moves_nothing(tmp_path):
    item = save(digit_image(1), 3, tmp_path).item
    files = all_files(tmp_path)
    with pytest.raises(InvalidLabelError):
        feedback.relabel(item, "../5")
    assert all_files(tmp_path) == files


def test_undo_removes_only_what_the_save_created(tmp_path):
    created = save(digit_image(1), 3, tmp_path)
    duplicate = save(digit_image(1), 3, tmp_path)

    feedback.undo_save(duplicate)
    assert feedback.list_items(tmp_path) == [created.item]

    feedback.undo_save(created)
    assert feedback.list_items(tmp_path) == []


def test_counts_has_the_ten_digits_then_not_a_digit(tmp_path):
    assert feedback.counts(tmp_path / "missing") == dict.fromkeys(range(11), 0)
    assert list(feedback.counts(tmp_path / "missing")) == [*range(10), config.NOT_A_DIGIT_LABEL]
    for seed, label in enumerate([0, 0, 9, "not_a_digit", 10]):
        save(digit_image(seed), label, tmp_path)
    assert feedback.counts(tmp_path) == {**dict.fromkeys(range(11), 0), 0: 2, 9: 1, 10: 2}


def test_export_zip_holds_every_image_and_sidecar(tmp_path):
    item = save(digit_image(1), 3, tmp_path).item
    (tmp_path / "4").mkdir()
    (tmp_path / "4" / "photo.jpg").write_bytes(jpeg_bytes())
    (tmp_path / "4" / "notes.txt").write_text("ignored")

    with zipfile.ZipFile(io.BytesIO(feedback.export_zip(tmp_path))) as archive:
        names = set(archive.namelist())
        assert names == {item.id, item.id.replace(".png", ".json"), "4/photo.jpg"}
        assert json.loads(archive.read(item.id.replace(".png", ".json"))) == {**item.metadata, "undo_tokens": sidecar(item)["undo_tokens"]}
        with Image.open(io.BytesIO(archive.read(item.id))) as image:
            np.testing.assert_array_equal(np.asarray(image), digit_image(1))
        with Image.open(io.BytesIO(archive.read("4/photo.jpg"))) as image:
            assert image.format == "JPEG"


def test_default_root_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DIGIT_FEEDBACK_DIR", str(tmp_path))
    result = feedback.save_correction(
        digit_image(1), 6, predicted_label=0, confidence=0.5, probabilities=probabilities_for(0), source="draw"
    )
    assert result.item.path.parent == tmp_path / "6"


# Not a digit -------------------------------------------------------------------------------


def save_not_a_digit(seed: int, root: Path, **overrides) -> feedback.SaveResult:
    return save(digit_image(seed), "not_a_digit", root, predicted_label=4, predicted_status="not_a_digit", **overrides)


def test_a_picture_that_is_not_a_digit_is_stored_in_its_own_folder_with_its_sidecar(tmp_path):
    result = save_not_a_digit(1, tmp_path, confidence=0.31, probabilities=[0.05, 0.04, 0.05, 0.05, 0.31, 0.05, 0.1, 0.05, 0.08, 0.22])

    item = result.item
    assert result.created and item.label == config.NOT_A_DIGIT_LABEL and not item.is_digit
    assert item.path.parent == tmp_path / "not_a_digit" and item.id == f"not_a_digit/{item.path.name}"
    assert item.label_text == feedback.label_text(10) == "Not a digit"
    on_disk = sidecar(item)
    assert on_disk["true_label"] == "not_a_digit"  # the folder's name, as a digit's true_label is its folder's
    assert (on_disk["predicted_label"], on_disk["predicted_status"], on_disk["confidence"]) == (4, "not_a_digit", 0.31)
    assert set(on_disk) == METADATA_KEYS | {"predicted_status", "undo_tokens"}
    assert feedback.scan(tmp_path).items == [item] and item.metadata == {k: v for k, v in on_disk.items() if k != "undo_tokens"}
    assert all_files(tmp_path) == {"not_a_digit", f"not_a_digit/{item.path.name}", f"not_a_digit/{item.path.stem}.json"}


def test_undo_of_a_not_a_digit_save_removes_it(tmp_path):
    kept = save_not_a_digit(1, tmp_path)
    withdrawn = save_not_a_digit(2, tmp_path)
    assert feedback.undo_save(withdrawn) is True
    assert feedback.list_items(tmp_path) == [kept.item]


@pytest.mark.parametrize("status", ["maybe", "", "OK", 1])
def test_an_unknown_predicted_status_is_rejected_and_nothing_written(tmp_path, status):
    with pytest.raises(ValueError, match="predicted_status"):
        save(digit_image(0), "not_a_digit", tmp_path, predicted_status=status)
    assert all_files(tmp_path) == set()


def test_a_picture_dropped_into_not_a_digit_by_hand_counts_and_other_folders_do_not(tmp_path):
    (tmp_path / "not_a_digit").mkdir()
    (tmp_path / "not_a_digit" / "scribble.jpg").write_bytes(jpeg_bytes())
    for other in ("10", "Not_a_digit", "not_a_digit_old"):
        (tmp_path / other).mkdir()
        (tmp_path / other / "scribble.jpg").write_bytes(jpeg_bytes())

    [item] = feedback.list_items(tmp_path)
    assert (item.id, item.label, item.metadata) == ("not_a_digit/scribble.jpg", 10, {})
    assert feedback.counts(tmp_path)[config.NOT_A_DIGIT_LABEL] == 1


def test_relabel_moves_a_not_a_digit_to_a_digit_and_back_keeping_its_undo(tmp_path):
    saved = save_not_a_digit(1, tmp_path)

    as_four = feedback.relabel(saved.item, 4)
    assert as_four.path == tmp_path / "4" / saved.item.path.name and not saved.item.path.exists()
    assert sidecar(as_four)["true_label"] == 4 and as_four.metadata == {**saved.item.metadata, "true_label": 4}
    assert feedback.counts(tmp_path)[4] == 1 and feedback.counts(tmp_path)[10] == 0

    back = feedback.relabel(as_four, "not_a_digit")
    assert back.path == saved.item.path and not as_four.path.exists() and not as_four.path.with_suffix(".json").exists()
    assert sidecar(back)["true_label"] == "not_a_digit" and back.metadata == saved.item.metadata
    assert feedback.list_items(tmp_path) == [back]
    assert feedback.undo_save(saved) is True  # the save's token travelled with the item
    assert feedback.list_items(tmp_path) == []


def test_relabel_of_a_digit_to_not_a_digit_and_delete(tmp_path):
    item = save(digit_image(1), 3, tmp_path).item
    moved = feedback.relabel(item, config.NOT_A_DIGIT_LABEL)
    assert moved.id == f"not_a_digit/{item.path.name}" and sidecar(moved)["true_label"] == "not_a_digit"
    feedback.delete_item(moved)
    assert feedback.list_items(tmp_path) == [] and list((tmp_path / "not_a_digit").iterdir()) == []


def test_export_zip_holds_the_not_a_digit_folder(tmp_path):
    digit = save(digit_image(1), 3, tmp_path).item
    other = save_not_a_digit(2, tmp_path).item
    with zipfile.ZipFile(io.BytesIO(feedback.export_zip(tmp_path))) as archive:
        names = set(archive.namelist())
        assert names == {digit.id, f"3/{digit.path.stem}.json", other.id, f"not_a_digit/{other.path.stem}.json"}
        assert json.loads(archive.read(f"not_a_digit/{other.path.stem}.json"))["true_label"] == "not_a_digit"
        assert archive.read(other.id) == other.path.read_bytes()


def test_a_not_a_digit_folder_that_is_a_link_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.png").write_bytes(jpeg_bytes())
    root = tmp_path / "store"
    root.mkdir()
    (root / "not_a_digit").symlink_to(outside, target_is_directory=True)

    listing = feedback.scan(root)
    assert listing.items == [] and [str(entry) for entry in listing.skipped] == ["not_a_digit: skipped: a label folder must not be a link"]
    with pytest.raises(feedback.StoreError):
        save_not_a_digit(1, root)
    with pytest.raises(feedback.StoreError):
        feedback.relabel(save(digit_image(1), 3, root).item, "not_a_digit")
    assert [path.name for path in outside.iterdir()] == ["victim.png"]


@pytest.mark.parametrize("value", ["Not a digit", 10, "10", None])
def test_a_sidecar_true_label_that_names_no_folder_is_unknown(tmp_path, value):
    item = save_not_a_digit(1, tmp_path).item
    item.path.with_suffix(".json").write_text(json.dumps({**sidecar(item), "true_label": value}))
    [listed] = feedback.list_items(tmp_path)
    assert listed.label == 10 and "true_label" not in listed.metadata and listed.metadata["predicted_status"] == "not_a_digit"


# Concurrency -----------------------------------------------------------------------------

WORKERS, IMAGES_PER_WORKER = 8, 50


def save_many(root: Path, worker: int, start) -> None:
    start.wait()
    for index in range(IMAGES_PER_WORKER):
        image = digit_image(worker * 1000 + index, channels=1)[..., 0]
        image[0, :2] = worker, index  # distinct even if two random images were equal
        save(image, index % 10, root)


@pytest.mark.slow
def test_concurrent_saves_from_many_processes(tmp_path):
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    processes = [context.Process(target=save_many, args=(tmp_path, worker, start)) for worker in range(WORKERS)]
    for process in processes:
        process.start()
    start.set()
    for process in processes:
        process.join(timeout=60)

    assert [process.exitcode for process in processes] == [0] * WORKERS
    items = feedback.list_items(tmp_path)
    assert len(items) == WORKERS * IMAGES_PER_WORKER
    assert sum(feedback.counts(tmp_path).values()) == WORKERS * IMAGES_PER_WORKER
    for item in items:
        with Image.open(item.path) as image:
            image.load()
        metadata = json.loads(item.path.with_suffix(".json").read_text())
        assert metadata["sha256"] == hashlib.sha256(item.path.read_bytes()).hexdigest()
    assert not [name for name in all_files(tmp_path) if Path(name).name.startswith(".")]


# Concurrent saves of one image -----------------------------------------------------------

SAME_IMAGE_ROUNDS = 5


def save_same_image(root: Path, start, results) -> None:
    start.wait()
    for round_ in range(SAME_IMAGE_ROUNDS):
        result = save(digit_image(100 + round_), 3, root)
        results.put((round_, result.created, result.undo_token))


def test_concurrent_saves_of_one_image_create_it_exactly_once_and_undo_keeps_it_for_the_others(tmp_path):
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    processes = [context.Process(target=save_same_image, args=(tmp_path, start, results)) for _ in range(WORKERS)]
    for process in processes:
        process.start()
    start.set()
    outcomes = [results.get(timeout=60) for _ in range(WORKERS * SAME_IMAGE_ROUNDS)]
    for process in processes:
        process.join(timeout=60)

    assert [process.exitcode for process in processes] == [0] * WORKERS
    for round_ in range(SAME_IMAGE_ROUNDS):
        mine = [(created, token) for r, created, token in outcomes if r == round_]
        assert sum(created for created, _ in mine) == 1, mine
    items = {item.path.read_bytes(): item for item in feedback.list_items(tmp_path)}
    assert len(items) == SAME_IMAGE_ROUNDS
    for round_ in range(SAME_IMAGE_ROUNDS):
        item = items[feedback.encode_png(digit_image(100 + round_))]
        assert sorted(sidecar(item)["undo_tokens"]) == sorted(token for r, _, token in outcomes if r == round_)

    first = items[feedback.encode_png(digit_image(100))]
    creator_token = next(token for r, created, token in outcomes if r == 0 and created)
    assert feedback.undo_save(feedback.SaveResult(first, True, creator_token)) is False
    assert first.path.is_file(), "another session's save still holds the item"
    assert len(sidecar(first)["undo_tokens"]) == WORKERS - 1


def test_undo_of_the_creating_save_keeps_an_item_another_save_holds(tmp_path):
    created = save(digit_image(1), 3, tmp_path)
    other = save(digit_image(1), 3, tmp_path)

    assert feedback.undo_save(created) is False
    assert [item.path for item in feedback.list_items(tmp_path)] == [created.item.path]
    assert sidecar(created.item)["undo_tokens"] == [other.undo_token]

    assert feedback.undo_save(created) is False  # a second undo of the same save changes nothing
    assert feedback.undo_save(other) is True
    assert feedback.list_items(tmp_path) == []


def test_a_save_of_a_hand_dropped_image_holds_nothing_and_undo_keeps_it(tmp_path):
    png = feedback.encode_png(digit_image(1))
    (tmp_path / "3").mkdir()
    (tmp_path / "3" / f"{hashlib.sha256(png).hexdigest()[:16]}.png").write_bytes(png)
    result = save(digit_image(1), 3, tmp_path)
    assert not result.created and result.undo_token is None
    feedback.undo_save(result)
    assert len(feedback.list_items(tmp_path)) == 1


# The store is a closed world -------------------------------------------------------------


@pytest.fixture
def outside(tmp_path) -> Path:
    """A folder outside the store, with an image and a secret the store must never reach."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "victim.png").write_bytes(feedback.encode_png(digit_image(7)))
    (folder / "secret.txt").write_text("root:x:0:0:not for the store\n")
    return folder


@pytest.fixture
def store(tmp_path) -> Path:
    root = tmp_path / "store"
    root.mkdir()
    return root


def test_file_links_are_skipped_reported_and_never_read(store, outside):
    kept = save(digit_image(1), 3, store).item
    (store / "3" / "x.png").symlink_to(outside / "victim.png")
    (store / "3" / "x.json").symlink_to(outside / "secret.txt")
    (store / "3" / "y.png").symlink_to(outside / "secret.txt")

    listing = feedback.scan(store)

    assert listing.items == [kept]
    assert sorted(map(str, listing.skipped)) == [f"3/{name}: skipped: not a regular file" for name in ("x.json", "x.png", "y.png")]
    with zipfile.ZipFile(io.BytesIO(feedback.export_zip(store))) as archive:
        assert sorted(archive.namelist()) == sorted([kept.id, kept.id.replace(".png", ".json")])
        assert not any(b"not for the store" in archive.read(name) for name in archive.namelist())
    linked = feedback.FeedbackItem(store / "3" / "x.png", 3, {})
    with pytest.raises(feedback.StoreError):
        feedback.read_image(linked)
    with pytest.raises(feedback.StoreError):
        feedback.relabel(linked, 4)
    feedback.delete_item(linked)  # removes the link itself, never its target
    assert (outside / "victim.png").is_file() and not (store / "3" / "x.png").is_symlink()


def test_a_label_folder_that_is_a_link_is_refused_everywhere(store, outside):
    (store / "5").symlink_to(outside, target_is_directory=True)
    before = {path.name: path.read_bytes() for path in outside.iterdir()}
    kept = save(digit_image(1), 3, store).item

    listing = feedback.scan(store)
    assert listing.items == [kept]
    assert [str(entry) for entry in listing.skipped] == ["5: skipped: a label folder must not be a link"]
    with pytest.raises(feedback.StoreError):
        save(digit_image(2), 5, store)
    inside_the_link = feedback.FeedbackItem(store / "5" / "victim.png", 5, {})
    for operation in (feedback.delete_item, feedback.read_image, lambda item: feedback.relabel(item, 3)):
        with pytest.raises(feedback.StoreError):
            operation(inside_the_link)
    with pytest.raises(feedback.StoreError):
        feedback.relabel(kept, 5)
    assert {path.name: path.read_bytes() for path in outside.iterdir()} == before
    assert kept.path.is_file()
    with zipfile.ZipFile(io.BytesIO(feedback.export_zip(store))) as archive:
        assert not [name for name in archive.namelist() if name.startswith("5/")]


def _list_in_thread(root: Path) -> tuple[threading.Thread, list]:
    found = []
    thread = threading.Thread(target=lambda: found.append(feedback.scan(root)), daemon=True)
    thread.start()
    return thread, found


def test_a_fifo_named_like_a_sidecar_or_an_image_never_hangs_the_listing(store):
    item = save(digit_image(1), 3, store).item
    item.path.with_suffix(".json").unlink()
    os.mkfifo(item.path.with_suffix(".json"))
    os.mkfifo(store / "3" / "pipe.png")

    thread, found = _list_in_thread(store)
    thread.join(timeout=1.0)

    assert not thread.is_alive(), "listing the store blocked on a FIFO"
    [listing] = found
    assert [listed.path for listed in listing.items] == [item.path] and listing.items[0].metadata == {}
    assert sorted(map(str, listing.skipped)) == [f"3/{item.path.stem}.json: skipped: not a regular file", "3/pipe.png: skipped: not a regular file"]
    feedback.export_zip(store)


def test_a_name_that_is_not_utf8_is_listed_escaped_zipped_moved_and_deleted(store):
    png = feedback.encode_png(digit_image(1))
    (store / "3").mkdir()
    raw_name = b"\xff\xfe photo.png"
    with open(os.path.join(os.fsencode(store / "3"), raw_name), "wb") as handle:
        handle.write(png)

    [item] = feedback.list_items(store)

    assert item.name == "\\xff\\xfe photo.png" and item.id == "3/\\xff\\xfe photo.png"
    item.id.encode("utf-8")  # can be shown, sent to a browser, used as a widget key
    with zipfile.ZipFile(io.BytesIO(feedback.export_zip(store))) as archive:
        assert archive.namelist() == [item.id]
        assert archive.read(item.id) == png
    moved = feedback.relabel(item, 4)
    assert os.listdir(os.fsencode(store / "4")) == [raw_name]
    feedback.delete_item(moved)
    assert feedback.list_items(store) == []


def test_display_name_escapes_without_ever_merging_two_names():
    names = ["a.png", "\udcff.png", "\\xff.png", "tab\there.png", "é.png"]
    shown = [feedback.display_name(name) for name in names]
    assert shown == ["a.png", "\\xff.png", "\\\\xff.png", "tab\\u0009here.png", "é.png"]
    assert len(set(shown)) == len(names)


@pytest.mark.parametrize(
    "field, value",
    [
        ("saved_at", "9999-12-31T23:59:59-12:00"),
        ("saved_at", "yesterday"),
        ("saved_at", 12),
        ("predicted_label", "seven"),
        ("predicted_label", True),
        ("confidence", 7),
        ("probabilities", [0.5]),
        ("source", {"nested": "object"}),
        ("original_filename", "../../etc/passwd"),
        ("sha256", None),
    ],
)
def test_a_bad_sidecar_field_is_unknown_for_that_item_only(store, field, value):
    bad = save(digit_image(1), 3, store).item
    good = save(digit_image(2), 3, store).item
    on_disk = sidecar(bad)
    on_disk[field] = value
    bad.path.with_suffix(".json").write_text(json.dumps(on_disk))

    items = {item.path: item for item in feedback.list_items(store)}

    assert field not in items[bad.path].metadata
    assert {k: v for k, v in items[bad.path].metadata.items()} == {k: v for k, v in bad.metadata.items() if k != field}
    assert items[good.path] == good
    assert items[bad.path].saved_at is not None  # the file's own time stands in
    assert feedback.counts(store)[3] == 2
    with zipfile.ZipFile(io.BytesIO(feedback.export_zip(store))) as archive:
        assert len(archive.namelist()) == 4


# Numbers: one save per corrected number -------------------------------------------------------


@dataclass
class ReadDigit:
    label: int
    confidence: float
    probabilities: list[float]
    box: tuple[int, int, int, int] | None


def three_digit_picture() -> tuple[bytes, list[ReadDigit]]:
    """Three dark blobs on white, 100 px apart, and a reading of them as 1, 2, 3 with their boxes."""
    picture = Image.new("L", (320, 120), 255)
    pixels = np.asarray(picture).copy()
    digits = []
    for i in range(3):
        x0 = 20 + 100 * i
        pixels[20:100, x0 + 20 : x0 + 40] = 0
        digits.append(ReadDigit(i + 1, 0.9, [0.9 if d == i + 1 else 0.1 / 9 for d in range(10)], (x0 + 20, 20, x0 + 40, 100)))
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue(), digits


def files_in(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_a_number_saves_each_digit_read_wrong_as_a_crop_with_its_place_and_the_picture_once(feedback_root):
    picture, digits = three_digit_picture()
    result = feedback.save_number_correction(picture, digits, "173", source="upload", original_filename="n.png", model_version="v1")

    assert result.matched and result.reading == "123" and result.typed == "173"
    [crop] = result.crops
    assert crop.label == 7 and crop.path.parent == feedback_root / "7"
    assert files_in(feedback_root) == sorted([f"7/{crop.path.name}", f"7/{crop.path.stem}.json", f"sources/{result.source.name}", f"sources/{result.source.stem}.json"])
    sidecar = json.loads(crop.path.with_suffix(".json").read_text())
    source_sha = hashlib.sha256(result.source.read_bytes()).hexdigest()
    assert result.source.name == f"{source_sha}.png"
    expected = {
        "true_label": 7, "predicted_label": 2, "position": 1, "count": 3, "reading": "123", "typed": "173",
        "box": [140, 20, 160, 100], "source_sha256": source_sha, "source_size": [320, 120], "source": "upload",
        "original_filename": "n.png", "model_version": "v1", "sha256": hashlib.sha256(crop.path.read_bytes()).hexdigest(),
    }
    assert {key: sidecar[key] for key in expected} == expected
    assert crop.metadata == {key: value for key, value in sidecar.items() if key != "undo_tokens"}  # every field valid
    with Image.open(crop.path) as image:  # the box and 5 % of its larger side (4 px) + 2 px on each side
        assert image.size == (20 + 2 * 6, 80 + 2 * 6)
    assert feedback.read_source(source_sha) == result.source.read_bytes()
    assert [item.id for item in feedback.scan().items] == [crop.id]  # sources/ is not a digit folder

    assert feedback.undo_number_save(result) == 2
    assert files_in(feedback_root) == []


def test_a_number_typed_with_another_length_keeps_the_picture_in_unmatched_only(feedback_root):
    picture, digits = three_digit_picture()
    result = feedback.save_number_correction(picture, digits, "12 34", source="draw")

    assert not result.matched and result.crops == () and result.typed == "1234"
    assert result.unmatched.parent == feedback_root / "unmatched"
    assert feedback.scan().items == []
    [kept] = feedback.scan_unmatched()
    assert kept.path == result.unmatched
    assert (kept.metadata["reading"], kept.metadata["typed"], kept.metadata["source"]) == ("123", "1234", "draw")
    assert kept.metadata["boxes"] == [list(digit.box) for digit in digits]
    assert feedback.read_unmatched(kept) == feedback.encode_png(picture)

    assert feedback.undo_number_save(result) == 1
    assert files_in(feedback_root) == []


def test_two_saves_from_one_picture_share_its_source_and_each_undo_withdraws_only_its_own(feedback_root):
    picture, digits = three_digit_picture()
    first = feedback.save_number_correction(picture, digits, "923", source="upload")
    second = feedback.save_number_correction(picture, digits, "128", source="upload")
    assert first.source == second.source and second.holds[0].created is False

    assert feedback.undo_number_save(first) == 1  # its crop; the picture is still held by the second save
    assert files_in(feedback_root) == sorted(
        [f"8/{second.crops[0].path.name}", f"8/{second.crops[0].path.stem}.json", f"sources/{second.source.name}", f"sources/{second.source.stem}.json"]
    )
    assert feedback.undo_number_save(second) == 2
    assert files_in(feedback_root) == []


@pytest.mark.parametrize(("typed", "message"), [("", "Type the number"), ("12a", "digits only"), ("1" * 41, "at most 40"), ("123", "also read 123")])
def test_a_number_that_is_not_a_correction_is_refused_and_nothing_is_written(feedback_root, typed, message):
    picture, digits = three_digit_picture()
    with pytest.raises(ValueError, match=message):
        feedback.save_number_correction(picture, digits, typed, source="upload")
    assert files_in(feedback_root) == []


def test_a_number_save_that_fails_half_way_leaves_nothing(feedback_root, monkeypatch):
    picture, digits = three_digit_picture()
    real_store, calls = feedback._store, []

    def failing_store(root, folder, name, png, metadata):
        calls.append(folder)
        if len(calls) == 3:  # the picture and the first crop are written, the second crop fails
            raise OSError(28, "No space left on device")
        return real_store(root, folder, name, png, metadata)

    monkeypatch.setattr(feedback, "_store", failing_store)
    with pytest.raises(OSError, match="No space"):
        feedback.save_number_correction(picture, digits, "987", source="upload")
    assert calls == ["sources", "9", "8"]
    assert files_in(feedback_root) == []


def test_number_sidecar_fields_are_checked_each_on_its_own(feedback_root):
    picture, digits = three_digit_picture()
    crop = feedback.save_number_correction(picture, digits, "723", source="upload").crops[0]
    sidecar_path = crop.path.with_suffix(".json")
    sidecar = json.loads(sidecar_path.read_text())
    sidecar.update(box=[5, 5, 1, 1], position=3, reading="12x", source_sha256="abc")
    sidecar_path.write_text(json.dumps(sidecar))
    [item] = feedback.scan().items
    assert not {"box", "position", "reading", "source_sha256"} & set(item.metadata)
    assert (item.metadata["count"], item.metadata["typed"], item.metadata["true_label"]) == (3, "723", 7)


@pytest.mark.parametrize("style", ["paper", "canvas"])
def test_crops_of_a_rendered_number_read_back_as_their_digit_and_fine_tuning_takes_them(classifier, feedback_root, mnist_test, style):
    from digit_classifier import feedback_set, realinputs
    from digit_classifier.predict import read_image

    rng = np.random.default_rng(7)
    for attempt in range(20):  # the first numbers the reader reads exactly: a crop of a misread digit proves nothing
        indices = rng.choice(len(mnist_test.labels), 3, replace=False)
        picture = realinputs.render_number([mnist_test.images[i] for i in indices], rng, style)
        text = "".join(str(mnist_test.labels[i]) for i in indices)
        reading = read_image(classifier, picture)
        if reading.text == text:
            break
    else:
        pytest.fail("none of 20 rendered numbers was read exactly")
    typed = "".join(str((int(d) + 1) % 10) for d in text)  # every digit said to be wrong
    result = feedback.save_number_correction(picture, reading.digits, typed, source="upload")

    assert [item.metadata["position"] for item in result.crops] == [0, 1, 2]
    back = [int(np.argmax(classifier.probabilities(preprocess(item.path.read_bytes())[None])[0])) for item in result.crops]
    assert "".join(map(str, back)) == text  # each crop is that one digit, as the model read it in the number
    collected = feedback_set.load_feedback(feedback_root)
    assert sorted(sample.label for sample in collected.samples) == sorted(int(d) for d in typed)
    assert collected.skipped == []
