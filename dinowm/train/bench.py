"""One benchmark trial in its own process: loader, train steps and a validation pass.

`python -m dinowm.train.bench SPEC_JSON` prints one JSON line. A trial builds the model of the
given config with a randomly initialised encoder (no weights file needed), runs `warmup` then
`steps` training steps at the given micro-batch and mode, then validation batches, and reports
s/step, samples/s, peak memory (GPU, or process RSS on CPU) and loader samples/s.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from typing import Any

import torch

from dinowm.config import from_dict, with_values
from dinowm.train.build import build_model, build_optimizers, seed_everything
from dinowm.train.data import ReferenceDataset, build_datasets, prepare_frames
from dinowm.train.mode import Mode


def _peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def trial(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one (mode, batch) trial; returns the measured numbers (or the OOM)."""
    cfg = with_values(from_dict(spec["config"]), perf__mode=spec["mode"],
                      training__batch_size=spec["batch"], training__grad_accum=1)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    reference = cfg.perf.mode == "reference"
    seed_everything(cfg.seed)
    train_ds, val_ds, _, info = build_datasets(
        spec["data_path"], frameskip=cfg.frameskip, num_hist=cfg.num_hist, num_pred=cfg.num_pred,
        split_ratio=cfg.data.split_ratio, split_seed=cfg.data.split_seed)
    model = build_model(cfg, info["proprio_dim"], info["sample_action_dim"],
                        load_weights=False).to(device)
    Mode.of(cfg).prepare(model, device)
    optimizers = build_optimizers(model, cfg, device)
    b = spec["batch"]
    source = ReferenceDataset(train_ds, cfg.model.img_size) if reference else train_ds
    loader = torch.utils.data.DataLoader(source, batch_size=b, shuffle=True, drop_last=True,
                                         num_workers=spec.get("workers", 0),
                                         pin_memory=device.type == "cuda")
    result: dict[str, Any] = {"mode": cfg.perf.mode, "batch": b, "device": str(device),
                              "gpu": torch.cuda.get_device_name(device)
                              if device.type == "cuda" else None}
    loader_batches = spec.get("loader_batches", 3)
    tick = time.perf_counter()
    batches = []
    for i, batch in enumerate(loader):
        batches.append(batch)
        if i + 1 >= loader_batches:
            break
    result["loader_samples_per_s"] = len(batches) * b / (time.perf_counter() - tick)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16)
                if device.type == "cuda" and not reference and cfg.training.precision == "bf16"
                else torch.autocast(device.type, enabled=False))

    def to_device(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        visual = batch["visual"].to(device, non_blocking=True)
        if visual.dtype == torch.uint8:
            visual = prepare_frames(visual, cfg.model.img_size)
        return visual, batch["proprio"].to(device), batch["action"].to(device)

    try:
        times = []
        out: Any = None
        for i in range(spec["warmup"] + spec["steps"]):
            visual, proprio, action = to_device(batches[i % len(batches)])
            _sync(device)
            t0 = time.perf_counter()
            for opt in optimizers.values():
                opt.zero_grad(set_to_none=True)
            with autocast:
                out = model(visual, proprio, action, decode_pred=reference or i % 10 == 0,
                            image_metrics_on=reference or i % 10 == 0,
                            keep_pred_graph=reference)
            out["loss"].backward()
            for opt in optimizers.values():
                opt.step()
            _sync(device)
            if i >= spec["warmup"]:
                times.append(time.perf_counter() - t0)
        result["train_peak_mib"] = _peak_mib(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        model.eval()
        grad = torch.enable_grad() if reference else torch.no_grad()
        for batch in batches[:2]:
            visual, proprio, action = to_device(batch)
            with autocast, grad:
                out = model(visual, proprio, action, decode_pred=True, keep_pred_graph=reference)
        _sync(device)
        result["val_peak_mib"] = _peak_mib(device)
        times.sort()
        result["s_per_step"] = times[len(times) // 2]
        result["samples_per_s"] = b / result["s_per_step"]
        result["status"] = "ok"
    except torch.cuda.OutOfMemoryError as exc:
        result.update(status="oom", error=str(exc).splitlines()[0][:200],
                      train_peak_mib=_peak_mib(device))
    return result


def main() -> int:
    spec = json.loads(sys.argv[1])
    print(json.dumps(trial(spec)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
