# SPDX-License-Identifier: MIT
"""A load generator for runs.db, run as a separate process by the store tests (one per role).

usage: store_load.py DB ROLE RUN_ID SECONDS ACKFILE
Every write the store acknowledges is appended to ACKFILE; any error ends the process with 1.
"""

from __future__ import annotations

import sys
import time

from dinowm.store import Store


def main() -> int:
    db, role, run_id, seconds, ack_path = sys.argv[1:6]
    deadline = time.monotonic() + float(seconds)
    store = Store(db)
    i = 0
    with open(ack_path, "w") as ack:
        while time.monotonic() < deadline:
            i += 1
            if role == "notes":
                nid = store.add_note(run_id, f"note {i}")
                ack.write(f"note {nid}\n")
            elif role == "epochs":
                store.upsert_epoch(run_id, i, {"train_loss": 1.0 / i, "val_loss": 2.0 / i,
                                               "z_err_pred": 0.5 / i, "val_x": i})
                ack.write(f"epoch {i}\n")
            elif role == "telemetry":
                t0 = 1_000_000 + i
                rows = [{"run_id": run_id, "t": t0 + k / 10, "gpu": 0, "temp_c": 50.0 + k,
                         "power_w": 80.0} for k in range(10)]
                store.add_telemetry(rows)
                ack.write(f"telemetry {i}\n")
            elif role == "mixed":
                store.add_incident(run_id, "info", f"incident {i}")
                store.update_run(run_id, step=i)
                ack.write(f"incident {i}\n")
            elif role == "reader":
                store.runs()
                store.epochs(run_id)
                store.telemetry(run_id)
                ack.write(f"read {i}\n")
            ack.flush()
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
