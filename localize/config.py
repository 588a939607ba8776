"""Pipeline configuration: named pipelines and user files, validated.

A pipeline is a small YAML document (parsed with ``yaml.safe_load``: no object
tags, no code) with these sections::

    name: psma-salvage-rt
    description: one line
    tracer: psma                # family the pipeline is meant for
    status: auto                # post_prostatectomy / post_radiotherapy / auto (from the anatomy)
    segmentation: {...}         # settings passed to localize.detection.segment (validated there)
    registration: {pelvis_only: true, refine: null, require_mr: false}  # require_mr: stop when the MR is unusable
    exports: [findings, csv, rtstruct, ...]

Named pipelines live in ``pipelines/`` (shipped as ``localize.pipelines``).
A user file may name a base pipeline with ``extends: NAME`` and override any
key. Unknown keys and bad values raise ``ConfigError`` naming the file and key.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from localize.errors import ConfigError
from localize.tracers import GENERIC_PIPELINE, PROFILES, USER_TRACERS

EXPORTS = ("findings", "csv", "rtstruct", "rtstruct_mr", "seg", "nifti", "report", "registration", "viewer")
#: The exports that are DICOM objects (what a DICOM node or STOW-RS can send on).
DICOM_EXPORTS = ("rtstruct", "rtstruct_mr", "seg", "registration")
TRACER_FAMILIES = USER_TRACERS
REFINE = (None, "affine", "bspline")
STATUSES = ("auto", "post_prostatectomy", "post_radiotherapy")


@dataclass
class PipelineConfig:
    """The effective configuration of one run (after defaults and overrides)."""

    name: str
    description: str = ""
    tracer: str | None = None
    status: str = "auto"  # treatment status: decides prostate bed (miTr) vs prostate (miT2+)
    segmentation: dict[str, Any] = field(default_factory=dict)
    registration: dict[str, Any] = field(
        default_factory=lambda: {"pelvis_only": False, "refine": None, "require_mr": False})
    exports: tuple[str, ...] = EXPORTS
    source: str = ""  # where it came from: a packaged name or a file path

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "tracer": self.tracer,
            "status": self.status,
            "segmentation": copy.deepcopy(self.segmentation),
            "registration": dict(self.registration),
            "exports": list(self.exports),
            "source": self.source,
        }


def pipeline_names() -> list[str]:
    """Names of the pipelines shipped with the package."""
    folder = resources.files("localize.pipelines")
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_pipeline(name_or_path: str | Path) -> PipelineConfig:
    """A named pipeline (see ``pipeline_names()``) or a YAML file, validated.

    The value is a file only when it ends in ``.yaml``/``.yml`` or holds a path
    separator; anything else is a packaged name, whatever the working folder holds.
    """
    text = str(name_or_path)
    if is_pipeline_file(text):
        path = Path(text)
        if not path.is_file():
            raise ConfigError("no such pipeline file", path)
        return _from_document(_read_yaml(path.read_bytes(), str(path)), str(path))
    if text not in pipeline_names():
        raise ConfigError(f"unknown pipeline {text!r}; known: {', '.join(pipeline_names())}"
                          " (a pipeline file must end in .yaml or .yml)")
    data = resources.files("localize.pipelines").joinpath(f"{text}.yaml").read_bytes()
    return _from_document(_read_yaml(data, text), text)


def is_pipeline_file(value: str) -> bool:
    """True when ``value`` names a YAML file rather than a packaged pipeline."""
    return value.endswith((".yaml", ".yml")) or "/" in value or "\\" in value


def default_pipeline(tracer_family: str) -> PipelineConfig:
    """The pipeline a tracer family gets when the user names none (its profile's; the generic one for
    names without a profile)."""
    profile = PROFILES.get(tracer_family)
    name = profile.default_pipeline if profile is not None else GENERIC_PIPELINE
    if name is None:
        raise ConfigError(
            f"no default pipeline for tracer family {tracer_family!r}; name one with --pipeline "
            f"(known: {', '.join(pipeline_names())})"
        )
    return load_pipeline(name)


def _read_yaml(data: bytes, source: str) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"not valid YAML{line}: {getattr(exc, 'problem', exc)}", source) from None
    if not isinstance(doc, dict):
        raise ConfigError("a pipeline must be a YAML mapping", source)
    return doc


_TOP_KEYS = {"name", "description", "tracer", "status", "segmentation", "registration", "exports", "extends"}
_REGISTRATION_KEYS = {"pelvis_only", "refine", "require_mr"}


def _from_document(doc: dict[str, Any], source: str) -> PipelineConfig:
    unknown = set(doc) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"unknown key(s) {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}", source)
    if "extends" in doc:
        base = load_pipeline(_expect(doc["extends"], str, "extends", source)).to_dict()
        doc = _merge(base, {k: v for k, v in doc.items() if k != "extends"})
    name = _expect(doc.get("name", Path(source).stem), str, "name", source)
    tracer = doc.get("tracer")
    if tracer is not None and tracer not in TRACER_FAMILIES:
        raise ConfigError(f"tracer must be one of {TRACER_FAMILIES}, not {tracer!r}", source)
    status = doc.get("status", "auto")
    if status not in STATUSES:
        raise ConfigError(f"status must be one of {STATUSES}, not {status!r}", source)
    segmentation = _expect(doc.get("segmentation", {}), dict, "segmentation", source)
    _check_segmentation(segmentation, source)
    registration = {"pelvis_only": False, "refine": None, "require_mr": False}
    registration.update(_expect(doc.get("registration", {}), dict, "registration", source))
    unknown = set(registration) - _REGISTRATION_KEYS
    if unknown:
        raise ConfigError(f"unknown registration key(s) {sorted(unknown)}", source)
    _expect(registration["pelvis_only"], bool, "registration.pelvis_only", source)
    _expect(registration["require_mr"], bool, "registration.require_mr", source)
    if registration["refine"] not in REFINE:
        raise ConfigError(f"registration.refine must be one of {REFINE}", source)
    exports = _expect(doc.get("exports", list(EXPORTS)), list, "exports", source)
    bad = [e for e in exports if e not in EXPORTS]
    if bad:
        raise ConfigError(f"unknown export(s) {bad}; allowed: {list(EXPORTS)}", source)
    return PipelineConfig(
        name=name,
        description=_expect(doc.get("description", ""), str, "description", source),
        tracer=tracer,
        status=status,
        segmentation=segmentation,
        registration=registration,
        exports=tuple(exports),
        source=source,
    )


def _check_segmentation(segmentation: dict[str, Any], source: str) -> None:
    """Validate segmentation overrides now, so a bad file fails before any image is read.

    ``preset`` names the tracer family whose preset to start from (default: the
    study's tracer); every other key is a ``localize.detection.segment.SegmentationSettings`` field.
    """
    from localize.detection.segment import PRESETS, settings_for

    overrides = dict(segmentation)
    preset = overrides.pop("preset", None)
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"segmentation.preset must be one of {sorted(PRESETS)}, not {preset!r}", source)
    try:
        settings_for(preset or next(iter(PRESETS)), overrides)
    except (ConfigError, TypeError, ValueError) as exc:
        reason = exc.reason if isinstance(exc, ConfigError) else str(exc)
        raise ConfigError(f"segmentation: {reason}", source) from None


def _expect(value: Any, kind: type, key: str, source: str) -> Any:
    if not isinstance(value, kind):
        raise ConfigError(f"{key} must be a {kind.__name__}, not {type(value).__name__}", source)
    return value


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge mappings; lists and scalars in ``override`` replace."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    out.pop("source", None)
    return out
