"""Each built-in structure checks itself before it is used; a structure that fails is dropped.

A check reads the structure's own size and shape and its place among its neighbours,
never a table position: lungs are a left/right pair at the top of the trunk, above the
liver and kidneys and far above the hip bones; vertebrae are of vertebral height and
evenly spaced in order up the spine; the hips are a mirror pair; the pubic symphysis
lies in front of the sacrum, below the pelvic inlet; the bladder lies below the inlet
between the hips; kidneys lie on their own side at similar levels, liver right and
spleen left. Each check returns the reason it fails (None when it passes).
``check_anatomy`` drops every failing structure built from the CT, with the levels and
the structures built from it, and names each one and why in ``Anatomy.dropped`` and the
warnings. Imported structures are trusted: they are never dropped, but serve as
neighbours.

Masks are bool numpy ``z, y, x`` arrays on the PET grid; points and levels LPS mm.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from localize.anatomy.grids import mean_index
from localize.anatomy.model import Anatomy
from localize.anatomy.names import NAMED_BONES
from localize.detection.metrics import spacing_zyx_mm, voxel_volume_ml, zyx_to_lps

# Lungs [REC: standard adult anatomy]: the right lung holds ~55 % of the volume, so the smaller side of a
# pair holds well over LUNG_PAIR_MIN_SHARE of the larger unless the field's edge cuts through the bases
# (the right dome lies higher than the left: one side may lie wholly outside it); each lung's
# centre lies lateral to the mediastinum. Above the apices the trunk narrows to the neck: the body
# within TRUNK_HALF_WIDTH_MM of the midline has under NECK_AREA_RATIO of its area at the lungs.
LUNG_PAIR_MIN_SHARE = 0.2
LUNG_CENTRE_LATERAL_MM = 30.0
TRUNK_HALF_WIDTH_MM = 100.0
NECK_AREA_RATIO = 0.8
ABOVE_APEX_MM = (40.0, 80.0)
# The lung bases reach down to about L1, the iliac crests up to L4: three vertebrae apart [REC].
LUNG_ABOVE_HIPS_MM = 40.0
# Vertebrae [REC: adult body heights ~15 mm (upper thoracic) to ~30 mm (lumbar), discs 4-12 mm, so centres
# at most ~42 mm apart]: a segment taller than VERTEBRA_HEIGHT_MM[1] is two bodies whose disc was missed, a
# shorter one than VERTEBRA_HEIGHT_MM[0] part of one; neighbouring heights and centre-to-centre steps differ
# by under PITCH_RATIO (they change gradually along the spine; a 4 mm grid alone moves a ratio by up to
# ~1.35). The pitch's upper bound was 50 mm until a real CT (tests/data/totalsegmentator-abdomen) showed a
# 48 mm step across an oblique lumbosacral disc.
VERTEBRA_HEIGHT_MM = (10.0, 45.0)
VERTEBRA_PITCH_MM = (15.0, 45.0)
PITCH_RATIO = 1.6
# Pelvis [REC: standard adult anatomy]: the hip bones mirror each other about the midline; the pubic
# symphysis is ~4-5 cm tall, ~10 cm below the sacral promontory and far in front of the sacrum. The sacrum
# found can be just the S1 body at the promontory (the sacrum curves back out of the spine's strip below it),
# which on a real osteoporotic pelvis (tests/data/totalsegmentator-abdomen) lies 50-54 mm behind the
# symphysis: the bound was 50 mm until low-dose noise there dropped the symphysis and the bladder with it.
HIP_VOLUME_RATIO = 2.0
HIP_MIRROR_MM = 30.0
SYMPHYSIS_HEIGHT_MM = (20.0, 100.0)
SYMPHYSIS_BELOW_INLET_MM = 30.0
SYMPHYSIS_BEFORE_SACRUM_MM = 30.0
# Urinary bladder [REC]: from a few ml after voiding to ~1.5 l overdistended; a midline organ.
BLADDER_ML = (5.0, 1500.0)
BLADDER_OFF_MIDLINE_MM = 40.0
# An intact adult prostate: 8-120 ml (enlarged glands included; a small gland of 12 ml shrinks to ~9 ml
# after radiotherapy, its diameters to ~0.9 x within a year: Tanaka et al., Rep Pract Oncol Radiother
# 2017;22:477), roughly round (its longest axis at most 2.5 x its shortest), its top at the bladder base
# (within 15 mm of the bladder's lowest slice) [REC: standard anatomy]. After prostatectomy the bladder
# neck sits on the pelvic floor and the soft tissue behind the symphysis (levator, rectal wall) is flat or
# long, or lies away from the bladder.
# Soft tissue under GLAND_EVIDENCE_ML there is evidence neither way (an atrophic gland after radiotherapy
# can be small) [REC].
GLAND_ML = (8.0, 120.0)
GLAND_ELONGATION = 2.5
GLAND_BELOW_BLADDER_MM = 15.0
GLAND_EVIDENCE_ML = 5.0
# The gland's centre lies 1-3 cm behind the back of the pubis, itself ~1 cm behind the symphysis' centre;
# the levator and the retropubic veins lie closer, the rectum (centre 5-7 cm behind) farther [REC].
GLAND_BEHIND_PUBIS_MM = (15.0, 50.0)
# Kidneys [REC: the right kidney usually lies 1-2 cm lower than the left]: a pair within
# KIDNEY_LEVEL_MM of each other, each centred on its own side. A kidney is soft tissue beside the bones:
# a "kidney" lying over KIDNEY_MAX_IN_BONE in the named bones of the skeleton (``NAMED_BONES``, the CT's
# spine and pubic symphysis) is uptake of the bone (a lesion of the iliac wing at the top of a pelvis field)
# [REC]. Not the CT's raw bone mask (HU over 150): on contrast CT the renal cortex enhances to 150-250 HU and
# fills it.
KIDNEY_LEVEL_MM = 80.0
KIDNEY_MAX_IN_BONE = 0.25
OWN_SIDE_MM = 20.0

# structure -> the levels (``Anatomy.levels_z_mm``) and structures that were built from it; a vertebra's
# own level (its name) goes with it too
_DEPENDENTS = {
    "lung_left": (("diaphragm", "diaphragm_right"), ("heart",)),
    "lung_right": (("diaphragm", "diaphragm_right"), ("heart",)),
    "vertebrae_L5": (("common_iliac_bifurcation",), ()),
    "vertebrae_L4": (("aortic_bifurcation",), ()),
    "pubic_symphysis": (("symphysis_top", "symphysis_bottom"), ("urinary_bladder", "prostate", "seminal_vesicles")),
}


def lung_problem(lung_left: np.ndarray, lung_right: np.ndarray, body: np.ndarray, z_mm: np.ndarray,
                 x_mm: np.ndarray, midline_x: float) -> str | None:
    """Why the lungs (left and right masks) are not lungs, or None: a pair, lateral, at the top of the trunk."""
    lungs = lung_left | lung_right
    in_lungs = lungs.any((1, 2))
    sizes = np.array([lung_left.sum(), lung_right.sum()], float)
    cut = bool(in_lungs[0] or in_lungs[-1])  # the field's edge cuts them: the domes' heights can differ
    if not cut and sizes.min() < LUNG_PAIR_MIN_SHARE * sizes.max():
        return (f"not a left/right pair (the smaller side holds {sizes.min() / max(sizes.max(), 1):.0%} of the "
                f"larger's volume)")
    for side, mask in (("left", lung_left), ("right", lung_right)):
        if not mask.any():
            continue
        offset = abs(float(x_mm[np.argwhere(mask)[:, 2]].mean()) - midline_x)
        if offset < LUNG_CENTRE_LATERAL_MM:
            return f"the {side} part is centred {offset:.0f} mm from the midline, where the mediastinum lies"
    central = (np.abs(x_mm - midline_x) <= TRUNK_HALF_WIDTH_MM)[None, None, :]
    area = (body & central).sum((1, 2)).astype(float)
    apex = float(z_mm[in_lungs].max())
    above = (z_mm >= apex + ABOVE_APEX_MM[0]) & (z_mm <= apex + ABOVE_APEX_MM[1])
    if above.any():
        ratio = float(np.median(area[above]) / max(np.median(area[in_lungs]), 1.0))
        if ratio > NECK_AREA_RATIO:
            return (f"the trunk does not narrow above them (body {ratio:.0%} as wide {ABOVE_APEX_MM[0]:.0f}-"
                    f"{ABOVE_APEX_MM[1]:.0f} mm above their top): not at the top of the trunk")
    return None


def gland_problem(gland: np.ndarray, spacing: np.ndarray, voxel_ml: float, z_mm: np.ndarray,
                  bladder: np.ndarray | None, behind_pubis_mm: float) -> str | None:
    """Why a soft-tissue component (``spacing`` z, y, x mm) is not an intact prostate, or None.

    ``behind_pubis_mm``: how far its centre lies behind the pubic symphysis' centre (LPS y difference)."""
    ml = gland.sum() * voxel_ml
    if not GLAND_ML[0] <= ml <= GLAND_ML[1]:
        return f"{ml:.0f} ml is outside {GLAND_ML[0]:.0f}-{GLAND_ML[1]:.0f} ml"
    if not GLAND_BEHIND_PUBIS_MM[0] <= behind_pubis_mm <= GLAND_BEHIND_PUBIS_MM[1]:
        return (f"{ml:.0f} ml but centred {behind_pubis_mm:.0f} mm behind the pubis, outside "
                f"{GLAND_BEHIND_PUBIS_MM[0]:.0f}-{GLAND_BEHIND_PUBIS_MM[1]:.0f} mm")
    sd = np.sqrt(np.maximum(np.linalg.eigvalsh(np.cov((np.argwhere(gland) * spacing).T)), 1e-6))
    if sd[-1] > GLAND_ELONGATION * sd[0]:
        return f"{ml:.0f} ml but flat or long (axes {sd[-1] / sd[0]:.1f} : 1), not round"
    if bladder is None or not bladder.any():
        return None
    gap = float(z_mm[np.flatnonzero(bladder.any((1, 2)))].min() - z_mm[np.flatnonzero(gland.any((1, 2)))].max())
    if gap > GLAND_BELOW_BLADDER_MM:
        return f"{ml:.0f} ml but its top lies {gap:.0f} mm below the bladder, not at the bladder base"
    return None


