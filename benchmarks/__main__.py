"""``python -m benchmarks`` lists the benchmarks; ``python -m benchmarks NAME [NAME ...] [-- OPTIONS]``
runs those (``--all``: every one), each in its own process, OPTIONS passed to each.

    python -m benchmarks                      # list
    python -m benchmarks segment review       # run two
    python -m benchmarks generalize -- --n 1  # options for the benchmark
    python -m benchmarks --all
"""

from __future__ import annotations

import ast
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def benchmarks() -> dict[str, str]:
    """Name -> module, for every bench_*.py (name without the prefix) and kill_and_resume.py."""
    found = {p.stem.removeprefix("bench_"): p.stem for p in sorted(HERE.glob("bench_*.py"))}
    found["kill_and_resume"] = "kill_and_resume"
    return found


def summary(module: str) -> str:
    doc = ast.get_docstring(ast.parse((HERE / f"{module}.py").read_text())) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    options = argv[argv.index("--") + 1:] if "--" in argv else []
    names = argv[: argv.index("--")] if "--" in argv else argv
    known = benchmarks()
    if names in ([], ["--list"]) or names in (["-h"], ["--help"]):
        print(__doc__)
        width = max(map(len, known))
        for name, module in known.items():
            print(f"  {name:{width}}  {summary(module)}")
        return 0
    if "--all" in names:
        names = list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(known)}", file=sys.stderr)
        return 2
    failed = []
    for name in names:
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        code = subprocess.run([sys.executable, "-m", f"benchmarks.{known[name]}", *options], cwd=HERE.parent).returncode
        print(f"== {name}: {'ok' if code == 0 else f'exit {code}'} in {time.perf_counter() - started:.1f} s",
              flush=True)
        if code:
            failed.append(name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
