"""Varied patients and scans: ``varied_plan(VariedSpec)`` draws one man and his PET/CT from a seed.

What varies, and over which ranges, is set out in ``patient`` (body, organs, bowel, limbs),
``warp`` (height, vertebrae, frame, smooth random displacement), ``imaging`` (uptake and HU
per patient) and here (table, field of view, CT and PET settings, lesions, hard cases).
Each purpose draws from its own random stream, so overriding one choice of a ``VariedSpec``
(tracer, table, patient position, ...) leaves every other draw unchanged: the same seed moved
1 m on the table or written feet first is the same man with the same lesions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.ndimage import binary_erosion

from localize.sample_data import anatomy as an
from localize.sample_data.geometry import Grid, paint, tube
from localize.sample_data.imaging import (
    LesionVoxels,
    add_pet_noise,
    ct_hu,
    drawn_hu,
    drawn_uptake,
    metal_streaks,
    paint_lesions,
    pet_suv,
)
from localize.sample_data.lesions import Placement, Where, place
from localize.sample_data.patient import Patient, draw_patient, ureter_path
from localize.sample_data.spec import HARD_CASES, TRACERS, VENDORS, LesionSpec, VariedSpec
from localize.sample_data.study import LANDMARKS, Plan
from localize.sample_data.warp import Warp

_STREAMS = {"patient": 1, "warp": 2, "scan": 3, "lesions": 4, "uptake": 5, "noise": 6, "writer": 7, "ureters": 8}

# z range of each field of view in the standard frame (mm): bottom and top, each drawn from its interval [REC]
# (pelvis: below the ischia to the iliac crests; abdomen-pelvis: to above the liver dome; whole body: mid-thigh
# to the skull base or the vertex, as PSMA PET is read [R]; vertex to toes: the whole man).
FIELDS = {"pelvis": ((-130, -95), (185, 230)), "abdomen_pelvis": ((-130, -95), (440, 490)),
          "whole_body": ((-310, -220), (725, 900)), "vertex_to_toes": ((-905, -895), (895, 905))}
EXTENT_WEIGHTS = {"pelvis": 0.2, "abdomen_pelvis": 0.2, "whole_body": 0.45, "vertex_to_toes": 0.15}  # [REC]
CT_SLICES_MM = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 3.75, 4.0, 5.0)
CT_VOXEL_BUDGET = 100e6  # a 512 x 512 CT of at most ~380 slices; thinner slices go to shorter fields
PET_VOXELS_MM = (2.0, 2.04, 2.73, 3.0, 3.27, 3.65, 4.0, 4.07, 5.0, 5.47)  # vendors' usual reconstructions [R]
PET_VOXEL_BUDGET = 30e6
FINE_PET_BUDGET = 60e6  # voxels of the finer grid the PET anatomy is rasterised on (partial volume)

# Where recurrences are found on PSMA PET after each treatment, roughly (local, pelvic nodes, extrapelvic
# nodes, bone, viscera) [R, rounded] -> the weights sites are drawn with [REC].
_SITE_WEIGHTS = {"prostate_bed": 0.18, "obturator": 0.10, "external_iliac": 0.12, "internal_iliac": 0.10,
                 "presacral": 0.05, "common_iliac": 0.08, "retroperitoneal": 0.10, "inguinal": 0.03,
                 "supradiaphragmatic": 0.04, "bone_pelvis": 0.07, "bone_spine": 0.06, "bone_rib": 0.03,
                 "bone_sacrum": 0.02, "lung": 0.01, "liver": 0.01}
NODES = {"obturator", "external_iliac", "internal_iliac", "presacral", "common_iliac", "retroperitoneal", "inguinal",
         "supradiaphragmatic"}
_SUPRADIAPHRAGMATIC = ((45.0, -5.0, 610.0), (-22.0, 8.0, 565.0), (0.0, 12.0, 525.0), (60.0, 20.0, 600.0))
MAP_MM = 3.0  # the standard-frame label map lesions are placed on


def stream(seed: int, purpose: str) -> np.random.Generator:
    """The seed's own random stream for one purpose (``patient``, ``scan``, ``lesions``, ...)."""
    return np.random.default_rng([seed, _STREAMS[purpose]])


