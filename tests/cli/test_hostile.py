# SPDX-License-Identifier: MIT
"""Hostile text through every command that shows it: never markup, never a control sequence
on the terminal, still readable; a name with a control character refused before anything is
written."""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from dinowm.cli import main
from dinowm.cli.base import console, err_console
from dinowm.doctor import torchenv
from dinowm.formats import literal
from tests.support.hostile import KEYS, RUN, controls, hostile, hostile_project

TEXTS = st.fixed_dictionaries({key: hostile(f"MK{key.replace('_', '')}") for key in KEYS})
# What each command must show of the texts (its marker word).
SHOWS = {
    ("runs",): ("name",),
    ("show", RUN): ("name", "exit_reason", "note", "summary", "hw", "override"),
    ("evals",): ("checkpoint",),
    ("queue",): ("entry", "override"),
    ("doctor", "--preset", "hostile"): ("data_path", "hw"),
    ("tail", RUN, "-n", "5"): ("log",),
    ("presets",): ("preset_description",),
    ("config", "--preset", "hostile"): ("data_path",),
}


@pytest.fixture(autouse=True)
def piped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Output as into a pipe: no colour, so that the command's own styling adds no escape
    sequence (any left is foreign), and no width (xdist's workers set COLUMNS=80)."""
    monkeypatch.delenv("COLUMNS", raising=False)
    for out in (console, err_console):
        monkeypatch.setattr(out, "_color_system", None)
        monkeypatch.setattr(out, "_width", None)


def _marker(key: str) -> str:
    return f"MK{key.replace('_', '')}"


def _clean(text: str, what: str) -> None:
    assert not controls(text), (what, controls(text), text[-2000:])


# Not shrunk: a failing example is reported as drawn (shrinking nine commands takes minutes).
@settings(max_examples=8, deadline=None, phases=(Phase.explicit, Phase.reuse, Phase.generate),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(texts=TEXTS)
def test_every_command_shows_hostile_text_literally(texts: dict[str, str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torchenv, "probe", lambda python, env: {"error": texts["hw"]})
    runner = CliRunner()
    with tempfile.TemporaryDirectory() as tmp:
        toml = hostile_project(Path(tmp), texts)
        for args, keys in SHOWS.items():
            result = runner.invoke(main, ["--config", str(toml), *args])
            assert result.exception is None or isinstance(result.exception, SystemExit), \
                (args, result.exception, result.output)
            # 1: doctor's failed checks; 2: a preset whose data.path holds a NUL, refused
            assert result.exit_code in (0, 1, 2), (args, result.output, result.stderr)
            _clean(result.output, args)
            _clean(result.stderr, args)
            for key in keys:
                shown = result.output + result.stderr
                assert _marker(key) in shown, (args, key, shown[-3000:])
        log = Path(tmp) / "log.md"
        result = runner.invoke(main, ["--config", str(toml), "export-log", str(log), RUN])
        assert result.exit_code == 0, (result.output, result.exception)
        _clean(result.output, "export-log")
        text = log.read_text()
        _clean(text, "log.md")
        for key in ("name", "note", "summary", "detail", "hw", "exit_reason", "checkpoint",
                    "data_path", "log", "override"):
            assert _marker(key) in text, (key, text)
        assert "\n<!-- dinowm:end notes" not in text.replace(
            f"\n<!-- dinowm:end notes run={RUN} -->", "")  # a note cannot close a block


@pytest.mark.parametrize("args", [
    ("run", "--preset", "demo", "--name", "b16\x1b[31m"),
    ("queue", "add", "--preset", "demo", "--name", "b16\x1b]0;x\x07"),
    ("sweep", "--preset", "demo", "--name", "sw\u202e", "seed=1,2"),
])
def test_a_name_with_control_characters_is_refused_before_anything_is_written(
        args: tuple[str, ...], tmp_path: Path) -> None:
    toml = hostile_project(tmp_path, {k: "plain" for k in KEYS})
    before = sorted(p.name for p in (tmp_path / "outputs").iterdir())
    result = CliRunner().invoke(main, ["--config", str(toml), *args])
    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --name '"), result.stderr
    assert literal(args[-1] if args[0] != "sweep" else args[-2]) in lines[0]
    assert "holds control characters" in lines[0] and not controls(result.stderr)
    assert sorted(p.name for p in (tmp_path / "outputs").iterdir()) == before
    assert "queue.jsonl" not in before and not (tmp_path / "outputs" / "queue.jsonl").exists()


def test_tail_follow_shows_appended_bytes_literally(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Bytes appended while following: an escape sequence and a character cut between two
    writes still reach the terminal as text."""
    from dinowm.cli import tailing
    from dinowm.store import Store

    hostile_project(tmp_path, {k: "plain" for k in KEYS})
    db, log = tmp_path / "runs.db", tmp_path / "outputs" / RUN / "train.log"
    with Store(db) as store:
        store.update_run(RUN, status="running")
        run = store.run(RUN)

    class Here:  # the run's log where it is; nothing to reconcile
        def log_path(self, run: dict) -> Path:
            return log

        def reconcile(self, store: Store) -> list[str]:
            return []

    monkeypatch.setattr(tailing, "backend_of", lambda run: Here())
    chunk = "MKfollow \x1b]0;pwned\x07 \x1b[2J Lüfter 🌡️\n".encode()
    cut = chunk.index("🌡️".encode()) + 2  # inside the thermometer's bytes

    def write() -> None:
        for part in (chunk[:cut], chunk[cut:]):
            time.sleep(0.3)
            with open(log, "ab") as fh:
                fh.write(part)
        time.sleep(0.3)
        with Store(db) as store:
            store.update_run(RUN, status="completed")

    writer = threading.Thread(target=write)
    writer.start()
    tailing.follow_log(db, run, 2, follow=True, poll_s=0.05)
    writer.join()
    out = capsys.readouterr().out
    assert "MKfollow \\x1b]0;pwned\\x07 \\x1b[2J Lüfter 🌡️\n" in out and not controls(out)
    assert out.endswith(f"[run {RUN} is completed]\n")
