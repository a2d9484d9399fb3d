# SPDX-License-Identifier: MIT
"""Hostile text for every face: markup, emoji codes, terminal control sequences, bidi overrides,
very long words, Markdown and HTML, around a marker word that must stay readable; a project
whose runs.db, run folders, queue and dinowm.toml hold it, and the checks on what a face shows."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from dinowm.config import load_project, resolve, to_dict, with_values
from dinowm.store import Store
from tests.support.evaluations import sample_record

REPO = Path(__file__).resolve().parents[2]

PIECES = (
    "[bold]",
    "[/]",
    "[/bold]",
    "[red]x",
    "[link=https://evil.example]click[/link]",
    "[bold red on white]",
    ":smile:",
    ":warning:",
    "\x1b[31m",
    "\x1b[0m",
    "\x1b[2J",
    "\x1b[10;5H",
    "\x1b[?25l",
    "\x1b]0;pwned\x07",  # OSC window title, BEL-terminated
    "\x1b]2;pwned\x1b\\",  # OSC window title, ST-terminated
    "\x1b]8;;https://evil.example\x1b\\link\x1b]8;;\x1b\\",  # OSC 8 hyperlink
    "\x1b",
    "\x07",
    "\x00",
    "\x9b31m",  # C1 CSI
    "\x85",
    "\x90q\x9c",  # C1 DCS ... ST
    "\r",
    "\b\b\b",
    "\x7f",
    "\u202e",  # right-to-left override
    "\u2066x\u2069",
    "\u2028",
    "\n",
    "\t",
    "A" * 300,
    "Lüfterkurve 温度 🌡️",
    "*bold* _it_ `code` ~~gone~~",
    "<b>html</b> <!-- dinowm:end notes -->",
    "&amp; | pipe |",
    "# heading",
    "1. list",
    "[text](https://evil.example) [^1]",
    "RuntimeError: [/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:561] "
    "Connection closed by peer",
)
# What must never reach a terminal from foreign text: C0 controls but tab and newline, DEL, C1,
# the bidi controls and the line/paragraph separators.
CONTROL = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]"
)


def hostile(marker: str, lead: bool = False) -> st.SearchStrategy[str]:
    """Hostile pieces with the word `marker` among them (first when `lead`: a narrow cell
    shows its start)."""
    pieces = st.lists(st.sampled_from(PIECES), min_size=1, max_size=6)
    free = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)

    def build(before: list[str], after: list[str], noise: str) -> str:
        if lead:
            return f"{marker} {''.join(before)}{noise}{''.join(after)}"
        return f"{''.join(before)}{noise} {marker} {''.join(after)}"

    return st.builds(build, pieces, pieces, free)


def controls(text: str) -> list[str]:
    """The control characters in text that a face must not emit."""
    return sorted(set(CONTROL.findall(text)))


def toml_str(value: str) -> str:
    """A TOML basic string of any text."""
    out = []
    for c in value:
        if c in '"\\' or ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


RUN = "20260107-090000-aaaa"
# The texts of a hostile project, by where they go (hostile_project says where).
KEYS = ("name", "preset_description", "data_path", "note", "summary", "detail", "exit_reason",
        "log", "entry", "override", "checkpoint", "hw")


def hostile_project(root: Path, texts: dict[str, str]) -> Path:
    """A project under root whose dinowm.toml, runs.db, run folder and queue hold the texts
    (keys: name, preset_description, data_path, note, summary, detail, exit_reason, log,
    entry, override, checkpoint, hw); returns its dinowm.toml."""
    toml = root / "dinowm.toml"
    shutil.copyfile(REPO / "dinowm" / "dinowm.toml", toml)
    toml.write_text(
        toml.read_text()
        + "\n[presets.hostile]\nextends = \"demo\"\n"
        + f"description = {toml_str(texts['preset_description'])}\n"
        + f"data.path = {toml_str(texts['data_path'])}\n"
    )
    project = load_project(toml)
    resolved = resolve(project, "demo", [])  # the hostile preset may not resolve (a NUL)
    config = to_dict(with_values(resolved.config, data__path=texts["data_path"]))
    run_dir = project.outputs / RUN
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(
        json.dumps(
            {"run_id": RUN, "name": texts["name"], "preset": "hostile", "overrides": [],
             "changed": resolved.changed(), "config": config}
        )
    )
    (run_dir / "train.log").write_text(f"epoch 1 done\n{texts['log']}\nlast line\n")
    with Store(project.runs_db) as store:
        _rows(store, texts, config, run_dir)
    return toml


def _rows(store: Store, texts: dict[str, str], config: dict[str, Any], run_dir: Path) -> None:
    """The run, its epoch, hardware, note, incidents, evaluation and a queue entry."""
    t0 = 1_767_776_400.0
    store.create_run(
        {"id": RUN, "name": texts["name"], "preset": "hostile", "status": "failed",
         "env": "synthetic_push", "config_json": json.dumps(config),
         "config_hash": "hash0", "run_dir": str(run_dir), "created_at": t0, "started_at": t0,
         "ended_at": t0 + 600, "updated_at": t0, "epochs_target": 2, "epoch": 1,
         "attempts": 2, "exit_reason": texts["exit_reason"], "command": texts["override"],
         "encoder_label": texts["hw"]}
    )
    store.upsert_epoch(RUN, 1, {"train_loss": 0.5, "val_loss": 0.6, "z_err_pred": 0.3,
                                "duration_s": 60.0, "attempt": 1, "started_at": t0,
                                "ended_at": t0 + 60})
    store.set_hardware(RUN, {"collected_at": t0, "hostname": texts["hw"], "cpu_model": texts["hw"],
                             "gpu_name": texts["hw"], "gpu_count": 1, "gpu_vram_mib": 1024,
                             "nvml": "ok", "driver": texts["hw"], "platform": texts["hw"]})
    store.add_note(RUN, texts["note"], t=t0 + 30)
    details = {"summary": texts["detail"], "log_tail": [texts["log"], "tail end"],
               "stacks": {"text": texts["detail"]}, "traceback": texts["detail"],
               "zombies": [{"pid": 7, "comm": texts["detail"], "ppid": 1, "parent_comm": "x"}],
               "verdict": {"stalled": True, "phase": texts["detail"], "age_s": 95.0,
                           "limit_s": 60.0}}
    for kind in ("stall", "crash", "thermal", "lost", "odd_kind"):
        store.add_incident(RUN, kind, texts["summary"], details, t=t0 + 40, attempt=1, epoch=1)
    store.add_incident(RUN, "resume", f"resuming (attempt 2) after 10 s: {texts['summary']}",
                       {"delay_s": 10}, t=t0 + 50, attempt=1)
    store.add_evaluation(sample_record(RUN, checkpoint=texts["checkpoint"], epoch=1,
                                       status=texts["exit_reason"]))
    store.queue_add([{"preset": "hostile", "name": texts["entry"],
                      "overrides_json": json.dumps([texts["override"]]),
                      "config_json": json.dumps(config),
                      "config_hash": "hash0", "changed_json": "{}"}])
