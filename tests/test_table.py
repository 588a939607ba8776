"""Lesion table (DataFrame and CSV)."""

from __future__ import annotations

import csv

import pandas as pd
import pytest

from localize.export.table import lesion_table, write_csv
from localize.findings import Findings, Lesion


def _findings(lesions) -> Findings:
    return Findings(study={"study_instance_uid": "1.2.826.0.1.1"}, frame_of_reference_uid="1.2.826.0.1.2",
                    tracer={"family": "psma"}, series={}, lesions=lesions)


def _lesion(id_, label, region, target, mr=None) -> Lesion:
    return Lesion(label=label, suv_max=10.0 / id_, suv_peak=7.5, suv_mean=4.25, volume_ml=1.5, total_uptake=6.375,
                  max_diameter_mm=14.0, peak_lps_mm=(1.0, 2.0, 3.0), centroid_lps_mm=(4.0, 5.0, 6.0),
                  target_lps_mm=target, id=id_, region=region, site="obturator", mitnm="miN",
                  region_candidates=["nodal", "distant"] if id_ == 2 else [], target_mr_lps_mm=mr)


def test_one_row_per_lesion_with_points_split(tmp_path):
    findings = _findings([_lesion(2, 7, "distant", (-10.5, 20.25, -300.0)),
                          _lesion(1, 3, "nodal", (30.0, -40.0, 50.0), mr=(31.0, -41.0, 52.0))])
    table = lesion_table(findings)
    assert list(table["id"]) == [1, 2] and list(table["label"]) == [3, 7]
    first = table.iloc[0]
    assert (first.target_lps_mm_x, first.target_lps_mm_y, first.target_lps_mm_z) == (30.0, -40.0, 50.0)
    assert (first.target_mr_lps_mm_x, first.target_mr_lps_mm_z) == (31.0, 52.0)
    assert pd.isna(table.iloc[1].target_mr_lps_mm_x)
    assert table.iloc[1].region_candidates == "nodal;distant"
    assert set(table["tracer_family"]) == {"psma"} and set(table["frame_of_reference_uid"]) == {"1.2.826.0.1.2"}
    for field in ("region", "site", "mitnm", "suv_max", "suv_peak", "suv_mean", "volume_ml", "total_uptake", "mipsma"):
        assert field in table.columns

    path = write_csv(findings, tmp_path / "out" / "lesions.csv")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == ["1", "2"]
    assert float(rows[1]["target_lps_mm_z"]) == -300.0 and rows[1]["region"] == "distant"
    assert float(rows[0]["suv_max"]) == pytest.approx(10.0)
    assert [p.name for p in path.parent.iterdir()] == ["lesions.csv"]  # no temporary left behind


def test_no_lesions_gives_the_header_only(tmp_path):
    table = lesion_table(_findings([]))
    assert len(table) == 0 and "target_lps_mm_x" in table.columns
    path = write_csv(_findings([]), tmp_path / "lesions.csv")
    assert path.read_text().splitlines()[0].startswith("label,suv_max")
