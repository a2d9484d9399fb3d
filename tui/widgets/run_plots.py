# SPDX-License-Identifier: MIT
"""Plots of one run with textual-plotext: losses and z_err_pred per epoch, GPU over time."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Grid
from textual_plotext import PlotextPlot

from dinowm.supervise.telemetry import throttle_names

IDLE = 0x1  # gpu_idle is not a slowdown worth marking
POINTS = 240


def downsample(samples: list[dict[str, Any]], points: int = POINTS) -> list[dict[str, Any]]:
    """At most `points` samples of one GPU: mean power, max temperature, OR-ed throttle bits."""
    if len(samples) <= points:
        return samples
    out = []
    step = len(samples) / points
    for i in range(points):
        chunk = samples[int(i * step) : int((i + 1) * step)] or [samples[-1]]
        temps = [s["temp_c"] for s in chunk if s.get("temp_c") is not None]
        powers = [s["power_w"] for s in chunk if s.get("power_w") is not None]
        throttle = 0
        for s in chunk:
            throttle |= s.get("throttle") or 0
        out.append(
            {
                "t": chunk[0]["t"],
                "temp_c": max(temps) if temps else None,
                "power_w": sum(powers) / len(powers) if powers else None,
                "throttle": throttle,
            }
        )
    return out


def series(
    rows: list[dict[str, Any]], x: str, y: str, scale: float = 1.0, origin: float = 0.0
) -> tuple[list[float], list[float]]:
    """(xs, ys) of the rows where y is known."""
    pairs = [((r[x] - origin) * scale, r[y]) for r in rows if r.get(y) is not None]
    return [p[0] for p in pairs], [p[1] for p in pairs]


class RunPlots(Grid):
    """A 2x2 grid: loss, z_err_pred, GPU temperature (throttling marked), GPU power."""

    DEFAULT_CSS = """
    RunPlots { grid-size: 2 2; grid-gutter: 0 1; }
    """

    def compose(self) -> ComposeResult:
        for plot_id in ("loss-plot", "zerr-plot", "temp-plot", "power-plot"):
            yield PlotextPlot(id=plot_id)

    def show_epochs(self, epochs: list[dict[str, Any]]) -> None:
        """Train and val loss, and z_err_pred, per epoch."""
        loss = self.query_one("#loss-plot", PlotextPlot)
        plt = loss.plt
        plt.clear_figure()
        plt.title("loss per epoch" if epochs else "loss: no epoch yet")
        for key, color in (("train_loss", "blue"), ("val_loss", "orange")):
            xs, ys = series(epochs, "epoch", key)
            if xs:
                plt.plot(xs, ys, label=key.replace("_", " "), color=color, marker="braille")
        plt.xlabel("epoch")
        loss.refresh()
        zerr = self.query_one("#zerr-plot", PlotextPlot)
        plt = zerr.plt
        plt.clear_figure()
        plt.title("z_err_pred per epoch" if epochs else "z_err_pred: no epoch yet")
        xs, ys = series(epochs, "epoch", "z_err_pred")
        if xs:
            plt.plot(xs, ys, label="z_err_pred", color="green", marker="braille")
        plt.xlabel("epoch")
        zerr.refresh()

    def show_gpu(self, samples: list[dict[str, Any]], origin: float | None) -> None:
        """Temperature and power over minutes since the run started, per GPU."""
        temp, power = (self.query_one(f"#{p}", PlotextPlot) for p in ("temp-plot", "power-plot"))
        for widget in (temp, power):
            widget.plt.clear_figure()
            widget.plt.xlabel("minutes")
        origin = origin if origin is not None else (samples[0]["t"] if samples else 0.0)
        reasons: set[str] = set()
        for gpu in sorted({s["gpu"] for s in samples}):
            rows = downsample([s for s in samples if s["gpu"] == gpu])
            xs, ys = series(rows, "t", "temp_c", 1 / 60, origin)
            if xs:
                temp.plt.plot(xs, ys, label=f"GPU{gpu} °C", marker="braille")
            xs, ys = series(rows, "t", "power_w", 1 / 60, origin)
            if xs:
                power.plt.plot(xs, ys, label=f"GPU{gpu} W", marker="braille")
            hot = [
                r for r in rows if (r.get("throttle") or 0) & ~IDLE and r.get("temp_c") is not None
            ]
            for r in hot:
                reasons.update(n for n in throttle_names(r["throttle"]) if n != "gpu_idle")
            if hot:
                xs, ys = series(hot, "t", "temp_c", 1 / 60, origin)
                temp.plt.scatter(xs, ys, marker="x", color="red", label="throttled")
        temp.plt.title(
            "GPU °C"
            + (
                f" — throttled: {', '.join(sorted(reasons))}"
                if reasons
                else ""
                if samples
                else ": no samples (no GPU)"
            )
        )
        power.plt.title("GPU power W" + ("" if samples else ": no samples"))
        temp.refresh()
        power.refresh()
