"""The export of a fixed record, compared with the golden files in tests/export/golden/.

Regenerate them after an intended change with
    DINOWM_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/export/test_golden.py
and review the diff by eye (git diff tests/export/golden/).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from dinowm.export import export_log
from dinowm.store import Store
from tests.support import export_fixture

GOLDEN = Path(__file__).with_name("golden")
ROOT = "/home/jw/dino_wm"  # the fixture's folder as the golden files show it
UPDATE = os.environ.get("DINOWM_UPDATE_GOLDEN") == "1"


def _check(produced: Path, golden: Path, root: Path) -> None:
    text = produced.read_text(encoding="utf-8").replace(str(root), ROOT)
    if UPDATE:
        golden.write_text(text, encoding="utf-8")
        return
    assert golden.exists(), f"{golden} is missing: run with DINOWM_UPDATE_GOLDEN=1"
    expected = golden.read_text(encoding="utf-8")
    assert text == expected, f"{produced.name} differs from {golden}; review, then regenerate " \
                             f"with DINOWM_UPDATE_GOLDEN=1"


@pytest.fixture
def record(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    return export_fixture.build(root)


@pytest.mark.parametrize("lang", ["en", "de"])
def test_one_run_matches_golden(record: Path, tmp_path: Path, lang: str) -> None:
    out = tmp_path / "log" / "run.md"
    out.parent.mkdir()
    with Store(record) as store:
        result = export_log(store, out, [export_fixture.RUN_A], lang=lang, tz=dt.timezone.utc,
                            now=export_fixture.NOW)
    assert result.images == [out.with_name(f"run-{export_fixture.RUN_A}-loss.svg")]
    root = record.parent
    _check(out, GOLDEN / f"run.{lang}.md", root)
    if lang == "en":
        _check(result.images[0], GOLDEN / f"run-{export_fixture.RUN_A}-loss.svg", root)


def test_two_runs_match_golden(record: Path, tmp_path: Path) -> None:
    out = tmp_path / "all.md"
    with Store(record) as store:
        result = export_log(store, out, all_runs=True, tz=dt.timezone.utc, now=export_fixture.NOW)
    assert result.runs == [export_fixture.RUN_A, export_fixture.RUN_B]
    _check(out, GOLDEN / "all.en.md", record.parent)
