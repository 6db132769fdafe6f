"""One reading on screen: the answer (a digit, or a number with a card per digit), confidence, probabilities, what the
model saw, and feedback (for a number: the person types it; each digit read wrong is saved as its own crop).

What is said follows each digit's status (predict.py): a confident digit is shown as the answer; an unsure one as
the two digits it hesitates between ("Unsure: 4 or 9?"); one that is not a digit as "This doesn't look like a
digit", its two closest digits in small print. After *Wrong*, a single digit can be saved as **Not a digit**.

Feedback state lives in st.session_state under keys prefixed by the input's own key, and
changes only in on_click callbacks, so every button works on the first click.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from app_pages import ui_support
from digit_classifier import config, feedback
from digit_classifier.predict import NOT_A_DIGIT, UNSURE, Prediction, Reading
from digit_classifier.preprocess import PREPROCESSING_VERSION, PreprocessError, StepPictures

DIGITS = list(config.DIGITS)
CHOICES = list(feedback.LABELS)  # what a single digit can be said to really be: a digit, or not a digit
NOT_A_DIGIT_MESSAGE = "This doesn't look like a digit"


@dataclass(frozen=True)
class ScreenInput:
    """An input the person gave, shown on the page: `key` is unique there and prefixes its widget keys."""

    key: str
    data: bytes  # the original: the canvas drawing as RGBA PNG, or the uploaded file
    source: str  # "draw" or "upload"
    filename: str | None = None


def show_result(screen_input: ScreenInput, reading: Reading, model_version: str) -> None:
    """The answer, then the feedback controls (they stay put while the chart below renders), then the details."""
    if len(reading.digits) > 1:
        number_summary(reading)
        feedback_controls(screen_input, reading, model_version)
        with st.expander("Probabilities of each digit"):
            number_probabilities(reading)
        if reading.steps is not None:
            reading_steps(reading.steps, reading.digits[0].image)
        return
    prediction = reading.digits[0]
    prediction_summary(prediction)
    feedback_controls(screen_input, reading, model_version)
    prediction_details(prediction)
    if reading.steps is not None:
        reading_steps(reading.steps, prediction.image)


def number_summary(reading: Reading) -> None:
    """A number: the whole of it, then one card per digit with what the model saw and its status, then which
    digits are unsure or not digits."""
    if all(digit.status == NOT_A_DIGIT for digit in reading.digits):
        st.subheader(f"None of these {len(reading.digits)} marks looks like a digit", anchor=False)
    else:
        st.subheader(f"Prediction: {reading.text}", anchor=False)
    cards = st.container(horizontal=True, gap="small")
    for digit in reading.digits:
        cards.image(ui_support.enlarge(digit.image, 3), caption=card_caption(digit), width=84)
    doubts = [f"Digit {place + 1}: {doubt(digit)}" for place, digit in enumerate(reading.digits) if not digit.is_confident]
    if doubts:
        st.warning("  \n".join(doubts))


def card_caption(digit: Prediction) -> str:
    """A number's digit in a few characters: "7 · 98%", "4 · 55% · or 9?", "not a digit"."""
    if digit.status == NOT_A_DIGIT:
        return "not a digit"
    hesitation = f" · or {digit.runner_up}?" if digit.status == UNSURE else ""
    return f"{digit.label} · {digit.confidence:.0%}{hesitation}"


def doubt(digit: Prediction) -> str:
    """Why a digit is not confident, in words (its place in the number is said by the caller)."""
    if digit.status == NOT_A_DIGIT:
        return f"doesn't look like a digit; closest {closest_two(digit)}"
    return f"unsure, {digit.label} or {digit.runner_up}?"


def closest_two(prediction: Prediction) -> str:
    """The two most probable digits with their probabilities: "4 (31%), 9 (22%)"."""
    first, second = prediction.label, prediction.runner_up
    probabilities = prediction.probabilities
    return f"{first} ({probabilities[first]:.0%}), {second} ({probabilities[second]:.0%})"


def model_answer(prediction: Prediction) -> int:
    """What the model said a single digit is, as a label: its digit, or config.NOT_A_DIGIT_LABEL."""
    return config.NOT_A_DIGIT_LABEL if prediction.status == NOT_A_DIGIT else prediction.label


