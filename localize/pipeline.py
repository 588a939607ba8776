"""One study through every step: load, register, anatomy, segment, classify, export.

``run_study`` (``localize run``) indexes a folder and picks its series;
``run_manifest`` (a batch worker) gets them listed. Both end in ``run_inputs``,
the composition of the steps' plain functions with a pipeline configuration.
Nothing is written under the input; every output is written atomically; the
effective configuration, software versions and input checksums are written
beside the outputs (``provenance.json``).
"""

from __future__ import annotations

import hashlib
import platform
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from localize.atomic import atomic_write, write_json
from localize.config import PipelineConfig, default_pipeline, load_pipeline
from localize.errors import LocalizeError, StudyError
from localize.findings import (
    Findings,
    ParametersRecord,
    RegistrationRecord,
    SeriesRecord,
    SeriesRecords,
    StudyIdentity,
    TracerRecord,
    number_lesions,
)
from localize.load.opened import open_inputs
from localize.load.plan import StudyInputs

if TYPE_CHECKING:  # the steps' modules load on first use: ``import localize.pipeline`` stays quick
    import SimpleITK as sitk
    from pydicom import Dataset

    from localize.anatomy import Anatomy
    from localize.detection.segment import Segmentation
    from localize.load.pet import PetImage
    from localize.load.suv import SuvCalibration
    from localize.load.volume import Volume
    from localize.registration import Registration


def run_study(study_dir: str | Path, out_dir: str | Path, *, pipeline: str | Path | None = None,
              tracer: str = "auto", anatomy: str | Path | None = None, deidentify: str | None = None) -> Findings:
    """``localize run``: the one PET study under ``study_dir`` into ``out_dir``.

    ``deidentify``: a key; identifiers in findings.json, the CSV, the report
    and provenance.json become keyed pseudonyms (``localize.export.privacy``).

    ``anatomy``: optional imported anatomy on the study's CT frame (a folder of
    NIfTI masks named by class, or a multilabel NIfTI with its class names),
    e.g. TotalSegmentator output; it overrides the built-in CT anatomy.
    """
    from localize.load.index import index_folder
    from localize.load.plan import single_plan

    study_dir, out_dir = Path(study_dir).resolve(), Path(out_dir).resolve()
    if out_dir == study_dir or study_dir in out_dir.parents:
        raise StudyError("the output folder must not be inside the study folder", out_dir)
    if pipeline:
        load_pipeline(pipeline)  # a bad name or file fails before the folder is read
    manifest = single_plan(index_folder(study_dir)).manifest()
    return run_manifest(manifest, out_dir, pipeline=pipeline, tracer=tracer, root=str(study_dir), anatomy=anatomy,
                        deidentify=deidentify)


def run_manifest(manifest: dict[str, Any], out_dir: str | Path, *, pipeline: str | Path | None = None,
                 tracer: str = "auto", root: str = "", anatomy: str | Path | None = None,
                 deidentify: str | None = None) -> Findings:
    """Run the series listed in a manifest (see ``localize.load.plan.StudyPlan.manifest``)."""
    inputs = StudyInputs.from_manifest(manifest, root=root, anatomy=anatomy)
    return run_inputs(inputs, Path(out_dir), pipeline=pipeline or manifest.get("pipeline"), tracer=tracer,
                      deidentify=deidentify)


def run_inputs(inputs: StudyInputs, out_dir: Path, *, pipeline: str | Path | None = None,
               tracer: str = "auto", deidentify: str | None = None) -> Findings:
    """Every step of the pipeline on ``inputs``; returns the findings (also written to ``out_dir``).

    With a ``deidentify`` key the findings returned and written carry pseudonyms
    (DICOM exports for planning systems keep the identity they must match).
    """
    named = load_pipeline(pipeline) if pipeline else None  # a bad name or file fails before any image is read
    timings: dict[str, float] = {}
    clock = _Clock(timings)
    with clock("load"):
        study = open_inputs(inputs, tracer)
    pet, ct, mr = study.pet, study.ct, study.mr
    config = named or default_pipeline(study.tracer_family)
    result = analyse(pet, ct, mr, inputs.rtstruct, study.tracer_family, config, clock, anatomy_path=inputs.anatomy)
    findings = result.findings
    out_dir.mkdir(parents=True, exist_ok=True)
    with clock("export"):
        findings.outputs, findings.failed_exports = export_all(result, config.exports, out_dir)
    findings.warnings += [f"export {name} failed: {why}" for name, why in findings.failed_exports.items()]
    findings.outputs["findings"] = str(out_dir / "findings.json")
    findings.outputs["provenance"] = str(out_dir / "provenance.json")
    doc, provenance = findings.to_dict(), _provenance(config, inputs, timings)
    if deidentify:
        doc, provenance = _deidentify(findings, doc, provenance, deidentify,
                                      [v.headers[0] for v in (pet.volume, ct, mr) if v is not None])
    write_json(out_dir / "provenance.json", provenance)
    write_json(out_dir / "findings.json", doc)
    return findings


