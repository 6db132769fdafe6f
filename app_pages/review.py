"""Review page: the corrections in wrong_predictions/ (digits and pictures that are not digits), with counts, thumbnails,
relabel, delete and download."""

from __future__ import annotations

import streamlit as st

from app_pages import common, ui_support
from digit_classifier import config, feedback
from digit_classifier.feedback import FeedbackItem, UnmatchedItem
from digit_classifier.predict import NOT_A_DIGIT, UNSURE

COLUMNS = 5
PAGE_SIZE = 30
ALL = "All"


def main() -> None:
    st.title("Review corrections")
    st.caption(
        f"Stored in `{config.feedback_dir()}`, one folder per true digit, and `{feedback.NOT_A_DIGIT_DIR}/` for pictures "
        "that are not digits. Images dropped into one of these folders by hand are listed too. A digit corrected in a number is a crop of "
        "its picture; the whole picture is shown on demand."
    )
    show_notice()
    listing = feedback.scan()
    items = listing.items
    if listing.skipped:
        st.warning(
            f"{len(listing.skipped)} entr{'ies' if len(listing.skipped) != 1 else 'y'} left out: "
            + "; ".join(f"`{entry}`" for entry in listing.skipped)
        )
    label_counts(listing.counts(), len(items))
    unmatched_section(feedback.scan_unmatched())
    if not items:
        st.info("No corrections yet. Mark a prediction as **Wrong** on the Classify page to collect one.")
        return
    shown = filter_bar(items)
    gallery(current_page(shown))


def show_notice() -> None:
    notice = st.session_state.pop("review_notice", None)
    if notice:
        kind, text = notice
        getattr(st, kind)(text)


def label_counts(counts: dict[int, int], total: int) -> None:
    st.subheader(f"{total} image{'s' if total != 1 else ''}", anchor=False)
    for column, (label, count) in zip(st.columns(len(counts)), counts.items(), strict=True):
        column.metric(count_title(label), count)


def count_title(label: int) -> str:
    return f"Digit {label}" if label in config.DIGITS else feedback.label_text(label)


def filter_bar(items: list[FeedbackItem]) -> list[FeedbackItem]:
    choice, download = st.columns([3, 1], vertical_alignment="bottom")
    with choice:
        label = st.segmented_control(
            "Show", [ALL, *feedback.LABELS], default=ALL, key="review_filter",
            format_func=lambda choice: choice if choice == ALL else feedback.label_text(choice),
        )
    with download:
        st.download_button(
            "Download all (zip)", data=feedback.export_zip, file_name="wrong_predictions.zip",
            mime="application/zip", icon=":material/download:", on_click="ignore", width="stretch",
        )
    return items if label in (ALL, None) else [item for item in items if item.label == label]


def current_page(items: list[FeedbackItem]) -> list[FeedbackItem]:
    pages = max(1, -(-len(items) // PAGE_SIZE))
    if pages == 1:
        return items
    page = st.number_input(f"Page (of {pages})", min_value=1, max_value=pages, value=1, key="review_page")
    return items[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]


def gallery(items: list[FeedbackItem]) -> None:
    if not items:
        st.info("No images with this label.")
    for start in range(0, len(items), COLUMNS):
        for column, item in zip(st.columns(COLUMNS), items[start : start + COLUMNS], strict=False):
            with column.container(border=True):
                item_card(item)


def item_card(item: FeedbackItem) -> None:
    try:
        image = common.thumbnail(feedback.read_image(item))
    except OSError:
        image = None
    if image is None:
        st.warning(f"`{item.name}` cannot be displayed.")
    else:
        st.image(image, width=120)
    st.caption(describe(item))
    if "source_sha256" in item.metadata and st.toggle("Source picture", key=f"source-{item.id}"):
        source_picture(item)
    st.selectbox(
        "True label", feedback.LABELS, index=feedback.LABELS.index(item.label), format_func=feedback.label_text,
        key=f"relabel-{item.id}", on_change=_relabel, args=(item,),
    )
    st.button("Delete", key=f"delete-{item.id}", icon=":material/delete:", on_click=_delete, args=(item,))


def describe(item: FeedbackItem) -> str:
    truth = f"true {item.label}" if item.is_digit else "not a digit"
    when = f"{item.saved_at:%Y-%m-%d %H:%M} UTC" if item.saved_at is not None else "time unknown"
    return f"{truth} · {model_said(item)}{in_number(item.metadata)} · {when}"


def model_said(item: FeedbackItem) -> str:
    """What the model answered, with its status when the sidecar says it."""
    predicted = item.predicted_label
    if predicted is None:
        return "added by hand"
    if item.predicted_status == NOT_A_DIGIT:
        return f"model said not a digit (closest {predicted})"
    if item.predicted_status == UNSURE:
        return f"model said {predicted}, unsure"
    return f"model said {predicted}"


def in_number(metadata: dict) -> str:
    """Where a crop sits in the number it was cut from, when its sidecar says so."""
    if not {"position", "count", "reading"} <= set(metadata):
        return ""
    typed = f", meant {metadata['typed']}" if "typed" in metadata else ""
    return f" · digit {metadata['position'] + 1} of {metadata['count']} in {metadata['reading']}{typed}"


def source_picture(item: FeedbackItem) -> None:
    """The whole picture the crop was cut from, its box drawn on it; loaded only when asked for."""
    try:
        data = feedback.read_source(item.metadata["source_sha256"])
    except (OSError, ValueError):
        st.caption("The source picture is no longer in the store.")
        return
    st.image(ui_support.with_box(data, item.metadata.get("box"), item.metadata.get("source_size")), width=240)


def unmatched_section(unmatched: list[UnmatchedItem]) -> None:
    """Pictures whose typed number had another length than what was read: kept for a person, not for training."""
    if not unmatched:
        return
    with st.expander(f"{len(unmatched)} number{'s' if len(unmatched) != 1 else ''} not split into digits (not used for fine-tuning)"):
        for item in unmatched:
            with st.container(border=True, horizontal=True, vertical_alignment="center"):
                try:
                    image = common.thumbnail(feedback.read_unmatched(item))
                except OSError:
                    image = None
                if image is not None:
                    st.image(image, width=200)
                metadata = item.metadata
                when = f"{item.saved_at:%Y-%m-%d %H:%M} UTC" if item.saved_at is not None else "time unknown"
                st.markdown(
                    f"Typed **{metadata.get('typed', '?')}**, read **{metadata.get('reading', '?')}** · {when}",
                    width="content",
                )
                st.button("Delete", key=f"delete-{item.id}", icon=":material/delete:", on_click=_delete, args=(item,))


def _relabel(item: FeedbackItem) -> None:
    new_label = st.session_state[f"relabel-{item.id}"]
    try:
        moved = feedback.relabel(item, new_label)
    except (OSError, ValueError) as error:
        _notice("error", f"Could not move `{item.id}`: {error}")
        return
    _notice("success", f"Moved `{item.id}` to `{moved.id}`.")


def _delete(item: FeedbackItem | UnmatchedItem) -> None:
    try:
        if isinstance(item, UnmatchedItem):
            feedback.delete_unmatched(item)
        else:
            feedback.delete_item(item)
    except OSError as error:
        _notice("error", f"Could not delete `{item.id}`: {error}")
        return
    _notice("success", f"Deleted `{item.id}`.")


def _notice(kind: str, text: str) -> None:
    st.session_state["review_notice"] = (kind, text)


main()
