# SPDX-License-Identifier: MIT
"""Read episode datasets as they are on disk: franka, public point_maze/wall."""

from __future__ import annotations

import operator
import pickle
import warnings
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from dinowm.errors import DataError

LAYOUTS = ("auto", "franka", "point_maze", "wall")
FRANKA_PROPRIO_DIM = 3  # proprio = end-effector xyz = state[..., :3]
FRANKA_STATE_DIM, FRANKA_ACTION_DIM = 22, 9


@dataclass
class Episodes:
    """States, actions and lengths in memory; frames stay on disk (memory-mapped on demand)."""

    path: Path
    layout: str  # "franka" or "point_maze" (wall is read the same way)
    states: torch.Tensor  # (N, T_max, S) float32
    actions: torch.Tensor  # (N, T_max, A) float32
    lengths: list[int]  # valid frames per episode
    proprio_dim: int  # proprio = states[..., :proprio_dim]
    frame_files: list[Path]

    @property
    def proprio(self) -> torch.Tensor:
        """(N, T_max, P) proprioception: ee xyz for franka, the whole state for point_maze/wall."""
        return self.states[..., : self.proprio_dim]


def detect_layout(path: Path, layout: str = "auto") -> str:
    """Resolve `layout` ("auto" looks at the folder) to "franka" or "point_maze"."""
    if layout not in LAYOUTS:
        raise DataError(f"Unknown dataset layout {layout!r}; use one of {', '.join(LAYOUTS)}")
    if not path.is_dir():
        raise DataError(f"Dataset folder {path} does not exist; check data.path")
    if layout == "wall":
        return "point_maze"
    if layout != "auto":
        return layout
    if (path / "obses").is_dir():
        return "point_maze"
    if (path / "000000").is_dir():
        return "franka"
    raise DataError(
        f"{path}: cannot tell the dataset layout: expected 000000/obses.pth (franka) or "
        "obses/episode_000.pth (point_maze/wall); fix data.path or set the layout"
    )


def episode_frame_file(path: Path, layout: str, episode: int) -> Path:
    """Where the frames of one episode live in each layout."""
    if layout == "franka":
        return path / f"{episode:06d}" / "obses.pth"
    return path / "obses" / f"episode_{episode:03d}.pth"


def load_pth(file: Path, expected: str, mmap: bool = True) -> Any:
    """torch.load with weights_only; memory-mapped when the file is in the zip format."""
    if not file.is_file():
        raise DataError(f"{file} is missing; expected {expected}")
    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol of some files
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(
                file, map_location="cpu", weights_only=True, mmap=mmap and zipfile.is_zipfile(file)
            )
    except Exception as e:  # a damaged pickle can raise nearly anything (struct.error, ...)
        raise DataError(
            f"{file} cannot be read as a plain tensor file ({_reason(e)}); "
            f"expected {expected}, saved with torch.save"
        ) from None


