# SPDX-License-Identifier: MIT
"""formats.literal: foreign text shown as it reads, its control characters visible and inert;
formats.plain_name: a name with one is refused in one line."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from dinowm.errors import ConfigError
from dinowm.formats import _ANY, _UNSAFE, literal, literal_text, plain_name
from tests.support.hostile import controls, hostile


def test_the_escapes_read_as_python_writes_them() -> None:
    assert literal("a\x1b[31mb\x07") == "a\\x1b[31mb\\x07"
    assert literal("\x9b31m\x85\x7f\x00") == "\\x9b31m\\x85\\x7f\\x00"
    assert literal("\u202eevil\u2066\u2028") == "\\u202eevil\\u2066\\u2028"
    assert literal("one\ttwo\nthree\r") == "one\\ttwo\\nthree\\r"
    assert literal("one\ttwo\nthree\r", lines=True) == "one\ttwo\nthree\\r"
    assert literal("[bold]x[/] :smile: C:\\data Lüfter 温度 🌡️") == \
        "[bold]x[/] :smile: C:\\data Lüfter 温度 🌡️"  # not markup's business, nor a backslash
    assert literal(None) == "None" and literal(3.5) == "3.5"


def test_the_quick_check_finds_exactly_the_escaped_characters() -> None:
    found = [c for c in range(0x30000) if _ANY.match(chr(c))]
    assert found == sorted(set(_UNSAFE))


@given(st.one_of(hostile("MKword"), st.text()))
def test_nothing_of_foreign_text_drives_a_terminal(text: str) -> None:
    shown = literal(text, lines=True)
    assert not controls(shown)
    console = Console(width=80, color_system=None, record=True, file=None)
    with console.capture() as captured:
        console.print(literal_text(text, lines=True))
    assert not controls(captured.get())


def test_a_name_with_a_control_character_is_refused_in_one_line() -> None:
    assert plain_name(None) is None and plain_name("b16-lr3e-4 [x]") == "b16-lr3e-4 [x]"
    with pytest.raises(ConfigError) as caught:
        plain_name("b16\x1b[31m")
    message = str(caught.value)
    assert message.startswith("--name 'b16\\x1b[31m' holds control characters")
    assert "\n" not in message and not controls(message) and caught.value.exit_code == 2
