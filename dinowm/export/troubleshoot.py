# SPDX-License-Identifier: MIT
"""## 6. Troubleshooting, written from a run's incidents: what happened and what was done."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from dinowm.export.markdown import Ctx, code, fence, foreign, table, verbatim
from dinowm.export.record import RunRecord
from dinowm.rundir import ACTIVE

PROBLEMS = ("oom", "stall", "crash", "exception", "disk_full", "config", "data", "lost", "gpu_lost")
ACTIONS = ("oom_policy", "resume")
CRASHES = ("crash", "exception", "disk_full", "config", "data")
TAIL = 8  # log lines shown per incident
STACK_LINES = 60


def _details(incident: dict[str, Any]) -> dict[str, Any]:
    try:
        details = json.loads(incident.get("details_json") or "{}")
    except ValueError:
        return {}
    return details if isinstance(details, dict) else {}


class Story:
    """A run's incidents in time order, with what followed each one."""

    def __init__(self, ctx: Ctx, rec: RunRecord):
        self.ctx, self.rec = ctx, rec
        self.items = [{**i, "details": _details(i)} for i in rec.incidents]

    def of(self, *kinds: str) -> list[dict[str, Any]]:
        return [i for i in self.items if i["kind"] in kinds]

    def actions(self, incident: dict[str, Any]) -> list[str]:
        """What was done after an incident: OOM policy and resumes up to the next problem."""
        at = self.items.index(incident)
        done = []
        for later in self.items[at + 1 :]:
            if later["kind"] in PROBLEMS:
                break
            if later["kind"] in ACTIONS:  # dated only when it came much later (by hand)
                done.append(self.action_text(later, dated=later["t"] - incident["t"] > 600))
        if not done and not any(i["kind"] in PROBLEMS for i in self.items[at + 1 :]):
            run = self.rec.run
            if run["status"] not in ACTIVE and not self.progressed(incident["t"]):
                done.append(
                    self.ctx(
                        "run_ended", status=run["status"], reason=foreign(run.get("exit_reason"))
                    )
                )
        return done

    def action_text(self, i: dict[str, Any], dated: bool = True) -> str:
        """One action in words: the OOM policy's new micro-batch, a resume and why."""
        ctx, d = self.ctx, i["details"]
        when = ctx.time(i["t"]) + ": " if dated else ""
        if i["kind"] == "oom_policy" and d.get("micro_batch_before") is not None:
            batch, before, after = (
                d.get("batch_size"),
                d["micro_batch_before"],
                d.get("micro_batch_after"),
            )
            return when + ctx(
                "oom_policy",
                batch=batch,
                before=before,
                after=after,
                accum_before=_accum(batch, before),
                accum_after=_accum(batch, after),
            )
        if i["kind"] == "resume" and i["summary"].startswith("resuming"):
            reason = i["summary"].split(": ", 1)[1] if ": " in i["summary"] else ""
            return when + ctx(
                "resumed_auto",
                attempt=(i.get("attempt") or 0) + 1,
                delay=f"{d.get('delay_s', 0):.0f}",
                reason=foreign(reason) if reason else "",
            )
        if i["kind"] == "resume" and i["summary"].startswith("resumed by the user"):
            overrides = " ".join(map(str, d.get("overrides") or []))
            return when + ctx("resumed_user") + (f" ({code(overrides)})" if overrides else "")
        return when + foreign(i["summary"])

    def progressed(self, t: float) -> dict[str, Any] | None:
        """The first epoch that ended after time t, if any."""
        return next((e for e in self.rec.epochs if (e["ended_at"] or 0) > t), None)

    def result(self, incidents: list[dict[str, Any]]) -> tuple[str, str]:
        """(heading mark, result line) after the last of these incidents."""
        ctx, last = self.ctx, incidents[-1]
        later = self.progressed(last["t"])
        if later is not None:
            return (
                f" ✅ {ctx('solved')}",
                ctx("result_progress", epoch=later["epoch"], at=ctx.time(later["ended_at"])),
            )
        if self.rec.run["status"] in ACTIVE:
            return "", ctx("result_running")
        return f" ⚠️ {ctx('unsolved')}", ctx("result_none", status=self.rec.run["status"])