@dataclass(frozen=True)
class Scan:
    """The drawn scan: tracer, situation, field of view (standard z), table, CT and PET settings."""

    tracer: str
    status: str
    extent: str
    z_std: tuple[float, float]
    patient_position: str
    vendor: str
    table_mm: tuple[float, float, float]
    ct_fov_mm: float
    ct_matrix: int
    ct_slice_mm: float
    contrast: bool
    oral_contrast: bool
    low_dose: bool
    ct_noise_hu: float
    ct_grain_px: float
    pet_fov_mm: float
    pet_voxel_mm: float
    pet_fwhm_mm: float
    pet_noise: float


def draw_scan(spec: VariedSpec, patient: Patient, rng: np.random.Generator) -> Scan:
    """Every scan choice is drawn (in a fixed order) and then overridden by what ``spec`` sets."""
    tracer = str(rng.choice(TRACERS))
    status = str(rng.choice(("post_prostatectomy", "post_radiotherapy")))
    extent = str(rng.choice(list(EXTENT_WEIGHTS), p=list(EXTENT_WEIGHTS.values())))
    position = "FFS" if rng.random() < 0.25 else "HFS"  # feet first in a minority of PET/CT [REC]
    vendor = str(rng.choice(VENDORS))
    table = np.array([rng.uniform(-40, 40), rng.uniform(-60, 60), rng.uniform(-2000, 2000)])  # [brief]
    fov_draw, slice_draw = rng.random(), rng.random()
    contrast = bool(rng.random() < 0.35)  # diagnostic contrast CT with the PET [REC]
    oral = bool(rng.random() < 0.5) and contrast
    low_dose = not contrast and bool(rng.random() < 0.85)
    noise_draw, grain = rng.random(), float(rng.uniform(0.5, 1.1))
    pet_fov, pet_voxel_draw = float(rng.uniform(576, 700)), rng.random()
    fwhm_draw, pet_noise = rng.random(), float(rng.uniform(0.6, 2.0))
    z_std = {e: (rng.uniform(*bottom), rng.uniform(*top)) for e, (bottom, top) in FIELDS.items()}

    tracer, status, extent = spec.tracer or tracer, spec.status or status, spec.extent or extent
    position, vendor = spec.patient_position or position, spec.vendor or vendor
    pet_noise = pet_noise if spec.pet_noise is None else spec.pet_noise
    table = table + np.asarray(spec.table_shift_mm, float)
    z0, z1 = z_std[extent]
    length = float(patient.stretch.to_patient(z1) - patient.stretch.to_patient(z0))
    # CT field of view: the body (and arms beside it) off-centre by the table offset, 5 % tight to 20 % loose,
    # 512 matrix -> 0.68-1.5 mm pixels [brief]
    half = (182 + max(patient.habitus.lateral_mm, 0) + (0 if patient.arms_up else 95)) * patient.scale_xy[0]
    fov = float(np.clip(2 * (half + abs(table[0])) * (0.95 + 0.25 * fov_draw), 350, 768))
    slices = [s for s in CT_SLICES_MM if 512**2 * length / s <= CT_VOXEL_BUDGET]
    ct_slice = slices[int(slice_draw * len(slices))]
    matrix = min(512, spec.ct_matrix_cap or 512)
    # diagnostic CT ~8-15 HU, low-dose attenuation CT ~15-45 HU in the abdomen [R]; larger men are noisier
    noise = (15 + 30 * noise_draw if low_dose else 8 + 7 * noise_draw) * (patient.bmi / 26) ** 0.5
    voxels = [v for v in PET_VOXELS_MM if (pet_fov / v) ** 2 * length / v <= PET_VOXEL_BUDGET]
    pet_voxel = voxels[int(pet_voxel_draw * len(voxels))]
    if spec.pet_matrix_cap:
        pet_voxel = max(pet_voxel, pet_fov / spec.pet_matrix_cap)
    fwhm = float(max(4.0, 1.2 * pet_voxel) + fwhm_draw * (8.5 - max(4.0, 1.2 * pet_voxel)))  # PSF 4-8.5 mm [R]
    return Scan(tracer, status, extent, (float(z0), float(z1)), position, vendor, tuple(float(v) for v in table),
                fov, matrix, ct_slice, contrast, oral, low_dose, float(noise), grain, pet_fov, float(pet_voxel), fwhm,
                pet_noise * float(np.sqrt(patient.weight_kg / 82.0)))