def rejection(names: list[str], why: str) -> tuple[str, dict[str, str]]:
    """(one warning for them all, name -> why) saying that the structures ``names`` were left out, and why."""
    return f"{' and '.join(names)} dropped: {why}", {name: why for name in names}


def check_anatomy(anatomy: Anatomy) -> None:
    """Drop each CT-built structure of ``anatomy`` that fails its check, with what was built from it (in place)."""
    marks = _Geometry(anatomy)
    for name, problem in (("lungs", _lungs_vs_organs), ("vertebrae", _vertebrae), ("hips", _hips),
                          ("pubic_symphysis", _symphysis), ("urinary_bladder", _bladder), ("kidneys", _kidneys),
                          ("liver", _own_side), ("spleen", _own_side)):
        for structure, why in problem(marks, name):
            _drop(anatomy, structure, why)


def _drop(anatomy: Anatomy, name: str, why: str) -> None:
    if name not in anatomy.masks:
        return
    del anatomy.masks[name]
    anatomy.sources.pop(name, None)
    warning, dropped = rejection([name], why)
    anatomy.warnings.append(warning)
    anatomy.dropped.update(dropped)
    levels, structures = _DEPENDENTS.get(name, ((), ()))
    if name.startswith("vertebrae_"):
        levels = (*levels, name.removeprefix("vertebrae_"))
    for level in levels:
        anatomy.levels_z_mm.pop(level, None)
    for structure in structures:
        if anatomy.sources.get(structure) == "ct":
            _drop(anatomy, structure, f"built from the dropped {name}")


