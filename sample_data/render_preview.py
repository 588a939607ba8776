"""Render a phantom study to PNG for a visual check: coronal PET MIP, axial CT and MR through the pelvis, sagittal CT.

Usage: python -m localize.sample_data.render_preview STUDY_ROOT OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402

from localize.sample_data.truth import StudyTruth  # noqa: E402


def _read(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return sitk.DICOMOrient(reader.Execute(), "LPS")


def _axial(img: sitk.Image, z_mm: float) -> np.ndarray:
    k = img.TransformPhysicalPointToIndex((img.GetOrigin()[0], img.GetOrigin()[1], z_mm))[2]
    return sitk.GetArrayViewFromImage(img)[k]


def render(study_root: Path, out_dir: Path) -> list[Path]:
    """Write preview PNGs of the study under ``out_dir``; return their paths."""
    truth = StudyTruth.load(study_root)
    out_dir.mkdir(parents=True, exist_ok=True)
    ct = _read(study_root / truth.series_dirs["CT"])
    arr = sitk.GetArrayViewFromImage(ct)
    sx, sy, sz = ct.GetSpacing()
    paths = []

    def save(name, fig):
        p = out_dir / name
        fig.savefig(p, dpi=90, bbox_inches="tight")
        plt.close(fig)
        paths.append(p)

    fig, axes = plt.subplots(1, 3, figsize=(15, 5))
    for ax, z in zip(axes, (truth.landmarks["femoral_head_center_left"]["lps_mm"][2], 60.0, 250.0)):
        ax.imshow(_axial(ct, z), cmap="gray", vmin=-160, vmax=240)
        ax.set_title(f"CT axial z={z:.0f} mm")
    save("ct_axial.png", fig)
    fig, axes = plt.subplots(1, 2, figsize=(12, 8))
    axes[0].imshow(arr[::-1, :, arr.shape[2] // 2], cmap="gray", vmin=-160, vmax=240, aspect=sz / sy)
    axes[0].set_title("CT sagittal midline")
    axes[1].imshow(arr[::-1, arr.shape[1] // 2 + 10, :], cmap="gray", vmin=-160, vmax=240, aspect=sz / sx)
    axes[1].set_title("CT coronal")
    save("ct_sagittal_coronal.png", fig)
    if "PT" in truth.series_dirs:
        pet = sitk.GetArrayFromImage(_read(study_root / truth.series_dirs["PT"]))
        fig = plt.figure(figsize=(6, 10))
        plt.imshow(pet.max(axis=1)[::-1], cmap="gray_r", vmax=np.percentile(pet, 99.95) * 0.5, aspect="equal")
        plt.title("PET coronal MIP")
        save("pet_mip.png", fig)
    if truth.series_dirs.get("MR"):
        mr = sitk.GetArrayFromImage(_read(study_root / truth.series_dirs["MR"]))
        fig, axes = plt.subplots(1, 2, figsize=(12, 6))
        for ax, k in zip(axes, (mr.shape[0] // 2, mr.shape[0] // 3)):
            ax.imshow(mr[k], cmap="gray")
            ax.set_title(f"MR axial slice {k}")
        save("mr_axial.png", fig)
    return paths


if __name__ == "__main__":
    for path in render(Path(sys.argv[1]), Path(sys.argv[2])):
        print(path)
