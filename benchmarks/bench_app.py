"""How fast the app answers in a real browser, and how that compares with Streamlit's own floor.

With Playwright driving Debian's Chromium, against `streamlit run app.py` on a free port:
  * page load: navigation until the canvas and the "Draw a digit" message are on screen
    (the first load also loads the model into the LiteRT runtime, so it is reported apart);
  * stroke: mouse-up on the canvas until "Prediction: N" is on screen, timed inside the page
    (p50 and p95; the canvas is cleared between strokes, so each answer is a new element);
  * upload: choosing a PNG until its prediction is on screen;
  * memory: the app server's peak resident set (VmHWM), after the measurements above and again
    after uploading the largest picture the app accepts (8000x8000 pixels);
and the same stroke round trip in a bare Streamlit app that only echoes the canvas (written to a
temporary file), served alongside, its strokes alternating with the app's so that other load on
the machine weighs on both alike: the floor that Streamlit and the canvas component impose (the
canvas alone waits 200 ms after mouse-up before it sends). Prints the numbers and writes them to
benchmarks/out/bench_app.json (with the machine).

    .venv/bin/python -m benchmarks.bench_app [--strokes 25] [--uploads 8] [--screenshot docs/app.png]

Targets: mouse-up -> prediction p50 <= 1.15x the bare app in the same run; first page load <= 3 s;
server peak RSS <= 400 MB. A missed target is reported, not turned into a failing exit code.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.machine import describe as describe_machine, machine, save
from tools.app_harness import (
    VIEWPORT,
    digit_png,
    draw,
    draw_digit,
    launch_chromium,
    open_app,
    server_run,
    streamlit_server,
    wait_until_ready,
)

TARGET_RATIO = 1.15
TARGET_FIRST_LOAD_S = 3.0
TARGET_RSS_MB = 400
LARGEST_SIDE = 8000  # preprocess.MAX_PIXELS allows 8000x8000
SCREENSHOT_MAX_BYTES = 300_000

BARE_APP = '''
import streamlit as st
from streamlit_drawable_canvas import st_canvas

st.session_state.setdefault("generation", 0)


def clear():
    st.session_state.generation += 1


result = st_canvas(
    stroke_width=20, stroke_color="#FFFFFF", background_color="#000000", height=280, width=560,
    drawing_mode="freedraw", return_image_data=True, key=f"canvas-{st.session_state.generation}",
)
st.button("Clear", on_click=clear)
objects = (result.json_data or {}).get("objects") or []
if objects:
    st.subheader(f"Prediction: {len(objects) % 10}", anchor=False)
    st.image(result.image_bytes, width=140)
else:
    st.info("Draw a digit")
'''

# Timestamps taken inside the page: the last mouse-up, and the first frame painted after a
# "Prediction: N" heading appears.
PROBE = """
() => {
  const hasPrediction = () =>
    [...document.querySelectorAll("h3")].some((h) => /^Prediction: \\d$/.test(h.textContent.trim()));
  window.benchProbe = { up: null, seen: null, hasPrediction };
  window.addEventListener("mouseup", () => { window.benchProbe.up = performance.now(); }, true);
  new MutationObserver(() => {
    const probe = window.benchProbe;
    if (probe.up !== null && probe.seen === null && hasPrediction()) {
      probe.seen = -1;
      requestAnimationFrame(() => { probe.seen = performance.now(); });
    }
  }).observe(document.body, { subtree: true, childList: true, characterData: true });
}
"""
TIMEOUT_MS = 30_000


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def summary(values: list[float]) -> dict:
    return {"n": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95), "max": max(values)}


def stroke_latency(page, i: int) -> float:
    """One stroke on a cleared canvas: ms from mouse-up to the first frame showing a prediction; then clear."""
    page.bring_to_front()
    page.evaluate("() => { window.benchProbe.up = null; window.benchProbe.seen = null; }")
    x = 60 + (i * 37) % 160
    draw(page, [[(x, 50), (x + 8, 260)]])  # below the bare canvas's toolbar band
    page.wait_for_function("() => window.benchProbe.seen > 0", timeout=TIMEOUT_MS)
    latency = page.evaluate("() => window.benchProbe.seen - window.benchProbe.up")
    with server_run(page, TIMEOUT_MS):
        page.get_by_role("button", name="Clear").click()
    page.wait_for_function("() => !window.benchProbe.hasPrediction()", timeout=TIMEOUT_MS)
    return latency


def interleaved_strokes(pages: dict, strokes: int) -> dict[str, list[float]]:
    """Alternate strokes between the apps, so that load from other processes weighs on both alike."""
    for page in pages.values():
        page.evaluate(PROBE)
    latencies = {name: [] for name in pages}
    for i in range(strokes):
        for name, page in pages.items():
            latencies[name].append(stroke_latency(page, i))
    return latencies


def page_loads(browser, url: str, count: int) -> list[float]:
    seconds = []
    for _ in range(count):
        context = browser.new_context(viewport=VIEWPORT)
        page = context.new_page()
        started = time.perf_counter()
        page.goto(url)
        wait_until_ready(page)
        seconds.append(time.perf_counter() - started)
        context.close()
    return seconds


def upload_latencies(browser, url: str, count: int) -> list[float]:
    latencies = []
    for i in range(count):
        page = open_app(browser, url)
        page.get_by_role("tab", name="Upload").click()
        png = digit_png(7, size=160 + 8 * i, stroke=10 + i % 6)  # a new image every time: no cache hits
        started = time.perf_counter()
        page.locator('input[type="file"]').set_input_files(
            files=[{"name": f"seven-{i}.png", "mimeType": "image/png", "buffer": png}]
        )
        page.get_by_text("Prediction: 7", exact=True).wait_for(timeout=TIMEOUT_MS)
        latencies.append((time.perf_counter() - started) * 1000)
        page.context.close()
    return latencies


def memory_mb(pid: int) -> dict:
    """Peak (VmHWM) and current (VmRSS) resident memory of a process, in MB; the current one split into
    anonymous memory and file-backed pages (mostly TensorFlow's shared libraries, which the kernel can
    drop and reload: their count varies with what the page cache holds)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    keys = (("peak", "VmHWM"), ("now", "VmRSS"), ("anonymous", "RssAnon"), ("file_backed", "RssFile"))
    return {name: int(fields[key].split()[0]) / 1024 for name, key in keys}


