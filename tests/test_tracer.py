"""Tracer recognition from codes and free text (docs/suv.md#tracer-recognition)."""

from __future__ import annotations

import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from localize.load.tracer import TracerInfo, identify_tracer


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _pet(
    text: str | None = None,
    agent_code: Dataset | None = None,
    nuclide_code: Dataset | None = None,
    description: str | None = None,
    half_life_s: float | None = None,
) -> Dataset:
    ds = Dataset()
    ds.Modality = "PT"
    info = Dataset()
    if text is not None:
        info.Radiopharmaceutical = text
    if agent_code is not None:
        info.RadiopharmaceuticalCodeSequence = Sequence([agent_code])
    if nuclide_code is not None:
        info.RadionuclideCodeSequence = Sequence([nuclide_code])
    if half_life_s is not None:
        info.RadionuclideHalfLife = half_life_s
    ds.RadiopharmaceuticalInformationSequence = Sequence([info])
    if description is not None:
        ds.SeriesDescription = description
    return ds


F18_SRT = _code("C-111A1", "SRT", "^18^Fluorine")
F18_SCT = _code("77004003", "SCT", "^18^Fluorine")
GA68_SRT = _code("C-131A3", "SRT", "^68^Gallium")
GA68_SCT = _code("35337001", "SCT", "^68^Gallium")


@pytest.mark.parametrize(
    ("agent_code", "nuclide_code", "family", "agent", "nuclide"),
    [
        (_code("C118961", "NCIt", "PSMA-11 Ga^68^"), GA68_SRT, "psma_ga68", "PSMA-11", "Ga68"),
        (_code("C116352", "NCIt", "DCFPyL F^18^"), F18_SRT, "psma_f18_renal", "DCFPyL", "F18"),
        (_code("C116352", "NCIt", "Piflufolastat F^18^"), F18_SCT, "psma_f18_renal", "DCFPyL", "F18"),
        (_code("126758", "DCM", "PSMA-1007 F^18^"), F18_SCT, "psma_f18_hepatobiliary", "PSMA-1007", "F18"),
        (_code("126759", "DCM", "PSMA-617 Ga^68^"), GA68_SCT, "psma_ga68", "PSMA-617", "Ga68"),
        (_code("C-E026A", "SRT", "Fluciclovine F^18^"), F18_SRT, "fluciclovine", "fluciclovine", "F18"),
        (_code("457000009", "SCT", "Fluciclovine F^18^"), F18_SCT, "fluciclovine", "fluciclovine", "F18"),
        (_code("C-B1031", "SRT", "Fluorodeoxyglucose F^18^"), F18_SRT, "fdg", "FDG", "F18"),
        (_code("35321007", "SCT", "Fluorodeoxyglucose F^18^"), F18_SCT, "fdg", "FDG", "F18"),
        (_code("C-E0273", "SRT", "Fluorocholine F^18^"), F18_SRT, "unknown", "fluorocholine", "F18"),
    ],
)
def test_codes_of_both_eras(agent_code, nuclide_code, family, agent, nuclide):
    # The free text deliberately says something else: codes win over text.
    info = identify_tracer(_pet(text="Other", agent_code=agent_code, nuclide_code=nuclide_code))
    assert (info.family, info.agent, info.radionuclide, info.matched_by) == (family, agent, nuclide, "code")
    assert info.radiopharmaceutical == "Other"


@pytest.mark.parametrize(
    ("text", "family", "agent"),
    [
        ("Ga-68 PSMA-11", "psma_ga68", "PSMA-11"),
        ("Locametz", "psma_ga68", "PSMA-11"),
        ("68Ga-HBED-CC", "psma_ga68", "PSMA-11"),
        ("18F-DCFPyL", "psma_f18_renal", "DCFPyL"),
        ("PYLARIFY", "psma_f18_renal", "DCFPyL"),
        ("F-18 PyL", "psma_f18_renal", "DCFPyL"),
        ("rhPSMA-7.3", "psma_f18_renal", "rhPSMA-7.3"),
        ("Posluma", "psma_f18_renal", "rhPSMA-7.3"),
        ("18F-PSMA-1007", "psma_f18_hepatobiliary", "PSMA-1007"),
        ("PSMA 1007", "psma_f18_hepatobiliary", "PSMA-1007"),
        ("Fluciclovine", "fluciclovine", "fluciclovine"),
        ("anti-FACBC", "fluciclovine", "fluciclovine"),
        ("AXUMIN", "fluciclovine", "fluciclovine"),
        ("FDG -- fluorodeoxyglucose", "fdg", "FDG"),
        ("Fludeoxyglucose", "fdg", "FDG"),
        ("Ga68 PSMA", "psma_ga68", "PSMA"),
        ("F18 PSMA", "unknown", "PSMA"),  # renal or hepatobiliary cannot be told
        ("Water", "unknown", None),
    ],
)
def test_free_text(text, family, agent):
    info = identify_tracer(_pet(text=text))
    assert (info.family, info.agent) == (family, agent)
    assert info.matched_by == ("text" if agent else None)


