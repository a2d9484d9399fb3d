# SPDX-License-Identifier: MIT
"""The project's checks provoked: an invalid dinowm.toml, a bad dataset path, missing weights,
a wrong hash, wandb online without login or network, and the whole diagnosis with fakes."""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

import pytest

from dinowm.config import load_project, resolve
from dinowm.config import DINOV2_WEIGHTS_FILE, DINOV2_WEIGHTS_URL
from dinowm.doctor import Machine, diagnose, failed, mirror, project
from dinowm.errors import DataError
from tests.support.nvml_fake import UUIDS, FakeGPU, fake_pynvml

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    shutil.copyfile(REPO / "dinowm" / "dinowm.toml", tmp_path / "dinowm.toml")
    return tmp_path


def edit(root: Path, old: str, new: str) -> None:
    path = root / "dinowm.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_an_invalid_dinowm_toml_fails_with_the_first_error(proj: Path) -> None:
    check, _, resolved = project.check_config(None, proj)
    assert check.status == "ok" and "3 presets resolve (default demo)" in check.found
    edit(proj, "batch_size = 32\ngrad_accum = 4", "batch_size = 32\ngrad_acum = 4")
    check, _, resolved = project.check_config(None, proj)
    assert check.status == "fail" and "demo" in resolved and "franka_f5_h3_b8" not in resolved
    assert check.found == ("Unknown key 'training.grad_acum' in [presets.franka_f5_h3_b8] of "
                           f"{proj / 'dinowm.toml'}. Did you mean 'training.grad_accum'?")
    (proj / "dinowm.toml").write_text("[project\n")
    check, loaded, _ = project.check_config(None, proj)
    assert check.status == "fail" and loaded is None and "invalid TOML" in check.found
    (proj / "dinowm.toml").unlink()
    check, _, _ = project.check_config(None, proj)
    assert check.status == "fail" and "No dinowm.toml in" in check.found


def test_a_bad_dataset_path_fails_without_starting_the_trainer(proj: Path) -> None:
    def validate(cfg):
        raise AssertionError("the trainer's check runs only on a folder that exists")

    cfg = resolve(load_project(None, proj), "franka_f5_h3", ["data.path=no/such/ds"]).config
    check = project.check_dataset(cfg, "franka_f5_h3", validate)
    assert check.status == "fail"
    assert check.found == f"data.path={proj / 'no/such/ds'} of preset franka_f5_h3 does not exist"
    empty = resolve(load_project(None, proj), "franka_f5_h3").config
    assert "data.path of preset franka_f5_h3 is empty" in \
        project.check_dataset(empty, "franka_f5_h3", validate).found


def test_the_trainers_verdict_on_a_dataset(proj: Path) -> None:
    (proj / "ds").mkdir()
    cfg = resolve(load_project(None, proj), "franka_f5_h3", ["data.path=ds"]).config

    def broken(c):
        raise DataError("NaN in actions.pth at episode 3, timestep 17")

    check = project.check_dataset(cfg, "franka_f5_h3", broken)
    assert check.status == "fail" and "NaN in actions.pth at episode 3" in check.found
    assert project.check_dataset(cfg, "p", lambda c: ["a", "b"]).status == "warn"
    assert project.check_dataset(cfg, "p", lambda c: []).status == "ok"
    demo = resolve(load_project(None, proj), "demo").config
    assert "generated on first run" in project.check_dataset(demo, "demo", broken).found


