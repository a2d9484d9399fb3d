# SPDX-License-Identifier: MIT
"""training.decoder_every and model.decoder=off: the decoder learns from detached latents, so
leaving it out of steps (or out of the model) changes nothing else, bit for bit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dinowm import rundir
from dinowm.train import checkpoint as ckpt
from tests.support.trainer import events, run_trainer

# 2 epochs of 5 steps: the decoder trains on steps 0 and 4 of epoch 1 and step 8 of epoch 2
COMMON = ["training.epochs=2", "training.max_steps_per_epoch=5", "training.deterministic=true",
          "training.rollouts=2"]
NOT_DECODER = ("predictor", "action_encoder", "proprio_encoder")


def _trained(tiny_run, name: str, overrides: list[str], env: dict | None = None) -> Path:
    run_dir = tiny_run(name, [*COMMON, *overrides])
    out = run_trainer(run_dir, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return run_dir


def _latest(run_dir: Path) -> dict:
    return torch.load(run_dir / rundir.CHECKPOINTS / ckpt.LATEST, weights_only=True)


def _epochs(run_dir: Path) -> list[dict]:
    return [e["metrics"] if "metrics" in e else e for e in events(run_dir) if e["type"] == "epoch"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    from tests.support.trainer import make_run_dir

    root = tmp_path_factory.mktemp("decoder")

    def tiny_run(run_id, overrides=()):
        return make_run_dir(root, run_id, list(overrides))

    return {"every": _trained(tiny_run, "every", []),
            "fourth": _trained(tiny_run, "fourth", ["training.decoder_every=4"]),
            "off": _trained(tiny_run, "off", ["model.decoder=off"])}


def test_the_predictor_and_embeddings_are_bit_identical_with_the_decoder_every_4th_step_and_off(
        runs) -> None:
    every, fourth, off = (_latest(runs[k]) for k in ("every", "fourth", "off"))
    for part in NOT_DECODER:
        for name, value in every["model"][part].items():
            assert torch.equal(value, fourth["model"][part][name]), f"{part}.{name}: every/4th"
            assert torch.equal(value, off["model"][part][name]), f"{part}.{name}: every/off"
    # The decoder itself did train less: Adam counted 3 of the 10 steps, and its weights differ.
    steps = {k: [int(s["step"]) for s in ck["optim"]["decoder"]["state"].values()]
             for k, ck in (("every", every), ("fourth", fourth))}
    assert set(steps["every"]) == {10} and set(steps["fourth"]) == {3}, steps
    assert any(not torch.equal(v, fourth["model"]["decoder"][k])
               for k, v in every["model"]["decoder"].items())
    assert "decoder" not in off["model"] and "decoder" not in off["optim"]


def test_the_latent_metrics_agree_and_only_the_decoders_say_what_they_had(runs) -> None:
    per_run = {k: _epochs(d) for k, d in runs.items()}
    for a, b, c in zip(per_run["every"], per_run["fourth"], per_run["off"]):
        for key in ("train_z_loss", "val_z_loss", "val_z_visual_err_pred", "val_z_visual_err_rollout"):
            assert a[key] == b[key] == c[key], key
        # train_loss: the full loss over the steps that trained the decoder
        assert "train_loss" in b and "train_decoder_recon_loss_reconstructed" in b
        assert "val_img_psnr_pred" in a and "val_img_psnr_pred" in b
        assert not any("img_" in k or "decoder_recon" in k for k in c), sorted(c)
        assert c["train_loss"] == c["train_z_loss"]
    log = (runs["off"] / rundir.LOG).read_text() if (runs["off"] / rundir.LOG).exists() else ""
    samples = runs["off"] / rundir.SAMPLES
    assert not samples.exists() or not any(samples.iterdir())
    assert any(e.get("decoder") is False for e in events(runs["off"]) if e["type"] == "start"), \
        log[-2000:]


@pytest.mark.extended
def test_a_resumed_run_keeps_the_decoder_schedule(runs, tiny_run) -> None:
    # killed in epoch 2 (after its checkpoint of epoch 1), then resumed: every tensor, the
    # decoder's and its Adam state included, equals the run trained straight
    broken = tiny_run("broken", [*COMMON, "training.decoder_every=4"])
    out = run_trainer(broken, env={"DINOWM_FAULT": "global_step:8:exit"})
    assert out.returncode != 0
    assert run_trainer(broken).returncode == 0
    got, expected = _latest(broken), _latest(runs["fourth"])
    for part, state in expected["model"].items():
        for name, value in state.items():
            assert torch.equal(value, got["model"][part][name]), f"{part}.{name}"
    assert [int(s["step"]) for s in got["optim"]["decoder"]["state"].values()][0] == 3


def test_the_log_says_no_decoder_where_reconstructions_would_be(runs) -> None:
    from tests.support.supervised import Project

    project = Project(runs["off"].parents[1])  # the runs' project folder, indexed from files
    assert project.cli("reindex").returncode == 0
    out = project.cli("export-log", "log.md", "off", "fourth")
    assert out.returncode == 0, out.stderr
    text = (project.root / "log.md").read_text()
    assert text.count("Reconstructions and image metrics: no decoder (model.decoder=off)") == 1
    # the comparison of the two runs names the keys that differ
    assert "training.decoder_every" in text and "model.decoder" in text


def test_a_run_without_a_decoder_is_evaluated_in_latent_space_only(runs) -> None:
    from tests.support.supervised import Project

    project = Project(runs["off"].parents[1])
    assert project.cli("reindex").returncode == 0
    out = project.cli("eval", "off", "--episodes", "2", "--planner", "cem", "--horizon", "2",
                      "--cem-iterations", "2", "--json", "--quiet")
    assert out.returncode == 0, out.stderr[-2000:]
    (record,) = json.loads(out.stdout)
    metrics, curves = record["metrics"], record["curves"]
    assert metrics["cem_action_err"] >= 0 and metrics["cem_img_psnr"] is None
    assert curves["z_visual_err"] and not curves["img_psnr"]
    # the goal pictures hold start and goal only: no imagined frame without a decoder
    assert list((runs["off"] / "eval").rglob("goal_*.png"))


def test_a_resume_may_change_the_schedule_but_not_whether_there_is_a_decoder(runs) -> None:
    from dinowm.config import load_project
    from dinowm.errors import ConfigError
    from dinowm.runs import resumed_spec

    project = load_project(runs["fourth"].parents[1] / "dinowm.toml")
    spec, cfg = resumed_spec(runs["fourth"], ["training.decoder_every=2"], project)
    assert cfg.training.decoder_every == 2 and spec["config"]["training"]["decoder_every"] == 2
    with pytest.raises(ConfigError, match="model.decoder cannot change on resume"):
        resumed_spec(runs["fourth"], ["model.decoder=off"], project)
