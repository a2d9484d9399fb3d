# SPDX-License-Identifier: MIT
"""`python -m dinowm.interop.tools NAME JSON`: the trainer's code for torch-free callers (dataset
checks, synthetic data, the export for the public planner).

The CLI and the TUI never import torch: they run these in a child process (dinowm.trials) and
read one JSON object from stdout: {"ok": true, "result": ...} or {"ok": false, "error": the
one-line message, "exit_code": n}.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Callable
from typing import Any

from dinowm.errors import DinowmError


def _validate(a: dict[str, Any]) -> dict[str, Any]:
    from dinowm.data.check import validate_dataset

    _, report = validate_dataset(
        a["path"], a["layout"], a["n_rollouts"], a["frameskip"], a["num_hist"], a["num_pred"]
    )
    return {"warnings": report.warnings}


def _check(a: dict[str, Any]) -> dict[str, Any]:
    from dinowm.data.check import check_dataset

    return check_dataset(a["path"], a["layout"], a["frameskip"], a["num_hist"], a["num_pred"])


def _synth(a: dict[str, Any]) -> dict[str, Any]:
    from dinowm.data.synth import write_synthetic_dataset

    return write_synthetic_dataset(
        a["path"],
        episodes=a["episodes"],
        length=a["length"],
        image_size=a["image_size"],
        seed=a["seed"],
    )


def _random_encoder(a: dict[str, Any]) -> dict[str, Any]:
    """DINOv2 ViT-S/14 weights with random values in the official layout (a bench needs the
    shapes and the cost, never the pretrained values)."""
    import torch

    from dinowm.model.encoder import build_encoder

    torch.manual_seed(0)
    encoder = build_encoder("dinov2_vits14", a["img_size"], 64, 2, 4)
    torch.save(encoder.state_dict(), a["path"])
    return {"path": a["path"]}


def _export_dino_wm(a: dict[str, Any]) -> dict[str, Any]:
    """A verified checkpoint as the public planner's model folder (see public_export)."""
    from pathlib import Path

    from dinowm.interop.export import export

    return export(
        Path(a["checkpoint"]),
        Path(a["checkout"]),
        Path(a["out"]),
        a["run_name"],
        a["dataset_target"],
        a["paths"],
    )


TOOLS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "validate": _validate,
    "check": _check,
    "synth": _synth,
    "random_encoder": _random_encoder,
    "export_dino_wm": _export_dino_wm,
}


def main(argv: list[str]) -> int:
    name, args = argv[0], json.loads(argv[1])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = TOOLS[name](args)
        out: dict[str, Any] = {"ok": True, "result": result}
    except DinowmError as exc:
        out = {
            "ok": False,
            "error": str(exc),
            "exit_code": exc.exit_code,
            "kind": type(exc).__name__,
        }
    print(json.dumps(out, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
