# SPDX-License-Identifier: MIT
"""The foreground display of `dinowm run`: progress bars in a terminal, plain lines otherwise."""

from __future__ import annotations

from functools import partial
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.text import Text

from dinowm.formats import fmt_duration, fmt_num, literal, literal_text, status_text
from dinowm.supervise.telemetry import throttle_names


def _val(row: dict[str, Any], key: str, spec: str) -> str:
    """A row's value formatted, or '-' when it has none."""
    return "-" if row.get(key) is None else format(row[key], spec)


def gpu_line(rows: list[dict[str, Any]]) -> Text:
    """'GPU0 71 °C 183/300 W 97% 7.9/80 GiB [hw_thermal]' for each GPU, or 'no GPU'."""
    if not rows:
        return Text("GPU: no telemetry (no GPU or NVML unavailable)", style="dim")
    text = Text()
    for r in rows:
        val = partial(_val, r)
        mem = (
            "-"
            if r.get("mem_used_mib") is None
            else f"{r['mem_used_mib'] / 1024:.1f}/{(r.get('mem_total_mib') or 0) / 1024:.0f} GiB"
        )
        text.append(
            f"GPU{r['gpu']} {val('temp_c', '.0f')} °C  {val('power_w', '.0f')}/"
            f"{val('power_limit_w', '.0f')} W  util {val('util_pct', '.0f')}%  {mem}"
        )
        badges = [n for n in throttle_names(r.get("throttle")) if n != "gpu_idle"]
        if badges:
            text.append("  [" + ", ".join(badges) + "]", style="bold red")
        text.append("   ")
    return text


class Display:
    """Epoch and batch bars with loss, samples/s, ETA and the GPU line (rich Live)."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console()
        self.terminal = self.console.is_terminal
        self.bars = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}", markup=False),
            console=self.console,
        )
        self.epoch_task = self.bars.add_task("epoch", total=None, info="")
        self.batch_task = self.bars.add_task("batch", total=None, info="")
        self.status = Text("")
        self.gpu = Text("")
        self.live = (
            Live(
                Group(self.status, self.bars, self.gpu),
                console=self.console,
                refresh_per_second=4,
                transient=False,
            )
            if self.terminal
            else None
        )

    def __enter__(self) -> Display:
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def start(self, event: dict[str, Any]) -> None:
        """A trainer attempt started."""
        what = f"resumed from {event['resumed_from']}" if event.get("resumed_from") else "started"
        self._say(
            f"attempt {event.get('attempt')} {what}: epoch {event.get('epoch')}, "
            f"{event.get('batches_per_epoch')} batches/epoch of {event.get('batch_size')} "
            f"on {event.get('device')}, encoder {event.get('encoder_label')}"
        )

    def epoch(self, event: dict[str, Any]) -> None:
        """An epoch ended: one permanent line."""
        self._say(
            f"epoch {event['epoch']}: train_loss {fmt_num(event.get('train_loss'))}  "
            f"val_loss {fmt_num(event.get('val_loss'))}  z_err_pred "
            f"{fmt_num(event.get('z_err_pred'))}  {fmt_duration(event.get('duration_s'))}"
            f"  {fmt_num(event.get('samples_per_s'), 3)} samples/s"
        )

    def update(self, run: dict[str, Any], gpus: list[dict[str, Any]]) -> None:
        """Refresh bars from the run row (2-4 Hz)."""
        if self.live is None:
            return
        self.status = Text.assemble(
            status_text(run["status"]),
            literal(
                f"  {run['id']}  {run.get('name') or ''}  attempt {run.get('attempts')}  "
                f"phase {run.get('phase') or '-'}"
            ),
        )
        per_epoch = run.get("batches_per_epoch") or None
        done = run.get("step") or 0
        self.bars.update(
            self.epoch_task,
            total=run.get("epochs_target"),
            completed=run.get("epoch") or 0,
            info=f"ETA {fmt_duration(run.get('eta_s'))}",
        )
        if per_epoch:
            in_epoch = done - (run.get("epoch") or 0) * per_epoch
            self.bars.update(
                self.batch_task,
                total=per_epoch,
                completed=max(0, min(in_epoch, per_epoch)),
                info=f"loss {fmt_num(run.get('last_loss'))}  "
                f"{fmt_num(run.get('samples_per_s'), 3)} samples/s",
            )
        self.gpu = gpu_line(gpus)
        self.live.update(Group(self.status, self.bars, self.gpu))

    def _say(self, line: str) -> None:
        self.console.print(literal_text(line), soft_wrap=True)  # a log line: never broken