def _lines(value: Any) -> list[str]:
    """Log lines as recorded: a list of lines (or one text); anything else is no lines."""
    if isinstance(value, str):
        return value.rstrip().splitlines()
    return [str(line) for line in value] if isinstance(value, list) else []


def _accum(batch: Any, micro: Any) -> Any:
    return batch // micro if isinstance(batch, int) and isinstance(micro, int) and micro else "?"


def _where(ctx: Ctx, i: dict[str, Any]) -> str:
    parts = [
        f"{ctx('attempt')} {i['attempt']}" if i.get("attempt") is not None else None,
        f"Epoch {i['epoch']}" if i.get("epoch") is not None else None,
        f"{ctx('step')} {i['step']:,}" if i.get("step") is not None else None,
    ]
    text = ", ".join(p for p in parts if p)
    return f" ({text})" if text else ""


def _done(ctx: Ctx, story: Story, i: dict[str, Any]) -> list[str]:
    done = story.actions(i)
    return [f"- **{ctx('action')}:** " + ("; ".join(done) if done else "-")]


def _collapsed(summary: str, lines: list[str], lang: str = "") -> list[str]:
    return [
        "",
        "<details>",
        f"<summary>{summary}</summary>",
        "",
        *fence(lines, lang),
        "",
        "</details>",
    ]


def oom(ctx: Ctx, story: Story, items: list[dict[str, Any]]) -> list[str]:
    hw = story.rec.hardware or {}
    gpu = ""
    if hw.get("gpu_name"):
        vram = f" ({hw['gpu_vram_mib']:,} MiB VRAM)" if hw.get("gpu_vram_mib") else ""
        gpu = ctx("on_gpu", gpu=foreign(hw["gpu_name"]) + vram)
    rows = []
    for i in items:
        d = i["details"]
        batch, accum = d.get("batch_size"), d.get("grad_accum")
        peak = d.get("peak_gpu_mem_mib")
        rows.append(
            (
                ctx.time(i["t"]),
                i.get("attempt"),
                i.get("epoch"),
                batch,
                _accum(batch, accum) if accum else None,
                None if peak is None else f"{peak:,.0f} MiB",
                "; ".join(story.actions(i)) or "-",
            )
        )
    out = [
        ctx("oom_problem", n=len(items), gpu=gpu),
        "",
        *table(
            [
                ctx("time"),
                ctx("attempt"),
                "Epoch",
                "Batch Size",
                "Micro-Batch",
                ctx("peak_gpu_mem"),
                ctx("action"),
            ],
            rows,
        ),
        "",
    ]
    out += fence(dict.fromkeys(i["summary"] for i in items))
    trace = next(
        (_lines(i["details"]["traceback"]) for i in items if i["details"].get("traceback")), []
    )
    if trace:
        out += _collapsed("Traceback", trace[-15:])
    return out


def stall(ctx: Ctx, story: Story, items: list[dict[str, Any]]) -> list[str]:
    """A block per freeze, blank lines between them."""
    out: list[str] = []
    for n, i in enumerate(items, 1):
        out += _freeze(ctx, story, n, i)
        out.append("")
    return out[:-1]


