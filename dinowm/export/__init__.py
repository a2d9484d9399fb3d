# SPDX-License-Identifier: MIT
"""`dinowm export-log`: the user's Markdown training log, written from runs.db.

The document keeps the sections of the hand-kept log (overview, hardware, dataset,
hyperparameters, architecture, progress, commands, troubleshooting, notes). Generated text sits
between `<!-- dinowm:begin NAME run=ID -->` and `<!-- dinowm:end ... -->` markers; a re-export
rewrites only those blocks and keeps every other line where the user put it.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dinowm.errors import ConfigError, NotFoundError
from dinowm.export import blocks, compare, evalsection, hyper, progress, sections, svg, troubleshoot
from dinowm.export.labels import LABELS
from dinowm.export.markdown import Ctx
from dinowm.export.parallel import cores, fork_map
from dinowm.export.record import RunRecord, load_records
from dinowm.store import Store

# A run rendered: its blocks, its images (loss curve, horizon plot) and its comparison row.
Done = tuple[list[tuple[blocks.Key, str]], list[Path], compare.Row]
RUNS_PER_WORKER = 200  # an export of fewer runs is not worth a second process
TITLE: blocks.Key = ("title", None)  # written into new files; kept up to date, never added
Section = Callable[[Ctx, RunRecord], list[str]]
SECTIONS: tuple[tuple[str, Section], ...] = (
    ("overview", sections.overview),
    ("hardware", sections.hardware),
    ("dataset", sections.dataset),
    ("hyperparameters", hyper.hyperparameters),
    ("architecture", hyper.architecture),
    ("progress", progress.progress),
    ("evaluation", evalsection.evaluation),
    ("commands", progress.commands),
    ("troubleshooting", troubleshoot.troubleshooting),
    ("notes", progress.notes),
)


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote."""

    path: Path
    runs: list[str]
    images: list[Path]
    created: bool


def export_log(
    store: Store,
    path: str | Path,
    refs: list[str] | tuple[str, ...] = (),
    *,
    all_runs: bool = False,
    lang: str = "en",
    tz: dt.tzinfo | None = None,
    now: float | None = None,
    sweep: str | None = None,
) -> ExportResult:
    """Write (or update) the training log at path for the given runs (default: the latest),
    or for the runs of a sweep (`dinowm sweep`), whose comparison is the sweep's result."""
    path = _checked_target(Path(path), lang)
    ids = _run_ids(store, refs, all_runs, sweep)
    ctx = Ctx(lang, LABELS[lang], tz, time.time() if now is None else now, path.parent, path.name)
    old = path.read_text(encoding="utf-8") if path.exists() else None
    # Damaged markers stop the export here, before anything is written.
    segments = blocks.parse(old, path) if old else []
    done = _render(ctx, store, ids, path)
    head = [(TITLE, _title(ctx))]
    if len(done) > 1:
        head.append((("compare", None), _join(compare.comparison(ctx, [r for *_, r in done]))))
    text = blocks.merge(
        segments,
        head + [b for run_blocks, _, _ in done for b in run_blocks],
        only_replace=frozenset({TITLE}),
    )
    blocks.write_atomic(path, text)
    return ExportResult(
        path, ids, [image for _, images, _ in done for image in images], old is None
    )


def _checked_target(path: Path, lang: str) -> Path:
    """The log file to write, refused when the language is unknown, or the path is a folder or
    lies in a folder that does not exist."""
    if lang not in LABELS:
        raise ConfigError(f"Unknown language '{lang}' for export-log; use {' or '.join(LABELS)}.")
    if path.is_dir():
        raise ConfigError(
            f"{path} is a folder; give the Markdown file to write, e.g. {path / 'training-log.md'}."
        )
    if not path.parent.is_dir():
        raise NotFoundError(f"Folder {path.parent} does not exist; create it first.")
    return path


def _run_ids(
    store: Store, refs: list[str] | tuple[str, ...], all_runs: bool, sweep: str | None
) -> list[str]:
    """The ids of the runs to export: a sweep's, every run oldest first, or the ones named
    (default: the latest); NotFoundError when there are none."""
    if sweep is not None:
        ids = store.sweep_run_ids(sweep)
        if not ids:
            known = ", ".join(store.sweep_ids()) or "none yet"
            raise NotFoundError(
                f"Sweep '{sweep}' has no runs yet (sweeps: {known}); "
                f"'dinowm queue' shows its entries, 'dinowm queue start' runs "
                f"them."
            )
    elif all_runs:
        ids = store.run_ids_oldest_first()
    else:
        ids = list(dict.fromkeys(store.run(r)["id"] for r in refs or ["latest"]))
    if not ids:
        raise NotFoundError("There are no runs yet; start one with 'dinowm run --preset demo'.")
    return ids


def _render(ctx: Ctx, store: Store, ids: list[str], path: Path) -> list[Done]:
    """Every run rendered, in order: slices of them in forked workers when there are many."""
    workers = min(cores(), len(ids) // RUNS_PER_WORKER + 1)
    # The merge waits for every slice, so the slices should end together. A forked worker
    # renders a run about 20% slower than this process (it opens runs.db anew and pays for
    # copy-on-write pages), so this process takes a slightly larger slice.
    share = [1.2] + [1.0] * (workers - 1)
    bounds = [round(len(ids) * sum(share[:w]) / sum(share)) for w in range(workers + 1)]
    return [
        run
        for part in fork_map(
            lambda w: _runs(ctx, store, ids[bounds[w] : bounds[w + 1]], path, here=w == 0),
            workers,
            workers,
        )
        for run in part
    ]


def _runs(ctx: Ctx, store: Store, ids: list[str], path: Path, here: bool) -> list[Done]:
    """Load and render a slice of the runs: in this process, or in a forked worker.

    A worker opens runs.db anew; a connection must not be shared across fork.
    """
    if here:
        return [_run(ctx, rec, path) for rec in load_records(store, ids)]
    with Store(store.path) as own:
        return [_run(ctx, rec, path) for rec in load_records(own, ids)]


def _title(ctx: Ctx) -> str:
    return _join(
        [
            "# DINO World Model - Training Log",
            "",
            f"*{ctx('generated', at=ctx.time(ctx.now))}*",
            "",
            f"> {ctx('markers_note')}",
        ],
        rule=False,
    )


def _join(lines: list[str], rule: bool = True) -> str:
    """A block's content as one text, closed by the horizontal rule between sections."""
    return "\n".join([*lines, "", "---"] if rule else lines)


def _run(ctx: Ctx, rec: RunRecord, path: Path) -> Done:
    """One run's blocks (a section with nothing to say is left out), its loss curve and horizon
    plot written next to the Markdown file, its comparison row."""
    images = []
    name = rec.run.get("name") or rec.id
    if svg.has_curve(rec):
        images.append(path.with_name(svg.curve_name(path.name, rec.id)))
        blocks.write_if_changed(
            images[-1], svg.loss_svg(rec, f"{ctx('loss_curve')}: {name} ({rec.id})", "Epoch")
        )
    if evalsection.has_horizon(rec):
        images.append(path.with_name(evalsection.horizon_name(path.name, rec.id)))
        blocks.write_if_changed(
            images[-1],
            evalsection.horizon_svg(
                rec, f"{ctx('eval_curve')} (z_visual_err): {name} ({rec.id})", ctx("horizon")
            ),
        )
    rendered = [((key, rec.id), section(ctx, rec)) for key, section in SECTIONS]
    return (
        [(key, _join(lines)) for key, lines in rendered if lines],
        images,
        compare.summarize(ctx, rec),
    )
