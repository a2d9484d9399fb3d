# SPDX-License-Identifier: MIT
"""torch and torchvision as the environment's python imports them: where from, which versions.

The facts come from a child process of that python (the CLI never imports torch), which lists
every copy on its path and in the user site (~/.local/lib/pythonX.Y/site-packages) before
importing them: a copy there shadows the environment's whenever the user site is enabled.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dinowm.doctor.check import FAIL, OK, SKIPPED, WARN, Check, worst

PACKAGES = ("torch", "torchvision")
UNSHADOW = "PYTHONNOUSERSITE=1 for this environment, or pip uninstall --user torch torchvision"

# Runs in the environment's python (any version from 3.8): prints one JSON object.
PROBE = r"""
import importlib, json, re, site, sys
from pathlib import Path

def version_in(folder):
    try:
        text = (folder / "version.py").read_text()
    except OSError:
        return None
    found = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", text, re.M)
    return found.group(1) if found else None

user_site = site.getusersitepackages()
entries = [p for p in sys.path if p] + [user_site]
out = {"python": sys.executable, "user_site": user_site,
       "user_site_enabled": bool(site.ENABLE_USER_SITE), "copies": {}}
for name in ("torch", "torchvision"):
    copies, seen = [], set()
    for entry in entries:
        folder = Path(entry) / name
        if (folder / "__init__.py").is_file() and str(folder.resolve()) not in seen:
            seen.add(str(folder.resolve()))
            copies.append({"path": str(folder.resolve()), "version": version_in(folder)})
    out["copies"][name] = copies
for name in ("torch", "torchvision"):
    try:
        module = importlib.import_module(name)
    except Exception as exc:  # a broken install is what this probe is looking for
        out[name] = {"error": (type(exc).__name__ + ": " + str(exc)).splitlines()[0]}
        continue
    info = {"file": str(Path(module.__file__).resolve().parent),
            "version": str(getattr(module, "__version__", "unknown"))}
    if name == "torch":
        info["cuda"] = getattr(getattr(module, "version", None), "cuda", None)
        try:
            info["cuda_available"] = bool(module.cuda.is_available())
        except Exception:
            info["cuda_available"] = None
    out[name] = info
print(json.dumps(out))
"""


def probe(python: str, env: Mapping[str, str], timeout: float = 120.0) -> dict[str, Any]:
    """The facts of `python` under `env`; {'error': ...} when the probe itself cannot run."""
    try:
        proc = subprocess.run(
            [python, "-c", PROBE],
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"error": f"{python} could not run: {exc}".splitlines()[0]}
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    if proc.returncode or not lines:
        last = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        return {"error": f"{python} crashed while importing torch: {last}"}
    return json.loads(lines[-1])


def _in_user_site(path: str, facts: dict[str, Any]) -> bool:
    user = Path(facts["user_site"]).resolve()
    return Path(path).resolve().is_relative_to(user)


def check_location(facts: dict[str, Any]) -> Check:
    """1. torch and torchvision imported from the environment, no copy in the user site."""
    name = "torch location"
    if "error" in facts:
        return Check(
            name,
            FAIL,
            facts["error"],
            "reinstall torch into this environment: "
            "pip install --force-reinstall torch torchvision",
        )
    rows = [_package_location(pkg, facts) for pkg in PACKAGES]
    status = worst(*(s for s, _, _ in rows))
    shown = [r for r in rows if r[0] == status]
    return Check(
        name,
        status,
        "; ".join(f for _, f, _ in shown),
        next((fix for _, _, fix in shown if fix), ""),
    )


def _package_location(pkg: str, facts: dict[str, Any]) -> tuple[str, str, str]:
    info, copies = facts[pkg], facts["copies"][pkg]
    user = [c for c in copies if _in_user_site(c["path"], facts)]
    env = [c for c in copies if c not in user]
    if "error" in info:
        more = f" (a copy in the user site: {user[0]['path']})" if user else ""
        return (
            FAIL,
            f"import {pkg} fails: {info['error']}{more}",
            (
                UNSHADOW
                if user
                else "pip install torch torchvision into this environment "
                "(a matching pair, e.g. the Makefile's TORCH)"
            ),
        )
    used = f"{pkg} {info['version']} from {info['file']}"
    if _in_user_site(info["file"], facts):
        if env:
            return (
                FAIL,
                (
                    f"{used} (user site) shadows the environment's {pkg} "
                    f"{env[0]['version']} in {env[0]['path']}"
                ),
                UNSHADOW,
            )
        return (
            WARN,
            f"{used}: only the user site has {pkg}, not this environment",
            f"pip install {pkg} into this environment, then pip uninstall --user {pkg}",
        )
    if user:
        enabled = "enabled" if facts["user_site_enabled"] else "disabled here"
        return (
            WARN,
            (
                f"{used}; another {pkg} {user[0]['version']} in the user site "
                f"{user[0]['path']} (user site {enabled}) shadows it in any python that "
                f"reads the user site"
            ),
            "pip uninstall --user torch torchvision",
        )
    return OK, used, ""


def expected_torchvision(torch_version: str) -> tuple[int, int] | None:
    """The torchvision release built for a torch release: 2.x → 0.(x+15), 1.x → 0.(x+1)."""
    found = re.match(r"(\d+)\.(\d+)", torch_version)
    if not found:
        return None
    major, minor = int(found.group(1)), int(found.group(2))
    return {1: (0, minor + 1), 2: (0, minor + 15)}.get(major)


def check_versions(facts: dict[str, Any]) -> Check:
    """1b. torchvision built for the torch that is imported (else 'torchvision::nms')."""
    name = "torch/torchvision"
    torch, vision = facts.get("torch", {}), facts.get("torchvision", {})
    if "error" in facts or "error" in torch:
        return Check(name, SKIPPED, "torch does not import (see torch location)")
    want = expected_torchvision(torch["version"])
    pin = (
        f"pip install torchvision=={want[0]}.{want[1]}.*"
        if want
        else "pip install torchvision (the release for this torch)"
    )
    if "error" in vision:
        return Check(
            name,
            FAIL,
            f"torch {torch['version']}, but import torchvision fails: {vision['error']}",
            f"{pin}, or {UNSHADOW}",
        )
    have = re.match(r"(\d+)\.(\d+)", vision["version"])
    found = f"torch {torch['version']} with torchvision {vision['version']}"
    if want is None or have is None:
        return Check(
            name,
            WARN,
            f"{found}: no known pairing to compare with",
            "install the torchvision release made for this torch",
        )
    if (int(have.group(1)), int(have.group(2))) != want:
        return Check(
            name,
            FAIL,
            f"{found}, built for another torch (this torch needs "
            f"torchvision {want[0]}.{want[1]}): 'operator torchvision::nms does not "
            f"exist'",
            f"{pin}; if one of them comes from the user site, {UNSHADOW}",
        )
    return Check(name, OK, found)
