"""Rigid MR -> CT registration: localize vs elastix (itk-elastix), accuracy and time on phantom pairs.

Pairs: a pelvic T2 MR (320 x 320 x 40, oblique, frame offset ~1 m, 4-10 deg and
10-30 mm displacement) against the phantom's CT, whole-body (512 matrix) and
pelvic (256 matrix).  Target registration error is measured on the phantom's
landmarks inside the MR field of view (truth from the generator).  elastix runs
its default rigid map (Euler, Mattes MI, 4 levels) with centre-of-gravity
initialisation, in the same process, one after the other.

    python3 -m pip install -e '.[bench]'
    python -m benchmarks register -- [--threads N]
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from benchmarks.common import report
from localize.load.volume import load_series
from localize.registration import mr_to_pet_points, register_mr
from localize.registration.initialise import initial_alignment
from localize.registration.masks import body_mask, downsample
from localize.registration.mr import COARSE_SPACING_MM
from localize.registration.optimise import itk_threads
from localize.registration.result import linear_matrix
from localize.sample_data import StudySpec, make_study


def _to_itk(image: sitk.Image):
    import itk

    out = itk.GetImageFromArray(np.ascontiguousarray(sitk.GetArrayFromImage(image).astype(np.float32)))
    out.SetOrigin(image.GetOrigin())
    out.SetSpacing(image.GetSpacing())
    out.SetDirection(itk.matrix_from_array(np.array(image.GetDirection()).reshape(3, 3)))
    return out


def anatomical_start(mr: sitk.Image, ct: sitk.Image) -> np.ndarray:
    """localize's anatomical initial alignment (4x4 MR -> CT LPS), the start offered to elastix in one run."""
    fixed = downsample(ct, COARSE_SPACING_MM)
    moving = downsample(mr, COARSE_SPACING_MM)
    return initial_alignment(fixed, body_mask(fixed, "CT"), moving, body_mask(moving, "MR"))


def _moved(image: sitk.Image, matrix: np.ndarray) -> sitk.Image:
    """``image`` with its geometry carried by the 4x4 LPS ``matrix`` (voxels untouched)."""
    out = sitk.Image(image)
    out.SetOrigin((matrix[:3, :3] @ np.array(image.GetOrigin()) + matrix[:3, 3]).tolist())
    out.SetDirection((matrix[:3, :3] @ np.array(image.GetDirection()).reshape(3, 3)).ravel().tolist())
    return out


def _crop_to(ct: sitk.Image, mr: sitk.Image, margin_mm: float = 20.0) -> sitk.Image:
    """``ct`` cropped to the bounding box of ``mr``'s field of view (+ margin), as localize does."""
    corners_ijk = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)]) * (np.array(mr.GetSize()) - 1)
    corners = np.array([mr.TransformContinuousIndexToPhysicalPoint(c.tolist()) for c in corners_ijk.astype(float)])
    ijk = np.array([ct.TransformPhysicalPointToContinuousIndex(c.tolist()) for c in corners])
    margin = margin_mm / np.array(ct.GetSpacing())
    low = np.clip(np.floor(ijk.min(axis=0) - margin), 0, np.array(ct.GetSize()) - 1).astype(int)
    high = np.clip(np.ceil(ijk.max(axis=0) + margin) + 1, 1, np.array(ct.GetSize())).astype(int)
    return ct[int(low[0]):int(high[0]), int(low[1]):int(high[1]), int(low[2]):int(high[2])]


def elastix_rigid(mr: sitk.Image, ct: sitk.Image, threads: int, start: np.ndarray | None) -> np.ndarray:
    """elastix default rigid registration of ``mr`` to ``ct``; returns the 4x4 MR -> CT LPS matrix.

    ``start`` None: elastix's own centre-of-gravity initialisation; else the MR is
    first carried by ``start`` (4x4 MR -> CT), the CT cropped to its footprint,
    and elastix starts from there.
    """
    import itk

    parameters = itk.ParameterObject.New()
    rigid = parameters.GetDefaultParameterMap("rigid")
    if start is None:
        rigid["AutomaticTransformInitializationMethod"] = ["CenterOfGravity"]
    else:
        rigid["AutomaticTransformInitialization"] = ["false"]
        mr = _moved(mr, start)
        ct = _crop_to(ct, mr)
    parameters.AddParameterMap(rigid)
    with tempfile.TemporaryDirectory() as log_dir:
        _, result = itk.elastix_registration_method(
            _to_itk(ct), _to_itk(mr), parameter_object=parameters, log_to_console=False,
            output_directory=log_dir, number_of_threads=threads,
        )
    values = result.GetParameterMap(0)
    euler = sitk.Euler3DTransform()
    euler.SetCenter([float(v) for v in values["CenterOfRotationPoint"]])
    euler.SetComputeZYX(values.get("ComputeZYX", ("false",))[0] == "true")
    euler.SetParameters([float(v) for v in values["TransformParameters"]])
    moved_to_ct = np.linalg.inv(linear_matrix(euler))
    return moved_to_ct if start is None else moved_to_ct @ start


