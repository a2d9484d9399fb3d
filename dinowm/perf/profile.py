# SPDX-License-Identifier: MIT
"""`python -m dinowm.perf.profile SPEC_JSON`: where the time of one training step goes.

A bench trial (dinowm.perf.bench) whose steps are timed twice, both by the trainer's own step
function (dinowm.train.step.train_step). Whole: the next batch from the DataLoader, the copy
to the device and the step, synchronised once at the end. Decomposed: the same function with
a `mark` that synchronises the device at each of its parts and times them, the backward in
two: the decoder only ever sees detached latents, so backpropagating z_loss and the
reconstruction loss one after the other gives the gradients of the step's one backward of
their sum. Each measured step runs whole,
then decomposed; each part is its mean over those steps (the decoder schedule included).
host/other is the whole step minus the parts: host work outside them, less the overlap of
host and device that the synchronisations take away (so it can be negative). A
torch.profiler table of a few whole steps comes with it, ops sorted by self device time on
CUDA, self CPU time on the CPU. Writes OUT.json and OUT.txt; prints the JSON as one line.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity

from dinowm.perf.bench import Trial, build_trial, flop_per_step, sync, throughput

PARTS = {
    "data_wait": "data wait (next batch from the DataLoader)",
    "h2d_copy": "host-to-device copy (and uint8 → float frames)",
    "encoder_forward": "encoder forward (frozen, no grad) + proprio/action embeddings",
    "predictor_forward": "predictor forward + z_loss",
    "predictor_backward": "predictor backward (z_loss)",
    "decoder_forward": "decoder forward (detached latents) + reconstruction loss",
    "decoder_backward": "decoder backward (reconstruction loss)",
    "metrics": "metrics (no grad: latent errors, image metrics, decoded predictions)",
    "optimizer": "zero_grad + optimiser steps",
}
OTHER = "host_other"
TOP_OPS = 25


def endless(loader: Any) -> Iterator[dict[str, torch.Tensor]]:
    """The loader's batches, epoch after epoch."""
    while True:
        yield from loader


def whole_step(t: Trial, data: Iterator, i: int) -> float:
    """Seconds of step i with its data wait and copy, synchronised at the end only."""
    sync(t.device)
    tick = time.perf_counter()
    t.step(next(data), i)
    sync(t.device)
    return time.perf_counter() - tick


def decomposed_step(t: Trial, data: Iterator, i: int) -> tuple[dict[str, float], float]:
    """Step i, the trainer's own step function, timed in PARTS: the device synchronised at
    each of the step's marks, the backward in two; seconds per part, and the live loss."""
    parts = dict.fromkeys(PARTS, 0.0)
    mark = _marker(t.device, parts)
    batch = next(data)
    mark("data_wait")
    loss = t.step(batch, i, mark=mark, split_backward=True)
    return parts, loss


def _marker(device: torch.device, parts: dict[str, float]) -> Callable[[str], None]:
    """mark(name): the seconds since the previous mark, synchronised, added to `name`."""
    last = [time.perf_counter()]

    def mark(name: str) -> None:
        sync(device)
        now = time.perf_counter()
        parts[name] = parts.get(name, 0.0) + now - last[0]
        last[0] = now

    return mark


def top_ops(t: Trial, data: Iterator, steps: range) -> tuple[str, list[dict[str, Any]]]:
    """torch.profiler over whole steps: its table and the top ops, by self device time on
    CUDA, self CPU time on the CPU."""
    cuda = t.device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with torch.profiler.profile(activities=activities) as prof:
        for i in steps:
            whole_step(t, data, i)
    sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    averages = prof.key_averages()
    table = averages.table(sort_by=sort, row_limit=TOP_OPS)
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    rows = sorted(averages, key=lambda e: getattr(e, key), reverse=True)[:TOP_OPS]
    return table, [
        {
            "name": e.key,
            "calls": e.count,
            "self_cpu_s": e.self_cpu_time_total / 1e6,
            "self_device_s": e.self_device_time_total / 1e6 if cuda else None,
            "cpu_total_s": e.cpu_time_total / 1e6,
            "device_total_s": e.device_time_total / 1e6 if cuda else None,
        }
        for e in rows
    ]


