"""Report: PNG + self-contained HTML, opened in headless Chromium."""

from __future__ import annotations

import base64
import re
import subprocess
import sys

import numpy as np
import SimpleITK as sitk
from helpers.images import findings_for, lesion_label_image
from helpers.tools import require_tool
from matplotlib import image as mpimg

from localize.export.report import write_report


def synthetic_study():
    """PET SUV (body 1, liver 5, lesions 8-18) and CT (water body in air) on LPS grids, plus labels."""
    labels = lesion_label_image()
    labels_zyx = sitk.GetArrayFromImage(labels)
    z, y, x = np.meshgrid(*[labels.GetOrigin()[i] + labels.GetSpacing()[i] * np.arange(labels.GetSize()[i])
                            for i in (2, 1, 0)], indexing="ij")
    body = (x / 70) ** 2 + (y / 55) ** 2 <= 1
    suv = np.where(body, 1.0, 0.0) + 4.0 * (((x + 40) / 25) ** 2 + ((y - 10) / 20) ** 2 + ((z - 45) / 12) ** 2 <= 1)
    for value in (1, 2, 3):
        suv[labels_zyx == value] = 20.0 - 4 * value
    pet = sitk.GetImageFromArray(suv.astype(np.float32))
    pet.CopyInformation(labels)
    ct_zyx = np.where(body, 30.0, -1000.0).astype(np.float32)
    ct = sitk.GetImageFromArray(ct_zyx)
    ct.CopyInformation(labels)
    findings = findings_for(labels)
    findings.study["patient_id"] = "EXP001"
    findings.staging = {"summary": "miTr0 miN1 miM1a (EI-L)", "mipsma_highest": 3, "mipsma_lowest": 2}
    findings.reference_regions = {"liver": {"suv_mean": 5.0}, "blood_pool": {"suv_mean": 1.6}}
    return findings, pet, ct


def test_png_and_html_are_written_and_self_contained(tmp_path):
    findings, pet, ct = synthetic_study()
    png_path, html_path = write_report(tmp_path / "out", findings, pet, ct)
    figure = mpimg.imread(png_path)
    assert figure.shape[0] > 600 and figure.shape[1] > 800 and figure[..., :3].std() > 0.05
    page = html_path.read_text()
    assert "http://" not in page and "https://" not in page and "<link" not in page and "<script" not in page
    uri = re.search(r'src="data:image/png;base64,([^"]+)"', page).group(1)
    assert base64.b64decode(uri) == png_path.read_bytes()
    lesion_table = page[page.index('<table id="lesions">'):]
    lesion_table = lesion_table[:lesion_table.index("</table>")]
    assert lesion_table.count("<tr>") == 1 + len(findings.lesions)
    assert "<td>19.00</td>" in lesion_table  # lesion 1's SUVmax
    assert "blood_pool" in page and "mipsma_highest" in page
    assert "miTr0 miN1 miM1a (EI-L)" in page


def test_pet_mr_crops_and_no_lesion_study(tmp_path):
    findings, pet, ct = synthetic_study()
    mr_to_pet = sitk.TranslationTransform(3, (5.0, -3.0, 2.0))
    with_mr = mpimg.imread(write_report(tmp_path / "mr", findings, pet, ct, mr=ct, mr_to_pet=mr_to_pet)[0])
    without_mr = mpimg.imread(write_report(tmp_path / "ct", findings, pet, ct)[0])
    assert with_mr.shape[0] >= without_mr.shape[0]  # six crops (two rows) instead of three
    findings.lesions = []
    _, html_path = write_report(tmp_path / "none", findings, pet, ct)
    assert "No lesion found." in html_path.read_text()


def test_page_renders_in_headless_chromium(tmp_path):
    chromium = require_tool("chromium")
    findings, pet, ct = synthetic_study()
    _, html_path = write_report(tmp_path / "out", findings, pet, ct)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}"]
    # the DOM after load: an image only has a non-zero natural width once it has decoded
    probe = html_path.with_name("probe.html")
    probe.write_text(html_path.read_text().replace(
        "</body>", "<script>window.onload=()=>{const i=document.getElementById('figure');"
        "document.body.setAttribute('data-img',i.complete+':'+i.naturalWidth+'x'+i.naturalHeight);"
        "document.body.setAttribute('data-rows',document.querySelectorAll('#lesions tr').length);}</script></body>"))
    dom = subprocess.run([chromium, *flags, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=90).stdout
    width, height = map(int, re.search(r'data-img="true:(\d+)x(\d+)"', dom).groups())
    png = mpimg.imread(html_path.with_name("report.png"))
    assert (height, width) == png.shape[:2]
    assert re.search(r'data-rows="(\d+)"', dom).group(1) == str(1 + len(findings.lesions))

    shot = tmp_path / "shot.png"
    subprocess.run([chromium, *flags, "--window-size=1280,1600", f"--screenshot={shot}", html_path.as_uri()],
                   capture_output=True, timeout=90)
    pixels = mpimg.imread(shot)
    assert pixels[..., :3].std() > 0.05  # the page painted more than a blank sheet


def test_long_title_fits_and_lesions_outside_the_mr_say_so(tmp_path):
    from localize.export.report import report_figure

    findings, pet, ct = synthetic_study()
    findings.staging["summary"] = "miTr miN2 (II-L EI-R OB-L) miM1a (CI-R RP OE) miM1b (oligo) miM1c (pul hep) " * 2
    top = max(findings.lesions, key=lambda lesion: lesion.target_lps_mm[2])
    # an MR slab that ends 6 mm below the highest lesion's target, above the others: that lesion is outside it
    k = ct.TransformPhysicalPointToIndex(tuple(np.array(top.target_lps_mm) - [0, 0, 6]))[2]
    mr = sitk.RegionOfInterest(ct, (ct.GetSize()[0], ct.GetSize()[1], k), (0, 0, 0))
    figure = report_figure(findings, pet, ct, mr=mr, mr_to_pet=sitk.Transform())
    figure.canvas.draw()
    title = figure._suptitle.get_window_extent()
    width, height = figure.canvas.get_width_height()
    assert 0 <= title.x0 and title.x1 <= width and title.y1 <= height
    assert all(title.y0 > ax.get_window_extent().y1 - 1 for ax in figure.axes[:2])
    notes = [ax for ax in figure.axes if any("outside the MR" in t.get_text() for t in ax.texts)]
    assert len(notes) == 1 and notes[0].get_title().startswith(f"#{top.id} ")


def test_importing_the_report_leaves_matplotlib_s_global_state_alone():
    """No pyplot (its figure registry and backend switch) for anyone who imports the library."""
    code = ("import sys, matplotlib; before = matplotlib.rcParams._get_backend_or_none(); "
            "import localize.export.report; "
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'; "
            "assert matplotlib.rcParams._get_backend_or_none() == before, 'backend switched'")
    subprocess.run([sys.executable, "-c", code], check=True)
