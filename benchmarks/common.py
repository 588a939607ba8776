"""The one line format every benchmark prints its figures in."""

from __future__ import annotations


def report(name: str, value: float, unit: str, target: float | None = None, baseline: float | None = None,
           *, higher_is_better: bool = False) -> str:
    """Print and return ``RESULT <name>: <value> <unit> | target <= <t> (met|MISSED) | baseline <b>, ratio <r>``.

    ``target`` is the figure the project asks for (a ceiling, or a floor with ``higher_is_better``);
    ``baseline`` is the same figure for the plain reference the benchmark compares against,
    in the same unit, and the ratio is value / baseline.
    """
    parts = [f"RESULT {name}: {value:.4g} {unit}"]
    if target is None:
        parts.append("target none")
    else:
        met = value >= target if higher_is_better else value <= target
        parts.append(f"target {'>=' if higher_is_better else '<='} {target:.4g} {unit} ({'met' if met else 'MISSED'})")
    if baseline is None:
        parts.append("baseline none")
    else:
        ratio = value / baseline if baseline else float("inf")
        parts.append(f"baseline {baseline:.4g} {unit}, ratio {ratio:.2f}")
    line = " | ".join(parts)
    print(line, flush=True)
    return line