def _reason(exc: BaseException) -> str:
    """The telling line of an exception's message, short enough to quote in a one-line error."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if lines and lines[0].startswith("Weights only load failed"):
        # torch's advice to load with weights_only=False is exactly what must not be done
        told = [line for line in lines if line.startswith(("Unsupported", "Trying to"))]
        return (
            "holds Python objects a safe load refuses: " + told[0][:120]
            if told
            else "holds Python objects a safe load refuses"
        )
    return lines[0][:160] if lines else type(exc).__name__


class _PlainUnpickler(pickle.Unpickler):
    """Builds only containers, strings and numbers (numpy ints and arrays too); nothing callable."""

    ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy", "dtype"),
        ("numpy", "ndarray"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_metadata_lengths(file: Path) -> list[int] | None:
    """Episode lengths from the franka metadata.pkl, or None when the file is absent."""
    if not file.is_file():
        return None
    # pickle is unavoidable for this file (it is the user's format); the restricted unpickler
    # only accepts a plain dict of lists of ints, so a crafted file cannot run code.
    try:
        with open(file, "rb") as f:
            meta = _PlainUnpickler(f).load()
    except Exception as e:  # a damaged pickle can raise nearly anything (MemoryError, ...)
        raise DataError(
            f"{file} is not a plain dict of lists of ints ({_reason(e)}); "
            "rewrite it as {'episode_lengths': [int, ...]} or delete it"
        ) from None
    lengths = meta.get("episode_lengths") if isinstance(meta, dict) else None
    if lengths is None:
        raise DataError(
            f"{file} has no 'episode_lengths' key (found {type(meta).__name__}"
            f"{sorted(meta)[:5] if isinstance(meta, dict) else ''}); "
            "add it or delete the file to use the full length of every episode"
        )
    return _as_int_list(lengths, file)


def _as_int_list(values: Any, file: Path) -> list[int]:
    seq = values.tolist() if hasattr(values, "tolist") else values
    try:
        if not isinstance(seq, (list, tuple)) or any(isinstance(v, bool) for v in seq):
            raise TypeError
        return [operator.index(v) for v in seq]  # accepts numpy ints, refuses floats
    except TypeError:
        raise DataError(
            f"{file}: episode lengths must be a list of ints, got "
            f"{type(values).__name__}; rewrite it as a list of ints"
        ) from None


def _check_table(t: Any, file: Path, what: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor) or t.ndim != 3:
        shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise DataError(f"{file}: shape {shape}, expected a 3-D tensor (N, T_max, {what})")
    if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
        raise DataError(f"{file}: dtype {t.dtype}, expected float32 (N, T_max, {what})")
    return t


def read_tables(path: Path, layout: str) -> tuple[torch.Tensor, torch.Tensor, list[int] | None]:
    """states (N, T, S), actions (N, T, A) as float32 and the valid length of each episode;
    None for a franka dataset without metadata.pkl, whose frame files tell the lengths."""
    s_file, a_file = path / "states.pth", path / "actions.pth"
    states = _check_table(load_pth(s_file, "float32 (N, T_max, state_dim)"), s_file, "state_dim")
    actions = _check_table(load_pth(a_file, "float32 (N, T_max, action_dim)"), a_file, "action_dim")
    if states.shape[:2] != actions.shape[:2]:
        raise DataError(
            f"{a_file}: shape {tuple(actions.shape)} does not match states.pth "
            f"{tuple(states.shape)} in (episodes, timesteps); both need (N, T_max, ·)"
        )
    n, t_max = states.shape[:2]
    if layout == "franka":
        if states.shape[-1] < FRANKA_PROPRIO_DIM:
            raise DataError(
                f"{s_file}: shape {tuple(states.shape)}, expected (N, T_max, 22) "
                "whose first 3 columns are the end-effector xyz"
            )
        lengths_file = path / "metadata.pkl"
        lengths = read_metadata_lengths(lengths_file)
        if lengths is None:
            return states.to(torch.float32, copy=True), actions.to(torch.float32, copy=True), None
    else:
        lengths_file = path / "seq_lengths.pth"
        lengths = (
            _as_int_list(load_pth(lengths_file, "episode lengths", mmap=False), lengths_file)
            if lengths_file.is_file()
            else None
        )
    if lengths is None:  # no lengths file: every episode is T_max long
        lengths = [t_max] * n
    if len(lengths) != n:
        raise DataError(
            f"{lengths_file}: {len(lengths)} episode lengths for {n} episodes in "
            "states.pth; it needs one length per episode"
        )
    bad = [(i, v) for i, v in enumerate(lengths) if not 1 <= v <= t_max]
    if bad:
        raise DataError(
            f"{lengths_file}: episode {bad[0][0]} has length {bad[0][1]}, outside "
            f"1..{t_max} (T_max of states.pth); fix the lengths"
        )
    return (states.to(torch.float32, copy=True), actions.to(torch.float32, copy=True), lengths)


def frame_count(file: Path) -> int | None:
    """Frames in an episode's frame file, None if it is unreadable (a memory-mapped zip file
    is not read: only its header and shape)."""
    try:
        frames = load_pth(file, "uint8 frames")
    except DataError:
        return None
    return int(frames.shape[0]) if isinstance(frames, torch.Tensor) and frames.ndim else None


def frame_layout(shape: tuple[int, ...], file: Path, layout: str) -> tuple[bool, int, int, int]:
    """(channels_last, channels, H, W) of an episode's frames, or DataError."""
    want = "(T, H, W, 3)" if layout == "franka" else "(T, H, W, C) or (T, C, H, W), C = 1 or 3"
    if len(shape) == 4 and shape[-1] in (1, 3) and (layout != "franka" or shape[-1] == 3):
        return True, shape[-1], shape[1], shape[2]
    if len(shape) == 4 and layout != "franka" and shape[1] in (1, 3):
        return False, shape[1], shape[2], shape[3]
    raise DataError(f"{file}: shape {tuple(shape)}, expected uint8 {want}")


class FrameStore:
    """Opens episode frame files lazily (memory-mapped) with a small per-process cache."""

    def __init__(self, files: list[Path], channels_last: bool, cache: int = 64) -> None:
        self.files, self.channels_last, self.cache = files, channels_last, cache
        self._open: OrderedDict[int, torch.Tensor] = OrderedDict()

    def __getstate__(self) -> dict:
        # worker processes reopen (and re-map) files themselves instead of receiving copies
        return {**self.__dict__, "_open": OrderedDict()}

    def episode(self, ep: int) -> torch.Tensor:
        """All frames of episode `ep`, channels last: (T, H, W, C) uint8, memory-mapped."""
        frames = self._open.pop(ep, None)
        if frames is None:
            frames = load_pth(self.files[ep], "uint8 frames")
            if not self.channels_last:
                frames = frames.permute(0, 2, 3, 1)
        self._open[ep] = frames
        while len(self._open) > self.cache:
            self._open.popitem(last=False)
        return frames

    def frames(self, ep: int, start: int, num: int, step: int) -> torch.Tensor:
        """Frames start, start+step, ... (num of them) as a (num, 3, H, W) uint8 copy."""
        picked = self.episode(ep)[start : start + (num - 1) * step + 1 : step]  # (num, H, W, C)
        out = picked.permute(0, 3, 1, 2)
        if out.shape[1] == 1:
            out = out.expand(-1, 3, -1, -1)
        return out.contiguous()
