"""The README names every button, page, tab and control exactly as the app shows it.

The labels are read from the app's source (app.py and app_pages/), so renaming one on
screen without updating the README fails here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
APP_FILES = [REPO_ROOT / "app.py", *sorted((REPO_ROOT / "app_pages").glob("*.py"))]

# Streamlit calls whose first argument (or `title=`) is text a person reads and clicks or picks.
LABELLED = {"button", "download_button", "form_submit_button", "segmented_control", "selectbox", "radio", "slider",
            "checkbox", "toggle", "title", "Page"}


def labels_in(source: str) -> list[str]:
    """Constant labels of the calls in LABELLED, and the tab names of st.tabs([...])."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        name = node.func.attr
        if name == "tabs" and node.args and isinstance(node.args[0], (ast.List, ast.Tuple)):
            found.extend(item.value for item in node.args[0].elts if isinstance(item, ast.Constant))
        elif name in LABELLED:
            keyword = {kw.arg: kw.value for kw in node.keywords}
            label = keyword.get("title") if name == "Page" else (node.args[0] if node.args else keyword.get("label"))
            if isinstance(label, ast.Constant) and isinstance(label.value, str):
                found.append(label.value)
    return found


def named_in(label: str, text: str) -> bool:
    """`label` as a whole phrase ("Show" is not named by "shows")."""
    return re.search(rf"(?<!\w){re.escape(label)}(?!\w)", text) is not None


def app_labels() -> list[str]:
    return sorted({label for path in APP_FILES for label in labels_in(path.read_text(encoding="utf-8"))})


def test_the_labels_are_found():
    labels = app_labels()
    # One of each kind, so a change in how the app is written cannot make this test check nothing.
    for expected in ("Classify", "Review corrections", "Draw", "Upload", "Wrong", "Download all (zip)", "True label"):
        assert expected in labels


@pytest.mark.parametrize("label", app_labels())
def test_the_readme_names_each_label_as_on_screen(label):
    assert named_in(label, (REPO_ROOT / "README.md").read_text(encoding="utf-8")), f"README.md does not name {label!r}"


def test_a_renamed_label_is_noticed():
    renamed = 'st.button("Save the correction", key="x")\nst.Page("p.py", title="Classify a digit")'
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert [label for label in labels_in(renamed) if not named_in(label, readme)] == ["Save the correction", "Classify a digit"]
