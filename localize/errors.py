"""The one exception family of localize.

Every error the toolkit raises on bad input is a ``LocalizeError``; its message
is one line naming the file (or series) and what is wrong with it. The CLI
prints that line and exits non-zero; a batch records it and goes on.
"""

from __future__ import annotations

from pathlib import Path


class LocalizeError(Exception):
    """Base of every error localize raises on bad input or configuration."""

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = str(path) if path is not None else None
        self.reason = " ".join(str(message).split())  # always one line
        super().__init__(f"{self.path}: {self.reason}" if self.path else self.reason)


class DicomReadError(LocalizeError):
    """A file is not readable DICOM, or is truncated or malformed."""


class SeriesError(LocalizeError):
    """A series cannot become one consistent image (geometry, missing slices...)."""


class SuvError(LocalizeError):
    """A PET series lacks, or has inconsistent, attributes needed for SUV."""


class StudyError(LocalizeError):
    """A study lacks what a step needs (no PET, no CT, ...)."""


class RegistrationError(LocalizeError):
    """Images could not be registered, or the result is implausible."""


class ConfigError(LocalizeError):
    """A configuration or pipeline file has unknown keys or bad values."""


class ResourceLimitError(LocalizeError):
    """An input exceeds a configured resource ceiling (size, dimensions, depth)."""
