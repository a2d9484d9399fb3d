"""Every module of the tui package imports without torch or the trainer."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

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


def test_checking_a_launch_on_real_data_stays_torch_free(tmp_path: Path) -> None:
    """The new-run modal validates on every keystroke: never the dataset files, never torch."""
    import shutil

    from dinowm.train.synth import write_synthetic_dataset

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
