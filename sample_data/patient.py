"""One varied patient: what real adult men differ in, drawn from a seed.

Ranges are what real patients show: with a source, [R] where recalled from the literature
and not re-read, or [REC] where the number is the generator's own plausible choice. The
patient is built in the standard man's frame (``anatomy``: LPS mm, z = 0 at the top of the
symphysis) as organs, bowel, limbs, head and implant, plus the z stretch and x/y scale that
``warp.Warp`` applies (with its smooth random displacement) to carry that frame to his own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from localize.sample_data import anatomy as an
from localize.sample_data.geometry import Ellipsoid, OrientedEllipsoid, Shape, tube
from localize.sample_data.warp import ZStretch

STANDARD_HEIGHT_M = 1.78
# Standard levels the z stretch moves (mm): soles, knee joint, symphysis, then each vertebra's bottom and top,
# skull base and vertex. Standing height 1.78 m = sole to vertex.
Z_SOLE, Z_KNEE, Z_VERTEX = -890.0, -470.0, 890.0

# Filling of a bowel loop or colon segment and how often it is seen on CT [REC].
LOOP_FILLINGS = (("fluid", 0.45), ("collapsed", 0.30), ("gas", 0.10), ("contents", 0.15))
COLON_FILLINGS = (("stool", 0.5), ("gas", 0.3), ("fluid", 0.1), ("collapsed", 0.1))


@dataclass
class Patient:
    """A varied man in the standard frame. ``viscera`` and ``parts`` feed ``anatomy.Body`` (ureters are added once
    the lesions are placed); ``factors`` scale the uptake of single labels (bowel loops); ``summary`` goes to truth."""

    height_m: float
    weight_kg: float
    habitus: an.Habitus
    stretch: ZStretch
    scale_xy: tuple[float, float]
    viscera: list[tuple[str, Shape]]
    parts: list[tuple[str, Shape, Shape | None]]
    kidneys: dict[str, OrientedEllipsoid]
    bladder: Ellipsoid
    liver_point: tuple[float, float, float]
    spleen_point: tuple[float, float, float] | None
    arms_up: bool
    implant_side: str | None
    loops: list[tuple[str, np.ndarray, float]]  # (wall label, centre line N x 3, radius mm)
    factors: dict[str, float] = field(default_factory=dict)
    summary: dict = field(default_factory=dict)

    @property
    def bmi(self) -> float:
        return self.weight_kg / self.height_m**2


def _lognormal(rng: np.random.Generator, median: float, cov: float, lo: float, hi: float) -> float:
    sigma = np.sqrt(np.log(1 + cov**2))
    return float(np.clip(median * np.exp(rng.normal(0, sigma)), lo, hi))


def _choice(rng: np.random.Generator, options) -> str:
    names, weights = zip(*options)
    return str(rng.choice(names, p=np.asarray(weights) / sum(weights)))


def _smooth(points, passes: int = 2) -> np.ndarray:
    """Chaikin corner cutting of a polyline (keeps its end points)."""
    p = np.asarray(points, float)
    for _ in range(passes):
        q = np.empty((2 * len(p) - 2, 3))
        q[0::2] = 0.75 * p[:-1] + 0.25 * p[1:]
        q[1::2] = 0.25 * p[:-1] + 0.75 * p[1:]
        p = np.vstack([p[:1], q, p[-1:]])
    return p


def _stretch(rng: np.random.Generator, height_m: float) -> ZStretch:
    """Body height (legs, pelvis, each vertebral body and disc, head) as a piecewise z stretch.

    Vertebral body height varies between men by ~6 % and disc height by ~15 % at equal stature [R];
    leg length over stature by ~3 % [R].
    """
    h = height_m / STANDARD_HEIGHT_M
    below = [(Z_SOLE, Z_KNEE, h * rng.normal(1, 0.03)), (Z_KNEE, 0.0, h * rng.normal(1, 0.03))]
    above, previous = [], 0.0
    for z0, z1 in sorted(an.VERTEBRAE.values()):
        above.append((previous, z0, h * rng.normal(1, 0.15 if previous > 0 else 0.04)))  # a disc, or the sacrum
        above.append((z0, z1, h * rng.normal(1, 0.06)))
        previous = z1
    above += [(previous, an.Z_SKULL_BASE, h * rng.normal(1, 0.05)),
              (an.Z_SKULL_BASE, Z_VERTEX, h * rng.normal(1, 0.04))]
    knots, z = [(0.0, 0.0)], 0.0  # the symphysis stays at z = 0
    for a, b, f in reversed(below):
        z -= (b - a) * f
        knots.insert(0, (a, z))
    z = 0.0
    for a, b, f in above:
        z += (b - a) * f
        knots.append((b, z))
    std, patient = zip(*knots)
    return ZStretch(tuple(float(v) for v in std), tuple(float(v) for v in patient))


def _kidney(rng: np.random.Generator, sign: int, side: str) -> OrientedEllipsoid:
    """Length 9-13 cm (mean ~11 cm) [R]; the right one ~1-2 cm lower [R]; hilum turned anteromedially 15-45 deg,
    lower pole lateral (5-20 deg) and forward (0-15 deg) [R]; ptosis (3-7 cm lower) in ~8 % [REC]."""
    length = float(np.clip(rng.normal(110, 8), 90, 130))
    semi = (float(np.clip(rng.normal(29, 2.5), 23, 35)), float(np.clip(rng.normal(24, 2.5), 19, 30)), length / 2)
    z = 270.0 + rng.normal(0, 12) - (rng.uniform(5, 25) if side == "right" else 0.0)
    drop = float(rng.uniform(30, 70)) if rng.random() < 0.08 else 0.0
    # a ptotic kidney sinks along the psoas, forward and towards the midline into the iliac fossa, in front of
    # the iliac wing, never into it [REC]
    centre = (sign * (float(rng.normal(75, 6)) - 0.4 * drop), float(rng.normal(55, 5)) - 0.3 * drop, float(z - drop))
    rot = Rotation.from_euler("zyx", [sign * -rng.uniform(15, 45), sign * -rng.uniform(5, 20),
                                      rng.uniform(0, 15)], degrees=True).as_matrix()
    return OrientedEllipsoid(centre, semi, tuple(map(tuple, rot)))


def kidney_hilum(kidney: OrientedEllipsoid) -> np.ndarray:
    """The renal pelvis: just off the kidney's medial border, a little below its middle (LPS mm)."""
    sign = 1.0 if kidney.center[0] > 0 else -1.0
    local = np.array([-sign * (kidney.semi_mm[0] + 2), -0.3 * kidney.semi_mm[1], -0.15 * kidney.semi_mm[2]])
    return np.asarray(kidney.center) + np.asarray(kidney.axes) @ local


