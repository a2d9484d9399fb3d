# SPDX-License-Identifier: MIT
"""Inspect a dataset before training: every problem as one line, fatal ones refused."""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dinowm.data.episodes import (
    FRANKA_ACTION_DIM,
    FRANKA_PROPRIO_DIM,
    FRANKA_STATE_DIM,
    Episodes,
    detect_layout,
    episode_frame_file,
    frame_count,
    frame_layout,
    load_pth,
    read_tables,
)
from dinowm.errors import DataError


@dataclass
class Report:
    """What an inspection found: facts for the summary, fatal problems, non-fatal warnings."""

    facts: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def slice_span(frameskip: int, num_hist: int, num_pred: int) -> int:
    """Frames one sample covers: a slice starting at s needs s + span <= T."""
    return (num_hist + num_pred) * frameskip


def starts_in(length: int, span: int) -> int:
    """Number of slice starts in an episode of `length` frames (935 - 20 + 1 = 916)."""
    return max(0, length - span + 1)


def valid_mask(lengths: list[int], t_max: int) -> torch.Tensor:
    """(N, T_max) bool: True on each episode's valid timesteps."""
    return torch.arange(t_max)[None, :] < torch.tensor(lengths)[:, None]


def find_non_finite(table: torch.Tensor, lengths: list[int]) -> dict[str, Any]:
    """Count NaN/Inf within valid timesteps; locate the first one (episode, timestep, column)."""
    bad = ~torch.isfinite(table) & valid_mask(lengths, table.shape[1])[..., None]
    count = int(bad.sum())
    if count == 0:
        return {"count": 0}
    ep, t, col = (int(i) for i in torch.nonzero(bad)[0])  # row-major: first episode, step, column
    value = float(table[ep, t, col])
    kind = "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    episodes = torch.nonzero(bad.any(dim=2).any(dim=1)).flatten().tolist()
    return {
        "count": count,
        "episode": ep,
        "timestep": t,
        "column": col,
        "value": kind,
        "episodes": episodes,
    }


def non_finite_message(name: str, nf: dict[str, Any]) -> str:
    eps = nf["episodes"]
    where = ", ".join(str(e) for e in eps[:8]) + (", ..." if len(eps) > 8 else "")
    return (
        f"{name}: {nf['value']} at episode {nf['episode']}, timestep {nf['timestep']}, "
        f"column {nf['column']} ({nf['count']} non-finite values in total, in "
        f"episode{'s' if len(eps) > 1 else ''} {where}); "
        "clean or drop these episodes before training"
    )


def _ranges(table: torch.Tensor, lengths: list[int]) -> dict[str, list[float]]:
    """Per-column min/max over valid, finite values."""
    rows = table[valid_mask(lengths, table.shape[1])]  # (sum of lengths, D)
    finite = torch.isfinite(rows)
    lo = torch.where(finite, rows, torch.inf).amin(dim=0)
    hi = torch.where(finite, rows, -torch.inf).amax(dim=0)
    return {"min": [round(float(v), 6) for v in lo], "max": [round(float(v), 6) for v in hi]}


def _first_of_each(issues: dict[str, list[str]], into: list[str]) -> None:
    for msgs in issues.values():
        more = f" (and {len(msgs) - 1} more episodes like it)" if len(msgs) > 1 else ""
        into.append(msgs[0] + more)


def _inspect_frames(path: Path, layout: str, lengths: list[int], rep: Report) -> list[Path]:
    """Check each episode's frame file: present, uint8, same image shape, enough frames."""
    fatal: dict[str, list[str]] = {}
    notes: dict[str, list[str]] = {}
    files, image, legacy = [], None, 0
    for ep, length in enumerate(lengths):
        file = episode_frame_file(path, layout, ep)
        files.append(file)
        try:
            frames = load_pth(file, "uint8 frames (T, H, W, 3), one file per episode")
            if not isinstance(frames, torch.Tensor):
                raise DataError(
                    f"{file}: holds a {type(frames).__name__}, expected a uint8 tensor (T, H, W, 3)"
                )
            shape = frame_layout(tuple(frames.shape), file, layout)
        except DataError as e:
            fatal.setdefault("unreadable" if file.exists() else "missing", []).append(str(e))
            continue
        legacy += not zipfile.is_zipfile(file)
        if frames.dtype != torch.uint8:
            fatal.setdefault("dtype", []).append(
                f"{file}: dtype {frames.dtype}, expected uint8 frames; convert them with "
                "(x * 255).round().to(torch.uint8) if they are floats in [0, 1]"
            )
        if image is None:
            image = shape
            rep.facts["image"] = {
                "shape": [shape[2], shape[3], shape[1]],
                "dtype": str(frames.dtype).replace("torch.", ""),
                "channels_last": shape[0],
            }
        elif shape[1:] != image[1:]:
            fatal.setdefault("shape", []).append(
                f"{file}: frames of {shape[2]}x{shape[3]}x{shape[1]}, but episode 0 has "
                f"{image[2]}x{image[3]}x{image[1]}; every episode needs the same image size"
            )
        n_frames = frames.shape[0]
        if n_frames < length:
            fatal.setdefault("short", []).append(
                f"{file}: {n_frames} frames for an episode of length {length}; "
                "fix the episode lengths or regenerate the frames"
            )
        elif n_frames > length:
            notes.setdefault("long", []).append(
                f"{file}: {n_frames} frames for an episode of length {length}; "
                "frames past the length are ignored"
            )
    _first_of_each(fatal, rep.problems)
    _first_of_each(notes, rep.warnings)
    if legacy:
        rep.warnings.append(
            f"{legacy} frame files use torch's legacy format and cannot be "
            "memory-mapped (each sample reads a whole episode); re-save them "
            "with torch.save"
        )
    rep.facts["frames_mmap"] = legacy == 0
    return files


