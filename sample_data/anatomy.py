"""The phantom's anatomy: named solids in LPS mm, painted into a label map on any grid.

Frame: DICOM LPS, z = 0 at the top of the pubic symphysis, x = 0 on the midline.
Sizes are those of an adult man (~178 cm, ~82 kg) and are round numbers read
off standard anatomy (vertebral levels, aortic bifurcation at L4, common-iliac
bifurcation at L5-S1: docs/classification.md#landmark-levels); they are plausible, not measured.
Label maps are z, y, x arrays of uint8 tissue ids (see ``TISSUES``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from localize.sample_data.geometry import Ellipsoid, Grid, Shape, paint, tube

# Vertebral bodies: name -> (z_bottom, z_top) mm. Aortic bifurcation sits at L4
# (docs/classification.md#landmark-levels).
VERTEBRAE: dict[str, tuple[float, float]] = {"vertebrae_L5": (147, 172), "vertebrae_L4": (179, 204),
    "vertebrae_L3": (211, 236), "vertebrae_L2": (243, 268), "vertebrae_L1": (275, 300),
    "vertebrae_T12": (306, 328)}
for _k in range(11, 0, -1):
    _z0 = 333 + (11 - _k) * 27
    VERTEBRAE[f"vertebrae_T{_k}"] = (_z0, _z0 + 22)
for _k in range(7, 3, -1):
    _z0 = 630 + (7 - _k) * 22
    VERTEBRAE[f"vertebrae_C{_k}"] = (_z0, _z0 + 18)

Z_AORTIC_BIFURCATION = 185.0
Z_CI_BIFURCATION = 130.0
Z_PELVIC_INLET = 120.0
Z_DIAPHRAGM = 390.0
Z_SKULL_BASE = 725.0


@dataclass(frozen=True)
class Tissue:
    """One label: CT HU, relative T2 signal (0..1), PET uptake key, TotalSegmentator name or None."""

    name: str
    hu: float
    t2: float
    uptake: str
    totalseg: str | None


def _tissues() -> list[Tissue]:
    t = [Tissue("background", -1000, 0.0, "air", None), Tissue("fat", -100, 0.85, "fat", None),
         Tissue("muscle", 50, 0.22, "muscle", None)]
    for side in ("left", "right"):
        t += [Tissue(f"lung_{side}", -850, 0.02, "lung", f"lung_{side}"),
              Tissue(f"kidney_{side}", 35, 0.55, "kidney", f"kidney_{side}"),
              Tissue(f"iliopsoas_{side}", 50, 0.22, "muscle", f"iliopsoas_{side}"),
              Tissue(f"gluteus_maximus_{side}", 50, 0.22, "muscle", f"gluteus_maximus_{side}"),
              Tissue(f"autochthon_{side}", 50, 0.22, "muscle", f"autochthon_{side}"),
              Tissue(f"iliac_artery_{side}", 40, 0.08, "blood", f"iliac_artery_{side}"),
              Tissue(f"iliac_vena_{side}", 40, 0.1, "blood", f"iliac_vena_{side}"),
              Tissue(f"hip_{side}", 900, 0.03, "bone", f"hip_{side}"),
              Tissue(f"femur_{side}", 900, 0.03, "bone", f"femur_{side}"),
              Tissue(f"parotid_gland_{side}", 30, 0.5, "parotid", f"parotid_gland_{side}"),
              Tissue(f"submandibular_gland_{side}", 35, 0.45, "submandibular", f"submandibular_gland_{side}"),
              Tissue(f"ureter_{side}", 10, 0.9, "ureter", None)]
        t += [Tissue(f"rib_{side}_{k}", 800, 0.03, "bone", f"rib_{side}_{k}") for k in range(1, 13)]
    t += [Tissue("heart", 40, 0.15, "blood", "heart"), Tissue("liver", 60, 0.3, "liver", "liver"),
          Tissue("spleen", 50, 0.6, "spleen", "spleen"), Tissue("stomach", 15, 0.6, "stomach", "stomach"),
          Tissue("pancreas", 40, 0.45, "pancreas", "pancreas"),
          Tissue("small_bowel", 25, 0.5, "small_bowel", "small_bowel"),
          Tissue("colon", -30, 0.35, "colon", "colon"), Tissue("rectum", 10, 0.35, "colon", "colon"),
          Tissue("urinary_bladder", 5, 1.0, "bladder", "urinary_bladder"),
          Tissue("prostate", 40, 0.6, "prostate", "prostate"),
          Tissue("seminal_vesicle", 30, 0.9, "prostate", None),
          Tissue("aorta", 40, 0.08, "blood", "aorta"),
          Tissue("inferior_vena_cava", 40, 0.1, "blood", "inferior_vena_cava"),
          Tissue("spinal_cord", 15, 0.95, "csf", "spinal_cord"), Tissue("sacrum", 900, 0.03, "bone", "sacrum")]
    t += [Tissue(name, 900, 0.03, "bone", name) for name in VERTEBRAE]
    return t


def _varied_tissues() -> list[Tissue]:
    """Tissues only varied patients have (after the standard ones, so standard label ids never change)."""
    t = [Tissue(f"small_bowel_loop_{k}", 35, 0.5, "small_bowel", "small_bowel") for k in range(1, N_LOOPS + 1)]
    t += [Tissue(f"colon_segment_{k}", 35, 0.35, "colon", "colon") for k in range(1, N_COLON_SEGMENTS + 1)]
    for organ in ("small_bowel", "colon", "stomach"):
        t += [Tissue(f"{organ}_gas", -900, 0.02, "air", organ),
              Tissue(f"{organ}_fluid", 10, 0.95, "bowel_content", organ),
              Tissue(f"{organ}_contents", 25, 0.4, "bowel_content", organ)]
    t += [Tissue("colon_stool", -20, 0.3, "bowel_content", "colon"),
          Tissue("duodenum", 35, 0.5, "duodenum", "duodenum"),
          Tissue("gallbladder", 10, 0.95, "bile", "gallbladder"), Tissue("brain", 35, 0.55, "brain", "brain"),
          Tissue("skull", 900, 0.03, "bone", "skull"), Tissue("hip_implant", 3000, 0.0, "air", "hip_implant")]
    t += [Tissue(f"vertebrae_C{k}", 900, 0.03, "bone", f"vertebrae_C{k}") for k in (3, 2, 1)]
    for side in ("left", "right"):
        t += [Tissue(f"ureter_urine_{side}", 10, 0.9, "ureter", f"ureter_{side}"),
              Tissue(f"ureter_bolus_{side}", 10, 0.9, "urine", f"ureter_{side}"),
              Tissue(f"lacrimal_gland_{side}", 40, 0.5, "lacrimal", f"lacrimal_gland_{side}")]
        t += [Tissue(f"{bone}_{side}", 900, 0.03, "bone", f"{bone}_{side}")
              for bone in ("humerus", "radius", "ulna", "tibia", "fibula", "tarsal")]
    return t


N_LOOPS, N_COLON_SEGMENTS = 12, 5
STANDARD_TISSUES = _tissues()
TISSUES: list[Tissue] = STANDARD_TISSUES + _varied_tissues()
LABEL: dict[str, int] = {tissue.name: i for i, tissue in enumerate(TISSUES)}
BONE_IDS = np.array([i for i, t in enumerate(TISSUES) if t.uptake == "bone"])


def organ_classes(varied: bool) -> dict[str, int]:
    """TotalSegmentator-style class numbers: the standard man's names sorted, then (``varied``) the new names."""
    base = sorted({t.totalseg for t in STANDARD_TISSUES if t.totalseg})
    extra = sorted({t.totalseg for t in TISSUES if t.totalseg} - set(base)) if varied else []
    return {name: i + 1 for i, name in enumerate(base + extra)}


