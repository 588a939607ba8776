"""Plain-text summaries of findings for the terminal."""

from __future__ import annotations

from localize.findings import Findings


def format_findings(findings: Findings) -> str:
    """A lesion table (id, region, site, SUVs, target LPS mm), staging, warnings and outputs."""
    lines = [f"tracer: {findings.tracer.get('agent') or findings.tracer['family']}    "
             f"lesions: {len(findings.lesions)}    staging: {findings.staging['summary']}"]
    if findings.lesions:
        lines.append(f"{'id':>3} {'region':8} {'site':16} {'SUVmax':>7} {'SUVpeak':>7} {'ml':>6}  target LPS mm")
        for lesion in findings.lesions:
            x, y, z = lesion.target_lps_mm
            flag = " (region uncertain)" if lesion.region_uncertain else ""
            lines.append(f"{lesion.id:>3} {lesion.region or '?':8} {lesion.site or '?':16} {lesion.suv_max:7.2f} "
                         f"{lesion.suv_peak:7.2f} {lesion.volume_ml:6.2f}  ({x:.1f}, {y:.1f}, {z:.1f}){flag}")
    lines += [f"warning: {w}" for w in findings.warnings]
    lines += [f"{name:>16}: {path}" for name, path in sorted(findings.outputs.items())]
    return "\n".join(lines)
