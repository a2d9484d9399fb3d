# SPDX-License-Identifier: MIT
"""runs.db: the only package that speaks SQL (sqlite-utils, WAL, BEGIN IMMEDIATE, migrations)."""

from dinowm.store.apply import apply_event
from dinowm.store.core import Store, StoreError

__all__ = ["Store", "StoreError", "apply_event"]
