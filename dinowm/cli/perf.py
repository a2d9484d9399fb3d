"""Speed and memory commands: bench, probe."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from dinowm.cli.base import HELP, State, console, echo_json, main


def _ints(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma list of integers, e.g. 8,16,32")
    if not values or min(values) < 1:
        raise click.BadParameter(f"{text!r}: batch sizes must be >= 1, e.g. 8,16,32")
    return values


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value / 1024:.2f} GiB"


@main.command(context_settings=HELP)
@click.option("--preset", "-p", default=None, help="Preset whose model is measured.")
@click.option("--batch", "batches", default="8,16,32", show_default=True,
              help="Comma list of batch sizes.")
@click.option("--mode", "modes", default="fast,reference", show_default=True,
              type=click.Choice(["fast", "reference", "fast,reference", "reference,fast"]),
              help="fast (our path), reference (the public code's costs), or both.")
@click.option("--steps", default=10, show_default=True, type=click.IntRange(min=1))
@click.option("--warmup", default=3, show_default=True, type=click.IntRange(min=0))
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Also write the results as JSON to this file ('-': stdout).")
@click.option("--gpus", default=None, metavar="N|auto",
              help="Scaling instead: the real trainer on 1 GPU and on N (DDP), samples/s and "
                   "efficiency.")
@click.option("--ranks", default=None, type=click.IntRange(min=2),
              help="Scaling on N ranks of this machine's CPU (gloo) or GPUs, like --gpus.")
@click.argument("overrides", nargs=-1)
@click.pass_obj
def bench(state: State, preset: str | None, batches: str, modes: str, steps: int, warmup: int,
          json_path: Path | None, gpus: str | None, ranks: int | None,
          overrides: tuple[str, ...]) -> None:
    """Measure s/step, samples/s, peak memory and loader speed per mode and batch.

    Each trial runs in its own process on synthetic data at the preset's frame size, with a
    randomly initialised encoder. On CPU the peak is the process RSS. With --gpus N (or
    --ranks N) it measures scaling instead: two short real trainings, one rank and N ranks,
    the same global batch (training.batch_size), and the efficiency N-rank samples/s over N x
    one-rank samples/s.

    \b
    Examples:
      dinowm bench --preset demo --batch 8,16
      dinowm bench --preset franka_f5_h3 --batch 8,16,32 --json bench.json
      dinowm bench --preset franka_f5_h3 --gpus auto --steps 20
    """
    from dinowm.trials import bench as run_bench

    if gpus is not None or ranks is not None:
        from dinowm.runs import gpu_ranks

        _scaling(state, preset, list(overrides), ranks or gpu_ranks(gpus or "auto"), steps,
                 json_path)
        return

    sizes = _ints(batches)
    result = run_bench(state.project, preset, list(overrides), sizes, modes.split(","), steps,
                       warmup, report=lambda r: console.print(f"  {r['mode']} batch "
                                                              f"{r['batch']}: {r['status']}"))
    table = Table(title=f"bench {result['preset']} ({result['rows'][0].get('device', '?')})",
                  title_justify="left")
    for col in ("mode", "batch", "s/step", "samples/s", "peak train", "peak val",
                "loader samples/s", "reference/fast"):
        table.add_column(col, justify="left" if col == "mode" else "right")
    for r in result["rows"]:
        ok = r.get("status") == "ok"
        ratio = result["speedup_fast_over_reference"].get(str(r["batch"]))
        table.add_row(r["mode"], str(r["batch"]),
                      f"{r['s_per_step']:.4f}" if ok else r.get("status", "?"),
                      f"{r['samples_per_s']:.1f}" if ok else "-",
                      _mib(r.get("train_peak_mib")), _mib(r.get("val_peak_mib")),
                      f"{r['loader_samples_per_s']:.0f}" if r.get("loader_samples_per_s")
                      else "-", f"{ratio:.2f}x" if ratio and r["mode"] == "fast" else "")
    console.print(table)
    _write_json(result, json_path)


@main.command(context_settings=HELP)
@click.option("--preset", "-p", default=None, help="Preset whose model is probed.")
@click.option("--margin", default=0.9, show_default=True, type=click.FloatRange(0.1, 1.0),
              help="A batch fits when its peak stays under this share of the GPU's memory.")
@click.option("--max-batch", default=1024, show_default=True, type=click.IntRange(min=1))
@click.argument("overrides", nargs=-1)
@click.pass_obj
def probe(state: State, preset: str | None, margin: float, max_batch: int,
          overrides: tuple[str, ...]) -> None:
    """Find the largest batch that fits this GPU and remember it for `dinowm run`.

    Short trials (train steps and a validation pass) in subprocesses, doubling the batch and
    then bisecting. The results go to runs.db; `dinowm run` warns before a batch known not to
    fit this GPU.

    Example: dinowm probe --preset franka_f5_h3
    """
    from dinowm.config import model_hash, resolve
    from dinowm.supervise import hardware
    from dinowm.trials import probe as run_probe

    gpu = hardware.gpu_description()
    if not gpu["gpus"]:
        console.print(f"no GPU ({gpu['nvml'].removeprefix('unavailable: ')}): probe measures "
                      f"GPU memory, so there is nothing to probe on this machine.")
        return
    card = gpu["gpus"][0]
    resolved = resolve(state.project, preset, list(overrides))
    rows = run_probe(state.project, preset, list(overrides), card, margin=margin,
                     max_batch=max_batch,
                     report=lambda r: console.print(f"  batch {r['batch']}: "
                                                    f"{'fits' if r['fits'] else 'does not fit'}"))
    key = model_hash(resolved.config)
    with state.store() as store:
        for r in rows:
            store.add_probe({"gpu_name": card["name"], "vram_mib": card["vram_mib"],
                             "preset": resolved.preset, "model_hash": key,
                             "precision": resolved.config.training.precision, "batch": r["batch"],
                             "peak_mib": r.get("peak_mib"), "fits": int(r["fits"]),
                             "status": r.get("status"), "s_per_step": r.get("s_per_step")})
    console.print(probe_table(card, resolved.preset, rows))


def probe_table(card: dict[str, Any], preset: str, rows: list[dict[str, Any]]) -> Table:
    """Batch, peak VRAM, fits or not: the table the user once estimated by hand."""
    table = Table(title=f"{card['name']} ({card['vram_mib']:,} MiB), preset {preset}",
                  title_justify="left")
    for col in ("batch", "peak VRAM", "status"):
        table.add_column(col, justify="right" if col != "status" else "left")
    best = max((r["batch"] for r in rows if r["fits"]), default=None)
    for r in rows:
        mark = "✅ fits" + (" (largest)" if r["batch"] == best else "") if r["fits"] \
            else f"❌ {'OOM' if r.get('status') == 'oom' else 'over the margin'}"
        table.add_row(str(r["batch"]), _mib(r.get("peak_mib")), mark)
    return table


def _scaling(state: State, preset: str | None, overrides: list[str], ranks: int, steps: int,
             json_path: Path | None) -> None:
    """`dinowm bench --gpus N`: one rank against N, the table and the efficiency."""
    from dinowm.trials import scaling

    result = scaling(state.project, preset, overrides, ranks, steps,
                     report=lambda r: console.print(f"  {r['ranks']} rank(s): {r['status']}"))
    table = Table(title=f"scaling {result['preset']}, global batch {result['batch_size']}",
                  title_justify="left")
    for col in ("ranks", "samples/s", "s/step", "peak GPU memory", "efficiency"):
        table.add_column(col, justify="right")
    for r in result["rows"]:
        ok = r["status"] == "ok"
        eff = result["efficiency"] if r["ranks"] > 1 and result["efficiency"] else None
        table.add_row(str(r["ranks"]), f"{r['samples_per_s']:.1f}" if ok else r["status"],
                      f"{r['s_per_step']:.4f}" if ok else r.get("error", "-")[:40],
                      _mib(r.get("peak_gpu_mem_mib")), f"{eff:.0%}" if eff else "")
    console.print(table)
    _write_json(result, json_path)


def _write_json(result: dict[str, Any], json_path: Path | None) -> None:
    """--json PATH: the results as JSON ('-': stdout)."""
    if json_path is None:
        return
    if str(json_path) == "-":
        echo_json(result)
    else:
        json_path.write_text(json.dumps(result, indent=1))
        console.print(f"wrote {json_path}")
