"""Ground truth of a phantom study, kept beside (never inside) its DICOM folder as truth/truth.json."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class LesionTruth:
    """One lesion: contract labels, centre in the PET/CT frame and (inside the MR) the MR frame, LPS mm."""

    name: str
    region: str
    site: str
    mitnm: str
    laterality: str
    bone: str | None
    center_lps_mm: tuple[float, float, float]
    center_mr_lps_mm: tuple[float, float, float] | None
    suv_max: float  # max of the noise-free PSF-blurred PET over voxels within the lesion (radius >= 1 voxel)
    diameter_mm: float
    touches_bladder: bool
    # the same max on the PET as written (with its noise): what a perfect delineation of this lesion reads
    # (None in truth files written before it was recorded)
    suv_max_image: float | None = None


@dataclass
class StudyTruth:
    """Everything known about a generated study. Points are LPS mm in the scanner's frame (``table_origin_lps_mm``
    is where the patient frame's origin, near the top of his symphysis, lies in it); ``mr_to_ct`` maps MR-frame
    points to PET/CT."""

    tracer: str
    vendor: str
    status: str
    patient: dict
    lesions: list[LesionTruth]
    mr_to_ct: list[list[float]] | None
    ct_to_mr: list[list[float]] | None
    landmarks: dict[str, dict]  # name -> {"lps_mm": [...], "mr_lps_mm": [...] or None}
    reference_regions: dict[str, dict]  # name -> {"suv_mean": float, "center_lps_mm": [...]}
    levels_z_mm: dict[str, float]
    series_dirs: dict[str, str]  # modality -> folder relative to out_root
    organ_classes: dict[str, int] = field(default_factory=dict)  # organs.nii.gz: class name -> value
    extent: str = "whole_body"  # field of view: pelvis, abdomen_pelvis, whole_body, vertex_to_toes
    table_origin_lps_mm: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])  # the patient frame's origin
    non_lesions: list[dict] = field(default_factory=list)  # hot things that are not lesions (kind, centre, ...)
    variation: dict | None = None  # what a varied patient drew (habitus, organs, scanner), None for the standard man

    def save(self, out_root: Path) -> Path:
        path = Path(out_root) / "truth" / "truth.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=1))
        return path

    @classmethod
    def load(cls, out_root: Path) -> StudyTruth:
        d = json.loads((Path(out_root) / "truth" / "truth.json").read_text())
        d["lesions"] = [LesionTruth(**{k: tuple(v) if isinstance(v, list) else v for k, v in les.items()})
                        for les in d["lesions"]]
        return cls(**d)

    def mr_point(self, lps_mm) -> np.ndarray:
        """A PET/CT-frame point expressed in the MR frame."""
        m = np.asarray(self.ct_to_mr)
        return m[:3, :3] @ np.asarray(lps_mm, float) + m[:3, 3]