@dataclass(frozen=True)
class Habitus:
    """How one man's outline differs from the standard man's, mm: subcutaneous fat added at the sides, front and
    back (negative: thinner than the standard 12 mm) and the forward bulge of the abdominal wall around the navel
    that visceral fat makes (it moves the muscle wall too)."""

    lateral_mm: float = 0.0
    anterior_mm: float = 0.0
    posterior_mm: float = 0.0
    belly_mm: float = 0.0


Z_NAVEL = 190.0


class BodyOutline(Shape):
    """Skin surface: torso ellipse varying with z, plus two thighs below the groin; shrunk inward by ``shrink_mm``.

    ``habitus``: the subcutaneous fat of ``grow`` outlines (the skin) and the belly of every outline.
    """

    _Z = np.array([-60, 0, 80, 150, 250, 350, 450, 560, 600, 640, 680, 760.0])
    _A = np.array([165, 178, 182, 168, 160, 165, 170, 168, 68, 62, 72, 75.0])
    _B = np.array([108, 112, 115, 108, 104, 110, 115, 108, 62, 62, 85, 90.0])

    def __init__(self, shrink_mm: float = 0.0, thighs: bool = True, habitus: Habitus = Habitus(), grow: bool = False):
        self.shrink, self.thighs, self.habitus = shrink_mm, thighs, habitus
        self.grow = (habitus.lateral_mm, habitus.anterior_mm, habitus.posterior_mm) if grow else (0.0, 0.0, 0.0)

    def bbox(self):
        lat, ant, post = (max(g, 0.0) for g in self.grow)
        front = ant + max(self.habitus.belly_mm, 0.0)
        return np.array([-200.0 - lat, -130 - front, -400]), np.array([200.0 + lat, 130 + post, 800])

    def torso(self, x, y, z):
        lat, ant, post = self.grow
        a = np.interp(z, self._Z, self._A) - self.shrink + lat
        b = np.interp(z, self._Z, self._B) - self.shrink
        front = b + ant + self.habitus.belly_mm * np.exp(-(((z - Z_NAVEL) / 110.0) ** 2))
        b = np.where(y < 0, front, b + post)
        return ((x / a) ** 2 + (y / b) ** 2 <= 1.0) & (z >= -60 + self.shrink)

    def inside(self, x, y, z):
        body = self.torso(x, y, z)
        if self.thighs:
            r = np.interp(z, [-400, -30, 20], [68, 88, 88]) - self.shrink + self.grow[0]
            cx = np.interp(z, [-400, -30], [95, 92])
            thigh = (((np.abs(x) - cx) ** 2 + (y + 5) ** 2) <= r**2) & (z <= 20)
            body = body | thigh
        return body


