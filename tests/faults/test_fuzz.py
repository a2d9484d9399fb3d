# SPDX-License-Identifier: MIT
"""Bad input, fuzzed: dinowm.toml text, overrides, CLI arguments and dataset files.

Whatever hypothesis makes up, the answer is a success or a clear error (one line for dinowm's
own errors, exit code 2), never a traceback, and it leaves nothing behind: no run row, no run
folder, no run left "running", an intact runs.db.
"""

from __future__ import annotations

import os
import pickle
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dinowm.cli import main
from dinowm.config import load_project, resolve
from dinowm.errors import ConfigError, DataError, DinowmError
from dinowm.schema import all_keys
from dinowm.data.check import validate_dataset
from dinowm.data.synth import write_synthetic_dataset

REPO = Path(__file__).resolve().parents[2]
SHIPPED = (REPO / "dinowm.toml").read_text()
KEYS = sorted(all_keys())
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                      HealthCheck.too_slow])

# -- values a user might type -----------------------------------------------------------------

odd_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
raw_values = st.one_of(
    odd_text,
    st.integers(-10**20, 10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "true", "false", "True", "nan", "-inf", "1e309", "0x10", "1_000",
                     "[1, 2]", "{}", "None", "null", "auto", "bf16", "  3 ", "-0", "1.", ".5"]))
override_keys = st.one_of(st.sampled_from(KEYS), st.sampled_from(KEYS).map(lambda k: k.upper()),
                          st.sampled_from(KEYS).map(lambda k: k.split(".")[-1]),
                          st.text("abcdefghijklmnopqrstuvwxyz._-", min_size=0, max_size=20))
overrides = st.builds(lambda k, sep, v: f"{k}{sep}{v}", override_keys,
                      st.sampled_from(["=", "=", "=", ":", "==", " = ", ""]), raw_values)


def one_line(message: str) -> bool:
    return bool(message.strip()) and "\n" not in message.strip() and "Traceback" not in message


def assert_sane(cfg: object) -> None:
    """What was accepted is sane: every number inside its documented range, no NaN, no inf."""
    for key, spec in all_keys().items():
        section, _, name = key.rpartition(".")
        value = getattr(getattr(cfg, section), name) if section else getattr(cfg, name)
        if isinstance(value, float):
            assert value == value and abs(value) != float("inf"), f"{key}={value}"
        if spec.min is not None and isinstance(value, (int, float)):
            assert value >= spec.min, f"{key}={value} below {spec.min}"
        if spec.max is not None and isinstance(value, (int, float)):
            assert value <= spec.max, f"{key}={value} above {spec.max}"


# -- dinowm.toml --------------------------------------------------------------------------------

TOML_VALUES = st.one_of(
    raw_values.map(lambda v: repr(v).replace("'", '"')),  # a quoted string
    st.sampled_from(["nan", "inf", "-inf", "1e400", "-1", "0", "3.5", "true", "[1, 2]",
                     "{ a = 1 }", "\"\"", "2024-01-01", "[[x]]", "= 3", "\"unterminated",
                     "'''multi", "0o777", "1__0"]),
    st.integers(-10**30, 10**30).map(str))


@st.composite
def mutated_toml(draw: st.DrawFn) -> str:
    """The shipped dinowm.toml with a few lines changed, dropped, duplicated or inserted."""
    lines = SHIPPED.splitlines()
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["value", "drop", "dup", "insert", "cut", "key"]))
        line = lines[i]
        if action == "value" and "=" in line and not line.lstrip().startswith("#"):
            lines[i] = line.split("=", 1)[0] + "= " + draw(TOML_VALUES)
        elif action == "drop":
            del lines[i]
        elif action == "dup":
            lines.insert(i, line)
        elif action == "insert":
            lines.insert(i, draw(st.one_of(
                st.builds(lambda k, v: f"{k} = {v}", override_keys, TOML_VALUES),
                st.sampled_from(["[presets.x]", "[presets.demo]", "[defaults]", "[project]",
                                 "[weird]", "extends = \"nope\"", "extends = \"demo\"",
                                 "[presets.franka_f5_h3.training]", "["]))))
        elif action == "cut":
            lines[i] = line[:draw(st.integers(0, len(line)))]
        elif action == "key" and "=" in line:
            lines[i] = draw(override_keys) + " =" + line.split("=", 1)[1]
        if not lines:
            lines = [""]
    return "\n".join(lines) + "\n"


