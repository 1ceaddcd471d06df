"""Who is calling and what they may do: bearer tokens, scopes, and the caller's project.

:class:`AuthenticationMiddleware` authenticates the bearer token of every protected request (401) before
anything reads its body; every route then passes through :func:`authorize` (an app-wide dependency), which
checks the scope the operation needs (403). Which scope that is is decided here and only
here: ``GET`` needs ``read``, the operations in :data:`WRITE_OPERATIONS` need ``write``, and everything else
— including any route added later and not listed — needs ``admin``. Routers never check scopes; they ask
for the caller's project (:func:`get_project`) and filter by it, so another project's experiment is a 404
exactly like a missing one. A too-weak token on another project's experiment also gets that 404, never a
403 that would confirm the experiment exists.

Validated tokens are cached per process for ``auth_cache_s`` seconds (default 5): a revoked token keeps
working for at most that long on each API process; expiry is checked on every request. ``last_used_at``
is written at most once per ``token_touch_interval_s`` per token and process, so the report hot path does
not write a row per request.
"""

from __future__ import annotations

import hmac
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Send
from starlette.types import Scope as ASGIScope

from service.api.errors import api_error_body
from service.api.middleware import send_json
from service.api.throttle import TokenBuckets, send_rate_limited
from service.errors import InsufficientScope, Unauthenticated
from service.store.models import DEFAULT_PROJECT, ApiToken, utcnow
from service.store.tokens import Scope, Tokens, digest, highest, split_token

log = logging.getLogger("mixopt.auth")

#: Routes anyone may call: health probes and the dashboard's HTML and static files (its data comes from
#: API calls that carry the user's token). ``/docs`` and ``/openapi.json`` are not API routes at all.
PUBLIC_ROUTES = frozenset({
    ("GET", "/healthz"), ("GET", "/readyz"),
    ("GET", "/dashboard"), ("GET", "/dashboard/experiments/{experiment_id}"), ("GET", "/dashboard/compare"),
    ("GET", "/dashboard/static/{name}"),
})
#: Operations that need ``write``; ``predict`` and the recommendation among candidates are POSTs that only
#: read, so they need ``read``.
WRITE_OPERATIONS = frozenset({
    ("POST", "/v1/experiments"),
    ("PATCH", "/v1/experiments/{experiment_id}"),
    ("POST", "/v1/experiments/{experiment_id}/runs"),
    ("POST", "/v1/experiments/{experiment_id}/runs:batch"),
    ("POST", "/v1/experiments/{experiment_id}/transfers"),
    ("POST", "/v1/experiments/{experiment_id}/suggestions"),
    ("POST", "/v1/experiments/{experiment_id}/refits"),
    ("POST", "/v1/experiments/{experiment_id}/online-sessions"),
    ("POST", "/v1/experiments/{experiment_id}/online-sessions/{session_id}/observations"),
})
READ_OPERATIONS = frozenset({("POST", "/v1/experiments/{experiment_id}/predict"),
                             ("POST", "/v1/experiments/{experiment_id}/recommendation")})


def required_scope(method: str, route_path: str) -> Scope:
    if method in ("GET", "HEAD") or (method, route_path) in READ_OPERATIONS:
        return Scope.read
    return Scope.write if (method, route_path) in WRITE_OPERATIONS else Scope.admin


@dataclass(frozen=True)
class Principal:
    """The caller: a project and the strongest scope held (``token_id`` None when auth is off)."""

    project: str
    scope: Scope
    token_id: str | None

    def allows(self, needed: Scope) -> bool:
        return self.scope.rank >= needed.rank


#: The caller when the API runs open (loopback only): the default project, with every scope.
OPEN = Principal(project=DEFAULT_PROJECT, scope=Scope.admin, token_id=None)


@dataclass
class _Cached:
    """What a token row says, as of ``loaded`` (monotonic seconds); never holds the secret itself."""

    token_id: str
    project: str
    scope: Scope | None
    secret_sha256: str
    revoked: bool
    expires_at: datetime | None
    loaded: float
    #: When this process last wrote ``last_used_at`` (kept across reloads of the entry).
    touched: float

    @classmethod
    def of(cls, row: ApiToken, now: float, touched: float) -> _Cached:
        return cls(token_id=row.id, project=row.project, scope=highest(row.scopes or []),
                   secret_sha256=row.secret_sha256, revoked=row.revoked_at is not None,
                   expires_at=row.expires_at, loaded=now, touched=touched)


