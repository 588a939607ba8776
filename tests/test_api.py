"""The public API: names, lazy import, doctests, open_study / analyse_study, and the CLI reference in docs/."""

from __future__ import annotations

import doctest
import importlib
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers.data import tree_digest

import localize
from localize.errors import DicomReadError, LocalizeError, StudyError

DOCS = Path(__file__).resolve().parents[1] / "docs"
HEAVY = ("numpy", "SimpleITK", "pydicom", "pandas", "matplotlib", "scipy", "skimage", "highdicom")


def test_import_localize_loads_no_heavy_library():
    code = f"import sys, localize; print([m for m in {HEAVY!r} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_every_public_name_resolves_to_its_module_object():
    assert len(localize.__all__) == len(set(localize.__all__))
    for name in localize.__all__:
        value = getattr(localize, name)
        if name in localize._LAZY:
            assert value is getattr(importlib.import_module(localize._LAZY[name]), name)
    assert set(localize.__all__) <= set(dir(localize))
    with pytest.raises(AttributeError):
        localize.no_such_step  # noqa: B018


def test_the_steps_a_notebook_needs_are_public():
    steps = {"index_folder", "load_series", "load_pet", "register_mr", "build_anatomy", "reference_regions",
             "segment_lesions", "classify_lesions", "stage", "lesion_table", "write_rtstruct", "write_seg",
             "write_labelmap", "write_report", "run_study", "run_batch", "Findings", "Lesion", "LocalizeError",
             "open_study"}
    assert steps <= set(localize.__all__)


@pytest.mark.parametrize("module", ["localize", "localize.api", "localize.export.nifti"])
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    if module != "localize.export.nifti":
        assert result.attempted > 0


@pytest.mark.slow
def test_open_study_picks_and_loads_pet_ct_and_mr(phantom):
    root, truth = phantom(with_mr=True, seed=5)
    before = tree_digest(root / "dicom")
    study = localize.open_study(root / "dicom")
    assert study.tracer_family == "psma_f18_renal"  # StudySpec default tracer: DCFPyL
    assert study.plan.mr_days_apart == 11.0  # phantom PET on 2024-03-15, MR on 2024-03-04
    # PET grid of the phantom: 500 mm field of view in 4 mm voxels, pelvis z from -110 to 200 mm
    assert study.pet.image.GetSpacing() == pytest.approx((4.0, 4.0, 4.0))
    assert study.pet.image.GetSize()[:2] == (125, 125)
    assert study.ct.image.GetSize()[:2] == (256, 256)
    assert str(study.pet.volume.headers[0].FrameOfReferenceUID) == str(study.ct.headers[0].FrameOfReferenceUID)
    assert str(study.mr.headers[0].FrameOfReferenceUID) != str(study.ct.headers[0].FrameOfReferenceUID)
    # SUV at the hottest lesion's centre: the noise-free truth within noise and partial volume
    hottest = max(truth.lesions, key=lambda les: les.suv_max)
    index = study.pet.image.TransformPhysicalPointToIndex(hottest.center_lps_mm)
    assert study.pet.image[index] == pytest.approx(hottest.suv_max, rel=0.25)
    assert tree_digest(root / "dicom") == before


@pytest.mark.slow
def test_open_study_tracer_override(phantom):
    root, _ = phantom()
    assert localize.open_study(root / "dicom", tracer="fluciclovine").tracer_family == "fluciclovine"


def test_open_study_bad_folders_raise_one_line_errors(tmp_path):
    with pytest.raises(DicomReadError) as missing:
        localize.open_study(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StudyError) as empty:
        localize.open_study(tmp_path / "empty")
    for error in (missing.value, empty.value):
        assert isinstance(error, LocalizeError) and "\n" not in str(error) and str(tmp_path) in str(error)


@pytest.mark.slow
def test_analyse_study_finds_the_phantom_lesions_and_writes_nothing(phantom, tmp_path, monkeypatch):
    root, truth = phantom()
    monkeypatch.chdir(tmp_path)
    analysis = localize.analyse_study(localize.open_study(root / "dicom"))
    assert list(tmp_path.iterdir()) == []
    findings = analysis.findings
    localize.validate_findings(findings.to_dict())
    assert [les.id for les in findings.lesions] == list(range(1, len(findings.lesions) + 1))
    big = [t for t in truth.lesions if t.diameter_mm >= 10 and t.suv_max >= 5]
    assert big
    for t in big:
        distance = min(np.linalg.norm(np.subtract(les.target_lps_mm, t.center_lps_mm)) for les in findings.lesions)
        assert distance <= 4.0, t.name  # about one PET voxel
    table = localize.lesion_table(findings)
    assert table["suv_max"].tolist() == sorted(table["suv_max"], reverse=True)


def _sections(text: str) -> dict[str, str]:
    parts = re.split(r"^## `localize (\w+)`$", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2]))


def test_cli_reference_lists_every_command_and_option():
    from localize.cli import main

    sections = _sections((DOCS / "cli.md").read_text())
    assert set(sections) == set(main.commands)
    for name, command in main.commands.items():
        for param in command.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--"):
                    assert opt in sections[name], f"docs/cli.md: localize {name} lacks {opt}"
        assert command.help.splitlines()[0].split(";")[0] in " ".join(sections[name].split())


def test_docs_link_to_files_that_exist():
    readme = DOCS.parent / "README.md"
    for page in [readme, *DOCS.glob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"
