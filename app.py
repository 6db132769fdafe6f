"""The Streamlit app: draw or upload a digit, see what the model reads, collect its mistakes.

Run it with `make app` (or `streamlit run app.py`). The pages live in app_pages/; every piece
of model, image and storage logic lives in the digit_classifier package.
"""

from __future__ import annotations

import os

# Before TensorFlow loads: with oneDNN's kernels the first model call of every script run spent
# ~55 ms of CPU getting ready, ~27 ms without, and for one 28x28 image the plain kernels are as
# fast. Measured on two cores: median stroke-to-prediction 315 ms -> 275 ms.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import streamlit as st  # noqa: E402

from app_pages import common  # noqa: E402
from digit_classifier.preprocess import PREPROCESSING_VERSION  # noqa: E402

PAGES = [
    st.Page("app_pages/classify.py", title="Classify", icon=":material/draw:", default=True),
    st.Page("app_pages/review.py", title="Review corrections", icon=":material/fact_check:", url_path="review"),
]


def model_sidebar() -> None:
    state = common.model_state()
    classifier = state.classifier
    with st.sidebar:
        if classifier is None:
            st.warning(f"model unavailable: {state.problem}")
            return
        st.markdown(f"**Model** `{classifier.version}`")
        accuracy = classifier.metadata.get("test_accuracy")
        if accuracy is not None:
            st.caption(f"MNIST test accuracy {accuracy:.2%}")
        st.caption(f"Preprocessing version {PREPROCESSING_VERSION}")


def main() -> None:
    st.set_page_config(page_title="Digit classifier", page_icon=":material/draw:", layout="wide")
    page = st.navigation(PAGES)
    model_sidebar()
    page.run()
    common.prepare_reading()


if __name__ == "__main__":
    main()
