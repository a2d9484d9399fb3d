# SPDX-License-Identifier: MIT
"""Reads for the screens' polling workers: open runs.db, read what changed, close."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dinowm import rundir
from dinowm.backends import reconcile
from dinowm.errors import DinowmError
from dinowm.evaluate.watch import progress as eval_progress
from dinowm.rundir import ACTIVE
from tui.messages import AlertsPolled, QueuePolled, RunPolled, RunsPolled
from tui.services import Services

FULL_AT = 200  # more changed runs than this: one full query is cheaper than an id list


def fetch_runs(
    services: Services, known: dict[str, tuple[Any, ...]], reconcile_now: bool = False
) -> RunsPolled:
    """Versions of all runs, summary rows of new or changed ones, latest GPU samples of active."""
    with services.store() as store:
        if reconcile_now:
            reconcile(store)  # runs whose supervisor died become 'lost', as in the CLI
        versions = store.run_versions()
        changed = [run_id for run_id, v in versions.items() if known.get(run_id) != v]
        full = len(changed) > FULL_AT
        rows = store.run_summaries(None if full else changed) if changed else []
        telemetry = {
            run_id: store.latest_telemetry(run_id)
            for run_id, v in versions.items()
            if v[2] in ACTIVE
        }
    return RunsPolled(versions, rows, telemetry, full=full)


def fetch_alerts(services: Services, after_id: int | None, kinds: tuple[str, ...]) -> AlertsPolled:
    """What an alert watch needs: every run's status, incidents of `kinds` after after_id."""
    with services.store() as store:
        runs, incidents, top = store.alert_feed(after_id, kinds)
        queue = store.queue_states()
    return AlertsPolled(runs, incidents, top, queue)


def _spec(run: dict[str, Any]) -> dict[str, Any] | None:
    """The run's config.json (resolved config, 'changed' sources), or None if unreadable."""
    if not run.get("run_dir"):
        return None
    try:
        return rundir.read_spec(run["run_dir"])
    except DinowmError:
        return None


def fetch_run(
    services: Services, run_id: str, telemetry_since: float | None, with_spec: bool
) -> RunPolled:
    """One run's row, epochs, incidents, notes, evaluations, and telemetry from
    telemetry_since (None = all)."""
    with services.store() as store:
        run = store.run(run_id)
        epochs = store.epochs(run_id)
        incidents = store.incidents(run_id)
        notes = store.notes(run_id)
        evaluations = store.evaluations(run_id)
        telemetry = store.telemetry(
            run_id, since=0.0 if telemetry_since is None else telemetry_since
        )
    if telemetry_since is not None:
        telemetry = [t for t in telemetry if t["t"] > telemetry_since]
    spec = _spec(run) if with_spec else None
    if with_spec and spec is None:
        try:
            spec = {
                "config": json.loads(run.get("config_json") or "{}"),
                "changed": {},
                "preset": run.get("preset"),
                "overrides": [],
            }
        except ValueError as exc:
            raise DinowmError(f"run {run_id}: config_json is damaged ({exc})") from None
    evaluating = eval_progress(Path(run["run_dir"])) if run.get("run_dir") else None
    return RunPolled(run, epochs, incidents, notes, telemetry, spec, evaluations, evaluating)


def fetch_queue(services: Services) -> QueuePolled:
    """The queue's entries, whether it is paused, its supervisor and what that one does."""
    from dinowm.queue.entries import listing

    shown = listing(services.project)
    holder = shown["supervisor"]
    return QueuePolled(
        shown["entries"], shown["paused"], holder.pid if holder else None, shown["status"]
    )


def fetch_compare(services: Services, run_ids: list[str]) -> list[dict[str, Any]]:
    """For each run: its row, resolved config (flat keys), epochs and evaluations."""
    from tui.widgets.run_tables import flatten

    out = []
    with services.store() as store:
        for run_id in run_ids:
            run = store.run(run_id)
            spec = _spec(run) or {"config": json.loads(run.get("config_json") or "{}")}
            out.append(
                {
                    "run": run,
                    "config": flatten(spec.get("config") or {}),
                    "epochs": store.epochs(run["id"]),
                    "evaluations": store.evaluations(run["id"]),
                }
            )
    return out