def _deidentify(findings: Findings, doc: dict, provenance: dict, key: str, headers: list) -> tuple[dict, dict]:
    """Pseudonymise the findings (object and document), provenance and the text exports in place."""
    from localize.export.privacy import identifiers, scrub, scrub_text

    mapping = identifiers(headers, key)
    doc, provenance = scrub(doc, mapping), scrub(provenance, mapping)
    for name in ("csv", "report"):
        if name in findings.outputs:
            path = Path(findings.outputs[name])
            text = scrub_text(path.read_text(), mapping)
            with atomic_write(path) as tmp:
                tmp.write_text(text)
    for name in ("study", "frame_of_reference_uid", "tracer", "series", "registration", "warnings"):
        setattr(findings, name, doc[name])
    return doc, provenance


@dataclass
class Analysis:
    """Everything the steps produced for one study (plain values; the exports read it).

    ``mr`` is set only with a ``registration`` that passed its check; ``ct_to_pet`` maps CT-frame
    points to PET points (None when they share a frame); ``anatomy`` is None for an analysis
    rebuilt from a reviewed output folder (``localize export``).
    """

    pet: PetImage
    ct: Volume | None
    mr: Volume | None
    registration: Registration | None
    ct_to_pet: sitk.Transform | None
    anatomy: Anatomy | None
    segmentation: Segmentation
    findings: Findings


