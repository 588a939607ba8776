"""The lesion table: one row per lesion, as a pandas DataFrame and as CSV.

Columns are the contract's lesion fields (findings.json) with each point split
into ``<name>_x/_y/_z`` (``target_lps_mm`` → ``target_lps_mm_x`` ...; LPS mm in
the PET frame, ``target_mr_lps_mm_*`` in the MR frame), followed by study
columns (study UID, frame of reference, tracer) so tables of many studies can
be concatenated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from localize.atomic import atomic_write
from localize.findings import Findings, Lesion

POINT_FIELDS = ("peak_lps_mm", "centroid_lps_mm", "target_lps_mm", "target_mr_lps_mm")
STUDY_COLUMNS = ("study_instance_uid", "frame_of_reference_uid", "tracer_family")


def _columns() -> list[str]:
    columns = []
    for name in Lesion.__dataclass_fields__:
        columns += [f"{name}_{axis}" for axis in "xyz"] if name in POINT_FIELDS else [name]
    return columns + list(STUDY_COLUMNS)


def lesion_table(findings: Findings) -> pd.DataFrame:
    """One row per lesion (ordered by id), contract fields plus study columns."""
    return lesion_table_from_doc(findings.to_dict())


def lesion_table_from_doc(doc: dict[str, Any]) -> pd.DataFrame:
    """:func:`lesion_table` of a findings.json document (e.g. read back from disk)."""
    study = {
        "study_instance_uid": doc["study"].get("study_instance_uid"),
        "frame_of_reference_uid": doc["frame_of_reference_uid"],
        "tracer_family": doc["tracer"].get("family"),
    }
    rows: list[dict[str, Any]] = []
    for lesion in doc["lesions"]:
        row: dict[str, Any] = {}
        for name, value in lesion.items():
            if name in POINT_FIELDS:
                row.update({f"{name}_{axis}": (None if value is None else float(v))
                            for axis, v in zip("xyz", value or (None,) * 3)})
            elif name == "region_candidates":
                row[name] = ";".join(value)
            else:
                row[name] = value
        rows.append(row | study)
    table = pd.DataFrame(rows, columns=_columns())
    return table.sort_values("id", kind="stable").reset_index(drop=True)


def write_csv(findings: Findings, path: str | Path) -> Path:
    """Write :func:`lesion_table` as CSV (UTF-8, header row, no index) to ``path``, atomically."""
    path = Path(path)
    with atomic_write(path) as tmp:
        lesion_table(findings).to_csv(tmp, index=False)
    return path