class Shell(Shape):
    """The part of ``outer`` not in ``inner``."""

    def __init__(self, outer: Shape, inner: Shape):
        self.outer, self.inner = outer, inner

    def bbox(self):
        return self.outer.bbox()

    def inside(self, x, y, z):
        return self.outer.inside(x, y, z) & ~self.inner.inside(x, y, z)


class RibBand(Shape):
    """One rib: a band just inside the chest wall at height ``z`` on one side, open anteriorly."""

    def __init__(self, z: float, sign: int, short: bool):
        self.z, self.sign, self.short = z, sign, short
        self.outer, self.inner = BodyOutline(16, False), BodyOutline(25, False)

    def bbox(self):
        lo = [0.0 if self.sign > 0 else -200, -130, self.z - 5]
        return np.array(lo), np.array([200.0 if self.sign > 0 else 0, 130, self.z + 5])

    def inside(self, x, y, z):
        ring = self.outer.torso(x, y, z) & ~self.inner.torso(x, y, z)
        front = -40.0 if not self.short else 10.0
        return ring & (self.sign * x > 8) & (y > front) & (np.abs(z - self.z) <= 4.5)


def _mirror(p, sign):
    return (sign * p[0], p[1], p[2])


def _bones(sign: int, side: str) -> list[tuple[str, Shape, Shape | None]]:
    """(label, solid, marrow) of one side's hip bone and femur."""
    m = lambda p: _mirror(p, sign)  # noqa: E731
    hip, femur = f"hip_{side}", f"femur_{side}"
    out: list[tuple[str, Shape, Shape | None]] = []
    acet = Ellipsoid(m((90, 0, 15)), (37, 37, 37), clip_lo=(-200, -200, -5), clip_hi=(200, 200, 200))
    out.append((hip, Shell(acet, Ellipsoid(acet.center, (25, 25, 25))), None))
    for seg in tube([m((80, 28, 100)), m((92, 5, 40))], [20, 22]) + tube([m((80, -10, 20)), m((16, -55, 0))], 11) \
            + tube([m((14, -50, -35)), m((55, 8, -52))], 9) + tube([m((90, 20, 10)), m((60, 22, -52))], 15):
        out.append((hip, seg, seg.shrunk(3)))
    pubis = Ellipsoid(m((13, -58, -18)), (10, 12, 22))
    out.append((hip, pubis, pubis.shrunk(3)))
    head = Ellipsoid(m((90, 0, 15)), (24, 24, 24))
    out.append((femur, head, head.shrunk(3)))
    for seg in tube([m((90, 0, 15)), m((120, 10, -15))], 15) + tube([m((118, 10, -20)), m((100, -5, -300))], 15):
        out.append((femur, seg, seg.shrunk(4)))
    troch = Ellipsoid(m((125, 15, -15)), (15, 18, 22))
    out.append((femur, troch, troch.shrunk(3)))
    return out


