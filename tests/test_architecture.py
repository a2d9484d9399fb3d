# SPDX-License-Identifier: MIT
"""The architecture holds by structure: contracts, no cycles, one home per run-folder name."""

from __future__ import annotations

import ast
import fnmatch
import re
import shutil
import subprocess
import sys
from pathlib import Path

import grimp

from dinowm import rundir
from dinowm.schema import SECTIONS, all_keys

REPO = Path(__file__).resolve().parents[1]
SOURCES = [*sorted((REPO / "dinowm").rglob("*.py")), *sorted((REPO / "tui").rglob("*.py"))]
MAX_FLAT = 10


def test_import_linter_contracts_hold() -> None:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or \
        shutil.which("lint-imports")
    assert lint, "lint-imports is missing: pip install -e '.[test]' installs import-linter"
    out = subprocess.run([lint, "--no-cache"], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout and "6 kept" in out.stdout


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected sets of modules (Tarjan), type-only imports included."""
    succ = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in succ[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for module in sorted(succ):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycles_not_even_type_only() -> None:
    graph = grimp.build_graph("dinowm", "tui", exclude_type_checking_imports=False)
    assert cycles(graph) == []


def test_the_detector_sees_a_cycle(tmp_path: Path, monkeypatch) -> None:
    pkg = tmp_path / "cyc"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                              "    from cyc import b\n")
    (pkg / "b.py").write_text("from cyc import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cycles(grimp.build_graph("cyc", cache_dir=None)) == [["cyc.a", "cyc.b"]]


def test_few_modules_sit_flat_in_the_package() -> None:
    flat = sorted(p.stem for p in (REPO / "dinowm").glob("*.py")
                  if p.stem not in ("__init__", "__main__"))
    assert len(flat) <= MAX_FLAT, flat


def folder_names() -> tuple[set[str], list[str]]:
    """rundir's file names, and its patterns as globs: "epoch_{epoch:04d}.pth" and
    "epoch_*.pth" are both "epoch_*.pth"."""
    values = [v for k, v in vars(rundir).items() if k.isupper() and isinstance(v, str)]
    # (folder names, "samples" or "ranks", are words too: a dict key is not a folder)
    names = {v for v in values if "{" not in v and "*" not in v and "." in v}
    patterns = sorted({re.sub(r"\{[^}]*\}", "*", v) for v in values if "{" in v or "*" in v})
    return names - {rundir.LOG_FILE_ENV}, patterns


def spelled(tree: ast.AST, names: set[str], patterns: list[str]) -> list[tuple[int, str]]:
    """(line, text) of each string or f-string in `tree` that spells a run-folder name or a
    pattern of one: a name itself, a glob or format string of a pattern, or a name that a
    pattern matches ("epoch_0003.pth")."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "*" for v in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        else:
            continue
        glob = re.sub(r"\{[^}]*\}", "*", text).lstrip(".")
        base = glob.rsplit("/", 1)[-1].removesuffix(".tmp")
        if text in names or base in patterns or any(
                fnmatch.fnmatchcase(base, p) for p in patterns if "*" not in base):
            found.append((node.lineno, text))
    return found


def test_run_folder_names_are_spelled_only_in_rundir() -> None:
    names, patterns = folder_names()
    assert {"epoch_*.pth", "epoch_*.png", "goal_*.png"} <= set(patterns)
    found = []
    for path in SOURCES:
        if path.name == "rundir.py":
            continue
        for line, text in spelled(ast.parse(path.read_text()), names, patterns):
            found.append(f"{path.relative_to(REPO)}:{line} {text!r}")
    assert found == []


def test_the_name_check_sees_globs_format_strings_and_plain_names() -> None:
    names, patterns = folder_names()
    source = ('a = folder.glob("epoch_*.pth")\nb = f"epoch_{n:04d}.png"\n'
              'c = f".goal_{i:02d}.png.tmp"\nd = "model_latest.pth"\ne = "epoch_0003.pth"\n'
              'f = root / ".feature_cache"\ng = "dinov2_vits14_pretrain.pth"\n')
    assert sorted(line for line, _ in spelled(ast.parse(source), names, patterns)) == [1, 2, 3, 4, 5, 6]


def reads(tree: ast.AST) -> set[tuple[str, str]]:
    """(section, key) pairs a module reads: cfg.section.key, an alias of cfg.section, a
    ["section"]["key"] subscript of the spec, or the dotted name 'section.key'."""
    classes = {cls.__name__: name for name, cls in SECTIONS.items()}
    aliases: dict[str, str] = {}  # a name bound to a section: t = cfg.training; cfg: ThermalConfig
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Attribute) and \
                node.value.attr in SECTIONS:
            for target in node.targets:
                if isinstance(target, ast.Name):
                    aliases[target.id] = node.value.attr
        elif isinstance(node, (ast.arg, ast.AnnAssign)) and \
                isinstance(node.annotation, ast.Name) and node.annotation.id in classes:
            name = node.arg if isinstance(node, ast.arg) else getattr(node.target, "id", None)
            if name:
                aliases[name] = classes[node.annotation.id]
    found: set[tuple[str, str]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            base = node.value
            if isinstance(base, ast.Attribute) and base.attr in SECTIONS:
                found.add((base.attr, node.attr))
            elif isinstance(base, ast.Attribute) and base.attr in aliases:  # self.cfg.hold_s
                found.add((aliases[base.attr], node.attr))
            elif isinstance(base, ast.Name) and base.id in aliases:
                found.add((aliases[base.id], node.attr))
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Subscript):
            inner, key = node.value.slice, node.slice
            if isinstance(inner, ast.Constant) and isinstance(key, ast.Constant) and \
                    inner.value in SECTIONS:
                found.add((inner.value, key.value))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                node.value.count(".") == 1:
            found.add(tuple(node.value.split(".")))  # type: ignore[arg-type]
    return found