def analyse(pet: PetImage, ct: Volume | None, mr: Volume | None, rtstruct_files: list[Path], family: str,
            config: PipelineConfig, clock: _Clock | None = None, *, anatomy_path: Path | None = None) -> Analysis:
    """Register, build anatomy, measure references, segment and classify one loaded study."""
    import SimpleITK as sitk

    from localize.anatomy import build_anatomy, read_label_map, read_mask_folder
    from localize.classify import classify_lesions, infer_status, stage
    from localize.detection.reference import reference_regions
    from localize.detection.segment import GENERIC_PRESET, preset_for, segment_lesions
    from localize.export.rtstruct import rtstruct_to_masks
    from localize.registration import check_pet_ct

    clock = clock or _Clock({})
    warnings = list(pet.volume.warnings) + list(pet.calibration.warnings)
    registration = attempted = frame = None
    ct_image = None  # the CT in the PET frame (HU)
    with clock("register"):
        if ct is not None:
            warnings += list(ct.warnings)
            frame = check_pet_ct(pet.image, ct.image, pet.volume.frame_of_reference_uid, ct.frame_of_reference_uid)
            warnings += list(frame.warnings)
            ct_image = ct.image if frame.same_frame_of_reference else sitk.Resample(
                ct.image, pet.image, frame.transform, sitk.sitkLinear, -1000.0, sitk.sitkFloat32)
        if mr is not None:
            warnings += list(mr.warnings)
            attempted, refused = _register_mr_checked(mr, ct_image if ct_image is not None else pet.image,
                                                      "CT" if ct is not None else "PT", config)
            if refused:
                warnings.append(refused)
            else:
                registration = attempted  # only a registration that passed its check gives MR coordinates
    with clock("anatomy"):
        imported = {}
        for path in rtstruct_files:
            if ct is None:
                warnings.append(f"{path}: RTSTRUCT ignored (no CT to place it on)")
                continue
            imported.update(rtstruct_to_masks(path, ct, grid=pet.image))
        label_map = label_names = None
        if anatomy_path is not None and anatomy_path.is_dir():
            imported.update(read_mask_folder(anatomy_path))
        elif anatomy_path is not None:
            sidecar = anatomy_path.with_name(anatomy_path.name.split(".")[0] + ".json")  # labels.nii.gz -> labels.json
            label_map, label_names = read_label_map(anatomy_path, sidecar if sidecar.is_file() else None)
        anatomy = build_anatomy(ct_image, pet.image, rtstruct_masks=imported or None, label_map=label_map,
                                label_names=label_names, pet_patterns=_pet_patterns(family, ct_image is not None))
        warnings += list(anatomy.warnings)
    segmentation_settings = dict(config.segmentation)
    preset = segmentation_settings.pop("preset", preset_for(family))
    if preset == GENERIC_PRESET and family != GENERIC_PRESET:
        warnings.append(f"no preset for tracer family {family!r}: the research-use generic preset is used")
    with clock("segment"):
        references = reference_regions(pet.image, anatomy, preset)
        segmentation = segment_lesions(pet.image, anatomy, tracer_family=preset, settings=segmentation_settings,
                                       references=references)
        warnings += list(segmentation.warnings)
        references = reference_regions(pet.image, anatomy, preset,
                                       exclude=sitk_array(segmentation.labels) > 0)
        warnings += [r.warning for r in references.values() if r.warning]
    with clock("classify"):
        status, evidence = infer_status(anatomy, sitk.GetArrayViewFromImage(pet.image))
        if config.status == "auto":
            warnings.append(evidence)
        else:  # the pipeline's status is used; the anatomy's evidence is kept beside it
            if status not in (config.status, "unknown"):
                warnings.append(f"treatment status {config.status} given by the pipeline {config.name!r} disagrees "
                                f"with the anatomy: {evidence}")
            status, evidence = config.status, f"given by the pipeline {config.name!r}; {evidence}"
        classified = classify_lesions(number_lesions(segmentation.lesions), anatomy, status=status,
                                      references=references, tracer_family=family, labels=segmentation.labels,
                                      ct=ct_image)
        lesions = classified.lesions
        warnings += classified.warnings
        if registration is not None:
            for lesion in lesions:
                x, y, z = registration.transform.TransformPoint(lesion.target_lps_mm)
                lesion.target_mr_lps_mm = (float(x), float(y), float(z))
    findings = Findings(
        study=_study_identity(pet.volume.headers[0]),
        frame_of_reference_uid=pet.volume.frame_of_reference_uid,
        tracer=_tracer_dict(pet.calibration, family),
        series=SeriesRecords(pet=_series_dict(pet.volume), ct=_series_dict(ct) if ct is not None else None,
                             mr=_series_dict(mr) if mr is not None else None),
        lesions=lesions,
        staging=stage(lesions, status=status) | {"status": status, "status_evidence": evidence},
        registration=None if mr is None else RegistrationRecord(  # mr_to_pet null: the registration itself failed
            mr_to_pet=attempted.to_dict() | {"used": registration is not None} if attempted is not None else None),
        reference_regions={name: r.to_dict() for name, r in references.items()},
        candidates=segmentation.candidates,
        parameters=ParametersRecord(segmentation=segmentation.settings.to_dict(), preset=preset,
                                    thresholds_suv=segmentation.thresholds),
        warnings=warnings,
    )
    ct_to_pet = None if frame is None or frame.same_frame_of_reference else frame.transform.GetInverse()
    return Analysis(pet, ct, mr, registration, ct_to_pet, anatomy, segmentation, findings)