class _Geometry:
    """Centres, extents and volumes of the masks of one anatomy (LPS mm, ml)."""

    def __init__(self, anatomy: Anatomy):
        self.anatomy = anatomy
        self.voxel_ml = voxel_volume_ml(anatomy.grid)
        self.spacing = spacing_zyx_mm(anatomy.grid)
        self.midline = anatomy.midline_x_mm if anatomy.midline_x_mm is not None else 0.0

    def ct(self, name: str) -> bool:
        return self.anatomy.sources.get(name) == "ct" and self.present(name)

    def present(self, name: str) -> bool:
        mask = self.anatomy.masks.get(name)
        return mask is not None and bool(mask.any())

    def centre(self, name: str) -> np.ndarray:
        return zyx_to_lps(self.anatomy.grid, mean_index(self.anatomy.masks[name]))

    def z_range(self, name: str) -> tuple[float, float]:
        slices = np.flatnonzero(self.anatomy.masks[name].any((1, 2))).astype(float)
        z = zyx_to_lps(self.anatomy.grid, np.column_stack([slices, np.zeros((len(slices), 2))]))[:, 2]
        half = float(self.spacing[0]) / 2  # a voxel's extent, not its centre
        return float(z.min()) - half, float(z.max()) + half

    def ml(self, name: str) -> float:
        return float(self.anatomy.masks[name].sum()) * self.voxel_ml