def inspect(
    path: str | Path, layout: str = "auto", n_rollouts: int = 0, span: int = 20
) -> tuple[Episodes | None, Report]:
    """Read and check a dataset: the episodes (None if a problem is fatal) and a report."""
    path, rep = Path(path), Report()
    rep.facts.update(path=str(path), span=span)
    try:
        layout = detect_layout(path, layout)
        rep.facts["layout"] = layout
        states, actions, lengths = read_tables(path, layout)
    except DataError as e:
        rep.problems.append(str(e))
        return None, rep
    n_all = int(states.shape[0])
    if n_rollouts > n_all:
        rep.problems.append(
            f"n_rollouts={n_rollouts} but {path / 'states.pth'} holds {n_all} "
            "episodes; set n_rollouts to at most that (0 = all)"
        )
    n = min(n_rollouts or n_all, n_all)
    states, actions = states[:n], actions[:n]
    lengths = (
        _lengths_from_frames(path, n, int(states.shape[1]), rep) if lengths is None else lengths[:n]
    )
    proprio_dim = FRANKA_PROPRIO_DIM if layout == "franka" else states.shape[-1]
    if layout == "franka" and (states.shape[-1], actions.shape[-1]) != (
        FRANKA_STATE_DIM,
        FRANKA_ACTION_DIM,
    ):
        rep.warnings.append(
            f"states/actions have {states.shape[-1]}/{actions.shape[-1]} columns, "
            f"franka_cube_stack has {FRANKA_STATE_DIM}/{FRANKA_ACTION_DIM}; "
            "proprio is still state[..., :3]"
        )
    rep.facts.update(
        episodes=n,
        episodes_on_disk=n_all,
        t_max=int(states.shape[1]),
        lengths={"min": min(lengths), "mean": round(sum(lengths) / n, 2), "max": max(lengths)},
        state_dim=int(states.shape[-1]),
        action_dim=int(actions.shape[-1]),
        proprio_dim=proprio_dim,
    )
    rep.facts["non_finite"] = {}
    for name, table in (("states.pth", states), ("actions.pth", actions)):
        nf = find_non_finite(table, lengths)
        rep.facts["non_finite"][name] = nf
        if nf["count"]:
            rep.problems.append(non_finite_message(name, nf))
    rep.facts["ranges"] = {
        "action": _ranges(actions, lengths),
        "proprio": _ranges(states[..., :proprio_dim], lengths),
    }
    files = _inspect_frames(path, layout, lengths, rep)
    _inspect_slices(lengths, span, rep)
    if rep.problems:
        return None, rep
    return Episodes(path, layout, states, actions, lengths, proprio_dim, files), rep


def _lengths_from_frames(path: Path, n: int, t_max: int, rep: Report) -> list[int]:
    """Franka without metadata.pkl: each episode as long as its obses.pth, at most T_max."""
    # an unreadable or empty file counts as T_max here; _inspect_frames names the problem
    lengths = [
        min(t_max, frame_count(episode_frame_file(path, "franka", ep)) or t_max) for ep in range(n)
    ]
    short = [ep for ep, length in enumerate(lengths) if length < t_max]
    if short:
        listed = ", ".join(f"{ep} ({lengths[ep]} frames)" for ep in short[:5])
        rep.warnings.append(
            f"no metadata.pkl: {len(short)} of {n} episodes are shorter than the {t_max} "
            f"timesteps of states.pth, each taken as long as its obses.pth: {listed}"
            f"{', ...' if len(short) > 5 else ''}; states and actions past that are ignored"
        )
    return lengths


def _inspect_slices(lengths: list[int], span: int, rep: Report) -> None:
    per_episode = [starts_in(length, span) for length in lengths]
    short = [i for i, k in enumerate(per_episode) if k == 0]
    rep.facts.update(slices_per_episode=per_episode, slices=sum(per_episode), too_short=short)
    if len(short) == len(lengths):
        rep.problems.append(
            f"all {len(lengths)} episodes are too short for one slice: the longest has "
            f"{max(lengths)} frames, a slice spans (num_hist + num_pred) x frameskip = {span}; "
            "lower frameskip or num_hist"
        )
    elif short:
        listed = ", ".join(f"{i} ({lengths[i]} frames)" for i in short[:8])
        rep.warnings.append(
            f"skipping {len(short)} of {len(lengths)} episodes shorter than one "
            f"slice ({span} frames): {listed}{', ...' if len(short) > 8 else ''}"
        )


def check_dataset(
    path: str | Path, layout: str = "auto", frameskip: int = 5, num_hist: int = 3, num_pred: int = 1
) -> dict[str, Any]:
    """Summary of a dataset without training; problems are reported, never raised."""
    _, rep = inspect(path, layout, 0, slice_span(frameskip, num_hist, num_pred))
    return {
        **rep.facts,
        "frameskip": frameskip,
        "num_hist": num_hist,
        "num_pred": num_pred,
        "problems": rep.problems,
        "warnings": rep.warnings,
    }


def validate_dataset(
    path: str | Path,
    layout: str = "auto",
    n_rollouts: int = 0,
    frameskip: int = 5,
    num_hist: int = 3,
    num_pred: int = 1,
) -> tuple[Episodes, Report]:
    """The episodes, ready to slice, or DataError naming the first fatal problem."""
    episodes, rep = inspect(path, layout, n_rollouts, slice_span(frameskip, num_hist, num_pred))
    if episodes is None:
        more = len(rep.problems) - 1
        suffix = f" (and {more} more problems: run `dinowm data check`)" if more else ""
        raise DataError(rep.problems[0] + suffix)
    return episodes, rep
