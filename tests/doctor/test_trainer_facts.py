# SPDX-License-Identifier: MIT
"""What the doctor knows without torch agrees with the trainer (one torch import for all)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dinowm.config import DINOV2_WEIGHTS_FILE, build, load_project, resolve
from dinowm.errors import ConfigError
from dinowm.doctor import project, space
from dinowm.schema import all_keys

REPO = Path(__file__).resolve().parents[2]


def test_the_torch_free_facts_match_the_trainer(tmp_path, monkeypatch) -> None:
    import torch

    from dinowm.model import encoder
    from dinowm.model.build import build_model

    default = build({k: key.default for k, key in all_keys().items()})
    # DINOv2 ViT-S/14 as a real run recorded it; predictor and decoder as docs/REFERENCE counts
    assert space.parameter_counts(default) == {"encoder": 22_056_576, "predictor": 20_122_600,
                                               "decoder": 10_140_163}
    demo = resolve(load_project(REPO / "dinowm" / "dinowm.toml"), "demo").config
    real = build_model(demo, 3, 18, load_weights=False).parameter_counts()
    assert space.parameter_counts(demo) == {k: real[k] for k in ("encoder", "predictor",
                                                                 "decoder")}

    # the doctor, `dinowm run`'s preflight and the encoder look at the same weights file,
    # where torch.hub keeps it (tests/core/test_weights_path.py: torch's own answer)
    encoder_ = encoder.build_encoder("dinov2_vits14", 196, 64, 2, 4)
    for env in ({"TORCH_HOME": str(tmp_path / "th")}, {"XDG_CACHE_HOME": str(tmp_path / "x")}):
        monkeypatch.delenv("TORCH_HOME", raising=False)
        monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        expected = Path(torch.hub.get_dir()) / "checkpoints" / DINOV2_WEIGHTS_FILE
        resolved = {"franka_f5_h3": resolve(load_project(REPO / "dinowm" / "dinowm.toml"),
                                            "franka_f5_h3")}
        assert f"{expected} is missing" in project.check_weights(resolved, "franka_f5_h3",
                                                                env).found
        with pytest.raises(ConfigError, match=f"DINOv2 weights not found at {expected}:"):
            encoder.load_dinov2_weights(encoder_, None)
