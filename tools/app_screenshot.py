"""Take the README's picture of the app (docs/app.png): the committed model reading a number drawn on the canvas.

    .venv/bin/python -m tools.app_screenshot [OUT]

Runs `streamlit run app.py` with corrections going to a temporary folder (the repository's own are not touched),
draws 7, 1 and 4 with the mouse in Debian's Chromium, waits for "Prediction: 714" and saves the page.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from tools.app_harness import NUMBER_DRAWING, REPO_ROOT, draw_digit, launch_chromium, open_app, streamlit_server

VIEWPORT = {"width": 1280, "height": 780}


def main(out: Path) -> None:
    with tempfile.TemporaryDirectory() as store, streamlit_server(env={"DIGIT_FEEDBACK_DIR": store}) as url, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = open_app(browser, url)
        page.set_viewport_size(VIEWPORT)
        for digit, box in NUMBER_DRAWING:
            draw_digit(page, digit, box)
        expected = "".join(str(digit) for digit, _ in NUMBER_DRAWING)
        page.get_by_text(f"Prediction: {expected}", exact=True).wait_for(timeout=30_000)
        page.wait_for_timeout(500)  # the probability chart draws just after the text
        page.screenshot(path=out)
        browser.close()
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO_ROOT / "docs" / "app.png")