@FUZZ
@given(text=mutated_toml(), preset=st.sampled_from(["demo", "franka_f5_h3", "franka_f5_h3_b8"]))
def test_fuzzed_dinowm_toml_is_accepted_or_refused_in_one_line(tmp_path: Path, text: str,
                                                                preset: str) -> None:
    folder = tmp_path / "proj"
    folder.mkdir(exist_ok=True)
    (folder / "dinowm.toml").write_text(text)
    try:
        resolved = resolve(load_project(cwd=folder), preset)
    except ConfigError as exc:
        assert exc.exit_code == 2 and one_line(str(exc)), str(exc)
        assert "dinowm.toml" in str(exc) or "preset" in str(exc) or "=" in str(exc)
        return
    assert_sane(resolved.config)


# -- overrides ----------------------------------------------------------------------------------


@FUZZ
@given(items=st.lists(overrides, min_size=1, max_size=4))
def test_fuzzed_overrides_are_accepted_or_refused_in_one_line(project_dir: Path,
                                                              items: list[str]) -> None:
    project = load_project(cwd=project_dir)
    try:
        cfg = resolve(project, "demo", items).config
    except ConfigError as exc:
        assert one_line(str(exc)), str(exc)
        return
    assert_sane(cfg)


def _state(project_dir: Path) -> tuple[list[tuple], list[str]]:
    """(rows of the runs table, run folders): what a refused command must not change."""
    rows: list[tuple] = []
    if (project_dir / "runs.db").exists():
        conn = sqlite3.connect(project_dir / "runs.db")
        try:
            assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"
            rows = conn.execute("select id, status from runs order by id").fetchall()
        finally:
            conn.close()
    outputs = project_dir / "outputs"
    return rows, sorted(p.name for p in outputs.iterdir()) if outputs.is_dir() else []


@settings(deadline=None, max_examples=8,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=st.lists(overrides, min_size=1, max_size=3))
def test_dinowm_run_with_fuzzed_bad_overrides_exits_2_and_creates_nothing(
        project_dir: Path, items: list[str]) -> None:
    """The real command in a subprocess, with overrides that the resolver refuses."""
    try:
        resolve(load_project(cwd=project_dir), "demo", items)
    except ConfigError:
        pass
    else:
        assume(False)  # a valid override would start a real training run
    before = _state(project_dir)
    out = subprocess.run([sys.executable, "-m", "dinowm", "run", "--preset", "demo", "--",
                          *items], cwd=project_dir, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "COLUMNS": "200"})
    assert out.returncode == 2, out.stdout + out.stderr
    assert one_line(out.stderr) and out.stderr.startswith("error: "), out.stderr
    assert _state(project_dir) == before == ([], [])


# -- CLI arguments ------------------------------------------------------------------------------

COMMANDS = [["config"], ["runs"], ["show"], ["note"], ["export-log"], ["presets"], ["tail"],
            ["stop"], ["hardware"], ["data", "check"], ["config", "--keys"], ["runs", "--limit"],
            ["show", "latest"], ["note", "latest"], ["stop", "latest"], ["reindex"]]
WORDS = st.one_of(st.sampled_from(["--preset", "-p", "demo", "latest", "--json", "--limit",
                                   "-1", "0", "999999999999999999999", "--", "-", "--all",
                                   "--status", "running", "--since", "yesterday", "x.md",
                                   "/nonexistent/dir/run.md", "--changed", "-h", "--follow",
                                   "--force", "--layout", "wall", "--frameskip", "0",
                                   "20261125-000000-abcd", "%", "'", "\"", "..", "."]),
                  overrides, odd_text)


@FUZZ
@given(command=st.sampled_from(COMMANDS), args=st.lists(WORDS, max_size=4))
def test_fuzzed_cli_arguments_never_crash_or_damage_the_record(project_dir: Path,
                                                                command: list[str],
                                                                args: list[str]) -> None:
    if "--follow" in args or ("tail" in command and "-f" in args):
        args = [a for a in args if a not in ("--follow", "-f")]  # would wait for a live run
    before = _state(project_dir)
    result = CliRunner().invoke(main, [*command, *args], catch_exceptions=True)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{command + args}: {result.exc_info}")
    assert result.exit_code in (0, 1, 2), (command + args, result.exit_code, result.output)
    if result.exit_code and result.stderr.startswith("error: "):
        assert one_line(result.stderr), result.stderr
    elif result.exit_code == 2:  # click's own usage error: usage, a hint and one Error: line
        assert result.stderr.startswith(("Usage: ", "Error: ")) and "Error: " in result.stderr, \
            result.stderr
    rows, folders = _state(project_dir)
    assert rows == before[0] and folders == before[1]
    assert not [r for r in rows if r[1] == "running"]


# -- dataset files ------------------------------------------------------------------------------


