# SPDX-License-Identifier: MIT
"""The licence: MIT as pyproject.toml says, in LICENSE and in an SPDX line atop every source."""

from __future__ import annotations

from pathlib import Path

import pytest

from dinowm.config import read_toml
from tests.support import spdx

REPO = spdx.REPO


def test_the_license_file_is_mit_as_pyproject_says() -> None:
    assert read_toml(REPO / "pyproject.toml")["project"]["license"] == "MIT"
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 the dinowm developers" in text
    assert "Permission is hereby granted, free of charge, to any person" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND' in text


def test_every_source_file_starts_with_its_spdx_line() -> None:
    lacking = [str(p.relative_to(REPO)) for p in spdx.missing()]
    assert lacking == [], f"run 'python -m tests.support.spdx' to add the line: {lacking}"


def test_the_line_goes_first_once_and_after_a_shebang() -> None:
    line = spdx.LINE
    assert spdx.with_line('"""Doc."""\n') == f'{line}\n"""Doc."""\n'
    assert spdx.with_line("") == f"{line}\n"
    assert spdx.with_line("#!/usr/bin/env python3\nx = 1\n") == \
        f"#!/usr/bin/env python3\n{line}\nx = 1\n"
    for text in ('"""Doc."""\n', "", "#!/bin/python\n"):
        once = spdx.with_line(text)
        assert spdx.has_line(once) and spdx.with_line(once) == once
    assert not spdx.has_line(f"x = 1\n{line}\n")  # somewhere else is not atop


def test_the_script_adds_what_is_missing_and_is_idempotent(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "dinowm").mkdir()
    (tmp_path / "tests").mkdir()
    done = tmp_path / "dinowm" / "done.py"
    done.write_text(f"{spdx.LINE}\nx = 1\n")
    bare = tmp_path / "tests" / "bare.py"
    bare.write_text("y = 2\n")
    assert spdx.main(["--check"], repo=tmp_path) == 1 and bare.read_text() == "y = 2\n"
    assert spdx.main([], repo=tmp_path) == 0
    assert bare.read_text() == f"{spdx.LINE}\ny = 2\n"
    assert done.read_text() == f"{spdx.LINE}\nx = 1\n"
    capsys.readouterr()
    assert spdx.main(["--check"], repo=tmp_path) == 0 and capsys.readouterr().out == ""