def _clip_lateral(sign, x_mm):
    return ((x_mm if sign > 0 else -200, -200, -200), (200 if sign > 0 else -x_mm, 200, 200))


# The iliac crest, the wing's upper rim, lies at the level of L4 (Tuffier's line, L4-L5 [R: Gray's Anatomy]):
# the wing is cut there, so it is an open bowl whose rim the kidneys' lower poles (L3) and the ureters on the
# psoas pass above and beside, not a lid over the iliac fossa.
Z_ILIAC_CREST = 195.0


def iliac_wing(sign: int) -> Ellipsoid:
    """The iliac wing of side ``sign`` (+1 left), standard frame (LPS mm): bone is its outer 9 mm."""
    lo, hi = _clip_lateral(sign, 42)
    return Ellipsoid((sign * 75, 35, 150), (70, 45, 75), (lo[0], -45, 85), (hi[0], 78, Z_ILIAC_CREST))


def vessel_paths() -> dict[str, np.ndarray]:
    """Vessel centre lines (N x 3 LPS mm) by name; iliac ones per side, sign +1 = left."""
    # ascending aorta and arch above the heart; the descending thoracic aorta runs left of the spine behind
    # the heart (clear of it by a fat plane), through the hiatus at T12 to lie in front of the lumbar spine
    p = {"aorta": np.array([(15, -10, 600), (22, 20, 545), (28, 34, 480), (28, 34, 420), (20, 22, 350),
                            (10, 12, 300), (8, 8, Z_AORTIC_BIFURCATION)], float),
         "inferior_vena_cava": np.array([(-25, 0, 400), (-22, 12, 330), (-20, 14, 182)], float)}
    for sign, side in ((1, "left"), (-1, "right")):
        m = lambda q, sign=sign: _mirror(q, sign)  # noqa: E731
        p[f"common_iliac_artery_{side}"] = np.array([(8, 8, Z_AORTIC_BIFURCATION), m((40, 15, Z_CI_BIFURCATION))])
        p[f"common_iliac_vein_{side}"] = np.array([(-12, 16, 180), m((36, 26, Z_CI_BIFURCATION - 4))])
        p[f"external_iliac_artery_{side}"] = np.array([m((40, 15, Z_CI_BIFURCATION)), m((62, 0, 70)),
                                                       m((78, -30, 5)), m((90, -35, -100)), m((100, -12, -300))])
        p[f"external_iliac_vein_{side}"] = p[f"external_iliac_artery_{side}"] + np.array([-sign * 11, 8, -4])
        p[f"internal_iliac_artery_{side}"] = np.array([m((40, 15, Z_CI_BIFURCATION)), m((50, 45, 90)),
                                                       m((52, 58, 60))])
    return p


def sacrum_center_y(z: float) -> float:
    """Anterior-posterior centre (LPS y, mm) of the sacrum at height z: curved, concave forward."""
    return 70.0 - 35.0 * (z / 140.0) + 12.0 * np.sin(np.pi * z / 140.0)


def vertebra_center(name: str) -> tuple[float, float, float]:
    """Centre of a vertebral body (LPS mm)."""
    z0, z1 = VERTEBRAE[name]
    zc = (z0 + z1) / 2
    return (0.0, _spine_y(zc), zc)


def _spine_y(z: float) -> float:
    return float(np.interp(z, [140, 300, 450, 620, 720], [35, 38, 55, 40, 25]))


def _spine() -> list[tuple[str, Shape, Shape | None]]:
    out = []
    for name, (z0, z1) in VERTEBRAE.items():
        zc, yc = (z0 + z1) / 2, _spine_y((z0 + z1) / 2)
        a = {"L": 24, "T": 17, "C": 12}[name.removeprefix("vertebrae_")[0]]  # half-width: lumbar ~48 mm wide
        body = Ellipsoid((0, yc, zc), (a, a * 0.8, (z1 - z0) * 0.75), clip_lo=(-99, -999, z0), clip_hi=(99, 999, z1))
        out.append((name, body, body.shrunk(3)))
        canal_y = yc + a * 0.8 + 9
        for seg in tube([(0, canal_y + 5, zc), (0, canal_y + 35, zc - 6)], 5) \
                + tube([(-14, canal_y + 4, zc), (14, canal_y + 4, zc)], 6):
            out.append((name, seg, None))
    for k in range(12):
        z = 10.0 * k + 5
        body = Ellipsoid((0, sacrum_center_y(z), z), (15 + 40 * z / 140, 16, 7))
        out.append(("sacrum", body, body.shrunk(3)))
    return out