def test_series_description_and_half_life_fallbacks():
    info = identify_tracer(_pet(description="WB PSMA AC", half_life_s=4070.4))
    assert (info.family, info.radionuclide, info.matched_by) == ("psma_ga68", "Ga68", "text")
    assert info.radiopharmaceutical is None


def test_contract_family_and_frozen():
    info = identify_tracer(_pet(text="18F-PSMA-1007"))
    assert info.contract_family == "psma"
    assert identify_tracer(Dataset()).contract_family == "unknown"
    with pytest.raises(AttributeError):
        info.family = "fdg"  # type: ignore[misc]
    assert isinstance(info, TracerInfo)


@given(
    st.one_of(st.none(), st.text(max_size=30), st.integers(), st.binary(max_size=20)),
    st.one_of(st.none(), st.text(max_size=12), st.binary(max_size=12)),
)
@settings(max_examples=80, deadline=None)
def test_odd_values_never_raise(radiopharmaceutical, code_value):
    ds = Dataset()
    info = Dataset()
    if radiopharmaceutical is not None:
        info.add_new(0x00180031, "LO", radiopharmaceutical)
    if code_value is not None:
        code = Dataset()
        code.add_new(0x00080100, "SH", code_value)
        info.RadiopharmaceuticalCodeSequence = Sequence([code])
    ds.RadiopharmaceuticalInformationSequence = Sequence([info])
    assert identify_tracer(ds).family in {"psma_ga68", "psma_f18_renal", "psma_f18_hepatobiliary",
                                          "fluciclovine", "fdg", "unknown"}


def test_not_a_sequence_never_raises():
    ds = Dataset()
    ds.add_new(0x00540016, "LO", "not a sequence")
    assert identify_tracer(ds).family == "unknown"


# Expected tracer of each real PET header in ../shared/testdata/pet.
REAL_HEADERS = {
    "fo-dicom/GH184.dcm": ("fdg", "text", "F18"),  # GE private code Y-X1743, text "FDG -- fluorodeoxyglucose"
    "fo-dicom/GH610.dcm": ("fdg", "code", "F18"),  # SNM3 C-B1031
    "orthanc-tests/2020-11-16-SalimKanounAnonymization.dcm": ("fdg", "code", "F18"),
    "orthanc-tests/2021-02-19-MalaterreCP246.dcm": ("unknown", None, "F18"),  # no agent; nuclide by half-life
    "orthanc-tests/Issue94.dcm": ("fdg", "code", "F18"),
    "orthanc-tests/PrivateMDNTags.dcm": ("fdg", "code", "F18"),
    # FLT study: only the nuclide is coded, no agent anywhere
    "tcia-acrin-flt-breast_via_suyashkumar-dicom/1.dcm": ("unknown", None, "F18"),
    "tcia-acrin-flt-breast_via_suyashkumar-dicom/2.dcm": ("unknown", None, "F18"),
    "dcmqi-sr-example/rwvm.dcm": ("unknown", None, None),  # a real-world value map, not a PET image
}


@pytest.mark.testdata
@pytest.mark.parametrize("name", sorted(REAL_HEADERS))
def test_real_headers(testdata, name):
    ds = pydicom.dcmread(testdata / "pet" / name, stop_before_pixels=True, force=True)  # one has no preamble
    info = identify_tracer(ds)
    assert (info.family, info.matched_by, info.radionuclide) == REAL_HEADERS[name]