def _freeze(ctx: Ctx, story: Story, n: int, i: dict[str, Any]) -> list[str]:
    """Freeze n: the watchdog's verdict, the diagnosis, the process, where it was stuck, its
    zombies, the GPU, the kill, what was done, the log's tail and the Python stacks."""
    d = i["details"]
    verdict, proc = d.get("verdict") or {}, d.get("process") or {}
    problem = foreign(i["summary"])
    if verdict.get("age_s") is not None:
        problem = ctx(
            "stall_verdict",
            age=f"{verdict['age_s']:.0f}",
            phase=verbatim(verdict.get("phase")),
            limit=f"{verdict.get('limit_s', 0):.0f}",
        )
    out = [
        f"**Freeze {n}: {ctx.time(i['t'])}**{_where(ctx, i)}",
        "",
        f"- **Problem:** {problem}",
        f"- **{ctx('diagnosis')}:** {foreign(d.get('summary') or i['summary'])}",
    ]
    if proc:
        out.append(f"- **{ctx('process')}:** " + _process_line(ctx, proc))
    frame = (d.get("stuck_frame") or {}).get("text")
    out.append(
        f"- **{ctx('stuck_in')}:** " + (code(frame) if frame else foreign(d.get("stacks_note")))
    )
    out.append("- **Zombies:** " + _zombies(ctx, d.get("zombies") or []))
    gpu = _gpu_snapshot(d.get("gpu"))
    if gpu:
        out.append(f"- **GPU:** {gpu}")
    kill = d.get("kill") or {}
    if kill:
        out.append(f"- **{ctx('kill')}:** " + _kill_line(ctx, kill))
    out += _done(ctx, story, i)
    tail = _lines(d.get("log_tail"))[-TAIL:]
    if tail:
        out += ["", f"{ctx('log_tail')}:", "", *fence(tail)]
    stacks = _lines((d.get("stacks") or {}).get("text"))
    if stacks:
        out += _collapsed(ctx("python_stacks"), stacks[:STACK_LINES])
    return out


def _process_line(ctx: Ctx, proc: dict[str, Any]) -> str:
    """The frozen process: its state, what it was doing, its CPU share, its threads."""
    return ctx(
        "process_line",
        state=foreign(proc.get("state_name") or proc.get("state")),
        activity=foreign(proc.get("activity")),
        cpu=proc.get("cpu_percent", 0),
        window=proc.get("window_s", 0),
        threads=len(proc.get("threads") or []),
    )


def _zombies(ctx: Ctx, zombies: list[dict[str, Any]]) -> str:
    """Each unreaped child with its parent, or 'none'."""
    return "; ".join(
        ctx(
            "zombie",
            comm=verbatim(z.get("comm")),
            pid=z.get("pid"),
            ppid=z.get("ppid"),
            parent=foreign(z.get("parent_comm") or "?"),
        )
        for z in zombies
    ) or ctx("none")


def _kill_line(ctx: Ctx, kill: dict[str, Any]) -> str:
    """How the process group was killed, and what survived it."""
    survivors = ", ".join(str(s.get("pid")) for s in kill.get("survivors") or [])
    return ctx(
        "kill_line",
        pgid=kill.get("pgid"),
        signals=", ".join(kill.get("signals") or []) or "-",
        seconds=kill.get("seconds", 0),
    ) + (f"; {ctx('survivors')}: {survivors}" if survivors else "")


def _gpu_snapshot(gpu: Any) -> str | None:
    if not isinstance(gpu, dict) or not gpu.get("available"):
        return None
    rows = []
    for g in gpu.get("gpus") or []:
        parts = [f"GPU {g.get('gpu')}"]
        for key, unit in (
            ("temp_c", " °C"),
            ("power_w", " W"),
            ("util_pct", "% util"),
            ("mem_used_mib", " MiB"),
        ):
            if g.get(key) is not None:
                parts.append(f"{g[key]:.0f}{unit}")
        if g.get("throttle_names"):
            parts.append("throttle " + ", ".join(g["throttle_names"]))
        rows.append(" ".join(parts[:1]) + ": " + ", ".join(parts[1:]))
    return "; ".join(rows) or None


