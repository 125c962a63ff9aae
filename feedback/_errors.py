"""Exceptions and warnings raised by :mod:`feedback`."""

from __future__ import annotations

__all__ = ["CorruptFragmentWarning", "FeedbackError", "FeedbackSchemaError"]


class FeedbackError(ValueError):
    """Base class of every error raised by the feedback package.

    Messages state the rule that was broken, the value received and what to do about it.
    """


class FeedbackSchemaError(FeedbackError):
    """A Parquet file in the store does not match the schema this package reads.

    Attributes:
        path: The offending file.
        field: The first field that does not match (``"<schema version>"`` when the file
            declares a schema version this package does not know).
    """

    def __init__(self, message: str, *, path: str, field: str) -> None:
        super().__init__(message)
        self.path = path
        self.field = field


class CorruptFragmentWarning(UserWarning):
    """A store file could not be read (truncated or corrupt) and was skipped.

    Every other file is still read; the skipped files are listed in
    :attr:`feedback.FeedbackStore.skipped`.
    """
