"""`localize convert`: one NIfTI + sidecar per image series, failures reported, input untouched."""

from __future__ import annotations

import json
import os
import stat

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner
from helpers.field import FIELD, field_series, image_dataset

from localize.cli import main
from localize.errors import ConfigError
from localize.export.convert import convert_folder
from localize.sample_data.dicom_writer import save_series


def snapshot(folder):
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def make_read_only(folder):
    for p in [folder, *folder.rglob("*")]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


@pytest.fixture
def archive(tmp_path):
    root = tmp_path / "in"
    ct = field_series([(-4.0, -5.0, 3.0 * k) for k in range(5)], series_uid="1.2.3.4.1",
                      SeriesDescription="CT/abdomen ../..", SeriesNumber=2)
    save_series(root / "a" / "b", ct, names=[f"z{k}" for k in (3, 0, 4, 1, 2)])
    echoes = [ds for echo in (1, 2) for ds in field_series([(0, 0, 2.0 * k) for k in range(3)], modality="MR",
                                                             series_uid="1.2.3.4.2", EchoNumbers=echo,
                                                             SeriesNumber=3, SeriesDescription="dual echo")]
    save_series(root / "mr", echoes)
    scout = image_dataset(np.ones((8, 8), np.int16), (0, 0, 0), series_uid="1.2.3.4.3", SeriesNumber=1)
    del scout.ImagePositionPatient, scout.ImageOrientationPatient
    save_series(root / "scout", [scout])
    (root / "notes.txt").write_text("not dicom")
    make_read_only(root)
    yield root
    for p in [root, *root.rglob("*")]:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)


def test_convert_folder_writes_each_series_and_reports_failures(archive, tmp_path):
    before = snapshot(archive)
    results = convert_folder(archive, tmp_path / "out")
    assert snapshot(archive) == before  # nothing written under the input
    by_uid = {}
    for r in results:
        by_uid.setdefault(r.series_instance_uid, []).append(r)

    # the CT: sorted although its files are named out of order; affine RAS = LPS with x, y negated
    (ct,) = by_uid["1.2.3.4.1"]
    assert ct.error is None and "/" not in ct.nifti.name and ".." not in ct.nifti.name
    assert ct.nifti.parent == tmp_path / "out" and ct.nifti.name.startswith("CT_2_CT_abdomen")
    nii = nib.load(str(ct.nifti))
    data = nii.get_fdata()
    for ijk in [(0, 0, 0), (9, 11, 4), (3, 7, 2)]:
        ras = nii.affine @ np.array([*ijk, 1.0])
        lps = np.array([-ras[0], -ras[1], ras[2]])
        assert data[ijk] == pytest.approx(lps @ FIELD, abs=0.06)
    sidecar = json.loads(ct.sidecar.read_text())
    assert sidecar["series_instance_uid"] == "1.2.3.4.1" and sidecar["units"] == "HU"
    assert len(sidecar["sop_instance_uids"]) == 5 and sidecar["geometry"]["size_ijk"] == [10, 12, 5]
    assert [p[2] for p in sidecar["geometry"]["slice_positions_lps_mm"]] == [0.0, 3.0, 6.0, 9.0, 12.0]

    # two echoes at the same positions: split into two parts, both written
    mr = by_uid["1.2.3.4.2"]
    assert len(mr) == 2 and all(r.error is None for r in mr)
    assert sorted(json.loads(r.sidecar.read_text())["part"] for r in mr) == [1, 2]

    # a scout without geometry: one line naming the file, the rest went on
    (scout,) = by_uid["1.2.3.4.3"]
    assert scout.nifti is None and "\n" not in scout.error and "not a volume image" in scout.error
    assert str(archive / "scout") in scout.error


def test_output_inside_input_refused(archive):
    with pytest.raises(ConfigError, match="inside the input"):
        convert_folder(archive, archive / "out")


def test_cli_convert(archive, tmp_path):
    result = CliRunner().invoke(main, ["convert", str(archive), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1  # the scout failed
    assert "3 series converted, 1 failed" in result.output
    assert len(list((tmp_path / "o").glob("*.nii.gz"))) == 3
    assert os.access(tmp_path / "o", os.W_OK)


def test_whole_number_images_are_written_as_int16_losslessly():
    import SimpleITK as sitk

    from localize.export.convert import whole_numbers_as_int16

    hu = sitk.GetImageFromArray(np.array([[[-1024.0, 0.0], [40.0, 3071.0]]], np.float32))
    compact = whole_numbers_as_int16(hu)
    assert compact.GetPixelID() == sitk.sitkInt16
    assert np.array_equal(sitk.GetArrayFromImage(compact), sitk.GetArrayFromImage(hu))
    for values in ([[[0.5, 1.0]]], [[[40000.0, 1.0]]]):  # a fraction, or out of the int16 range: kept as is
        image = sitk.GetImageFromArray(np.array(values, np.float32))
        assert whole_numbers_as_int16(image).GetPixelID() == sitk.sitkFloat32