def _canal() -> list[Shape]:
    zs = np.linspace(100, 760, 12)
    pts = [(0, _spine_y(z) + (24 if z < 300 else 17) * 0.8 + 9, z) for z in zs]
    return tube(pts, 8)


def _fixed_soft_tissues() -> list[tuple[str, Shape]]:
    """Muscles, lungs, salivary glands and heart: the same in every man (the warp makes them differ)."""
    s: list[tuple[str, Shape]] = []
    for sign, side in ((1, "left"), (-1, "right")):
        m = lambda q, sign=sign: _mirror(q, sign)  # noqa: E731
        s += [(f"autochthon_{side}", c) for c in tube([m((32, 95, 60)), m((35, 90, 300)), m((35, 100, 600))], 24)]
        s += [(f"iliopsoas_{side}", c) for c in tube([m((35, 30, 300)), m((52, 28, 170)), m((72, 0, 70)),
                                                      m((86, -32, 5)), m((105, -10, -60))], [8, 20, 22, 17, 12])]
        s.append((f"gluteus_maximus_{side}", Ellipsoid(m((95, 78, 10)), (60, 32, 85))))
        s.append(("muscle", Ellipsoid(m((72, 2, 25)), (10, 38, 32))))  # obturator internus
        s.append((f"lung_{side}", Ellipsoid(m((85, 15, 485)), (65, 80, 125),
                                            clip_lo=(-200, -200, Z_DIAPHRAGM - 20 * (1 + sign)))))
        s.append((f"parotid_gland_{side}", Ellipsoid(m((50, 20, 695)), (14, 20, 25))))
        s.append((f"submandibular_gland_{side}", Ellipsoid(m((35, -30, 660)), (11, 12, 11))))
    s.append(("heart", Ellipsoid((20, -30, 450), (62, 52, 62))))
    return s


def standard_viscera() -> tuple[tuple[str, Shape], ...]:
    """The standard man's kidneys, ureters and abdominal and pelvic organs, in painting order."""
    s: list[tuple[str, Shape]] = []
    for sign, side in ((1, "left"), (-1, "right")):
        m = lambda q, sign=sign: _mirror(q, sign)  # noqa: E731
        s.append((f"kidney_{side}", Ellipsoid(m((75, 55, 270 - 10 * (sign < 0))), (30, 27, 55))))
        s += [(f"ureter_{side}", c) for c in tube([m((55, 45, 255)), m((45, 45, 150)), m((42, 30, 60)),
                                                   m((25, -10, 35))], 3)]
    # right lobe, and the left lobe crossing the midline in front (the pancreas and aorta lie behind it)
    s += [("liver", Ellipsoid((-70, 5, 365), (95, 85, 75), clip_hi=(-5, 200, 999))),
          ("liver", Ellipsoid((-10, -30, 385), (65, 40, 45), clip_hi=(55, 200, 999))),
          ("spleen", Ellipsoid((95, 45, 375), (32, 42, 55))), ("stomach", Ellipsoid((45, -30, 370), (45, 35, 45)))]
    # head by the duodenum, neck and body in front of the aorta, tail up to the splenic hilum
    s += [("pancreas", c) for c in tube(PANCREAS_PATH, 12)]
    rows = []
    for k, z in enumerate((245, 220, 195, 170)):
        xs = np.linspace(-70, 70, 6) * (1 if k % 2 == 0 else -1)
        rows += [(x, -45 + 18 * np.sin(0.05 * x + k), z) for x in xs]
    s += [("small_bowel", c) for c in tube(rows, 13)]
    s += [("colon", c) for c in tube(COLON_PATH, 20)]
    s += [("rectum", c) for c in tube(RECTUM_PATH, 17)]
    s.append(("urinary_bladder", BLADDER))
    return tuple(s)


PANCREAS_PATH = [(-30, -2, 322), (10, -12, 335), (45, -5, 345), (70, 15, 350)]
COLON_PATH = [(-95, -10, 150), (-95, -10, 300), (-60, -45, 305), (60, -45, 310), (95, 10, 305), (95, 10, 130),
              (45, -15, 100), (10, 40, 75)]
