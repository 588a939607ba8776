"""Shared fixtures: the third-party test data folder and phantom studies."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_TESTDATA = REPO.parent / "shared" / "testdata"
SHARED_CONTRACT = REPO.parent / "shared" / "contract"


@pytest.fixture(scope="session")
def testdata() -> Path:
    """../shared/testdata (real third-party DICOM), read in place; skips where absent."""
    if not SHARED_TESTDATA.is_dir():
        pytest.skip("../shared/testdata is not present")
    return SHARED_TESTDATA