def prediction_summary(prediction: Prediction) -> None:
    if prediction.status == NOT_A_DIGIT:
        st.subheader(NOT_A_DIGIT_MESSAGE, anchor=False)
        st.caption(f"Closest digits: {closest_two(prediction)}")
        return
    if prediction.status == UNSURE:
        first, second = prediction.label, prediction.runner_up
        st.subheader(f"Unsure: {first} or {second}?", anchor=False)
        probabilities = prediction.probabilities
        st.markdown(f"Confidence: **{probabilities[first]:.1%}** for {first}, **{probabilities[second]:.1%}** for {second}")
        return
    st.subheader(f"Prediction: {prediction.label}", anchor=False)
    st.markdown(f"Confidence: **{prediction.confidence:.1%}**")


def prediction_details(prediction: Prediction) -> None:
    row = st.container(horizontal=True, vertical_alignment="bottom", gap="medium")
    row.image(ui_support.enlarge(prediction.image, 5), caption=f"What the model saw ({config.IMAGE_SIZE}×{config.IMAGE_SIZE})", width=140)
    with row:
        probability_chart(prediction)


def reading_steps(steps: StepPictures, image) -> None:
    """The scene's steps for an uploaded picture: where the paper is, the printed lines removed, the ink."""
    with st.expander("How the picture was read"):
        st.image(
            [steps.picture, steps.surface, steps.lines_removed, steps.ink, ui_support.enlarge(image, 5)],
            caption=["Picture", "Surface found", "Printed lines removed", "Ink", "28×28"],
            width=150,
        )


def number_probabilities(reading: Reading) -> None:
    """All digits' ten probabilities in one chart (a row per digit of the number): one chart whatever the length."""
    rows = [
        {"place": f"{place + 1}: read {digit.label}", "digit": str(candidate), "probability": float(p)}
        for place, digit in enumerate(reading.digits)
        for candidate, p in zip(DIGITS, digit.probabilities, strict=True)
    ]
    spec = {
        "data": {"values": rows},
        "mark": {"type": "rect"},
        "encoding": {
            "x": {"field": "digit", "type": "nominal", "axis": {"labelAngle": 0, "title": "digit"}},
            "y": {"field": "place", "type": "nominal", "sort": None, "axis": {"title": None}},
            "color": {"field": "probability", "type": "quantitative", "scale": {"domain": [0, 1], "scheme": "reds"}, "legend": {"format": "%"}},
            "tooltip": [{"field": "place"}, {"field": "digit"}, {"field": "probability", "type": "quantitative", "format": ".2%"}],
        },
    }
    st.vega_lite_chart(spec=spec, width="stretch")


def probability_chart(prediction: Prediction) -> None:
    """A plain Vega-Lite spec: building it through Altair costs tens of milliseconds on every stroke."""
    probabilities = zip(DIGITS, prediction.probabilities, strict=True)
    rows = [{"digit": str(digit), "probability": float(p)} for digit, p in probabilities]
    spec = {
        "data": {"values": rows},
        "mark": {"type": "bar"},
        "height": 170,
        "encoding": {
            "x": {"field": "digit", "type": "nominal", "axis": {"labelAngle": 0, "title": "digit"}},
            "y": {
                "field": "probability", "type": "quantitative",
                "scale": {"domain": [0, 1]}, "axis": {"format": "%", "title": None},
            },
            "color": {
                "condition": {"test": f"datum.digit === '{prediction.label}'", "value": "#ff4b4b"},
                "value": "#a3a8b8",
            },
            "tooltip": [{"field": "digit"}, {"field": "probability", "type": "quantitative", "format": ".2%"}],
        },
    }
    st.vega_lite_chart(spec=spec, width="stretch")


