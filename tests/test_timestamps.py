"""One timestamp format is written everywhere; the formats written before it are still read."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from digit_classifier import timestamps

WRITTEN = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")


def test_the_written_format_is_utc_with_z_and_reads_back_exactly():
    moment = datetime(2026, 11, 29, 21, 30, 5, 123456, tzinfo=timezone(timedelta(hours=2)))
    text = timestamps.format_utc(moment)
    assert text == "2026-11-29T19:30:05.123456Z"
    assert timestamps.parse_utc(text) == moment
    assert WRITTEN.fullmatch(timestamps.utc_now())


@pytest.mark.parametrize(
    "older, expected",
    [
        ("2026-11-27T07:47:48+00:00", datetime(2026, 11, 27, 7, 47, 48, tzinfo=timezone.utc)),  # metadata, history
        ("2026-11-27T07:47:48.000001Z", datetime(2026, 11, 27, 7, 47, 48, 1, tzinfo=timezone.utc)),  # sidecars
        ("2026-11-27T09:47:48+02:00", datetime(2026, 11, 27, 7, 47, 48, tzinfo=timezone.utc)),
        ("2026-11-27T07:47:48", datetime(2026, 11, 27, 7, 47, 48, tzinfo=timezone.utc)),  # no offset: taken as UTC
    ],
)
def test_older_formats_are_read(older, expected):
    assert timestamps.parse_utc(older) == expected


@pytest.mark.parametrize("not_a_time", ["yesterday", "", 12, None, "9999-12-31T23:59:59-12:00"])
def test_anything_else_is_no_time(not_a_time):
    assert timestamps.parse_utc(not_a_time) is None

