# SPDX-License-Identifier: MIT
"""Foreign text in the Markdown log reads as written: a CommonMark parser (with GitHub's tables
and strikethrough) finds no link, emphasis, code, heading, list or HTML in it, inline or in a
table cell, and its text is the text, control characters shown escaped."""

from __future__ import annotations

import html
import re

from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from dinowm.export.markdown import cell, code, fence, foreign
from dinowm.formats import literal
from tests.support.hostile import controls, hostile

MD = MarkdownIt("commonmark").enable("table").enable("strikethrough")
TAG = re.compile(r"<[^>]+>")
TEXT = st.one_of(hostile("MKword"), st.text(max_size=40))


def _plain(rendered: str, allowed: set[str]) -> str:
    """The rendered HTML's text, after checking it holds no tag but the allowed ones."""
    tags = {t.split()[0].strip("</>") for t in TAG.findall(rendered)}
    assert tags <= allowed, (tags - allowed, rendered)
    return html.unescape(TAG.sub("", rendered)).strip()


def _expected(text: str) -> str:
    return " ".join(literal(text.replace("\n", " ")).split())


@settings(max_examples=300, deadline=None)
@given(text=TEXT)
def test_foreign_text_is_only_text_inline_and_in_a_table(text: str) -> None:
    shown = foreign(text)
    assert not controls(shown) and "\n" not in shown
    inline = _plain(MD.render(f"x {shown}"), {"p"})
    assert " ".join(inline.split()) == _expected(f"x {text}")
    table = MD.render(f"| a | b |\n|---|---|\n| {cell(shown)} | end |")
    assert " ".join(_plain(table, {"table", "thead", "tbody", "tr", "th", "td"}).split()) == \
        _expected(f"a b {text} end")


@settings(max_examples=100, deadline=None)
@given(text=TEXT)
def test_code_and_fences_hold_foreign_text_without_control_characters(text: str) -> None:
    assert not controls(code(text))
    assert _plain(MD.render(f"x {code(text)}"), {"p", "code"})
    block = "\n".join(fence([text, "end"]))
    assert not controls(block)
    rendered = MD.render(block)
    assert rendered.startswith("<pre><code>") and rendered.rstrip().endswith("end\n</code></pre>")
