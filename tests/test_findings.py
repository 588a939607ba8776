"""findings.json and back: ``Findings.from_dict`` is ``to_dict``'s inverse (the reviewed export relies on it)."""

from __future__ import annotations

from helpers.images import findings_for, lesion_label_image

from localize.findings import Candidate, Findings


def test_a_findings_document_reads_back_to_the_same_findings():
    findings = findings_for(lesion_label_image())
    findings.candidates = [Candidate(peak_lps_mm=(-12.5, 40.0, 101.25), suv_max=3.4, reason="below threshold")]
    doc = findings.to_dict()

    again = Findings.from_dict(doc)

    assert again.to_dict() == doc
    for before, after in zip(findings.lesions, again.lesions, strict=True):
        assert isinstance(after.target_lps_mm, tuple)  # points come back as (x, y, z) LPS mm, not lists
        assert after.target_lps_mm == before.target_lps_mm
        assert (after.region, after.site, after.suv_max) == (before.region, before.site, before.suv_max)
    assert again.candidates[0].peak_lps_mm == (-12.5, 40.0, 101.25)
