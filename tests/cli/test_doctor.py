# SPDX-License-Identifier: MIT
"""`dinowm doctor`: the real command in a project whose dataset is missing on a hot GPU, and
its JSON."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from click.testing import CliRunner

from dinowm.cli import main
from dinowm.doctor import torchenv
from tests.support.nvml_fake import UUIDS, FakeGPU, fake_pynvml, write_pynvml

NAMES = ("torch location", "torch/torchvision", "CUDA build", "NVML", "GPU temperature",
         "/dev/shm", "disk", "DINOv2 weights", "wandb", "dinowm.toml", "dataset")


def broken_demo(project_dir: Path) -> None:
    toml = project_dir / "dinowm.toml"
    toml.write_text(toml.read_text().replace('path = "data/synthetic_push"\nsynthetic = true',
                                             'path = "data/missing"\nsynthetic = false'))


def test_the_real_command_shows_the_table_and_exits_1(cli, project_dir: Path,
                                                      tmp_path: Path) -> None:
    broken_demo(project_dir)
    nvml = write_pynvml(tmp_path / "nvml", [FakeGPU(UUIDS[0], temp=93)])
    env = {"PYTHONPATH": os.pathsep.join([str(nvml), os.environ.get("PYTHONPATH", "")]),
           "COLUMNS": "400"}  # wide enough that no finding wraps
    proc = cli("doctor", cwd=project_dir, env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    status = {}
    for name in NAMES:
        found = re.search(rf"^ {re.escape(name)} +(ok|warn|fail|skipped) ", out, re.M)
        assert found, (name, out)
        status[name] = found.group(1)
    # the rest depends on this machine's torch (none in the torch-free test environment)
    assert status["GPU temperature"] == status["dataset"] == "fail"
    assert status["dinowm.toml"] == "ok" and status["DINOv2 weights"] == "warn"
    assert "GPU 0 at 93 °C" in out and "slowdown at 89 °C" in out
    assert f"data.path={project_dir / 'data' / 'missing'} of preset demo does" in out
    assert "[presets.demo.data]" in out  # the fix, not eaten as markup
    assert proc.stderr == ""


def test_json_lists_every_check_and_exits_0_when_none_fails(project_dir: Path, monkeypatch
                                                            ) -> None:
    facts = {"user_site": "/nowhere", "user_site_enabled": True,
             "copies": {"torch": [], "torchvision": []},
             "torch": {"file": "/env/torch", "version": "2.8.0", "cuda": "13.0"},
             "torchvision": {"file": "/env/torchvision", "version": "0.23.0"}}
    monkeypatch.setattr(torchenv, "probe", lambda python, env: facts)
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([FakeGPU(UUIDS[0], temp=40)]))
    result = CliRunner().invoke(main, ["--config", str(project_dir), "doctor", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert [c["check"] for c in doc["checks"]] == list(NAMES) and doc["failed"] == 0
    assert doc["checks"][2] == {"check": "CUDA build", "status": "ok", "fix": "",
                                "found": "torch 2.8.0 built for CUDA 13.0; driver 580.95.05 "
                                         "supports CUDA up to 13.0"}
