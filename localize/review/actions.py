"""The reviewer's decisions, kept in ``OUT/review.json`` (written atomically after each action).

``review.json`` (``localize.review/1``): ``reviewer``, ``started`` and ``updated`` (ISO 8601 UTC),
``decisions`` {automatic lesion id: "accept" | "reject"}, ``relabels`` {id: {region, site, mitnm}},
``deleted`` [ids], ``added`` [{id, seed_lps_mm, lesion measurements}], ``exports`` [{time, changes}].
Ids are those of the automatic findings (``OUT/automatic/findings.json`` once exported); added
lesions get ids after the last automatic one. Sites and regions are the contract's vocabulary.
"""

from __future__ import annotations

import datetime
import json
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from localize.atomic import write_json
from localize.classify.sites import site_call as classified_site
from localize.errors import LocalizeError
from localize.findings import findings_schema

SCHEMA = "localize.review/1"
REVIEW_FILE = "review.json"
DECISIONS = ("accept", "reject")
PAGE_FILES = ("volumes/ct.nii.gz", "volumes/mr.nii.gz", "automatic/findings.json", "automatic/lesions.nii.gz")


def site_call(site: str) -> dict[str, str]:
    """``{region, site, mitnm}`` of a contract site (PROMISE V2); LocalizeError outside the vocabulary."""
    sites = findings_schema()["$defs"]["lesion"]["properties"]["site"]["enum"]
    if site not in sites:
        raise LocalizeError(f"site {site!r} is not one of {sites}")
    call = classified_site(site)
    return {"region": call.region, "site": site, "mitnm": call.mitnm}


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def automatic_findings(out: Path) -> dict[str, Any]:
    """The run's own findings.json document (kept in ``automatic/`` after the first export)."""
    from localize.review.export import AUTOMATIC

    kept = out / AUTOMATIC / "findings.json"
    return json.loads((kept if kept.is_file() else out / "findings.json").read_text())


class Review:
    """The review of one output folder; ``apply`` runs one action and saves ``review.json``."""

    def __init__(self, out: Path, reviewer: str = ""):
        self.out = out
        self.path = out / REVIEW_FILE
        self.lock = threading.Lock()
        self.doc = json.loads(self.path.read_text()) if self.path.is_file() else {
            "schema": SCHEMA, "reviewer": reviewer, "started": now_iso(), "updated": None,
            "decisions": {}, "relabels": {}, "deleted": [], "added": [], "exports": []}
        if reviewer:
            self.doc["reviewer"] = reviewer

    def state(self) -> dict[str, Any]:
        """The review document plus, for the page, the site vocabulary and which optional files OUT holds."""
        sites = findings_schema()["$defs"]["lesion"]["properties"]["site"]["enum"]
        files = [name for name in PAGE_FILES if (self.out / name).is_file()]
        return self.doc | {"sites": sites, "files": files}

    def _ids(self) -> set[int]:
        return {lesion["id"] for lesion in automatic_findings(self.out)["lesions"]} | \
            {lesion["id"] for lesion in self.doc["added"]}

    def _lesion_id(self, body: dict[str, Any]) -> str:
        lesion_id = int(body["lesion"])
        if lesion_id not in self._ids():
            raise LocalizeError(f"no lesion {lesion_id}")
        return str(lesion_id)

    def apply(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        """Run one action (decision, relabel, delete, add, reviewer, export); returns the new state."""
        with self.lock:
            if action == "decision":
                if body["decision"] not in DECISIONS:
                    raise LocalizeError(f"decision must be one of {DECISIONS}")
                self.doc["decisions"][self._lesion_id(body)] = body["decision"]
            elif action == "relabel":
                self.doc["relabels"][self._lesion_id(body)] = site_call(body["site"])
            elif action == "delete":
                lesion_id = int(self._lesion_id(body))
                self.doc["deleted"] = sorted(set(self.doc["deleted"]) | {lesion_id})
            elif action == "add":
                self.doc["added"].append(self._add([float(v) for v in body["point_lps_mm"]]))
            elif action == "reviewer":
                self.doc["reviewer"] = str(body["name"])[:200]
            elif action == "export":
                from localize.review.export import export_reviewed

                self.doc["exports"].append({"time": now_iso(), "outputs": export_reviewed(self.out, self.doc)})
            else:
                raise LocalizeError(f"unknown action {action!r}")
            self.doc["updated"] = now_iso()
            self.save()
            return self.state()

    def _add(self, point_lps_mm: list[float]) -> dict[str, Any]:
        """A lesion segmented from a reader's point (LPS mm, PET frame) with the run's settings."""
        from localize.review.export import added_lesion

        if len(point_lps_mm) != 3 or not np.all(np.isfinite(point_lps_mm)):
            raise LocalizeError("point_lps_mm must be 3 finite numbers")
        grown = added_lesion(self.out, self.doc, point_lps_mm)
        if grown is None:
            raise LocalizeError("nothing to segment at that point (no uptake above the growth floor)")
        lesion = grown[1]
        lesion.id = max(self._ids(), default=0) + 1
        entry = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(lesion).items()}
        return entry | site_call("unknown") | {"seed_lps_mm": point_lps_mm}

    def save(self) -> None:
        write_json(self.path, self.doc)
