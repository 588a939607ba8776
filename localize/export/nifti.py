"""NIfTI in and out: the one place where RAS (NIfTI, nibabel) meets LPS (DICOM, SimpleITK).

NIfTI world coordinates are RAS+ and DICOM/ITK are LPS: x_ras = -x_lps,
y_ras = -y_lps, z_ras = z_lps (docs/coordinates.md#dicom-patient-coordinates). The nibabel data array is indexed
i, j, k (= x, y, z of the SimpleITK index); SimpleITK's numpy view is z, y, x.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from nibabel.spatialimages import SpatialImage

from localize.atomic import atomic_write
from localize.errors import LocalizeError

_LPS_RAS = np.diag([-1.0, -1.0, 1.0])


def lps_to_ras(points: np.ndarray) -> np.ndarray:
    """LPS mm points (..., 3) -> RAS mm points (x and y negated)."""
    return np.asarray(points, dtype=np.float64) @ _LPS_RAS


def ras_to_lps(points: np.ndarray) -> np.ndarray:
    """RAS mm points (..., 3) -> LPS mm points (x and y negated)."""
    return lps_to_ras(points)


def affine_ras(image: sitk.Image) -> np.ndarray:
    """4x4 affine taking a voxel index (i, j, k) of ``image`` to RAS mm."""
    if image.GetDimension() != 3:
        raise LocalizeError(f"NIfTI export needs a 3D image, got {image.GetDimension()}D")
    direction = np.array(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = _LPS_RAS @ direction @ np.diag(image.GetSpacing())
    affine[:3, 3] = _LPS_RAS @ np.array(image.GetOrigin(), dtype=np.float64)
    return affine


def write_nifti(image: sitk.Image, path: str | Path, sidecar: dict | None = None) -> Path:
    """Write ``image`` (LPS) as .nii.gz with its RAS affine in qform and sform (code 1).

    Keeps the pixel type (float32 stays float32, integer labels stay integer).
    Written to a temporary name and renamed; ``sidecar`` goes to a .json beside it.
    Returns the path written.
    """
    path = Path(path)
    if not path.name.endswith((".nii.gz", ".nii")):
        path = path.with_name(path.name + ".nii.gz")
    affine = affine_ras(image)
    data = sitk.GetArrayViewFromImage(image).transpose(2, 1, 0)  # z,y,x -> i,j,k
    nii = nib.Nifti1Image(data, affine, dtype=data.dtype)
    nii.set_qform(affine, code=1)
    nii.set_sform(affine, code=1)
    nii.header.set_xyzt_units(xyz="mm")
    with atomic_write(path) as tmp:
        # compression level 1, nibabel's own default for .gz: fast, near the best ratio on images
        with (gzip.open(tmp, "wb", compresslevel=1) if path.suffix == ".gz" else open(tmp, "wb")) as stream:
            nii.to_stream(stream)
    if sidecar is not None:
        json_path = path.with_name(path.name.removesuffix(".gz").removesuffix(".nii") + ".json")
        with atomic_write(json_path) as tmp:
            tmp.write_text(json.dumps(sidecar, indent=2, default=str) + "\n")
    return path


def read_nifti(path: str | Path) -> sitk.Image:
    """Read a 3D NIfTI into a SimpleITK image in LPS, trusting its affine (sform, else qform)."""
    try:
        nii = nib.load(str(path))
        if not isinstance(nii, SpatialImage):  # e.g. a GIFTI surface: no voxel grid
            raise TypeError(f"{type(nii).__name__} is not a voxel image")
        data = np.asanyarray(nii.dataobj)
    except Exception as exc:  # nibabel raises many kinds on damaged files
        raise LocalizeError(f"not readable as NIfTI ({type(exc).__name__}: {exc})", path) from exc
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise LocalizeError(f"expected a 3D NIfTI image, got shape {data.shape}", path)
    linear = _LPS_RAS @ nii.affine[:3, :3]
    spacing = np.linalg.norm(linear, axis=0)
    if (spacing <= 0).any():
        raise LocalizeError("NIfTI affine has a zero-length axis", path)
    direction = linear / spacing
    if np.abs(direction.T @ direction - np.eye(3)).max() > 1e-4:
        raise LocalizeError("NIfTI affine is sheared; not representable as an image grid", path)
    image = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(2, 1, 0)))
    image.SetSpacing(tuple(float(v) for v in spacing))
    image.SetDirection(tuple(float(v) for v in direction.ravel()))
    image.SetOrigin(tuple(float(v) for v in _LPS_RAS @ nii.affine[:3, 3]))
    return image
