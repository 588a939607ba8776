"""The picture a planner checks: PET MIPs, fused crops per lesion, the lesion table.

One figure (``report.png``): coronal and sagittal PET maximum-intensity
projections (inverted grey, SUV) with numbered lesion markers coloured by
region, then per lesion an axial PET/CT crop (and PET/MR when an MR is given)
through its target, marked with a cross. One HTML page (``report.html``) shows
that figure as a base64 data URI with the study, staging, reference values
and the lesion table; styles are inline and nothing is fetched from the network.

Display conventions: coronal MIP seen from the front with the patient's right on
the viewer's left (radiological), sagittal MIP with anterior on the left, head up.
"""

from __future__ import annotations

import base64
import html
import io
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from matplotlib.figure import Figure

from localize.atomic import atomic_write
from localize.export.rtstruct import REGION_COLORS_RGB
from localize.export.table import lesion_table
from localize.findings import Findings, Lesion

CROP_HALF_WIDTH_MM = 40.0
CROP_PIXEL_MM = 1.0
MAX_CROPS = 24
CT_WINDOW_HU = (-160.0, 240.0)  # soft-tissue window (level 40, width 400)
TITLE_CHARS = 120  # a title line at 11 pt fits the 12-inch figure


def _color(region: str | None) -> tuple[float, float, float]:
    r, g, b = REGION_COLORS_RGB.get(region, REGION_COLORS_RGB[None])
    return r / 255, g / 255, b / 255


def _axis_aligned(image: sitk.Image) -> sitk.Image:
    """``image`` resampled (linear) onto an identity-direction LPS grid covering it, same spacing."""
    size = np.array(image.GetSize())
    corners = np.array([image.TransformContinuousIndexToPhysicalPoint([float(c) for c in corner])
                        for corner in np.array(np.meshgrid(*[[0, n - 1] for n in size])).reshape(3, -1).T])
    spacing = np.full(3, min(image.GetSpacing()))
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    grid = sitk.Image([int(v) for v in np.floor((hi - lo) / spacing) + 1], sitk.sitkFloat32)
    grid.SetSpacing(tuple(spacing))
    grid.SetOrigin(tuple(lo))
    return sitk.Resample(image, grid, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)


def _draw_mips(ax_coronal, ax_sagittal, pet_suv: sitk.Image, lesions: list[Lesion]) -> None:
    aligned = _axis_aligned(pet_suv)
    suv_zyx = sitk.GetArrayViewFromImage(aligned)
    (x0, y0, z0), spacing = aligned.GetOrigin(), aligned.GetSpacing()
    nx, ny, nz = aligned.GetSize()
    x1, y1, z1 = x0 + (nx - 1) * spacing[0], y0 + (ny - 1) * spacing[1], z0 + (nz - 1) * spacing[2]
    coronal, sagittal = suv_zyx.max(axis=1), suv_zyx.max(axis=2)  # (z, x), (z, y)
    vmax = max(5.0, float(np.percentile(coronal, 99.5)))
    for ax, mip, extent, title in ((ax_coronal, coronal, (x0, x1, z0, z1), "coronal MIP (R | L)"),
                                   (ax_sagittal, sagittal, (y0, y1, z0, z1), "sagittal MIP (A | P)")):
        ax.imshow(mip, cmap="gray_r", vmin=0.0, vmax=vmax, origin="lower", extent=extent, aspect="equal",
                  interpolation="bilinear")
        ax.set_title(f"{title}, SUV 0-{vmax:.0f}", fontsize=9)
        ax.set_axis_off()
    for lesion in lesions:
        x, y, z = lesion.target_lps_mm
        for ax, horizontal in ((ax_coronal, x), (ax_sagittal, y)):
            ax.plot(horizontal, z, "o", ms=11, mfc="none", mec=_color(lesion.region), mew=1.6)
            ax.annotate(str(lesion.id), (horizontal, z), xytext=(7, 4), textcoords="offset points", fontsize=8,
                        fontweight="bold", color=_color(lesion.region))


def _axial_grid(centre_lps_mm) -> sitk.Image:
    n = int(round(2 * CROP_HALF_WIDTH_MM / CROP_PIXEL_MM)) + 1
    grid = sitk.Image((n, n, 1), sitk.sitkFloat32)
    grid.SetSpacing((CROP_PIXEL_MM, CROP_PIXEL_MM, 1.0))
    cx, cy, cz = centre_lps_mm
    grid.SetOrigin((cx - CROP_HALF_WIDTH_MM, cy - CROP_HALF_WIDTH_MM, cz))
    return grid