def _lungs_vs_organs(g: _Geometry, _name: str):
    """The lungs lie above the liver and kidneys and well above the hip bones (any source)."""
    lungs = [n for n in ("lung_left", "lung_right") if g.ct(n)]
    if not lungs:
        return
    lung_z = float(np.mean([g.centre(n)[2] for n in lungs]))
    why = next((f"the lungs' centre lies no higher than the {organ}'s"
                for organ in ("liver", "kidney_left", "kidney_right")
                if g.present(organ) and g.centre(organ)[2] >= lung_z), None)
    hips = [g.z_range(n)[1] for n in ("hip_left", "hip_right") if g.present(n)]
    if why is None and hips:
        gap = min(g.z_range(n)[0] for n in lungs) - max(hips)
        if gap < LUNG_ABOVE_HIPS_MM:
            why = f"their lowest point lies {gap:.0f} mm above the iliac crests (lung bases lie far above the pelvis)"
    if why:
        for n in lungs:
            yield n, why


def _vertebrae(g: _Geometry, _name: str):
    """Vertebrae of vertebral height, evenly spaced in order; from the first that fails upwards, none is kept, nor
    the lowest when the second fails against it alone."""
    from localize.anatomy.ct_heuristics import VERTEBRA_NAMES  # bottom up

    named = [(n, g.z_range(f"vertebrae_{n}")) for n in VERTEBRA_NAMES if g.ct(f"vertebrae_{n}")]
    for k, (name, (z0, z1)) in enumerate(named):
        why = _vertebra_problem([(b - a, (a + b) / 2) for _, (a, b) in named[max(k - 2, 0):k + 1]])
        if why:
            if k == 1 and VERTEBRA_HEIGHT_MM[0] <= z1 - z0 <= VERTEBRA_HEIGHT_MM[1]:
                # measured against the lowest vertebra alone, which has none below to vouch for it: which of
                # the two is wrong cannot be told (an oblique lumbosacral disc blurs both on axial slices)
                yield f"vertebrae_{named[0][0]}", f"not told apart from the implausible {name} above it"
            yield f"vertebrae_{name}", why
            for above, _ in named[k + 1:]:
                yield f"vertebrae_{above}", f"named by counting past the implausible {name}"
            return


def plausible_vertebrae(bodies: Sequence[tuple[float, float] | None]) -> int:
    """How many of ``bodies`` ((z bottom, z top) mm, bottom up; None: not seen, below the rest) pass the vertebra
    checks from the lowest seen up (as ``_vertebrae``: none when the second fails against the lowest alone)."""
    seen = [body for body in bodies if body is not None]
    for k in range(len(seen)):
        if _vertebra_problem([(b - a, (a + b) / 2) for a, b in seen[max(k - 2, 0):k + 1]]):
            return 0 if k == 1 else k
    return len(seen)


def _vertebra_problem(spine: list[tuple[float, float]]) -> str | None:
    """Why the last of up to three consecutive vertebrae (height mm, centre z mm; bottom up) is implausible."""
    height, centre = spine[-1]
    lo, hi = VERTEBRA_HEIGHT_MM
    if not lo <= height <= hi:
        return f"{height:.0f} mm tall, outside a vertebral body's {lo:.0f}-{hi:.0f} mm"
    if len(spine) < 2:
        return None
    below_height, below_centre = spine[-2]
    pitch = centre - below_centre
    if not VERTEBRA_PITCH_MM[0] <= pitch <= VERTEBRA_PITCH_MM[1]:
        return (f"{pitch:.0f} mm above the vertebra below it (expected {VERTEBRA_PITCH_MM[0]:.0f}-"
                f"{VERTEBRA_PITCH_MM[1]:.0f} mm, in order)")
    if max(height / below_height, below_height / height) > PITCH_RATIO:
        return f"{height:.0f} mm tall where the vertebra below it is {below_height:.0f} mm"
    if len(spine) == 3:
        step_below = below_centre - spine[0][1]
        if max(pitch / step_below, step_below / pitch) > PITCH_RATIO:
            return f"spaced {pitch:.0f} mm from the one below where the step below was {step_below:.0f} mm"
    return None


def _hips(g: _Geometry, _name: str):
    """The hip bones: a pair mirroring each other about the midline."""
    if not (g.ct("hip_left") or g.ct("hip_right")):
        return
    why = None
    if not (g.present("hip_left") and g.present("hip_right")):
        why = "only one side found"
    else:
        left, right = g.centre("hip_left"), g.centre("hip_right")
        ratio = max(g.ml("hip_left"), g.ml("hip_right")) / max(min(g.ml("hip_left"), g.ml("hip_right")), 1e-6)
        mirror = np.array([left[0] - g.midline + (right[0] - g.midline), *(left[1:] - right[1:])])
        if ratio > HIP_VOLUME_RATIO:
            why = f"one side {ratio:.1f} x the other's volume"
        elif np.abs(mirror).max() > HIP_MIRROR_MM:
            why = f"the two sides do not mirror each other about the midline (off by {np.abs(mirror).max():.0f} mm)"
    if why:
        for side in ("hip_left", "hip_right"):
            if g.ct(side):
                yield side, f"not a pair of hip bones: {why}"