def _register_mr_checked(mr: Volume, fixed: sitk.Image, fixed_modality: Literal["CT", "PT"],
                         config: PipelineConfig) -> tuple[Registration | None, str | None]:
    """(registration, reason the MR is not used or None): the MR registered to the PET/CT frame.

    A registration that fails, or that fails its quality check (``localize.registration``:
    body overlap, rotation, scale, metric), gives no MR coordinates; the run goes on with
    PET/CT alone and says why, unless the pipeline requires the MR (then ``StudyError``).
    """
    from localize.registration import register_mr

    options = {k: v for k, v in config.registration.items() if k != "require_mr"}
    registration = None
    try:
        registration = register_mr(mr.image, fixed, fixed_modality=fixed_modality, **options)
    except (LocalizeError, RuntimeError) as exc:  # RuntimeError: ITK's own
        text = exc.reason if isinstance(exc, LocalizeError) else str(exc)
        reason = "registration failed: " + " ".join(text.split())[:300]
    else:
        if registration.quality == "ok":
            return registration, None
        reason = "the registration failed its quality check: " + "; ".join(registration.reasons)
    message = f"MR not used, PET/CT alone ({mr.paths[0].parent}): {reason}"
    if config.registration.get("require_mr"):
        raise StudyError(f"the pipeline requires the MR, but {message}", mr.paths[0])
    return registration, message


def _pet_patterns(family: str, with_ct: bool) -> tuple[str, ...]:
    """Organs of physiological uptake to find on the PET alone (``localize.anatomy.pet_organs``) where
    no other source gave them.

    Without a CT: urine, kidneys and the liver (the PERCIST reference) for every tracer, brain and
    myocardium for FDG too. With one, the CT rules build the rest; urine and kidneys are still sought
    on the PET when the CT's are missing or failed their checks (left out, urine floods the pelvis
    with false lesions), and the FDG brain comes from the PET.
    """
    fdg = family == "fdg"
    if with_ct:
        return ("urinary_bladder", "kidneys") + (("brain",) if fdg else ())
    return ("urinary_bladder", "kidneys", "liver") + (("brain", "heart") if fdg else ())