RECTUM_PATH = [(10, 40, 75), (0, 55, 20), (0, 50, -25), (0, 35, -50)]
BLADDER = Ellipsoid((0, -30, 40), (45, 35, 35))


def _vessels() -> list[tuple[str, Shape]]:
    s: list[tuple[str, Shape]] = []
    for name, path in vessel_paths().items():
        side = "left" if name.endswith("left") else "right"
        if name.startswith(("common_iliac_artery", "external_iliac_artery", "internal_iliac_artery")):
            label, r = f"iliac_artery_{side}", 6 if "common" in name else 4.5 if "external" in name else 3.5
        elif name.startswith(("common_iliac_vein", "external_iliac_vein")):
            label, r = f"iliac_vena_{side}", 7
        else:
            label, r = name, 11
        s += [(label, c) for c in tube(path, r)]
    return s


PROSTATE = Ellipsoid((0, -25, -18), (22, 17, 18))
SEMINAL_VESICLES = (Ellipsoid((20, 5, 12), (16, 7, 8)), Ellipsoid((-20, 5, 12), (16, 7, 8)))
# Prostate fossa after prostatectomy, after the RTOG consensus (Michalski et al. 2010,
# docs/classification.md#prostate-bed): from ~10 mm below the vesicourethral anastomosis to ~3-4 cm above the
# top of the symphysis, behind pubis and bladder, before rectum.
PROSTATE_BED = Ellipsoid((0, -12, 5), (20, 17, 32))
VUA = (0.0, -30.0, -12.0)


@dataclass(frozen=True)
class Body:
    """One man's variable anatomy: his outline, his viscera (label, solid) in painting order, and extra parts
    (limbs, head, implants) as (label, solid, marrow solid or None), painted after the skeleton."""

    habitus: Habitus = Habitus()
    viscera: tuple[tuple[str, Shape], ...] = standard_viscera()
    extras: tuple[tuple[str, Shape, Shape | None], ...] = ()


STANDARD_BODY = Body()


def label_map(grid: Grid, status: str, body: Body = STANDARD_BODY) -> tuple[np.ndarray, np.ndarray]:
    """(tissue ids, marrow flag) as z, y, x arrays on ``grid`` for a patient of this ``status``."""
    labels = np.zeros(grid.shape_zyx, np.uint8)
    marrow = np.zeros(grid.shape_zyx, bool)
    paint(labels, BodyOutline(habitus=body.habitus, grow=True), grid, LABEL["fat"])
    paint(labels, BodyOutline(12, habitus=body.habitus), grid, LABEL["muscle"])
    paint(labels, BodyOutline(24, thighs=False, habitus=body.habitus), grid, LABEL["fat"])
    for name, shape in _fixed_soft_tissues() + list(body.viscera) + _vessels():
        paint(labels, shape, grid, LABEL[name])
    if status == "post_radiotherapy":
        paint(labels, PROSTATE, grid, LABEL["prostate"])
        for sv in SEMINAL_VESICLES:
            paint(labels, sv, grid, LABEL["seminal_vesicle"])
    bones = _spine() + [b for sign, side in ((1, "left"), (-1, "right")) for b in _bones(sign, side)]
    bones += [(f"hip_{side}", Shell(iliac_wing(sign), iliac_wing(sign).shrunk(9)), Shell(iliac_wing(sign).shrunk(2.5),
               iliac_wing(sign).shrunk(6.5))) for sign, side in ((1, "left"), (-1, "right"))]
    for name, solid, inner in bones:
        paint(labels, solid, grid, LABEL[name])
        if inner is not None:
            paint(marrow, inner, grid, True)
    for k in range(1, 13):
        z = VERTEBRAE[f"vertebrae_T{k}"][0] - 12
        for sign, side in ((1, "left"), (-1, "right")):
            paint(labels, RibBand(z, sign, k >= 11), grid, LABEL[f"rib_{side}_{k}"])
    for seg in _canal():
        paint(labels, seg, grid, LABEL["spinal_cord"])
    for name, solid, inner in body.extras:
        paint(labels, solid, grid, LABEL[name])
        if inner is not None:
            paint(marrow, inner, grid, True)
    marrow &= np.isin(labels, BONE_IDS)
    return labels, marrow
