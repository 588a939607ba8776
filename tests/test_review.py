"""`localize review` / `localize export` on a phantom run, in a real headless chromium."""

from __future__ import annotations

import http.client
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pydicom
import pytest
from helpers.contract import check_contract
from helpers.tools import dciodvfy_errors, require_tool
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from localize.pipeline import run_study
from localize.review.server import ReviewServer

pytestmark = pytest.mark.slow

CHROME_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1400,1000",
                # WebGL2 without a GPU: chromium's software rasteriser, which headless needs asked for
                "--use-angle=swiftshader", "--enable-unsafe-swiftshader")
READY_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def reviewed(phantom, tmp_path_factory):
    """(out folder, running server): the research pipeline on the seed-3 pelvis phantom (8 lesions)."""
    root, _ = phantom(seed=3)
    out = tmp_path_factory.mktemp("review") / "out"
    run_study(root / "dicom", out, pipeline="research")
    server = ReviewServer(out, reviewer="test reader").start()
    yield out, server
    server.stop()


@pytest.fixture(scope="module")
def browser(reviewed, tmp_path_factory):
    out, server = reviewed
    options = webdriver.ChromeOptions()
    options.binary_location = require_tool("chromium")
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium')}")
    driver = webdriver.Chrome(service=Service(require_tool("chromedriver")), options=options)
    driver.set_script_timeout(READY_TIMEOUT_S)
    driver.get(server.url)
    driver.execute_async_script("""const done = arguments[arguments.length - 1];
        (function wait() { window.localizeReady ? done(true) : setTimeout(wait, 100); })();""")
    yield driver
    driver.quit()


def _automatic(out: Path) -> dict:
    kept = out / "automatic" / "findings.json"
    return json.loads((kept if kept.is_file() else out / "findings.json").read_text())


def _screen_position(driver, lesion: dict) -> tuple[int, int]:
    """CSS pixel of a lesion's target in the axial tile."""
    x, y = driver.execute_script("""const nv = window.localize.nv, p = arguments[0];
        const pos = nv.frac2canvasPosWithTile(nv.mm2frac([-p[0], -p[1], p[2]]), 0).pos;
        const rect = nv.canvas.getBoundingClientRect(), dpr = nv.uiData.dpr || 1;
        return [rect.left + pos[0] / dpr, rect.top + pos[1] / dpr];""", lesion["target_lps_mm"])
    return int(round(x)), int(round(y))


def _wait_status(driver, text: str) -> None:
    deadline = time.monotonic() + 60
    while text not in driver.find_element(By.ID, "status").text:
        assert time.monotonic() < deadline, driver.find_element(By.ID, "status").text
        time.sleep(0.1)


def test_page_shows_pet_over_ct(browser, reviewed, tmp_path):
    out, _ = reviewed
    lesion = _automatic(out)["lesions"][0]  # the page starts on lesion 1
    browser.find_element(By.ID, "show-labels").click()  # the PET alone over the CT
    browser.execute_async_script("requestAnimationFrame(() => requestAnimationFrame(arguments[0]))")
    png = browser.get_screenshot_as_png()
    (tmp_path / "page.png").write_bytes(png)
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=int)
    x, y = _screen_position(browser, lesion)
    # the lesion (14 mm, about 18 pixels here): its rim is red to orange, its core saturates to white
    patch = rgb[y - 10:y + 11, x - 10:x + 11].reshape(-1, 3)
    hot = (patch[:, 0] > 150) & (patch[:, 0] - patch[:, 2] > 60)
    assert hot.sum() >= 10, patch
    # the CT alone is grey: far from any lesion the pixels of the body are not coloured
    assert (np.abs(rgb[..., 0] - rgb[..., 2]) < 20).mean() > 0.5
    # hovering the lesion reads the SUV there
    canvas = browser.find_element(By.ID, "gl")
    box = canvas.rect
    ActionChains(browser).move_to_element_with_offset(
        canvas, x - int(box["x"] + box["width"] / 2), y - int(box["y"] + box["height"] / 2)).perform()
    text = browser.find_element(By.ID, "hover").text
    assert text.startswith("SUV ") and float(text.split()[1]) >= 0.3 * lesion["suv_max"], text


def test_table_click_moves_the_crosshair_to_the_lesion(browser, reviewed):
    out, _ = reviewed
    lesions = _automatic(out)["lesions"]
    index = min(3, len(lesions)) - 1
    browser.find_elements(By.CSS_SELECTOR, "tr.lesion td:first-child")[index].click()
    ras = browser.execute_script("const nv = window.localize.nv; return Array.from(nv.frac2mm(nv.scene.crosshairPos));")
    target = lesions[index]["target_lps_mm"]
    voxel_mm = 4.0
    assert abs(ras[2] - target[2]) <= voxel_mm
    assert np.allclose([-ras[0], -ras[1]], target[:2], atol=voxel_mm)
    assert "current" in browser.find_elements(By.CSS_SELECTOR, "tr.lesion")[index].get_attribute("class")
    browser.find_element(By.TAG_NAME, "body").send_keys("n")
    ras = browser.execute_script("const nv = window.localize.nv; return Array.from(nv.frac2mm(nv.scene.crosshairPos));")
    assert abs(ras[2] - lesions[(index + 1) % len(lesions)]["target_lps_mm"][2]) <= voxel_mm


