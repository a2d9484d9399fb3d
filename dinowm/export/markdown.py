# SPDX-License-Identifier: MIT
"""Markdown primitives of the training log: tables, code, cells, numbers and dates."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dinowm.formats import literal

BACKTICKS = re.compile("`+")
# What Markdown or HTML would read as syntax in foreign text, each character as an entity (a
# backslash would be doubled by cell()): emphasis, code, strikethrough, a backslash before
# punctuation, links and footnotes, tags and comments, entities, and a line start that opens a
# heading, a quote or a list. Underscores inside a word, brackets that open no link, a lone
# '<' or '&' read as written and stay.
SYNTAX = re.compile(
    r"[*`~]|\\(?![A-Za-z0-9])|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])|\](?=[(\[:])|\[(?=\^)"
    r"|<(?=[A-Za-z/!?])|&(?=#?[A-Za-z0-9]+;)|^\s*(?:#|>|[-+](?=\s)|\d+[.)](?=\s|$))"
)


@dataclass
class Ctx:
    """What every section needs: labels of the language, time zone, now, the file's place."""

    lang: str
    labels: dict[str, str]
    tz: dt.tzinfo | None
    now: float
    folder: Path  # where the Markdown file is: links are relative to it
    doc: str  # the Markdown file's name

    def __call__(self, key: str, **values: Any) -> str:
        """The label `key` in this language, formatted with values."""
        text = self.labels[key]
        return text.format(**values) if values else text

    def time(self, ts: float | None, seconds: bool = False) -> str:
        """'2026-01-07 09:33' (or with seconds) in the export's time zone, or '-'."""
        if ts is None:
            return "-"
        if self.tz is None:  # local time through C: a log formats 100,000 of these
            return time.strftime(
                "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M", time.localtime(ts)
            )
        when = dt.datetime.fromtimestamp(ts, self.tz)
        if seconds:
            return when.isoformat(" ", "seconds")[:19]  # without the UTC offset
        return when.isoformat(" ", "minutes")[:16]


def cell(value: Any) -> str:
    """A value as one table cell: pipes escaped, newlines folded, None as '-'."""
    if value is None:
        return "-"
    text = value if type(value) is str else str(value)
    if "|" in text or "\\" in text or "\n" in text:
        text = text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
    return text


def foreign(value: Any) -> str:
    """Foreign text (a name, a note, an incident, a host) as Markdown that reads as written:
    what Markdown or HTML would interpret escaped, control characters visible, one line."""
    if value is None:
        return "-"
    return literal(SYNTAX.sub(_entity, str(value).replace("\n", " ")))


def _entity(match: re.Match[str]) -> str:
    found = match.group()  # the character to escape is the last (a line start leads to it)
    return f"{found[:-1]}&#{ord(found[-1])};"


def verbatim(value: Any) -> str:
    """Foreign text inside a label's code span: control characters visible, a backtick (which
    would end the span) as an apostrophe."""
    return literal(str(value).replace("\n", " ")).replace("`", "'")


def code(value: Any) -> str:
    """Inline code, with a longer fence when the value holds backticks."""
    text = literal(str(value).replace("\n", " "))
    if "`" not in text:
        return f"`{text}`"
    return f"`` {text} ``"


def fence(lines: Iterable[str], lang: str = "") -> list[str]:
    """A fenced code block whose fence is longer than any backtick run inside."""
    body = [literal(line, lines=True) for line in lines]
    ticks = "`" * max(3, _longest_backticks(body) + 1)
    return [ticks + lang, *body, ticks]


def _longest_backticks(lines: list[str]) -> int:
    return max(
        (len(run) for line in lines if "`" in line for run in BACKTICKS.findall(line)), default=0
    )


def table(
    header: Sequence[str], rows: Iterable[Sequence[Any]], align: Sequence[str] | None = None
) -> list[str]:
    """A pipe table; `align` holds 'l' or 'r' per column (the user's tables are left-aligned)."""
    out = table_head(header, align)
    out.extend("| " + " | ".join([cell(v) for v in row]) + " |" for row in rows)
    return out


def table_head(header: Sequence[str], align: Sequence[str] | None = None) -> list[str]:
    """The header and rule lines of a pipe table."""
    rule = [
        ("-" * (len(h) + 1) + ":") if a == "r" else "-" * (len(h) + 2)
        for h, a in zip(header, align or ["l"] * len(header))
    ]
    return ["| " + " | ".join(header) + " |", "|" + "|".join(rule) + "|"]


def lr(value: float | None) -> str:
    """A learning rate the way the user writes it: 5e-4, 1e-6, 0."""
    if value is None:
        return "-"
    if value == 0:
        return "0"
    mantissa, exponent = f"{value:e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def integer(value: int | float | None) -> str:
    """1,234,567 or '-'."""
    return "-" if value is None else f"{int(value):,}"


def gigabytes(mib: float | None, approx: bool = False) -> str:
    """MiB as the user writes RAM: '188 GB', '~169 GB', '1.5 GB'."""
    if mib is None:
        return "-"
    gb = mib / 1024
    text = f"{gb:.0f} GB" if gb >= 10 or abs(gb - round(gb)) < 0.05 else f"{gb:.1f} GB"
    return ("~" + text) if approx else text


def plain(value: Any) -> str:
    """A config value as it is written on the command line: True, 0.9, franka."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return f"{value:.1f}"
    return str(value)
