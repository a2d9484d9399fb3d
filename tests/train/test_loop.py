# SPDX-License-Identifier: MIT
"""The trainer as a process: it learns, it resumes bit-identically, it refuses bad data."""

from __future__ import annotations

import pytest

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from dinowm.train import checkpoint as ckpt
from dinowm.data.synth import write_synthetic_dataset
from tests.support.datasets import coded_tables, write_franka
from tests.support.trainer import events, run_trainer


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    state = torch.load(run_dir / "checkpoints" / ckpt.LATEST, weights_only=True)
    flat = {}
    for part, sd in state["model"].items():
        flat.update({f"{part}.{k}": v for k, v in sd.items()})
    for name, sd in state["optim"].items():
        for pid, s in sd["state"].items():
            flat.update({f"optim.{name}.{pid}.{k}": v for k, v in s.items()
                         if isinstance(v, torch.Tensor)})
    return flat


def test_tiny_model_learns(tiny_run) -> None:
    run_dir = tiny_run("learn", ["training.epochs=4", "training.predictor_lr=0.002",
                                 "training.decoder_lr=0.002", "data.synth_episodes=8"])
    out = run_trainer(run_dir)
    assert out.returncode == 0, out.stderr[-2000:]
    epochs = [e for e in events(run_dir) if e["type"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3, 4]
    train = [e["train_loss"] for e in epochs]
    z_err = [e["z_err_pred"] for e in epochs]
    assert train[-1] < 0.7 * train[0], train
    assert z_err[-1] < z_err[0], z_err
    metrics = epochs[-1]["metrics"]
    for key in ("train_z_loss", "val_z_visual_err_pred", "val_z_proprio_err_pred",
                "val_decoder_recon_loss_pred", "val_img_ssim_reconstructed",
                "val_z_visual_err_rollout", "train_z_visual_err_rollout",
                "val_z_visual_err_rollout_1framestart", "train_z_proprio_err_rollout_1framestart",
                "train_decoder_recon_loss_reconstructed"):
        assert key in metrics, key
    assert (run_dir / "samples" / "epoch_0004.png").exists()
    assert events(run_dir)[-1]["type"] == "end" and events(run_dir)[-1]["status"] == "completed"
    seqs = [e["seq"] for e in events(run_dir)]
    assert seqs == list(range(1, len(seqs) + 1))


def test_sigterm_mid_epoch_checkpoints_and_resumes_exactly(tiny_run) -> None:
    common = ["training.epochs=2", "training.deterministic=true", "training.max_steps_per_epoch=6"]
    straight = tiny_run("straight", common)
    assert run_trainer(straight).returncode == 0
    stopped = tiny_run("stopped", common)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DINOWM_FAULT": "step:4:hang"}
    proc = subprocess.Popen([sys.executable, "-m", "dinowm.train", "--run-dir", str(stopped)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if (stopped / "events.jsonl").exists() and any(
                e["type"] == "heartbeat" and e.get("step") == 3 for e in events(stopped)):
            break
        time.sleep(0.1)
    # step 4 hangs inside fault(): SIGTERM is noted, but the step never finishes, so the
    # second signal must end it at once (the 'second Ctrl-C' path); a copy of the first
    # within a second (Slurm, srun and torchrun each deliver one) does not count.
    proc.send_signal(signal.SIGTERM)
    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 130
    assert not (stopped / "checkpoints" / ckpt.LATEST).exists()
    # A clean stop: SIGTERM while steps run finishes the step and checkpoints mid-epoch.
    env["DINOWM_FAULT"] = ""
    before = len(events(stopped))
    proc = subprocess.Popen([sys.executable, "-m", "dinowm.train", "--run-dir", str(stopped)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while not any(e["type"] == "heartbeat" and e.get("step") == 2
                  for e in events(stopped)[before:]):
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGTERM)  # a copy, as a Slurm job's processes get it: one stop
    assert proc.wait(timeout=60) == 0
    end = events(stopped)[-1]
    assert end["type"] == "end" and end["status"] == "stopped"
    manifest = ckpt.verify(stopped / "checkpoints" / ckpt.LATEST)
    assert manifest["samples_done"] > 0 and manifest["next_epoch"] == 1
    assert run_trainer(stopped).returncode == 0
    a, b = _weights(straight), _weights(stopped)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.extended
def test_a_stop_during_the_last_epochs_validation_still_completes(tiny_run) -> None:
    """Every epoch trained: a SIGTERM while the last one validates (a Slurm time limit that
    falls there) stops nothing; the run ends completed with its epoch checkpoint."""
    run_dir = tiny_run("last", ["training.epochs=1", "training.max_steps_per_epoch=2"])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DINOWM_FAULT": "validation:1:sleep=4"}
    proc = subprocess.Popen([sys.executable, "-m", "dinowm.train", "--run-dir", str(run_dir)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not any(e["type"] == "phase" and e.get("phase") == "validation"
                  for e in (events(run_dir) if (run_dir / "events.jsonl").exists() else [])):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    end = events(run_dir)[-1]
    assert (end["type"], end["status"], end["epoch"]) == ("end", "completed", 1)
    assert ckpt.verify(run_dir / "checkpoints" / "epoch_0001.pth")["next_epoch"] == 2


def test_nan_action_is_refused_before_training(tiny_run, tmp_path: Path) -> None:
    data = tmp_path / "nan_data"
    write_synthetic_dataset(data, episodes=4, length=30, image_size=32, nan_at=(2, 17, 5))
    run_dir = tiny_run("nan", [f"data.path={data}", "data.synthetic=false"])
    out = run_trainer(run_dir)
    assert out.returncode == 2
    assert "episode 2" in out.stderr and "timestep 17" in out.stderr and "column 5" in out.stderr
    kinds = [e["type"] for e in events(run_dir)]
    assert "heartbeat" not in kinds and kinds[-1] == "error"


def test_franka_without_metadata_and_uneven_episodes_trains(tiny_run, tmp_path: Path,
                                                            cli) -> None:
    frames = [30, 24, 18, 27]
    states, actions = coded_tables(4, 30)
    states, actions = states / 1000, actions / 1000
    for ep, n in enumerate(frames):  # the padding of states.pth/actions.pth: never read
        states[ep, n:], actions[ep, n:] = float("nan"), float("nan")
    data = write_franka(tmp_path / "uneven", states, actions, size=32, frames=frames)
    warning = ("no metadata.pkl: 3 of 4 episodes are shorter than the 30 timesteps of "
               "states.pth, each taken as long as its obses.pth: 1 (24 frames), 2 (18 frames), "
               "3 (27 frames); states and actions past that are ignored")
    run_dir = tiny_run("uneven", [f"data.path={data}", "data.synthetic=false",
                                  "training.epochs=1", "training.max_steps_per_epoch=3"])
    out = run_trainer(run_dir)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"data warning: {warning}" in out.stdout  # the supervisor's train.log
    start = [e for e in events(run_dir) if e["type"] == "start"][0]
    assert start["dataset"]["lengths"] == {"min": 18, "mean": 24.75, "max": 30}
    epoch = [e for e in events(run_dir) if e["type"] == "epoch"][0]
    assert epoch["train_loss"] == epoch["train_loss"]  # not NaN
    check = cli("data", "check", str(data), "--frameskip", "2", "--num-hist", "2")
    assert check.returncode == 0, check.stderr
    assert f"warning: {warning}" in " ".join(check.stdout.split())  # rich wraps long lines


def test_corrupt_latest_falls_back_to_previous_epoch(tiny_run) -> None:
    run_dir = tiny_run("fallback", ["training.epochs=2", "training.max_steps_per_epoch=2"])
    assert run_trainer(run_dir).returncode == 0
    folder = run_dir / "checkpoints"
    latest = folder / ckpt.LATEST
    data = bytearray(latest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    os.unlink(latest)  # break the hard link so epoch_0002.pth keeps its bytes
    latest.write_bytes(bytes(data))
    (run_dir / "config.json").write_text(
        (run_dir / "config.json").read_text().replace('"epochs": 2', '"epochs": 3'))
    out = run_trainer(run_dir)
    assert out.returncode == 0, out.stderr[-2000:]
    evs = events(run_dir)
    skipped = [e for e in evs if e["type"] == "incident" and e["kind"] == "checkpoint_skipped"]
    assert skipped and "sha256" in skipped[0]["summary"]
    start = [e for e in evs if e["type"] == "start"][-1]
    assert start["resumed_from"].endswith("epoch_0002.pth") and start["epoch"] == 3


def test_grad_accum_keeps_the_effective_batch(tiny_run) -> None:
    common = ["training.epochs=1", "training.max_steps_per_epoch=2", "training.deterministic=true",
              "model.predictor_dropout=0", "training.num_reconstruct_samples=0"]
    whole = tiny_run("whole", common)
    split = tiny_run("split", [*common, "training.grad_accum=2"])
    assert run_trainer(whole).returncode == 0
    assert run_trainer(split).returncode == 0
    a, b = _weights(whole), _weights(split)
    for key in a:
        if not key.startswith("optim"):
            assert torch.allclose(a[key], b[key], atol=1e-5, rtol=1e-4), key
    starts = [e for e in events(split) if e["type"] == "start"]
    assert starts[0]["micro_batch"] == 4 and starts[0]["batch_size"] == 8
    assert not (split / "samples").exists()  # num_reconstruct_samples=0: no grids at all


@pytest.mark.extended
def test_sigusr1_dumps_stacks_and_training_goes_on(tiny_run) -> None:
    run_dir = tiny_run("usr1", ["training.epochs=2", "training.max_steps_per_epoch=8"])
    proc = subprocess.Popen([sys.executable, "-m", "dinowm.train", "--run-dir", str(run_dir)],
                            env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if (run_dir / "events.jsonl").exists() and any(
                e["type"] == "heartbeat" for e in events(run_dir)):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGUSR1)
    assert proc.wait(timeout=120) == 0
    stacks = (run_dir / "stacks.txt").read_text()
    assert "Current thread" in stacks or "Thread 0x" in stacks
    assert "loop.py" in stacks
    assert events(run_dir)[-1]["status"] == "completed"


def test_checkpoint_of_another_config_is_refused_without_retry(tiny_run) -> None:
    run_dir = tiny_run("shape", ["training.epochs=1", "training.max_steps_per_epoch=2"])
    assert run_trainer(run_dir).returncode == 0
    spec = (run_dir / "config.json").read_text()
    (run_dir / "config.json").write_text(
        spec.replace('"predictor_mlp_dim": 32', '"predictor_mlp_dim": 48')
        .replace('"epochs": 1', '"epochs": 2'))
    out = run_trainer(run_dir)
    assert out.returncode == 2
    assert "does not fit this run" in out.stderr and "model_latest.pth" in out.stderr
    assert events(run_dir)[-1]["type"] == "error"
