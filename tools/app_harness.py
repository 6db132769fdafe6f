"""Drive the app for real: start `streamlit run`, open it in Debian's Chromium, draw digits with the mouse.

Shared by tests/test_e2e_browser.py, tests/test_app.py and benchmarks/bench_app.py. Digits are polylines in a unit
box, so the same shapes can be drawn on the canvas or rendered into an image file for upload.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from PIL import Image, ImageDraw

from app_pages.ui_support import CANVAS_HEIGHT, CANVAS_WIDTH  # noqa: F401 (the tests' canvas geometry)

REPO_ROOT = Path(__file__).resolve().parent.parent
APP = REPO_ROOT / "app.py"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 1000}
CANVAS = "canvas.upper-canvas"  # Fabric's top canvas: the one that receives the pointer
READY_TEXT = "Draw a digit"
SERVER_START_TIMEOUT = 120.0

Point = tuple[float, float]
Box = tuple[float, float, float, float]  # left, top, width, height in canvas pixels

_OVAL = [(0.5 + 0.5 * math.sin(2 * math.pi * i / 32), 0.5 - 0.5 * math.cos(2 * math.pi * i / 32)) for i in range(33)]
DIGIT_STROKES: dict[int, list[list[Point]]] = {
    0: [_OVAL],
    1: [[(0.55, 0.0), (0.45, 1.0)]],
    4: [[(0.6, 0.0), (0.0, 0.65), (1.0, 0.65)], [(0.7, 0.3), (0.7, 1.0)]],
    7: [[(0.0, 0.0), (1.0, 0.0), (0.35, 1.0)]],
}


# Server --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerURL(str):
    """A running server's URL; `pid` is the server's process id (for memory readings)."""

    pid: int


@contextlib.contextmanager
def streamlit_server(script: Path = APP, env: dict[str, str] | None = None) -> Iterator[ServerURL]:
    """`streamlit run script` on a free port; yields its URL once healthy, stops it (and only it) afterwards."""
    port = free_port()
    command = [
        sys.executable, "-m", "streamlit", "run", str(script),
        "--server.headless", "true",
        "--server.port", str(port),
        "--server.address", "127.0.0.1",
        "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
    ]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env={**os.environ, **(env or {})},
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            url = ServerURL(f"http://127.0.0.1:{port}")
            url.pid = process.pid
            _wait_until_healthy(url, process, log)
            yield url
        finally:
            _stop(process)


def _wait_until_healthy(url: str, process: subprocess.Popen, log) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"streamlit exited with {process.returncode}:\n{log.read().decode(errors='replace')}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)  # polling a port: there is nothing to wait on
    raise TimeoutError(f"streamlit did not answer on {url} within {SERVER_START_TIMEOUT:.0f} s")


def _stop(process: subprocess.Popen) -> None:
    """The server runs in its own session: signal that process group (it is ours alone), then reap it."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)


# Browser -------------------------------------------------------------------------------------


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


_SOCKETS = {}  # page -> the websocket its Streamlit session talks over


def open_app(browser, url: str, ready_text: str = READY_TEXT):
    """A new page on `url`, returned once the canvas and `ready_text` are on screen."""
    page = browser.new_context(viewport=VIEWPORT).new_page()
    with page.expect_websocket(lambda socket: socket.url.endswith("/_stcore/stream")) as socket:
        page.goto(url)
    _SOCKETS[page] = socket.value
    wait_until_ready(page, ready_text)
    return page


def wait_until_ready(page, ready_text: str = READY_TEXT, timeout: float = 90_000) -> None:
    from playwright.sync_api import expect

    expect(page.locator(CANVAS)).to_be_visible(timeout=timeout)
    expect(page.get_by_text(ready_text)).to_be_visible(timeout=timeout)


