# SPDX-License-Identifier: MIT
"""The new-run modal: preset, overrides validated live with the CLI's messages, name, note,
and the number of GPUs (one torchrun rank each, as `dinowm run --gpus`)."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, Select, Static
from textual.worker import get_current_worker

from dinowm.config import Project
from dinowm.errors import ConfigError
from dinowm.formats import literal, literal_text, plain_name
from tui.operations import Check, check_launch, parse_overrides


@dataclass(frozen=True)
class LaunchSpec:
    """What the modal hands back: everything create_run needs."""

    preset: str
    overrides: list[str]
    name: str
    note: str
    gpus: str = ""  # "" = dist.nproc_per_node as resolved; N or "auto" = one rank per GPU
    queue: bool = False  # add it to the queue instead of starting it now


@dataclass
class Checked(Message):
    """Result of validating one (preset, overrides) pair."""

    preset: str
    text: str
    check: Check


class NewRunModal(ModalScreen[LaunchSpec | None]):
    """Start a run: nothing is written until the inputs validate and Start is pressed."""

    AUTO_FOCUS = "#overrides"

    BINDINGS = [
        Binding("ctrl+s", "start", "Start"),
        Binding("ctrl+o", "queue", "Queue"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, project: Project, overrides: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.project = project
        self.initial = " ".join(overrides)
        self.last: Checked | None = None
        self.start_pending = False  # Start pressed while a check was still running
        self.to_queue = False  # what the pending press was: Queue rather than Start

    def compose(self) -> ComposeResult:
        presets = [
            (literal_text(f"{name}  {body.get('description', '')}"[:58]), name)
            for name, body in self.project.presets.items()
        ]
        default = self.project.default_preset
        with Vertical(classes="dialog", id="new-run"):
            yield Label("New run", classes="dialog-title")
            yield Select(
                presets,
                value=default if default in self.project.presets else Select.BLANK,
                allow_blank=False,
                id="preset",
            )
            yield Input(
                self.initial,
                placeholder="overrides: training.epochs=50 frameskip=5",
                id="overrides",
            )
            with VerticalScroll(id="check-box"):
                yield Static("checking…", id="check")
            with Horizontal(classes="fields"):
                yield Input(placeholder="name (default PRESET-N)", id="name")
                yield Input(placeholder="first note", id="note")
                yield Input(placeholder="GPUs: 1", id="gpus", restrict=r"[0-9a-z]*")
            with Horizontal(classes="buttons"):
                yield Button(
                    "Start (^s)", variant="success", id="start", disabled=True, compact=True
                )
                yield Button(
                    "Queue (^o)", variant="primary", id="queue", disabled=True, compact=True
                )
                yield Button("Cancel (esc)", id="cancel", compact=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._changed()

    @on(Select.Changed, "#preset")
    @on(Input.Changed, "#overrides")
    def _changed(self) -> None:
        self.query_one("#start", Button).disabled = True
        self.query_one("#queue", Button).disabled = True
        self.validate(self._preset(), self.query_one("#overrides", Input).value)

    def _preset(self) -> str:
        value = self.query_one("#preset", Select).value
        return value if isinstance(value, str) else self.project.default_preset

    @work(thread=True, exclusive=True, exit_on_error=False, group="validate")
    def validate(self, preset: str, text: str) -> None:
        """resolve() + preflight off the event loop (preflight may touch the disk)."""
        check = check_launch(self.project, preset, text)
        if not get_current_worker().is_cancelled:
            self.post_message(Checked(preset, text, check))

    def on_checked(self, message: Checked) -> None:
        if (message.preset, message.text) != (
            self._preset(),
            self.query_one("#overrides", Input).value,
        ):
            return  # an older check; a newer one is on its way
        self.last = message
        check = message.check
        if check.ok:
            text = Text(f"✔ {literal(check.message)}", style="green")
            for change in check.changes:
                text.append(f"\n  {literal(change)}", style="dim")
        else:
            text = Text(f"✘ {literal(check.message)}", style="bold red")
        self._say(text, not check.ok)
        self.query_one("#start", Button).disabled = not check.ok
        self.query_one("#queue", Button).disabled = not check.ok
        if self.start_pending:
            self._submit(self.to_queue)

    def _say(self, text: Text, error: bool) -> None:
        """The line under the overrides: what they change, or why the run cannot start."""
        box = self.query_one("#check", Static)
        box.update(text)
        box.set_class(error, "error")

    @property
    def error(self) -> str | None:
        """The validation error shown now, if any."""
        return None if self.last is None or self.last.check.ok else self.last.check.message

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_start()

    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        self._submit(False)

    @on(Button.Pressed, "#queue")
    def action_queue(self) -> None:
        self._submit(True)

    def _submit(self, to_queue: bool) -> None:
        current = (self._preset(), self.query_one("#overrides", Input).value)
        if self.last is None or (self.last.preset, self.last.text) != current:
            self.start_pending, self.to_queue = True, to_queue  # once the check passes
            return
        self.start_pending = False
        name = self.query_one("#name", Input).value.strip()
        try:
            plain_name(name, "name")  # refused here, as `dinowm run --name` refuses it
        except ConfigError as exc:
            self._say(Text(f"✘ {literal(exc)}", style="bold red"), True)
            self.app.bell()
            return
        if not self.last.check.ok:
            self.app.bell()
            return
        self.dismiss(
            LaunchSpec(
                current[0],
                parse_overrides(current[1]),
                name,
                self.query_one("#note", Input).value.strip(),
                self.query_one("#gpus", Input).value.strip(),
                to_queue,
            )
        )

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
