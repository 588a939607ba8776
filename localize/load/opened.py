"""One study's series loaded: the PET as SUVbw, its CT and MR, and the tracer family that picks the preset.

``open_inputs`` is the one place where a run's files become images, for
``localize run``, a batch worker, ``localize.open_study`` and the reviewed export.
"""

from __future__ import annotations

from dataclasses import dataclass

from localize.errors import StudyError
from localize.load.pet import PetImage, load_pet
from localize.load.plan import StudyInputs, StudyPlan
from localize.load.volume import Volume, load_series


@dataclass
class OpenedStudy:
    """One PET study loaded; images are SimpleITK, LPS mm, numpy views z, y, x.

    ``pet.image`` is SUVbw (g/ml) and ``pet.calibration`` says how it was computed;
    ``ct.image`` is in HU on the CT's own grid (same frame of reference as the PET
    on a PET/CT); ``mr.image`` is in the MR's own frame until registered.
    ``tracer_family`` is the detailed family of ``localize.load.tracer`` (``psma_ga68``,
    ``psma_f18_renal``, ``psma_f18_hepatobiliary``, ``fluciclovine``, ``fdg``).
    ``plan`` records which series were chosen (and the MR's distance in days) when
    the study was planned from a folder.
    """

    inputs: StudyInputs
    pet: PetImage
    ct: Volume | None
    mr: Volume | None
    tracer_family: str
    plan: StudyPlan | None = None


def open_inputs(inputs: StudyInputs, tracer: str = "auto", *, plan: StudyPlan | None = None) -> OpenedStudy:
    """Load ``inputs``' PET as SUVbw, its CT and its MR; ``tracer`` as ``localize run --tracer``."""
    pet = load_pet(inputs.pet)
    return OpenedStudy(
        inputs=inputs,
        pet=pet,
        ct=load_series(inputs.ct) if inputs.ct else None,
        mr=load_series(inputs.mr) if inputs.mr else None,
        tracer_family=tracer_family(pet, tracer),
        plan=plan,
    )


def tracer_family(pet: PetImage, override: str) -> str:
    """The detailed tracer family (``localize.load.tracer.FAMILIES``) from the PET header, or the user's override.

    ``override``: "auto", "psma", "fluciclovine" or "fdg" (as ``localize run --tracer``), or a
    detailed family.
    """
    info = pet.calibration.tracer
    if override == "auto":
        if info.family == "unknown":
            raise StudyError("the PET tracer cannot be recognised from its header; give --tracer",
                             pet.volume.paths[0])
        return info.family
    if override == "psma":
        # The PSMA agent decides the preset; an unnamed one is treated as renal (68Ga / DCFPyL).
        return info.family if info.family.startswith("psma") else "psma_f18_renal"
    return override
