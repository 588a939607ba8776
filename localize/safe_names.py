"""Safe file names and labels from untrusted DICOM text.

Every output name built from a DICOM value (series description, patient ID,
study date, ROI name) goes through ``safe_name``: the result is plain ASCII
letters, digits, ``.``, ``_``, ``-`` and ``+``; it has no path separator, is
never ``.``/``..``, a hidden name or a Windows reserved device name (CON, NUL,
COM1...), and is at most ``max_length`` characters. ``unique_name`` resolves
collisions case-insensitively (macOS and Windows file systems ignore case).
``clean_label`` keeps a value readable for messages and structure names but
drops control characters, so a tag can never break a one-line message or log.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import MutableSet

#: Longest name ``safe_name`` returns by default (well under every file system's 255 bytes).
MAX_NAME_LENGTH = 64

# Device names Windows refuses as a file name, with or without an extension.
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | {
    f"{stem}{n}" for stem in ("COM", "LPT") for n in "123456789"}
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
_HASH_CHARS = 8


def _as_text(value: object) -> str:
    """Any DICOM value as text: bytes decoded leniently (non-UTF-8 archives), lone surrogates dropped."""
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value).encode("utf-8", errors="replace").decode("utf-8", errors="replace")


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()[:_HASH_CHARS]


def safe_name(value: object, *, fallback: str = "unnamed", max_length: int = MAX_NAME_LENGTH) -> str:
    """A file-system-safe name from any value (str, bytes in any encoding, None).

    Accented letters lose their accents, every other character outside
    ``[A-Za-z0-9._+-]`` (separators, control characters, spaces) becomes ``_``;
    leading and trailing ``._-`` are stripped. A value longer than ``max_length``
    is cut and ends in ``_`` + 8 hex characters of its hash, so two long values
    sharing a prefix stay distinct. An empty result is ``fallback``.
    """
    if max_length < 2 * _HASH_CHARS:
        raise ValueError(f"max_length must be at least {2 * _HASH_CHARS}")
    text = _as_text(value)
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", errors="ignore").decode("ascii")
    name = _UNSAFE.sub("_", ascii_text).strip("._-")
    name = re.sub(r"\.{2,}", ".", name)
    if not name:
        name = fallback
    if name.split(".")[0].upper() in _WINDOWS_RESERVED:
        name = f"_{name}"
    if len(name) > max_length:
        name = f"{name[: max_length - _HASH_CHARS - 1].rstrip('._-')}_{_short_hash(text)}"
    return name


def unique_name(name: str, taken: MutableSet[str], *, max_length: int = MAX_NAME_LENGTH) -> str:
    """``name``, or ``name_2``, ``name_3``... the first not in ``taken`` (ignoring case); added to ``taken``.

    ``taken`` holds lower-cased names; the suffix replaces the end of a name at
    ``max_length`` so the result stays within it.
    """
    candidate, n = name, 1
    while candidate.lower() in taken:
        n += 1
        suffix = f"_{n}"
        candidate = name[: max_length - len(suffix)] + suffix
    taken.add(candidate.lower())
    return candidate


def clean_label(value: object, *, max_length: int = MAX_NAME_LENGTH) -> str:
    """A value as a one-line label: control characters (NUL, newlines, escapes) removed, length bounded.

    For names shown in messages or kept as structure names, not for file names
    (use ``safe_name``).
    """
    text = "".join(c if unicodedata.category(c)[0] != "C" else " " for c in _as_text(value))
    text = " ".join(text.split())
    if len(text) > max_length:
        text = f"{text[: max_length - _HASH_CHARS - 1]}~{_short_hash(text)}"
    return text