class Hostile:
    """Unpickling this would create a marker file; a safe loader must refuse it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def clean_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("clean") / "ds"
    write_synthetic_dataset(root, episodes=4, length=14, image_size=8, seed=0)
    return root


@st.composite
def corruption(draw: st.DrawFn, files: list[str]) -> tuple[str, str, object]:
    name = draw(st.sampled_from(files + ["metadata.pkl"]))
    kind = draw(st.sampled_from(["truncate", "flip", "garbage", "empty", "delete", "tensor",
                                 "hostile", "object"]))
    if kind == "truncate":
        arg: object = draw(st.floats(0, 0.999))
    elif kind == "flip":
        arg = draw(st.lists(st.tuples(st.floats(0, 0.999), st.integers(1, 255)), min_size=1,
                            max_size=8))
    elif kind == "garbage":
        arg = draw(st.binary(max_size=256))
    elif kind == "tensor":
        arg = (draw(st.lists(st.integers(0, 6), min_size=0, max_size=5)),
               draw(st.sampled_from([torch.float32, torch.float64, torch.uint8, torch.int64,
                                     torch.bool])),
               draw(st.sampled_from([0.0, float("nan"), float("inf"), 1e30])))
    elif kind == "object":
        arg = draw(st.sampled_from([{"episode_lengths": [-1, 3]}, {"episode_lengths": "abc"},
                                    {"episode_lengths": [10**12] * 4}, [1, 2, 3], None,
                                    {"episode_lengths": [14, 14, 14, 14, 14, 14]},
                                    {"episode_lengths": [0, 0, 0, 0]}]))
    else:
        arg = None
    return name, kind, arg


def _corrupt(path: Path, kind: str, arg: object, marker: Path) -> None:
    data = path.read_bytes() if path.exists() else b""
    if kind == "truncate":
        path.write_bytes(data[:int(len(data) * arg)])
    elif kind == "flip":
        buf = bytearray(data)
        for where, xor in arg:
            if buf:
                buf[int(len(buf) * where)] ^= xor
        path.write_bytes(bytes(buf))
    elif kind == "garbage":
        path.write_bytes(arg)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "delete":
        path.unlink(missing_ok=True)
    elif kind == "tensor":
        shape, dtype, fill = arg
        torch.save(torch.full(shape, fill).to(dtype), path)
    elif kind == "hostile":
        path.write_bytes(pickle.dumps(Hostile(marker)))
    elif kind == "object":
        with open(path, "wb") as f:
            pickle.dump(arg, f)


def _dataset_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@FUZZ
@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@given(data=st.data())
def test_fuzzed_dataset_files_are_accepted_or_refused_and_never_executed(
        clean_dataset: Path, tmp_path: Path, data: st.DataObject) -> None:
    files = _dataset_files(clean_dataset)
    changes = data.draw(st.lists(corruption(files), min_size=1, max_size=3))
    root = Path(tempfile.mkdtemp(dir=tmp_path)) / "ds"
    shutil.copytree(clean_dataset, root)
    marker = tmp_path / "pwned"
    try:
        for name, kind, arg in changes:
            _corrupt(root / name, kind, arg, marker)
        try:
            episodes, _ = validate_dataset(root, "auto", 0, 2, 2, 1)
        except DataError as exc:
            assert one_line(str(exc)) and exc.exit_code == 2, str(exc)
        else:
            assert episodes.states.isfinite().all() and episodes.actions.isfinite().all()
            assert len(episodes.lengths) == episodes.states.shape[0] >= 2
        assert not marker.exists(), "a pickle in the dataset was executed"
    finally:
        shutil.rmtree(root.parent)


@pytest.mark.parametrize("kind, arg, file", [
    ("hostile", None, "states.pth"), ("truncate", 0.5, "000002/obses.pth"),
    ("tensor", ([4, 14], torch.float32, float("nan")), "actions.pth")])
def test_dinowm_run_on_damaged_dataset_exits_2_and_creates_no_run(
        project_dir: Path, clean_dataset: Path, kind: str, arg: object, file: str) -> None:
    root = project_dir / "ds"
    shutil.copytree(clean_dataset, root)
    marker = project_dir / "pwned"
    _corrupt(root / file, kind, arg, marker)
    out = subprocess.run([sys.executable, "-m", "dinowm", "run", "--preset", "franka_f5_h3",
                          f"data.path={root}", "model.encoder=tiny"], cwd=project_dir,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    assert one_line(out.stderr) and file.split("/")[0] in out.stderr, out.stderr
    assert _state(project_dir) == ([], [])
    assert not marker.exists()


def test_errors_are_dinowm_errors() -> None:
    assert issubclass(ConfigError, DinowmError) and issubclass(DataError, DinowmError)
