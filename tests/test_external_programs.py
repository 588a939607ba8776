"""The rule for a missing external program: fail naming its package, or skip under LOCALIZE_ALLOW_MISSING_TOOLS=1."""

from __future__ import annotations

import pytest
from helpers import tools


@pytest.fixture
def absent(monkeypatch):
    monkeypatch.setitem(tools.TOOLS, "no-such-program-xyz", ("no-such-package", None))
    return "no-such-program-xyz"


def test_a_missing_program_fails_naming_its_package(absent, monkeypatch):
    monkeypatch.delenv(tools.ALLOW_MISSING, raising=False)
    with pytest.raises(pytest.fail.Exception, match="no-such-program-xyz is not installed "
                                                    r"\(apt-get install no-such-package\)"):
        tools.require_tool(absent)


def test_a_missing_program_skips_when_allowed(absent, monkeypatch):
    monkeypatch.setenv(tools.ALLOW_MISSING, "1")
    with pytest.raises(pytest.skip.Exception, match="apt-get install no-such-package"):
        tools.require_tool(absent)


def test_every_listed_program_is_installed_here_or_allowed_missing():
    for name in tools.TOOLS:
        assert tools.require_tool(name)
