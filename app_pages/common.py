"""What the pages share: the model (loaded once per version, reloaded when `current` changes) and cached predictions."""

from __future__ import annotations

import gc
import importlib
import io
import re
import threading
from dataclasses import dataclass

import numpy as np
import streamlit as st
from PIL import Image

from app_pages import ui_support
from digit_classifier import config, versions
from digit_classifier.inference import Classifier, load_serving_classifier
from digit_classifier.versions import ModelUnavailableError
from digit_classifier.predict import Reading, read_image
from digit_classifier.decode import open_reduced
from digit_classifier.preprocess import PreprocessError

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$])")


@dataclass(frozen=True)
class ModelState:
    """The loaded current model, or why there is none: `problem` is one line for a person."""

    classifier: Classifier | None
    problem: str | None = None


def model_stamp() -> tuple:
    """Changes when `current` is swapped to another version, or a file of the version is replaced or damaged."""
    model_dir = config.model_dir()
    name = versions.current_name(model_dir)
    folder = model_dir / "versions" / name if name else model_dir / versions.CURRENT
    files = (versions.METADATA_FILE, *versions.VERSION_FILES)
    return (str(folder), ui_support.file_stamp(*(folder / file_name for file_name in files)))


@st.cache_resource(max_entries=2, show_spinner="Loading the model…")
def _load_model(stamp: tuple) -> ModelState:
    try:
        classifier = load_serving_classifier(model_dir=config.model_dir())
    except ModelUnavailableError as error:
        return ModelState(None, str(error))
    blank = np.zeros((1, config.IMAGE_SIZE, config.IMAGE_SIZE), np.float32)
    classifier.probabilities(blank)  # tensors are allocated now rather than on the first stroke
    # Streamlit collects garbage after every script run; with TensorFlow's ~400,000 long-lived objects (the
    # Keras fallback) that took 0.3-0.7 s and held up the next rerun. Frozen objects are left out of those collections.
    gc.freeze()
    return ModelState(classifier)


# What reading a picture imports on first use (SciPy's ndimage, OpenCV: 0.3-0.8 s on two cores), kept off
# the first page load; see prepare_reading.
READING_MODULES = ("digit_classifier.scene", "digit_classifier.digit")


@st.cache_resource(show_spinner=False)
def prepare_reading() -> threading.Thread:
    """Once per server, after the first page is out: import what reading a picture needs in the background,
    so neither the first page nor the first drawing waits for it. Then freeze what is loaded by now (the
    canvas brings pandas): Streamlit collects garbage after every script run, and with these modules
    unfrozen that collection took 40-100 ms on two cores."""

    def run() -> None:
        for name in READING_MODULES:
            importlib.import_module(name)
        gc.freeze()

    thread = threading.Thread(target=run, name="prepare-reading", daemon=True)
    thread.start()
    return thread


def model_state() -> ModelState:
    """The current model, loaded once per version: a missing or damaged one is a problem to show, never an exception."""
    return _load_model(model_stamp())


def classifier() -> Classifier | None:
    return model_state().classifier


def missing_model_message() -> str:
    return f"The model cannot be used: {model_state().problem} Fix it (or `make rollback`), then reload this page."


@st.cache_data(max_entries=256, show_spinner=False)
def predict(data: bytes, stamp: tuple[int, ...]) -> tuple[Reading | None, str | None]:
    """Image file bytes -> (reading, None), or (None, a message for the person) when no digit can be read."""
    try:
        return read_image(_loaded(stamp), io.BytesIO(data)), None
    except PreprocessError as error:
        return None, str(error)


@st.cache_data(max_entries=64, show_spinner=False)
def predict_upload(data: bytes, stamp: tuple[int, ...]) -> tuple[Reading | None, str | None, Image.Image | None]:
    """An uploaded file -> (reading, message, thumbnail), decoding it once for both (a huge picture is
    decoded in a worker process, which takes seconds)."""
    try:
        reduced, _ = open_reduced(io.BytesIO(data))
        prediction = read_image(_loaded(stamp), reduced, with_steps=True)
    except PreprocessError as error:
        return None, str(error), None
    return prediction, None, ui_support.thumbnail(reduced)


def _loaded(stamp: tuple) -> Classifier:
    state = _load_model(stamp)
    if state.classifier is None:
        raise ModelUnavailableError(state.problem)
    return state.classifier


@st.cache_data(max_entries=512, show_spinner=False)
def thumbnail(data: bytes) -> Image.Image | None:
    try:
        return ui_support.thumbnail(data)
    except PreprocessError:
        return None


def escape_markdown(text: str) -> str:
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)
