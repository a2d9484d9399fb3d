# SPDX-License-Identifier: MIT
"""Speed and memory commands: bench, probe."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

from dinowm.cli.base import HELP, State, console, echo_json, err_console, main
from dinowm.cli.perfviews import bench_table, probe_table, profile_view, scaling_table
from dinowm.formats import literal_text

if TYPE_CHECKING:
    from dinowm.config import Resolved
    from dinowm.trials.bench import Variant


def _ints(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a comma list of integers, e.g. 8,16,32"
        ) from None
    if not values or min(values) < 1:
        raise click.BadParameter(f"{text!r}: batch sizes must be >= 1, e.g. 8,16,32")
    return values


@main.command(context_settings=HELP)
@click.option("--preset", "-p", default=None, help="Preset whose model is measured.")
@click.option(
    "--batch", "batches", default="8,16,32", show_default=True, help="Comma list of batch sizes."
)
@click.option(
    "--mode",
    "modes",
    default="fast,reference",
    show_default=True,
    type=click.Choice(["fast", "reference", "fast,reference", "reference,fast"]),
    help="fast (our path), reference (the public code's costs), or both.",
)
@click.option(
    "--variants",
    default=None,
    metavar="MODE[:KEY=VALUE...],...",
    help="Instead of --mode: variants side by side, each a mode and the config keys "
    "it changes (a key's last part will do when unique), e.g. "
    "fast,fast:decoder_every=4,fast:decoder=off,reference.",
)
@click.option("--steps", default=10, show_default=True, type=click.IntRange(min=1))
@click.option("--warmup", default=3, show_default=True, type=click.IntRange(min=0))
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the results as JSON to this file ('-': stdout).",
)
@click.option(
    "--profile",
    "profile_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="PATH",
    help="Instead: one trial (one --batch, one variant; fast by default) with its "
    "step decomposed into parts and torch.profiler's top ops, written to "
    "PATH.txt and PATH.json.",
)
@click.option(
    "--mem-cap-gib",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="GIB",
    help="Cap each trial's CUDA memory at GIB (a smaller card on a large one); needs a GPU.",
)
@click.option(
    "--gpus",
    default=None,
    metavar="N|auto",
    help="Scaling instead: the real trainer on 1 GPU and on N (DDP), samples/s and efficiency.",
)
@click.option(
    "--ranks",
    default=None,
    type=click.IntRange(min=2),
    help="Scaling on N ranks of this machine's CPU (gloo) or GPUs, like --gpus.",
)
@click.argument("overrides", nargs=-1)
@click.pass_context
def bench(
    ctx: click.Context,
    preset: str | None,
    batches: str,
    modes: str,
    variants: str | None,
    steps: int,
    warmup: int,
    json_path: Path | None,
    profile_path: Path | None,
    mem_cap_gib: float | None,
    gpus: str | None,
    ranks: int | None,
    overrides: tuple[str, ...],
) -> None:
    """Measure s/step, samples/s, TFLOP/s, peak memory and loader speed per variant and batch.

    Each trial runs in its own process on synthetic data at the preset's frame size, with a
    randomly initialised encoder, its steps as the trainer takes them (the decoder on
    training.decoder_every's schedule). s/step is the mean of the measured steps; TFLOP/s
    is the FLOPs of a step (matmuls, convolutions, attention; torch's FlopCounterMode) over
    it, and % peak its share of the card's dense BF16 peak (vendor datasheet; none on the
    CPU or an unlisted card). "vs reference" is reference's s/step over the row's, at the
    same batch. On CPU the peak memory is the process RSS.

    --profile PATH times one trial's step whole and cut into its parts (data wait, copy to
    the device, encoder, predictor and decoder forward and backward, metrics, optimiser),
    synchronised between them; host/other is the whole minus the parts. --mem-cap-gib caps
    the CUDA allocator of each trial (the CUDA context comes on top).

    With --gpus N (or --ranks N) it measures scaling instead: two short real trainings, one
    rank and N ranks, the same global batch (training.batch_size), and the efficiency N-rank
    samples/s over N x one-rank samples/s.

    \b
    Examples:
      dinowm bench --preset demo --batch 8,16
      dinowm bench --preset franka_f5_h3 --batch 8,16,32 --json bench.json
      dinowm bench --preset franka_f5_h3 --batch 32 \\
          --variants fast,fast:decoder_every=4,fast:decoder=off,reference
      dinowm bench --preset franka_f5_h3 --batch 32 --profile prof/franka_b32
      dinowm bench --preset franka_f5_h3 --batch 32 --mem-cap-gib 16
      dinowm bench --preset franka_f5_h3 --gpus auto --steps 20
    """
    state: State = ctx.obj
    if gpus is not None or ranks is not None:
        _refuse_beside_scaling(profile_path, mem_cap_gib, variants)
        _scaling(state, preset, list(overrides), gpus, ranks, steps, json_path)
        return
    sizes, chosen = _trial_settings(ctx, batches, modes, variants, profile_path, mem_cap_gib)
    if profile_path is not None:
        _profile(
            state, preset, list(overrides), chosen, sizes, steps, warmup, profile_path, mem_cap_gib
        )
        return
    _compare(state, preset, list(overrides), sizes, chosen, steps, warmup, mem_cap_gib, json_path)


def _refuse_beside_scaling(
    profile_path: Path | None, mem_cap_gib: float | None, variants: str | None
) -> None:
    """--gpus/--ranks measure scaling: the options of the other trials are refused with them."""
    if profile_path or mem_cap_gib or variants:
        raise click.UsageError(
            "--gpus/--ranks measure scaling: leave out --profile, --mem-cap-gib and --variants."
        )


def _trial_settings(
    ctx: click.Context,
    batches: str,
    modes: str,
    variants: str | None,
    profile_path: Path | None,
    mem_cap_gib: float | None,
) -> tuple[list[int], list[Variant]]:
    """--batch and the variants of the trials, parsed; --mem-cap-gib checked against the card."""
    from dinowm.trials.bench import memory_cap_card

    sizes = _ints(batches)
    chosen = _variants(ctx, modes, variants, profile_path)
    if mem_cap_gib is not None:
        memory_cap_card(mem_cap_gib)
    return sizes, chosen


def _compare(
    state: State,
    preset: str | None,
    overrides: list[str],
    sizes: list[int],
    chosen: list[Variant],
    steps: int,
    warmup: int,
    mem_cap_gib: float | None,
    json_path: Path | None,
) -> None:
    """`dinowm bench`: every (variant, batch) trial, as a table."""
    from dinowm.trials.bench import bench as run_bench

    screen = _screen(json_path)
    result = run_bench(
        state.project,
        preset,
        overrides,
        sizes,
        chosen,
        steps,
        warmup,
        mem_cap_gib=mem_cap_gib,
        report=lambda r: screen.print(
            literal_text(f"  {r['variant']} batch {r['batch']}: {r['status']}")
        ),
    )
    screen.print(bench_table(result))
    _write_json(result, json_path)


def _variants(
    ctx: click.Context, modes: str, variants: str | None, profile_path: Path | None
) -> list[Variant]:
    """--variants, or --mode (both modes by default; a profile's default is fast alone)."""
    from dinowm.trials.bench import parse_variants

    explicit_mode = ctx.get_parameter_source("modes") != click.core.ParameterSource.DEFAULT
    if variants is not None and explicit_mode:
        raise click.UsageError(
            "give --variants or --mode, not both: --variants fast,reference "
            "is --mode fast,reference."
        )
    if variants is None:
        variants = modes if explicit_mode or profile_path is None else "fast"
    return parse_variants(variants)


def _profile(
    state: State,
    preset: str | None,
    overrides: list[str],
    chosen: list[Variant],
    sizes: list[int],
    steps: int,
    warmup: int,
    path: Path,
    mem_cap_gib: float | None,
) -> None:
    """`dinowm bench --profile PATH`: one trial's step cut into its parts, as a table."""
    from dinowm.trials.bench import profile

    if len(sizes) != 1:
        raise click.UsageError(
            f"--profile measures one trial: give one --batch, not "
            f"{','.join(map(str, sizes))} (e.g. --batch 32)."
        )
    if len(chosen) != 1:
        raise click.UsageError(
            f"--profile measures one trial: give one variant, not "
            f"{','.join(v.label for v in chosen)} (e.g. --variants "
            f"fast:decoder_every=4; fast is the default)."
        )
    console.print(literal_text(f"  profiling {chosen[0].label} at batch {sizes[0]}"))
    r = profile(
        state.project,
        preset,
        overrides,
        chosen[0],
        sizes[0],
        steps,
        warmup,
        path,
        mem_cap_gib=mem_cap_gib,
    )
    console.print(profile_view(r))


@main.command(context_settings=HELP)
@click.option("--preset", "-p", default=None, help="Preset whose model is probed.")
@click.option(
    "--margin",
    default=0.9,
    show_default=True,
    type=click.FloatRange(0.1, 1.0),
    help="A batch fits when its peak stays under this share of the GPU's memory (or of the cap).",
)
@click.option(
    "--min-batch",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Start doubling here (a batch known to fit saves trials).",
)
@click.option("--max-batch", default=1024, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--mem-cap-gib",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="GIB",
    help="Probe GIB of this GPU's memory, as a smaller card would "
    "have (not remembered in runs.db).",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the trials as JSON to this file ('-': stdout).",
)
@click.argument("overrides", nargs=-1)
@click.pass_obj
def probe(
    state: State,
    preset: str | None,
    margin: float,
    min_batch: int,
    max_batch: int,
    mem_cap_gib: float | None,
    json_path: Path | None,
    overrides: tuple[str, ...],
) -> None:
    """Find the largest batch that fits this GPU and remember it for `dinowm run`.

    Short trials (train steps and a validation pass) in subprocesses, doubling the batch from
    --min-batch and then bisecting. The results go to runs.db; `dinowm run` warns before a
    batch known not to fit this GPU. With --mem-cap-gib GIB each trial's CUDA allocator is
    capped at GIB, so a large GPU shows what fits a smaller card (the CUDA context, a few
    hundred MiB, comes on top: the default margin leaves room for it); such a probe is not
    remembered.

    \b
    Examples:
      dinowm probe --preset franka_f5_h3
      dinowm probe --preset franka_f5_h3 --mem-cap-gib 16 --min-batch 16
    """
    from dinowm.config import resolve
    from dinowm.trials.bench import probe as run_probe

    screen = _screen(json_path)
    card = _card_to_probe(mem_cap_gib, screen)
    if card is None:
        return
    resolved = resolve(state.project, preset, list(overrides))
    rows = run_probe(
        state.project,
        preset,
        list(overrides),
        card,
        margin=margin,
        max_batch=max_batch,
        min_batch=min_batch,
        mem_cap_gib=mem_cap_gib,
        report=lambda r: screen.print(
            f"  batch {r['batch']}: {'fits' if r['fits'] else 'does not fit'}"
        ),
    )
    if mem_cap_gib is None:
        _remember_probe(state, card, resolved, rows)
    screen.print(probe_table(card, resolved.preset, rows, mem_cap_gib))
    _write_json(_probe_result(card, resolved.preset, margin, mem_cap_gib, rows), json_path)


def _probe_result(
    card: dict[str, Any],
    preset: str,
    margin: float,
    mem_cap_gib: float | None,
    rows: list[dict[str, Any]],
) -> dict[str, Any]:
    """--json of `dinowm probe`: the card, the settings, the largest batch that fit, the trials."""
    best = max((r["batch"] for r in rows if r["fits"]), default=None)
    return {
        "gpu": card,
        "preset": preset,
        "margin": margin,
        "mem_cap_gib": mem_cap_gib,
        "largest_fitting_batch": best,
        "rows": rows,
    }


def _card_to_probe(mem_cap_gib: float | None, screen: Console) -> dict[str, Any] | None:
    """This machine's first GPU, with --mem-cap-gib checked against it; None, said, without
    a GPU."""
    from dinowm.supervise import hardware
    from dinowm.trials.bench import memory_cap_card

    if mem_cap_gib is not None:
        memory_cap_card(mem_cap_gib)
    gpu = hardware.gpu_description()
    if not gpu["gpus"]:
        screen.print(
            literal_text(
                f"no GPU ({gpu['nvml'].removeprefix('unavailable: ')}): probe measures "
                f"GPU memory, so there is nothing to probe on this machine."
            )
        )
        return None
    return gpu["gpus"][0]


def _remember_probe(
    state: State, card: dict[str, Any], resolved: Resolved, rows: list[dict[str, Any]]
) -> None:
    """The probe's trials into runs.db, where `dinowm run` checks a batch against them."""
    from dinowm.trials.bench import probe_records

    records = probe_records(card, resolved, rows)
    with state.store() as store:
        for record in records:
            store.add_probe(record)


def _scaling(
    state: State,
    preset: str | None,
    overrides: list[str],
    gpus: str | None,
    ranks: int | None,
    steps: int,
    json_path: Path | None,
) -> None:
    """`dinowm bench --gpus N` (or --ranks N): one rank against N, the table and the
    efficiency."""
    from dinowm.runs import gpu_ranks
    from dinowm.trials.scaling import scaling

    screen = _screen(json_path)
    result = scaling(
        state.project,
        preset,
        overrides,
        ranks or gpu_ranks(gpus or "auto"),
        steps,
        report=lambda r: screen.print(literal_text(f"  {r['ranks']} rank(s): {r['status']}")),
    )
    screen.print(scaling_table(result))
    _write_json(result, json_path)


def _write_json(result: dict[str, Any], json_path: Path | None) -> None:
    """--json PATH: the results as JSON ('-': stdout)."""
    if json_path is None:
        return
    if str(json_path) == "-":
        echo_json(result)
    else:
        json_path.write_text(json.dumps(result, indent=1))
        console.print(literal_text(f"wrote {json_path}"))


def _screen(json_path: Path | None) -> Console:
    """Where the tables go: stdout, or stderr when --json - makes stdout one JSON document."""
    return err_console if json_path is not None and str(json_path) == "-" else console