def _scaled(shape: Ellipsoid, volume_ml: float, rng: np.random.Generator, jitter_mm: float) -> Ellipsoid:
    """``shape`` resized to ``volume_ml`` (axes varied by ~8 %) and moved by up to ``jitter_mm``."""
    aspect = rng.normal(1, 0.08, 3).clip(0.8, 1.2)
    semi = np.asarray(shape.semi_mm) * aspect
    semi *= (volume_ml * 1000 / (4 / 3 * np.pi * np.prod(semi))) ** (1 / 3)
    centre = np.asarray(shape.center) + rng.uniform(-jitter_mm, jitter_mm, 3)
    return Ellipsoid(tuple(float(v) for v in centre), tuple(float(v) for v in semi))


def _bladder(rng: np.random.Generator) -> tuple[Ellipsoid, float]:
    """50-600 ml, log-uniform [brief]; its base stays on the pelvic floor, a fuller bladder is taller and rounder."""
    volume = float(np.exp(rng.uniform(np.log(50), np.log(600))))
    s = (volume / 231.0) ** (1 / 3)
    semi = np.array([45 * s**0.9, 35 * s, 35 * s**1.15])
    semi *= (volume * 1000 / (4 / 3 * np.pi * np.prod(semi))) ** (1 / 3)
    centre = (rng.uniform(-5, 5), -30 + rng.uniform(-5, 5), an.BLADDER.center[2] - an.BLADDER.semi_mm[2] + semi[2])
    return Ellipsoid(tuple(float(v) for v in centre), tuple(float(v) for v in semi)), volume


def _lumen(label_prefix: str, filling: str, path, radius: float, wall_mm: float) -> list[tuple[str, Shape]]:
    if filling == "collapsed":
        return []
    return [(f"{label_prefix}_{filling}", c) for c in tube(path, max(radius - wall_mm, 1.0))]