def _row(browser, lesion_id: int):
    return browser.find_element(By.CSS_SELECTOR, f'tr.lesion[data-id="{lesion_id}"]')


def test_reject_then_export_drops_the_roi(browser, reviewed):
    out, _ = reviewed
    automatic = _automatic(out)
    before = pydicom.dcmread(out / "rtstruct_ct.dcm")
    rejected = automatic["lesions"][1]
    _row(browser, rejected["id"]).find_element(By.CSS_SELECTOR, "button.reject").click()
    _wait_status(browser, "decision saved")
    browser.find_element(By.ID, "export").click()
    _wait_status(browser, "export saved")
    after = pydicom.dcmread(out / "rtstruct_ct.dcm")
    assert after.SOPInstanceUID != before.SOPInstanceUID and after.SeriesInstanceUID != before.SeriesInstanceUID
    gtvs = [o for o in after.RTROIObservationsSequence if o.RTROIInterpretedType == "GTV"]
    assert len(gtvs) == len(automatic["lesions"]) - 1 == len(before.StructureSetROISequence) // 2 - 1
    points = [np.asarray(c.ContourSequence[0].ContourData, float) for c in after.ROIContourSequence
              if "ContourSequence" in c and c.ContourSequence[0].ContourGeometricType == "POINT"]
    assert min(np.linalg.norm(p - rejected["target_lps_mm"]) for p in points) > 1.0
    assert dciodvfy_errors(out / "rtstruct_ct.dcm") == []
    doc = json.loads((out / "findings.json").read_text())
    check_contract(doc)
    assert len(doc["lesions"]) == len(automatic["lesions"]) - 1
    assert doc["review"]["reviewer"] == "test reader" and any("rejected" in c for c in doc["review"]["changes"])
    assert json.loads((out / "automatic" / "findings.json").read_text()) == automatic
    seg = pydicom.dcmread(out / "seg_pet.dcm")
    assert len(seg.SegmentSequence) == len(doc["lesions"])


def test_relabel_changes_region_site_and_mitnm(browser, reviewed):
    out, _ = reviewed
    automatic = _automatic(out)
    lesion = next(les for les in automatic["lesions"] if les["region"] != "nodal")
    Select(_row(browser, lesion["id"]).find_element(By.CSS_SELECTOR, "select.site")).select_by_visible_text("obturator")
    _wait_status(browser, "relabel saved")
    browser.find_element(By.ID, "export").click()
    _wait_status(browser, "export saved")
    doc = json.loads((out / "findings.json").read_text())
    check_contract(doc)
    moved = min(doc["lesions"],
                key=lambda les: np.linalg.norm(np.subtract(les["target_lps_mm"], lesion["target_lps_mm"])))
    assert (moved["region"], moved["site"], moved["mitnm"]) == ("nodal", "obturator", "miN")
    assert (lesion["region"], lesion["site"]) != ("nodal", "obturator")
    assert doc["staging"]["summary"] != automatic["staging"]["summary"]
    assert "OB" in doc["staging"]["min"]
    assert json.loads((out / "automatic" / "findings.json").read_text()) == automatic  # a second export keeps it
    assert len(doc["lesions"]) == len(automatic["lesions"]) - 1  # the earlier rejection still holds


