"""API tokens: the ``mxo_<prefix>_<secret>`` format, scopes, and the token and project rows.

Only the SHA-256 of the secret is stored, so a leaked database does not leak working tokens. The prefix is
random, unique and not secret: it finds the row with one indexed lookup and names the token in listings.
A 256-bit random secret needs no slow (salted, iterated) hash: there is nothing to brute-force.
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from service.errors import ErrorCode
from service.store.errors import InvalidRecord, RecordNotFound
from service.store.models import ApiToken, Project, new_id, utcnow
from service.store.session import transaction

TOKEN_TAG = "mxo"
_TOKEN_RE = re.compile(r"mxo_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
PROJECT_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class Scope(enum.StrEnum):
    """What a token may do; each scope includes the ones before it (admin ⊃ write ⊃ read)."""

    read = "read"
    write = "write"
    admin = "admin"

    @property
    def rank(self) -> int:
        return list(Scope).index(self)


def parse_scopes(names: Iterable[str]) -> list[Scope]:
    """``["read", "write"]`` -> scopes, in rank order; an unknown or missing name is an error."""
    out: set[Scope] = set()
    for raw in names:
        name = raw.strip().lower()
        if not name:
            continue
        try:
            out.add(Scope(name))
        except ValueError:
            raise InvalidRecord(f"unknown scope {raw!r}; scopes are {[s.value for s in Scope]}",
                                field="scopes", code=ErrorCode.unknown_scope) from None
    if not out:
        raise InvalidRecord("a token needs at least one scope", field="scopes", code=ErrorCode.unknown_scope)
    return sorted(out, key=lambda s: s.rank)


def highest(scopes: Iterable[str]) -> Scope | None:
    """The strongest known scope among stored names (unknown ones, e.g. from a newer version, are ignored)."""
    known = [Scope(s) for s in scopes if s in Scope.__members__]
    return max(known, key=lambda s: s.rank) if known else None


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_token(token: str) -> tuple[str, str] | None:
    """``(prefix, secret)`` of a well-formed token, else None (never raises on garbage)."""
    m = _TOKEN_RE.fullmatch(token)
    return (m.group(1), m.group(2)) if m else None


@dataclass(frozen=True)
class IssuedToken:
    """A freshly created token: ``token`` is the only time the secret exists outside the caller's hands."""

    row: ApiToken
    token: str


class Tokens:
    """Creates, lists, finds and revokes tokens; creates a token's project on first use."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory

    def ensure_project(self, name: str) -> Project:
        if not PROJECT_NAME_RE.fullmatch(name):
            raise InvalidRecord(f"invalid project name {name!r}: up to 128 letters, digits, '.', '_' or '-'",
                                field="project", code=ErrorCode.invalid_project)
        try:
            with transaction(self.factory) as s:
                if (found := s.scalar(select(Project).where(Project.name == name))) is not None:
                    return found
                project = Project(id=new_id("prj"), name=name, created_at=utcnow())
                s.add(project)
            return project
        except IntegrityError:  # created concurrently by another caller: use theirs
            with self.factory() as s:
                return s.scalars(select(Project).where(Project.name == name)).one()

    def create(self, project: str, scopes: Iterable[str], name: str | None = None,
               expires_in: timedelta | None = None) -> IssuedToken:
        granted = parse_scopes(scopes)
        self.ensure_project(project)
        now = utcnow()
        for _ in range(5):  # a 48-bit prefix practically never collides; retry if it does
            prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
            row = ApiToken(id=new_id("tok"), project=project, name=name or "unnamed",
                           scopes=[s.value for s in granted], prefix=prefix, secret_sha256=digest(secret),
                           created_at=now, expires_at=now + expires_in if expires_in is not None else None)
            try:
                with transaction(self.factory) as s:
                    s.add(row)
            except IntegrityError:
                continue
            return IssuedToken(row, f"{TOKEN_TAG}_{prefix}_{secret}")
        raise RuntimeError("could not draw an unused token prefix")

    def list(self, project: str | None = None) -> list[ApiToken]:
        stmt = select(ApiToken).order_by(ApiToken.pk)
        if project is not None:
            stmt = stmt.where(ApiToken.project == project)
        with self.factory() as s:
            return list(s.scalars(stmt))

    def find(self, prefix: str) -> ApiToken | None:
        with self.factory() as s:
            return s.scalar(select(ApiToken).where(ApiToken.prefix == prefix))

    def revoke(self, token_id: str) -> ApiToken:
        """Revoke by id (or prefix); revoking twice keeps the first time."""
        with transaction(self.factory) as s:
            row = s.scalar(select(ApiToken).where((ApiToken.id == token_id) | (ApiToken.prefix == token_id)))
            if row is None:
                raise RecordNotFound(f"token {token_id!r} not found", field="token_id")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
        return row

    def touch(self, token_id: str, when: datetime) -> None:
        with transaction(self.factory) as s:
            s.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=when))
