# SPDX-License-Identifier: MIT
"""`python -m dinowm.evaluate.process --run-dir D --request JSON`: judge checkpoints offline.

For each requested checkpoint, on held-out (validation) episodes and without a simulator:
  - the open-loop rollout error against the horizon, in latent space and on decoded frames;
  - planning to goals: start frame t, goal frame t + H * frameskip, planned with CEM and/or
    gradient descent, compared with the true actions (the oracle ratio, the action error, the
    decoded final frame against the goal image) and with random actions (the ranking);
  - a picture per goal: start | goal | imagined final frame of each planner.
Each checkpoint's result is one line appended to the run's evaluations.jsonl; progress,
results and the end go to eval/events.jsonl for the process that supervises this one.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dinowm import rundir
from dinowm.config import from_dict
from dinowm.data.datasets import SliceDataset, prepare_frames, run_datasets, split_order
from dinowm.data.synth import ensure_dataset
from dinowm.errors import DinowmError
from dinowm.evaluate.planning import Planner
from dinowm.evaluate.plans import baselines, judge, planned
from dinowm.events import EventWriter
from dinowm.faults import fault
from dinowm.model.build import build_model, load_model_state
from dinowm.model.rollouts import imagine, per_sample_errors
from dinowm.model.world import WorldModel, image_metrics
from dinowm.schema import RunConfig
from dinowm.train import checkpoint as ckpt
from dinowm.train.device import autocast
from dinowm.train.samples import png_bytes, tile
from dinowm.train.state import seed_everything

BEAT_S = 1.0  # at most one progress event a second; the supervisor's stall budget is minutes


class Stopped(Exception):
    """SIGTERM or SIGINT arrived: the checkpoint in progress is abandoned."""


class Evaluation:
    """One evaluation process: its request, events, device, and the stop flag."""

    def __init__(self, run_dir: Path, request: dict[str, Any]) -> None:
        self.run_dir, self.request = Path(run_dir), request
        self.spec = rundir.read_spec(self.run_dir)
        self.cfg: RunConfig = from_dict(self.spec["config"])
        folder = rundir.eval_path(self.run_dir, "")
        folder.mkdir(parents=True, exist_ok=True)
        self.events = EventWriter(rundir.eval_path(self.run_dir, rundir.EVAL_EVENTS))
        want = request.get("device", "auto")
        self.device = torch.device(
            "cuda"
            if want == "auto" and torch.cuda.is_available()
            else "cpu"
            if want == "auto"
            else want
        )
        self.stop = False
        self.done, self.total = 0, 0
        self._beat = 0.0
        # open for the process's life: faulthandler writes stacks into it on SIGUSR1
        self._stacks = open(rundir.eval_path(self.run_dir, rundir.EVAL_STACKS), "a")  # noqa: SIM115
        faulthandler.register(signal.SIGUSR1, file=self._stacks, all_threads=True, chain=False)
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)

    def _on_stop(self, signum: int, frame: Any) -> None:
        if self.stop:
            os._exit(130)  # a second signal: now
        self.stop = True

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 on CUDA when the run trained in bf16; fp32 otherwise."""
        return autocast(self.device, self.cfg.training.precision)

    def progress(self, what: str, units: int = 1) -> None:
        """Count done work, emit a throttled heartbeat, honour a stop request."""
        self.done += units
        now = time.monotonic()
        if now - self._beat >= BEAT_S or self.done >= self.total:
            self._beat = now
            self.events.emit("progress", done=self.done, total=self.total, what=what)
        fault("eval_step")
        if self.stop:
            raise Stopped

    # -- the whole request --------------------------------------------------------------------

    def run(self) -> str:
        r = self.request
        names = list(r["checkpoints"])
        per = (
            1
            + ("cem" in r["planners"]) * r["cem"]["iterations"]
            + ("gd" in r["planners"]) * r["gd"]["steps"]
        )
        self.total = per * len(names)
        self.events.emit(
            "start",
            durable=True,
            pid=os.getpid(),
            device=str(self.device),
            checkpoints=names,
            total=self.total,
            request=r,
        )
        ensure_dataset(self.cfg)
        for name in names:
            try:
                record = self.checkpoint(name)
            except Stopped:
                self.events.emit("end", durable=True, status="stopped", done=self.done)
                return "stopped"
            rundir.append_evaluation(self.run_dir, record)
            self.events.emit("result", durable=True, record=record)
        self.events.emit("end", durable=True, status="completed", done=self.done)
        return "completed"

    # -- one checkpoint -------------------------------------------------------------------------

    def checkpoint(self, name: str) -> dict[str, Any]:
        began = time.time()
        path = self.run_dir / rundir.CHECKPOINTS / name
        state, manifest = ckpt.load(path)
        cfg, r = self.cfg, self.request
        _, val, _, info = run_datasets(cfg, stats=state["stats"])
        seed_everything(cfg.seed)
        model = build_model(cfg, info["proprio_dim"], info["sample_action_dim"])
        load_model_state(model, state["model"])
        model.to(self.device).eval().requires_grad_(False)
        _, val_order = split_order(len(val.lengths), cfg.data.split_ratio, cfg.data.split_seed)
        horizon = r["horizon"]
        with self.autocast():
            curves = self.open_loop(model, val, val_order, horizon)
        self.progress(f"{name}: open-loop rollouts")
        goals = self.goals(val, val_order, horizon)
        stem = Path(name).stem
        with self.autocast():
            planned, metrics = self.plan(model, val, goals, horizon, name, stem)
        metrics.update(
            {
                f"rollout_{k}": v[-1] if v else None  # no image curves: no decoder
                for k, v in curves.items()
                if k != "horizon"
            }
        )
        first = r["planners"][0]
        metrics["plan_score"] = metrics.get(f"{first}_action_err")
        return {
            "run_id": self.spec["run_id"],
            "checkpoint": name,
            "epoch": manifest.get("epoch"),
            "step": manifest.get("step"),
            "sha256": manifest.get("sha256"),
            "status": "completed",
            "created_at": time.time(),
            "duration_s": time.time() - began,
            "device": str(self.device),
            "settings": {**r, "frameskip": cfg.frameskip},
            "metrics": metrics,
            "curves": curves,
            "goals": planned,
            "pictures": {
                "horizon_plot": f"{rundir.EVAL_DIR}/{stem}/{rundir.HORIZON_PLOT}",
                "goals": [g["picture"] for g in planned],
            },
        }

    def _segments(
        self, val: SliceDataset, order: list[int], steps: int, salt: int
    ) -> list[tuple[int, int, dict[str, Tensor]]]:
        """`episodes` segments of `steps` steps from held-out episodes (cycled in split order),
        at starts drawn from the request's seed: (episode, start, segment)."""
        fs, k = self.cfg.frameskip, self.request["episodes"]
        fits = [e for e in order if val.lengths[e] > steps * fs]
        if not fits:
            raise DinowmError(
                f"no held-out episode has more than {steps * fs} frames for a horizon of "
                f"{self.request['horizon']} (frameskip {fs}); lower --horizon"
            )
        rs = np.random.RandomState(self.request["seed"] + salt)
        out = []
        for i in range(k):
            ep = fits[i % len(fits)]
            start = int(rs.randint(0, val.lengths[ep] - steps * fs))
            out.append((ep, start, val.segment(ep, start, steps)))
        return out

    def _to_device(self, segs: list[dict[str, Tensor]]) -> tuple[Tensor, Tensor, Tensor]:
        batch = {k: torch.stack([s[k] for s in segs]).to(self.device) for k in segs[0]}
        return (
            prepare_frames(batch["visual"], self.cfg.model.img_size),
            batch["proprio"],
            batch["action"],
        )

    @torch.no_grad()
    def open_loop(
        self, model: WorldModel, val: SliceDataset, order: list[int], horizon: int
    ) -> dict[str, list[float]]:
        """Error of each imagined frame 1..horizon after num_hist true frames, mean over
        episodes: latent (visual, proprio) and decoded image (mse, psnr, ssim; none without a
        decoder)."""
        n = self.cfg.num_hist
        segs = [s for _, _, s in self._segments(val, order, n + horizon - 1, salt=0)]
        visual, proprio, action = self._to_device(segs)  # (K, n + H, ...), actions (K, n+H-1, A)
        z_true = model.encode(visual, proprio, torch.cat([action, action[:, -1:]], dim=1))
        z = z_true[:, :n]
        curves: dict[str, list[float]] = {
            "horizon": [],
            "z_visual_err": [],
            "z_proprio_err": [],
            "img_mse": [],
            "img_psnr": [],
            "img_ssim": [],
        }
        for step, z_new in enumerate(imagine(model, z, action, horizon)):
            frame = n + step
            errs = per_sample_errors(model, z_new, z_true[:, frame : frame + 1])
            curves["horizon"].append(step + 1)
            curves["z_visual_err"].append(float(errs["z_visual_err"].mean()))
            curves["z_proprio_err"].append(float(errs["z_proprio_err"].mean()))
            if model.has_decoder:  # else the image curves stay empty: "-" wherever shown
                img = image_metrics(model.decode(z_new), visual[:, frame : frame + 1], "x")
                for key in ("mse", "psnr", "ssim"):
                    curves[f"img_{key}"].append(float(img[f"img_{key}_x"]))
        return curves

    def goals(
        self, val: SliceDataset, order: list[int], horizon: int
    ) -> list[tuple[int, int, dict[str, Tensor]]]:
        """The goals: (episode, start, segment of `horizon` steps ending on the goal frame)."""
        return self._segments(val, order, horizon, salt=1)

    def plan(
        self, model: WorldModel, val: SliceDataset, goals: list, horizon: int, name: str, stem: str
    ) -> tuple[list[dict[str, Any]], dict[str, float | None]]:
        """Plan every goal with each planner; per-goal results and their means."""
        r = self.request
        visual, proprio, true_actions = self._to_device([s for _, _, s in goals])
        start = {"visual": visual[:, :1], "proprio": proprio[:, :1]}  # (G, 1, ...)
        goal = {"visual": visual[:, -1:], "proprio": proprio[:, -1:]}
        planner = Planner(model, start, goal, alpha=r["alpha"], max_batch=r["max_batch"])
        g = torch.arange(len(goals), device=self.device)
        gen = torch.Generator(device=self.device).manual_seed(r["seed"])
        true_obj = planner.score(true_actions, g)  # (G,)
        per_goal, metrics = baselines(
            planner, goals, g, gen, true_obj, true_actions.shape[1:], horizon * self.cfg.frameskip
        )
        finals = {}
        for p in r["planners"]:
            began = time.time()
            actions = planned(
                planner, p, horizon, r, gen, lambda what: self.progress(f"{name}: {what}")
            )
            seconds = time.time() - began
            decoded = judge(
                model,
                planner,
                p,
                actions,
                true_actions,
                goal,
                true_obj,
                per_goal,
                metrics,
                seconds / max(len(goals), 1),
            )
            if decoded is not None:
                finals[p] = decoded[:, 0]
        self.pictures(stem, visual, finals, per_goal)
        return per_goal, metrics

    def pictures(
        self, stem: str, visual: Tensor, finals: dict[str, Tensor], per_goal: list[dict[str, Any]]
    ) -> None:
        """One PNG per goal: start | goal | each planner's imagined final frame."""
        folder = rundir.eval_dir(self.run_dir, stem)
        folder.mkdir(parents=True, exist_ok=True)
        for i, one in enumerate(per_goal):
            frames = [visual[i, 0], visual[i, -1], *(f[i] for f in finals.values())]
            grid = (torch.stack(frames).detach().float().cpu().clamp(-1, 1) + 1) / 2
            name = rundir.goal_picture(i)
            tmp = folder / f".{name}.tmp"
            tmp.write_bytes(png_bytes(tile(grid, ncol=len(frames))))
            tmp.replace(folder / name)
            one["picture"] = f"{rundir.EVAL_DIR}/{stem}/{name}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dinowm.evaluate.process")
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("--request", required=True, help="the request as JSON")
    args = parser.parse_args(argv)
    evaluation = Evaluation(args.run_dir, json.loads(args.request))
    try:
        evaluation.run()
        return 0
    except DinowmError as exc:
        evaluation.events.emit(
            "error",
            durable=True,
            kind=type(exc).__name__,
            message=str(exc),
            exit_code=exc.exit_code,
        )
        print(str(exc), file=sys.stderr, flush=True)
        return exc.exit_code
    except Exception as exc:  # recorded for the supervisor, then the exit code says failed
        evaluation.events.emit(
            "error",
            durable=True,
            kind="exception",
            message=f"{type(exc).__name__}: {exc}",
            traceback=traceback.format_exc()[-4000:],
            exit_code=1,
        )
        traceback.print_exc()
        return 1


if __name__ == "__main__":
    sys.exit(main())