def _loops(rng: np.random.Generator, n: int, belly_mm: float, z_floor: float) -> list[tuple[np.ndarray, float, str]]:
    """Small-bowel loops: smooth random walks in the mid and lower abdomen, 2-3 cm wide when filled [R]."""
    loops = []
    lo = np.array([-75.0, -85.0 - 0.7 * belly_mm, z_floor])
    hi = np.array([75.0, 0.0, 265.0])
    for _ in range(n):
        p = rng.uniform(lo, hi)
        d = rng.normal(size=3)
        points = [p]
        for _ in range(int(rng.integers(4, 8))):
            d = d / np.linalg.norm(d) + rng.normal(0, 0.6, 3)
            p = np.clip(p + 28 * d / np.linalg.norm(d), lo, hi)
            points.append(p)
        filling = _choice(rng, LOOP_FILLINGS)
        radius = float(rng.uniform(8, 10) if filling == "collapsed" else rng.uniform(10, 15))
        loops.append((_smooth(points), radius, filling))
    return loops


def _colon(rng: np.random.Generator, belly_mm: float) -> list[tuple[np.ndarray, float, str]]:
    """Ascending, transverse, descending and sigmoid colon around the standard path: points moved by ~1 cm,
    the transverse colon sagging by 0-9 cm (it reaches the pelvis in some men [R]), 2.5-5.5 cm wide [R]."""
    path = np.array(an.COLON_PATH, float)
    path[:-1, :2] += rng.normal(0, 8, (len(path) - 1, 2))
    sag = rng.uniform(0, 90)
    path[2:4, 2] -= sag
    path[2:4, 1] -= 0.5 * belly_mm
    pieces = ((0, 2), (1, 5), (4, 6), (5, 8))
    out = []
    for (a, b) in pieces:
        filling = _choice(rng, COLON_FILLINGS)
        radius = float(rng.uniform(10, 13) if filling == "collapsed" else rng.uniform(14, 27))
        out.append((_smooth(path[a:b]), radius, filling))
    return out


def _bubbles(rng: np.random.Generator, path: np.ndarray, radius: float, label: str) -> list[tuple[str, Shape]]:
    """Gas pockets mixed into stool (a few mm each)."""
    out = []
    for _ in range(int(rng.integers(4, 14))):
        centre = path[int(rng.integers(len(path)))] + rng.normal(0, radius / 3, 3)
        out.append((label, Ellipsoid(tuple(centre), (rng.uniform(2, 5),) * 3)))
    return out


def _arms(rng: np.random.Generator, up: bool, habitus: an.Habitus) -> list[tuple[str, Shape, Shape | None]]:
    """Arms beside the trunk (down) or above the head (up); fat and muscle tubes with humerus, radius, ulna."""
    fat = max(6.0, 10 + 0.6 * habitus.lateral_mm)
    parts: list[tuple[str, Shape, Shape | None]] = []
    for sign, side in ((1, "left"), (-1, "right")):
        def out_of(z: float, sign: int = sign) -> float:
            a = float(np.interp(z, an.BodyOutline._Z, an.BodyOutline._A)) + max(habitus.lateral_mm, 0)
            return sign * (a + rng.uniform(2, 12))
        r_up, r_fore = 38 + 0.5 * fat, 30 + 0.4 * fat
        shoulder = np.array([sign * 168.0, 5.0, 560.0])
        if up:
            elbow = np.array([sign * rng.uniform(140, 170), rng.uniform(0, 30), 840.0])
            wrist = np.array([sign * rng.uniform(40, 90), rng.uniform(0, 40), 1060.0])
        else:
            elbow = np.array([out_of(300) + sign * r_up, rng.uniform(0, 25), 300.0])
            wrist = np.array([out_of(60) + sign * r_fore, rng.uniform(-20, 15), 60.0])
        hand = wrist + (wrist - elbow) / np.linalg.norm(wrist - elbow) * 90
        path, radii = [shoulder, elbow, wrist, hand], [r_up + 8, r_up, r_fore, 22]
        parts += [("fat", c, None) for c in tube(path, radii)]
        parts += [("muscle", c, None) for c in tube(path, [r - fat for r in radii])]
        for seg in tube([shoulder, elbow], 11):
            parts.append((f"humerus_{side}", seg, seg.shrunk(3.5)))
        across = np.cross(wrist - elbow, [0, 1.0, 0])
        across = 9 * across / np.linalg.norm(across)
        for bone, offset in (("radius", across), ("ulna", -across)):
            for seg in tube([elbow + offset * 0.4, wrist + offset], 6):
                parts.append((f"{bone}_{side}", seg, seg.shrunk(2.5)))
    return parts


