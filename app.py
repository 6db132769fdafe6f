"""The Streamlit app: draw or upload a digit, see what the model reads, collect its mistakes.

Run it with `make app` (or `streamlit run app.py`). The pages live in app_pages/; every piece
of model, image and storage logic lives in the digit_classifier package.
"""

from __future__ import annotations

import streamlit as st

from app_pages import common
from digit_classifier.preprocess import PREPROCESSING_VERSION

PAGES = [
    st.Page("app_pages/classify.py", title="Classify", icon=":material/draw:", default=True),
    st.Page("app_pages/review.py", title="Review corrections", icon=":material/fact_check:", url_path="review"),
]


def model_sidebar() -> None:
    classifier = common.classifier()
    with st.sidebar:
        if classifier is None:
            st.warning("No model yet.")
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


if __name__ == "__main__":
    main()