def feedback_controls(screen_input: ScreenInput, reading: Reading, model_version: str) -> None:
    key = screen_input.key
    verdict = st.session_state.get(f"{key}-verdict")
    buttons = st.container(horizontal=True, vertical_alignment="center")
    buttons.markdown("**Is this right?**", width="content")
    buttons.button(
        "Correct", key=f"{key}-correct", icon=":material/check:",
        type="primary" if verdict == "correct" else "secondary", on_click=_set_verdict, args=(key, "correct"),
    )
    buttons.button(
        "Wrong", key=f"{key}-wrong", icon=":material/close:",
        type="primary" if verdict == "wrong" else "secondary", on_click=_set_verdict, args=(key, "wrong"),
    )
    if verdict == "correct":
        st.success("Thanks! Only wrong predictions are stored, so there is nothing to save.")
    elif verdict == "wrong" and len(reading.digits) == 1:
        correction_form(screen_input, reading.digits[0], model_version)
    elif verdict == "wrong":
        number_correction_form(screen_input, reading, model_version)
    show_notice(key)


def correction_form(screen_input: ScreenInput, prediction: Prediction, model_version: str) -> None:
    key = screen_input.key
    true_label = st.segmented_control("Which digit is it?", CHOICES, format_func=feedback.label_text, key=f"{key}-true")
    same = nothing_to_correct(prediction, true_label)
    if same:
        st.info(f"{also_said(prediction)} If that is right, press **Correct**; otherwise pick what it really is.")
    elif true_label == model_answer(prediction):
        st.caption(f"{also_said(prediction)} Saving it still keeps it as an example of what is not a digit.")
    buttons = st.container(horizontal=True)
    buttons.button(
        "Save correction", key=f"{key}-save", icon=":material/save:",
        disabled=true_label is None or same, on_click=_save, args=(screen_input, prediction, model_version),
    )
    if st.session_state.get(f"{key}-saved") is not None:
        buttons.button("Undo save", key=f"{key}-undo", icon=":material/undo:", on_click=_undo, args=(key,))


def number_correction_form(screen_input: ScreenInput, reading: Reading, model_version: str) -> None:
    """A number: the person types it whole; only the digits read wrong are saved, each as its own crop."""
    key = screen_input.key
    typed = st.text_input(
        "What is the number?", key=f"{key}-typed", placeholder=reading.text, max_chars=feedback.MAX_NUMBER_LENGTH,
        help="Every digit, left to right, then Enter. Each digit read wrong is saved as its own picture.",
    )
    ready = False
    if typed:
        try:
            number = feedback.parse_number(typed)
        except feedback.NumberTextError as error:
            st.warning(str(error))
        else:
            if number == reading.text:
                st.info(f"The model also read {reading.text}. If that is right, press **Correct**; otherwise type the number you meant.")
            elif len(number) != len(reading.digits):
                st.warning(
                    f"{found_versus_typed(len(reading.digits), len(number))} Saving keeps the picture and your number "
                    "for the Review page; it is not used for fine-tuning."
                )
                ready = True
            else:
                st.caption(describe_changes(reading.text, number))
                ready = True
    buttons = st.container(horizontal=True)
    buttons.button(
        "Save correction", key=f"{key}-save", icon=":material/save:",
        disabled=not ready, on_click=_save_number, args=(screen_input, reading, model_version),
    )
    if st.session_state.get(f"{key}-saved") is not None:
        buttons.button("Undo save", key=f"{key}-undo", icon=":material/undo:", on_click=_undo, args=(key,))


def nothing_to_correct(prediction: Prediction, true_label: int | None) -> bool:
    """A digit the model read as the person says is not saved (only mistakes are). A picture that is not a digit
    is saved even when the model said so too: fine-tuning learns from, and measures its not-a-digit rate on, the
    non-digits people give it, and keeping only those the model missed would make that rate 0 % by construction."""
    return true_label is not None and true_label != config.NOT_A_DIGIT_LABEL and true_label == model_answer(prediction)


def also_said(prediction: Prediction) -> str:
    if prediction.status == NOT_A_DIGIT:
        return "The model also said this is not a digit."
    return f"The model also read {prediction.label}."


def found_versus_typed(found: int, typed: int) -> str:
    return f"I found {found} digit{'s' if found != 1 else ''}, you typed {typed}."


def describe_changes(read: str, typed: str) -> str:
    changes = [f"digit {i + 1}: {r} → {t}" for i, (r, t) in enumerate(zip(read, typed)) if r != t]
    return f"To save ({len(changes)} of {len(read)} digits): " + ", ".join(changes)


