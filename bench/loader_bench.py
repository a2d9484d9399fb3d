# SPDX-License-Identifier: MIT
"""Loader benchmark: slice-first samples vs transforming the whole episode per sample (public code).

Both paths produce the same (F, 3, 224, 224) frames in [-1, 1] on one CPU thread; the slice-first
one copies 4 frames and resizes them, the reference transforms all T frames then keeps 4.

    .venv/bin/python bench/loader_bench.py [--dir CACHE] [--out bench/results/loader.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from dinowm.data.datasets import build_datasets, prepare_frames, reference_sample
from dinowm.data.check import check_dataset
from dinowm.data.synth import write_synthetic_dataset


def dataset(cache: Path, episodes: int, length: int, size: int) -> tuple[Path, float | None]:
    """Reuse a cached dataset with the right shape (seconds None), else generate one."""
    path = cache / f"franka_{episodes}x{length}_{size}px"
    if path.exists():
        report = check_dataset(path)
        if (not report["problems"] and report["episodes"] == episodes
                and report["lengths"]["min"] == length and report["image"]["shape"][0] == size):
            return path, None
        raise SystemExit(f"{path} exists but is not a {episodes}x{length} {size}px dataset; "
                         "delete it or pass another --dir")
    start = time.perf_counter()
    write_synthetic_dataset(path, episodes=episodes, length=length, image_size=size, vary=0.0)
    return path, time.perf_counter() - start


def time_samples(fn, indices: list[int]) -> list[float]:
    """Milliseconds per call of fn(i)."""
    out = []
    for i in indices:
        start = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=None, help="dataset cache (default: a temp dir)")
    ap.add_argument("--out", type=Path, default=Path("bench/results/loader.json"))
    ap.add_argument("--episodes", type=int, default=3)
    ap.add_argument("--length", type=int, default=935)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--img-size", type=int, default=224)
    ap.add_argument("--fast-reps", type=int, default=200)
    ap.add_argument("--slow-reps", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    console = Console()

    tmp = None if args.dir else tempfile.TemporaryDirectory(prefix="dinowm-bench-")
    cache = args.dir or Path(tmp.name)
    cache.mkdir(parents=True, exist_ok=True)
    path, gen_s = dataset(cache, args.episodes, args.length, args.size)
    train, _, _, info = build_datasets(path, split_ratio=1.0, frameskip=5, num_hist=3, num_pred=1)
    g = torch.Generator().manual_seed(0)
    pick = lambda n: torch.randint(len(train), (n,), generator=g).tolist()  # noqa: E731

    def ours(i: int) -> torch.Tensor:
        return prepare_frames(train[i]["visual"], args.img_size)

    def reference(i: int) -> torch.Tensor:
        return reference_sample(train, i, args.img_size)["visual"]

    for i in pick(5):  # warm up: page in the memory-mapped frames, first-call overheads
        ours(i)
    reference(pick(1)[0])
    fast = time_samples(ours, pick(args.fast_reps))
    slow = time_samples(reference, pick(args.slow_reps))
    i = pick(1)[0]
    max_diff = float((ours(i) - reference(i)).abs().max())

    fast_ms, slow_ms = statistics.median(fast), statistics.median(slow)
    result = {
        "what": "ms per sample, (4, 3, 224, 224) frames in [-1, 1], one CPU thread",
        "slice_first_ms": {"median": round(fast_ms, 3), "mean": round(statistics.mean(fast), 3),
                           "min": round(min(fast), 3), "reps": len(fast)},
        "whole_episode_ms": {"median": round(slow_ms, 1), "mean": round(statistics.mean(slow), 1),
                             "min": round(min(slow), 1), "reps": len(slow)},
        "ratio": round(slow_ms / fast_ms, 1),
        "max_abs_diff": max_diff,
        "dataset": {"episodes": args.episodes, "length": args.length, "size": args.size,
                    "train_slices": info["train_slices"],
                    "generate_s": None if gen_s is None else round(gen_s, 2)},
        "env": {"torch": torch.__version__, "threads": torch.get_num_threads(),
                "cpu": platform.processor() or platform.machine(), "python":
                platform.python_version()},
    }
    table = Table(title=f"loader: {args.episodes} x {args.length} frames at {args.size} px "
                        f"-> {args.img_size}, 1 thread")
    for col in ("path", "median ms/sample", "mean", "min", "reps"):
        table.add_column(col, justify="right" if col != "path" else "left")
    for name, key in (("slice-first (ours)", "slice_first_ms"),
                      ("whole episode (public)", "whole_episode_ms")):
        r = result[key]
        table.add_row(name, f"{r['median']:.2f}", f"{r['mean']:.2f}", f"{r['min']:.2f}",
                      str(r["reps"]))
    console.print(table)
    made = "reused" if gen_s is None else f"generated in {gen_s:.1f} s"
    console.print(f"ratio {result['ratio']}x, max |difference| {max_diff:.2e}, dataset {made}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {args.out}")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
