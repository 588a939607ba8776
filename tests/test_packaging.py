"""A plain (non-editable) install holds every module and data file the package needs.

An editable install maps the whole source folder in, so a subpackage or data file missing from
pyproject.toml only shows in a built wheel: this test builds one from a copy of the repository,
installs it into a folder of its own and imports everything from there, the editable install
kept out of the way.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

# Run with -S (no site initialisation, so no editable-install finder from a .pth file): the wheel's
# folder first, then the environment's packages for the dependencies.
CHECK = """
import importlib, pkgutil, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import localize
assert localize.__file__.startswith(sys.argv[1]), localize.__file__
names = [m.name for m in pkgutil.walk_packages(localize.__path__, "localize.") if not m.name.endswith("__main__")]
for name in names:
    importlib.import_module(name)
from importlib import resources
from localize.findings import findings_schema
from localize.review.server import ASSETS
assert findings_schema()["$id"]
assert sorted(localize.pipeline_names())[:2] == ["fluciclovine", "generic"]
assert resources.files("localize").joinpath("py.typed").is_file()
assert (ASSETS / "index.html").is_file()
from localize.sample_data import StudySpec
print(len(names))
"""


def test_a_wheel_holds_every_module_and_data_file(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "localize-demo"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "wheel"),
                            str(source)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next((tmp_path / "wheel").glob("localize-*.whl"))
    target = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                                str(wheel)], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr[-3000:]
    checked = subprocess.run([sys.executable, "-S", "-c", CHECK, str(target), sysconfig.get_paths()["purelib"]],
                             capture_output=True, text=True, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr[-3000:]
    # every module and subpackage below localize (not localize itself, nor __main__), sample_data and pipelines
    expected = sum(1 for p in (REPO / "localize").rglob("*.py") if p.name != "__main__.py") - 1
    expected += sum(1 for p in (REPO / "sample_data").glob("*.py")) + sum(1 for p in (REPO / "pipelines").glob("*.py"))
    assert int(checked.stdout.split()[-1]) == expected
