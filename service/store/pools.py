"""Candidate pools: a caller's candidates stored once per experiment and content, named by their digest."""

from __future__ import annotations

import hashlib

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from mixing.problem import Candidates
from service.store.errors import RecordNotFound
from service.store.models import CandidatePool, new_id
from service.store.repository import Repository
from service.store.session import transaction

#: Byte order and width of stored pools, fixed so a pool reads back the same on any machine.
POOL_DTYPE = np.dtype("<f8")


def pool_digest(pool: Candidates) -> str:
    """SHA-256 (hex) of a pool's shape and values, NaN ("the method chooses") included: equal pools,
    equal digests."""
    h = hashlib.sha256(repr((pool.mixtures.shape, pool.fidelities.shape)).encode())
    for part in (pool.mixtures, pool.fidelities):
        h.update(np.ascontiguousarray(part, dtype=POOL_DTYPE).tobytes())
    return h.hexdigest()


class Pools(Repository):
    def save_pool(self, experiment_id: str, pool: Candidates) -> str:
        """Store a validated pool unless this experiment already has it; returns its hash for a job's params."""
        digest = pool_digest(pool)
        exists = select(CandidatePool.pk).where(CandidatePool.experiment_id == experiment_id,
                                                CandidatePool.sha256 == digest)
        with self.factory() as s:
            if s.scalar(exists) is not None:
                return digest
        chosen = np.isnan(pool.fidelities)
        row = CandidatePool(id=new_id("pool"), experiment_id=experiment_id, sha256=digest,
                            n_rows=len(pool.mixtures),
                            mixtures=np.ascontiguousarray(pool.mixtures, dtype=POOL_DTYPE).tobytes(),
                            fidelities=np.where(chosen, 0.0, pool.fidelities).astype(POOL_DTYPE).tobytes(),
                            chosen=chosen.astype(np.uint8).tobytes())
        try:
            with transaction(self.factory) as s:
                s.add(row)
        except IntegrityError:  # the same pool stored by a concurrent request: one row serves both
            with self.factory() as s:
                if s.scalar(exists) is None:
                    raise
        return digest

    def load_pool(self, experiment_id: str, digest: str) -> Candidates:
        """The pool a propose job names (NaN fidelity where the method chooses), read without a copy."""
        with self.factory() as s:
            row = s.execute(select(CandidatePool.n_rows, CandidatePool.mixtures, CandidatePool.fidelities,
                                   CandidatePool.chosen)
                            .where(CandidatePool.experiment_id == experiment_id,
                                   CandidatePool.sha256 == digest)).first()
        if row is None:
            raise RecordNotFound(f"candidate pool {digest} not found", field="candidates")
        n = int(row.n_rows)
        fidelities = np.frombuffer(row.fidelities, dtype=POOL_DTYPE).reshape(n, -1).astype(np.float64)
        fidelities[np.frombuffer(row.chosen, dtype=np.uint8).reshape(n, -1).astype(bool)] = np.nan
        return Candidates(mixtures=np.frombuffer(row.mixtures, dtype=POOL_DTYPE).reshape(n, -1),
                          fidelities=fidelities)
