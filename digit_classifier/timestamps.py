"""The one timestamp format the project writes: UTC, ISO 8601, microseconds, ending in ``Z``.

Example: ``2026-11-29T19:30:00.123456Z``. Microseconds keep two corrections saved in the
same second in the order they were made. Reading also accepts what older versions
wrote (``+00:00`` instead of ``Z``, whole seconds) and any other offset, converted to UTC;
a time without an offset is taken as UTC.
"""

from __future__ import annotations

from datetime import datetime, timezone


def format_utc(moment: datetime) -> str:
    """An aware datetime -> the project's timestamp text."""
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def utc_now() -> str:
    """The current time as the project's timestamp text."""
    return format_utc(datetime.now(timezone.utc))


def parse_utc(value) -> datetime | None:
    """A timestamp in this or an older format -> an aware UTC datetime; None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
        return parsed.astimezone(timezone.utc) if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    except (ValueError, OverflowError, OSError):  # 9999-12-31T23:59:59-12:00 overflows when converted to UTC
        return None