def profile(spec: dict[str, Any]) -> dict[str, Any]:
    """The whole step, its parts and the top ops of one trial; writes OUT.json and OUT.txt."""
    t = build_trial(spec)
    data = endless(t.loader)
    warmup, steps = spec["warmup"], spec["steps"]
    measured = range(warmup, warmup + steps)
    for i in range(warmup):
        whole_step(t, data, i)
    samples, sums = [], dict.fromkeys(PARTS, 0.0)
    for i in measured:  # each step twice, in turn: both see the same machine, the same schedule
        whole_s = whole_step(t, data, i)
        parts, _ = decomposed_step(t, data, i)
        for name, seconds in parts.items():
            sums[name] += seconds
        samples.append({"step": i, "whole_s": whole_s, "parts_s": sum(parts.values())})
    whole = sum(x["whole_s"] for x in samples) / steps
    means = {name: s / steps for name, s in sums.items()}
    means[OTHER] = whole - sum(means.values())
    labels = {**PARTS, OTHER: "host/other (whole step minus the parts)"}
    profiled = range(measured.stop, measured.stop + spec.get("profile_steps", 3))
    table, ops = top_ops(t, data, profiled)
    flops = flop_per_step(t, next(data), measured)
    t.stepper.out = {}
    result = {
        "mode": t.cfg.perf.mode,
        "batch": t.batch,
        "device": str(t.device),
        "gpu": torch.cuda.get_device_name(t.device) if t.device.type == "cuda" else None,
        "decoder": t.cfg.model.decoder,
        "workers": spec.get("workers", 0),
        "decoder_every": t.mode.decoder_every if t.model.has_decoder else None,
        "mem_cap_gib": spec.get("mem_cap_gib"),
        "warmup": warmup,
        "steps": steps,
        "step_s": whole,
        "samples": samples,
        "components": [
            {"name": name, "label": labels[name], "s": s, "share": s / whole}
            for name, s in means.items()
        ],
        "profiler": {
            "sort_by": "self device time" if t.device.type == "cuda" else "self CPU time",
            "steps": len(profiled),
            "top": ops,
        },
        **throughput(
            flops, whole, torch.cuda.get_device_name(t.device) if t.device.type == "cuda" else None
        ),
    }
    out = Path(spec["out"])
    out.parent.mkdir(parents=True, exist_ok=True)
    files = {
        "json": str(out.with_name(out.name + ".json")),
        "txt": str(out.with_name(out.name + ".txt")),
    }
    result["files"] = files
    Path(files["json"]).write_text(json.dumps(result, indent=1))
    Path(files["txt"]).write_text(text_report(result) + "\n\n" + table)
    return result


def text_report(r: dict[str, Any]) -> str:
    """The component table as plain text, with what was measured."""
    where = r["gpu"] or r["device"]
    decoder = "off" if r["decoder"] == "off" else f"every {r['decoder_every']} step(s)"
    lines = [
        f"profile: {r['mode']} mode, batch {r['batch']}, {where}, decoder {decoder}, "
        f"mean of {r['steps']} steps after {r['warmup']} warmup",
        f"{'component':<72}{'s':>10}{'share':>8}",
    ]
    for c in r["components"]:
        lines.append(f"{c['label']:<72}{c['s']:>10.5f}{c['share']:>8.1%}")
    lines.append(f"{'whole step':<72}{r['step_s']:>10.5f}{1:>8.1%}")
    if r["achieved_tflops"]:
        peak = (
            f", {r['pct_of_peak']:.1f}% of the {r['peak_card']} dense BF16 peak "
            f"({r['peak_tflops']:g})"
            if r["pct_of_peak"]
            else f"; {r['peak_note']}"
        )
        lines.append(
            f"{r['flop_per_step'] / 1e9:.3g} GFLOP per step, "
            f"{r['achieved_tflops']:.3g} TFLOP/s over the whole step{peak}"
        )
    return "\n".join(lines)


def main() -> int:
    spec = json.loads(sys.argv[1])
    print(json.dumps(profile(spec)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
