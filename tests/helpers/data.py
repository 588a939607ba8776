"""Repository paths, the optional third-party test data and tree digests."""

from __future__ import annotations

import hashlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Real third-party DICOM, read in place when present next to the repository (marker ``testdata``).
SHARED_TESTDATA = REPO.parent / "shared" / "testdata"


def tree_digest(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root`` (to prove an input tree was not written)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}