def _legs(habitus: an.Habitus) -> list[tuple[str, Shape, Shape | None]]:
    """Knees, calves and feet below the standard thighs (z < -400), with femur, tibia, fibula and tarsus."""
    fat = max(5.0, 9 + 0.5 * habitus.lateral_mm)
    parts: list[tuple[str, Shape, Shape | None]] = []
    for sign, side in ((1, "left"), (-1, "right")):
        leg = [(sign * 95, -5, -400), (sign * 95, -5, -470), (sign * 95, 0, -600), (sign * 95, 5, -845)]
        radii = [68 + habitus.lateral_mm, 52 + 0.6 * habitus.lateral_mm, 55 + 0.6 * habitus.lateral_mm, 32]
        foot = Ellipsoid((sign * 95, -40, -868), (42, 95, 24))
        parts += [("fat", c, None) for c in tube(leg, radii)] + [("fat", foot, None)]
        parts += [("muscle", c, None) for c in tube(leg, [r - fat for r in radii])] + [("muscle", foot.shrunk(6), None)]
        for seg in tube([(sign * 100, -5, -300), (sign * 95, -5, -462)], 15):
            parts.append((f"femur_{side}", seg, seg.shrunk(4)))
        for seg in tube([(sign * 93, -8, -478), (sign * 93, 0, -840)], [17, 12]):
            parts.append((f"tibia_{side}", seg, seg.shrunk(4)))
        for seg in tube([(sign * 118, 12, -485), (sign * 113, 10, -845)], 6):
            parts.append((f"fibula_{side}", seg, seg.shrunk(2.5)))
        tarsus = Ellipsoid((sign * 95, -25, -866), (24, 55, 16))
        parts.append((f"tarsal_{side}", tarsus, tarsus.shrunk(3)))
    return parts


def _head() -> list[tuple[str, Shape, Shape | None]]:
    """Head above the skull base: scalp, skull, brain, lacrimal glands; C1-C3 below it."""
    head = Ellipsoid((0.0, 15.0, 810.0), (75.0, 95.0, 85.0))
    parts: list[tuple[str, Shape, Shape | None]] = [("fat", head, None), ("muscle", head.shrunk(3), None)]
    skull = Ellipsoid(head.center, tuple(s - 4 for s in head.semi_mm), clip_lo=(-999, -999, 765))
    parts.append(("skull", an.Shell(skull, skull.shrunk(7)), an.Shell(skull.shrunk(2.5), skull.shrunk(4.5))))
    parts.append(("brain", Ellipsoid(head.center, tuple(s - 11 for s in head.semi_mm), clip_lo=(-999, -999, 772)),
                  None))
    for sign, side in ((1, "left"), (-1, "right")):
        parts.append((f"lacrimal_gland_{side}", Ellipsoid((sign * 30.0, -62.0, 826.0), (8.0, 5.0, 4.0)), None))
    for k, z0 in ((3, 718.0), (2, 738.0), (1, 758.0)):
        body = Ellipsoid((0.0, 25.0, z0 + 8), (12.0, 10.0, 8.0))
        parts.append((f"vertebrae_C{k}", body, body.shrunk(2.5)))
    return parts


def _implant(side: str) -> list[tuple[str, Shape, Shape | None]]:
    """Total hip replacement: metal head, neck and stem in the femur, cup in the acetabulum."""
    sign = 1 if side == "left" else -1
    head = (sign * 90.0, 0.0, 15.0)
    cup = Ellipsoid(head, (27.0,) * 3, clip_lo=(-999, -999, 12))
    shapes: list[Shape] = [an.Shell(cup, cup.shrunk(4)), Ellipsoid(head, (22.0,) * 3)]
    shapes += tube([head, (sign * 118.0, 10.0, -15.0), (sign * 110.0, 2.0, -150.0)], [7.0, 8.0, 5.0])
    return [("hip_implant", s, None) for s in shapes]


