# SPDX-License-Identifier: MIT
"""Queue rows: entries waiting to become runs, one after another, and the queue's pause switch.

An entry is `queued` (with a position: 1 starts next), then `running` from the moment it is
claimed (its run id is recorded in the same transaction, before the run exists), then
`completed`, `failed` or `stopped`. The project folder's queue journal (dinowm.queue.journal)
holds the same facts for `dinowm reindex`.
"""

from __future__ import annotations

import time
from typing import Any

from dinowm.errors import DinowmError, NotFoundError
from dinowm.store.connection import Connection, insert_row

QUEUED, RUNNING = "queued", "running"
ENDED = ("completed", "failed", "stopped")
_COLUMNS = (
    "preset",
    "name",
    "overrides_json",
    "config_json",
    "config_hash",
    "changed_json",
    "sweep_id",
)


class QueueRows(Connection):
    """Mixed into Store: the queue table and its settings."""

    def queue_add(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Append entries after the last queued one, all or none; returns their rows.

        An entry may carry its id, position, state and run (a rebuild from the journal).
        """

        def body(db: Any) -> list[int]:
            last = db.execute("select coalesce(max(position), 0) from queue").fetchone()[0]
            ids = []
            for i, entry in enumerate(entries, 1):
                row = {
                    "position": last + i,
                    "state": QUEUED,
                    "added_at": time.time(),
                    **{k: entry.get(k) for k in _COLUMNS},
                    **{
                        k: entry[k]
                        for k in (
                            "id",
                            "position",
                            "state",
                            "run_id",
                            "added_at",
                            "started_at",
                            "ended_at",
                            "resumes",
                            "reason",
                        )
                        if entry.get(k) is not None
                    },
                }
                ids.append(insert_row(db.table("queue"), row))
            return ids

        ids = self.transaction(body)
        return [self.queue_entry(i) for i in ids]

    def queue_states(self) -> dict[str, int]:
        """How many queue entries are in each state (the TUI's queue_empty alert)."""
        return {
            r["state"]: r["n"]
            for r in self._query("select state, count(*) as n from queue group by state")
        }

    def queue_entries(self) -> list[dict[str, Any]]:
        """Every entry: started ones in the order they started, then the queued by position."""
        return self._query(
            "select * from queue order by state = 'queued', coalesce(started_at, 0), position, id"
        )

    def queue_entry(self, ref: int | str) -> dict[str, Any]:
        """One entry by its id, or a one-line refusal naming the id and the fix."""
        try:
            entry_id = int(ref)
        except (TypeError, ValueError):
            raise NotFoundError(
                f"Queue entry '{ref}' is not an entry id (a number); 'dinowm queue' lists them."
            ) from None
        rows = self._query("select * from queue where id = ?", [entry_id])
        if not rows:
            raise NotFoundError(f"No queue entry {entry_id}; 'dinowm queue' lists them.")
        return rows[0]

    def queue_next(self) -> dict[str, Any] | None:
        """The queued entry that starts next (lowest position)."""
        rows = self._query(
            "select * from queue where state = 'queued' order by position, id limit 1"
        )
        return rows[0] if rows else None

    def queue_current(self) -> dict[str, Any] | None:
        """The entry whose run the queue runs now (claimed, not ended)."""
        rows = self._query(
            "select * from queue where state = 'running' order by started_at limit 1"
        )
        return rows[0] if rows else None

    def queued_ids(self) -> list[int]:
        """Ids of the queued entries in the order they will start."""
        return [
            r["id"]
            for r in self._query(
                "select id from queue where state = 'queued' order by position, id"
            )
        ]

    def queue_order(self, ids: list[int]) -> None:
        """Give the queued entries among ids positions 1, 2, ... in that order."""

        def body(db: Any) -> None:
            for position, entry_id in enumerate(ids, 1):
                db.execute(
                    "update queue set position = ? where id = ? and state = 'queued'",
                    [position, entry_id],
                )

        self.transaction(body)

    def queue_remove(self, entry_id: int) -> dict[str, Any]:
        """Delete an entry that is not running; returns it."""

        def body(db: Any) -> dict[str, Any]:
            rows = list(db.query("select * from queue where id = ?", [entry_id]))
            if not rows:
                raise NotFoundError(f"No queue entry {entry_id}; 'dinowm queue' lists them.")
            if rows[0]["state"] == RUNNING:
                run = rows[0]["run_id"]
                raise DinowmError(
                    f"Queue entry {entry_id} is running as run {run}; stop it "
                    f"with 'dinowm stop {run}' first, then remove the entry."
                )
            db.execute("delete from queue where id = ?", [entry_id])
            return rows[0]

        return self.transaction(body)

    def queue_claim(self, entry_id: int, run_id: str) -> bool:
        """queued → running with the run id it will create, atomically; False if the entry was
        no longer queued (removed, or claimed by someone else)."""
        return bool(
            self.transaction(
                lambda db: (
                    db.execute(
                        "update queue set state = 'running', run_id = ?, started_at = ? "
                        "where id = ? and state = 'queued'",
                        [run_id, time.time(), entry_id],
                    ).rowcount
                )
            )
        )

    def queue_finish(self, entry_id: int, state: str, reason: str | None = None) -> None:
        """A running entry ends as completed, failed or stopped."""
        assert state in ENDED, state
        self.transaction(
            lambda db: db.execute(
                "update queue set state = ?, ended_at = ?, reason = ? where id = ? "
                "and state = 'running'",
                [state, time.time(), reason, entry_id],
            )
        )

    def queue_resumed(self, entry_id: int) -> int:
        """Count one resume of the entry's run by the queue; returns the count."""

        def body(db: Any) -> int:
            db.execute("update queue set resumes = resumes + 1 where id = ?", [entry_id])
            return db.execute("select resumes from queue where id = ?", [entry_id]).fetchone()[0]

        return self.transaction(body)

    def queue_paused(self) -> bool:
        """Whether `dinowm queue pause` holds new entries back."""
        rows = self._query("select value from queue_settings where key = 'paused'")
        return bool(rows and rows[0]["value"] == "1")

    def set_queue_paused(self, paused: bool) -> None:
        """Pause (no new entry starts) or unpause the queue."""
        self.transaction(
            lambda db: db.table("queue_settings").upsert(
                {"key": "paused", "value": "1" if paused else "0"}, pk="key"
            )
        )

    def queue_clear(self) -> None:
        """Empty the queue table and its settings (a rebuild from the journal starts here)."""

        def body(db: Any) -> None:
            db.execute("delete from queue")
            db.execute("delete from queue_settings")

        self.transaction(body)

    def sweep_run_ids(self, sweep_id: str) -> list[str]:
        """The runs a sweep started, oldest first."""
        return [
            r["id"]
            for r in self._query(
                "select id from runs where sweep_id = ? order by created_at, id", [sweep_id]
            )
        ]

    def runs_by_queue_entry(self) -> dict[int, str]:
        """queue entry id → the run it started."""
        return {
            r["queue_entry"]: r["id"]
            for r in self._query("select id, queue_entry from runs where queue_entry is not null")
        }

    def sweep_ids(self) -> list[str]:
        """Every sweep id of an entry or a run."""
        return [
            r["sweep_id"]
            for r in self._query(
                "select sweep_id from queue where sweep_id is not null union "
                "select sweep_id from runs where sweep_id is not null order by 1"
            )
        ]

    def queue_replay(self, items: list[dict[str, Any]], runs_by_entry: dict[int, str]) -> int:
        """Rebuild the queue from its journal lines (dinowm reindex); returns the entries.

        runs_by_entry (entry id → run id, from the run folders' specs) marks an entry whose run
        exists as started even when its journal line was lost: it never starts a second run.
        """
        entries: dict[int, dict[str, Any]] = {}
        paused = False
        for item in items:
            op, entry = item.get("op"), entries.get(item.get("id"))  # type: ignore[arg-type]
            if op == "add" and isinstance(item.get("entry"), dict):
                entries[item["entry"]["id"]] = {**item["entry"], "state": QUEUED}
            elif op == "order":
                for position, entry_id in enumerate(item.get("ids") or [], 1):
                    if entry_id in entries and entries[entry_id]["state"] == QUEUED:
                        entries[entry_id]["position"] = position
            elif op == "remove":
                entries.pop(item.get("id"), None)  # type: ignore[arg-type]
            elif op == "start" and entry:
                entry.update(state=RUNNING, run_id=item["run_id"], started_at=item.get("t"))
            elif op == "resume" and entry:
                entry["resumes"] = (entry.get("resumes") or 0) + 1
            elif op == "end" and entry and item.get("state") in ENDED:
                entry.update(state=item["state"], ended_at=item.get("t"), reason=item.get("reason"))
            elif op == "pause":
                paused = bool(item.get("paused"))
        for entry_id, run_id in runs_by_entry.items():
            entry = entries.get(entry_id)
            if entry and entry["state"] == QUEUED:
                entry.update(state=RUNNING, run_id=run_id)
        self.queue_clear()
        if entries:
            self.queue_add(list(entries.values()))
        self.set_queue_paused(paused)
        return len(entries)

    def set_queue_status(self, text: str | None) -> None:
        """What the queue supervisor does now ('waiting: GPU 0 at 82 °C ...'), for the list."""
        self.transaction(
            lambda db: db.table("queue_settings").upsert({"key": "status", "value": text}, pk="key")
        )

    def queue_status(self) -> str | None:
        """The queue supervisor's last word on what it does."""
        rows = self._query("select value from queue_settings where key = 'status'")
        return rows[0]["value"] if rows else None
