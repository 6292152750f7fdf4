"""Stage 4 of the flow, the store: run records (``record``: the schema, no I/O), the SQLite file
they are added to (``db``), and the pending files that keep a measured record until it is
stored (``pending``)."""

from greenbench.store.db import APPLICATION_ID, DEFAULT_STORE, Store, StoreDamaged, StoreFull
from greenbench.store.pending import (
    MAX_PENDING_BYTES,
    RESERVE_BYTES,
    RESERVE_NAME,
    pending_name,
    reserve_space,
    save_pending,
    store_pending,
    store_record,
)
from greenbench.store.record import SCHEMA_VERSION, BadRecord, RunRecord, metric

__all__ = [
    "APPLICATION_ID",
    "DEFAULT_STORE",
    "MAX_PENDING_BYTES",
    "RESERVE_BYTES",
    "RESERVE_NAME",
    "SCHEMA_VERSION",
    "BadRecord",
    "RunRecord",
    "Store",
    "StoreDamaged",
    "StoreFull",
    "metric",
    "pending_name",
    "reserve_space",
    "save_pending",
    "store_pending",
    "store_record",
]
