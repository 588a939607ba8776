"""Shared fixtures: the third-party test data folder and phantom studies."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The tests run against the installed package, editable or not: `python -m pytest` puts the working
# folder first on sys.path, where `localize/` lacks the `localize.pipelines` and `localize.sample_data`
# that an install maps in from the repository's top-level folders. The repository goes last instead, so
# `benchmarks` (which the crash-safety tests share) imports and `localize` still comes from the install.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO] + [str(REPO)]

from helpers.data import SHARED_TESTDATA  # noqa: E402

from benchmarks.kill_and_resume import build_small_archive  # noqa: E402


@pytest.fixture(scope="session")
def testdata() -> Path:
    """../shared/testdata (real third-party DICOM), read in place; skips where absent."""
    if not SHARED_TESTDATA.is_dir():
        pytest.skip("../shared/testdata is not present")
    return SHARED_TESTDATA


@pytest.fixture(scope="session")
def phantom(tmp_path_factory):
    """Factory ``phantom(spec=None, **changes) -> (out_root, truth)``: a phantom study, built once per spec.

    Defaults are small and fast: pelvis extent, 256 CT matrix, no MR unless asked.
    """
    from localize.sample_data import StudySpec, make_study

    built: dict = {}

    def build(spec=None, **changes):
        if spec is None:
            spec = StudySpec(**{"extent": "pelvis", "ct_matrix": 256, "with_mr": False, **changes})
        if spec not in built:
            out_root = tmp_path_factory.mktemp("phantom")
            built[spec] = (out_root, make_study(out_root, spec))
        return built[spec]

    return build


@pytest.fixture(scope="session")
def small_archive(tmp_path_factory):
    """``build_small_archive`` once per session."""
    return build_small_archive(tmp_path_factory.mktemp("small_archive"))


def pytest_xdist_auto_num_workers(config):
    """Workers for ``-n logical`` (pyproject.toml): none when one test module is asked for, whose worker would
    only add its start-up; else pytest-xdist's own count (one per logical core, at most ``--maxprocesses``)."""
    modules = {str(arg).split("::")[0] for arg in config.args}
    return 0 if len(modules) == 1 and modules.pop().endswith(".py") else None
