"""The store: every read and write of experiments, runs, jobs, fits and proposals goes through here.

Routers and tasks never build queries themselves, so invariants (idempotent reports, data versions bumped
with every result change, all-or-nothing batches) hold whichever entry point is used. One module per
aggregate; :class:`Store` combines them behind one object. Refusals are :mod:`service.store.errors`.
"""

from __future__ import annotations

from service.store.errors import InvalidRecord, RecordConflict, RecordNotFound, StoreError
from service.store.experiments import Experiments
from service.store.fits import Fits
from service.store.jobs import Jobs, LeaseOutcome
from service.store.paging import decode_page_token, encode_page_token
from service.store.policies import Policies, PolicyState
from service.store.pools import Pools, pool_digest
from service.store.reports import Reports, RunWrite
from service.store.runs import Runs, Snapshot
from service.store.transfers import WarmStarts


class Store(Experiments, Reports, Runs, Pools, Jobs, Policies, Fits, WarmStarts):
    """Every aggregate's operations on one engine and session factory."""


__all__ = [
    "InvalidRecord",
    "LeaseOutcome",
    "PolicyState",
    "RecordConflict",
    "RecordNotFound",
    "RunWrite",
    "Snapshot",
    "Store",
    "StoreError",
    "decode_page_token",
    "encode_page_token",
    "pool_digest",
]