@contextlib.contextmanager
def server_run(page, timeout: float = 30_000) -> Iterator[None]:
    """Around an action that makes the app rerun: returns once a script run that started after the
    page's last rerun request has finished (read from the session's websocket messages)."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    socket = _SOCKETS[page]
    state = {"requested": False, "started": False}

    def on_sent(payload) -> None:
        if isinstance(payload, str):
            return
        message = BackMsg()
        message.ParseFromString(payload)
        if message.WhichOneof("type") == "rerun_script":
            state.update(requested=True, started=False)

    def finished(payload) -> bool:
        if isinstance(payload, str):
            return False
        message = ForwardMsg()
        message.ParseFromString(payload)
        kind = message.WhichOneof("type")
        if kind == "new_session" and state["requested"]:
            state["started"] = True
        return (
            kind == "script_finished"
            and state["started"]
            and message.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN
        )

    socket.on("framesent", on_sent)
    try:
        with socket.expect_event("framereceived", predicate=finished, timeout=timeout):
            yield
    finally:
        socket.remove_listener("framesent", on_sent)


NUMBER_DRAWING = (  # 7, 1, 4 across the wide canvas, a writer's gap between them: (digit, box on the canvas)
    (7, (30, 50, 130, 190)),
    (1, (215, 50, 50, 190)),
    (4, (320, 50, 150, 190)),
)


def canvas_origin(page) -> Point:
    canvas = page.locator(CANVAS)
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    return box["x"], box["y"]


def digit_strokes(digit: int, box: Box) -> list[list[Point]]:
    left, top, width, height = box
    return [[(left + x * width, top + y * height) for x, y in stroke] for stroke in DIGIT_STROKES[digit]]


def draw(page, strokes: list[list[Point]], hover: float = 0.0) -> None:
    """Draw `strokes` (canvas pixels) with the mouse. Each stroke starts from outside the canvas;
    `hover` seconds of resting on the start point before pressing (0: press on arrival, as a touch would)."""
    x0, y0 = canvas_origin(page)
    for stroke in strokes:
        page.mouse.move(x0 - 40, y0 - 40)
        (sx, sy), rest = stroke[0], stroke[1:]
        page.mouse.move(x0 + sx, y0 + sy)
        if hover:
            page.wait_for_timeout(hover * 1000)  # the scenario itself: a pointer resting on the canvas
        page.mouse.down()
        previous = (sx, sy)
        for x, y in rest or [(sx + 1, sy + 1)]:
            steps = max(2, int(math.dist(previous, (x, y)) / 6))
            page.mouse.move(x0 + x, y0 + y, steps=steps)
            previous = (x, y)
        page.mouse.up()


def draw_digit(page, digit: int, box: Box, hover: float = 0.0) -> None:
    draw(page, digit_strokes(digit, box), hover)


# Images --------------------------------------------------------------------------------------


def digit_png(digit: int, size: int = 200, stroke: int = 14, margin: float = 0.2) -> bytes:
    """A dark-on-light PNG of `digit`, like a photo of a digit written with a marker."""
    image = Image.new("RGB", (size, size), "white")
    pen = ImageDraw.Draw(image)
    inner = size * (1 - 2 * margin)
    for points in digit_strokes(digit, (size * margin, size * margin, inner * 0.7, inner)):
        pen.line(points, fill="black", width=stroke, joint="curve")
        for x, y in (points[0], points[-1]):
            pen.ellipse((x - stroke / 2, y - stroke / 2, x + stroke / 2, y + stroke / 2), fill="black")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def number_photo(labels: tuple[int, ...] = (4, 7, 2), seed: int = 0) -> bytes:
    """A photo-like picture of the number `labels` written with MNIST test digits (the `seed`-th of each label),
    rendered by realinputs.render_number on paper."""
    import numpy as np

    from digit_classifier import data, realinputs

    mnist = data.load_split("test")
    digits = [mnist.images[np.flatnonzero(mnist.labels == label)[seed]] for label in labels]
    return realinputs.render_number(digits, np.random.default_rng(seed), "paper")
