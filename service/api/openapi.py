"""The OpenAPI document's errors and authentication, and the interactive docs served without internet.

FastAPI documents only successes and its own ``{"detail": [...]}`` 422, which this API never sends. Here,
every API operation documents the error statuses of :data:`API_ERRORS` (one set for all: each operation
can meet most of them, and a uniform set keeps a generated client's error handling uniform), each
described by :class:`ErrorResponse`, the type every error body is built from; and the Bearer scheme.
So a client generated from the document types the errors and sends the token (checked with
openapi-python-client: every status parses into one ErrorResponse class).

``/docs`` (Swagger UI) and ``/redoc`` load their scripts from the dashboard's static files, not from a
CDN: GPU clusters are often air-gapped.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import HTMLResponse

from service.api.auth import PUBLIC_ROUTES
from service.api.errors import ErrorResponse

BEARER_SCHEME = "bearer"
#: The error answers documented on every API operation (public routes excepted), with when each is given.
API_ERRORS: dict[int, str] = {
    401: "`unauthenticated`: no usable bearer token (missing, malformed, unknown, revoked or expired).",
    403: "`insufficient_scope`: the token may see the resource but lacks the scope this operation needs.",
    404: "`not_found`: no such experiment, run, job or session in the token's project (the same answer "
         "whether it exists in another project or not at all).",
    409: "The request conflicts with what is stored (`duplicate_name`, `run_final`, `experiment_archived`, "
         "…) or cannot be answered from it yet (`not_enough_data`).",
    413: "`payload_too_large`: the body is over the size limit (`MIXOPT_MAX_BODY_BYTES`).",
    422: "Invalid input (`invalid_input`, `invalid_mixture`, `malformed_json`, …); `field` names the culprit "
         "and `details` lists every problem.",
    429: "`rate_limited`: too many requests from this caller; retry after `Retry-After` seconds.",
    503: "`database_unavailable`: the database is unreachable or restarting; nothing was stored, retry after "
         "`Retry-After` seconds.",
    507: "`storage_full`: the database is out of disk space; nothing was stored.",
}
#: Response headers that come with some of the errors.
ERROR_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}},
    429: {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}},
    503: {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}},
}
#: Where the docs pages' assets are served (the dashboard's static route, public like the pages).
ASSETS = "/dashboard/static"


def document_errors_and_auth(doc: dict[str, Any]) -> None:
    """Add the error responses, the error schema and the Bearer scheme to a FastAPI document, in place."""
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422 shape, replaced below
        schemas.pop(unused, None)
    error_schema = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(error_schema.pop("$defs", {}))
    schemas[ErrorResponse.__name__] = error_schema
    components["securitySchemes"] = {BEARER_SCHEME: {
        "type": "http", "scheme": "bearer", "bearerFormat": "mxo_<prefix>_<secret>",
        "description": "A token from `mixopt token create`. Not needed while the API runs open (the default on "
                       "a loopback address)."}}
    doc["security"] = [{BEARER_SCHEME: []}]
    error_ref = {"$ref": f"#/components/schemas/{ErrorResponse.__name__}"}
    for path, operations in doc.get("paths", {}).items():
        for method, operation in operations.items():
            if (method.upper(), path) in PUBLIC_ROUTES:
                operation["security"] = []
                continue
            responses = operation.setdefault("responses", {})
            for status, description in API_ERRORS.items():
                response: dict[str, Any] = {"description": description,
                                            "content": {"application/json": {"schema": error_ref}}}
                if status in ERROR_HEADERS:
                    response["headers"] = ERROR_HEADERS[status]
                responses[str(status)] = response


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` (and ``/openapi.json``) return the document with errors and auth described."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document_errors_and_auth(build())  # build() stores the document it returns in app.openapi_schema
        return app.openapi_schema or build()

    app.openapi = openapi  # type: ignore[method-assign]


def install_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/redoc`` with local assets; plain routes, so public like FastAPI's own."""

    def urls(request: Request) -> tuple[str, str]:
        root = request.scope.get("root_path", "").rstrip("/")
        return f"{root}{app.openapi_url}", f"{root}{ASSETS}"

    async def swagger_ui(request: Request) -> HTMLResponse:
        openapi_url, assets = urls(request)
        return get_swagger_ui_html(openapi_url=openapi_url, title=f"{app.title} API",
                                   swagger_js_url=f"{assets}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{assets}/swagger-ui.css",
                                   swagger_favicon_url=f"{assets}/favicon.svg",
                                   swagger_ui_parameters={"validatorUrl": None})

    async def redoc(request: Request) -> HTMLResponse:
        openapi_url, assets = urls(request)
        return get_redoc_html(openapi_url=openapi_url, title=f"{app.title} API",
                              redoc_js_url=f"{assets}/redoc.standalone.js", redoc_favicon_url=f"{assets}/favicon.svg",
                              with_google_fonts=False)

    app.add_route("/docs", swagger_ui, include_in_schema=False)
    app.add_route("/redoc", redoc, include_in_schema=False)
