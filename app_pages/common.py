"""What the pages share: the model (loaded once, reloaded when its file changes) and cached predictions."""

from __future__ import annotations

import gc
import io
import re

import numpy as np
import streamlit as st
from PIL import Image

from digit_classifier import config, ui_support
from digit_classifier.model import Classifier, load_classifier
from digit_classifier.predict import Prediction, predict_image
from digit_classifier.decode import open_reduced
from digit_classifier.preprocess import PreprocessError

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$])")


def model_stamp() -> tuple[int, ...]:
    return ui_support.file_stamp(config.model_path(), config.metadata_path())


@st.cache_resource(max_entries=2, show_spinner="Loading the model…")
def _load_classifier(path: str, stamp: tuple[int, ...]) -> Classifier:
    classifier = load_classifier(path)
    blank = np.zeros((1, config.IMAGE_SIZE, config.IMAGE_SIZE), np.float32)
    classifier.probabilities(blank)  # the compiled call is built now rather than on the first stroke
    # Streamlit collects garbage after every script run; with TensorFlow's ~400,000 long-lived objects
    # that took 0.3-0.7 s and held up the next rerun. Frozen objects are left out of those collections.
    gc.freeze()
    return classifier


def classifier() -> Classifier | None:
    """The current model, or None when there is none yet (see `missing_model_message`)."""
    path = config.model_path()
    return _load_classifier(str(path), model_stamp()) if path.is_file() else None


def missing_model_message() -> str:
    return f"No trained model at `{config.model_path()}`. Train one with `make train`, then reload this page."


@st.cache_data(max_entries=256, show_spinner=False)
def predict(data: bytes, stamp: tuple[int, ...]) -> tuple[Prediction | None, str | None]:
    """Image file bytes -> (prediction, None), or (None, a message for the person) when no digit can be read."""
    try:
        return predict_image(_load_classifier(str(config.model_path()), stamp), io.BytesIO(data)), None
    except PreprocessError as error:
        return None, str(error)


@st.cache_data(max_entries=64, show_spinner=False)
def predict_upload(data: bytes, stamp: tuple[int, ...]) -> tuple[Prediction | None, str | None, Image.Image | None]:
    """An uploaded file -> (prediction, message, thumbnail), decoding it once for both (a huge picture is
    decoded in a worker process, which takes seconds)."""
    try:
        reduced, _ = open_reduced(io.BytesIO(data))
        prediction = predict_image(_load_classifier(str(config.model_path()), stamp), reduced)
    except PreprocessError as error:
        return None, str(error), None
    return prediction, None, ui_support.thumbnail(reduced)


@st.cache_data(max_entries=512, show_spinner=False)
def thumbnail(data: bytes) -> Image.Image | None:
    try:
        return ui_support.thumbnail(data)
    except PreprocessError:
        return None


def escape_markdown(text: str) -> str:
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)
