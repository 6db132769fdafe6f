"""The errors of reading an image. Every message is meant for a person."""

from __future__ import annotations


class PreprocessError(ValueError):
    """An image that cannot become a digit."""


class UnreadableImageError(PreprocessError):
    """Not an image, or a truncated or corrupt one."""


class ImageTooLargeError(PreprocessError):
    """More pixels than the project's limit (a decompression bomb looks like this)."""


class NoDigitFoundError(PreprocessError):
    """Blank, uniform, noise only, printed lines only, too small to hold a digit, or no single digit stands out."""


class TooMuchWritingError(NoDigitFoundError):
    """Several lines of writing, more digits than a number holds, or a page full of writing."""
