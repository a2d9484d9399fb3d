# SPDX-License-Identifier: MIT
"""The export of a fixed record, compared with the golden files in tests/export/golden/.

Regenerate them after an intended change with
    DINOWM_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/export/test_golden.py
and review the diff by eye (git diff tests/export/golden/).
"""

from __future__ import annotations

import datetime as dt
import json
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


def test_a_run_recorded_before_dist_existed_exports_the_same(record: Path,
                                                             tmp_path: Path) -> None:
    # runs.db of an earlier version: config_json without the [dist] section.
    with Store(record) as store:
        run = store.run(export_fixture.RUN_A)
        doc = json.loads(run["config_json"])
        assert doc.pop("dist") == {"nproc_per_node": 1, "timeout_s": 180.0}
        store.update_run(run["id"], config_json=json.dumps(doc))
        (tmp_path / "old").mkdir()
        export_log(store, tmp_path / "old" / "run.md", [export_fixture.RUN_A],
                   tz=dt.timezone.utc, now=export_fixture.NOW)
    _check(tmp_path / "old" / "run.md", GOLDEN / "run.en.md", record.parent)