def _request(server: ReviewServer, path: str, method: str = "GET", body: bytes | None = None):
    address = urlsplit(server.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status, response.read()


def test_token_and_paths_are_enforced(reviewed):
    out, server = reviewed
    token_path = urlsplit(server.url).path
    assert _request(server, token_path + "out/findings.json")[0] == 200
    assert _request(server, "/t/wrong-token/out/findings.json")[0] == 403
    assert _request(server, "/out/findings.json")[0] == 403
    assert _request(server, token_path.replace(server.token, server.token[:-1]) + "out/findings.json")[0] == 403
    (out.parent / "secret.txt").write_text("not served")
    assert _request(server, token_path + "out/../secret.txt")[0] == 404
    assert _request(server, token_path + "out/%2e%2e/secret.txt")[0] == 404
    assert _request(server, token_path + "assets/../server.py")[0] == 404
    assert server.httpd.server_address[0] == "127.0.0.1"


def test_bad_folder_is_one_line_error(tmp_path):
    result = subprocess.run([sys.executable, "-m", "localize", "review", str(tmp_path), "--no-browser"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "findings.json" in lines[0]


def test_a_missed_lesion_added_at_its_hottest_point(phantom, tmp_path):
    root, _ = phantom(seed=3)
    truth = json.loads((root / "truth" / "truth.json").read_text())
    pipeline = tmp_path / "strict.yaml"
    pipeline.write_text("extends: research\nsegmentation: {detect_suv: 6.0, bone_suv: 6.0}\n")
    out = tmp_path / "out"
    found = run_study(root / "dicom", out, pipeline=pipeline)
    missed = [t for t in truth["lesions"] if 4.0 < t["suv_max"] < 6.0 and t["diameter_mm"] >= 8]
    assert missed and all(min(np.linalg.norm(np.subtract(les.target_lps_mm, t["center_lps_mm"]))
                              for les in found.lesions) > 10 for t in missed)
    server = ReviewServer(out).start()
    try:
        target = missed[0]
        status, body = _request(server, urlsplit(server.url).path + "api/add", "POST",
                                json.dumps({"point_lps_mm": target["center_lps_mm"]}).encode())
    finally:
        server.stop()
    assert status == 200, body
    added = json.loads(body)["added"][-1]
    assert np.linalg.norm(np.subtract(added["target_lps_mm"], target["center_lps_mm"])) <= 3.0
    assert added["id"] == len(found.lesions) + 1 and added["region"] == "unclassified"
    review = json.loads((out / "review.json").read_text())
    assert review["added"][0]["seed_lps_mm"] == pytest.approx(target["center_lps_mm"])


def test_the_view_s_temporary_folder_is_removed_when_the_kernel_exits(phantom, tmp_path):
    # each ``localize.view`` of an analysis writes its volumes to a temporary folder: none may pile up
    root, _ = phantom(seed=3)
    script = ("import localize, sys; from localize.review.notebook import write_view_folder; "
              f"folder = write_view_folder(localize.analyse_study(localize.open_study({str(root / 'dicom')!r}))); "
              "print(folder); sys.exit(0 if (folder / 'lesions.nii.gz').is_file() else 1)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={**os.environ, "TMPDIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    folder = Path(result.stdout.strip().splitlines()[-1])
    assert folder.parent == tmp_path and folder.name.startswith("localize-view-")
    assert not folder.exists() and list(tmp_path.iterdir()) == []


def test_view_serves_an_analysis_for_a_notebook(phantom):
    import localize

    root, _ = phantom(seed=3)
    analysis = localize.analyse_study(localize.open_study(root / "dicom"))
    frame = localize.view(analysis)
    address = urlsplit(frame.src)
    assert address.hostname == "127.0.0.1"
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    connection.request("GET", address.path + "out/findings.json")
    doc = json.loads(connection.getresponse().read())
    assert len(doc["lesions"]) == len(analysis.findings.lesions) > 0
    for name in ("volumes/pet_suv.nii.gz", "volumes/ct.nii.gz", "lesions.nii.gz"):
        connection.request("GET", address.path + "out/" + name)
        response = connection.getresponse()
        assert response.status == 200 and response.read()[:2] == b"\x1f\x8b", name


def test_review_volumes_keep_their_place():
    import SimpleITK as sitk

    from localize.review.volumes import display_grid, mr_in_pet_frame

    mr = sitk.Image(20, 30, 10, sitk.sitkFloat32)
    mr.SetSpacing((1.2, 1.1, 4.0))
    mr.SetOrigin((-10.0, 5.0, 30.0))
    angle = np.deg2rad(7.0)
    matrix = np.eye(4)
    matrix[:3, :3] = [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    matrix[:3, 3] = (3.0, -4.0, 12.5)
    moved = mr_in_pet_frame(mr, matrix)
    for index in ((0, 0, 0), (19, 29, 9), (5, 17, 3)):
        expected = matrix[:3, :3] @ mr.TransformIndexToPhysicalPoint(index) + matrix[:3, 3]
        assert np.allclose(moved.TransformIndexToPhysicalPoint(index), expected, atol=1e-6)
    ct = sitk.Image(512, 512, 4, sitk.sitkInt16)
    ct.SetSpacing((0.98, 0.98, 3.0))
    shown = display_grid(ct)
    assert shown.GetSize()[:2] == (265, 265) and shown.GetSpacing()[2] == 3.0
    first_corner = shown.TransformContinuousIndexToPhysicalPoint((-0.5, -0.5, -0.5))
    assert np.allclose(first_corner, ct.TransformContinuousIndexToPhysicalPoint((-0.5, -0.5, -0.5)))


def test_the_page_s_ct_is_no_finer_than_the_pet(reviewed):
    # the page fuses its layers on the CT's grid: written at the PET's resolution it draws in seconds
    import nibabel as nib

    out, _ = reviewed
    ct, pet = (nib.load(out / "volumes" / name) for name in ("ct.nii.gz", "pet_suv.nii.gz"))
    assert np.all(np.asarray(ct.header.get_zooms()[:3]) >= np.asarray(pet.header.get_zooms()[:3]).min() - 1e-3)
