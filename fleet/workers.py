"""The worker registry, kept in the store as expiring records."""

from __future__ import annotations

from fleet.records import WorkerRecord
from fleet.store import Store

KIND = "worker"


async def put_worker(store: Store, record: WorkerRecord, ttl_seconds: float) -> None:
    """Register or refresh a worker; it disappears ttl_seconds after its last refresh."""
    await store.put_record(KIND, record.worker_id, record.to_json(), ttl_seconds)


async def list_workers(store: Store) -> list[WorkerRecord]:
    """Every worker whose heartbeat has not expired."""
    return [WorkerRecord.from_json(raw) for raw in (await store.list_records(KIND)).values()]


async def remove_worker(store: Store, worker_id: str) -> None:
    """Drop a worker at once (clean shutdown)."""
    await store.remove_record(KIND, worker_id)
