"""Regenerate docs/cli.md from the commands' own --help (run after changing the CLI).

Run: python3 docs/make_cli_reference.py
"""

from pathlib import Path

from click.testing import CliRunner

from localize.cli import main

HEADER = """# Command line reference

Every command prints one line `localize: error: FILE: what is wrong` and exits with status 2 on bad input
(a `LocalizeError`); `localize batch` and `localize convert` exit 1 when some study or series failed.
Coordinates are DICOM LPS mm. Outputs are written atomically and never under an input folder.
`localize COMMAND --help` prints the same text as below.
"""


def help_text(*args: str) -> str:
    result = CliRunner().invoke(main, [*args, "--help"], prog_name="localize", terminal_width=100)
    return result.output.rstrip()


def main_page() -> str:
    parts = [HEADER, f"```text\n{help_text()}\n```\n"]
    for name in ("index", "convert", "run", "batch", "demo", "pipelines", "fetch", "review", "export", "node",
                 "node status"):
        parts.append(f"## `localize {name}`\n\n```text\n{help_text(*name.split())}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    Path(__file__).with_name("cli.md").write_text(main_page())
