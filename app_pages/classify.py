"""Classify page: draw a digit or a number, or upload images, see what the model reads, correct it when it is wrong."""

from __future__ import annotations

import hashlib

import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

from app_pages import common, prediction_view
from app_pages.ui_support import CANVAS_HEIGHT, CANVAS_WIDTH
from app_pages.prediction_view import ScreenInput
from digit_classifier.predict import Reading

DEFAULT_STROKE_WIDTH = 20
UPLOAD_TYPES = "PNG, JPEG, BMP, GIF, WebP or TIFF"

# The canvas' built-in toolbar is invisible until hovered, yet it already lies over the top
# ~30 px of the canvas and swallows strokes that start there (always, on touch screens).
# st_canvas 0.13 has no option to remove it, and it lives in the component's shadow root where
# page CSS cannot reach, so this script gives every shadow root, present and future, a style
# sheet that hides it. The Undo stroke and Clear buttons below replace it.
HIDE_CANVAS_TOOLBAR = """
<script>
(() => {
  if (window.digitCanvasToolbarHidden) return;
  window.digitCanvasToolbarHidden = true;
  const sheet = new CSSStyleSheet();
  sheet.replaceSync(".dc-toolbar { display: none !important; }");
  const adopt = (root) => {
    if (!root.adoptedStyleSheets.includes(sheet)) root.adoptedStyleSheets = [...root.adoptedStyleSheets, sheet];
    return root;
  };
  const attachShadow = Element.prototype.attachShadow;
  Element.prototype.attachShadow = function (init) { return adopt(attachShadow.call(this, init)); };
  document.querySelectorAll("*").forEach((element) => element.shadowRoot && adopt(element.shadowRoot));
})();
</script>
"""


def main() -> None:
    st.title("Handwritten digit classifier")
    classifier = common.classifier()
    if classifier is None:
        st.error(common.missing_model_message())
        st.stop()
    draw_tab, upload_tab = st.tabs(["Draw", "Upload"])
    with draw_tab:
        draw_panel()
    with upload_tab:
        upload_panel()


# Draw --------------------------------------------------------------------------------------


@st.fragment
def draw_panel() -> None:
    state = st.session_state
    state.setdefault("canvas_generation", 0)
    state.setdefault("canvas_objects", [])
    state.setdefault("canvas_undo_steps", 0)
    row = st.container(horizontal=True, gap="large")
    left, right = row.container(width=CANVAS_WIDTH), row.container()
    with left:
        drawing = canvas()
    with right:  # the answer is sent before the controls under the canvas, which do not change with a stroke
        drawing_result(drawing)
    with left:
        canvas_controls()


def canvas() -> bytes | None:
    """The canvas; returns its drawing as RGBA PNG bytes, or None while nothing is drawn."""
    from streamlit_drawable_canvas import st_canvas  # importing it outside a running server raises

    st.html(HIDE_CANVAS_TOOLBAR, unsafe_allow_javascript=True)
    state = st.session_state
    result = st_canvas(
        stroke_width=state.get("stroke_width", DEFAULT_STROKE_WIDTH),
        stroke_color="#FFFFFF",
        background_color="#000000",
        height=CANVAS_HEIGHT,
        width=CANVAS_WIDTH,
        drawing_mode="freedraw",
        initial_drawing=state.get("canvas_initial"),
        return_image_data=True,
        key=f"canvas-{state.canvas_generation}",
    )
    state.canvas_objects = (result.json_data or {}).get("objects") or []
    return result.image_bytes if state.canvas_objects else None


def drawing_result(drawing: bytes | None) -> None:
    if drawing is None:
        st.info("Draw a digit from 0 to 9, or a number, on the black canvas: the prediction appears as soon as you lift the pen.")
        return
    prediction, error = common.predict(drawing, common.model_stamp())
    if error:
        st.info(error, icon=":material/gesture:")
        return
    show_result(ScreenInput(f"draw-{hashlib.sha1(drawing).hexdigest()[:16]}", drawing, "draw"), prediction)


def canvas_controls() -> None:
    st.slider("Stroke width", min_value=4, max_value=40, value=DEFAULT_STROKE_WIDTH, key="stroke_width")
    undo, clear = st.columns(2)
    undo.button(
        "Undo stroke", icon=":material/undo:", width="stretch",
        disabled=not st.session_state.canvas_objects, on_click=_undo_stroke,
    )
    clear.button("Clear", icon=":material/delete:", width="stretch", on_click=_clear_canvas)


def _undo_stroke() -> None:
    """Reload the canvas with its last stroke removed; the step counter makes every undo a new drawing."""
    state = st.session_state
    state.canvas_undo_steps += 1
    state.canvas_initial = {"objects": state.canvas_objects[:-1], "undoSteps": state.canvas_undo_steps}


def _clear_canvas() -> None:
    """A new key mounts a new, empty canvas: nothing of the old drawing survives."""
    state = st.session_state
    state.canvas_generation += 1
    state.canvas_initial = None
    state.canvas_objects = []


# Upload ------------------------------------------------------------------------------------


@st.fragment
def upload_panel() -> None:
    files = st.file_uploader(
        f"Upload one or more images of a digit or a number ({UPLOAD_TYPES})",
        accept_multiple_files=True,
        key="uploads",
    )
    if not files:
        st.caption("Photos and scans work: dark ink on light paper or light on dark, any size, anywhere in the frame.")
    for file in files or []:
        upload_result(file)


def upload_result(file: UploadedFile) -> None:
    data = file.getvalue()
    with st.container(border=True):
        name = common.escape_markdown(file.name)
        prediction, error, thumbnail = common.predict_upload(data, common.model_stamp())
        if error:
            st.error(f"**{name}**: {error}", icon=":material/error:")
            return
        row = st.container(horizontal=True, gap="large")
        row.image(thumbnail, caption=file.name, width=160)
        with row.container():
            show_result(ScreenInput(f"upload-{file.file_id}", data, "upload", file.name), prediction)


def show_result(screen_input: ScreenInput, prediction: Reading) -> None:
    """The version recorded with a correction is that of the model that made the prediction."""
    prediction_view.show_result(screen_input, prediction, common.classifier().version)


main()