def largest_upload(browser, url: str) -> float:
    """Upload an 8000x8000 photo-like PNG (the largest accepted) and wait for its prediction; ms."""
    png = digit_png(7, size=LARGEST_SIDE, stroke=LARGEST_SIDE // 20)
    page = open_app(browser, url)
    page.get_by_role("tab", name="Upload").click()
    started = time.perf_counter()
    page.locator('input[type="file"]').set_input_files(files=[{"name": "large.png", "mimeType": "image/png", "buffer": png}])
    page.get_by_text("Prediction: 7", exact=True).wait_for(timeout=TIMEOUT_MS)
    latency = (time.perf_counter() - started) * 1000
    page.context.close()
    return latency


def save_screenshot(browser, url: str, path: Path) -> int:
    page = open_app(browser, url)
    page.set_viewport_size({"width": 1200, "height": 720})
    with server_run(page, TIMEOUT_MS):
        draw_digit(page, 7, (70, 30, 150, 220))
    page.get_by_text("Prediction: 7", exact=True).wait_for(timeout=TIMEOUT_MS)
    page.locator('[data-testid="stVegaLiteChart"]').first.wait_for(timeout=TIMEOUT_MS)
    image = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
    page.context.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    size = path.stat().st_size
    if size > SCREENSHOT_MAX_BYTES:
        raise RuntimeError(f"{path} is {size} bytes, over {SCREENSHOT_MAX_BYTES}")
    return size


def measure(browser, args) -> tuple[dict, dict]:
    with tempfile.TemporaryDirectory() as folder:
        bare_script = Path(folder) / "bare_canvas_app.py"
        bare_script.write_text(BARE_APP)
        with (
            streamlit_server(env={"DIGIT_FEEDBACK_DIR": str(Path(folder) / "store")}) as url,
            streamlit_server(bare_script) as bare_url,
        ):
            first_load = page_loads(browser, url, 1)[0]
            bare_first_load = page_loads(browser, bare_url, 1)[0]
            warm_loads, bare_warm_loads = [], []
            for _ in range(args.loads):  # alternated, like the strokes
                warm_loads += page_loads(browser, url, 1)
                bare_warm_loads += page_loads(browser, bare_url, 1)
            pages = {"app": open_app(browser, url), "bare": open_app(browser, bare_url, ready_text="Draw a digit")}
            strokes = interleaved_strokes(pages, args.strokes)
            for page in pages.values():
                page.context.close()
            uploads = upload_latencies(browser, url, args.uploads)
            screenshot = save_screenshot(browser, url, args.screenshot) if args.screenshot else None
            memory = memory_mb(url.pid)
            large_upload_ms = largest_upload(browser, url)
            memory_after_large = memory_mb(url.pid)
    app = {
        "first_load_s": first_load,
        "load_s": summary(warm_loads),
        "stroke_ms": summary(strokes["app"]),
        "upload_ms": summary(uploads),
        "large_upload_ms": large_upload_ms,
        "server_rss_mb": memory,
        "server_rss_after_largest_upload_mb": memory_after_large,
        "screenshot_bytes": screenshot,
        "raw": {"stroke_ms": strokes["app"], "upload_ms": uploads, "load_s": warm_loads},
    }
    bare = {
        "first_load_s": bare_first_load,
        "load_s": summary(bare_warm_loads),
        "stroke_ms": summary(strokes["bare"]),
        "raw": {"stroke_ms": strokes["bare"], "load_s": bare_warm_loads},
    }
    return app, bare


def describe(name: str, numbers: dict, unit: str = "ms", scale: float = 1.0, digits: int = 0) -> str:
    p50, p95 = numbers["p50"] * scale, numbers["p95"] * scale
    return f"{name:<36} p50 {p50:6.{digits}f} {unit}, p95 {p95:6.{digits}f} {unit} (n={numbers['n']})"


def verdicts(app: dict, bare: dict) -> dict[str, bool]:
    stroke, floor = app["stroke_ms"]["p50"], bare["stroke_ms"]["p50"]
    return {
        f"mouse-up -> prediction p50 <= {TARGET_RATIO}x the bare app": stroke <= TARGET_RATIO * floor,
        f"first page load <= {TARGET_FIRST_LOAD_S} s": app["first_load_s"] <= TARGET_FIRST_LOAD_S,
        f"server peak RSS <= {TARGET_RSS_MB} MB (largest upload included)": app["server_rss_after_largest_upload_mb"]["peak"] <= TARGET_RSS_MB,
    }


def report(app: dict, bare: dict, browser_version: str) -> str:
    stroke, floor = app["stroke_ms"], bare["stroke_ms"]
    memory, memory_large = app["server_rss_mb"], app["server_rss_after_largest_upload_mb"]
    lines = [
        describe_machine(),
        f"Chromium {browser_version}; streamlit {version('streamlit')}, "
        f"streamlit-drawable-canvas {version('streamlit-drawable-canvas')}",
        f"{'page load, first (model load):':<36} {app['first_load_s']:6.2f} s",
        f"{'page load, first, bare canvas app:':<36} {bare['first_load_s']:6.2f} s",
        describe("page load until ready, warm:", app["load_s"], "s", digits=2),
        describe("page load, warm, bare canvas app:", bare["load_s"], "s", digits=2),
        describe("mouse-up -> prediction, app:", stroke),
        describe("mouse-up -> echo, bare canvas app:", floor),
        f"{'ratio app / bare:':<36} p50 {stroke['p50'] / floor['p50']:6.2f} x, "
        f" p95 {stroke['p95'] / floor['p95']:6.2f} x",
        describe("upload -> prediction:", app["upload_ms"]),
        f"{f'upload {LARGEST_SIDE}x{LARGEST_SIDE} PNG -> prediction:':<36} {app['large_upload_ms']:6.0f} ms",
        f"{'app server RSS after the above:':<36} peak {memory['peak']:6.0f} MB, now {memory['now']:6.0f} MB",
        f"{'... after the largest upload:':<36} peak {memory_large['peak']:6.0f} MB, now {memory_large['now']:6.0f} MB "
        f"(anonymous {memory_large['anonymous']:.0f} MB, file-backed {memory_large['file_backed']:.0f} MB)",
    ]
    lines += [f"target: {name}: {'met' if met else 'MISSED'}" for name, met in verdicts(app, bare).items()]
    if app["screenshot_bytes"]:
        lines.append(f"screenshot: {app['screenshot_bytes'] / 1000:.0f} KB")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--strokes", type=int, default=25, help="strokes per app (at least 20)")
    parser.add_argument("--uploads", type=int, default=8)
    parser.add_argument("--loads", type=int, default=5, help="warm page loads")
    parser.add_argument("--screenshot", type=Path, help="also save a screenshot of a drawn digit and its prediction")
    args = parser.parse_args()
    if args.strokes < 20:
        parser.error("--strokes must be at least 20 for a meaningful p95")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            app, bare = measure(browser, args)
            text = report(app, bare, browser.version)
        finally:
            browser.close()
    print(text)
    save("bench_app", {"machine": machine(), "app": app, "bare": bare, "report": text})
    return 0


if __name__ == "__main__":
    sys.exit(main())
