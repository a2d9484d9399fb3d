# SPDX-License-Identifier: MIT
"""The SPDX line atop every source file: which files lack it, and adding it where missing.

    python -m tests.support.spdx           # add the line where it is missing; list those files
    python -m tests.support.spdx --check   # list them only; exit 1 when there are any

Idempotent: a file that has the line is left as it is. A shebang stays the first line.
"""

from __future__ import annotations

import argparse
from pathlib import Path

LINE = "# SPDX-License-Identifier: MIT"
ROOTS = ("dinowm", "tui", "tests", "bench")
REPO = Path(__file__).resolve().parents[2]


def sources(repo: Path = REPO) -> list[Path]:
    """Every .py file under the source roots, in a stable order."""
    return sorted(p for root in ROOTS for p in (repo / root).rglob("*.py") if p.is_file())


def has_line(text: str) -> bool:
    """The file starts with the SPDX line (after a shebang, when it has one)."""
    lines = text.splitlines()
    if lines and lines[0].startswith("#!"):
        lines = lines[1:]
    return bool(lines) and lines[0] == LINE


def with_line(text: str) -> str:
    """The text with the SPDX line first (second after a shebang); unchanged when it has it."""
    if has_line(text):
        return text
    if text.startswith("#!"):
        shebang, _, rest = text.partition("\n")
        return f"{shebang}\n{LINE}\n{rest}"
    return f"{LINE}\n{text}"


def missing(repo: Path = REPO) -> list[Path]:
    """Source files without the SPDX line."""
    return [p for p in sources(repo) if not has_line(p.read_text(encoding="utf-8"))]


def main(argv: list[str] | None = None, repo: Path = REPO) -> int:
    """Add the line to every file that lacks it (or, with --check, only list them)."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.spdx")
    parser.add_argument("--check", action="store_true", help="list, do not write; exit 1 if any")
    args = parser.parse_args(argv)
    lacking = missing(repo)
    for path in lacking:
        if not args.check:
            path.write_text(with_line(path.read_text(encoding="utf-8")), encoding="utf-8")
        print(path.relative_to(repo))
    return 1 if args.check and lacking else 0


if __name__ == "__main__":
    raise SystemExit(main())
