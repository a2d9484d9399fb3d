# SPDX-License-Identifier: MIT
"""What the doctor knows without torch agrees with the trainer (one torch import for all)."""

from __future__ import annotations

from pathlib import Path

from dinowm.config import build, load_project, resolve
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

    assert (project.WEIGHTS_FILE, project.WEIGHTS_URL) == (encoder.WEIGHTS_FILE,
                                                           encoder.WEIGHTS_URL)
    for env in ({"TORCH_HOME": str(tmp_path / "th")}, {"XDG_CACHE_HOME": str(tmp_path / "x")}):
        monkeypatch.delenv("TORCH_HOME", raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        assert project.hub_checkpoints(env) / project.WEIGHTS_FILE == \
            encoder.default_weights_path() == Path(torch.hub.get_dir()) / "checkpoints" / \
            project.WEIGHTS_FILE