def show_notice(key: str) -> None:
    notice = st.session_state.get(f"{key}-notice")
    if notice:
        kind, text = notice
        getattr(st, kind)(text)


def _set_verdict(key: str, verdict: str) -> None:
    st.session_state[f"{key}-verdict"] = verdict
    st.session_state[f"{key}-notice"] = None


def _save(screen_input: ScreenInput, prediction: Prediction, model_version: str) -> None:
    key = screen_input.key
    true_label = st.session_state.get(f"{key}-true")
    if true_label is None:
        _notice(key, "warning", "Pick what it really is first.")
        return
    if nothing_to_correct(prediction, true_label):
        _notice(key, "info", f"{also_said(prediction)} Nothing to correct, nothing saved.")
        return
    try:
        result = feedback.save_correction(
            screen_input.data,
            true_label,
            predicted_label=prediction.label,
            predicted_status=prediction.status,
            confidence=prediction.confidence,
            probabilities=prediction.probabilities,
            source=screen_input.source,
            original_filename=screen_input.filename,
            model_version=model_version,
            preprocessing_version=PREPROCESSING_VERSION,
        )
    except (OSError, ValueError, PreprocessError) as error:
        _notice(key, "error", f"Could not save the correction: {error}")
        return
    saved_as = "not a digit" if not result.item.is_digit else f"a {result.item.label}"
    if result.created:
        st.session_state[f"{key}-saved"] = result
        _notice(key, "success", f"Saved as {saved_as} in `wrong_predictions/{result.item.id}`.")
    else:
        _notice(key, "info", f"Already saved: this image is already in `wrong_predictions/{feedback.folder_name(result.item.label)}/`.")


def _save_number(screen_input: ScreenInput, reading: Reading, model_version: str) -> None:
    key = screen_input.key
    try:
        result = feedback.save_number_correction(
            screen_input.data,
            reading.digits,
            st.session_state.get(f"{key}-typed"),
            source=screen_input.source,
            original_filename=screen_input.filename,
            model_version=model_version,
            preprocessing_version=PREPROCESSING_VERSION,
        )
    except (OSError, ValueError, PreprocessError) as error:
        _notice(key, "error", f"Could not save the correction: {error}")
        return
    st.session_state[f"{key}-saved"] = result
    if not result.matched:
        _notice(
            key, "warning",
            f"{found_versus_typed(len(reading.digits), len(result.typed))} The picture and your number {result.typed} "
            f"are kept in `wrong_predictions/{feedback.UNMATCHED_DIR}/` for the Review page; nothing was saved for fine-tuning.",
        )
    elif not result.created:
        _notice(key, "info", "Already saved: these digits of this picture are already in `wrong_predictions/`.")
    else:
        saved = ", ".join(f"a {item.label} in `wrong_predictions/{item.id}`" for item in result.crops)
        _notice(key, "success", f"Saved {len(result.crops)} digit{'s' if len(result.crops) != 1 else ''}: {saved}.")


def _undo(key: str) -> None:
    result = st.session_state.get(f"{key}-saved")
    if result is None:
        return
    if isinstance(result, feedback.NumberSaveResult):
        _undo_number(key, result)
        return
    try:
        removed = feedback.undo_save(result)
    except OSError as error:
        _notice(key, "error", f"Could not undo the save: {error}")
        return
    st.session_state[f"{key}-saved"] = None
    if removed:
        _notice(key, "info", f"Undone: `wrong_predictions/{result.item.id}` was removed.")
    else:
        _notice(key, "info", f"Undone: your save is withdrawn; `wrong_predictions/{result.item.id}` stays, another save holds it.")


def _undo_number(key: str, result: feedback.NumberSaveResult) -> None:
    try:
        removed = feedback.undo_number_save(result)
    except OSError as error:
        _notice(key, "error", f"Could not undo the save: {error}")
        return
    st.session_state[f"{key}-saved"] = None
    kept = len(result.holds) - removed
    also = f"; {kept} file{'s' if kept != 1 else ''} stay, another save holds them" if kept else ""
    _notice(key, "info", f"Undone: {removed} file{'s' if removed != 1 else ''} removed{also}.")


def _notice(key: str, kind: str, text: str) -> None:
    st.session_state[f"{key}-notice"] = (kind, text)
