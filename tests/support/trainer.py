# SPDX-License-Identifier: MIT
"""Tiny run folders for the trainer: real config.json, real synthetic data, CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from dinowm.config import load_project, resolve, to_dict

REPO = Path(__file__).resolve().parents[2]

# A model small enough for a few seconds per run on 2 cores: 32 px frames, 2x2 patches.
TINY = ["model.encoder=tiny", "model.img_size=32", "model.encoder_img_size=28",
        "model.tiny_dim=16", "model.tiny_depth=1", "model.tiny_heads=2",
        "model.predictor_depth=1", "model.predictor_heads=2", "model.predictor_dim_head=8",
        "model.predictor_mlp_dim=32", "model.decoder_channels=16", "model.decoder_res_blocks=1",
        "model.decoder_res_channels=8", "data.synth_episodes=6", "data.synth_length=30",
        "data.synth_image_size=32", "data.num_workers=0", "training.batch_size=8",
        "training.num_reconstruct_samples=2", "training.rollout_horizon=2",
        "training.precision=fp32", "frameskip=2", "num_hist=2"]


def make_run_dir(root: Path, run_id: str, overrides: list[str]) -> Path:
    """A run folder with config.json resolved from the shipped demo preset + TINY + overrides."""
    if not (root / "dinowm.toml").exists():
        (root / "dinowm.toml").write_text((REPO / "dinowm.toml").read_text())
    resolved = resolve(load_project(root / "dinowm.toml"), "demo", [*TINY, *overrides])
    run_dir = root / "outputs" / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"run_id": run_id,
                                                     "config": to_dict(resolved.config)}))
    return run_dir


def run_trainer(run_dir: Path, env: dict[str, str] | None = None,
                timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The real trainer process, output captured."""
    return subprocess.run([sys.executable, "-m", "dinowm.train", "--run-dir", str(run_dir)],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def events(run_dir: Path) -> list[dict]:
    """All events of a run folder."""
    lines = (run_dir / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def tiny_model(run_dir: Path, data: Path) -> tuple:
    """(cfg, model, train, val, stats, info) of a tiny run folder's config, on a small synthetic
    dataset written at `data`; seeded, on the CPU (imports torch)."""
    from dinowm.config import from_dict
    from dinowm.model.build import build_model
    from dinowm.train.state import seed_everything
    from dinowm.data.datasets import build_datasets
    from dinowm.data.synth import write_synthetic_dataset

    cfg = from_dict(json.loads((run_dir / "config.json").read_text())["config"])
    write_synthetic_dataset(data, episodes=4, length=30, image_size=32, seed=0)
    train, val, stats, info = build_datasets(data, frameskip=cfg.frameskip,
                                             num_hist=cfg.num_hist, num_pred=cfg.num_pred)
    seed_everything(0)
    model = build_model(cfg, info["proprio_dim"], info["sample_action_dim"])
    return cfg, model, train, val, stats, info
