"""Region, site and PROMISE category of each lesion (docs/classification.md; contract site vocabulary).

Rules, checked in this order at the lesion's target point (LPS mm):

1. bone (docs/classification.md#assignment-rules): the target voxel, or at least half the lesion's ball, in the
   bone mask -> distant, miM1b, with the bone named after the nearest named bone mask;
2. organ (docs/classification.md#assignment-rules): lung or liver (target in the mask or at least half of a
   ball 4 mm larger than the lesion: a nodule punches a hole in an air-threshold
   lung mask) -> miM1c; adrenal, kidney, spleen, pancreas, brain -> other_organ;
3. local (docs/classification.md#prostate-bed): after prostatectomy inside the prostate-bed structure
   or, without one, the RTOG prostate-fossa envelope approximated from the pubic
   symphysis (z from its bottom - 15 mm to its top + 40 mm, within 25 mm of the
   midline, from the middle of the pubis to 65 mm behind it) -> miTr; intact gland:
   prostate mask (5 mm tolerance, or its convex hull) -> miT2 (miT4 when a quarter of the lesion lies in
   bladder or rectum), seminal vesicles -> miT3b; no prostate mask: the same envelope;
4. nodes by level (docs/classification.md#node-regions): above the diaphragm -> supradiaphragmatic (without a
   diaphragm level only what lies below a level known to be abdominal is placed:
   a lumbar vertebra, the pelvis, or the top of a CT field that shows no lung); above
   the aortic bifurcation -> retroperitoneal; between the aortic and common-iliac
   bifurcations -> common iliac (PROMISE V2 / AJCC 8th: distant miM1a; V1: regional);
   without a common-iliac bifurcation, above the pelvic inlet -> common iliac, or retroperitoneal
   as the alternative (first when more than ``COMMON_ILIAC_SPAN_MM`` above the inlet);
   more than 10 cm below the symphysis bottom (the thigh) -> other extrapelvic node;
   below the pubic symphysis top, lateral and anterior -> inguinal (miM1a);
   otherwise a regional pelvic node (miN): within 25 mm of the midline presacral
   (within 30 mm in front of the sacrum) or other pelvic; lateral ones by the
   nearest-vessel rule when the iliac arteries are segmented (internal iliac if
   nearer the posterior branch and within 20 mm of it, else obturator when
   medial to the external iliac, else external iliac), by bone landmarks
   otherwise (posterior to the hip bone's middle -> internal iliac, below the
   acetabular roof -> obturator, else external iliac;
   docs/classification.md#node-regions).

A lesion whose call needs a level or structure that was not found (no CT and no
imported anatomy, a pelvis out of view) is ``unclassified`` / ``unknown`` with a
warning naming it and the reason: never a guess.

Lesions within 10 mm of a boundary that changes the category (aortic and
common-iliac bifurcations, pelvic inlet, prostate-bed envelope) are flagged
``region_uncertain`` with ``region_candidates`` as ``"region:site"`` strings, the
assigned one first (docs/classification.md#boundary-margin).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from localize.anatomy.ct_heuristics import BONE_HU, FAT_HU, ct_on_grid
from localize.anatomy.model import Anatomy
from localize.anatomy.names import NAMED_BONES
from localize.classify.landmarks import Landmarks
from localize.findings import Lesion

UNKNOWN = "unknown"  # treatment status the anatomy could not decide (see classify_lesions)
STATUSES = ("post_prostatectomy", "post_radiotherapy", UNKNOWN)
BOUNDARY_MARGIN_MM = 10.0  # docs/classification.md#boundary-margin
COMMON_ILIAC_SPAN_MM = 50.0  # the common iliac arteries' length above the pelvic brim [R: Gray's Anatomy, 40-60 mm]
MIDLINE_MM = 5.0  # a target this close to the midline is "midline"
# A bone's medulla can read as soft tissue: an osteoporotic vertebral body's cancellous bone reads under 110 HU
# (Pickhardt et al., Ann Intern Med 2013;158:588-95), under the bone threshold, inside a cortex that a PET-sized grid
# blurs open. A target outside the bone mask lies in a bone when, on RING_MIN of RING_RAYS axial rays, the CT shows
# bone within RING_MM with no fat before it: a lumbar body is about 45 mm wide and 35 mm deep (Panjabi et al., Spine
# 1992;17:299-306), so from any point of it the cortex lies within 30 mm on every ray but those through the
# basivertebral foramen behind, across trabecular bone denser than fat. A node beside a bone has bone on one side of
# it; one deep in the pelvis, where the hip bones and sacrum lie all round within 30 mm, has fat between.
RING_RAYS, RING_MIN, RING_MM = 12, 11, 30.0
PRESACRAL_HALF_WIDTH_MM = 25.0
PRESACRAL_DEPTH_MM = 30.0
# A node along the internal iliac vessels lies within 7 mm of them (the region's margin round the vessels; the
# obturator region is a strip along the side wall beyond it: Taylor et al. Int J Radiat Oncol Biol Phys
# 2005;63:1604-12, tabulated in Radiat Oncol 2010;5:59): its centre within the artery's radius (~4 mm), that
# margin and its own radius (up to 9 mm) of the artery's centre line [REC].
INTERNAL_ILIAC_REACH_MM = 20.0
# RTOG prostate-fossa envelope (Michalski et al. IJROBP 2010;76:361-368; [REC] approximation,
# docs/classification.md#prostate-bed)
BED_BELOW_SYMPHYSIS_MM = 15.0
BED_ABOVE_SYMPHYSIS_MM = 40.0
BED_HALF_WIDTH_MM = 25.0
BED_DEPTH_MM = 65.0
PROSTATE_TOLERANCE_MM = 5.0
# Below the femoral triangle: its apex lies 10-15 cm below the inguinal ligament, which runs about 5 cm
# above the symphysis bottom [REC: standard anatomy]; a node lower in the thigh is neither pelvic nor inguinal.
THIGH_BELOW_SYMPHYSIS_MM = 100.0
# Femoral-head top ~3 cm above the symphysis top in adults [REC]: acetabular roof when no femur mask.
ROOF_ABOVE_SYMPHYSIS_MM = 30.0
OTHER_ORGANS = ("adrenal_gland_left", "adrenal_gland_right", "kidney_left", "kidney_right", "spleen", "pancreas",
                "brain")

# contract site -> (region, PROMISE V2 lesion category); local categories depend on the gland
_NODE_SITES = {
    "internal_iliac": "nodal", "external_iliac": "nodal", "obturator": "nodal", "presacral": "nodal",
    "other_pelvic": "nodal", "common_iliac": "distant", "retroperitoneal": "distant", "inguinal": "distant",
    "supradiaphragmatic": "distant", "other_extrapelvic_node": "distant",
}


@dataclass(frozen=True)
class Call:
    """One classification: region, contract site, PROMISE category, named bone."""

    region: str
    site: str
    mitnm: str
    bone: str | None = None
    reason: str = ""  # why an unclassified call could not be made

    @classmethod
    def unclassified(cls, reason: str) -> Call:
        """The call of a lesion whose label needs anatomy that is missing (contract: region unclassified)."""
        return cls("unclassified", "unknown", "", reason=reason)

    @property
    def key(self) -> str:
        return f"{self.region}:{self.site}"


def infer_status(anatomy: Anatomy, suv: np.ndarray | None = None) -> tuple[str, str]:
    """(status, evidence): whether a prostate is present, from what the anatomy shows, said in words.

    An imported prostate or prostate-bed structure decides. A gland found on the CT
    (``anatomy.ct_heuristics``: a round soft-tissue organ of adult size behind the lower
    symphysis, at the bladder base) means an intact gland; its volume, place and, with
    ``suv`` (z, y, x on the anatomy grid), its uptake over the pelvic soft tissue are the
    evidence. Where the pelvis is in view (symphysis and bladder found) and no soft tissue
    of gland size lies between the bladder base and the pelvic floor behind the symphysis,
    the gland was removed. A soft-tissue component there that is not gland-like, or a pelvis
    not seen, is inconclusive: the status is then ``unknown`` (see ``classify_lesions``).
    """
    masks, sources = anatomy.masks, anatomy.sources
    if "prostate_bed" in masks and masks["prostate_bed"].any():
        return "post_prostatectomy", (f"treatment status from the anatomy: a prostate-bed structure "
                                      f"({sources.get('prostate_bed', 'imported')}), post-prostatectomy")
    if "prostate" in masks and masks["prostate"].any():
        return "post_radiotherapy", "treatment status from the anatomy: " + _gland_evidence(anatomy, suv)
    if "prostate" in anatomy.dropped:
        return UNKNOWN, f"treatment status not decided by the anatomy: {anatomy.dropped['prostate']}"
    if "symphysis_top" in anatomy.levels_z_mm and "urinary_bladder" in masks:
        return "post_prostatectomy", ("treatment status from the anatomy: no soft tissue of gland size between the "
                                      "bladder base and the pelvic floor behind the symphysis, post-prostatectomy")
    return UNKNOWN, ("treatment status not decided by the anatomy: the pelvis is not seen well enough to tell "
                     "(no symphysis or no bladder found)")


def _gland_evidence(anatomy: Anatomy, suv: np.ndarray | None) -> str:
    """Words on the prostate mask: source, volume (ml), centre (LPS mm), place, uptake over the pelvic tissue."""
    from localize.detection.metrics import voxel_volume_ml, zyx_to_lps

    masks, levels = anatomy.masks, anatomy.levels_z_mm
    gland = masks["prostate"]
    centre = zyx_to_lps(anatomy.grid, np.argwhere(gland).mean(0))
    volume_ml = gland.sum() * voxel_volume_ml(anatomy.grid)
    text = (f"a prostate ({anatomy.sources.get('prostate', 'imported')}) of {volume_ml:.0f} ml "
            f"centred at LPS ({', '.join(f'{v:.0f}' for v in centre)}) mm")

    def z_of(mask: np.ndarray) -> np.ndarray:
        slices = np.flatnonzero(mask.any((1, 2))).astype(float)
        return zyx_to_lps(anatomy.grid, np.column_stack([slices, np.zeros((len(slices), 2))]))[:, 2]

    if "pubic_symphysis" in masks and masks["pubic_symphysis"].any() and "symphysis_bottom" in levels:
        pubis_y = float(np.median(zyx_to_lps(anatomy.grid, np.argwhere(masks["pubic_symphysis"]).astype(float))[:, 1]))
        text += (f", {centre[1] - pubis_y:.0f} mm behind the pubis and {centre[2] - levels['symphysis_bottom']:.0f} mm "
                 f"above the symphysis bottom")
    bladder = masks.get("urinary_bladder")
    if bladder is not None and bladder.any():
        text += f", its top {z_of(bladder).min() - z_of(gland).max():.0f} mm below the bladder's lowest slice"
    if suv is not None:
        around = ndimage.binary_dilation(gland, iterations=3)
        for name in ("urinary_bladder", "bone"):
            if name in masks:
                around |= ndimage.binary_dilation(masks[name], iterations=2)
        tissue = masks.get("body", np.ones_like(gland)) & ~around
        tissue[~gland.any((1, 2))] = False  # the slices of the gland
        if tissue.any():
            ratio = float(np.median(suv[gland])) / max(float(np.median(suv[tissue])), 1e-6)
            text += f", its median uptake {ratio:.1f} x the pelvic tissue's at its levels"
    return text + ": intact gland (post-radiotherapy)"


def node_call(site: str, promise_version: int = 2) -> Call:
    """The call of a nodal site; common iliac is regional only under PROMISE V1 (docs/classification.md#promise-v2)."""
    region = _NODE_SITES[site]
    if site == "common_iliac" and promise_version == 1:
        region = "nodal"
    return Call(region, site, "miN" if region == "nodal" else "miM1a")


# non-nodal contract site -> (region, PROMISE V2 lesion category); an intact gland's category
# depends on its extent (``_intact_category``): miT2, organ-confined, when it is not read
_ORGAN_SITES = {"prostate": ("local", "miT2"), "prostate_bed": ("local", "miTr"),
                "seminal_vesicle": ("local", "miT3b"), "bone": ("distant", "miM1b"),
                "lung": ("distant", "miM1c"), "liver": ("distant", "miM1c"), "other_organ": ("distant", "miM1c")}


def site_call(site: str, promise_version: int = 2) -> Call:
    """The call of any contract site (``unknown``: unclassified); KeyError outside the vocabulary."""
    if site == "unknown":
        return Call.unclassified("")
    if site in _NODE_SITES:
        return node_call(site, promise_version)
    region, mitnm = _ORGAN_SITES[site]
    return Call(region, site, mitnm)


@dataclass(frozen=True)
class Classification:
    """The lesions, labelled in place, and the warnings of their labelling (a missing level, an unclassified
    lesion, the treatment status inferred)."""

    lesions: list[Lesion]
    warnings: list[str]


def classify_lesions(
    lesions: list[Lesion],
    anatomy: Anatomy,
    *,
    status: str | None,
    references: dict | None = None,
    tracer_family: str = "unknown",
    promise_version: int = 2,
    labels: sitk.Image | None = None,
    ct: sitk.Image | None = None,
) -> Classification:
    """Set region, site, mitnm, laterality, bone and the uncertainty flags of each lesion (in place).

    ``status``: post_prostatectomy / post_radiotherapy / unknown, or None to infer it
    from the anatomy (the reason is one of the warnings returned). With ``unknown`` (no gland
    seen, none ruled out) a lesion in the prostate-bed envelope is local / prostate_bed /
    miTr, flagged ``region_uncertain`` with ``local:prostate`` as the other candidate.
    ``labels``: the lesion label image on the PET grid (lesion ``label`` values), used
    for laterality and overlaps when given. ``ct``: the CT in HU (its own grid, the PET's frame of reference): a
    lesion in the bone mask whose CT is of soft-tissue density at its target voxel (below 150 HU) is then a node or
    organ lesion abutting bone, flagged uncertain with bone as the other candidate (a lytic metastasis is
    the case this can miss); one outside the bone mask whose target the CT's bone rings round (``ringed_by_bone``) is
    a bone lesion, flagged uncertain with the soft-tissue reading as the other candidate. With ``references`` the
    expression scores are set too (``scores.expression_scores``). Returns the lesions and the warnings of their
    labelling.
    """
    from localize.classify.scores import expression_scores

    warnings: list[str] = []
    if status is None:
        status, reason = infer_status(anatomy)
        warnings.append(reason)
    if status not in STATUSES:
        raise ValueError(f"status {status!r} is not one of {STATUSES}")
    marks = Landmarks(anatomy)
    ct_hu = ct_on_grid(ct, anatomy.grid) if ct is not None else None
    label_array = sitk.GetArrayViewFromImage(labels) if labels is not None else None
    if anatomy.midline_x_mm is None and lesions:
        warnings.append("no patient midline found: no laterality given")
    missing = _missing_levels(marks)
    if missing and lesions:
        warnings.append(f"levels not found in the image: {', '.join(missing)} (none is assumed; a lesion whose "
                        f"label needs one is unclassified)")
    for lesion in lesions:
        point = np.asarray(lesion.target_lps_mm, float)
        voxels = _lesion_points(marks, label_array, lesion.label)
        calls, bone = _classify_point(marks, point, lesion, voxels, status, promise_version, ct, ct_hu)
        lesion.region, lesion.site, lesion.mitnm = calls[0].region, calls[0].site, calls[0].mitnm
        if calls[0].reason:
            where = ", ".join(f"{v:.1f}" for v in point)
            name = f"lesion {lesion.id} " if lesion.id else "lesion "
            warnings.append(f"{name}at LPS ({where}) mm unclassified: {calls[0].reason}")
        lesion.bone = bone
        lesion.region_uncertain = len(calls) > 1
        lesion.region_candidates = [c.key for c in calls] if len(calls) > 1 else []
        lesion.laterality = None if anatomy.midline_x_mm is None else _laterality(anatomy.midline_x_mm, point, voxels)
    if references is not None:
        expression_scores(lesions, references, tracer_family)
    return Classification(lesions, warnings)


def _missing_levels(marks: Landmarks) -> list[str]:
    """Names of the levels (docs/classification.md#landmark-levels) that neither the image nor an imported structure
    gave."""
    levels = {"diaphragm": marks.diaphragm_z_mm, "aortic bifurcation": marks.aortic_bifurcation_z_mm,
              "common iliac bifurcation": next((z for z in map(marks.ci_bifurcation_z_mm, ("left", "right"))
                                                if z is not None), None),
              "pelvic inlet": marks.level("pelvic_inlet"), "pubic symphysis": marks.level("symphysis_top")}
    return [name for name, z in levels.items() if z is None]


def _lesion_points(marks: Landmarks, label_array: np.ndarray | None, label: int) -> np.ndarray | None:
    if label_array is None or label <= 0:
        return None
    idx = np.argwhere(label_array == label)
    if not len(idx):
        return None
    from localize.detection.metrics import zyx_to_lps

    return zyx_to_lps(marks.anatomy.grid, idx.astype(float))


def _laterality(midline_x_mm: float, point: np.ndarray, voxels: np.ndarray | None) -> str:
    """left / right / midline: LPS +x is the patient's left; a lesion straddling the midline is midline."""
    dx = point[0] - midline_x_mm
    if abs(dx) < MIDLINE_MM:
        return "midline"
    if voxels is not None:
        left = float(np.mean(voxels[:, 0] > midline_x_mm))
        if 0.25 <= left <= 0.75:
            return "midline"
    return "left" if dx > 0 else "right"


def _classify_point(marks, point, lesion, voxels, status, promise_version, ct, ct_hu) -> tuple[list[Call], str | None]:
    radius = max(lesion.max_diameter_mm / 2.0, float(marks.spacing.max()))
    mask = marks.bone_mask_name
    in_bone = (marks.at(mask, point) or marks.fraction_in(mask, point, lesion.max_diameter_mm / 2.0) >= 0.5
               or _on_rib(marks, point))
    bone_call = replace(site_call("bone"), bone=_bone_name(marks, point)) if in_bone else None
    # soft-tissue HU at the target: a node abutting bone that the bone mask's voxels reach, or the soft tissue in a bony
    # ring the CT's mask fills (``Landmarks.bone_mask_name``), unless the target lies a whole voxel deep in imported
    # bone: the bone itself, an osteoporotic core (50-120 HU) or a lytic lesion
    deep = mask != "bone" and marks.fraction_in(mask, point, float(marks.spacing.max())) >= 1.0
    if bone_call is not None and (ct_hu is None or deep or _hu_at(marks, ct_hu, point) >= BONE_HU):
        return [bone_call], bone_call.bone
    calls, bone = _soft_tissue(marks, point, voxels, status, promise_version, radius)
    if bone_call is None and ct is not None and ringed_by_bone(ct, point):
        ringed = replace(site_call("bone"), bone=_bone_name(marks, point, RING_MM))
        return [ringed] + calls, ringed.bone
    return (calls + [bone_call], bone) if bone_call is not None else (calls, bone)


def ringed_by_bone(ct: sitk.Image, point: np.ndarray) -> bool:
    """True when, on at least ``RING_MIN`` of ``RING_RAYS`` rays spread over the axial plane from the LPS point
    ``point`` (mm), bone (``BONE_HU`` or more on ``ct``, HU on its own grid) lies within ``RING_MM`` with no fat
    before it: the point lies in a bone's medulla, inside its cortex. Read on the CT's own voxels, where a cortex one
    voxel thick keeps its density."""
    angles = np.linspace(0.0, 2 * np.pi, RING_RAYS, endpoint=False)
    step = min(ct.GetSpacing()) / 2.0  # no voxel of cortex stepped over
    steps = np.arange(step, RING_MM + step / 2, step)
    offsets = np.stack([np.cos(angles)[:, None] * steps, np.sin(angles)[:, None] * steps,
                        np.zeros((RING_RAYS, steps.size))], axis=-1)  # rays, steps, LPS xyz (mm)
    to_index = np.linalg.inv(np.reshape(ct.GetDirection(), (3, 3)) * np.asarray(ct.GetSpacing()))
    xyz = np.rint((np.asarray(point, float) + offsets - np.asarray(ct.GetOrigin())) @ to_index.T).astype(int)
    inside = np.all((xyz >= 0) & (xyz < np.asarray(ct.GetSize())), axis=-1)
    hu = np.full(inside.shape, -1000.0)  # beyond the CT: air
    hu[inside] = sitk.GetArrayViewFromImage(ct)[xyz[inside][:, 2], xyz[inside][:, 1], xyz[inside][:, 0]]
    last = steps.size  # a ray's first sample of bone, and of fat or air: the cortex is met before any fat
    bone_at = np.where((hu >= BONE_HU).any(axis=1), np.argmax(hu >= BONE_HU, axis=1), last)
    fat_at = np.where((hu < FAT_HU[1]).any(axis=1), np.argmax(hu < FAT_HU[1], axis=1), last)
    return int(np.count_nonzero(bone_at < fat_at)) >= RING_MIN


def _hu_at(marks: Landmarks, ct_hu: np.ndarray, point: np.ndarray) -> float:
    """CT HU at the voxel of the point (the lesion's uptake-weighted centre); +inf outside the grid."""
    idx = marks.index(point)
    return float(ct_hu[idx]) if idx is not None else float("inf")


def _soft_tissue(marks, point, voxels, status, promise_version, radius) -> tuple[list[Call], str | None]:
    organ = _organ(marks, point, radius)
    if organ is not None:
        return [organ], None
    local = _local(marks, point, voxels, status)
    if local is not None:
        call, depth = local
        calls = [call]
        if status == UNKNOWN:  # a gland neither seen nor ruled out: the intact-gland reading is the other candidate
            calls.append(Call("local", "prostate", _intact_category(marks, voxels)))
        if depth < BOUNDARY_MARGIN_MM and status != "post_radiotherapy":
            calls.append(node_call("other_pelvic", promise_version))
        return calls, None
    calls = _node(marks, point, promise_version)
    bed = _bed_signed_distance(marks, point) if status != "post_radiotherapy" else None
    if bed is not None and -BOUNDARY_MARGIN_MM < bed and calls[0].region == "nodal":
        calls = calls + [site_call("prostate_bed")]
    return calls, None


def _on_rib(marks: Landmarks, point: np.ndarray) -> bool:
    """Ribs are thinner than a PET voxel: a lesion within 1.5 voxels of a rib mask is a rib lesion."""
    voxel = 1.5 * float(marks.spacing.max())
    return any(marks.distance_mm(name, point) <= voxel for name in marks.anatomy.masks if name.startswith("rib_"))


def _bone_name(marks: Landmarks, point: np.ndarray, within_mm: float = 6.0) -> str:
    """The nearest named bone mask within ``within_mm``; otherwise 'rib' for lateral chest-wall bone, else 'bone'."""
    best, best_d = None, within_mm
    for name in marks.anatomy.masks:
        if name.startswith(NAMED_BONES) or name == "pubic_symphysis":
            d = marks.distance_mm(name, point)
            if d <= best_d:
                best, best_d = name, d
    if best == "pubic_symphysis":
        best = "hip_left" if point[0] > (marks.anatomy.midline_x_mm or 0.0) else "hip_right"
    if best is not None:
        return best
    dia = marks.diaphragm_z_mm
    lateral = abs(point[0] - (marks.anatomy.midline_x_mm or 0.0)) > 30.0
    if lateral and dia is not None and point[2] > dia - 100.0:  # lower ribs reach ~10 cm below the dome [R]
        return "rib"
    return "bone"


def _organ(marks: Landmarks, point: np.ndarray, radius: float) -> Call | None:
    for site, names in (("liver", ("liver",)), ("lung", ("lung_left", "lung_right"))):
        for name in names:
            if marks.at(name, point) or marks.fraction_in(name, point, radius + 4.0) >= 0.5:
                return site_call(site)
    if any(marks.at(name, point) for name in OTHER_ORGANS):
        return site_call("other_organ")
    return None


def _bed_box(marks: Landmarks) -> tuple[np.ndarray, np.ndarray] | None:
    """(low, high) LPS corners of the prostate-fossa envelope (docs/classification.md#prostate-bed), None without a
    pubic symphysis."""
    top, bottom, pubis_y = marks.level("symphysis_top"), marks.level("symphysis_bottom"), marks.pubis_y_mm
    if top is None or bottom is None or pubis_y is None:
        return None
    mid = marks.anatomy.midline_x_mm or 0.0
    low = np.array([mid - BED_HALF_WIDTH_MM, pubis_y, bottom - BED_BELOW_SYMPHYSIS_MM])
    high = np.array([mid + BED_HALF_WIDTH_MM, pubis_y + BED_DEPTH_MM, top + BED_ABOVE_SYMPHYSIS_MM])
    return low, high


def _bed_signed_distance(marks: Landmarks, point: np.ndarray) -> float | None:
    """Distance (mm) from the point to the prostate-bed envelope surface: positive inside, negative outside."""
    if marks.has("prostate_bed"):
        if marks.at("prostate_bed", point):
            return marks.depth_mm("prostate_bed", point)
        return -marks.distance_mm("prostate_bed", point)
    box = _bed_box(marks)
    if box is None:
        return None
    low, high = box
    if np.all(point >= low) and np.all(point <= high):
        return float(min((point - low).min(), (high - point).min()))
    return -float(np.linalg.norm(np.maximum(np.maximum(low - point, point - high), 0.0)))


def _local(marks: Landmarks, point: np.ndarray, voxels: np.ndarray | None, status: str) -> tuple[Call, float] | None:
    """(call, depth inside the local region in mm) or None when the lesion is not local.

    After prostatectomy, and when the status is unknown, the prostate bed (docs/classification.md#prostate-bed)
    decides."""
    if status != "post_radiotherapy":
        depth = _bed_signed_distance(marks, point)
        if depth is not None and (depth >= 0 or (marks.has("prostate_bed") and depth > -PROSTATE_TOLERANCE_MM)):
            return site_call("prostate_bed"), max(depth, 0.0)
        return None
    if marks.has("prostate"):
        # the gland is convex: a lesion whose density differs from it on CT is carved out of a CT mask's edge
        if marks.distance_mm("prostate", point) <= PROSTATE_TOLERANCE_MM or marks.in_hull("prostate", point):
            return Call("local", "prostate", _intact_category(marks, voxels)), np.inf
        if marks.has("seminal_vesicles") and marks.distance_mm("seminal_vesicles", point) <= PROSTATE_TOLERANCE_MM:
            return site_call("seminal_vesicle"), np.inf
        return None
    depth = _bed_signed_distance(marks, point)
    if depth is not None and depth >= 0:
        return Call("local", "prostate", _intact_category(marks, voxels)), np.inf
    return None


def _intact_category(marks: Landmarks, voxels: np.ndarray | None) -> str:
    """miT4 when a quarter of the lesion lies in the bladder or rectum (docs/classification.md#mitnm), else miT2."""
    if voxels is not None:
        for organ in ("urinary_bladder", "rectum"):
            if marks.has(organ) and np.mean([marks.at(organ, v) for v in voxels]) >= 0.25:
                return "miT4"
    return "miT2"


def _node(marks: Landmarks, point: np.ndarray, promise_version: int) -> list[Call]:
    """Nodal site by level (docs/classification.md#assignment-rules), with the alternative when within 10 mm of a level
    boundary."""
    z = float(point[2])
    mid = marks.anatomy.midline_x_mm or 0.0
    dx = float(point[0] - mid)
    sides = ("left",) if dx >= MIDLINE_MM else ("right",) if dx <= -MIDLINE_MM else ("left", "right")
    cibs = [c for c in (marks.ci_bifurcation_z_mm(s) for s in sides) if c is not None]
    z_cib = float(np.mean(cibs)) if cibs else None
    z_ab, dia = marks.aortic_bifurcation_z_mm, marks.diaphragm_z_mm
    ci, rp = node_call("common_iliac", promise_version), node_call("retroperitoneal", promise_version)
    inlet, top = marks.level("pelvic_inlet"), marks.level("symphysis_top")
    if dia is not None and z > dia:
        return [node_call("supradiaphragmatic", promise_version)]
    if dia is None:
        below = marks.subdiaphragmatic_top_z_mm
        if below is None:
            return [Call.unclassified("no diaphragm, lumbar vertebra or pelvic bone found to place it by")]
        if z > below:
            return [Call.unclassified(f"no diaphragm found and it lies above the highest level known to be below "
                                      f"it (z {below:.0f} mm): supradiaphragmatic or not cannot be told")]
    if z_ab is not None and z > z_ab:
        return [rp, ci] if z - z_ab < BOUNDARY_MARGIN_MM else [rp]
    if z_cib is not None and z > z_cib:
        calls = [ci]
        if z_ab is not None and z_ab - z < BOUNDARY_MARGIN_MM:
            calls.append(rp)
        if z - z_cib < BOUNDARY_MARGIN_MM:
            calls.append(node_call(_pelvic_site(marks, point, dx), promise_version))
        return calls
    if z_cib is None and inlet is not None and z > inlet + BOUNDARY_MARGIN_MM:
        # above the pelvic brim with no bifurcation found to split it: along the common iliac vessels or the
        # aorta, never a pelvic node; the common iliac arteries run about 40-60 mm up from the brim [R: Gray's
        # Anatomy], so that call comes first up to COMMON_ILIAC_SPAN_MM above it
        if z_ab is not None or z - inlet <= COMMON_ILIAC_SPAN_MM:
            return [ci] if z_ab is not None else [ci, rp]
        return [rp, ci]
    if top is None:
        return [Call.unclassified("below the abdominal levels found, but no pubic symphysis found to name a "
                                  "pelvic or inguinal site")]
    bottom = marks.level("symphysis_bottom")
    if bottom is not None and z < bottom - THIGH_BELOW_SYMPHYSIS_MM:
        return [node_call("other_extrapelvic_node", promise_version)]
    if _inguinal(marks, point, dx):
        return [node_call("inguinal", promise_version)]
    calls = [node_call(_pelvic_site(marks, point, dx), promise_version)]
    lowest = min(c for c in (z_cib, inlet) if c is not None) if (z_cib is not None or inlet is not None) else None
    if lowest is not None and z > lowest - BOUNDARY_MARGIN_MM:
        calls.append(ci)
    return calls


def _inguinal(marks: Landmarks, point: np.ndarray, dx: float) -> bool:
    """Below the symphysis top, lateral and in front of the pubis: the femoral triangle
    (docs/classification.md#node-regions)."""
    top, bottom, pubis_y = marks.level("symphysis_top"), marks.level("symphysis_bottom"), marks.pubis_y_mm
    if top is None or abs(dx) <= 45.0:
        return False
    if bottom is not None and point[2] < bottom - 20.0:
        return True
    return point[2] < top and (pubis_y is None or point[1] < pubis_y + 25.0)


def _pelvic_site(marks: Landmarks, point: np.ndarray, dx: float) -> str:
    """Regional pelvic node site (docs/classification.md#node-regions): presacral / other pelvic near the midline,
    else iliac / obturator."""
    if abs(dx) < PRESACRAL_HALF_WIDTH_MM:
        return "presacral" if _in_front_of_sacrum(marks, point) else "other_pelvic"
    side = "left" if dx > 0 else "right"
    branches = marks.iliac_branch_points(side)
    if branches is not None:
        external, internal = branches
        d_ext = np.linalg.norm(external - point, axis=1)
        d_int = np.linalg.norm(internal - point, axis=1)
        if d_int.min() < min(d_ext.min(), INTERNAL_ILIAC_REACH_MM):
            return "internal_iliac"
        nearest = external[int(np.argmin(d_ext))]
        mid = marks.anatomy.midline_x_mm or 0.0
        return "obturator" if abs(dx) < abs(nearest[0] - mid) - 5.0 else "external_iliac"
    hip_y = marks.hip_median_y_mm(side, float(point[2]))
    if hip_y is not None and point[1] > hip_y + 10.0:
        return "internal_iliac"
    return "obturator" if point[2] < _acetabular_roof_z_mm(marks, side) else "external_iliac"


def _in_front_of_sacrum(marks: Landmarks, point: np.ndarray) -> bool:
    """Within 30 mm in front of the sacrum (S1-S3 level and below the promontory)."""
    pts = marks.points("sacrum")
    top = marks.level("symphysis_top")
    if top is not None and len(pts):
        pts = pts[pts[:, 2] > top + 20.0]  # the CT sacrum run can reach down to the pubis in the midline strip
    if not len(pts):
        return False
    d = np.linalg.norm(pts - point, axis=1)
    nearest = pts[int(np.argmin(d))]
    return bool(d.min() <= PRESACRAL_DEPTH_MM and point[1] < nearest[1])


def _acetabular_roof_z_mm(marks: Landmarks, side: str) -> float:
    """Top of the femoral head (femur or femoral-head mask), else the symphysis top + 30 mm."""
    for name in (f"femoral_head_{side}", f"femur_{side}"):
        if marks.has(name):
            return float(marks.points(name)[:, 2].max())
    symphysis_top = marks.level("symphysis_top")
    assert symphysis_top is not None  # _node checks that the symphysis was found
    return symphysis_top + ROOF_ABOVE_SYMPHYSIS_MM