def _timed_elastix(mr: sitk.Image, ct: sitk.Image, threads: int, with_start: bool, points_ct, points_mr):
    """(TRE array or None on failure, seconds, note)."""
    begin = time.perf_counter()
    try:
        matrix = elastix_rigid(mr, ct, threads, anatomical_start(mr, ct) if with_start else None)
    except RuntimeError as exc:
        return None, time.perf_counter() - begin, str(exc).strip().splitlines()[-1][:60]
    return _tre(matrix, points_ct, points_mr), time.perf_counter() - begin, ""


def _tre(matrix_mr_to_ct: np.ndarray, points_ct: np.ndarray, points_mr: np.ndarray) -> np.ndarray:
    mapped = points_mr @ matrix_mr_to_ct[:3, :3].T + matrix_mr_to_ct[:3, 3]
    return np.linalg.norm(mapped - points_ct, axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    if importlib.util.find_spec("itk") is None:
        raise SystemExit("elastix, the baseline, is not installed: pip install -e '.[bench]' (itk-elastix)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for extent, matrix in (("whole_body", 512), ("pelvis", 256)):
            for seed in args.seeds:
                spec = StudySpec(extent=extent, ct_matrix=matrix, with_mr=True, mr_offset_mm=(1000.0, -400.0, 300.0),
                                 mr_oblique=True, seed=seed, lesions=())
                root = Path(tmp) / f"{extent}_{seed}"
                truth = make_study(root, spec)
                ct = load_series(sorted((root / truth.series_dirs["CT"]).glob("*"))).image
                mr = load_series(sorted((root / truth.series_dirs["MR"]).glob("*"))).image
                pairs = [(v["lps_mm"], v["mr_lps_mm"]) for v in truth.landmarks.values() if v["mr_lps_mm"]]
                points_ct = np.array([p for p, _ in pairs])
                points_mr = np.array([q for _, q in pairs])

                with itk_threads(args.threads):
                    start = time.perf_counter()
                    reg = register_mr(mr, ct, fixed_modality="CT")
                    ours_s = time.perf_counter() - start
                ours = np.linalg.norm(mr_to_pet_points(reg, points_mr) - points_ct, axis=1)

                name = f"{extent} {'x'.join(map(str, ct.GetSize()))}"
                rows.append((name, seed, len(points_ct), "localize", ours, ours_s, reg.quality))
                for with_start, label in ((False, "elastix (CoG init)"), (True, "elastix (our init)")):
                    tre, seconds, note = _timed_elastix(mr, ct, args.threads, with_start, points_ct, points_mr)
                    rows.append((name, seed, len(points_ct), label, tre, seconds, note or "-"))
                    rows[-1] += (seconds / ours_s,)

    print(f"{'pair':24} seed  n  {'method':20} TRE median / max (mm)  time (s)  note / time vs localize")
    for name, seed, n, method, tre, seconds, note, *ratio in rows:
        accuracy = f"{np.median(tre):7.2f} / {tre.max():7.2f}" if tre is not None else "   failed        "
        extra = f"{note}  x{ratio[0]:.2f}" if ratio else note
        print(f"{name:24} {seed:4d} {n:2d}  {method:20} {accuracy}     {seconds:6.1f}    {extra}")
    elastix = {(name, seed): (tre, seconds) for name, seed, _, method, tre, seconds, *_ in rows
               if method == "elastix (CoG init)"}
    for name, seed, _, method, tre, seconds, *_ in rows:
        if method == "localize":
            their_tre, their_s = elastix[(name, seed)]
            report(f"register {name} seed {seed} time", seconds, "s", baseline=their_s)
            report(f"register {name} seed {seed} TRE median", float(np.median(tre)), "mm",
                   baseline=float(np.median(their_tre)) if their_tre is not None else None)


if __name__ == "__main__":
    main()
