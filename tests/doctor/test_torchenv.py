# SPDX-License-Identifier: MIT
"""torch shadowed from the user site, and torchvision built for another torch: provoked with
fake packages in a throwaway environment whose user site is a temporary PYTHONUSERBASE."""

from __future__ import annotations

import os
import sys
import subprocess
from pathlib import Path

import pytest

from dinowm.doctor import torchenv

VERSION = f"python{sys.version_info[0]}.{sys.version_info[1]}"


def fake(site: Path, torch: str, vision: str | None, vision_error: str | None = None) -> None:
    """torch (and torchvision) packages that only carry a version, as the real ones do."""
    (site / "torch").mkdir(parents=True)
    (site / "torch" / "version.py").write_text(f"__version__ = '{torch}'\ncuda = '12.4'\n")
    (site / "torch" / "__init__.py").write_text("from torch import version\n"
                                                "from torch.version import __version__\n")
    if vision is not None:
        (site / "torchvision").mkdir()
        (site / "torchvision" / "version.py").write_text(f"__version__ = '{vision}'\n")
        body = f"raise RuntimeError({vision_error!r})\n" if vision_error else \
            "from torchvision.version import __version__\n"
        (site / "torchvision" / "__init__.py").write_text(body)


def environment(tmp_path: Path) -> tuple[str, dict[str, str], Path]:
    """A python environment as conda makes one, a prefix of its own (PYTHONHOME) whose
    site-packages comes after the user site, unlike a venv's: (python, env, site-packages)."""
    base, stdlib = getattr(sys, "_base_executable", sys.executable), Path(os.__file__).parent
    home = tmp_path / "env"
    lib = home / stdlib.relative_to(Path(sys.base_prefix))
    lib.mkdir(parents=True)
    for entry in stdlib.iterdir():
        if entry.name not in ("site-packages", "dist-packages"):
            (lib / entry.name).symlink_to(entry)
    env = {"PYTHONHOME": str(home)}
    site = subprocess.run([base, "-c", "import site; print(site.getsitepackages()[0])"],
                          env=env, capture_output=True, text=True, check=True).stdout.strip()
    return base, env, Path(site)


def user_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONNOUSERSITE")}
    return {**base, "PYTHONUSERBASE": str(tmp_path / "userbase"), **extra}


def user_site(tmp_path: Path) -> Path:
    return tmp_path / "userbase" / "lib" / VERSION / "site-packages"


def test_torch_in_the_user_site_shadows_the_environment(tmp_path) -> None:
    python, env, site = environment(tmp_path)
    fake(site, "2.4.0", "0.19.0")
    fake(user_site(tmp_path), "2.0.1", None)
    facts = torchenv.probe(python, user_env(tmp_path, **env))
    location = torchenv.check_location(facts)
    assert location.status == "fail", location
    assert str(user_site(tmp_path).resolve()) in location.found
    assert "shadows the environment's torch 2.4.0" in location.found
    assert "PYTHONNOUSERSITE=1" in location.fix and "pip uninstall --user torch" in location.fix
    # the user's symptom: the user site's torch 2.0 with the environment's torchvision 0.19
    versions = torchenv.check_versions(facts)
    assert versions.status == "fail" and "torchvision::nms" in versions.found
    assert "torchvision 0.15" in versions.found and "torchvision==0.15.*" in versions.fix

    # PYTHONNOUSERSITE=1, the fix: the environment's pair is used, the copy is still named
    facts = torchenv.probe(python, user_env(tmp_path, PYTHONNOUSERSITE="1", **env))
    location = torchenv.check_location(facts)
    assert location.status == "warn" and "user site disabled here" in location.found
    assert location.fix == "pip uninstall --user torch torchvision"
    assert torchenv.check_versions(facts).status == "ok"


def test_torchvision_that_does_not_load_fails_with_its_message(tmp_path) -> None:
    python, env, site = environment(tmp_path)
    fake(site, "2.4.0", "0.19.0", vision_error="operator torchvision::nms does not exist")
    facts = torchenv.probe(python, user_env(tmp_path, **env))
    assert torchenv.check_location(facts).status == "fail"  # import torchvision fails
    versions = torchenv.check_versions(facts)
    assert versions.status == "fail"
    assert "RuntimeError: operator torchvision::nms does not exist" in versions.found
    assert "torchvision==0.19.*" in versions.fix


def test_a_python_that_cannot_run_fails_in_one_line(tmp_path) -> None:
    facts = torchenv.probe(str(tmp_path / "no-python"), {})
    check = torchenv.check_location(facts)
    assert check.status == "fail" and "could not run" in check.found and "\n" not in check.found
    assert torchenv.check_versions(facts).status == "skipped"


@pytest.mark.parametrize("torch, vision", [("2.4.0", (0, 19)), ("2.14.1+cu130", (0, 29)),
                                           ("1.13.1", (0, 14)), ("nightly", None)])
def test_torchvision_release_for_each_torch(torch, vision) -> None:
    assert torchenv.expected_torchvision(torch) == vision
