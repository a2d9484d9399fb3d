"""GPU check: the real trainer process at the full franka_f5_h3 model size, a few configs.

Builds synthetic franka-layout data at 224 px and an official-layout DINOv2 ViT-S/14 weights
file with random weights (no download), then runs `python -m dinowm.train` for a fixed number
of steps per configuration and reads s/step, samples/s and peak GPU memory from events.jsonl.
Prints one table; writes JSON to --out. `--tiny` runs the same path on CPU in seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def fake_dinov2_weights(path: Path) -> None:
    """Random weights in the official key layout (what dinov2_vits14_pretrain.pth holds)."""
    from dinowm.train.encoder import build_encoder

    import torch

    enc = build_encoder("dinov2_vits14", 196, 64, 2, 4)
    torch.save(enc.state_dict(), path)


def run_config(root: Path, name: str, overrides: list[str], timeout: float) -> dict:
    from dinowm.config import load_project, resolve, to_dict

    cfg = resolve(load_project(REPO / "dinowm.toml"), "franka_f5_h3", overrides).config
    run_dir = root / name
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps({"run_id": name, "config": to_dict(cfg)}))
    t0 = time.time()
    with open(run_dir / "train.log", "w") as log:
        proc = subprocess.run([sys.executable, "-m", "dinowm.train", "--run-dir", str(run_dir)],
                              stdout=log, stderr=subprocess.STDOUT, timeout=timeout,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    events = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]
    beats = [e for e in events if e["type"] == "heartbeat" and "step_s" in e]
    steady = [e["step_s"] for e in beats[len(beats) // 3:]] or [float("nan")]
    epoch = next((e for e in events if e["type"] == "epoch"), {})
    err = next((e for e in events if e["type"] == "error"), None)
    s_step = statistics.median(steady)
    return {"config": name, "rc": proc.returncode, "steps": len(beats), "s_per_step": s_step,
            "samples_per_s": cfg.training.batch_size / s_step,
            "peak_gpu_mib": epoch.get("peak_gpu_mem_mib"), "wall_s": time.time() - t0,
            "epoch_s": epoch.get("duration_s"), "train_loss": epoch.get("train_loss"),
            "z_err_pred": epoch.get("z_err_pred"),
            "error": err and err.get("message")}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("/tmp/dinowm_gpu_check"))
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "gpu_check.json")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--tiny", action="store_true", help="CPU smoke test of this script")
    args = ap.parse_args()
    import torch

    from dinowm.train.synth import write_synthetic_dataset

    args.work.mkdir(parents=True, exist_ok=True)
    data = args.work / ("data_tiny" if args.tiny else "data_224")
    if not data.exists():
        size, length = (32, 40) if args.tiny else (224, 160)
        write_synthetic_dataset(data, episodes=6, length=length, image_size=size, seed=0)
    weights = args.work / "dinov2_vits14_random.pth"
    if not weights.exists():
        fake_dinov2_weights(weights)
    base = [f"data.path={data}", "data.synthetic=false", f"model.encoder_weights={weights}",
            "training.epochs=1", f"training.max_steps_per_epoch={args.steps}",
            "data.num_workers=4", "training.num_reconstruct_samples=4", "data.split_ratio=0.84"]
    if args.tiny:
        base += ["model.encoder=tiny", "model.img_size=32", "model.encoder_img_size=28",
                 "model.predictor_depth=1", "model.decoder_channels=16", "data.num_workers=0"]
    configs = [("bf16_b8", ["training.batch_size=8"]), ("bf16_b16", ["training.batch_size=16"]),
               ("bf16_b32", ["training.batch_size=32"]),
               ("fp32_b32", ["training.batch_size=32", "training.precision=fp32"])]
    if args.tiny:
        configs = configs[:1]
    rows = []
    for name, extra in configs:
        row = run_config(args.work / "runs", name, base + extra, timeout=600)
        rows.append(row)
        print(json.dumps(row), flush=True)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"device": device, "torch": torch.__version__,
                                    "rows": rows}, indent=1))
    print(f"\ndevice: {device}, torch {torch.__version__}, {args.steps} steps per config")
    print(f"{'config':<10} {'rc':>3} {'s/step':>8} {'samples/s':>10} {'peak GiB':>9} "
          f"{'epoch s':>8} {'z_err_pred':>11}")
    for r in rows:
        peak = "-" if r["peak_gpu_mib"] is None else f"{r['peak_gpu_mib'] / 1024:.2f}"
        print(f"{r['config']:<10} {r['rc']:>3} {r['s_per_step']:>8.4f} {r['samples_per_s']:>10.1f}"
              f" {peak:>9} {r['epoch_s'] or 0:>8.1f} {r['z_err_pred'] or 0:>11.4f}")
        if r["error"]:
            print(f"  error: {r['error'][:300]}")
    return 0 if all(r["rc"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
