# SPDX-License-Identifier: MIT
"""Generated blocks between markers: rewrite those, keep every line the user wrote, in place."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dinowm.errors import DinowmError

MARKER = re.compile(
    r"^<!-- dinowm:(begin|end) ([a-z_]+)(?: run=(\S+))? -->[ \t\r]*(?:\n|\Z)", re.MULTILINE
)

Key = tuple[str, "str | None"]  # (block name, run id or None for file-level blocks)


@dataclass
class Block:
    """A generated block found in the file: its key and its text, markers included."""

    key: Key
    text: str


def _label(key: Key) -> str:
    return key[0] + (f" run={key[1]}" if key[1] else "")


def render(key: Key, body: str) -> str:
    """A block with its markers; a content line that looks like a marker is indented."""
    if "<!-- dinowm:" in body:
        body = "\n".join(f" {line}" if MARKER.match(line) else line for line in body.split("\n"))
    label = _label(key)
    return f"<!-- dinowm:begin {label} -->\n{body}\n\n<!-- dinowm:end {label} -->\n"


def _markers(text: str) -> Iterator[re.Match[str]]:
    """Marker lines in order; str.find skips the text between them (megabytes of tables)."""
    at = text.find("<!-- dinowm:")
    while at >= 0:
        match = MARKER.match(text, at)  # ^ (MULTILINE): only at the start of a line
        if match:
            yield match
        at = text.find("<!-- dinowm:", at + 1)


def parse(text: str, path: Path) -> list[str | Block]:
    """The file as user text (str) and generated blocks; damaged markers are an error."""
    out: list[str | Block] = []
    seen: dict[Key, int] = {}
    pos, begin = 0, None  # begin: (key, offset) of the block being read

    def line(offset: int) -> int:
        return text.count("\n", 0, offset) + 1

    for match in _markers(text):
        kind, key = match.group(1), (match.group(2), match.group(3))
        if kind == "begin":
            if begin is not None:
                raise DinowmError(
                    f"{path} line {line(match.start())}: a new block starts "
                    f"inside '{_label(begin[0])}'; restore its end marker "
                    f"'<!-- dinowm:end {_label(begin[0])} -->'."
                )
            if key in seen:
                raise DinowmError(
                    f"{path} line {line(match.start())}: block '{_label(key)}' "
                    f"appears twice (first at line {line(seen[key])}); delete "
                    f"one of them."
                )
            seen[key] = match.start()
            if match.start() > pos:
                out.append(text[pos : match.start()])
            begin = (key, match.start())
        elif begin is None or begin[0] != key:
            raise DinowmError(
                f"{path} line {line(match.start())}: end marker of "
                f"'{_label(key)}' without its begin marker; delete the line or "
                f"restore the block."
            )
        else:
            out.append(Block(key, text[begin[1] : match.end()]))
            pos, begin = match.end(), None
    if begin is not None:
        raise DinowmError(
            f"{path}: block '{_label(begin[0])}' has no end marker; add "
            f"'<!-- dinowm:end {_label(begin[0])} -->' where it ends."
        )
    if pos < len(text):
        out.append(text[pos:])
    return out


def merge(
    segments: list[str | Block],
    blocks: list[tuple[Key, str]],
    only_replace: frozenset[Key] = frozenset(),
) -> str:
    """The new text from the parsed file: known blocks replaced in place, missing ones placed
    next to their run. Keys in only_replace are rewritten where the file has them but never
    added to it.
    """
    at = {s.key: i for i, s in enumerate(segments) if isinstance(s, Block)}
    if segments:
        blocks = [(k, v) for k, v in blocks if k in at or k not in only_replace]
    new = dict(blocks)
    groups: dict[str | None, list[Key]] = {}  # a run's blocks (None: title and comparison)
    for key, _ in blocks:
        groups.setdefault(key[1], []).append(key)
    before: dict[int, list[Key]] = {}
    after: dict[int, list[Key]] = {}
    tail: list[Key] = []
    slot: dict[Key, list[Key]] = {}
    for group in groups.values():
        if all(k not in at for k in group):
            tail += group  # a run new to this file: its blocks go to the end, in order
            continue
        for n, key in enumerate(group):
            if key in at:
                continue
            prev = next((k for k in reversed(group[:n]) if k in at or k in slot), None)
            succ = next((k for k in group[n + 1 :] if k in at), None)
            if prev is not None:
                target = slot[prev] if prev in slot else after.setdefault(at[prev], [])
            elif succ is not None:
                target = before.setdefault(at[succ], [])
            else:
                target = tail
            target.append(key)
            slot[key] = target
    out: list[str] = []
    for i, segment in enumerate(segments):
        _place(out, before.get(i, []), new)
        if isinstance(segment, Block):
            out.append(
                render(segment.key, new[segment.key]) if segment.key in new else segment.text
            )
        else:
            out.append(segment)
        _place(out, after.get(i, []), new)
    _place(out, tail, new)
    if (tail or after.get(len(segments) - 1)) and out and out[-1] == "\n":
        out.pop()  # no blank line at the very end after appended blocks
    return "".join(out)


def _place(out: list[str], keys: list[Key], new: dict[Key, str]) -> None:
    """Insert new blocks with a blank line on either side."""
    for key in keys:
        if out and not out[-1].endswith("\n"):
            out[-1] += "\n"
        if out and not (out[-1] == "\n" or out[-1].endswith("\n\n")):
            out.append("\n")
        out.append(render(key, new[key]))
        out.append("\n")


def write_atomic(path: Path, text: str, durable: bool = True) -> None:
    """Write text to path through a temporary file and a rename (never half a file).

    `durable` fsyncs before the rename; images that the next export redraws skip it.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_if_changed(path: Path, text: str) -> bool:
    """Write a file that the next export redraws: only when it changed, without fsync.

    A new file is written in place (nobody reads it yet); an existing one is replaced.
    """
    try:
        with open(path, "x", encoding="utf-8", newline="") as fh:
            fh.write(text)
        return True
    except FileExistsError:
        pass
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass
    write_atomic(path, text, durable=False)
    return True
