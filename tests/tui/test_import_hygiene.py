# SPDX-License-Identifier: MIT
"""Every module of the tui package imports without torch or the trainer; screens and widgets
never import the app."""

from __future__ import annotations

import ast
import importlib.util
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import tui

TUI = Path(tui.__file__).parent


def test_no_tui_module_imports_torch_or_the_trainer() -> None:
    names = ["tui"] + [m.name for m in pkgutil.walk_packages(tui.__path__, "tui.")]
    assert {"tui.app", "tui.screens.run", "tui.screens.compare", "tui.widgets.run_plots"} \
        <= set(names)
    code = ("import importlib, sys\n"
            f"for name in {names!r}: importlib.import_module(name)\n"
            "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith(('torch.', "
            "'dinowm.train')))\n"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == ""


def test_checking_a_launch_on_real_data_stays_torch_free(tmp_path: Path) -> None:
    """The new-run modal validates on every keystroke: never the dataset files, never torch."""
    import shutil

    from dinowm.data.synth import write_synthetic_dataset

    write_synthetic_dataset(tmp_path / "ds", episodes=3, length=12, image_size=8)
    shutil.copyfile(Path(tui.__file__).parents[1] / "dinowm.toml", tmp_path / "dinowm.toml")
    code = ("import sys\n"
            "from dinowm.config import load_project\n"
            "from tui.operations import check_launch\n"
            f"check = check_launch(load_project({str(tmp_path / 'dinowm.toml')!r}), "
            f"'franka_f5_h3', 'data.path={tmp_path / 'ds'} model.encoder=tiny')\n"
            "assert check.ok, check\n"
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def named_modules(source: str, module: str) -> set[str]:
    """Modules that source (the text of `module`) imports or names as a string, anywhere in it:
    TYPE_CHECKING blocks and function bodies included, relative imports resolved."""
    package = module.removesuffix(".__init__") if module.endswith(".__init__") \
        else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = importlib.util.resolve_name("." * node.level + base, package)
            found |= {base} | {f"{base}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.add(node.value)  # importlib.import_module("tui.app")
    return found


def imports_the_app(source: str, module: str) -> bool:
    return any(m == "tui.app" or m.startswith("tui.app.") for m in named_modules(source, module))


@pytest.mark.parametrize("source", [
    "import tui.app",
    "from tui.app import DinowmApp",
    "from tui import app",
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from tui.app import DinowmApp",
    "def f():\n    from ..app import build_app",
    "from .. import app as parent",
    "import importlib\nimportlib.import_module('tui.app')",
])
def test_the_check_sees_every_way_of_importing_the_app(source: str) -> None:
    assert imports_the_app(source, "tui.screens.some_screen")


def test_the_check_lets_screens_import_their_siblings_and_messages() -> None:
    source = ("from tui.messages import StopRequested\nfrom .incident import IncidentScreen\n"
              "from tui.widgets.gpu_strip import GpuStrip\nfrom textual.app import App")
    assert not imports_the_app(source, "tui.screens.run")


def test_no_screen_or_widget_imports_the_app() -> None:
    """Attributes down, messages up: screens and widgets post messages; the app imports them,
    never the other way round, not even for type hints."""
    files = sorted([*(TUI / "screens").rglob("*.py"), *(TUI / "widgets").rglob("*.py")])
    assert {"runs.py", "run.py", "gpu_strip.py"} <= {f.name for f in files}
    offenders = [str(f.relative_to(TUI.parent)) for f in files if imports_the_app(
        f.read_text(), ".".join(f.relative_to(TUI.parent).with_suffix("").parts))]
    assert offenders == []
