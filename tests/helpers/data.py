"""Repository paths, the optional third-party test data, tree digests and the small two-patient archive."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Real third-party DICOM, read in place when present next to the repository (marker ``testdata``).
SHARED_TESTDATA = REPO.parent / "shared" / "testdata"


def tree_digest(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root`` (to prove an input tree was not written)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def build_small_archive(root: Path) -> tuple[Path, Path]:
    """Two patients' small PET/CT phantom studies (128 CT matrix, one nodal lesion each) under
    ``root/archive``, and a fast pipeline file; returns (archive, pipeline)."""
    from localize.sample_data import LesionSpec, StudySpec, make_study

    for seed in (31, 32):
        built = root / f"phantom{seed}"
        make_study(built, StudySpec(seed=seed, extent="pelvis", ct_matrix=128, with_mr=False,
                                    lesions=(LesionSpec("obturator", 12, 8.0, "left"),)))
        shutil.copytree(built / "dicom", root / "archive" / f"patient{seed}")
    pipeline = root / "fast.yaml"
    pipeline.write_text("extends: psma-salvage-rt\nexports: [findings, csv, rtstruct]\n")
    return root / "archive", pipeline
