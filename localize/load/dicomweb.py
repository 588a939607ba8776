"""DICOMweb (DICOM PS3.18) on ``dicomweb-client``: fetch a study, store results.

``fetch_study`` lists a study's instances with QIDO-RS (PS3.18 10.6, Search
Transaction) and retrieves each with WADO-RS (PS3.18 10.4, Retrieve
Transaction); every instance is checked against the untrusted-input ceilings
(``localize.load.limits.check_dataset``) and written atomically as
``OUT/SERIES/SOP.dcm`` (names: ``localize.safe_names.safe_name`` of the UIDs).
``store_results`` sends files with STOW-RS (PS3.18 10.5, Store Transaction).
Network and HTTP failures become one-line ``LocalizeError`` messages naming the URL.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pydicom
from pydicom.uid import UID

from localize.atomic import atomic_write
from localize.errors import LocalizeError
from localize.load.limits import check_dataset
from localize.safe_names import safe_name

# DICOM JSON (PS3.18 F.2) tags of a QIDO-RS instance result.
_SERIES_UID, _SOP_UID = "0020000E", "00080018"


def _client(url: str):
    from dicomweb_client.api import DICOMwebClient

    if not url.startswith(("http://", "https://")):
        raise LocalizeError("a DICOMweb URL starts with http:// or https://", url)
    client = DICOMwebClient(url=url.rstrip("/"))
    client.set_http_retry_params(max_attempts=3, wait_exponential_multiplier=500)  # ms: ~1.5 s in all, not 30
    return client


@contextmanager
def _web_errors(url: str, what: str) -> Iterator[None]:
    """Turn requests' failures into one-line LocalizeErrors naming ``url``."""
    import requests

    try:
        yield
    except requests.HTTPError as exc:
        code = exc.response.status_code if exc.response is not None else "?"
        raise LocalizeError(f"{what} failed: HTTP {code}", url) from None
    except requests.RequestException as exc:
        raise LocalizeError(f"{what} failed: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}", url) from None


def fetch_study(url: str, study_uid: str, out: str | Path) -> list[Path]:
    """Every instance of study ``study_uid`` at the DICOMweb service ``url`` into ``out``; the files written."""
    if not UID(study_uid).is_valid:
        raise LocalizeError(f"{study_uid!r} is not a valid Study Instance UID")
    out = Path(out)
    client = _client(url)
    with _web_errors(url, "QIDO-RS search"):
        found = client.search_for_instances(study_instance_uid=study_uid, get_remaining=True)
    if not found:
        raise LocalizeError(f"no instances of study {study_uid}", url)
    written = []
    for item in found:
        series_uid, sop_uid = (str(item.get(tag, {}).get("Value", [""])[0]) for tag in (_SERIES_UID, _SOP_UID))
        if not (UID(series_uid).is_valid and UID(sop_uid).is_valid):
            raise LocalizeError(f"QIDO-RS result without valid Series/SOP Instance UIDs in study {study_uid}", url)
        with _web_errors(url, "WADO-RS retrieve"):
            ds = client.retrieve_instance(study_uid, series_uid, sop_uid)
        where = f"{url} {sop_uid}"
        check_dataset(ds, where)
        if str(ds.get("SOPInstanceUID", "")) != sop_uid:
            raise LocalizeError(f"WADO-RS returned instance {ds.get('SOPInstanceUID')} for {sop_uid}", url)
        path = out / safe_name(series_uid) / f"{safe_name(sop_uid)}.dcm"
        with atomic_write(path) as tmp:
            ds.save_as(tmp, enforce_file_format=True)
        written.append(path)
    return written


def store_results(url: str, paths: Iterable[str | Path]) -> int:
    """STOW-RS the DICOM files ``paths`` to ``url``; the number stored. A refused instance is a LocalizeError."""
    datasets = [pydicom.dcmread(p) for p in paths]
    if not datasets:
        return 0
    client = _client(url)
    with _web_errors(url, "STOW-RS store"):
        response = client.store_instances(datasets)
    failed = response.get("FailedSOPSequence") if response is not None else None
    if failed:
        reasons = ", ".join(f"{item.get('ReferencedSOPInstanceUID', '?')} (0x{int(item.get('FailureReason', 0)):04X})"
                            for item in failed)
        raise LocalizeError(f"STOW-RS refused {len(failed)} instance(s): {reasons}", url)
    return len(datasets)
