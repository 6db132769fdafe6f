"""The one preprocessing path: every input kind, every rejection, and MNIST's format."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

from digit_classifier import config, data
from digit_classifier.decode import LARGE_PIXELS
from digit_classifier.preprocess import (

    PARALLEL_FROM,
    ImageTooLargeError,
    NoDigitFoundError,
    UnreadableImageError,
    preprocess,
    preprocess_files,
    preprocess_steps,
)


@pytest.fixture(scope="module")
def seven() -> np.ndarray:
    """The first MNIST test digit (a 7), 28x28 uint8 white on black."""
    test = data.load_split("test")
    assert test.labels[0] == 7
    return np.array(test.images[0])


def ink_on_paper(digit: np.ndarray, size: int, frame: tuple[int, int], at: tuple[int, int], paper=235, pen=30) -> np.ndarray:
    """Dark digit `size` px tall pasted at `at` (top, left) on a light grey frame (height, width)."""
    ink = np.asarray(Image.fromarray(digit).resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32) / 255
    canvas = np.zeros(frame, dtype=np.float32)
    canvas[at[0] : at[0] + size, at[1] : at[1] + size] = np.clip(ink, 0, 1)
    return np.clip(paper * (1 - canvas) + pen * canvas, 0, 255).astype(np.uint8)


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def assert_mnist_like(image: np.ndarray) -> None:
    assert image.shape == (28, 28) and image.dtype == np.float32
    assert 0.0 <= image.min() and image.max() <= 1.0 and image.max() > 0.9
    rows, cols = np.flatnonzero(image.max(1) > 0.05), np.flatnonzero(image.max(0) > 0.05)
    assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 <= 21, "the digit must fit the 20x20 box"
    cy, cx = ndimage.center_of_mass(image)
    assert abs(cy - 14) <= 1.0 and abs(cx - 14) <= 1.0, "centred by centre of mass"


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity, allowing a one-pixel offset (centring rounds to whole pixels)."""
    norm = np.sqrt(np.sum(a * a) * np.sum(b * b))
    shifted = (np.roll(b, (dy, dx), axis=(0, 1)) for dy in (-1, 0, 1) for dx in (-1, 0, 1))
    return max(float(np.sum(a * other) / norm) for other in shifted)


# Input kinds -----------------------------------------------------------------------------


def test_an_mnist_digit_comes_back_almost_unchanged(seven):
    out = preprocess(seven)
    assert_mnist_like(out)
    assert similarity(out, seven / 255.0) > 0.9