def draw_patient(rng: np.random.Generator) -> Patient:
    """A man drawn from ``rng`` (all of his anatomy; lesions and ureters come later)."""
    height = float(np.clip(rng.normal(1.76, 0.07), 1.58, 1.98))  # adult men, SD ~7 cm (NCD-RisC 2016) [R]
    bmi = float(np.clip(rng.normal(27.5, 5.0), 17.0, 40.0))  # range 17-40 [brief]; older men mean ~28 [R]
    weight = bmi * height**2
    # abdominal subcutaneous fat ~3 mm at BMI 17 to ~40 mm at BMI 40, thicker in front (android) [R]
    front = max(3.0, 12 + 2.0 * (bmi - 25.9) * rng.uniform(0.7, 1.3)) - 12
    habitus = an.Habitus(lateral_mm=0.8 * front, anterior_mm=front, posterior_mm=0.6 * front,
                         belly_mm=max(0.0, 3.0 * (bmi - 24)) * float(rng.uniform(0.6, 1.4)))
    frame = (height / STANDARD_HEIGHT_M) ** 0.5
    scale_xy = (float(np.clip(frame * rng.normal(1, 0.04), 0.86, 1.14)),
                float(np.clip(frame * rng.normal(1, 0.04), 0.86, 1.14)))
    stretch = _stretch(rng, height)

    viscera: list[tuple[str, Shape]] = []
    # liver ~1.1-2.4 L in men [R] (the standard man's is ~2.3 L): axes x0.75-1.05, left lobe 0.6-1.4 of the
    # standard, Riedel's lobe in ~10 % [R]
    scale = rng.normal(0.88, 0.07, 3).clip(0.75, 1.05)
    right = Ellipsoid((-70 + rng.normal(0, 6), 5 + rng.normal(0, 5), 365 + rng.normal(0, 10)),
                      tuple(float(v) for v in np.array([95, 85, 75]) * scale), clip_hi=(-5, 200, 999))
    left_size = rng.uniform(0.6, 1.4)
    left = Ellipsoid((-10, -30, 385), (65 * left_size, 40 * left_size**0.5, 45),
                     clip_hi=(-10 + 65 * left_size, 200, 999))
    viscera += [("liver", right), ("liver", left)]
    if rng.random() < 0.10:
        viscera.append(("liver", Ellipsoid((right.center[0] - 45, right.center[1] + 5, right.center[2] - 80),
                                           (28, 35, rng.uniform(40, 70)))))
    if rng.random() < 0.88:  # cholecystectomy in ~12 % of older men [R]
        tilt = Rotation.from_euler("x", rng.uniform(20, 45), degrees=True).as_matrix()
        viscera.append(("gallbladder", OrientedEllipsoid((-50 + rng.normal(0, 6), -38 + rng.normal(0, 6),
                                                           right.center[2] - 0.62 * right.semi_mm[2]),
                                                          (rng.uniform(11, 17), rng.uniform(11, 17),
                                                           rng.uniform(30, 45)),
                                                          tuple(map(tuple, tilt)))))
    spleen_ml = _lognormal(rng, 200, 0.4, 80, 480)  # 80-480 ml, normal up to ~300 [R]
    spleen = _scaled(Ellipsoid((95, 45, 375), (32, 42, 55)), spleen_ml, rng, 8)
    stomach_ml = _lognormal(rng, 350, 0.5, 120, 900)  # empty to after a meal [R]
    stomach = _scaled(Ellipsoid((45, -30, 370), (45, 35, 45)), stomach_ml, rng, 10)
    viscera += [("spleen", spleen), ("stomach", stomach)]
    content = stomach.shrunk(4)
    viscera.append((_choice(rng, (("stomach_fluid", 0.6), ("stomach_contents", 0.4))), content))
    gas = rng.uniform(0, 0.5)
    c, b = content.center, content.semi_mm[1]
    viscera.append(("stomach_gas", Ellipsoid(c, content.semi_mm, clip_hi=(999, c[1] - b + 2 * b * gas, 999))))
    pancreas = np.array(an.PANCREAS_PATH, float) + rng.normal(0, 4, (len(an.PANCREAS_PATH), 3))
    viscera += [("pancreas", s) for s in tube(pancreas, float(rng.uniform(9, 13)))]
    duodenum = np.array([(-15, -35, 345), (-45, -20, 335), (-52, -5, 310), (-40, -8, 285), (-5, -20, 280),
                         (22, -14, 292)], float) + rng.normal(0, 3, (6, 3))
    viscera += [("duodenum", s) for s in tube(_smooth(duodenum), float(rng.uniform(9, 12)))]

    kidneys = {side: _kidney(rng, sign, side) for sign, side in ((1, "left"), (-1, "right"))}
    viscera += [(f"kidney_{side}", k) for side, k in kidneys.items()]

    bladder, bladder_ml = _bladder(rng)
    bladder_top = bladder.center[2] + bladder.semi_mm[2]
    factors: dict[str, float] = {}
    loops = []
    for k, (path, radius, filling) in enumerate(_loops(rng, int(rng.integers(6, an.N_LOOPS)), habitus.belly_mm,
                                                      max(40.0, bladder_top - 10)), start=1):
        label = f"small_bowel_loop_{k}"
        viscera += [(label, s) for s in tube(path, radius)] + _lumen("small_bowel", filling, path, radius, 2.5)
        factors[label] = _lognormal(rng, 1.0, 0.4, 0.3, 2.5)  # loops differ in uptake [REC]
        loops.append((label, path, radius))
    for k, (path, radius, filling) in enumerate(_colon(rng, habitus.belly_mm), start=1):
        label = f"colon_segment_{k}"
        viscera += [(label, s) for s in tube(path, radius)]
        viscera += _lumen("colon", filling, path, radius, 3.0)
        if filling == "stool":
            viscera += _bubbles(rng, path, radius - 3, "colon_gas")
        factors[label] = _lognormal(rng, 1.0, 0.4, 0.3, 2.5)
    rectum_r = float(rng.uniform(13, 22))
    viscera += [("rectum", s) for s in tube(an.RECTUM_PATH, rectum_r)]
    viscera += _lumen("colon", _choice(rng, COLON_FILLINGS), an.RECTUM_PATH, rectum_r, 3.0)
    viscera.append(("urinary_bladder", bladder))

    arms_up = bool(rng.random() < 0.7)  # arms up for most whole-body PET/CT [REC]
    implant_side = (("left", "right")[int(rng.integers(2))]) if rng.random() < 0.08 else None  # THR in older men [REC]
    parts = _arms(rng, arms_up, habitus) + _legs(habitus) + _head()
    if implant_side:
        parts += _implant(implant_side)
    liver_point = (right.center[0] - 10, right.center[1] - 10, right.center[2] + 5)
    summary = {"height_m": round(height, 3), "weight_kg": round(weight, 1), "bmi": round(bmi, 1),
               "subcutaneous_fat_front_mm": round(12 + front, 1), "belly_mm": round(habitus.belly_mm, 1),
               "scale_xy": [round(v, 3) for v in scale_xy], "bladder_ml_drawn": round(bladder_ml, 1),
               "spleen_ml_drawn": round(spleen_ml, 1), "stomach_ml_drawn": round(stomach_ml, 1),
               "arms": "up" if arms_up else "down", "hip_implant": implant_side,
               "small_bowel_loops": len(loops)}
    return Patient(height, weight, habitus, stretch, scale_xy, viscera, parts, kidneys, bladder, liver_point,
                   tuple(spleen.center), arms_up, implant_side, loops, factors, summary)


def ureter_path(patient: Patient, side: str, rng: np.random.Generator) -> np.ndarray:
    """Renal pelvis -> along the front of the psoas -> over the iliac vessels at the pelvic brim -> down the pelvic
    side wall -> into the back of the bladder base (N x 3 LPS mm, smoothed)."""
    sign = 1 if side == "left" else -1
    kidney = patient.kidneys[side]
    hilum = kidney_hilum(kidney)
    lower_pole = kidney.center[2] - kidney.semi_mm[2] * 0.8
    b = patient.bladder
    uvj = np.array(b.center) + (sign * 0.55 * b.semi_mm[0], 0.6 * b.semi_mm[1], -0.45 * b.semi_mm[2])
    way = [hilum, (sign * (abs(hilum[0]) - 6), 22, lower_pole - 10), (sign * 46, 10, 195),
           (sign * 41, 2, an.Z_CI_BIFURCATION), (sign * 36, 22, 95), (sign * 33, 30, 65), uvj]
    way = [np.asarray(way[0])] + [np.asarray(p, float) + rng.normal(0, 3, 3) for p in way[1:-1]] + [uvj]
    return _smooth(way, 3)