def _symphysis(g: _Geometry, name: str):
    """Pubic symphysis: of its height, below the pelvic inlet, far in front of the sacrum."""
    if not g.ct(name):
        return
    z0, z1 = g.z_range(name)
    inlet = g.anatomy.levels_z_mm.get("pelvic_inlet")
    if not SYMPHYSIS_HEIGHT_MM[0] <= z1 - z0 <= SYMPHYSIS_HEIGHT_MM[1]:
        yield name, f"{z1 - z0:.0f} mm tall, outside {SYMPHYSIS_HEIGHT_MM[0]:.0f}-{SYMPHYSIS_HEIGHT_MM[1]:.0f} mm"
    elif inlet is not None and z1 > inlet - SYMPHYSIS_BELOW_INLET_MM:
        yield name, f"its top is not {SYMPHYSIS_BELOW_INLET_MM:.0f} mm below the pelvic inlet"
    elif g.present("sacrum") and g.centre("sacrum")[1] - g.centre(name)[1] < SYMPHYSIS_BEFORE_SACRUM_MM:
        yield name, f"not {SYMPHYSIS_BEFORE_SACRUM_MM:.0f} mm in front of the sacrum"


def _bladder(g: _Geometry, name: str):
    """Urinary bladder: of bladder volume, below the pelvic inlet, on the midline between the hips."""
    if not g.ct(name):
        return
    ml, centre = g.ml(name), g.centre(name)
    inlet = g.anatomy.levels_z_mm.get("pelvic_inlet")
    if not BLADDER_ML[0] <= ml <= BLADDER_ML[1]:
        yield name, f"{ml:.0f} ml, outside {BLADDER_ML[0]:.0f}-{BLADDER_ML[1]:.0f} ml"
    elif inlet is not None and centre[2] > inlet:
        yield name, "its centre lies above the pelvic inlet"
    elif abs(centre[0] - g.midline) > BLADDER_OFF_MIDLINE_MM:
        yield name, f"centred {abs(centre[0] - g.midline):.0f} mm off the midline"
    elif g.present("hip_left") and g.present("hip_right") and not (
            g.centre("hip_right")[0] < centre[0] < g.centre("hip_left")[0]):
        yield name, "not between the hip bones"


def _kidneys(g: _Geometry, _name: str):
    """Kidneys: soft tissue, each centred on its own side; a pair at similar levels."""
    built = [s for s in ("left", "right") if g.ct(f"kidney_{s}")]
    bones = [mask for name, mask in g.anatomy.masks.items()
             if name.startswith(NAMED_BONES) or name in ("spine", "pubic_symphysis")]
    skeleton = np.logical_or.reduce(bones) if bones else None
    for side in built:
        in_bone = float(skeleton[g.anatomy.masks[f"kidney_{side}"]].mean()) if skeleton is not None else 0.0
        if in_bone > KIDNEY_MAX_IN_BONE:
            yield f"kidney_{side}", f"{in_bone:.0%} of it lies in the bones of the skeleton: not a kidney"
            continue
        offset = (g.centre(f"kidney_{side}")[0] - g.midline) * (1 if side == "left" else -1)
        if offset < OWN_SIDE_MM:
            yield f"kidney_{side}", f"centred {offset:.0f} mm toward its own side of the midline, not beside the spine"
    if built and g.present("kidney_left") and g.present("kidney_right"):
        dz = abs(g.centre("kidney_left")[2] - g.centre("kidney_right")[2])
        if dz > KIDNEY_LEVEL_MM:
            for side in built:
                yield f"kidney_{side}", f"the two kidneys' centres lie {dz:.0f} mm apart in height, not a pair"


def _own_side(g: _Geometry, name: str):
    """Liver on the patient's right, spleen on the left (LPS +x is the patient's left)."""
    if not g.ct(name):
        return
    offset = (g.centre(name)[0] - g.midline) * (1 if name == "spleen" else -1)
    if offset < 0:
        side = "left" if name == "spleen" else "right"
        yield name, f"centred {-offset:.0f} mm on the wrong side (the {name} lies on the patient's {side})"
