# SPDX-License-Identifier: MIT
"""Model commands: export-checkpoint (a run's weights for the public DINO-WM planner)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from dinowm.cli.base import HELP, State, console, main, say


@main.command("export-checkpoint", context_settings=HELP)
@click.argument("run")
@click.option(
    "--epoch",
    type=click.IntRange(min=1),
    default=None,
    help="Export the committed checkpoint of this epoch (default: the newest).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["dino_wm"]),
    default="dino_wm",
    show_default=True,
    help="Target: the public DINO-WM code's plan.py.",
)
@click.option(
    "--dino-wm",
    "checkout",
    metavar="PATH",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Your DINO-WM checkout (holding plan.py and models/); needed: the modules "
    "are pickled through its classes so that its plan.py can unpickle them.",
)
@click.option(
    "--out",
    metavar="DIR",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the model folder here instead of PATH/outputs/<run name>/ (plan.py "
    "finds it when DIR is <base>/outputs/<name>).",
)
@click.option(
    "--dataset-target",
    metavar="FUNC",
    default=None,
    help="env.dataset._target_ in hydra.yaml, the loader plan.py calls (default: "
    "the public loader of a point_maze or wall run; for a franka-layout run "
    "datasets.<env>_dset.load_<env>_slice_train_val, which your checkout "
    "must provide).",
)
@click.pass_obj
def export_checkpoint(
    state: State,
    run: str,
    epoch: int | None,
    fmt: str,
    checkout: Path | None,
    out: Path | None,
    dataset_target: str | None,
) -> None:
    """Export RUN's weights for the public DINO-WM planner (plan.py) of a DINO-WM checkout.

    RUN is an id, a prefix, a name or 'latest'. Its committed epoch checkpoint, verified by its
    sha256, becomes the model folder PATH/outputs/<run name>/ (the run id when the name is not a
    plain file name), where plan.py finds it with ckpt_base_path=PATH model_name=<run name>:

    \b
      checkpoints/model_<epoch>.pth, checkpoints/model_latest.pth
          {epoch, predictor, decoder, action_encoder, proprio_encoder}: module objects of the
          checkout's classes (models/vit.py, vqvae.py, proprio.py), in eval mode
      hydra.yaml
          the run's configuration in the public train keys, and a `dinowm` section: run,
          source checkpoint and sha256, the action/proprio normalisation statistics

    Each file is written atomically (temp file, then rename). The frozen encoder is not saved:
    the planner builds DINOv2 ViT-S/14 from hydra.yaml (a run with the tiny test encoder is
    exported with a warning). Before writing, the public modules are checked to compute what
    dinowm computes. The statistics are the training split's, as dinowm trained with them;
    the public dataset loaders recompute theirs over all episodes. A folder whose hydra.yaml
    belongs to another model is never overwritten. The run's own checkpoints stay as they are.

    The work runs in a child process of dinowm's Python, which must be able to import the
    checkout's models: install einops there (python -m pip install einops). plan.py on
    torch >= 2.6 needs torch.load(..., weights_only=False) for any pickled-module checkpoint.

    \b
    Examples:
      dinowm export-checkpoint latest --dino-wm ~/dino_wm
      dinowm export-checkpoint franka_f5_h3-2 --epoch 40 --dino-wm ~/dino_wm
      cd ~/dino_wm && python plan.py ckpt_base_path=$HOME/dino_wm \\
          model_name=franka_f5_h3-2 model_epoch=40
    """
    from dinowm.trials.planner import export_for_planner

    with state.store() as store:
        row = store.run(run)
    result = export_for_planner(row, checkout, epoch=epoch, out=out, dataset_target=dataset_target)
    _print_export(result, fmt)


def _print_export(result: dict[str, Any], fmt: str) -> None:
    """What the export wrote, the plan.py line that loads it (or where to move it), warnings."""
    console.print(
        f"exported run {result['run_id']} epoch {result['epoch']} "
        f"(sha256 {result['sha256'][:12]}, {fmt})",
        highlight=False,
    )
    for path in result["written"]:
        console.print(f"  wrote {path}", highlight=False, soft_wrap=True)
    if result["plan_command"]:
        console.print(f"plan with it:\n  {result['plan_command']}", highlight=False, soft_wrap=True)
    else:
        console.print(
            "plan.py loads <ckpt_base_path>/outputs/<model_name>/: move the folder "
            "under an outputs/ folder to plan with it",
            highlight=False,
        )
    for text in result["warnings"]:
        say(f"warning: {text}", "yellow")  # the console reads no markup
