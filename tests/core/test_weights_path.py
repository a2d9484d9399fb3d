# SPDX-License-Identifier: MIT
"""Where the DINOv2 weights are: config.dinov2_weights_path gives torch.hub's own answer for
every TORCH_HOME and XDG_CACHE_HOME (unset, set, set but empty, with '~'), without torch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dinowm.config import DINOV2_WEIGHTS_FILE, dinov2_weights_path

UNSET = None
CASES = [  # (TORCH_HOME, XDG_CACHE_HOME)
    (UNSET, UNSET), ("{tmp}/th", UNSET), (UNSET, "{tmp}/xdg"), ("{tmp}/th", "{tmp}/xdg"),
    ("", UNSET), (UNSET, ""), ("", ""), ("", "{tmp}/xdg"), ("{tmp}/th", ""),
    ("~/th", UNSET), (UNSET, "~/xdg"), ("~", UNSET), (UNSET, "~"),
]


@pytest.mark.parametrize(("torch_home", "xdg"), CASES)
def test_the_weights_path_is_torch_hubs(torch_home: str | None, xdg: str | None,
                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name, value in (("TORCH_HOME", torch_home), ("XDG_CACHE_HOME", xdg)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value.format(tmp=tmp_path))
    expected = Path(torch.hub.get_dir()) / "checkpoints" / DINOV2_WEIGHTS_FILE
    assert dinov2_weights_path("") == expected
    # the doctor passes the environment it checks rather than reading os.environ
    assert dinov2_weights_path("", dict(os.environ)) == expected


def test_a_configured_file_wins_with_its_tilde_expanded(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert dinov2_weights_path("~/w/dinov2.pth") == tmp_path / "w" / "dinov2.pth"
    assert dinov2_weights_path("/abs/dinov2.pth", {"TORCH_HOME": "/x"}) == \
        Path("/abs/dinov2.pth")