def _grids(scan: Scan, patient: Patient) -> tuple[Grid, Grid]:
    """CT and PET grids in the patient frame: centred on the scanner axis (so the patient sits off-centre by the
    table's x and y), spanning the field's z range."""
    z0, z1 = (float(v) for v in patient.stretch.to_patient(np.array(scan.z_std)))
    cx, cy = -scan.table_mm[0], -scan.table_mm[1]
    px = scan.ct_fov_mm / scan.ct_matrix
    nz = int(round((z1 - z0) / scan.ct_slice_mm)) + 1
    ct = Grid((cx - scan.ct_fov_mm / 2 + px / 2, cy - scan.ct_fov_mm / 2 + px / 2, z0), (px, px, scan.ct_slice_mm),
              (scan.ct_matrix, scan.ct_matrix, nz))
    n = int(round(scan.pet_fov_mm / scan.pet_voxel_mm))
    pp = scan.pet_fov_mm / n
    nzp = int(np.ceil((z1 - z0) / scan.pet_voxel_mm))
    pet = Grid((cx - scan.pet_fov_mm / 2 + pp / 2, cy - scan.pet_fov_mm / 2 + pp / 2, z0 + scan.pet_voxel_mm / 2),
               (pp, pp, scan.pet_voxel_mm), (n, n, nzp))
    return ct, pet