def export_all(result: Analysis, exports: Collection[str], out_dir: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Write ``exports`` (a pipeline's ``exports``), each on its own: ({export: path}, {export: why it failed}).

    One export that fails (a bug, a grid it cannot take, a full disk) leaves the others; each is
    written under a temporary name and renamed (``localize.atomic``), so none is left half-written.
    """
    from localize.export.dicom_seg import write_seg
    from localize.export.labelmap import write_labelmap
    from localize.export.report import write_report
    from localize.export.rtstruct import write_rtstruct
    from localize.export.table import write_csv
    from localize.review.volumes import write_volumes

    f, labels = result.findings, result.segmentation.labels
    wanted = set(exports) | ({"nifti"} if "viewer" in exports else set())  # the page shows lesions.nii.gz
    mr_transform = result.registration.transform if result.registration is not None else None
    fixed = result.ct if result.ct is not None else result.pet.volume

    def registration(reg: Registration, mr: Volume) -> dict[str, Path]:
        from localize.registration import save_transform, write_spatial_registration

        return {"registration_tfm": save_transform(reg, out_dir / "mr_to_pet.tfm"),
                "registration": write_spatial_registration(reg, fixed.headers, mr.headers,
                                                           out_dir / "registration.dcm")}

    def rtstruct_mr(mr: Volume, mr_transform: sitk.Transform) -> dict[str, Path]:
        return {"rtstruct_mr": write_rtstruct(out_dir / "rtstruct_mr.dcm", f, labels, mr,
                                              transform=_inverse(mr_transform))}

    def report() -> dict[str, Path]:
        png, page = write_report(out_dir, f, result.pet.image, result.ct.image if result.ct is not None else None,
                                 mr=result.mr.image if result.mr is not None else None, mr_to_pet=mr_transform)
        return {"report_png": png, "report": page}

    # ``mr`` is set with every registration (``Analysis``)
    steps: dict[str, Callable[[], Mapping[str, Path | None]]] = {
        "csv": lambda: {"csv": write_csv(f, out_dir / "lesions.csv")},
        # on the CT for planning; without a CT, on the PET series itself
        "rtstruct": lambda: {"rtstruct": write_rtstruct(out_dir / "rtstruct_ct.dcm", f, labels, result.ct,
                                                        transform=result.ct_to_pet)} if result.ct is not None
        else {"rtstruct": write_rtstruct(out_dir / "rtstruct_pet.dcm", f, labels, result.pet.volume)},
        # only from a registration that passed its quality check
        "rtstruct_mr": lambda: rtstruct_mr(result.mr, mr_transform)
        if result.mr is not None and mr_transform is not None else {},
        "seg": lambda: {"seg": write_seg(out_dir / "seg_pet.dcm", f, labels, result.pet.volume)},
        "nifti": lambda: {"nifti": write_labelmap(out_dir / "lesions.nii.gz", f, labels)},
        "registration": lambda: registration(result.registration, result.mr)
        if result.registration is not None and result.mr is not None else {},
        "viewer": lambda: write_volumes(out_dir, result.pet.image, result.ct.image if result.ct is not None else None,
                                        result.mr.image if result.mr is not None else None,
                                        result.registration.matrix_mr_to_pet_lps if result.registration else None),
        "report": report,
    }
    outputs: dict[str, str] = {}
    failed: dict[str, str] = {}
    for name, step in steps.items():
        if name not in wanted:
            continue
        try:
            written = step()
        except Exception as exc:  # an export's failure is recorded, never the run's end  # noqa: BLE001
            text = exc.reason if isinstance(exc, LocalizeError) else f"{type(exc).__name__}: {exc}"
            failed[name] = " ".join(str(text).split())[:300]
            continue
        outputs.update({key: str(path) for key, path in written.items() if path is not None})
    return outputs, failed


class _Clock:
    """Times named steps into a dict (seconds)."""

    def __init__(self, timings: dict[str, float]):
        self.timings = timings

    def __call__(self, name: str):
        clock = self

        class _Step:
            def __enter__(self):
                self.start = time.perf_counter()

            def __exit__(self, *exc):
                clock.timings[name] = round(clock.timings.get(name, 0.0) + time.perf_counter() - self.start, 3)

        return _Step()


def _provenance(config: PipelineConfig, inputs: StudyInputs, timings: dict[str, float]) -> dict[str, Any]:
    """The effective configuration, software versions, input checksums and step timings."""
    packages = ["localize", "pydicom", "SimpleITK", "numpy", "scipy", "scikit-image", "nibabel", "highdicom"]
    return {
        "configuration": config.to_dict(),
        "software": {name: version(name) for name in packages} | {"python": platform.python_version()},
        "inputs": {role: [{"path": str(p), "sha256": _sha256(p)} for p in files]
                   for role, files in (("pet", inputs.pet), ("ct", inputs.ct), ("mr", inputs.mr),
                                       ("rtstruct", inputs.rtstruct))},
        "timings_s": timings,
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sitk_array(image):
    """A numpy view (z, y, x) of a SimpleITK image."""
    import SimpleITK as sitk

    return sitk.GetArrayViewFromImage(image)


def _study_identity(ds: Dataset) -> StudyIdentity:
    return {
        "study_instance_uid": str(ds.get("StudyInstanceUID", "")),
        "patient_id": str(ds.get("PatientID")) if ds.get("PatientID") is not None else None,
        "study_date": str(ds.get("StudyDate")) if ds.get("StudyDate") else None,
    }


def _series_dict(volume: Volume) -> SeriesRecord:
    ds = volume.headers[0]
    return {
        "series_instance_uid": str(ds.get("SeriesInstanceUID", "")),
        "modality": str(ds.get("Modality", "")),
        "description": str(ds.get("SeriesDescription")) if ds.get("SeriesDescription") else None,
        "frame_of_reference_uid": str(ds.get("FrameOfReferenceUID")) if ds.get("FrameOfReferenceUID") else None,
    }


def _tracer_dict(calibration: SuvCalibration, family: str) -> TracerRecord:
    from localize.load.tracer import contract_family

    info = calibration.tracer
    return {
        "family": contract_family(family),
        "family_detail": family,
        "agent": info.agent,
        "radiopharmaceutical": info.radiopharmaceutical,
        "radionuclide": info.radionuclide,
        "half_life_s": calibration.half_life_s,
        "injected_activity_bq": calibration.injected_activity_bq,
        "suv": {k: v for k, v in calibration.to_dict().items() if k not in ("factors", "reference_datetimes")},
    }


def _inverse(transform: sitk.Transform | None) -> sitk.Transform | None:
    """The inverse of a PET->MR resampling transform: MR points -> PET points (None stays None)."""
    return None if transform is None else transform.GetInverse()
