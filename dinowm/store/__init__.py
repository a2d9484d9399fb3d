"""runs.db: the only package that speaks SQL (sqlite-utils, WAL, BEGIN IMMEDIATE, migrations)."""

from dinowm.store.apply import apply_event
from dinowm.store.core import ACTIVE, FINAL, Store, StoreError
from dinowm.store.journal import RECORD_NAME

__all__ = ["ACTIVE", "FINAL", "RECORD_NAME", "Store", "StoreError", "apply_event"]
