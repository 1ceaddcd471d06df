"""What refits produce: the fitted laws of each data version, and the recommendations (proposals)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select

from service.store.errors import RecordNotFound
from service.store.models import Experiment, Fit, Proposal, ProposalKind, new_id
from service.store.paging import page
from service.store.repository import Repository
from service.store.session import transaction


class Fits(Repository):
    def apply_refit(self, exp_id: str, fits: Sequence[Fit], data_version: int, hints: dict[str, Any]) -> bool:
        """Store a refit's fits and hints, unless fits of newer data are already stored (then store nothing).

        The check and the writes share one transaction on the locked experiment row, so a refit overtaken by
        newer data can never land on top of the newer one.
        """
        with transaction(self.factory) as s:
            exp = s.scalar(select(Experiment).where(Experiment.id == exp_id).with_for_update())
            if exp is None:
                raise RecordNotFound(f"experiment {exp_id!r} not found", field="experiment_id")
            newest = s.scalar(select(func.max(Fit.data_version)).where(Fit.experiment_id == exp_id))
            if newest is not None and newest > data_version:
                return False
            for f in fits:
                f.experiment_id, f.data_version = exp_id, data_version
                s.add(f)
            exp.hints = {**(exp.hints or {}), **hints}
        return True

    def latest_fits(self, exp_id: str) -> list[Fit]:
        """The fits of the newest data version, from the last refit that stored any."""
        with self.factory() as s:
            version = s.scalar(select(func.max(Fit.data_version)).where(Fit.experiment_id == exp_id))
            if version is None:
                return []
            last_job = s.scalar(select(Fit.job_id).where(Fit.experiment_id == exp_id, Fit.data_version == version)
                                .order_by(Fit.pk.desc()).limit(1))
            return list(s.scalars(select(Fit).where(Fit.experiment_id == exp_id, Fit.data_version == version,
                                                    Fit.job_id == last_job).order_by(Fit.pk)))

    def recent_fits(self, exp_id: str, limit: int) -> list[Fit]:
        """The newest ``limit`` fits, oldest first."""
        with self.factory() as s:
            rows = list(s.scalars(select(Fit).where(Fit.experiment_id == exp_id)
                                  .order_by(Fit.pk.desc()).limit(limit)))
        return rows[::-1]

    def list_fits(self, exp_id: str, page_size: int, page_token: str | None) -> tuple[list[Fit], str | None]:
        with self.factory() as s:
            return page(s, select(Fit).where(Fit.experiment_id == exp_id), Fit.pk, page_size, page_token)

    def save_recommendation(self, exp_id: str, method: str, data_version: int, n_runs: int,
                            payload: dict[str, Any], job_id: str | None = None) -> Proposal:
        prop = Proposal(id=new_id("prop"), experiment_id=exp_id, job_id=job_id,
                        kind=ProposalKind.recommendation.value, method=method, data_version=data_version,
                        n_runs=n_runs, payload=payload)
        with transaction(self.factory) as s:
            s.add(prop)
        return prop

    def latest_recommendation(self, exp_id: str) -> Proposal | None:
        with self.factory() as s:
            return s.scalar(select(Proposal).where(Proposal.experiment_id == exp_id,
                                                   Proposal.kind == ProposalKind.recommendation.value)
                            .order_by(Proposal.pk.desc()).limit(1))

    def proposals(self, exp_id: str, kind: str | None = None, limit: int = 1000) -> list[Proposal]:
        """The newest ``limit`` proposals (of ``kind``, if given), newest first."""
        stmt = select(Proposal).where(Proposal.experiment_id == exp_id)
        if kind:
            stmt = stmt.where(Proposal.kind == kind)
        with self.factory() as s:
            return list(s.scalars(stmt.order_by(Proposal.pk.desc()).limit(limit)))
