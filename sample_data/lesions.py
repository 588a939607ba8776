"""Where each lesion site sits in the phantom, and its PROMISE V2 labels (contract vocabulary).

Sites follow docs/classification.md#node-regions (node regions along the named vessels; common iliac between the
aortic and common-iliac bifurcations is distant, miM1a) and docs/classification.md#prostate-bed (prostate bed,
vesicourethral anastomosis). Positions are LPS mm in the PET/CT frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from localize.sample_data import anatomy as an
from localize.sample_data.geometry import Ellipsoid
from localize.sample_data.spec import LesionSpec

# site -> (region, contract site, mitnm)
LABELS = {"prostate_bed": ("local", "prostate_bed", "miTr"), "prostate_bed_bladder": ("local", "prostate_bed", "miTr"),
          "prostate": ("local", "prostate", "miT2"), "prostate_bladder": ("local", "prostate", "miT2"),
          "obturator": ("nodal", "obturator", "miN"),
          "external_iliac": ("nodal", "external_iliac", "miN"), "internal_iliac": ("nodal", "internal_iliac", "miN"),
          "presacral": ("nodal", "presacral", "miN"), "common_iliac": ("distant", "common_iliac", "miM1a"),
          "retroperitoneal": ("distant", "retroperitoneal", "miM1a"), "inguinal": ("distant", "inguinal", "miM1a"),
          "supradiaphragmatic": ("distant", "supradiaphragmatic", "miM1a"), "bone_pelvis": ("distant", "bone", "miM1b"),
          "bone_spine": ("distant", "bone", "miM1b"), "bone_rib": ("distant", "bone", "miM1b"),
          "bone_sacrum": ("distant", "bone", "miM1b"),
          "lung": ("distant", "lung", "miM1c"), "liver": ("distant", "liver", "miM1c")}

BLADDER = an.BLADDER


@dataclass(frozen=True)
class Placement:
    """A placed lesion: centre (LPS mm), laterality, bone name (bone lesions), touches_bladder."""

    center_mm: tuple[float, float, float]
    laterality: str
    bone: str | None
    touches_bladder: bool


@dataclass(frozen=True)
class Where:
    """The free choices of a site's place in the standard frame; the defaults give the demo study's places.

    ``fraction``: how far along the site's vessel; ``level_mm``: z of a presacral or obturator node;
    ``point``: the centre itself (organ and bone sites, drawn from the patient's own label map), not jittered;
    ``medial``: an internal-iliac node medial to the artery; ``bladder``: the bladder a bladder-wall lesion touches.
    """

    fraction: float | None = None
    level_mm: float | None = None
    point: tuple[float, float, float] | None = None
    bone: str | None = None
    medial: bool = False
    bladder: Ellipsoid = BLADDER


def _beside(path: np.ndarray, t: float, offset_mm) -> np.ndarray:
    """Point at fraction t along a vessel polyline, shifted by ``offset_mm``."""
    seg = np.cumsum(np.r_[0, np.linalg.norm(np.diff(path, axis=0), axis=1)])
    s = t * seg[-1]
    return np.array([np.interp(s, seg, path[:, k]) for k in range(3)]) + np.asarray(offset_mm, float)


def _or(value, default):
    return default if value is None else value


def place(spec: LesionSpec, rng: np.random.Generator, where: Where = Where()) -> Placement:
    """Centre of a lesion at its site; jittered by up to ~3 mm with ``rng``; radius keeps nodes off the vessel."""
    sign = {"left": 1, "right": -1, None: 1}[spec.side]
    side = "left" if sign > 0 else "right"
    r = spec.diameter_mm / 2
    v = an.vessel_paths()
    jitter = rng.uniform(-3, 3, 3)
    bone, touches = None, False
    site = spec.site
    base = where.bladder.center[2] - where.bladder.semi_mm[2]
    if where.point is not None:
        c, jitter, bone = np.asarray(where.point, float), 0 * jitter, where.bone
    elif site == "prostate_bed":
        # in the fossa beside the anastomosis, clear of a bladder-base lesion (two resolvable lesions)
        c = np.array(an.VUA) + (8, 6, -4)
    elif site == "prostate_bed_bladder":
        # on the bladder base: centre one radius below the lowest bladder point, touching its wall
        c, jitter, touches = (np.array([where.bladder.center[0], where.bladder.center[1], base - r + 0.5]),
                              0 * jitter, True)
    elif site == "prostate_bladder":
        # in the prostate base, touching the bladder neck above it
        c, jitter, touches = np.array([where.bladder.center[0] + sign * 4, -26.0, base - r + 0.5]), 0 * jitter, True
    elif site == "prostate":
        c = np.array(an.PROSTATE.center) + (sign * 8, 6, -3)
    elif site == "obturator":
        # in the fat of the obturator fossa, medial to obturator internus, clear of the acetabulum
        c = np.array([sign * (52.0 - r), 0.0, _or(where.level_mm, 32.0)])
    elif site == "external_iliac":
        # in front of the artery, in the fat away from the iliac bone behind and lateral to it
        c = _beside(v[f"external_iliac_artery_{side}"], _or(where.fraction, 0.18), (sign * 2, -(4.5 + r + 2), 0))
    elif site == "internal_iliac":
        # beside the artery where it runs down the side wall, below the iliac wing (or medial to it)
        across = -1 if where.medial else 1
        c = _beside(v[f"internal_iliac_artery_{side}"], _or(where.fraction, 0.8),
                    (across * sign * (3.5 + r + 2), 4 if not where.medial else -4, 0))
    elif site == "presacral":
        z = _or(where.level_mm, 105.0)
        c = np.array([0.0, an.sacrum_center_y(z) - 16 - r - 4, z])
    elif site == "common_iliac":
        c = _beside(v[f"common_iliac_artery_{side}"], _or(where.fraction, 0.5), (sign * (6 + r + 2), -4, 0))
    elif site == "retroperitoneal":
        c = _beside(v["aorta"], _or(where.fraction, 0.8), (sign * (11 + r + 3), 6, 0))
    elif site == "inguinal":
        c = np.array([sign * 80.0, -62.0, -35.0])
    elif site == "supradiaphragmatic":
        c = np.array([sign * 45.0, -5.0, 610.0])
    elif site == "bone_pelvis":
        c, bone = np.array([sign * 84.0, 22.0, 75.0]), f"hip_{side}"
    elif site == "bone_spine":
        c, bone, sign = np.array(an.vertebra_center("vertebrae_L5")), "vertebrae_L5", 0
        jitter = jitter * (1, 1, 0.3)
    elif site == "bone_rib":
        bone = f"rib_{side}_8"
        z = an.VERTEBRAE["vertebrae_T8"][0] - 12
        a = np.interp(z, an.BodyOutline._Z, an.BodyOutline._A) - 20.5
        c, jitter = (np.array([sign * a * 0.94, 0.34 * np.interp(z, an.BodyOutline._Z, an.BodyOutline._B), z]),
                     0 * jitter)
    elif site == "lung":
        c = np.array([sign * 85.0, 10.0, 500.0])
    elif site == "liver":
        c = np.array([-40.0, -15.0, 395.0])
    else:
        raise AssertionError(site)
    if where.point is not None:
        lat = "midline" if site.startswith("prostate") or abs(c[0]) < 10 else "left" if c[0] > 0 else "right"
    else:
        lat = "midline" if site in ("prostate_bed", "prostate_bed_bladder", "presacral", "bone_spine") else side
    if site == "liver" and where.point is None:
        lat = "right"
    return Placement(tuple(float(q) for q in c + jitter), lat, bone, touches)
