import json
import subprocess
import sys

import pytest
from helpers.contract import SCHEMA
from helpers.data import REPO

from localize import __version__
from localize.findings import Findings, Lesion, findings_schema, number_lesions, validate_findings


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "localize", *args], capture_output=True, text=True)


def test_version_and_help():
    out = run_cli("--version")
    assert out.returncode == 0 and __version__ in out.stdout
    out = run_cli("--help")
    assert out.returncode == 0 and "not a medical device" in out.stdout


def test_findings_schema_is_the_shipped_file():
    assert findings_schema() == json.loads(SCHEMA.read_text())


@pytest.mark.testdata
def test_shipped_schema_is_the_contract():
    """The package's copy equals the contract kept next to the repository (../shared/contract), where present."""
    contract = REPO.parent / "shared" / "contract" / "findings.schema.json"
    if not contract.is_file():
        pytest.skip("../shared/contract is not present")
    assert json.loads(SCHEMA.read_text()) == json.loads(contract.read_text())


def _lesion(label, suv_max):
    p = (1.0, -2.0, 3.5)
    return Lesion(label=label, suv_max=suv_max, suv_peak=suv_max * 0.8, suv_mean=suv_max / 2,
                  volume_ml=1.0, total_uptake=suv_max / 2, max_diameter_mm=12.0,
                  peak_lps_mm=p, centroid_lps_mm=p, target_lps_mm=p,
                  region="nodal", site="obturator", mitnm="miN")


def test_findings_serialise_to_the_contract_with_ids_by_suvmax():
    lesions = number_lesions([_lesion(1, 5.0), _lesion(2, 12.0)])
    f = Findings(study={"study_instance_uid": "1.2.3"}, frame_of_reference_uid="1.2.4",
                 tracer={"family": "psma"},
                 series={"pet": {"series_instance_uid": "1.2.5", "modality": "PT"}},
                 lesions=lesions)
    doc = json.loads(f.to_json())
    validate_findings(doc)
    assert [l["id"] for l in doc["lesions"]] == [1, 2]
    assert [l["suv_max"] for l in doc["lesions"]] == [12.0, 5.0]
    assert doc["lesions"][0]["target_mr_lps_mm"] is None


def test_every_subpackage_ships():
    """pyproject lists packages explicitly (two are mapped from top-level folders): none may be missed."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "localize").rglob("__init__.py")}
    assert found | {"localize.pipelines", "localize.sample_data"} == listed
