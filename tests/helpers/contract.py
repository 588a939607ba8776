"""findings.json against the JSON Schema the package ships (localize/schema/findings.schema.json)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

import localize
from localize.findings import validate_findings

SCHEMA = Path(localize.__file__).resolve().parent / "schema" / "findings.schema.json"


def check_contract(doc: dict) -> None:
    """``doc`` passes the package's own validation and, independently, jsonschema with the shipped schema."""
    validate_findings(doc)
    jsonschema.validate(doc, json.loads(SCHEMA.read_text()))
