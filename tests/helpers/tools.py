"""External programs some tests run, and one rule for when one is missing.

The CI image installs all of them (``apt-get install dicom3tools dcm2niix orthanc
orthanc-dicomweb chromium chromium-driver``), so a missing program fails the test that
needs it, with a message naming the program and its Debian package. Set
``LOCALIZE_ALLOW_MISSING_TOOLS=1`` to skip those tests instead (same message).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ALLOW_MISSING = "LOCALIZE_ALLOW_MISSING_TOOLS"

# program -> (Debian package, where Debian installs it when it is not on PATH)
TOOLS = {
    "dciodvfy": ("dicom3tools", None),
    "dcm2niix": ("dcm2niix", None),
    "Orthanc": ("orthanc", "/usr/sbin/Orthanc"),
    "chromium": ("chromium", "/usr/bin/chromium"),
    "chromedriver": ("chromium-driver", "/usr/bin/chromedriver"),
}
# files that are not programs but come with one
FILES = {
    "orthanc-dicomweb": (Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so"), "orthanc-dicomweb"),
}


def _missing(what: str, package: str) -> None:
    message = f"{what} is not installed (apt-get install {package})"
    if os.environ.get(ALLOW_MISSING) == "1":
        pytest.skip(message)
    pytest.fail(f"{message}; set {ALLOW_MISSING}=1 to skip the tests that need it", pytrace=False)


def require_tool(name: str) -> str:
    """The path of program ``name`` (a key of TOOLS); fails, or skips under LOCALIZE_ALLOW_MISSING_TOOLS=1, if
    absent."""
    package, fallback = TOOLS[name]
    found = shutil.which(name) or (fallback if fallback and Path(fallback).is_file() else None)
    if found is None:
        _missing(name, package)
    return found


def require_file(name: str) -> Path:
    """The path of a file a package installs (a key of FILES), under the same rule as ``require_tool``."""
    path, package = FILES[name]
    if not path.exists():
        _missing(str(path), package)
    return path


def dciodvfy_errors(path: Path) -> list[str]:
    """The "Error" lines of dicom3tools' dciodvfy on one file."""
    result = subprocess.run([require_tool("dciodvfy"), str(path)], capture_output=True, text=True)
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]
