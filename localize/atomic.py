"""Write output files whole or not at all.

Every export writes to a temporary name in the destination folder and renames
it over the final name with ``os.replace`` (atomic on one file system), so a
crash or an error never leaves a half-written file behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds.

    The caller writes the whole file to the yielded path (by any library).
    On an exception the temporary file is removed and ``path`` is left as it was.
    The parent folder is created if missing.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: str | Path, doc: Any, *, indent: int | None = 2) -> None:
    """Write ``doc`` as JSON to ``path`` atomically; NaN and infinity are refused (not JSON)."""
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(doc, indent=indent, allow_nan=False))
