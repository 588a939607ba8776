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

# Noise-free SUVbw of each uptake class per tracer. DCFPyL organ values: Li et al. J Nucl Med 2017;58:942-6 (PMC5450367:
# liver 5.0, spleen 4.0, kidney ~20, parotid 9.0, submandibular 9.5). Excretion routes and the
# shifted biodistribution of PSMA-11, PSMA-1007 (hepatobiliary: high liver/spleen, little bladder) and
# fluciclovine (pancreas, liver, marrow, muscle; little early bladder) follow docs/suv.md#tracers and
# docs/detection.md (physiological uptake);
# the numbers for those three are the phantom's own plausible choices, not literature means.
_BASE = {"air": 0.0, "fat": 0.25, "muscle": 0.6, "lung": 0.35, "blood": 1.5, "liver": 5.0, "spleen": 4.0,
         "stomach": 1.5, "pancreas": 2.0, "kidney": 20.0, "small_bowel": 4.0, "colon": 1.5, "bladder": 40.0,
         "ureter": 15.0, "prostate": 2.5, "bone": 0.5, "marrow": 1.2, "parotid": 9.0, "submandibular": 9.5,
         "csf": 0.2,
         # classes of varied patients only; lacrimal 6.6 (Li et al. 2017), urine as in the bladder
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
# Spread between patients (coefficient of variation) of each uptake class. DCFPyL: liver 14 %, spleen 37 %,
# kidney 23 %, parotid 22 %, submandibular 24 % (Li et al. 2017, PMC5450367); the others [REC] (urine and bile
# depend on hydration, voiding and fasting and vary most).
UPTAKE_COV = {"air": 0.0, "fat": 0.2, "muscle": 0.15, "lung": 0.2, "blood": 0.15, "liver": 0.14, "spleen": 0.37,
              "stomach": 0.3, "pancreas": 0.25, "kidney": 0.23, "small_bowel": 0.35, "colon": 0.35, "bladder": 0.6,
              "ureter": 0.5, "prostate": 0.3, "bone": 0.2, "marrow": 0.2, "parotid": 0.22, "submandibular": 0.24,
              "csf": 0.2, "bowel_content": 0.5, "duodenum": 0.35, "bile": 0.5, "brain": 0.3, "lacrimal": 0.27,
              "urine": 0.6}
# Portal-venous contrast enhancement (HU added) per uptake class [R]; urine is not yet opacified at ~70 s.
ENHANCEMENT_HU = {"blood": (110, 170), "liver": (40, 70), "spleen": (55, 85), "kidney": (100, 160),
                  "pancreas": (45, 80), "small_bowel": (25, 55), "duodenum": (25, 55), "colon": (15, 40),
                  "stomach": (15, 40), "muscle": (5, 15), "prostate": (20, 40), "parotid": (20, 40),
                  "submandibular": (20, 40), "lacrimal": (10, 30)}
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


def hu_table() -> np.ndarray:
    """HU of each tissue id (the standard man's CT)."""
    return np.array([t.hu for t in an.TISSUES], np.float32)


def ct_hu(labels: np.ndarray, marrow: np.ndarray, lesion_ids: np.ndarray, lesions: list[LesionVoxels],
          rng: np.random.Generator, table: np.ndarray | None = None, marrow_hu: float = MARROW_HU,
          lesion_hu: dict[str, float] = LESION_HU, noise_hu: float = CT_NOISE_HU, grain_px: float = 0.0) -> np.ndarray:
    """CT in HU (float32): ``table`` per tissue id (default ``hu_table()``), noise of ``noise_hu`` SD, white or,
    with ``grain_px`` > 0, correlated in-plane over about that many pixels as filtered back-projection leaves it."""
    hu = (hu_table() if table is None else table)[labels]
    hu[marrow] = marrow_hu
    lesion_lut = np.array([0.0] + [lesion_hu.get(les.kind, lesion_hu.get("soft", 40.0)) for les in lesions], np.float32)
    in_lesion = lesion_ids > 0
    hu[in_lesion] = lesion_lut[lesion_ids[in_lesion]]
    noise = rng.standard_normal(hu.shape, dtype=np.float32)
    if grain_px > 0:
        noise = gaussian_filter(noise, (0, grain_px, grain_px))
        noise /= noise.std()
    hu += noise * noise_hu
    return hu


def metal_streaks(hu: np.ndarray, metal: np.ndarray, grid: Grid, rng: np.random.Generator, strength_hu: float) -> None:
    """Add streak artefacts around metal in place: in each axial slice bright and dark lines through the metal's
    centre, fading with distance from it (photon starvation and beam hardening)."""
    n = 10
    angles = rng.uniform(0, np.pi, n)
    amplitude = rng.choice([-1.0, 1.0], n) * rng.uniform(0.3, 1.0, n) * strength_hu
    width = rng.uniform(1.5, 4.0, n)
    x, y = grid.axis_mm(0)[None, :], grid.axis_mm(1)[:, None]
    for k in np.flatnonzero(metal.reshape(metal.shape[0], -1).any(axis=1)):
        rows, cols = np.nonzero(metal[k])
        cx, cy = x[0, cols].mean(), y[rows, 0].mean()
        dx, dy = x - cx, y - cy
        fade = 50.0 / np.maximum(np.hypot(dx, dy), 50.0)
        pattern = sum(a * np.exp(-((dx * np.sin(t) - dy * np.cos(t)) ** 2) / (2 * w**2))
                      for a, t, w in zip(amplitude, angles, width))
        hu[k] += (pattern * fade).astype(np.float32) * ~metal[k]


def blurred_sphere(r_mm: np.ndarray, radius_mm: float, sigma_mm: float) -> np.ndarray:
    """Uniform unit sphere convolved with an isotropic Gaussian, evaluated at distance r from its centre."""
    r = np.maximum(np.asarray(r_mm, float), 1e-3)
    s2 = np.sqrt(2.0) * sigma_mm
    g = sigma_mm / (r * np.sqrt(2 * np.pi))
    return 0.5 * (erf((radius_mm - r) / s2) + erf((radius_mm + r) / s2)) - g * (
        np.exp(-((radius_mm - r) ** 2) / (2 * sigma_mm**2)) - np.exp(-((radius_mm + r) ** 2) / (2 * sigma_mm**2)))


def suv_table(tracer: str) -> np.ndarray:
    """Noise-free SUV of each tissue id for the standard man (``UPTAKE``)."""
    uptake = UPTAKE[tracer]
    return np.array([uptake[t.uptake] for t in an.TISSUES], np.float32)


def drawn_uptake(tracer: str, rng: np.random.Generator) -> dict[str, float]:
    """One patient's SUV of each uptake class: the tracer's value times a log-normal factor of the class's spread."""
    out = {}
    for name, value in sorted(UPTAKE[tracer].items()):
        sigma = np.sqrt(np.log(1 + UPTAKE_COV[name] ** 2))
        out[name] = float(value * np.exp(np.clip(rng.normal(0, sigma), -2 * sigma, 2 * sigma)))
    return out


def drawn_hu(rng: np.random.Generator, contrast: bool, oral_contrast: bool, liver_fat: bool) -> np.ndarray:
    """One CT's HU of each tissue id: the standard HU shifted by a few HU per uptake class, portal-venous enhancement
    with ``contrast``, positive oral contrast in the bowel lumen, and a fatty liver (5-40 HU [R])."""
    classes = sorted({t.uptake for t in an.TISSUES})
    shift = {c: rng.normal(0, 4) for c in classes}
    enhance = {c: rng.uniform(*ENHANCEMENT_HU[c]) if contrast and c in ENHANCEMENT_HU else 0.0 for c in classes}
    liver = rng.uniform(5, 40) if liver_fat else None
    oral = rng.uniform(150, 350)
    table = []
    for t in an.TISSUES:
        hu = t.hu + shift[t.uptake] + enhance[t.uptake] if t.uptake != "air" else t.hu
        if t.uptake == "liver" and liver is not None:
            hu = liver + enhance["liver"]
        if oral_contrast and t.name in ("small_bowel_fluid", "small_bowel_contents", "colon_fluid"):
            hu = oral
        table.append(hu)
    return np.array(table, np.float32)


def background_suv(table: np.ndarray, marrow_suv: float, labels: np.ndarray, marrow: np.ndarray) -> np.ndarray:
    """Noise-free, unblurred SUV of the anatomy (float32 z, y, x): ``table`` per tissue id, ``marrow_suv`` in marrow."""
    suv = table[labels]
    suv[marrow] = marrow_suv
    return suv


def pet_suv(grid: Grid, fwhm_mm: float, lesions: list[tuple[tuple, float, float]], anatomy, table: np.ndarray,
            marrow_suv: float, refine: int = 2):
    """Noise-free PET SUV on ``grid`` and the rendered lesions.

    ``anatomy(grid) -> (labels, marrow)`` is rasterised on a ``refine`` times finer grid, blurred with
    the Gaussian PSF and averaged back to ``grid`` (partial volume); each lesion (centre mm, diameter mm,
    wanted SUVmax) adds the exact PSF-blurred uniform sphere whose increment makes the centre reach
    the wanted SUVmax. Returns (suv z, y, x float32, list of (centre, diameter, increment)).
    """
    fine = grid.refined(refine)
    labels, marrow = anatomy(fine)
    sigma_mm = fwhm_mm / (2 * np.sqrt(2 * np.log(2)))
    suv = gaussian_filter(background_suv(table, marrow_suv, labels, marrow),
                          [sigma_mm / s for s in fine.spacing_mm[::-1]])
    del labels, marrow
    nz, ny, nx = grid.shape_zyx
    suv = suv.reshape(nz, refine, ny, refine, nx, refine).mean(axis=(1, 3, 5))
    rendered = []
    for center, diameter, wanted in lesions:
        idx = grid.world_to_index(center)
        half = max(12, int(np.ceil((diameter / 2 + 4 * sigma_mm) / min(grid.spacing_mm))) + 1)
        sl = [slice(max(0, int(idx[a]) - half), int(idx[a]) + half + 1) for a in (2, 1, 0)]
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
