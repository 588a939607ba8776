"""Voxel values of the phantom: CT (HU), PET (SUV, noise-free and noisy), T2-like MR.

Arrays are z, y, x on the grid they are built on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy.ndimage import gaussian_filter
from scipy.special import erf

from localize.sample_data import anatomy as an
from localize.sample_data.geometry import Ellipsoid, Grid, paint

# Noise-free SUVbw of each uptake class per tracer. DCFPyL organ values: DOMAIN.md §3.6 (PMC5450367:
# liver 5.0, spleen 4.0, kidney ~20, parotid 9.0, submandibular 9.5). Excretion routes and the
# shifted biodistribution of PSMA-11, PSMA-1007 (hepatobiliary: high liver/spleen, little bladder) and
# fluciclovine (pancreas, liver, marrow, muscle; little early bladder) follow DOMAIN.md §1.9, §3.6, §3.7;
# the numbers for those three are the phantom's own plausible choices, not literature means.
_BASE = {"air": 0.0, "fat": 0.25, "muscle": 0.6, "lung": 0.35, "blood": 1.5, "liver": 5.0, "spleen": 4.0,
         "stomach": 1.5, "pancreas": 2.0, "kidney": 20.0, "small_bowel": 4.0, "colon": 1.5, "bladder": 40.0,
         "ureter": 15.0, "prostate": 2.5, "bone": 0.5, "marrow": 1.2, "parotid": 9.0, "submandibular": 9.5,
         "csf": 0.2,
         # classes of varied patients only; lacrimal 6.6 (DOMAIN.md §3.6), urine as in the bladder
         "bowel_content": 0.5, "duodenum": 6.0, "bile": 1.0, "brain": 0.1, "lacrimal": 6.5, "urine": 40.0}
UPTAKE: dict[str, dict[str, float]] = {
    "dcfpyl": _BASE,
    "psma11": {**_BASE, "liver": 5.5, "spleen": 6.0, "kidney": 28.0, "parotid": 12.0, "submandibular": 11.0,
               "bladder": 45.0, "small_bowel": 6.0, "blood": 1.8, "duodenum": 7.0, "lacrimal": 7.0, "urine": 45.0},
    "psma1007": {**_BASE, "liver": 11.0, "spleen": 9.0, "kidney": 18.0, "parotid": 13.0, "submandibular": 12.0,
                 "bladder": 5.0, "ureter": 3.0, "small_bowel": 5.0, "marrow": 1.8, "blood": 1.6,
                 "bile": 15.0, "bowel_content": 2.0, "duodenum": 7.0, "lacrimal": 8.0, "urine": 5.0},
    "fluciclovine": {**_BASE, "liver": 6.5, "spleen": 3.0, "pancreas": 9.0, "kidney": 3.5, "parotid": 1.5,
                     "submandibular": 1.5, "bladder": 1.0, "ureter": 1.0, "small_bowel": 1.5, "marrow": 3.0,
                     "muscle": 1.6, "blood": 2.0, "prostate": 2.0, "duodenum": 2.0, "brain": 0.3, "lacrimal": 1.0,
                     "urine": 1.0},
}
LESION_HU = {"bone": 650.0, "lung": 30.0, "liver": 30.0}  # sclerotic bone metastasis; soft tissue otherwise
LESION_T2 = 0.4
CT_NOISE_HU = 12.0
MARROW_HU = 220.0


@dataclass(frozen=True)
class LesionVoxels:
    """A lesion as rendered: centre (LPS mm), diameter, uptake increment over background (SUV), CT kind."""

    center_mm: tuple[float, float, float]
    diameter_mm: float
    increment_suv: float
    kind: str


def paint_lesions(grid: Grid, lesions: list[LesionVoxels]) -> np.ndarray:
    """uint8 z, y, x map: 1 + lesion index inside each lesion sphere, 0 elsewhere."""
    ids = np.zeros(grid.shape_zyx, np.uint8)
    for i, les in enumerate(lesions):
        paint(ids, Ellipsoid(les.center_mm, (les.diameter_mm / 2,) * 3), grid, i + 1)
    return ids


def ct_hu(labels: np.ndarray, marrow: np.ndarray, lesion_ids: np.ndarray, lesions: list[LesionVoxels],
          rng: np.random.Generator) -> np.ndarray:
    """CT in HU (float32) with white noise of ``CT_NOISE_HU`` SD."""
    table = np.array([t.hu for t in an.TISSUES], np.float32)
    hu = table[labels]
    hu[marrow] = MARROW_HU
    lesion_lut = np.array([0.0] + [LESION_HU.get(les.kind, 40.0) for les in lesions], np.float32)
    in_lesion = lesion_ids > 0
    hu[in_lesion] = lesion_lut[lesion_ids[in_lesion]]
    hu += rng.standard_normal(hu.shape, dtype=np.float32) * CT_NOISE_HU
    return hu


def blurred_sphere(r_mm: np.ndarray, radius_mm: float, sigma_mm: float) -> np.ndarray:
    """Uniform unit sphere convolved with an isotropic Gaussian, evaluated at distance r from its centre."""
    r = np.maximum(np.asarray(r_mm, float), 1e-3)
    s2 = np.sqrt(2.0) * sigma_mm
    g = sigma_mm / (r * np.sqrt(2 * np.pi))
    return 0.5 * (erf((radius_mm - r) / s2) + erf((radius_mm + r) / s2)) - g * (
        np.exp(-((radius_mm - r) ** 2) / (2 * sigma_mm**2)) - np.exp(-((radius_mm + r) ** 2) / (2 * sigma_mm**2)))


def background_suv(tracer: str, labels: np.ndarray, marrow: np.ndarray) -> np.ndarray:
    """Noise-free, unblurred SUV of the anatomy (float32 z, y, x)."""
    uptake = UPTAKE[tracer]
    table = np.array([uptake[t.uptake] for t in an.TISSUES], np.float32)
    suv = table[labels]
    suv[marrow] = uptake["marrow"]
    return suv


def pet_suv(tracer: str, status: str, grid: Grid, fwhm_mm: float, lesions: list[tuple[tuple, float, float]]):
    """Noise-free PET SUV on ``grid`` and the rendered lesions.

    The anatomy is rasterised on a 2x finer grid, blurred with the Gaussian PSF and averaged
    back to ``grid`` (partial volume); each lesion (centre mm, diameter mm, wanted SUVmax) adds
    the exact PSF-blurred uniform sphere whose increment makes the centre reach the wanted SUVmax.
    Returns (suv z, y, x float32, list of (centre, diameter, increment)).
    """
    fine = grid.refined(2)
    labels, marrow = an.label_map(fine, status)
    sigma_mm = fwhm_mm / (2 * np.sqrt(2 * np.log(2)))
    suv = gaussian_filter(background_suv(tracer, labels, marrow), [sigma_mm / s for s in fine.spacing_mm[::-1]])
    nz, ny, nx = grid.shape_zyx
    suv = suv.reshape(nz, 2, ny, 2, nx, 2).mean(axis=(1, 3, 5))
    rendered = []
    for center, diameter, wanted in lesions:
        idx = grid.world_to_index(center)
        sl = [slice(max(0, int(idx[a]) - 12), int(idx[a]) + 13) for a in (2, 1, 0)]
        zz, yy, xx = (grid.axis_mm(a)[s] for a, s in zip((2, 1, 0), sl))
        r = np.sqrt((zz[:, None, None] - center[2]) ** 2 + (yy[None, :, None] - center[1]) ** 2
                    + (xx[None, None, :] - center[0]) ** 2)
        bg_center = _trilinear(suv, idx)
        increment = max(wanted - bg_center, 0.5) / float(blurred_sphere(0.0, diameter / 2, sigma_mm))
        suv[tuple(sl)] += (increment * blurred_sphere(r, diameter / 2, sigma_mm)).astype(np.float32)
        rendered.append((center, diameter, increment))
    return suv, rendered


def _trilinear(vol: np.ndarray, idx_xyz) -> float:
    from scipy.ndimage import map_coordinates

    return float(map_coordinates(vol, [[idx_xyz[2]], [idx_xyz[1]], [idx_xyz[0]]], order=1)[0])


def add_pet_noise(suv: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """Poisson-like noise: variance proportional to the value (liver CoV ~10 % at level 1), short-range correlated."""
    if level <= 0:
        return suv.copy()
    white = rng.standard_normal(suv.shape, dtype=np.float32)
    corr = gaussian_filter(white, 0.6)
    corr /= corr.std()
    return np.maximum(suv + level * np.sqrt(0.05 * np.maximum(suv, 0)) * corr, 0).astype(np.float32)


def mr_t2(ct_labels: sitk.Image, ct_marrow: sitk.Image, ct_lesions: sitk.Image, mr_to_ct: sitk.Transform,
          mr_ref: sitk.Image, rng: np.random.Generator) -> np.ndarray:
    """T2-weighted-looking MR (uint16 z, y, x on ``mr_ref``): tissue signal, blur, bias field, Rician noise."""
    def resample(img):
        return sitk.GetArrayFromImage(sitk.Resample(img, mr_ref, mr_to_ct, sitk.sitkNearestNeighbor, 0))

    labels, marrow, lesion = resample(ct_labels), resample(ct_marrow).astype(bool), resample(ct_lesions)
    sig = np.array([t.t2 for t in an.TISSUES], np.float32)[labels]
    sig[marrow] = 0.6
    sig[lesion > 0] = LESION_T2
    sig = gaussian_filter(sig, (0.3, 0.8, 0.8))
    nz, ny, nx = sig.shape
    z, y, x = np.meshgrid(np.linspace(-1, 1, nz), np.linspace(-1, 1, ny), np.linspace(-1, 1, nx), indexing="ij")
    c = rng.uniform(-0.25, 0.25, 5)
    bias = np.exp(c[0] * x + c[1] * y + c[2] * z + c[3] * x * y + c[4] * (x**2 + y**2 - 0.6))
    sig = sig * bias.astype(np.float32)
    n1, n2 = (rng.standard_normal(sig.shape, dtype=np.float32) * 0.02 for _ in range(2))
    return np.clip(np.sqrt((sig + n1) ** 2 + n2**2) * 2000, 0, 65535).astype(np.uint16)