def _draw_crop(ax, anatomy: sitk.Image, pet_suv: sitk.Image, centre_lps_mm, pet_transform: sitk.Transform | None,
               window: tuple[float, float] | None, suv_max: float, title: str, color) -> None:
    """Axial crop around ``centre_lps_mm`` (frame of ``anatomy``), PET fused on top; a cross on the centre."""
    grid = _axial_grid(centre_lps_mm)
    background = sitk.GetArrayFromImage(sitk.Resample(anatomy, grid, sitk.Transform(), sitk.sitkLinear,
                                                      -1000.0 if window else 0.0, sitk.sitkFloat32))[0]
    suv = sitk.GetArrayFromImage(sitk.Resample(pet_suv, grid, pet_transform or sitk.Transform(), sitk.sitkLinear,
                                               0.0, sitk.sitkFloat32))[0]
    if window is None:  # MR: robust intensity window
        window = tuple(np.percentile(background, [1, 99.5])) if background.any() else (0.0, 1.0)
    half = CROP_HALF_WIDTH_MM
    extent = (-half, half, half, -half)  # x right = patient left, y down = posterior (axial, from the feet)
    ax.imshow(background, cmap="gray", vmin=window[0], vmax=window[1], extent=extent)
    shown = np.ma.masked_less(suv, 0.25 * suv_max)
    ax.imshow(shown, cmap="hot", vmin=0.0, vmax=suv_max, alpha=0.55, extent=extent)
    ax.plot([-half, -4], [0, 0], [4, half], [0, 0], color="#00e5ff", lw=0.9)
    ax.plot([0, 0], [-half, -4], [0, 0], [4, half], color="#00e5ff", lw=0.9)
    ax.set_title(title, fontsize=8, color=color, fontweight="bold")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(color)
        spine.set_linewidth(2)


def inside_image(image: sitk.Image, point_lps_mm) -> bool:
    """True when an LPS mm point lies within the voxels of ``image`` (half a voxel beyond the centres)."""
    index = np.asarray(image.TransformPhysicalPointToContinuousIndex([float(v) for v in point_lps_mm]))
    return bool(np.all(index >= -0.5) and np.all(index <= np.asarray(image.GetSize()) - 0.5))


def _draw_outside(ax, title: str, color) -> None:
    """A panel saying the lesion lies outside the MR's field of view (instead of a black crop)."""
    ax.set_facecolor("#f3f3f3")
    ax.text(0.5, 0.5, "outside the MR\nfield of view", ha="center", va="center", fontsize=9, color="#444",
            transform=ax.transAxes)
    ax.set_title(title, fontsize=8, color=color, fontweight="bold")
    ax.set_xticks([])
    ax.set_yticks([])


def _crop_panels(findings: Findings, pet_suv, ct, mr, mr_to_pet) -> list[dict[str, Any]]:
    panels = []
    for lesion in sorted(findings.lesions, key=lambda x: x.id)[:MAX_CROPS]:
        label = f"#{lesion.id} {lesion.region or ''} {lesion.site or ''}".strip()
        if ct is not None:
            panels.append(dict(anatomy=ct, pet_suv=pet_suv, centre_lps_mm=lesion.target_lps_mm, pet_transform=None,
                               window=CT_WINDOW_HU, suv_max=lesion.suv_max, title=f"{label} PET/CT",
                               color=_color(lesion.region)))
        if mr is not None and mr_to_pet is not None:
            centre = lesion.target_mr_lps_mm or mr_to_pet.GetInverse().TransformPoint(lesion.target_lps_mm)
            if not inside_image(mr, centre):
                panels.append(dict(title=f"{label} PET/MR", color=_color(lesion.region)))
                continue
            panels.append(dict(anatomy=mr, pet_suv=pet_suv, centre_lps_mm=centre, pet_transform=mr_to_pet,
                               window=None, suv_max=lesion.suv_max, title=f"{label} PET/MR",
                               color=_color(lesion.region)))
    return panels


