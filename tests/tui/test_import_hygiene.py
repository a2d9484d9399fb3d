"""Every module of the tui package imports without torch or the trainer."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import tui


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
