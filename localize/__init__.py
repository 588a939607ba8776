"""localize: imaging-guided localization of recurrent prostate cancer.

Research software, not a medical device. Coordinates are DICOM patient
coordinates (LPS, millimetres) unless a name says otherwise.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("localize")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from localize.errors import LocalizeError

__all__ = ["LocalizeError", "__version__"]