def report_figure(findings: Findings, pet_suv: sitk.Image, ct: sitk.Image | None = None, *,
                  mr: sitk.Image | None = None, mr_to_pet: sitk.Transform | None = None) -> Figure:
    """The report figure: MIPs on top, fused axial crops per lesion below (images LPS, SUV, HU).

    ``mr_to_pet`` maps MR-frame LPS points to PET-frame points (resampling convention).
    """
    lesions = sorted(findings.lesions, key=lambda x: x.id)
    panels = _crop_panels(findings, pet_suv, ct, mr, mr_to_pet)
    columns = 4
    crop_rows = -(-len(panels) // columns)
    figure = Figure(figsize=(12, 7.5 + 3.0 * crop_rows), dpi=80)  # no pyplot: no global backend, no figure registry
    grid = figure.add_gridspec(1 + crop_rows, columns, height_ratios=[7.5] + [3.0] * crop_rows)
    _draw_mips(figure.add_subplot(grid[0, :2]), figure.add_subplot(grid[0, 2:]), pet_suv, lesions)
    for index, panel in enumerate(panels):
        ax = figure.add_subplot(grid[1 + index // columns, index % columns])
        if "anatomy" in panel:
            _draw_crop(ax, **panel)
        else:
            _draw_outside(ax, **panel)
    tracer = findings.tracer.get("family") or ""
    summary = findings.staging.get("summary", "")
    title = textwrap.wrap(f"{findings.study.get('patient_id', '')}  {tracer.upper()} PET  |  "
                          f"{len(lesions)} lesion(s)  |  {summary}", width=TITLE_CHARS)
    figure.suptitle("\n".join(title), fontsize=11)
    # room for every title line (11 pt type, 1.4 line spacing) above the panels
    title_in = (len(title) * 11 * 1.4 + 8) / 72
    figure.tight_layout(rect=(0, 0, 1, 1 - title_in / figure.get_figheight()))
    return figure


def _png_bytes(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#1b1b1b;max-width:1200px}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:22px 0 6px} .meta{color:#555;font-size:13px}
.staging{font-size:18px;font-weight:600;padding:8px 12px;background:#f3f5f8;border-left:4px solid #345;\
display:inline-block}
table{border-collapse:collapse;font-size:13px} th,td{border:1px solid #ccd;padding:3px 8px;text-align:right}
th{background:#eef1f5} td.t{text-align:left} \
.sw{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:5px;vertical-align:-1px}
img{max-width:100%;border:1px solid #ddd} .note{color:#8a5a00;font-size:13px}
"""

TABLE_COLUMNS = ("id", "region", "site", "mitnm", "suv_max", "suv_peak", "suv_mean", "volume_ml", "mipsma",
                 "target_lps_mm_x", "target_lps_mm_y", "target_lps_mm_z")


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "&ndash;"
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) < 1000 else f"{value:.1f}"
    return html.escape(str(value))


def _lesion_rows(findings: Findings) -> str:
    table = lesion_table(findings)
    head = "".join(f"<th>{html.escape(c.replace('target_lps_mm_', 'target '))}</th>" for c in TABLE_COLUMNS)
    rows = []
    for _, row in table.iterrows():
        rgb = REGION_COLORS_RGB.get(row["region"], REGION_COLORS_RGB[None])
        cells = []
        for column in TABLE_COLUMNS:
            text = _cell(row[column])
            if column == "region":
                text = f'<span class="sw" style="background:rgb{rgb}"></span>{text}'
            cells.append(f'<td class="t">{text}</td>' if column in ("region", "site", "mitnm") else f"<td>{text}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table id="lesions"><tr>{head}</tr>{"".join(rows)}</table>'


def _key_values(values: dict[str, Any]) -> str:
    def text(value: Any) -> str:
        if not isinstance(value, dict):
            return _cell(value)
        return html.escape(", ".join(f"{a}: {_cell(b)}" for a, b in value.items()))

    rows = "".join(f'<tr><td class="t">{html.escape(str(k))}</td><td class="t">{text(v)}</td></tr>'
                   for k, v in values.items())
    return f"<table>{rows}</table>" if rows else "<p class='meta'>none recorded</p>"


def report_html(findings: Findings, png: bytes) -> str:
    """The self-contained page: figure as a data URI, inline CSS, no external resource."""
    study = findings.study
    staging = findings.staging
    image = base64.b64encode(png).decode("ascii")
    lesions = _lesion_rows(findings) if findings.lesions else "<p>No lesion found.</p>"
    extra = ("" if len(findings.lesions) <= MAX_CROPS
             else f"<p class='note'>Crops shown for the first {MAX_CROPS} lesions.</p>")
    warnings = "".join(f"<li>{html.escape(w)}</li>" for w in findings.warnings)
    staging_rest = {k: v for k, v in staging.items() if k != "summary"}
    patient = html.escape(str(study.get('patient_id', '')))
    tracer = html.escape(str(findings.tracer.get('radiopharmaceutical') or findings.tracer.get('family') or ''))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>localize report {patient}</title>
<style>{STYLE}</style></head><body>
<h1>PET lesion localization</h1>
<p class="meta">Patient {patient} &middot; study {html.escape(str(study.get('study_date', '')))}
&middot; tracer {tracer}
&middot; frame of reference {html.escape(findings.frame_of_reference_uid)} &middot; coordinates LPS mm</p>
<div class="staging" id="staging">{html.escape(str(staging.get('summary', '')))}</div>
{_key_values(staging_rest) if staging_rest else ''}
<h2>Images</h2>
<img id="figure" alt="PET MIPs and fused crops" src="data:image/png;base64,{image}">
{extra}
<h2>Lesions</h2>
{lesions}
<h2>Reference regions</h2>
{_key_values(findings.reference_regions)}
{f'<h2>Warnings</h2><ul class="note">{warnings}</ul>' if warnings else ''}
<p class="meta">Research software, not a medical device. \
Targets are uptake-weighted centroids; a planner confirms every structure.</p>
</body></html>
"""


def write_report(out_dir: str | Path, findings: Findings, pet_suv: sitk.Image, ct: sitk.Image | None = None, *,
                 mr: sitk.Image | None = None, mr_to_pet: sitk.Transform | None = None) -> tuple[Path, Path]:
    """Write ``report.png`` and ``report.html`` into ``out_dir`` (atomically); returns both paths."""
    out_dir = Path(out_dir)
    png = _png_bytes(report_figure(findings, pet_suv, ct, mr=mr, mr_to_pet=mr_to_pet))
    png_path, html_path = out_dir / "report.png", out_dir / "report.html"
    with atomic_write(png_path) as tmp:
        tmp.write_bytes(png)
    with atomic_write(html_path) as tmp:
        tmp.write_text(report_html(findings, png), encoding="utf-8")
    return png_path, html_path