def test_path_bytes_file_object_pil_and_array_give_the_same_result(seven, tmp_path):
    picture = Image.fromarray(ink_on_paper(seven, 120, (200, 260), (40, 100)))
    path = tmp_path / "seven.png"
    picture.save(path)
    reference = preprocess(np.asarray(picture))
    for source in (path, str(path), path.read_bytes(), io.BytesIO(path.read_bytes()), picture):
        assert np.allclose(preprocess(source), reference, atol=1e-6)


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F"])
def test_every_pil_mode(seven, mode):
    grey = Image.fromarray(ink_on_paper(seven, 100, (160, 160), (30, 30), paper=255, pen=0))
    if mode == "1":
        converted = grey.point(lambda v: 255 if v > 128 else 0).convert("1")
    elif mode in ("I;16", "I", "F"):
        values = np.asarray(grey, dtype=np.float64) / 255
        dtype = {"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]
        scale = {"I;16": 65535, "I": 100_000, "F": 3.7}[mode]
        converted = Image.fromarray((values * scale).astype(dtype))
    else:
        converted = grey.convert(mode)
    assert converted.mode == mode
    out = preprocess(converted)
    assert_mnist_like(out)
    assert similarity(out, preprocess(grey)) > 0.95


def test_palette_png_with_transparency(seven):
    alpha = ink_on_paper(seven, 90, (150, 150), (20, 40), paper=0, pen=255)
    rgba = np.zeros((150, 150, 4), np.uint8)
    rgba[..., 3] = np.where(alpha > 127, 255, 0)
    palette = Image.fromarray(rgba, "RGBA").convert("P")  # transparent index in info["transparency"]
    reloaded = Image.open(io.BytesIO(encode(palette)))
    assert reloaded.mode == "P" and "transparency" in reloaded.info
    out = preprocess(reloaded)
    assert_mnist_like(out)
    assert similarity(out, preprocess(seven)) > 0.85


@pytest.mark.parametrize("rgb", [(0, 0, 0), (255, 255, 255), (200, 30, 30)])
def test_transparent_png_takes_ink_from_alpha_whatever_the_rgb(seven, rgb):
    alpha = ink_on_paper(seven, 120, (220, 300), (50, 150), paper=0, pen=255)
    rgba = np.zeros((220, 300, 4), np.uint8)
    rgba[..., :3] = np.where(alpha[..., None] > 0, rgb, 0)  # transparent pixels have black RGB
    rgba[..., 3] = alpha
    out = preprocess(encode(Image.fromarray(rgba, "RGBA")))
    assert_mnist_like(out)
    assert similarity(out, preprocess(seven)) > 0.9


def test_canvas_rgba_array_with_round_strokes():
    canvas = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    pen = ImageDraw.Draw(canvas)
    pen.line([(40, 40), (140, 40), (80, 160)], fill=(255, 255, 255, 255), width=16, joint="curve")
    out = preprocess(np.asarray(canvas))
    assert_mnist_like(out)


def test_dark_on_light_and_light_on_dark_agree(seven):
    dark_on_light = ink_on_paper(seven, 140, (300, 300), (80, 60))
    light_on_dark = 255 - dark_on_light
    a, b = preprocess_steps(dark_on_light), preprocess_steps(light_on_dark)
    assert a.ink_source == "dark ink on light background"
    assert b.ink_source == "light ink on dark background"
    assert similarity(a.image, b.image) > 0.98


def test_polarity_comes_from_the_border_not_the_mean():
    # A fat-marker zero filling the frame: more than half the pixels are ink, so the mean would call it paper.
    picture = Image.new("L", (100, 100), 250)
    ImageDraw.Draw(picture).ellipse((8, 3, 92, 97), outline=10, width=30)
    assert np.asarray(picture).mean() < 128
    steps = preprocess_steps(picture)
    assert steps.ink_source == "dark ink on light background"
    assert steps.image[14, 14] < 0.1 and steps.image[14, 3:10].max() > 0.95  # the hole stays dark, the ring is ink


def test_uneven_light_tint_noise_and_jpeg(seven):
    rng = np.random.default_rng(0)
    grey = ink_on_paper(seven, 160, (480, 640), (250, 400)).astype(np.float32)
    ramp = np.linspace(0.45, 1.0, 640)[None, :]  # dark on the left, bright on the right
    rgb = grey[..., None] * ramp[..., None] * np.array([1.0, 0.93, 0.8])  # warm paper tint
    rgb += rng.normal(0, 6, rgb.shape)
    photo = encode(Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)), "JPEG", quality=45)
    out = preprocess(photo)
    assert_mnist_like(out)
    assert similarity(out, preprocess(seven)) > 0.9


def test_exif_orientation_is_applied(seven):
    upright = Image.fromarray(ink_on_paper(seven, 100, (160, 220), (30, 60)))
    stored_sideways = upright.transpose(Image.Transpose.ROTATE_90)  # how a phone stores a portrait shot
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    jpeg = encode(stored_sideways, "JPEG", quality=95, exif=exif.tobytes())
    assert similarity(preprocess(jpeg), preprocess(upright)) > 0.95
    assert similarity(preprocess(encode(stored_sideways, "JPEG", quality=95)), preprocess(upright)) < 0.8


def test_first_frame_of_an_animated_gif(seven):
    first = Image.fromarray(ink_on_paper(seven, 80, (120, 120), (20, 20)))
    second = Image.fromarray(np.full((120, 120), 235, np.uint8))
    gif = encode(first, "GIF", save_all=True, append_images=[second], duration=100, loop=0)
    animated = Image.open(io.BytesIO(gif))
    assert animated.n_frames == 2
    animated.seek(1)
    assert similarity(preprocess(animated), preprocess(first)) > 0.95
    assert similarity(preprocess(gif), preprocess(first)) > 0.95