def test_every_key_of_dinowm_toml_is_read_somewhere() -> None:
    read: set[tuple[str, str]] = set()
    for path in SOURCES:
        if path.name not in ("schema.py", "config.py"):
            read |= reads(ast.parse(path.read_text()))
    top = {node.attr for path in SOURCES if path.name not in ("schema.py", "config.py")
           for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Attribute)}
    unread = [k for k in all_keys()
              if (tuple(k.split(".")) not in read if "." in k else k not in top)]
    assert unread == []


def test_the_key_reader_finds_each_form() -> None:
    tree = ast.parse("a = cfg.perf.compile\nt = cfg.training\nt.epochs\n"
                     "def f(w: WatchdogConfig): return w.backoff_s\n"
                     "spec['config']['watchdog']['oom']\nx = 'thermal.hold_s'\n"
                     "rep.facts['image']['channels_last']\n")
    assert reads(tree) >= {("perf", "compile"), ("training", "epochs"), ("watchdog", "oom"),
                           ("watchdog", "backoff_s"),
                           ("thermal", "hold_s")}
    assert ("image", "channels_last") not in reads(tree) or "image" not in SECTIONS
    assert ("perf", "channels_last") not in reads(tree)


ARCHITECTURE = REPO / "docs" / "ARCHITECTURE.md"
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60
# The schema's DDL: one CREATE statement a table, read as a whole (the exception).
LONG_BY_NATURE = {("dinowm/store/migrations.py", "m001_initial")}


def mapped(text: str) -> dict[str, str]:
    """The map of docs/ARCHITECTURE.md: its ```map block, a tree of `name  what it owns`
    lines indented two spaces a level (a folder ends in /); path → its line's description."""
    block = text.split("```map\n", 1)[1].split("```", 1)[0]
    found: dict[str, str] = {}
    stack: list[str] = []
    for line in block.splitlines():
        match = re.match(r"^( *)(\S+/?)(?:\s{2,}(.*))?$", line)
        if not match or not line.strip():
            continue
        depth = len(match.group(1)) // 2
        stack[depth:] = [match.group(2).rstrip("/")]
        found["/".join(stack)] = (match.group(3) or "").strip()
    return found


def test_the_map_names_every_module_and_package_with_a_line_each() -> None:
    entries = mapped(ARCHITECTURE.read_text())
    wanted = {str(p.relative_to(REPO)) for p in SOURCES if p.name != "__init__.py"}
    wanted |= {str(p.parent.relative_to(REPO)) for p in SOURCES if p.name == "__init__.py"}
    missing = sorted(wanted - set(entries))
    stale = sorted(e for e in set(entries) - wanted if e.endswith(".py") or
                   e.startswith(("dinowm/", "tui/")))
    assert (missing, stale) == ([], []), f"ARCHITECTURE.md: missing {missing}, gone {stale}"
    assert not [e for e in wanted if not entries[e]], "every entry says what it owns"


def test_the_map_check_sees_a_missing_module() -> None:
    text = "```map\ndinowm/\n  config.py   the config\n  train/   trainer\n    step.py  a step\n```"
    assert mapped(text) == {"dinowm": "", "dinowm/config.py": "the config",
                            "dinowm/train": "trainer", "dinowm/train/step.py": "a step"}


def step_files(text: str) -> list[str]:
    """The files ARCHITECTURE.md lists under "One training step reads in": `path` bullets."""
    section = text.split("One training step reads in", 1)[1].split("\n\n", 2)[1]
    return re.findall(r"^- `([^`]+\.py)`", section, flags=re.MULTILINE)


def test_the_training_step_s_files_are_the_ones_it_imports() -> None:
    listed = step_files(ARCHITECTURE.read_text())
    step = REPO / "dinowm" / "train" / "step.py"
    imported = set()
    for node in ast.walk(ast.parse(step.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dinowm"):
            imported.add(node.module.replace(".", "/") + ".py")
        elif isinstance(node, ast.Import):
            imported |= {a.name.replace(".", "/") + ".py" for a in node.names
                         if a.name.startswith("dinowm")}
    assert listed[0] == "dinowm/train/step.py" and len(listed) <= 4
    assert set(listed[1:]) == imported, (listed, imported)


def test_no_module_over_450_lines_no_function_over_60() -> None:
    long_modules, long_functions = [], []
    for path in SOURCES:
        text, rel = path.read_text(), str(path.relative_to(REPO))
        if len(text.splitlines()) > MAX_MODULE_LINES:
            long_modules.append(f"{rel} {len(text.splitlines())}")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES and (rel, node.name) not in LONG_BY_NATURE:
                    long_functions.append(f"{rel}:{node.lineno} {node.name} {lines}")
    assert (long_modules, long_functions) == ([], [])