class _StandardMap:
    """The patient's label map in the standard frame on a coarse grid, for placing lesions in his own anatomy."""

    def __init__(self, patient: Patient, status: str, z_std: tuple[float, float]):
        lo = np.array([-300.0, -240.0, z_std[0] - 30])
        size = tuple(int(v) for v in np.ceil((np.array([300.0, 200.0, z_std[1] + 30]) - lo) / MAP_MM) + 1)
        self.grid = Grid(tuple(lo), (MAP_MM,) * 3, size)
        body = an.Body(patient.habitus, tuple(patient.viscera), tuple(patient.parts))
        self.labels, self.marrow = an.label_map(self.grid, status, body)

    def ids_near(self, centre, radius_mm: float) -> np.ndarray:
        """Tissue ids of the map voxels within ``radius_mm`` of ``centre``."""
        idx = self.grid.world_to_index(centre)
        k = int(np.ceil(radius_mm / MAP_MM)) + 1
        sl = tuple(slice(max(0, int(round(idx[a])) - k), int(round(idx[a])) + k + 1) for a in (2, 1, 0))
        z, y, x = (self.grid.axis_mm(a)[s] for a, s in zip((2, 1, 0), sl))
        d2 = ((z[:, None, None] - centre[2]) ** 2 + (y[None, :, None] - centre[1]) ** 2
              + (x[None, None, :] - centre[0]) ** 2)
        return self.labels[sl][d2 <= radius_mm**2]

    def random_point(self, rng, names: tuple[str, ...], inset_mm: float, marrow: bool,
                     within=None) -> np.ndarray | None:
        """A voxel centre inside the named tissues, at least ``inset_mm`` from their edge (None if there is none)."""
        mask = np.isin(self.labels, [an.LABEL[n] for n in names])
        if marrow:
            mask &= self.marrow
        steps = int(inset_mm // MAP_MM)
        if steps:
            mask = binary_erosion(mask, iterations=steps)
        if within is not None:
            mask &= within(self.grid)
        found = np.argwhere(mask)
        if not len(found):
            return None
        k, j, i = found[int(rng.integers(len(found)))]
        return np.array([self.grid.axis_mm(0)[i], self.grid.axis_mm(1)[j], self.grid.axis_mm(2)[k]])


_SOFT = frozenset(an.LABEL[n] for n in ("fat", "muscle"))


def _node_fits(std_map: _StandardMap, centre, r: float) -> bool:
    """A node lies in fat: nothing but fat and muscle within 1 mm of it, mostly fat."""
    ids = std_map.ids_near(centre, r + 1.0)
    return len(ids) > 0 and bool(np.isin(ids, list(_SOFT)).all()) and (ids == an.LABEL["fat"]).mean() >= 0.7


def _where(site: str, side: str, r: float, rng, std_map: _StandardMap, patient: Patient, status: str) -> Where | None:
    """Free choices of a lesion's place in this patient (None when his anatomy has no room for it)."""
    sign = 1 if side == "left" else -1
    if site in ("external_iliac", "internal_iliac", "common_iliac", "retroperitoneal"):
        # >= 10 mm from the bifurcations (docs/classification.md#boundary-margin)
        ranges = {"external_iliac": (0.04, 0.28), "internal_iliac": (0.45, 0.95), "common_iliac": (0.25, 0.75),
                  "retroperitoneal": (0.70, 0.93)}
        return Where(fraction=float(rng.uniform(*ranges[site])), bladder=patient.bladder)
    if site == "presacral":
        return Where(level_mm=float(rng.uniform(70, 125)), bladder=patient.bladder)
    if site == "obturator":
        return Where(level_mm=float(rng.uniform(15, 45)), bladder=patient.bladder)
    if site in ("inguinal", "supradiaphragmatic"):
        base = (np.array([sign * 80.0, -62.0, -35.0]) if site == "inguinal"
                else np.array(_SUPRADIAPHRAGMATIC[int(rng.integers(len(_SUPRADIAPHRAGMATIC)))]))
        return Where(point=tuple(base + rng.uniform(-8, 8, 3)), bladder=patient.bladder)
    spine = tuple(f"vertebrae_T{k}" for k in range(6, 13)) + tuple(f"vertebrae_L{k}" for k in range(1, 6))
    organs = {"lung": ((f"lung_{side}",), r + 4, False), "liver": (("liver",), r + 4, False),
              "bone_pelvis": ((f"hip_{side}",), 0, True), "bone_sacrum": (("sacrum",), 0, True),
              "bone_rib": (tuple(f"rib_{side}_{k}" for k in range(3, 11)), 0, False), "bone_spine": (spine, 0, True)}
    if site in organs:
        names, inset, marrow = organs[site]
        point = std_map.random_point(rng, names, inset, marrow)
        if point is None:
            return None
        ids = std_map.labels[tuple(int(round(v)) for v in std_map.grid.world_to_index(point)[::-1])]
        bone = an.TISSUES[int(ids)].name if site.startswith("bone") else None
        return Where(point=tuple(float(v) for v in point), bone=bone, bladder=patient.bladder)
    return Where(bladder=patient.bladder)  # local sites: the demo's places, around this man's bladder


@dataclass
class _Lesion:
    name: str
    site: str
    spec: LesionSpec
    where: Where
    placement: Placement


def _suv_max(rng, tracer: str) -> float:
    """Lesion SUVmax: PSMA median ~8, 3-40; fluciclovine median ~4.5, 2.5-12 [R, rounded]."""
    if tracer == "fluciclovine":
        return float(np.clip(4.5 * np.exp(rng.normal(0, 0.4)), 2.5, 12))
    return float(np.clip(8.0 * np.exp(rng.normal(0, 0.65)), 3, 40))


def _draw_lesions(spec: VariedSpec, scan: Scan, patient: Patient, std_map: _StandardMap, rng, keep_out: list):
    """Drawn lesions and the hard cases, placed in this man's standard-frame anatomy inside the field of view.

    Returns the lesions, the ureter waypoints hard cases ask for (side, point) and extra bowel loops.
    ``keep_out`` collects (point, radius) that later lesions must not touch.
    """
    z0, z1 = scan.z_std
    lesions: list[_Lesion] = []
    waypoints, loops = [], []

    def room(c, r, margin=8.0):
        return (z0 + 2 * r <= c[2] <= z1 - 2 * r and all(
            np.linalg.norm(np.subtract(c, les.placement.center_mm)) >= r + les.spec.diameter_mm / 2 + margin
            for les in lesions) and all(np.linalg.norm(np.subtract(c, p)) >= r + rk + 2 for p, rk in keep_out))

    def add(site, side, diameter, suv, where, check_node=True) -> _Lesion | None:
        les_spec = LesionSpec(site, float(diameter), float(suv), side)
        p = place(les_spec, rng, where)
        r = diameter / 2
        if not room(p.center_mm, r):
            return None
        if site in NODES and check_node and not _node_fits(std_map, p.center_mm, r):
            return None
        if site.startswith("bone") and p.bone is None:
            return None
        les = _Lesion(f"L{len(lesions) + 1:02d}_{site}", site, les_spec, where, p)
        lesions.append(les)
        return les

    local_wall = "prostate_bed_bladder" if scan.status == "post_prostatectomy" else "prostate_bladder"
    for case in HARD_CASES:
        if case not in spec.hard_cases:
            continue
        for _ in range(40):
            side = ("left", "right")[int(rng.integers(2))]
            if case == "node_beside_ureter":  # the ureter will run in front of this node, 2.5 mm off it
                d = rng.uniform(8, 14)
                where = Where(fraction=float(rng.uniform(0.45, 0.85)), medial=True, bladder=patient.bladder)
                les = add("internal_iliac", side, d, _suv_max(rng, scan.tracer), where)
                if les is None:
                    continue
                beside = np.add(les.placement.center_mm, (0.0, -(d / 2 + 3.5 + 2.5), 0.0))
                if np.isin(std_map.ids_near(beside, 3.5), list(_SOFT)).all():
                    waypoints.append((side, beside, True))
                    break
                lesions.pop()
            elif case == "bladder_wall":
                d = rng.uniform(14, 20) if local_wall == "prostate_bladder" else rng.uniform(8, 14)
                if add(local_wall, side, d, _suv_max(rng, scan.tracer), Where(bladder=patient.bladder)):
                    break
            elif case == "sacral_bone_by_bowel":
                d = rng.uniform(10, 18)
                point = std_map.random_point(rng, ("sacrum",), 0, True, lambda g: _anterior_sacrum(g, 100, 125))
                if point is None:
                    break
                les = add("bone_sacrum", side, d, _suv_max(rng, scan.tracer), Where(point=tuple(point), bone="sacrum",
                                                                                   bladder=patient.bladder))
                if les is not None:
                    z = les.placement.center_mm[2]
                    radius = 11.0
                    y = an.sacrum_center_y(z) - 16 - radius - 1.5
                    path = np.array([(-28.0, y + 4, z + 10), (0.0, y, z), (28.0, y + 4, z - 8)])
                    loops.append((path, radius))
                    keep_out.extend((tuple(q), radius) for q in path)
                    break
            elif case == "ureter_mimic":
                waypoints.append((side, None, False))
                break
    counts = {"post_prostatectomy": _SITE_WEIGHTS,
              "post_radiotherapy": {("prostate" if k == "prostate_bed" else k): v for k, v in _SITE_WEIGHTS.items()}}
    weights = counts[scan.status]
    wanted = 1 + min(int(rng.poisson(1.5)), 5)
    for _ in range(60):
        if len(lesions) >= wanted + len(spec.hard_cases):
            break
        site = str(rng.choice(list(weights), p=np.array(list(weights.values())) / sum(weights.values())))
        side = ("left", "right")[int(rng.integers(2))]
        diameter = float(np.exp(rng.uniform(np.log(5), np.log(25))))  # 5-25 mm [brief]
        if site in ("retroperitoneal",):
            side = "left"  # para-aortic, where most retroperitoneal recurrences sit [R]
        where = _where(site, side, diameter / 2, rng, std_map, patient, scan.status)
        if where is not None:
            add(site, side, diameter, _suv_max(rng, scan.tracer), where)
    return lesions, waypoints, loops


def _anterior_sacrum(grid: Grid, z_lo: float, z_hi: float) -> np.ndarray:
    """Mask of the front half of the sacrum between two levels (standard frame)."""
    z = grid.axis_mm(2)[:, None, None]
    y = grid.axis_mm(1)[None, :, None]
    front = y < np.vectorize(an.sacrum_center_y)(z) - 3
    return np.broadcast_to(front & (z >= z_lo) & (z <= z_hi), grid.shape_zyx)


def _ureters(patient: Patient, scan: Scan, lesions: list[_Lesion], waypoints, uptake: dict, rng):
    """Both ureters with their hot boluses (peristalsis leaves urine in short segments), routed clear of the
    lesions and past any node a hard case puts beside them. Returns (parts, non-lesions in the standard frame,
    label factors)."""
    parts, non_lesions, factors = [], [], {}
    for side in ("left", "right"):
        path = ureter_path(patient, side, rng)
        radius = float(rng.uniform(2.5, 3.5))
        beside = [w for s, w, node in waypoints if s == side and node]
        for w in beside:  # route the ureter past the node: its nearest point moves there, its neighbours follow
            k = int(np.argmin(np.linalg.norm(path - w, axis=1)))
            taper = np.clip(1 - np.abs(np.arange(len(path)) - k) / 7, 0, 1)
            path += (w - path[k]) * taper[:, None]
        for les in lesions:
            c, keep = np.asarray(les.placement.center_mm), les.spec.diameter_mm / 2 + radius + 2.0
            for k, q in enumerate(path):
                d = q - c
                d[2] = 0
                if np.linalg.norm(q - c) < keep and np.linalg.norm(d) > 1e-6:
                    path[k] = c + d / np.linalg.norm(d) * keep + (0, 0, q[2] - c[2])
        inside = [patient.bladder.inside(*q) for q in path]
        end = next((k for k, v in enumerate(inside) if v), len(path) - 1)
        path = path[: end + 1]
        parts += [(f"ureter_urine_{side}", seg, None) for seg in tube(path, radius)]
        arc = np.r_[0, np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))]
        boluses = []
        for w in beside:
            boluses.append((float(arc[int(np.argmin(np.linalg.norm(path - w, axis=1)))]), rng.uniform(20, 30),
                            rng.uniform(3.5, 4.5), "beside_node"))
        if any(s == side and w is None for s, w, _ in waypoints):
            pelvic = np.flatnonzero((path[:, 2] > 60) & (path[:, 2] < 130))
            far = [k for k in pelvic if all(np.linalg.norm(path[k] - les.placement.center_mm) > 30 for les in lesions)]
            if far:
                boluses.append((float(arc[far[int(rng.integers(len(far)))]]), rng.uniform(8, 12), rng.uniform(4.5, 5.5),
                                "node_like"))
        for _ in range(int(rng.poisson(1.5))):
            boluses.append((float(rng.uniform(0, arc[-1])), rng.uniform(10, 60), rng.uniform(3.5, 5.0), "bolus"))
        factors[f"ureter_bolus_{side}"] = float(rng.uniform(0.3, 1.0))
        for centre_s, length, r, kind in boluses:
            s0, s1 = max(0.0, centre_s - length / 2), min(arc[-1], centre_s + length / 2)
            pts = np.array([[np.interp(s, arc, path[:, a]) for a in range(3)] for s in np.linspace(s0, s1, 6)])
            parts += [(f"ureter_bolus_{side}", seg, None) for seg in tube(pts, r)]
            non_lesions.append({"kind": "ureter_bolus", "node_like": kind == "node_like",
                                "beside_node": kind == "beside_node",
                                "side": side, "center_std": pts[len(pts) // 2], "length_mm": round(float(s1 - s0), 1),
                                "diameter_mm": round(2 * float(r), 1),
                                "suv": round(uptake["urine"] * factors[f"ureter_bolus_{side}"], 2)})
    return parts, non_lesions, factors


def _pack(labels: np.ndarray, marrow: np.ndarray) -> np.ndarray:
    return labels.astype(np.uint16) | (marrow.astype(np.uint16) << 8)


def varied_plan(spec: VariedSpec) -> Plan:
    """Draw the man and his scan, place his lesions, render CT and PET in his frame."""
    patient = draw_patient(stream(spec.seed, "patient"))
    scan = draw_scan(spec, patient, stream(spec.seed, "scan"))
    warp_rng = stream(spec.seed, "warp")
    warp = Warp(patient.stretch, patient.scale_xy, float(warp_rng.uniform(3, 7)), 45.0, warp_rng)
    uptake_rng = stream(spec.seed, "uptake")
    uptake = drawn_uptake(scan.tracer, uptake_rng)
    uptake["ureter"] = uptake["urine"] * float(uptake_rng.uniform(0.03, 0.1))  # between boluses

    std_map = _StandardMap(patient, scan.status, scan.z_std)
    keep_out: list = []
    lesion_rng = stream(spec.seed, "lesions")
    lesions, waypoints, loops = _draw_lesions(spec, scan, patient, std_map, lesion_rng, keep_out)
    ureter_parts, bolus_items, factors = _ureters(patient, scan, lesions, waypoints, uptake,
                                                  stream(spec.seed, "ureters"))
    viscera = list(patient.viscera)
    factors = {**patient.factors, **factors}
    for k, (path, radius) in enumerate(loops):
        label = f"small_bowel_loop_{an.N_LOOPS - k}"
        viscera += ([(label, s) for s in tube(path, radius)]
                    + [("small_bowel_fluid", s) for s in tube(path, radius - 2.5)])
        factors[label] = 2.0  # a hot loop in front of the sacrum
    body = an.Body(patient.habitus, tuple(viscera), tuple(patient.parts + ureter_parts))
    ct_grid, pet_grid = _grids(scan, patient)

    def labels_on(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
        packed = warp.resample(lambda g: _pack(*an.label_map(g, scan.status, body)), grid)
        return (packed & 0xFF).astype(np.uint8), (packed >> 8).astype(bool)

    # lesions into the patient's frame; those the warp moved out of the field are left out
    z_lo, z_hi = ct_grid.origin_mm[2], ct_grid.axis_mm(2)[-1]
    placed = []
    for les in lesions:
        centre = warp.to_patient(les.placement.center_mm)
        if z_lo + les.spec.diameter_mm <= centre[2] <= z_hi - les.spec.diameter_mm:
            placed.append((les, Placement(tuple(float(v) for v in centre), les.placement.laterality, les.placement.bone,
                                          les.placement.touches_bladder)))
    suv_of = np.array([uptake[t.uptake] * factors.get(t.name, 1.0) for t in an.TISSUES], np.float32)
    labels, marrow = labels_on(ct_grid)
    wanted = []
    for les, _p in placed:
        bg = float(suv_of[std_map.labels[tuple(int(round(v)) for v in std_map.grid.world_to_index(
            les.placement.center_mm)[::-1])]]) if not les.site.startswith("bone") else uptake["marrow"]
        wanted.append(max(les.spec.suv_max, 1.6 * bg))  # a lesion is at least 1.6x its organ's uptake [REC]
    refine = 2 if scan.pet_voxel_mm >= 3.0 and np.prod(pet_grid.size_xyz) * 8 <= FINE_PET_BUDGET else 1
    suv_nf, rendered = pet_suv(pet_grid, scan.pet_fwhm_mm, [(p.center_mm, les.spec.diameter_mm, w)
                                                             for (les, p), w in zip(placed, wanted)],
                               labels_on, suv_of, uptake["marrow"], refine)
    noise_rng = stream(spec.seed, "noise")
    kinds = [("bone" if les.site.startswith("bone") else les.site if les.site in ("lung", "liver") else "soft")
             for les, _ in placed]
    lesion_vox = [LesionVoxels(c, d, inc, k) for (c, d, inc), k in zip(rendered, kinds)]
    lesion_ids = paint_lesions(ct_grid, lesion_vox)
    liver_fat = noise_rng.random() < float(np.clip(0.1 + 0.025 * (patient.bmi - 25), 0.05, 0.45))  # steatosis [R]
    table = drawn_hu(noise_rng, scan.contrast, scan.oral_contrast, liver_fat)
    lesion_hu = {"bone": float(noise_rng.choice([noise_rng.uniform(350, 900), noise_rng.uniform(150, 300)],
                                                p=[0.7, 0.3])),
                 "lung": 30.0, "liver": 30.0 + (50 if scan.contrast else 0),
                 "soft": 38.0 + (40 if scan.contrast else 0)}
    marrow_hu = float(noise_rng.uniform(120, 280))  # lower with age and osteopenia [R]
    hu = ct_hu(labels, marrow, lesion_ids, lesion_vox, noise_rng, table, marrow_hu, lesion_hu, scan.ct_noise_hu,
               scan.ct_grain_px)
    if patient.implant_side:
        metal_streaks(hu, labels == an.LABEL["hip_implant"], ct_grid, noise_rng, float(noise_rng.uniform(300, 800)))
    suv = add_pet_noise(suv_nf, scan.pet_noise, noise_rng)

    def target(grid: Grid) -> np.ndarray:
        mask = np.zeros(grid.shape_zyx, np.uint8)
        paint(mask, an.PROSTATE_BED if scan.status == "post_prostatectomy" else an.PROSTATE, grid, 1)
        return mask

    to_patient = warp.to_patient
    landmarks = {name: to_patient(p) for name, p in LANDMARKS.items()}
    b = patient.bladder
    landmarks["bladder_center"] = to_patient(b.center)
    landmarks["bladder_base"] = to_patient((b.center[0], b.center[1], b.center[2] - b.semi_mm[2]))
    refs = {"liver": (patient.liver_point, uptake["liver"]), "aortic_blood_pool": ((28, 34, 430), uptake["blood"]),
            "parotid": ((50, 20, 695), uptake["parotid"]), "spleen": (patient.spleen_point, uptake["spleen"]),
            "l3_marrow": (an.vertebra_center("vertebrae_L3"), uptake["marrow"])}
    levels = {"aortic_bifurcation": (8, 8, an.Z_AORTIC_BIFURCATION),
              "ci_bifurcation_left": (40, 15, an.Z_CI_BIFURCATION),
              "ci_bifurcation_right": (-40, 15, an.Z_CI_BIFURCATION), "pelvic_inlet": (0, 40, an.Z_PELVIC_INLET),
              "symphysis_top": (0, -60, 0), "diaphragm": (-60, 20, an.Z_DIAPHRAGM)}
    non_lesions = [{**{k: v for k, v in item.items() if k != "center_std"},
                    "center_lps_mm": [float(v) for v in to_patient(item["center_std"])]} for item in bolus_items]
    non_lesions = [n for n in non_lesions if z_lo <= n["center_lps_mm"][2] <= z_hi]
    variation = {"seed": spec.seed, "validation": spec.validation, "patient": patient.summary,
                 "scan": {k: v for k, v in asdict(scan).items()}, "hard_cases": list(spec.hard_cases),
                 "uptake_suv": {k: round(v, 3) for k, v in uptake.items()}, "liver_fat": bool(liver_fat),
                 "organs": _organ_summary(labels, ct_grid, warp, patient),
                 "lesion_sites_drawn": [les.site for les in lesions]}
    desc = {"pelvis": "Pelvis", "abdomen_pelvis": "Abd-Pelvis", "whole_body": "WB", "vertex_to_toes": "WB Vertex-Toes"}
    return Plan(key=spec.key(), seed=spec.seed, tracer=scan.tracer, vendor=scan.vendor, status=scan.status,
                extent=scan.extent, patient_position=scan.patient_position, weight_kg=round(patient.weight_kg, 1),
                height_m=round(patient.height_m, 2), ct_grid=ct_grid, pet_grid=pet_grid, labels=labels, marrow=marrow,
                lesion_ids=lesion_ids, hu=hu, suv_nf=suv_nf, suv=suv,
                lesions=[(les.name, les.site, p, vox) for (les, p), vox in zip(placed, lesion_vox)],
                landmarks=landmarks, reference_regions={n: (to_patient(p), v) for n, (p, v) in refs.items()},
                levels_z_mm={n: float(to_patient(p)[2]) for n, p in levels.items()},
                target_mask=warp.resample(target, ct_grid).astype(bool),
                femoral_head_z_mm=float(to_patient((90, 0, -24))[2]), rng=stream(spec.seed, "writer"),
                offset_mm=np.array(scan.table_mm), organ_classes=an.organ_classes(varied=True),
                ct_description=f"CT {desc[scan.extent]} {scan.ct_slice_mm:g} "
                               + ("C+" if scan.contrast else "low dose AC" if scan.low_dose else "non-contrast"),
                with_mr=spec.with_mr, layout=spec.layout, non_lesions=non_lesions, variation=variation)


def _organ_summary(labels: np.ndarray, grid: Grid, warp: Warp, patient: Patient) -> dict:
    """Volumes (ml) of organs the CT holds whole, and kidney centres (patient frame, mm)."""
    voxel_ml = float(np.prod(grid.spacing_mm)) / 1000
    out = {}
    for organ in ("liver", "spleen", "kidney_left", "kidney_right", "urinary_bladder", "stomach"):
        ids = [i for i, t in enumerate(an.TISSUES) if t.totalseg == organ]
        mask = np.isin(labels, ids)
        if mask.any() and not (mask[0].any() or mask[-1].any()):
            out[f"{organ}_ml"] = round(float(mask.sum()) * voxel_ml, 1)
    for side, kidney in patient.kidneys.items():
        out[f"kidney_{side}_center_patient_mm"] = [round(float(v), 1) for v in warp.to_patient(kidney.center)]
    return out
