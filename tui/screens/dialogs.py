# SPDX-License-Identifier: MIT
"""Small modal dialogs: a yes/no confirmation and a one-line text prompt."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, Static

from dinowm.formats import literal


class ConfirmModal(ModalScreen[bool]):
    """A question answered with y / n (or the buttons); Escape means no."""

    AUTO_FOCUS = "#no"

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "Cancel"),
    ]

    def __init__(self, title: str, question: str, yes: str = "Yes") -> None:
        super().__init__()
        self.title_text, self.question, self.yes = title, question, yes

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Static(literal(self.question, lines=True), classes="dialog-body", markup=False)
            with Horizontal(classes="buttons"):
                yield Button(f"{self.yes} (y)", variant="error", id="yes", compact=True)
                yield Button("No (n)", id="no", compact=True)
        yield Footer(compact=True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class PromptModal(ModalScreen[str | None]):
    """One line of text (a note, a path, resume overrides); Enter accepts, Escape cancels."""

    AUTO_FOCUS = "#prompt"

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "accept", "OK")]

    def __init__(
        self,
        title: str,
        label: str,
        value: str = "",
        placeholder: str = "",
        allow_empty: bool = False,
    ) -> None:
        super().__init__()
        self.title_text, self.label, self.value = title, label, value
        self.placeholder, self.allow_empty = placeholder, allow_empty

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Static(literal(self.label, lines=True), classes="dialog-body", markup=False)
            yield Input(literal(self.value), placeholder=self.placeholder, id="prompt")
            with Horizontal(classes="buttons"):
                yield Button("OK (enter)", variant="primary", id="ok", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)
        yield Footer(compact=True)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_accept()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self.action_accept()
        else:
            self.dismiss(None)

    def action_accept(self) -> None:
        text = self.query_one("#prompt", Input).value
        if not text.strip() and not self.allow_empty:
            self.notify("Type something first, or Escape to cancel.", severity="warning")
            return
        self.dismiss(text)

    def action_cancel(self) -> None:
        self.dismiss(None)