def crash(ctx: Ctx, story: Story, items: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for i in items:
        d = i["details"]
        exit_code = f", exit code {d['exit_code']}" if d.get("exit_code") is not None else ""
        out += [
            f"**{ctx('kind_' + i['kind'])}: {ctx.time(i['t'])}**{_where(ctx, i)}",
            "",
            f"- **{ctx('message')}:** {code(i['summary'])}{exit_code}",
            *_done(ctx, story, i),
        ]
        lines = _lines(d.get("traceback")) or _lines(d.get("log_tail"))
        if lines:
            out += ["", *fence(lines[-TAIL:])]
        out.append("")
    return out[:-1]


def thermal(ctx: Ctx, story: Story, items: list[dict[str, Any]]) -> list[str]:
    rows = []
    for i in items:
        d = i["details"]
        temps = d.get("temps") or []
        action = d.get("action")
        rows.append(
            (
                ctx.time(i["t"], seconds=True),
                f"⏸ {ctx('pause')}"
                if action == "pause"
                else f"▶ {ctx('resume')}"
                if action == "resume"
                else action,
                f"{max(temps):.0f}" if temps else None,
                foreign(", ".join(d.get("throttle") or [])) if d.get("throttle") else None,
                foreign(i["summary"]),
            )
        )
    pauses = sum(1 for i in items if i["details"].get("action") == "pause")
    return [
        *([ctx("thermal_intro", n=pauses), ""] if pauses else []),
        *table([ctx("time"), ctx("thermal_action"), "GPU °C", "Throttle", ctx("message")], rows),
    ]


def lost(ctx: Ctx, story: Story, items: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for i in items:
        out += [
            f"**{ctx('kind_' + i['kind'])}: {ctx.time(i['t'])}**{_where(ctx, i)}",
            "",
            f"- **{ctx('message')}:** {foreign(i['summary'])}",
            *_done(ctx, story, i),
        ]
        tail = _lines(i["details"].get("log_tail"))[-TAIL:]
        if tail:
            out += ["", *fence(tail)]
        out.append("")
    return out[:-1]


def other(ctx: Ctx, story: Story, items: list[dict[str, Any]]) -> list[str]:
    seen: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for i in items:
        seen.setdefault((i["kind"], i["summary"]), []).append(i)
    return [
        f"- **{ctx.time(group[0]['t'])}** {code(kind)}: {foreign(summary)}"
        + (f" (×{len(group)})" if len(group) > 1 else "")
        for (kind, summary), group in seen.items()
    ]


def resumes(ctx: Ctx, story: Story, items: list[dict[str, Any]]) -> list[str]:
    return [f"- {story.action_text(i)}" for i in items]


Writer = Callable[[Ctx, Story, list[dict[str, Any]]], list[str]]
GROUPS: tuple[tuple[str, tuple[str, ...], Writer, bool], ...] = (
    ("t_oom", ("oom",), oom, True),
    ("t_stall", ("stall",), stall, True),
    ("t_crash", CRASHES, crash, True),
    ("t_thermal", ("thermal",), thermal, False),
    ("t_lost", ("lost", "gpu_lost"), lost, True),
    ("t_resumes", ("resume",), resumes, False),
)


def troubleshooting(ctx: Ctx, rec: RunRecord) -> list[str]:
    """Subsections 6.1, 6.2, ... for the kinds of incident this run had."""
    story = Story(ctx, rec)
    out = [f"## {ctx('h_trouble')}"]
    known = {k for _, kinds, _, _ in GROUPS for k in kinds} | {"oom_policy"}
    groups = [
        *GROUPS,
        ("t_other", tuple(sorted({i["kind"] for i in story.items} - known)), other, False),
    ]
    number = 0
    for title, kinds, write, marked in groups:
        items = story.of(*kinds)
        if not items:
            continue
        number += 1
        mark, result = story.result(items) if marked else ("", "")
        out += ["", f"### 6.{number} {ctx(title)}{mark}", "", *write(ctx, story, items)]
        if result:
            out += ["", f"**{ctx('result')}:** {result}"]
    if number == 0:
        out += ["", ctx("no_incidents")]
    return out
