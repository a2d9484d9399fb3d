# SPDX-License-Identifier: MIT
"""Re-exporting rewrites only the generated blocks; the user's lines stay where they were."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from dinowm.errors import DinowmError
from dinowm.export import export_log
from dinowm.export.blocks import merge, parse
from dinowm.store import Store
from tests.support import export_fixture

A = export_fixture.RUN_A


def _merge(old: str | None, new: list, **kwargs: object) -> str:
    return merge(parse(old, Path("x.md")) if old else [], new, **kwargs)


def _blocks(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("<!-- dinowm:begin")]


def test_merge_replaces_in_place_and_keeps_user_lines() -> None:
    first = _merge(None, [(("title", None), "# T"), (("a", "r1"), "old a"),
                          (("b", "r1"), "old b")])
    edited = first.replace("<!-- dinowm:begin b run=r1 -->",
                           "My paragraph\nsecond line\n\n<!-- dinowm:begin b run=r1 -->")
    edited = "Preface\n" + edited + "\nAfterword without newline"
    again = _merge(edited, [(("title", None), "# T2"), (("a", "r1"), "new a"),
                            (("b", "r1"), "new b")])
    assert "old a" not in again and "new a" in again and "# T2" in again
    assert again.startswith("Preface\n") and again.endswith("Afterword without newline")
    assert again.index("new a") < again.index("My paragraph\nsecond line\n") < \
        again.index("new b")


def test_merge_places_missing_blocks_next_to_their_run() -> None:
    text = _merge(None, [(("a", "r1"), "a1"), (("c", "r1"), "c1")])
    text += "\nnotes of mine\n"
    out = _merge(text, [(("a", "r1"), "a1"), (("b", "r1"), "b1"), (("c", "r1"), "c1"),
                        (("a", "r2"), "a2")])
    assert out.index("a1") < out.index("b1") < out.index("c1") < out.index("notes of mine") \
        < out.index("a2")
    assert _blocks(out) == ["<!-- dinowm:begin a run=r1 -->", "<!-- dinowm:begin b run=r1 -->",
                            "<!-- dinowm:begin c run=r1 -->", "<!-- dinowm:begin a run=r2 -->"]


def test_title_is_never_added_to_an_existing_file() -> None:
    out = _merge("my own log\n", [(("title", None), "# T"), (("a", "r"), "x")],
                 only_replace=frozenset({("title", None)}))
    assert "# T" not in out and out.startswith("my own log\n")


@pytest.mark.parametrize("text, needle", [
    ("<!-- dinowm:begin a run=r -->\nx\n", "no end marker"),
    ("x\n<!-- dinowm:end a run=r -->\n", "without its begin marker"),
    ("<!-- dinowm:begin a run=r -->\n<!-- dinowm:begin b run=r -->\n", "starts inside"),
    ("<!-- dinowm:begin a run=r -->\n<!-- dinowm:end a run=r -->\n" * 2, "appears twice"),
])
def test_damaged_markers_are_an_error_not_a_clobber(text: str, needle: str) -> None:
    with pytest.raises(DinowmError, match=needle):
        parse(text, Path("log.md"))


def test_user_paragraph_survives_more_epochs(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    db = export_fixture.build(root)
    out = tmp_path / "run.md"
    kwargs = {"tz": dt.timezone.utc, "now": export_fixture.NOW}
    with Store(db) as store:
        export_log(store, out, [A], **kwargs)
        mine = "\nMy analysis: the freeze came right after the thermal pause.\n\n"
        text = out.read_text().replace("<!-- dinowm:begin commands",
                                       mine + "<!-- dinowm:begin commands")
        out.write_text(text)
        export_fixture.add_epoch(store, A, 6, 5, export_fixture.NOW - 3000,
                                 (0.1801, 0.1833, 0.1402))
        store.update_run(A, epoch=6, epochs_target=6)
        export_log(store, out, [A], **kwargs)
    again = out.read_text()
    assert mine in again
    assert again.index("<!-- dinowm:end progress") < again.index(mine) < \
        again.index("<!-- dinowm:begin commands")
    assert "| 6 | 0.1801 | 0.1833 | 0.1402 |" in again and "Current Epoch | 6 / 6" in again
    assert again.count("<!-- dinowm:begin progress") == 1


def test_damaged_file_stops_the_export_before_writing(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    db = export_fixture.build(root)
    out = tmp_path / "run.md"
    out.write_text("<!-- dinowm:begin overview run=x -->\nmine\n")
    with Store(db) as store, pytest.raises(DinowmError, match="no end marker"):
        export_log(store, out, [A])
    assert out.read_text() == "<!-- dinowm:begin overview run=x -->\nmine\n"
    assert not list(tmp_path.glob("*.svg"))