class Authenticator:
    """Turns an ``Authorization`` header into a :class:`Principal`, with a short per-process cache.

    The cache is only read and written on the event loop thread; database work runs in the thread pool,
    so a cache hit (almost every request) costs a dict lookup and one SHA-256.
    """

    def __init__(self, tokens: Tokens, cache_s: float, touch_interval_s: float) -> None:
        self.tokens = tokens
        self.cache_s = cache_s
        self.touch_interval_s = touch_interval_s
        self._cache: dict[str, _Cached] = {}

    async def authenticate(self, header: str | None) -> Principal:
        scheme, _, credentials = (header or "").partition(" ")
        if not header:
            raise Unauthenticated("this API needs a token: send 'Authorization: Bearer mxo_...'")
        parts = split_token(credentials.strip()) if scheme.lower() == "bearer" else None
        if parts is None:
            raise Unauthenticated("malformed Authorization header: expected 'Bearer mxo_<prefix>_<secret>'")
        prefix, secret = parts
        now = time.monotonic()
        entry = self._cache.get(prefix)
        if entry is None or now - entry.loaded > self.cache_s:
            row = await run_in_threadpool(self.tokens.find, prefix)
            if row is None:
                self._cache.pop(prefix, None)
                raise _rejected("unknown", prefix, "unknown token")
            touched = entry.touched if entry is not None else -float("inf")
            entry = self._cache[prefix] = _Cached.of(row, now, touched)
        if not hmac.compare_digest(entry.secret_sha256, digest(secret)):
            raise _rejected("wrong_secret", prefix, "unknown token")
        if entry.revoked:
            raise _rejected("revoked", prefix, f"token {prefix} was revoked")
        wall = utcnow()
        if entry.expires_at is not None and entry.expires_at <= wall:
            raise _rejected("expired", prefix, f"token {prefix} expired at {entry.expires_at.isoformat()}")
        if entry.scope is None:
            raise _rejected("no_known_scope", prefix, f"token {prefix} has no scope this server knows")
        if now - entry.touched >= self.touch_interval_s:
            entry.touched = now
            await run_in_threadpool(self.tokens.touch, entry.token_id, wall)
        return Principal(project=entry.project, scope=entry.scope, token_id=entry.token_id)


def _rejected(reason: str, prefix: str, message: str) -> Unauthenticated:
    """The 401 for a well-formed token that does not work, logged by its (non-secret) prefix."""
    log.info("token rejected", extra={"reason": reason, "token_prefix": prefix})
    return Unauthenticated(message)


def _route_path(request: Request) -> str:
    """The matched route's path template (``/v1/experiments/{experiment_id}/runs``), "" if none."""
    route = request.scope.get("route")
    return str(getattr(route, "path", "") or "")


#: Paths whose routes need a caller: the API and the dashboard's data. Every other route is in
#: :data:`PUBLIC_ROUTES` (a test holds the app's routes to this), so authentication can happen on the raw
#: path, before routing and before anything reads the body.
PROTECTED_PREFIXES = ("/v1/", "/dashboard/api/")


def is_protected(path: str) -> bool:
    return path.startswith(PROTECTED_PREFIXES)


def client_ip(scope: ASGIScope) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


def _authorization(scope: ASGIScope) -> str | None:
    for name, value in scope.get("headers") or ():
        if name == b"authorization":
            return value.decode("latin-1")
    return None


class AuthenticationMiddleware:
    """Authenticates every protected request before the app reads a byte of its body.

    FastAPI reads and validates a body before it resolves dependencies, so authenticating in a dependency
    let a caller with no token make the server read, decode and hold a body of up to the size limit (a
    60 MiB body cost 10 s of event loop and 1.5 GB). Here a request without a valid token is answered 401
    from its headers alone, and the connection is closed rather than drained.

    Failed authentications are throttled per client address (``failures``): each costs a token lookup in
    the database, and an unknown token is otherwise never throttled, since the per-caller rate limit keys on
    the authenticated token. The caller is left in ``scope["state"]["principal"]`` for :func:`authorize`
    and the rate limit.
    """

    def __init__(self, app: ASGIApp, authenticator: Authenticator | None, failures: TokenBuckets) -> None:
        self.app = app
        self.authenticator = authenticator
        self.failures = failures

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_protected(scope["path"]):
            await self.app(scope, receive, send)
            return
        principal = OPEN
        if self.authenticator is not None:
            ip = client_ip(scope)
            wait_s = self.failures.wait(ip)
            if wait_s > 0:
                await send_rate_limited(send, wait_s, "failed authentications from this address")
                return
            try:
                principal = await self.authenticator.authenticate(_authorization(scope))
            except Unauthenticated as exc:
                self.failures.take(ip)
                headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (exc.headers or {}).items()]
                await send_json(send, exc.status_code, api_error_body(exc),
                                headers=[*headers, (b"connection", b"close")])
                return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


def caller(scope: ASGIScope) -> Principal | None:
    """The authenticated caller of a protected request (None elsewhere)."""
    principal = (scope.get("state") or {}).get("principal")
    return principal if isinstance(principal, Principal) else None


async def authorize(request: Request) -> Principal | None:
    """The app-wide dependency: 403 without the scope; None on public routes.

    Authentication (401) already happened in :class:`AuthenticationMiddleware`; a non-public route outside
    :data:`PROTECTED_PREFIXES` finds no caller and is refused, so a route added in the wrong place fails
    closed.
    """
    method, path = request.method, _route_path(request)
    if (method if method != "HEAD" else "GET", path) in PUBLIC_ROUTES:
        return None
    principal = caller(request.scope)
    if principal is None:
        raise Unauthenticated(f"{request.url.path} is not served to authenticated callers")
    needed = required_scope(method, path)
    if not principal.allows(needed):
        experiment_id = request.path_params.get("experiment_id")
        if experiment_id is not None:  # 404 first: a weak token must not learn that the experiment exists
            await run_in_threadpool(request.app.state.mixopt.store.get_experiment, experiment_id,
                                    principal.project)
        raise InsufficientScope(f"this operation needs the {needed.value!r} scope; the token has "
                                f"{principal.scope.value!r}", details={"required_scope": needed.value})
    return principal


async def get_project(principal: Annotated[Principal | None, Depends(authorize)]) -> str:
    """The caller's project: every experiment-scoped query filters by it (async: no thread-pool hop)."""
    if principal is None:
        raise RuntimeError("a public route asked for the caller's project")
    return principal.project