def weights_file(path: Path, payload: bytes = b"\x01" * 4096) -> str:
    """A torch-style zip archive standing in for the official file; its sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("dinov2_vits14_pretrain/data.pkl", payload)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_missing_weights_and_a_wrong_hash(proj: Path, tmp_path: Path) -> None:
    resolved = {p: resolve(load_project(None, proj), p) for p in ("demo", "franka_f5_h3")}
    env = {"TORCH_HOME": str(tmp_path / "th")}
    hub = tmp_path / "th" / "hub" / "checkpoints" / DINOV2_WEIGHTS_FILE
    missing = project.check_weights(resolved, "franka_f5_h3", env)
    assert missing.status == "fail" and f"{hub} is missing" in missing.found
    assert DINOV2_WEIGHTS_URL in missing.fix and "model.encoder_weights=PATH" in missing.fix
    assert project.check_weights(resolved, "demo", env).status == "warn"  # not for the default

    digest = weights_file(hub)
    unpinned = project.check_weights(resolved, "franka_f5_h3", env)
    assert unpinned.status == "ok" and digest in unpinned.found
    assert "--weights-sha256" in unpinned.fix and project.PIN_ENV in unpinned.fix
    assert project.check_weights(resolved, "franka_f5_h3", env, digest.upper()).status == "ok"
    wrong = project.check_weights(resolved, "franka_f5_h3", {**env, project.PIN_ENV: "ab" * 32})
    assert wrong.status == "fail" and f"sha256 {digest} is not the pinned {'ab' * 32}" in \
        wrong.found and f"download {DINOV2_WEIGHTS_URL} again" in wrong.fix

    hub.write_bytes(hub.read_bytes()[:-30])  # a download cut short
    assert "not a complete torch file" in project.check_weights(resolved, "demo", env).found
    demo_only = {"demo": resolved["demo"]}
    assert project.check_weights(demo_only, "demo", env).status == "skipped"


def test_wandb_online_without_login_or_network_warns(proj: Path, tmp_path: Path) -> None:
    cfg = resolve(load_project(None, proj), "demo", ["wandb.mode=online"]).config
    home = {"HOME": str(tmp_path)}
    unreachable = lambda host, port: "Name or service not known"  # noqa: E731

    def check(env, installed=True):
        return mirror.check_wandb(cfg, "demo", env, unreachable, installed)

    assert "not installed" in check(home, installed=False).found
    no_login = check(home)
    assert no_login.status == "warn" and "no login for api.wandb.ai" in no_login.found
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password k\n")
    offline = check(home)
    assert offline.status == "warn" and "api.wandb.ai:443 cannot be reached" in offline.found
    assert "wandb.mode=offline" in offline.fix
    ok = mirror.check_wandb(cfg, "demo", {**home, "WANDB_API_KEY": "k"}, lambda h, p: None, True)
    assert ok.status == "ok"
    assert check({"WANDB_MODE": "offline"}).status == "warn"  # two settings disagree
    disabled = resolve(load_project(None, proj), "demo").config
    assert mirror.check_wandb(disabled, "demo", {}, unreachable).status == "ok"


def test_the_whole_diagnosis_with_a_hot_gpu_and_a_small_shm(proj: Path, tmp_path: Path) -> None:
    edit(proj, "num_workers = 0", "num_workers = 4")
    fake_python = tmp_path / "python"
    fake_python.write_text("#!/bin/sh\necho '{\"user_site\": \"/nowhere\", \"user_site_enabled\""
                           ": false, \"copies\": {\"torch\": [], \"torchvision\": []}, \"torch\""
                           ": {\"file\": \"/env/torch\", \"version\": \"2.8.0\", \"cuda\": "
                           "\"12.8\"}, \"torchvision\": {\"file\": \"/env/tv\", \"version\": "
                           "\"0.23.0\"}}'\n")
    fake_python.chmod(0o755)
    machine = Machine(env={"TORCH_HOME": str(tmp_path / "th")}, python=str(fake_python),
                      nvml=fake_pynvml([FakeGPU(UUIDS[0], temp=88)], cuda=12080),
                      shm=tmp_path, free_bytes=lambda p: 8 * 2**20,
                      validate=lambda c: [], reach=lambda h, p: None)
    checks = {c.name: c for c in diagnose(None, None, machine, cwd=proj)}
    assert list(checks) == ["torch location", "torch/torchvision", "CUDA build", "NVML",
                            "GPU temperature", "/dev/shm", "disk", "DINOv2 weights", "wandb",
                            "dinowm.toml", "dataset"]
    assert {c.name for c in failed(list(checks.values()))} == {"GPU temperature", "/dev/shm",
                                                                "disk"}
    assert checks["DINOv2 weights"].status == "warn"  # the default preset (demo) needs none
    edit(proj, "runs_db =", "run_db =")
    checks = {c.name: c for c in diagnose(None, None, machine, cwd=proj)}
    assert checks["dinowm.toml"].status == "fail" and checks["dataset"].status == "skipped"
    assert checks["NVML"].status == "ok"  # the machine's checks still run