@pytest.mark.parametrize("side", [8, 12, 28, 1000, 8000])
def test_any_size_from_8_to_8000(seven, side):
    digit_size = max(6, side // 3)
    picture = ink_on_paper(seven, digit_size, (side, side), (side // 3, side // 3), paper=255, pen=0)
    out = preprocess(encode(Image.fromarray(picture)))
    assert_mnist_like(out)
    assert similarity(out, preprocess(seven)) > (0.9 if digit_size >= 20 else 0.7)


@pytest.mark.parametrize("corner", [(0, 0), (0, 560), (440, 0), (440, 560)])
def test_small_digit_in_any_corner(seven, corner):
    out = preprocess(ink_on_paper(seven, 40, (480, 600), corner))
    assert_mnist_like(out)
    assert similarity(out, preprocess(seven)) > 0.9


def test_specks_far_from_the_digit_are_ignored(seven):
    picture = ink_on_paper(seven, 120, (400, 400), (140, 140))
    picture[20:24, 20:24] = 0
    picture[370:373, 30:33] = 0
    clean = ink_on_paper(seven, 120, (400, 400), (140, 140))
    assert np.allclose(preprocess(picture), preprocess(clean), atol=0.02)


# Invariance ------------------------------------------------------------------------------


@pytest.mark.parametrize("shift", [(1, 0), (0, 2), (-2, -1), (2, 2)])
def test_a_small_shift_gives_the_same_output(seven, shift):
    base = ink_on_paper(seven, 100, (200, 200), (50, 50))
    moved = ink_on_paper(seven, 100, (200, 200), (50 + shift[0], 50 + shift[1]))
    assert np.allclose(preprocess(moved), preprocess(base), atol=0.03)


@pytest.mark.parametrize("size", [60, 90, 250])
def test_scale_changes_little(seven, size):
    reference = preprocess(ink_on_paper(seven, 120, (400, 400), (100, 100)))
    out = preprocess(ink_on_paper(seven, size, (400, 400), (80, 80)))
    assert_mnist_like(out)
    assert similarity(out, reference) > 0.93


@pytest.mark.parametrize("width", [6, 14, 26])
def test_stroke_width_keeps_the_digit_centred(width):
    canvas = Image.new("L", (280, 280), 0)
    ImageDraw.Draw(canvas).line([(60, 60), (200, 60), (110, 230)], fill=255, width=width, joint="curve")
    assert_mnist_like(preprocess(canvas))


def _peak_rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/self/status")


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as control:
            control.write("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def huge_png(seven, tmp_path_factory) -> tuple[bytes, np.ndarray]:
    """A 7000x7000 RGBA PNG (49 MP: 196 MB decoded, as much again to resize), and its result from a decoded image."""
    side = 7000
    assert side * side > LARGE_PIXELS
    picture = Image.fromarray(ink_on_paper(seven, 3000, (side, side), (2000, 1500))).convert("RGBA")
    return encode(picture, "PNG", compress_level=1), preprocess(picture)  # a decoded image never goes to a worker


@pytest.mark.parametrize("given_as", ["bytes", "file object", "path"])
def test_a_huge_picture_is_decoded_in_a_worker_process_with_the_same_result(huge_png, given_as, tmp_path):
    encoded, expected = huge_png
    path = tmp_path / "huge.png"
    path.write_bytes(encoded)
    source = {"bytes": encoded, "file object": io.BytesIO(encoded), "path": path}[given_as]
    if not _reset_peak_rss():
        pytest.skip("this kernel does not let a process reset its peak RSS")
    before = _peak_rss_mb()
    result = preprocess(source)
    assert _peak_rss_mb() - before < 100, "the full-size decode must not happen in this process"
    assert np.array_equal(result, expected)


def test_a_huge_picture_keeps_its_error_messages(huge_png, tmp_path):
    truncated = huge_png[0][: len(huge_png[0]) // 2]
    with pytest.raises(UnreadableImageError, match="truncated or corrupt"):
        preprocess(truncated)
    with pytest.raises(UnreadableImageError, match="^The upload is truncated"):
        preprocess(io.BytesIO(truncated))
    (tmp_path / "big.png").write_bytes(truncated)
    with pytest.raises(UnreadableImageError, match="^'big.png' is truncated"):
        preprocess(tmp_path / "big.png")


# Rejections ------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [b"", b"hello, this is text", b"%PDF-1.4 not an image", bytes(range(256)) * 10])
def test_not_an_image(payload):
    with pytest.raises(UnreadableImageError, match="not an image"):
        preprocess(payload)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file(seven, fmt):
    whole = encode(Image.fromarray(ink_on_paper(seven, 200, (400, 400), (100, 100))).convert("RGB"), fmt)
    with pytest.raises(UnreadableImageError, match="truncated or corrupt"):
        preprocess(whole[: len(whole) // 2])


def test_missing_file(tmp_path):
    with pytest.raises(UnreadableImageError, match="does not exist"):
        preprocess(tmp_path / "nope.png")


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (a decompression bomb's shape)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [8001, 20_000, 100_000])
def test_decompression_bomb_is_refused_before_decoding(side):
    with pytest.raises(ImageTooLargeError, match="too large|limit"):
        preprocess(_png_claiming(side, side))


def test_real_compressed_bomb_is_refused(tmp_path):
    bomb = Image.new("1", (9000, 9000), 1)  # 81 megapixels, a few kilobytes on disk
    path = tmp_path / "bomb.png"
    bomb.save(path)
    assert path.stat().st_size < 100_000
    with pytest.raises(ImageTooLargeError):
        preprocess(path)


@pytest.mark.parametrize(
    "picture",
    [
        np.full((280, 280), 255, np.uint8),
        np.zeros((280, 280), np.uint8),
        np.full((100, 150, 3), (120, 160, 200), np.uint8),
        np.zeros((280, 280, 4), np.uint8),  # an untouched transparent canvas
        np.random.default_rng(1).integers(0, 256, (300, 300), dtype=np.uint8),
        np.clip(np.random.default_rng(2).normal(200, 12, (300, 300)), 0, 255).astype(np.uint8),
    ],
    ids=["white", "black", "uniform-colour", "empty-canvas", "uniform-noise", "gaussian-noise"],
)
def test_no_digit_found(picture):
    with pytest.raises(NoDigitFoundError):
        preprocess(picture)


def test_a_single_speck_is_not_a_digit():
    picture = np.full((500, 500), 240, np.uint8)
    picture[250:253, 250:253] = 20
    with pytest.raises(NoDigitFoundError):
        preprocess(picture)


def test_errors_are_value_errors_with_a_message():
    with pytest.raises(ValueError) as caught:
        preprocess(b"not an image")
    assert len(str(caught.value)) > 20


def test_nothing_is_written(seven, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "in.png"
    Image.fromarray(ink_on_paper(seven, 100, (200, 200), (50, 50))).save(source)
    before = sorted(os.listdir(tmp_path))
    preprocess(source)
    with pytest.raises(UnreadableImageError):
        preprocess(b"junk")
    assert sorted(os.listdir(tmp_path)) == before


# Batches ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def batch_of_files(tmp_path_factory):
    """PARALLEL_FROM + 20 files: MNIST digits as ink on paper, with bad files among them."""
    folder = tmp_path_factory.mktemp("batch")
    test = data.load_split("test")
    paths = []
    for i in range(PARALLEL_FROM + 20):
        path = folder / f"{i:04d}.png"
        if i == 7:
            path.write_text("not an image")
        elif i == PARALLEL_FROM // 2:
            path.write_bytes(encode(Image.fromarray(255 - test.images[i]))[:70])
        elif i == PARALLEL_FROM + 3:
            path = folder / "missing.png"
        else:
            Image.fromarray(255 - test.images[i]).save(path)
        paths.append(path)
    return paths


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="worker processes need two cores")
def test_worker_processes_give_the_same_results_in_the_same_order(batch_of_files):
    serial = list(preprocess_files(batch_of_files, workers=1))
    with preprocess_files(batch_of_files, workers=2) as parallel_results:
        assert parallel_results.workers == 2
        parallel = list(parallel_results)
    assert [item.path for item in parallel] == [str(path) for path in batch_of_files]
    assert [item.error for item in parallel] == [item.error for item in serial]
    failed = [i for i, item in enumerate(parallel) if item.error]
    assert failed == [7, PARALLEL_FROM // 2, PARALLEL_FROM + 3]
    for a, b in zip(serial, parallel):
        assert a.boxes == b.boxes
        assert (a.images is None and b.images is None) or np.array_equal(a.images, b.images)


def test_a_small_batch_stays_in_this_process(batch_of_files):
    with preprocess_files(batch_of_files[: PARALLEL_FROM - 1], workers=2) as results:
        assert results.workers == 1 and results.processes == []
        assert len(list(results)) == PARALLEL_FROM - 1


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="worker processes need two cores")
def test_leaving_a_batch_early_stops_the_workers(batch_of_files):
    with preprocess_files(batch_of_files, workers=2) as results:
        next(results)
        processes = results.processes
        assert len(processes) == 2 and all(process.poll() is None for process in processes)
    assert all(process.poll() is not None for process in processes)


def test_workers_never_rerun_the_callers_script(tmp_path, batch_of_files):
    """A script without an `if __name__ == "__main__":` guard must run once, whatever the workers do."""
    big = tmp_path / "big.png"
    Image.new("L", (5000, 4000), 230).save(big)  # over LARGE_PIXELS: decoded in a worker
    script = tmp_path / "unguarded.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(config.REPO_ROOT)!r})\n"
        "from digit_classifier.preprocess import NoDigitFoundError, preprocess, preprocess_files\n"
        "print('script ran', flush=True)\n"
        "try:\n"
        f"    preprocess({str(big)!r})\n"
        "except NoDigitFoundError:\n"
        "    print('blank big image refused')\n"
        f"results = list(preprocess_files({[str(p) for p in batch_of_files]!r}, workers=2))\n"
        "print('files', len(results), sum(item.error is None for item in results))\n"
    )
    finished = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.splitlines() == [
        "script ran", "blank big image refused", f"files {len(batch_of_files)} {len(batch_of_files) - 3}"
    ]


def test_a_worker_that_dies_is_reported_not_waited_for():
    from digit_classifier import worker

    dying = worker.Worker("no such task", [1, 2])  # the worker fails before answering and exits
    with pytest.raises(worker.WorkerFailed):
        next(dying)
    assert dying.process.poll() is not None


def test_a_huge_picture_whose_worker_dies_gets_a_clear_message(huge_png, monkeypatch):
    from digit_classifier import worker

    import shutil

    monkeypatch.setattr(worker.sys, "executable", shutil.which("false"))  # the worker process dies at once
    with pytest.raises(ImageTooLargeError, match="memory available"):
        preprocess(huge_png[0])
